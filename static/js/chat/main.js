// The thread page: sends over the chat WebSocket, shows the answer as it streams, and swaps
// in the server-rendered (sanitized) answer when it ends. Protocol: docs/protocol.md.
// page.js finds the elements, socket.js talks to the server, frames.js handles what it
// sends, render.js builds the messages and actions.js answers the person's clicks and keys;
// shortcuts.js adds the keyboard shortcuts, panel.js opens citations beside the chat and
// attachments.js uploads files for the conversation and follows their reading.
import { listen } from "./actions.js";
import { listenForAttachments } from "./attachments.js";
import { handle } from "./frames.js";
import { list, prompt, root, setBusy, settledRunId } from "./page.js";
import { decorate } from "./render.js";
import { listenForCitations } from "./panel.js";
import { listenForShortcuts } from "./shortcuts.js";
import { connect } from "./socket.js";
import { state } from "./state.js";

if (root) {
  listen();
  listenForShortcuts();
  listenForCitations();
  listenForAttachments();
  // A page opened mid-answer picks the stream up where the database left it.
  const streaming = list.querySelector('.message.assistant[data-status="streaming"]');
  if (streaming) {
    state.activeRun = streaming.dataset.runId;
    setBusy(true);
  }
  state.settledRun = streaming ? null : settledRunId;
  decorate(list);
  connect(handle);
  if (!streaming) prompt.focus();
}
