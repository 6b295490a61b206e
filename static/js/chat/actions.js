// What the person does: send and stop from the composer, and the buttons on answers (copy,
// regenerate, follow-ups, feedback) and the title form. A reader who may not write gets a
// hidden composer, no Rename button and no feedback form; nothing here depends on them.
import {
  counter,
  csrfToken,
  element,
  form,
  list,
  maxChars,
  newId,
  problem,
  prompt,
  say,
  setBusy,
  showProblem,
  stop,
  send,
  threadId,
  titleForm,
} from "./page.js";
import { appendQuestion, showThreadTitle } from "./render.js";
import { sendFrame } from "./socket.js";
import { state } from "./state.js";

// The agent picked in the composer answers from now on (the server switches the thread).
function withAgent(frame) {
  const picker = document.getElementById("agent-picker");
  if (picker && picker.value) frame.agent_id = parseInt(picker.value, 10);
  return frame;
}

function submit() {
  const text = prompt.value;
  if (send.disabled) return;
  if (!text.trim()) {
    showProblem("Write a message first.");
    return;
  }
  if (text.length > maxChars) {
    showProblem("Messages can be at most " + maxChars.toLocaleString("en") + " characters; this one has " + text.length.toLocaleString("en") + ".");
    return;
  }
  const clientId = newId();
  if (!sendFrame(withAgent({ type: "message.send", content: text, client_id: clientId }))) return;
  showProblem("");
  state.pending = { clientId: clientId, text: text, element: appendQuestion(text) };
  prompt.value = "";
  updateCounter();
  setBusy(true);
}

function updateCounter() {
  const length = prompt.value.length;
  counter.textContent = length > maxChars * 0.8 ? length.toLocaleString("en") + " / " + maxChars.toLocaleString("en") : "";
  counter.classList.toggle("error", length > maxChars);
}

async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch (error) {
    const area = element("textarea");
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  const before = button.textContent;
  button.textContent = "Copied";
  window.setTimeout(() => {
    button.textContent = before;
  }, 1500);
}

async function sendFeedback(button) {
  const feedbackForm = button.closest("form");
  const body = new FormData(feedbackForm);
  body.set("feedback", button.value);
  const response = await fetch(feedbackForm.action, {
    method: "POST",
    body: body,
    headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
  });
  const result = await response.json().catch(() => ({}));
  if (!response.ok) {
    showProblem(result.message || result.error || "Your feedback could not be saved. Try again.");
    return;
  }
  feedbackForm.querySelectorAll(".thumb").forEach((thumb) => {
    thumb.setAttribute("aria-pressed", thumb.value === result.feedback ? "true" : "false");
  });
}

async function rename() {
  const response = await fetch(titleForm.action, {
    method: "POST",
    body: new FormData(titleForm),
    headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
  });
  const result = await response.json().catch(() => ({}));
  if (!response.ok) {
    showProblem(result.message || result.error || "The title could not be saved.");
    return;
  }
  showThreadTitle({ id: threadId, title: result.title });
  say("Title saved.");
}

// Stop from the button or the Escape key: focus stays in the message box, ready for the next.
export function stopAnswer() {
  if (stop.hidden) return false;
  sendFrame({ type: "run.stop" });
  say("Stopping.");
  prompt.focus({ preventScroll: true });
  return true;
}

// Editing a question: the bubble becomes a box; saving asks the new version, which starts a
// new branch from there (the original and its answer stay one `<` away).
function openEditor(article) {
  if (article.querySelector(".edit-box")) return;
  const bubble = article.querySelector(".bubble");
  const editor = element("div", "question-editor");
  const label = element("label", "visually-hidden", "Edit your question");
  const box = element("textarea", "edit-box");
  box.id = "edit-" + article.dataset.messageId;
  label.htmlFor = box.id;
  box.value = bubble.innerText;
  box.rows = Math.min(8, Math.max(2, box.value.split("\n").length));
  const save = element("button", "edit-save", "Save and ask");
  save.type = "button";
  const cancel = element("button", "ghost edit-cancel", "Cancel");
  cancel.type = "button";
  editor.append(label, box, save, cancel);
  bubble.hidden = true;
  bubble.after(editor);
  box.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      saveEdit(article);
    } else if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      closeEditor(article);
    }
  });
  box.focus();
}

function closeEditor(article) {
  const editor = article.querySelector(".question-editor");
  if (editor) editor.remove();
  article.querySelector(".bubble").hidden = false;
  const edit = article.querySelector(".edit-question");
  if (edit) edit.focus();
}

function saveEdit(article) {
  const text = article.querySelector(".edit-box").value;
  if (send.disabled) {
    showProblem("Wait for the answer to finish, or stop it, before editing.");
    return;
  }
  if (!text.trim()) {
    showProblem("Write a question first.");
    return;
  }
  if (text.length > maxChars) {
    showProblem("Messages can be at most " + maxChars.toLocaleString("en") + " characters.");
    return;
  }
  const clientId = newId();
  const frame = { type: "message.edit", message_id: article.dataset.messageId, content: text, client_id: clientId };
  if (!sendFrame(withAgent(frame))) return;
  closeEditor(article);
  showProblem("");
  state.pending = { clientId: clientId, text: text, element: appendQuestion(text) };
  setBusy(true);
  prompt.focus();
}

export function listen() {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });

  prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    }
  });

  prompt.addEventListener("input", () => {
    updateCounter();
    if (problem.textContent) showProblem("");
  });

  stop.addEventListener("click", stopAnswer);

  list.addEventListener("click", async (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    const article = button.closest(".message");
    if (button.classList.contains("copy-code")) {
      const code = button.parentElement.nextElementSibling;
      await copyText(code.innerText, button);
    } else if (button.classList.contains("copy-answer")) {
      await copyText(article.querySelector(".answer").innerText, button);
    } else if (button.classList.contains("regenerate")) {
      if (sendFrame(withAgent({ type: "message.regenerate", message_id: article.dataset.messageId }))) {
        state.regenerating = article;
        setBusy(true);
      }
    } else if (button.classList.contains("branch-switch")) {
      // `< 2/3 >`: show another version of this message (every tab follows).
      if (button.dataset.messageId && !send.disabled) {
        sendFrame({ type: "branch.switch", message_id: button.dataset.messageId });
      }
    } else if (button.classList.contains("edit-question")) {
      openEditor(article);
    } else if (button.classList.contains("edit-save")) {
      saveEdit(article);
    } else if (button.classList.contains("edit-cancel")) {
      closeEditor(article);
    } else if (button.classList.contains("follow-up")) {
      prompt.value = button.dataset.text;
      submit();
    } else if (button.classList.contains("thumb")) {
      event.preventDefault();
      await sendFeedback(button);
    }
  });

  // Enter in the title submits it, with or without a Rename button on the page.
  if (titleForm) {
    titleForm.addEventListener("submit", (event) => {
      event.preventDefault();
      rename();
    });
  }
}
