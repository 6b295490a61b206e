// Files attached in the chat box: each is uploaded to the thread (chat/attachments.py), read by
// the knowledge pipeline for this conversation only, and shown as a chip whose state follows
// the ingestion (the Knowledge page's status endpoint) until it is ready or failed.
import { csrfToken, element, live, showProblem } from "./page.js";

const box = document.getElementById("attachments");
const button = document.getElementById("attach");
const input = document.getElementById("attach-input");
const POLL_MS = 1000;
const POLL_LIMIT = 600; // ten minutes, then the chip says to reload
let polling = null;

function stateText(status) {
  if (status === "ready") return "ready";
  if (status === "failed") return "could not be read";
  return "being read…";
}

function show(attachments) {
  const list = box.querySelector(".attachment-list");
  list.replaceChildren(
    ...attachments.map((a) => {
      const item = element("li");
      item.dataset.sourceId = a.id;
      item.dataset.status = a.status;
      const link = element("a", "", a.title);
      link.href = a.url;
      const state = element("span", "muted small attachment-state", stateText(a.status));
      if (a.error) state.title = a.error;
      item.append(link, " ", state);
      return item;
    }),
  );
  box.hidden = attachments.length === 0;
}

function waiting() {
  return [...box.querySelectorAll("li[data-source-id]")].filter(
    (item) => item.dataset.status !== "ready" && item.dataset.status !== "failed",
  );
}

function follow(round = 0) {
  window.clearTimeout(polling);
  const items = waiting();
  if (!items.length) return;
  if (round >= POLL_LIMIT) {
    items.forEach((item) => (item.querySelector(".attachment-state").textContent = "still being read: reload later"));
    return;
  }
  polling = window.setTimeout(async () => {
    const ids = items.map((item) => item.dataset.sourceId).join(",");
    try {
      const response = await fetch(box.dataset.statusUrl + "?ids=" + ids, { headers: { Accept: "application/json" } });
      const result = await response.json();
      for (const source of result.sources || []) {
        const item = box.querySelector('li[data-source-id="' + source.id + '"]');
        if (!item || item.dataset.status === source.status) continue;
        item.dataset.status = source.status;
        item.querySelector(".attachment-state").textContent = stateText(source.status);
        if (source.status === "ready") live.textContent = source.title + " is ready: answers can use it now.";
        if (source.status === "failed") live.textContent = source.title + " could not be read. " + (source.error || "");
      }
    } catch (error) {
      // a missed poll is tried again on the next round
    }
    follow(round + 1);
  }, POLL_MS);
}

async function upload(files) {
  const body = new FormData();
  for (const file of files) body.append("file", file);
  button.disabled = true;
  button.textContent = "Attaching…";
  try {
    const response = await fetch(box.dataset.uploadUrl, {
      method: "POST",
      body: body,
      headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
    });
    const result = await response.json().catch(() => ({}));
    if (!response.ok) {
      showProblem(result.error || "The file could not be attached. Try again.");
      return;
    }
    showProblem("");
    show(result.attachments || []);
    const names = (result.added || []).map((a) => a.title).join(", ");
    live.textContent = "Attached " + names + ". It is being read for this conversation.";
    follow();
  } catch (error) {
    showProblem("The file could not be attached: the connection failed. Try again.");
  } finally {
    button.disabled = false;
    button.textContent = "Attach a file";
    input.value = "";
  }
}

export function listenForAttachments() {
  if (!box) return;
  follow();
  if (!button || !input) return;
  button.addEventListener("click", () => input.click());
  input.addEventListener("change", () => {
    if (input.files.length) upload(input.files);
  });
}
