import type { Live } from "./live.js";
import type { PanelHandle } from "./ng/panels.js";
import { takeTokenFromUrl } from "./proofreading.js";
import { createViewer, loadInitialState, showError, type NgViewer } from "./ng/viewer.js";
import { installPanels } from "./vemscope.js";

/** What the page exposes for browser tests and for poking at the viewer from the devtools console. */
export interface VemscopeHandle {
  viewer: NgViewer;
  /** Resolves when the initial state is applied and its layers have loaded their sources. */
  ready: Promise<void>;
  /** Open/close vemscope's panels by key: morphometrics, contacts, proofreading, share. */
  panels: Map<string, PanelHandle>;
  /** The shown and newest segmentation versions, and the event stream's state. */
  live: Live | undefined;
}

declare global {
  interface Window {
    vemscope?: VemscopeHandle;
  }
}

// Before anything reads it: `?token=` in the page URL is stored and removed from the address bar.
takeTokenFromUrl(window.location, window.history);
let panels = new Map<string, PanelHandle>();
let live: Live | undefined;
const viewer = createViewer({
  beforeStateRestore: (v) => {
    ({ panels, live } = installPanels(v));
  },
});
const ready = loadInitialState(viewer, "api/state");
// Events start after the layers exist: the first one may have to reload the organelles source.
ready.then(() => live?.start(), () => undefined);
// The handler keeps a failed load visible to the user without an unhandled-rejection report;
// tests still see the rejection through `ready`.
ready.catch((error: unknown) => {
  const message = error instanceof Error ? error.message : String(error);
  showError(`vemscope: could not load the initial state: ${message}`);
  console.error("vemscope: could not load the initial state", error);
});
window.vemscope = { viewer, ready, panels, live };
