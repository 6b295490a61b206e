// Building and updating the messages. Streamed text is only ever added as text nodes: model
// output is untrusted until the server's sanitized rendering replaces it.
import { element, empty, keepInView, knowledgeUrl, list, nearBottom, threadId, titleInput } from "./page.js";

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const two = (n) => String(n).padStart(2, "0");

// "6 Dec 2026, 14:05" in the reader's time zone: the same on every locale.
export function formatTime(date) {
  return date.getDate() + " " + MONTHS[date.getMonth()] + " " + date.getFullYear() + ", " + two(date.getHours()) + ":" + two(date.getMinutes());
}

function zoneName() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";
  } catch (error) {
    return "local time";
  }
}

// The server writes times in UTC; show them in the reader's own zone.
export function localizeTimes(scope) {
  scope.querySelectorAll("time.message-time[datetime]").forEach((node) => {
    const date = new Date(node.getAttribute("datetime"));
    if (Number.isNaN(date.getTime())) return;
    node.textContent = formatTime(date);
    node.title = date.toISOString().slice(0, 16).replace("T", " ") + " UTC · shown in " + zoneName();
  });
}

// A question's time arrives with message.created, once the server has saved it.
export function stampQuestion(article, createdAt) {
  if (!createdAt || article.querySelector("time.message-time")) return;
  const time = element("time", "message-time muted small");
  time.setAttribute("datetime", createdAt);
  article.append(time);
  localizeTimes(article);
}

export function appendQuestion(text, id, createdAt) {
  const article = element("article", "message user");
  if (id) {
    article.id = "m-" + id;
    article.dataset.messageId = id;
  }
  article.setAttribute("aria-label", "You said");
  article.append(element("div", "bubble", text));
  stampQuestion(article, createdAt);
  empty.hidden = true;
  list.insertBefore(article, empty);
  window.scrollTo(0, document.body.scrollHeight);
  return article;
}

export function appendAnswer(messageId, runId) {
  const article = element("article", "message assistant streaming");
  article.id = "m-" + messageId;
  article.dataset.messageId = messageId;
  article.dataset.runId = runId;
  article.dataset.status = "streaming";
  article.setAttribute("aria-label", "Answer");
  const chips = element("ul", "tool-chips");
  chips.setAttribute("aria-label", "Tool activity");
  const answer = element("div", "answer markdown");
  answer.append(element("div", "raw"));
  const sources = element("section", "sources");
  sources.hidden = true;
  sources.setAttribute("aria-label", "Sources");
  sources.append(element("h3", "", "Sources"), element("ol"));
  article.append(chips, answer, sources);
  empty.hidden = true;
  list.insertBefore(article, empty);
  return article;
}

// A replay of the whole run: start the streamed text, chips and sources again from nothing.
export function clearAnswer(article) {
  article.querySelector(".answer").replaceChildren(element("div", "raw"));
  article.querySelector(".tool-chips").replaceChildren();
  article.querySelector(".sources ol").replaceChildren();
  article.querySelector(".sources").hidden = true;
}

export function removeAnswerActions() {
  document.querySelectorAll(".message .regenerate, .message .follow-ups").forEach((n) => n.remove());
}

export function appendText(article, text) {
  const atBottom = nearBottom();
  article.querySelector(".answer .raw").append(document.createTextNode(text));
  keepInView(atBottom);
}

export function appendToolChip(article, callId, text) {
  const chip = element("li", "tool-chip running", text);
  chip.dataset.callId = callId;
  article.querySelector(".tool-chips").append(chip);
}

export function settleToolChip(article, callId, ok, label, summary) {
  const chips = article.querySelectorAll(".tool-chip");
  const chip = Array.from(chips).find((c) => c.dataset.callId === callId);
  if (!chip) return;
  chip.className = "tool-chip " + (ok ? "ok" : "failed");
  chip.textContent = label + " · " + (ok ? "done" : "failed");
  chip.title = summary || "";
}

export function appendSources(article, items) {
  const section = article.querySelector(".sources");
  const ol = section.querySelector("ol");
  for (const item of items) {
    const li = element("li");
    li.value = item.n;
    const link = element("a", "", item.title);
    link.href = knowledgeUrl(item.knowledge_id);
    li.append(link);
    ol.append(li);
  }
  section.hidden = false;
}

// The server's rendering of a finished answer (sanitized there) takes the streamed one's place.
export function showRendered(html, messageId, streamed) {
  const template = document.createElement("template");
  template.innerHTML = html.trim();
  const rendered = template.content.firstElementChild;
  const current = document.getElementById("m-" + messageId) || streamed;
  if (current) current.replaceWith(rendered);
  else list.insertBefore(rendered, empty);
  decorate(rendered);
}

export function showThreadTitle(thread) {
  if (String(thread.id) !== String(threadId)) return;
  if (thread.agent) {
    // Another tab (or this one) switched the agent: say who answers now.
    document.getElementById("agent-name").textContent = thread.agent.name;
    const picker = document.getElementById("agent-picker");
    if (picker) picker.value = String(thread.agent.id);
    const box = document.getElementById("prompt");
    if (box) box.placeholder = "Message " + thread.agent.name + "…";
  }
  if (thread.title === undefined) return;
  if (document.activeElement !== titleInput) titleInput.value = thread.title;
  document.title = thread.title + " · Parley";
  const link = document.querySelector('.recent a[data-thread-id="' + thread.id + '"]');
  if (link) link.textContent = thread.title;
}

// Copy buttons for code blocks (what they do is in actions.js), and times in the reader's zone.
export function decorate(scope) {
  localizeTimes(scope);
  scope.querySelectorAll("pre.codeblock").forEach((block) => {
    if (block.previousElementSibling && block.previousElementSibling.classList.contains("code-bar")) return;
    const bar = element("div", "code-bar");
    bar.append(element("span", "muted small", block.dataset.lang || "code"));
    const button = element("button", "ghost copy-code", "Copy code");
    button.type = "button";
    bar.append(button);
    block.before(bar);
  });
}
