// The thread page's elements, its settings (from data- attributes) and the small helpers every
// part of the chat uses. Nothing here runs on a page without #conversation but lookups.

export const root = document.getElementById("conversation");
const data = root ? root.dataset : {};
const labels = document.getElementById("tool-labels");

export const threadId = data.threadId;
export const maxChars = parseInt(data.maxChars, 10);
export const settledRunId = data.settledRunId || null;
export const fragmentUrl = (id) => data.fragmentUrl.replace("00000000-0000-0000-0000-000000000000", id);
export const knowledgeUrl = (id) => data.knowledgeUrl.replace(/\/0\/$/, "/" + encodeURIComponent(id) + "/");
export const toolLabels = labels ? JSON.parse(labels.textContent) : {};
export const pathUrl = (after) => data.pathUrl + (after ? "?after=" + encodeURIComponent(after) : "");

export const list = document.getElementById("messages");
export const empty = document.getElementById("empty-state");
export const form = document.getElementById("composer");
export const prompt = document.getElementById("prompt");
export const send = document.getElementById("send");
export const stop = document.getElementById("stop");
export const problem = document.getElementById("composer-error");
export const counter = document.getElementById("char-count");
export const connection = document.getElementById("connection");
export const live = document.getElementById("live-status");
export const titleForm = document.querySelector(".title-form");
export const titleInput = document.getElementById("thread-title");

export function csrfToken() {
  const field = document.querySelector("input[name=csrfmiddlewaretoken]");
  return field ? field.value : "";
}

export function nearBottom() {
  return window.innerHeight + window.scrollY >= document.body.scrollHeight - 120;
}

export function keepInView(wasNearBottom) {
  if (wasNearBottom) window.scrollTo(0, document.body.scrollHeight);
}

export function say(text) {
  live.textContent = text;
}

export function showProblem(text) {
  problem.textContent = text || "";
}

export function setBusy(busy) {
  // Read before Stop is hidden: a hidden button loses focus to the page's body.
  const onStop = document.activeElement === stop;
  send.disabled = busy;
  prompt.readOnly = busy;
  prompt.setAttribute("aria-busy", busy ? "true" : "false");
  stop.hidden = !busy;
  if (!busy && (onStop || document.activeElement === document.body)) prompt.focus({ preventScroll: true });
}

export function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export function newId() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  return String(Date.now()) + Math.random().toString(16).slice(2);
}
