// Modal dialogs on the chat page (the shortcuts list, the cited passage): opened with
// showModal, so the page behind is inert; Tab and Shift+Tab wrap inside; Escape and the Close
// (or Back) buttons close; focus goes back to what opened it.
const FOCUSABLE = 'a[href], button:not([disabled]), input:not([disabled]), textarea:not([disabled]), select:not([disabled]), [tabindex]:not([tabindex="-1"])';

function focusables(dialog) {
  return Array.from(dialog.querySelectorAll(FOCUSABLE)).filter((node) => node.offsetParent !== null || node === document.activeElement);
}

export function setUpDialog(dialog) {
  dialog.addEventListener("keydown", (event) => {
    if (event.key !== "Tab") return;
    const nodes = focusables(dialog);
    if (!nodes.length) return;
    const first = nodes[0];
    const last = nodes[nodes.length - 1];
    const inside = dialog.contains(document.activeElement);
    if (event.shiftKey && (document.activeElement === first || !inside)) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && (document.activeElement === last || !inside)) {
      event.preventDefault();
      first.focus();
    }
  });
  dialog.querySelectorAll(".dialog-close, .dialog-back").forEach((button) => {
    button.addEventListener("click", () => dialog.close());
  });
  // A click on the backdrop (the dialog box itself, outside its content) closes it.
  dialog.addEventListener("click", (event) => {
    if (event.target === dialog) dialog.close();
  });
  dialog.addEventListener("close", () => {
    const opener = dialog.opener;
    dialog.opener = null;
    if (opener && opener.isConnected) opener.focus();
  });
}

export function openDialog(dialog, opener, focusTarget) {
  dialog.opener = opener && opener !== document.body ? opener : null;
  if (!dialog.open) dialog.showModal();
  (focusTarget || dialog.querySelector(".dialog-close")).focus();
}

export function anyDialogOpen() {
  return Boolean(document.querySelector("dialog[open]"));
}
