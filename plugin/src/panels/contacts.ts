/**
 * ER contacts: a distance threshold that recolours organelles (in contact vs not) and counts, per
 * class, how many touch the ER at that threshold — the paper's Fig 5G, live while dragging.
 */
import { CLASSES } from "../../../server/pipeline/classes.js";
import { CONTACTS_LAYER, type ViewerBridge } from "../bridge.js";
import type { SegmentRow, SegmentTable } from "../client.js";
import { onSegmentTableChanged, segmentTable } from "../data.js";
import { Settings, booleanOr, numberOr } from "../settings.js";
import { contactCounts, inContact } from "../table.js";
import { Disposers, el, errorText } from "./dom.js";

export type HighlightMode = "class" | "single";

export interface ContactSettings {
  thresholdNm: number;
  /** Recolour organelles while this panel is open. */
  recolor: boolean;
  highlight: HighlightMode;
}

export const MAX_THRESHOLD_NM = 200;
export const HIGHLIGHT_COLOR = "#00e5ff";
export const NOT_IN_CONTACT_COLOR = "#5a5a5a";
const CLASS_COLOR = new Map(CLASSES.map((c) => [c.name, c.color]));
const REFERENCE_CLASS = "er";

function parseContacts(json: Record<string, unknown>, defaults: ContactSettings): ContactSettings {
  const t = numberOr(json.thresholdNm, defaults.thresholdNm);
  return {
    thresholdNm: Math.min(MAX_THRESHOLD_NM, Math.max(0, t)),
    recolor: booleanOr(json.recolor, defaults.recolor),
    highlight: json.highlight === "single" || json.highlight === "class" ? json.highlight : defaults.highlight,
  };
}

export function contactSettings(): Settings<ContactSettings> {
  return new Settings<ContactSettings>({ thresholdNm: 30, recolor: true, highlight: "class" }, parseContacts);
}

/**
 * The ER itself keeps its colour (it is what the others touch); anything without a measured
 * distance (the nucleus, say) counts as not in contact.
 */
export function contactColors(rows: readonly SegmentRow[], s: ContactSettings): Map<number, string> {
  const colors = new Map<number, string>();
  for (const row of rows) {
    const own = CLASS_COLOR.get(row.class) ?? NOT_IN_CONTACT_COLOR;
    if (row.class === REFERENCE_CLASS) colors.set(row.id, own);
    else if (inContact(row, s.thresholdNm)) colors.set(row.id, s.highlight === "single" ? HIGHLIGHT_COLOR : own);
    else colors.set(row.id, NOT_IN_CONTACT_COLOR);
  }
  return colors;
}

function classColors(rows: readonly SegmentRow[]): Map<number, string> {
  const colors = new Map<number, string>();
  for (const row of rows) {
    const c = CLASS_COLOR.get(row.class);
    if (c) colors.set(row.id, c);
  }
  return colors;
}

function percent(n: number, of: number): string {
  return of === 0 ? "–" : `${((100 * n) / of).toFixed(1)}%`;
}

