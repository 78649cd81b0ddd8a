import type { PanelHandle } from "./ng/panels.js";
import { createViewer, loadInitialState, showError, type NgViewer } from "./ng/viewer.js";
import { installPanels } from "./vemscope.js";

/** What the page exposes for browser tests and for poking at the viewer from the devtools console. */
export interface VemscopeHandle {
  viewer: NgViewer;
  /** Resolves when the initial state is applied and its layers have loaded their sources. */
  ready: Promise<void>;
  /** Open/close vemscope's panels by key: morphometrics, contacts, share. */
  panels: Map<string, PanelHandle>;
}

declare global {
  interface Window {
    vemscope?: VemscopeHandle;
  }
}

let panels = new Map<string, PanelHandle>();
const viewer = createViewer({ beforeStateRestore: (v) => (panels = installPanels(v)) });
const ready = loadInitialState(viewer, "api/state");
// The handler keeps a failed load visible to the user without an unhandled-rejection report;
// tests still see the rejection through `ready`.
ready.catch((error: unknown) => {
  const message = error instanceof Error ? error.message : String(error);
  showError(`vemscope: could not load the initial state: ${message}`);
  console.error("vemscope: could not load the initial state", error);
});
window.vemscope = { viewer, ready, panels };
