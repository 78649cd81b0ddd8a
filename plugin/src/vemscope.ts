/** vemscope's additions to the viewer: the morphometrics, ER-contact, proofreading and share panels. */
import "./panels/panels.css";
import { makeBridge } from "./ng/bridge.js";
import { registerPanels, type PanelHandle } from "./ng/panels.js";
import type { NgViewer } from "./ng/viewer.js";
import { Live } from "./live.js";
import { contactSettings, mountContacts } from "./panels/contacts.js";
import { morphometricsSettings, mountMorphometrics } from "./panels/morphometrics.js";
import { mountProofreading, proofreadingSettings } from "./panels/proofreading.js";
import { mountShare } from "./panels/share.js";
import { Settings } from "./settings.js";

export const PANEL_IDS = {
  morphometrics: "vemscope-morphometrics",
  contacts: "vemscope-contacts",
  proofreading: "vemscope-proofreading",
  share: "vemscope-share",
} as const;

export type PanelName = keyof typeof PANEL_IDS;

export interface Installed {
  panels: Map<string, PanelHandle>;
  /** Follows the server's segmentation versions; start it once the initial state has loaded. */
  live: Live;
}

/** Must run before the URL's state is applied, so panel state in a link is restored. */
export function installPanels(viewer: NgViewer): Installed {
  const bridge = makeBridge(viewer);
  const morphometrics = morphometricsSettings();
  const contacts = contactSettings();
  const proofreading = proofreadingSettings();
  // Lives outside the panel: every open viewer follows new versions, whether or not it proofreads.
  const live = new Live(bridge, () => proofreading.value.follow);
  // The share panel has no settings yet; an empty Settings keeps it on the same state path.
  const share = new Settings<Record<string, never>>({}, () => ({}));
  const panels = registerPanels(viewer, [
    {
      key: "morphometrics",
      elementId: PANEL_IDS.morphometrics,
      title: "Morphometrics",
      buttonText: "Table",
      buttonTitle: "morphometrics table",
      // A wide table reads best along the bottom, under all four views.
      location: { side: "bottom", size: 260, minSize: 120, row: 0, col: 0 },
      settings: morphometrics,
      mount: (body) => mountMorphometrics(body, morphometrics, bridge),
    },
    {
      key: "contacts",
      elementId: PANEL_IDS.contacts,
      title: "ER contacts",
      buttonText: "ER",
      buttonTitle: "ER-contact panel",
      location: { side: "right", size: 320, row: 1 },
      settings: contacts,
      mount: (body) => mountContacts(body, contacts, bridge),
    },
    {
      key: "proofreading",
      elementId: PANEL_IDS.proofreading,
      title: "Proofreading",
      buttonText: "Edit",
      buttonTitle: "proofreading panel",
      location: { side: "right", size: 340, row: 3 },
      settings: proofreading,
      mount: (body) => mountProofreading(body, proofreading, bridge, live),
    },
    {
      key: "share",
      elementId: PANEL_IDS.share,
      title: "Share",
      buttonText: "Share",
      buttonTitle: "share panel",
      location: { side: "right", size: 320, row: 2 },
      settings: share,
      mount: (body) => mountShare(body, bridge),
    },
  ]);
  return { panels, live };
}
