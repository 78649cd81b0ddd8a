import { createViewer, loadInitialState, showError, type NgViewer } from "./ng/viewer.js";

/** What the page exposes for browser tests and for poking at the viewer from the devtools console. */
export interface VemscopeHandle {
  viewer: NgViewer;
  /** Resolves when the initial state is applied and its layers have loaded their sources. */
  ready: Promise<void>;
}

declare global {
  interface Window {
    vemscope?: VemscopeHandle;
  }
}

const viewer = createViewer();
const ready = loadInitialState(viewer, "api/state");
// The handler keeps a failed load visible to the user without an unhandled-rejection report;
// tests still see the rejection through `ready`.
ready.catch((error: unknown) => {
  const message = error instanceof Error ? error.message : String(error);
  showError(`vemscope: could not load the initial state: ${message}`);
  console.error("vemscope: could not load the initial state", error);
});
window.vemscope = { viewer, ready };
