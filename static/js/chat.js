// The thread page: sends over the chat WebSocket, shows the answer as it streams, and swaps
// in the server-rendered (sanitized) answer when it ends. Protocol: docs/protocol.md.
// Streamed text is only ever set with textContent: model output is untrusted.
(function () {
  "use strict";

  const root = document.getElementById("conversation");
  if (!root) return;

  const threadId = root.dataset.threadId;
  const maxChars = parseInt(root.dataset.maxChars, 10);
  const fragmentUrl = (id) => root.dataset.fragmentUrl.replace("00000000-0000-0000-0000-000000000000", id);
  const knowledgeUrl = (id) => root.dataset.knowledgeUrl.replace(/\/0\/$/, "/" + encodeURIComponent(id) + "/");
  const toolLabels = JSON.parse(document.getElementById("tool-labels").textContent);

  const list = document.getElementById("messages");
  const empty = document.getElementById("empty-state");
  const form = document.getElementById("composer");
  const prompt = document.getElementById("prompt");
  const send = document.getElementById("send");
  const stop = document.getElementById("stop");
  const problem = document.getElementById("composer-error");
  const counter = document.getElementById("char-count");
  const connection = document.getElementById("connection");
  const live = document.getElementById("live-status");
  const titleForm = document.querySelector(".title-form");
  const titleInput = document.getElementById("thread-title");

  const CLOSE_NOT_LOGGED_IN = 4401;
  const CLOSE_NOT_FOUND = 4404;

  let socket = null;
  let retries = 0;
  let activeRun = null; // run_id of the answer streaming now
  let pending = null; // {clientId, text, element} of the question being sent
  let regenerating = null; // the answer a regenerate will replace
  const runs = new Map(); // run_id -> {seq, element, finished}

  // --- helpers -----------------------------------------------------------------------

  function csrfToken() {
    const field = document.querySelector("input[name=csrfmiddlewaretoken]");
    return field ? field.value : "";
  }

  function nearBottom() {
    return window.innerHeight + window.scrollY >= document.body.scrollHeight - 120;
  }

  function keepInView(wasNearBottom) {
    if (wasNearBottom) window.scrollTo(0, document.body.scrollHeight);
  }

  function say(text) {
    live.textContent = text;
  }

  function showProblem(text) {
    problem.textContent = text || "";
  }

  function setBusy(busy) {
    send.disabled = busy;
    prompt.readOnly = busy;
    prompt.setAttribute("aria-busy", busy ? "true" : "false");
    stop.hidden = !busy;
    if (!busy && document.activeElement === stop) prompt.focus();
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function newId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return String(Date.now()) + Math.random().toString(16).slice(2);
  }

  // --- the socket --------------------------------------------------------------------

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + "/ws/threads/" + threadId + "/");
    socket.addEventListener("open", () => {
      retries = 0;
      root.dataset.connected = "true";
      connection.textContent = "";
      // Catch up on the run in progress (or the last one): the server sends only what we miss.
      const run = activeRun && runs.get(activeRun);
      socket.send(JSON.stringify({ type: "stream.resume", after_seq: run ? run.seq : 0 }));
    });
    socket.addEventListener("message", (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (error) {
        return;
      }
      handle(frame);
    });
    socket.addEventListener("close", (event) => {
      root.dataset.connected = "false";
      if (event.code === CLOSE_NOT_LOGGED_IN) {
        connection.textContent = "You are logged out. Log in again to keep chatting.";
        return;
      }
      if (event.code === CLOSE_NOT_FOUND) {
        connection.textContent = "This conversation is not available.";
        return;
      }
      connection.textContent = "Reconnecting…";
      const delay = Math.min(10000, 500 * 2 ** retries++);
      window.setTimeout(connect, delay);
    });
  }

  function sendFrame(frame) {
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      showProblem("Not connected yet. Your message is still in the box; try again in a moment.");
      return false;
    }
    socket.send(JSON.stringify(frame));
    return true;
  }

  // --- frames from the server -----------------------------------------------------------

  function handle(frame) {
    switch (frame.type) {
      case "message.created":
        return onMessageCreated(frame.message);
      case "message.replaced":
        return onMessageReplaced(frame.message_id);
      case "run.started":
        return onRunStarted(frame);
      case "delta":
        return onDelta(frame);
      case "tool.started":
        return onToolStarted(frame);
      case "tool.finished":
        return onToolFinished(frame);
      case "sources":
        return onSources(frame);
      case "run.completed":
      case "run.stopped":
        return onRunEnded(frame);
      case "error":
        return onError(frame);
      case "thread.updated":
        return onThreadUpdated(frame.thread);
      default:
        return undefined;
    }
  }

  function track(frame) {
    // Returns the run's state, or null when this event is one we already have.
    // The run that had ended when the page was rendered is in the history already.
    if (frame.run_id === settledRun) return null;
    let run = runs.get(frame.run_id);
    if (!run) {
      run = { seq: 0, element: null, finished: false };
      runs.set(frame.run_id, run);
    }
    if (frame.seq <= run.seq) return null;
    run.seq = frame.seq;
    return run;
  }

  function onMessageCreated(message) {
    if (pending && message.client_id === pending.clientId) {
      pending.element.id = "m-" + message.id;
      pending.element.dataset.messageId = message.id;
      pending = null;
      return;
    }
    if (document.getElementById("m-" + message.id)) return;
    appendQuestion(message.content, message.id);
  }

  function onMessageReplaced(messageId) {
    // A regenerate (from this tab or another): the old answer leaves the conversation.
    const old = document.getElementById("m-" + messageId);
    if (old) old.remove();
    if (regenerating && regenerating.dataset.messageId === messageId) regenerating = null;
  }

  function onRunStarted(frame) {
    const run = track(frame);
    if (!run) return;
    const existing = document.getElementById("m-" + frame.message_id);
    if (existing && existing.dataset.status !== "streaming") {
      run.finished = true; // already rendered from the database: nothing to replay
      return;
    }
    activeRun = frame.run_id;
    run.element = existing || appendAnswer(frame.message_id, frame.run_id);
    // A replay of the whole run: start the streamed text again from nothing.
    run.element.querySelector(".answer").replaceChildren(element("div", "raw"));
    run.element.querySelector(".tool-chips").replaceChildren();
    run.element.querySelector(".sources ol").replaceChildren();
    run.element.querySelector(".sources").hidden = true;
    document.querySelectorAll(".message .regenerate, .message .follow-ups").forEach((n) => n.remove());
    setBusy(true);
    say("The agent is answering.");
  }

  function onDelta(frame) {
    const run = track(frame);
    if (!run || run.finished || !run.element) return;
    const atBottom = nearBottom();
    run.element.querySelector(".answer .raw").append(document.createTextNode(frame.text));
    keepInView(atBottom);
  }

  function onToolStarted(frame) {
    const run = track(frame);
    if (!run || run.finished || !run.element) return;
    const label = toolLabels[frame.name] || { running: frame.name + "…", label: frame.name };
    const chip = element("li", "tool-chip running", label.running);
    chip.dataset.callId = frame.call_id;
    run.element.querySelector(".tool-chips").append(chip);
    say(label.running);
  }

  function onToolFinished(frame) {
    const run = track(frame);
    if (!run || run.finished || !run.element) return;
    const label = toolLabels[frame.name] || { label: frame.name };
    const chips = run.element.querySelectorAll(".tool-chip");
    const chip = Array.from(chips).find((c) => c.dataset.callId === frame.call_id);
    if (!chip) return;
    chip.className = "tool-chip " + (frame.ok ? "ok" : "failed");
    chip.textContent = label.label + " · " + (frame.ok ? "done" : "failed");
    chip.title = frame.summary || "";
  }

  function onSources(frame) {
    const run = track(frame);
    if (!run || run.finished || !run.element) return;
    const section = run.element.querySelector(".sources");
    const ol = section.querySelector("ol");
    for (const item of frame.items) {
      const li = element("li");
      li.value = item.n;
      const link = element("a", "", item.title);
      link.href = knowledgeUrl(item.knowledge_id);
      li.append(link);
      ol.append(li);
    }
    section.hidden = false;
  }

  function onRunEnded(frame) {
    const run = track(frame);
    if (!run || run.finished) return;
    finish(frame.run_id, frame.message_id, frame.type === "run.stopped" ? "Stopped." : "Answer complete.");
  }

  function onError(frame) {
    if (frame.run_id) {
      const run = track(frame);
      if (!run || run.finished) return;
      if (frame.message_id) {
        finish(frame.run_id, frame.message_id, frame.message);
      } else {
        run.finished = true;
        if (run.element) run.element.remove();
        endRun(frame.run_id);
        showProblem(frame.message);
      }
      return;
    }
    // Refused before anything was saved (busy, rate limited, bad input): keep the text.
    if (pending) {
      pending.element.remove();
      if (!prompt.value) prompt.value = pending.text;
      pending = null;
      if (!list.querySelector(".message")) empty.hidden = false;
    }
    regenerating = null;
    if (!activeRun) setBusy(false);
    showProblem(frame.message);
  }

  function onThreadUpdated(thread) {
    if (String(thread.id) !== String(threadId)) return;
    if (document.activeElement !== titleInput) titleInput.value = thread.title;
    document.title = thread.title + " · Parley";
    const link = document.querySelector('.recent a[data-thread-id="' + thread.id + '"]');
    if (link) link.textContent = thread.title;
  }

  async function finish(runId, messageId, announcement) {
    const run = runs.get(runId);
    run.finished = true;
    endRun(runId);
    say(announcement);
    try {
      const response = await fetch(fragmentUrl(messageId), { headers: { Accept: "text/html" } });
      if (!response.ok) throw new Error(String(response.status));
      const template = document.createElement("template");
      template.innerHTML = (await response.text()).trim();
      const rendered = template.content.firstElementChild;
      const current = document.getElementById("m-" + messageId) || run.element;
      if (current) current.replaceWith(rendered);
      else list.insertBefore(rendered, empty);
      decorate(rendered);
    } catch (error) {
      showProblem("The answer is saved; reload the page to see it formatted.");
    }
  }

  function endRun(runId) {
    if (activeRun === runId) activeRun = null;
    setBusy(false);
  }

  // --- building messages -----------------------------------------------------------------

  function appendQuestion(text, id) {
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

  function appendAnswer(messageId, runId) {
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

  // Copy buttons for code blocks; the rest of the actions are delegated below.
  function decorate(scope) {
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

  // --- user actions -------------------------------------------------------------------------

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
    if (!sendFrame({ type: "message.send", content: text, client_id: clientId })) return;
    showProblem("");
    pending = { clientId: clientId, text: text, element: appendQuestion(text) };
    prompt.value = "";
    updateCounter();
    setBusy(true);
  }

  function updateCounter() {
    const length = prompt.value.length;
    counter.textContent = length > maxChars * 0.8 ? length.toLocaleString("en") + " / " + maxChars.toLocaleString("en") : "";
    counter.classList.toggle("error", length > maxChars);
  }

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

  stop.addEventListener("click", () => {
    sendFrame({ type: "run.stop" });
    say("Stopping.");
  });

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
      if (sendFrame({ type: "message.regenerate", message_id: article.dataset.messageId })) {
        regenerating = article;
        setBusy(true);
      }
    } else if (button.classList.contains("follow-up")) {
      prompt.value = button.dataset.text;
      submit();
    } else if (button.classList.contains("thumb")) {
      event.preventDefault();
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
  });

  titleForm.addEventListener("submit", async (event) => {
    event.preventDefault();
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
    onThreadUpdated({ id: threadId, title: result.title });
    say("Title saved.");
  });

  // A page opened mid-answer picks the stream up where the database left it.
  const streaming = list.querySelector('.message.assistant[data-status="streaming"]');
  if (streaming) {
    activeRun = streaming.dataset.runId;
    setBusy(true);
  }
  const settledRun = streaming ? null : root.dataset.settledRunId || null;
  decorate(list);
  connect();
  if (!streaming) prompt.focus();
})();
