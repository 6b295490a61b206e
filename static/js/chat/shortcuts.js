// Keyboard shortcuts on the chat page, listed in the dialog that `?` opens (thread.html):
//   Ctrl/Cmd+Shift+O  new chat          Shift+Esc or /  focus the message box
//   Esc               stop the answer   ?               this list
// None is a browser's own: Chrome reserves Ctrl+N/T/W and their Shift forms, not these. The
// single keys (`/`, `?`) only count outside text fields, so they can still be typed.
import { stopAnswer } from "./actions.js";
import { anyDialogOpen, openDialog, setUpDialog } from "./dialog.js";
import { prompt } from "./page.js";

function typing(target) {
  if (!(target instanceof Element)) return false;
  if (target.isContentEditable) return true;
  if (target.tagName === "TEXTAREA" || target.tagName === "SELECT") return true;
  if (target.tagName !== "INPUT") return false;
  return !["button", "checkbox", "radio", "submit", "reset", "range", "color", "file"].includes(target.type);
}

function newChat() {
  const link = document.querySelector(".new-chat-link");
  if (link) window.location.assign(link.href);
}

function focusPrompt() {
  if (prompt.closest("[hidden]")) return; // a reader's page has no message box
  prompt.focus();
  prompt.setSelectionRange(prompt.value.length, prompt.value.length);
}

export function listenForShortcuts() {
  const dialog = document.getElementById("shortcuts");
  setUpDialog(dialog);
  const open = (opener) => openDialog(dialog, opener);
  document.querySelectorAll(".shortcuts-open").forEach((button) => {
    button.addEventListener("click", () => open(button));
  });

  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.isComposing) return;
    // An open dialog has the keyboard: Escape closes it (the browser's own handling).
    if (anyDialogOpen()) return;
    const key = event.key;
    const command = event.ctrlKey || event.metaKey;
    if (command && event.shiftKey && !event.altKey && key.toLowerCase() === "o") {
      event.preventDefault();
      newChat();
    } else if (key === "Escape" && event.shiftKey && !command) {
      event.preventDefault();
      focusPrompt();
    } else if (key === "Escape" && !event.shiftKey && !command) {
      if (stopAnswer()) event.preventDefault();
    } else if (command || event.altKey || typing(event.target)) {
      // nothing else is a shortcut with a modifier, or while writing
    } else if (key === "?") {
      event.preventDefault();
      open(document.activeElement);
    } else if (key === "/") {
      event.preventDefault();
      focusPrompt();
    }
  });
}
