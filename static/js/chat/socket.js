// The thread's WebSocket: connects, resumes the stream after what the page has, reconnects with
// backoff, and gives up (saying why) on the close codes that mean retrying cannot help.
import { connection, root, showProblem, threadId } from "./page.js";
import { state } from "./state.js";

const CLOSE_NOT_LOGGED_IN = 4401;
const CLOSE_NOT_FOUND = 4404;

let socket = null;
let retries = 0;

export function connect(handle) {
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  socket = new WebSocket(scheme + location.host + "/ws/threads/" + threadId + "/");
  socket.addEventListener("open", () => {
    retries = 0;
    root.dataset.connected = "true";
    connection.textContent = "";
    // Catch up on the run in progress (or the last one): the server sends only what we miss.
    const run = state.activeRun && state.runs.get(state.activeRun);
    // Naming the run means a newer run that began while we were away comes whole after it.
    const resume = { type: "stream.resume", after_seq: run ? run.seq : 0 };
    if (run) resume.run_id = state.activeRun;
    socket.send(JSON.stringify(resume));
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
    window.setTimeout(() => connect(handle), delay);
  });
}

export function sendFrame(frame) {
  if (!socket || socket.readyState !== WebSocket.OPEN) {
    showProblem("Not connected yet. Your message is still in the box; try again in a moment.");
    return false;
  }
  socket.send(JSON.stringify(frame));
  return true;
}