export function mountContacts(body: HTMLElement, settings: Settings<ContactSettings>, bridge: ViewerBridge): { dispose(): void } {
  const disposers = new Disposers();
  body.classList.add("vemscope-contacts-body");

  const slider = el("input", { className: "vemscope-threshold", type: "range", title: "Contact distance threshold (nm)" });
  slider.min = "0";
  slider.max = String(MAX_THRESHOLD_NM);
  slider.step = "1";
  const value = el("span", { className: "vemscope-threshold-value" });
  const recolor = el("input", { className: "vemscope-recolor", type: "checkbox" });
  const highlight = el("select", { className: "vemscope-highlight" }, [
    el("option", { textContent: "class colour" }),
    el("option", { textContent: "highlight colour" }),
  ]);
  const [classOption, singleOption] = [highlight.options[0], highlight.options[1]];
  if (classOption) classOption.value = "class";
  if (singleOption) singleOption.value = "single";
  const layerToggle = el("input", { className: "vemscope-contacts-layer", type: "checkbox" });
  const counts = el("table", { className: "vemscope-counts" });
  const across = el("div", { className: "vemscope-across" });
  const status = el("div", { className: "vemscope-status", textContent: "loading segments…" });

  body.append(
    el("label", { className: "vemscope-row-control" }, ["distance ≤ ", slider, value]),
    el("label", { className: "vemscope-row-control" }, [recolor, " colour organelles: in contact in ", highlight, ", others grey"]),
    el("label", { className: "vemscope-row-control" }, [layerToggle, ` show "${CONTACTS_LAYER}" layer`]),
    counts,
    across,
    status,
  );

  let rows: SegmentRow[] | undefined;
  /** Whether our colours are on the layer and must be undone (on close or when switched off). */
  let recoloured = false;

  const applyColors = (): void => {
    if (!rows) return;
    const s = settings.value;
    if (s.recolor) recoloured = bridge.setSegmentColors(contactColors(rows, s)) || recoloured;
    else if (recoloured && bridge.setSegmentColors(classColors(rows))) recoloured = false;
  };

  const renderCounts = (): void => {
    if (!rows) return;
    const { thresholdNm } = settings.value;
    const perClass = contactCounts(rows, thresholdNm);
    const total = perClass.reduce((a, c) => ({ measured: a.measured + c.measured, inContact: a.inContact + c.inContact, across: a.across + c.acrossSections }), { measured: 0, inContact: 0, across: 0 });
    const line = (name: string, measured: number, touching: number, color: string | undefined): HTMLTableRowElement => {
      const bar = el("div", { className: "vemscope-bar" });
      bar.style.width = measured === 0 ? "0" : `${(100 * touching) / measured}%`;
      bar.style.background = color ?? HIGHLIGHT_COLOR;
      const tr = el("tr", {}, [
        el("td", { textContent: name }),
        el("td", { className: "number", textContent: String(touching) }),
        el("td", { className: "number", textContent: String(measured) }),
        el("td", { className: "number vemscope-percent", textContent: percent(touching, measured) }),
        el("td", { className: "vemscope-bar-cell" }, [bar]),
      ]);
      tr.dataset.class = name;
      return tr;
    };
    counts.replaceChildren(
      el("thead", {}, [el("tr", {}, ["class", "in contact", "measured", "%", ""].map((t) => el("th", { textContent: t })))]),
      el("tbody", {}, [...perClass.map((c) => line(c.class, c.measured, c.inContact, CLASS_COLOR.get(c.class))), line("all", total.measured, total.inContact, undefined)]),
    );
    across.textContent =
      total.inContact === 0
        ? "No contacts at this distance."
        : `${total.across} of ${total.inContact} contacts are resolved only across sections (nearest approach not within one section).`;
    across.dataset.across = String(total.across);
  };

  const sync = (): void => {
    const s = settings.value;
    slider.value = String(s.thresholdNm);
    value.textContent = ` ${s.thresholdNm} nm`;
    recolor.checked = s.recolor;
    highlight.value = s.highlight;
    highlight.disabled = !s.recolor;
    renderCounts();
    applyColors();
  };

  const syncLayerToggle = (): void => {
    const visible = bridge.layerVisible(CONTACTS_LAYER);
    layerToggle.disabled = visible === undefined;
    layerToggle.checked = visible === true;
  };

  disposers.listen(slider, "input", () => settings.update({ thresholdNm: slider.valueAsNumber }));
  disposers.listen(recolor, "change", () => settings.update({ recolor: recolor.checked }));
  disposers.listen(highlight, "change", () => settings.update({ highlight: highlight.value === "single" ? "single" : "class" }));
  disposers.listen(layerToggle, "change", () => bridge.setLayerVisible(CONTACTS_LAYER, layerToggle.checked));
  disposers.add(settings.subscribe(sync));
  disposers.add(
    bridge.onLayersChanged(() => {
      syncLayerToggle();
      // The organelles layer may load after this panel opened (state restored from a URL).
      if (settings.value.recolor && !recoloured) applyColors();
    }),
  );
  disposers.add(() => {
    if (rows && recoloured) bridge.setSegmentColors(classColors(rows));
  });
  syncLayerToggle();
  sync();

  let alive = true;
  disposers.add(() => (alive = false));
  const load = (table: SegmentTable): void => {
    rows = table.rows;
    status.textContent = `${table.rows.length} segments; distances from min_dist_er_nm.`;
    sync();
  };
  // Edits and re-measurements change rows and distances; counts and colours follow.
  disposers.add(onSegmentTableChanged(load));
  segmentTable().then(
    (table) => {
      if (alive) load(table);
    },
    (error: unknown) => {
      if (alive) status.textContent = `could not load segments: ${errorText(error)}`;
    },
  );
  return { dispose: () => disposers.dispose() };
}
