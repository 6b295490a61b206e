// The header's theme button: system → light → dark → system. The page changes at once (the
// colours hang off <html data-theme>, static/css/parley.css) and the choice is stored in the
// background (POST /settings/theme/, 204 for fetch), so the next page is rendered in it: no
// flash on load. Without this script the button is a plain form that does the same by reload.
(function () {
  "use strict";

  const NEXT = { system: "light", light: "dark", dark: "system" };
  const NAMES = { system: "System", light: "Light", dark: "Dark" };
  const PRESSED = { system: "mixed", light: "false", dark: "true" };
  const SCHEME = { system: "light dark", light: "light", dark: "dark" };

  function show(button, theme) {
    document.documentElement.dataset.theme = theme;
    const meta = document.querySelector('meta[name="color-scheme"]');
    if (meta) meta.content = SCHEME[theme];
    button.dataset.theme = theme;
    button.value = NEXT[theme];
    button.setAttribute("aria-pressed", PRESSED[theme]);
    button.setAttribute("aria-label", "Theme: " + NAMES[theme] + ". Switch to " + NAMES[NEXT[theme]]);
    button.querySelector(".theme-name").textContent = "Theme: " + NAMES[theme];
  }

  async function store(form, theme) {
    const body = new FormData(form);
    body.set("theme", theme);
    try {
      const response = await fetch(form.action, {
        method: "POST",
        body: body,
        headers: { "X-Requested-With": "fetch" },
        credentials: "same-origin",
      });
      return response.ok;
    } catch (error) {
      return false;
    }
  }

  function start() {
    const button = document.getElementById("theme-toggle");
    if (!button) return;
    const form = button.form;
    let saving = Promise.resolve();
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const theme = button.value in NEXT ? button.value : "system";
      show(button, theme);
      // One request at a time, in order: quick clicks end on the last choice.
      saving = saving.then(() => store(form, theme)).then((ok) => {
        button.dataset.saved = ok ? theme : "error";
        if (!ok) button.title = "Your theme could not be saved; it applies to this page only.";
        else button.removeAttribute("title");
      });
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
