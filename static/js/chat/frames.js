// Frames from the server (protocol: docs/protocol.md). Each run's events carry a seq, so a frame
// the page already has (after a reconnect, or from the history) changes nothing.
import { empty, fragmentUrl, list, pathUrl, prompt, say, setBusy, showProblem, toolLabels } from "./page.js";
import {
  appendAnswer,
  appendQuestion,
  appendSources,
  appendText,
  appendToolChip,
  clearAnswer,
  decorate,
  removeAnswerActions,
  settleToolChip,
  showRendered,
  showThreadTitle,
  stampQuestion,
} from "./render.js";
import { state } from "./state.js";

export function handle(frame) {
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
      return showThreadTitle(frame.thread);
    case "thread.branched":
      return onBranched(frame);
    default:
      return undefined;
  }
}

function track(frame) {
  // Returns the run's state, or null when this event is one we already have.
  if (frame.run_id === state.settledRun) return null;
  let run = state.runs.get(frame.run_id);
  if (!run) {
    run = { seq: 0, element: null, finished: false };
    state.runs.set(frame.run_id, run);
  }
  if (frame.seq <= run.seq) return null;
  run.seq = frame.seq;
  return run;
}

function onMessageCreated(message) {
  const pending = state.pending;
  if (pending && message.client_id === pending.clientId) {
    pending.element.id = "m-" + message.id;
    pending.element.dataset.messageId = message.id;
    stampQuestion(pending.element, message.created_at);
    state.pending = null;
  } else if (!document.getElementById("m-" + message.id)) {
    appendQuestion(message.content, message.id, message.created_at);
  }
  // The server's version of the question carries its Edit button and, once edited, its
  // `< n/m >`.
  refresh(message.id);
}

async function refresh(messageId) {
  try {
    const response = await fetch(fragmentUrl(messageId), { headers: { Accept: "text/html" } });
    if (response.ok) showRendered(await response.text(), messageId, null);
  } catch (error) {
    // the question stays as written; a reload shows its versions
  }
}

async function onBranched(frame) {
  // Another version of a message is shown (switched, or a question edited, in any tab):
  // drop what follows its parent here, but the question being sent and the answer being
  // written, which belong to the new version.
  const after = frame.after || null; // none: the branch differs from the first message on
  let dropping = after === null;
  for (const article of [...list.querySelectorAll(".message")]) {
    if (dropping) {
      const keep = (state.pending && article === state.pending.element) || article.dataset.status === "streaming";
      if (!keep) article.remove();
    } else if (article.dataset.messageId === after) {
      dropping = true;
    }
  }
  if (!frame.reload) return; // an edit: its question and answer follow on the socket
  try {
    const response = await fetch(pathUrl(after), { headers: { Accept: "text/html" } });
    if (!response.ok) throw new Error(String(response.status));
    const template = document.createElement("template");
    template.innerHTML = (await response.text()).trim();
    const added = [...template.content.children];
    added.forEach((node) => list.insertBefore(node, empty));
    added.forEach(decorate);
    empty.hidden = Boolean(list.querySelector(".message"));
    say("Showing another version.");
  } catch (error) {
    showProblem("Reload the page to see this version.");
  }
}

function onMessageReplaced(messageId) {
  // A regenerate (from this tab or another): the old answer leaves the conversation.
  const old = document.getElementById("m-" + messageId);
  if (old) old.remove();
  if (state.regenerating && state.regenerating.dataset.messageId === messageId) state.regenerating = null;
}

function onRunStarted(frame) {
  const run = track(frame);
  if (!run) return;
  const existing = document.getElementById("m-" + frame.message_id);
  if (existing && existing.dataset.status !== "streaming") {
    run.finished = true; // already rendered from the database: nothing to replay
    return;
  }
  state.activeRun = frame.run_id;
  run.element = existing || appendAnswer(frame.message_id, frame.run_id);
  clearAnswer(run.element);
  removeAnswerActions();
  setBusy(true);
  say("The agent is answering.");
}

function onDelta(frame) {
  const run = track(frame);
  if (!run || run.finished || !run.element) return;
  appendText(run.element, frame.text);
}

function onToolStarted(frame) {
  const run = track(frame);
  if (!run || run.finished || !run.element) return;
  const label = toolLabels[frame.name] || { running: frame.name + "…", label: frame.name };
  appendToolChip(run.element, frame.call_id, label.running);
  say(label.running);
}

function onToolFinished(frame) {
  const run = track(frame);
  if (!run || run.finished || !run.element) return;
  const label = toolLabels[frame.name] || { label: frame.name };
  settleToolChip(run.element, frame.call_id, frame.ok, label.label, frame.summary);
}

function onSources(frame) {
  const run = track(frame);
  if (!run || run.finished || !run.element) return;
  appendSources(run.element, frame.items);
}

function onRunEnded(frame) {
  const run = track(frame);
  if (!run || run.finished) return;
  finish(frame.run_id, frame.message_id, frame.type === "run.stopped" ? "Stopped." : "Answer complete.");
}

function onError(frame) {
  // A stop that came after the run ended: its own end frame says how it ended.
  if (frame.code === "not_running") return;
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
  const pending = state.pending;
  if (pending) {
    pending.element.remove();
    if (!prompt.value) prompt.value = pending.text;
    state.pending = null;
    if (!list.querySelector(".message")) empty.hidden = false;
  }
  state.regenerating = null;
  if (!state.activeRun) setBusy(false);
  showProblem(frame.message);
}

async function finish(runId, messageId, announcement) {
  const run = state.runs.get(runId);
  run.finished = true;
  endRun(runId);
  say(announcement);
  try {
    const response = await fetch(fragmentUrl(messageId), { headers: { Accept: "text/html" } });
    if (!response.ok) throw new Error(String(response.status));
    showRendered(await response.text(), messageId, run.element);
  } catch (error) {
    showProblem("The answer is saved; reload the page to see it formatted.");
  }
}

function endRun(runId) {
  if (state.activeRun === runId) state.activeRun = null;
  setBusy(false);
}
