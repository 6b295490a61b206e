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
