// What the page knows about the conversation's runs, shared by the socket, the frame handlers
// and the user's actions (one object, since importers cannot assign an imported binding).
export const state = {
  activeRun: null, // run_id of the answer streaming now
  pending: null, // {clientId, text, element} of the question being sent
  regenerating: null, // the answer a regenerate will replace
  settledRun: null, // the run that had ended when the page was rendered: in the history already
  runs: new Map(), // run_id -> {seq, element, finished}
};
