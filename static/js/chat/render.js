// Building and updating the messages. Streamed text is only ever added as text nodes: model
// output is untrusted until the server's sanitized rendering replaces it.
import { element, empty, keepInView, knowledgeUrl, list, nearBottom, threadId, titleInput } from "./page.js";

export function appendQuestion(text, id) {
  const article = element("article", "message user");
  if (id) {
    article.id = "m-" + id;
    article.dataset.messageId = id;
  }
  article.setAttribute("aria-label", "You said");
  article.append(element("div", "bubble", text));
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
  if (document.activeElement !== titleInput) titleInput.value = thread.title;
  document.title = thread.title + " · Parley";
  const link = document.querySelector('.recent a[data-thread-id="' + thread.id + '"]');
  if (link) link.textContent = thread.title;
}

// Copy buttons for code blocks; what they do is in actions.js.
export function decorate(scope) {
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
