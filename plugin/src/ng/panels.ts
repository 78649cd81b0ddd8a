/**
 * vemscope panels as real Neuroglancer side panels: they dock, drag, resize and close like the
 * layer list, and their location (open/closed, side, size) plus their settings are one key of the
 * viewer state, so they survive reloads and travel in URLs and shared states.
 */
import { SidePanel, type SidePanelManager } from "neuroglancer/unstable/ui/side_panel.js";
import { TrackableSidePanelLocation, type SidePanelLocation, DEFAULT_SIDE_PANEL_LOCATION } from "neuroglancer/unstable/ui/side_panel_location.js";
import { NullarySignal } from "neuroglancer/unstable/util/signal.js";
import type { Trackable } from "neuroglancer/unstable/util/trackable.js";
import { CheckboxIcon } from "neuroglancer/unstable/widget/checkbox_icon.js";
import type { Settings } from "../settings.js";
import type { NgViewer } from "./viewer.js";

/** The viewer-state key holding every vemscope panel: `{"vemscope": {"morphometrics": {...}}}`. */
export const STATE_KEY = "vemscope";

export interface MountedPanel {
  dispose(): void;
}

export interface PanelSpec {
  /** Key under `vemscope` in the viewer state. */
  key: string;
  /** id of the panel's root element; external checks find panels by it. */
  elementId: string;
  title: string;
  /** Short top-bar label. */
  buttonText: string;
  buttonTitle: string;
  location: Partial<SidePanelLocation>;
  /** Narrowed to what the state needs, so any `Settings<T>` fits whatever its shape. */
  settings: Pick<Settings<object>, "toJSON" | "restore" | "reset" | "subscribe">;
  /** Builds the panel's content into `body`; called each time the panel opens. */
  mount(body: HTMLElement): MountedPanel;
}

class PanelState implements Trackable {
  readonly changed = new NullarySignal();
  readonly location: TrackableSidePanelLocation;

  constructor(private readonly spec: PanelSpec) {
    this.location = new TrackableSidePanelLocation({ ...DEFAULT_SIDE_PANEL_LOCATION, ...spec.location });
    this.location.changed.add(this.changed.dispatch);
    spec.settings.subscribe(() => this.changed.dispatch());
  }

  toJSON(): Record<string, unknown> | undefined {
    const location: Record<string, unknown> = this.location.toJSON();
    const settings = this.spec.settings.toJSON();
    const json = settings === undefined ? location : { ...location, settings };
    return Object.keys(json).length > 0 ? json : undefined;
  }

  restoreState(json: unknown): void {
    const obj = typeof json === "object" && json !== null && !Array.isArray(json) ? (json as Record<string, unknown>) : {};
    this.location.restoreState(obj);
    this.spec.settings.restore(obj.settings);
  }

  reset(): void {
    this.location.reset();
    this.spec.settings.reset();
  }
}

/** `vemscope` in the viewer state; omitted from the URL entirely while every panel is at its defaults. */
class PluginState implements Trackable {
  readonly changed = new NullarySignal();
  readonly children = new Map<string, PanelState>();

  add(key: string, state: PanelState): void {
    this.children.set(key, state);
    state.changed.add(this.changed.dispatch);
  }

  toJSON(): Record<string, unknown> | undefined {
    const json: Record<string, unknown> = {};
    for (const [key, child] of this.children) {
      const value = child.toJSON();
      if (value !== undefined) json[key] = value;
    }
    return Object.keys(json).length > 0 ? json : undefined;
  }

  restoreState(json: unknown): void {
    const obj = typeof json === "object" && json !== null && !Array.isArray(json) ? (json as Record<string, unknown>) : {};
    for (const [key, child] of this.children) {
      if (key in obj) child.restoreState(obj[key]);
      else child.reset();
    }
  }

  reset(): void {
    for (const child of this.children.values()) child.reset();
  }
}

class VemscopeSidePanel extends SidePanel {
  constructor(manager: SidePanelManager, spec: PanelSpec, location: TrackableSidePanelLocation) {
    super(manager, location);
    this.element.id = spec.elementId;
    this.element.classList.add("vemscope-panel");
    this.addTitleBar({ title: spec.title });
    const body = document.createElement("div");
    body.classList.add("vemscope-panel-body");
    this.addBody(body);
    const mounted = spec.mount(body);
    this.registerDisposer(() => mounted.dispose());
  }
}

export interface PanelHandle {
  open(): void;
  close(): void;
  isOpen(): boolean;
}

/**
 * Registers the panels with the viewer's SidePanelManager, puts their state under `vemscope`, and
 * adds a toggle per panel to the top bar (Neuroglancer's own CheckboxIcon, as its layer-list toggle).
 * Must run before the URL's state is applied (see createViewer's `beforeStateRestore`).
 */
export function registerPanels(viewer: NgViewer, specs: readonly PanelSpec[]): Map<string, PanelHandle> {
  const pluginState = new PluginState();
  const handles = new Map<string, PanelHandle>();
  const topRow = viewer.element.querySelector(".neuroglancer-viewer-top-row");
  // Neuroglancer's right-hand top-bar icons (layer list, selection...) follow; ours go before them.
  const anchor = topRow ? ([...topRow.children].find((c) => c.classList.contains("neuroglancer-checkbox-icon")) ?? null) : null;
  for (const spec of specs) {
    const state = new PanelState(spec);
    pluginState.add(spec.key, state);
    viewer.registerDisposer(
      viewer.sidePanelManager.registerPanel({
        location: state.location,
        makePanel: () => new VemscopeSidePanel(viewer.sidePanelManager, spec, state.location),
      }),
    );
    const toggle = viewer.registerDisposer(
      new CheckboxIcon(state.location.watchableVisible, {
        text: spec.buttonText,
        backgroundScheme: "dark",
        enableTitle: `Show ${spec.buttonTitle}`,
        disableTitle: `Hide ${spec.buttonTitle}`,
      }),
    );
    toggle.element.id = `${spec.elementId}-toggle`;
    toggle.element.classList.add("vemscope-toggle");
    topRow?.insertBefore(toggle.element, anchor);
    handles.set(spec.key, {
      open: () => (state.location.visible = true),
      close: () => (state.location.visible = false),
      isOpen: () => state.location.visible,
    });
  }
  viewer.state.add(STATE_KEY, pluginState);
  return handles;
}
