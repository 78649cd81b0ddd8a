/**
 * The one module that touches Neuroglancer internals. Neuroglancer's `unstable/*` API changes
 * between releases (the version is pinned in package.json); keeping every import here means an
 * upgrade is a one-file review.
 */

// Side-effect import: registers layer types, data sources and kvstores. Which data sources
// actually get bundled is decided by the resolve conditions in plugin/vite.config.ts.
import "neuroglancer";
import { StatusMessage } from "neuroglancer/unstable/status.js";
import { bindDefaultCopyHandler, bindDefaultPasteHandler } from "neuroglancer/unstable/ui/default_clipboard_handling.js";
import { setDefaultInputEventBindings } from "neuroglancer/unstable/ui/default_input_event_bindings.js";
import { makeDefaultViewer } from "neuroglancer/unstable/ui/default_viewer.js";
import { bindTitle } from "neuroglancer/unstable/ui/title.js";
import { UrlHashBinding } from "neuroglancer/unstable/ui/url_hash_binding.js";
import type { Viewer } from "neuroglancer/unstable/viewer.js";
import { openSession } from "../proofreading.js";

export type NgViewer = Viewer;

export interface CreateViewerOptions {
  /**
   * Runs after the viewer exists but before the URL's state is applied: state keys added here
   * (`viewer.state.add`) are restored from `#!...` links. Added later, the hash binding would have
   * already skipped them and a shared panel state would be lost.
   */
  beforeStateRestore?: (viewer: NgViewer) => void;
}

/**
 * Full-page default viewer (layer panel, keyboard/mouse bindings, title binding, clipboard) with
 * Neuroglancer's own URL hash binding, so `#!{...}` states and shared links keep working unchanged.
 * This is Neuroglancer's `setupDefaultViewer` with a hook before the hash is read.
 */
export function createViewer(options: CreateViewerOptions = {}): NgViewer {
  const viewer = makeDefaultViewer();
  // Neuroglancer's own setup exposes the viewer as `window.viewer`; console recipes rely on it.
  Object.assign(window, { viewer });
  setDefaultInputEventBindings(viewer.inputEventBindings);
  const hashBinding = viewer.registerDisposer(new UrlHashBinding(viewer.state, viewer.dataSourceProvider.sharedKvStoreContext, {}));
  viewer.registerDisposer(
    hashBinding.parseError.changed.add(() => {
      const { value } = hashBinding.parseError;
      if (value !== undefined) showError(`Error parsing state: ${value.message}`);
    }),
  );
  options.beforeStateRestore?.(viewer);
  hashBinding.updateFromUrlHash();
  viewer.registerDisposer(bindTitle(viewer.title));
  bindDefaultCopyHandler(viewer);
  bindDefaultPasteHandler(viewer);
  return viewer;
}

/**
 * A hash of `#!` plus anything is a state (inline JSON or a URL to one) that the hash binding has
 * already taken over; fetching the server's default on top of it would clobber the shared view.
 */
export function hashCarriesState(hash: string): boolean {
  return hash.startsWith("#!") && hash.length > 2;
}

/**
 * Applies the server's default state unless the URL already carries one, then waits until every
 * layer has resolved its data sources. `stateUrl` is relative on purpose: the viewer may be
 * mounted under any path prefix.
 */
export async function loadInitialState(viewer: NgViewer, stateUrl: string): Promise<void> {
  // Decided before any await: once the viewer runs, its hash binding writes the (empty) state into the hash.
  const fromServer = !hashCarriesState(window.location.hash);
  // Under --auth-reads the state and every layer file are read with the session cookie of the stored token.
  await openSession();
  if (fromServer) {
    const state = await fetchState(stateUrl);
    viewer.state.restoreState(state);
  }
  await layersLoaded(viewer);
}

async function fetchState(stateUrl: string): Promise<object> {
  const response = await fetch(stateUrl, { headers: { accept: "application/json" } });
  if (!response.ok) {
    throw new Error(`GET ${stateUrl} answered ${response.status} ${response.statusText}`);
  }
  const state: unknown = await response.json();
  if (typeof state !== "object" || state === null || Array.isArray(state)) {
    throw new Error(`GET ${stateUrl} did not return a JSON object`);
  }
  return state;
}

/**
 * Resolves once each managed layer reports ready. A layer whose type is still being inferred
 * from its source has no user layer yet (`isReady()` is undefined), which counts as not ready.
 */
function layersLoaded(viewer: NgViewer): Promise<void> {
  const { layerManager } = viewer;
  const allReady = (): boolean => layerManager.managedLayers.every((layer) => layer.isReady() === true);
  if (allReady()) return Promise.resolve();
  return new Promise((resolve) => {
    const unsubscribe = layerManager.readyStateChanged.add(() => {
      if (!allReady()) return;
      unsubscribe();
      resolve();
    });
  });
}

/** Shows an error in Neuroglancer's status bar, where users already look for data-source errors. */
export function showError(message: string): void {
  StatusMessage.showMessage(message).setErrorMessage(message);
}
