// A citation opens its passage beside the conversation instead of leaving it. The passage page
// (agents/knowledge, server-rendered and escaped there) is fetched and its article shown in a
// dialog: a side panel, full screen on a phone with a Back button. Ctrl/Cmd/Shift/middle
// click keep the browser's own behaviour (a new tab or window), and so does a failed fetch's
// "Open the passage on its own page" link.
import { openDialog, setUpDialog } from "./dialog.js";
import { element, list } from "./page.js";

const LINKS = "a.cite, .sources a";

function passageFrom(html) {
  const page = new DOMParser().parseFromString(html, "text/html");
  const article = page.querySelector("main article.knowledge") || page.querySelector("main article");
  if (!article) return null;
  article.querySelectorAll("script, style, link, form, iframe").forEach((node) => node.remove());
  return document.importNode(article, true);
}

async function show(panel, link) {
  const body = panel.querySelector(".passage-body");
  const heading = panel.querySelector("#passage-heading");
  panel.querySelector(".passage-page").href = link.href;
  heading.textContent = link.title || link.textContent.trim() || "Cited passage";
  body.replaceChildren(element("p", "muted", "Loading the passage…"));
  panel.setAttribute("aria-busy", "true");
  openDialog(panel, link);
  try {
    const response = await fetch(link.href, { headers: { Accept: "text/html" }, credentials: "same-origin" });
    if (!response.ok) throw new Error(String(response.status));
    const article = passageFrom(await response.text());
    if (!article) throw new Error("no passage");
    article.classList.remove("card");
    const title = article.querySelector("h1");
    if (title) {
      heading.textContent = title.textContent;
      title.remove();
    }
    body.replaceChildren(article);
    const cited = article.querySelector(".cited");
    if (cited) cited.scrollIntoView({ block: "nearest" });
  } catch (error) {
    body.replaceChildren(element("p", "error", "This passage could not be loaded here. Open it on its own page below."));
  } finally {
    panel.removeAttribute("aria-busy");
  }
}

export function listenForCitations() {
  const panel = document.getElementById("passage-panel");
  setUpDialog(panel);
  list.addEventListener("click", (event) => {
    const link = event.target.closest(LINKS);
    if (!link || !list.contains(link)) return;
    if (event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    show(panel, link);
  });
}
