/**
 * Building blocks of the figure panels (figures.ts): per-class numbers, axes, histograms, box plots and percent
 * bars as Vega-Lite specs in one house style.
 */
import type { TopLevelSpec } from "vega-lite";
import { CLASSES, classByName, type OrganelleClass } from "./classes.js";
import type { InstanceRow } from "./report.js";
import { type NumericKey, column, type ContactTally } from "./summary.js";

export interface FigureOptions {
  /** ER contact threshold in nm (minimum surface distance <= this counts as a contact). */
  contactNm: number;
}

export interface FigurePanel {
  /** File stem, e.g. "fig3e-mito-volume". */
  name: string;
  title: string;
  caption(opts: FigureOptions): string;
  build(rows: readonly InstanceRow[], opts: FigureOptions): TopLevelSpec | undefined;
}

// ---------------------------------------------------------------------------------------------------
// Per-class numbers (shared with report/summary.json)

const CONFIG: NonNullable<TopLevelSpec["config"]> = {
  background: "white",
  font: "Helvetica, Arial, sans-serif",
  padding: 12,
  title: { fontSize: 15, subtitleFontSize: 11, subtitleColor: "#444", anchor: "start", offset: 10 },
  axis: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: "normal", gridColor: "#eee", titlePadding: 8 },
  legend: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: "normal" },
  view: { stroke: "#ccc" },
  text: { fontSize: 11 },
};

export const WIDTH = 380;
export const HEIGHT = 240;
export const NM3_PER_UM3 = 1e9;
export const NM2_PER_UM2 = 1e6;

export function head(title: string, subtitle: string[]) {
  return { title: { text: title, subtitle }, config: CONFIG };
}

/** Log axes only when values are positive and span at least two decades; otherwise linear reads better. */
function spansDecades(values: readonly number[]): boolean {
  if (!values.length) return false;
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  return lo > 0 && hi / lo >= 100;
}

/**
 * Log scale fitted to the data (not extended to whole decades, which wastes most of the axis) with
 * ticks at 1-2-5 per decade, or at decades alone when there are many: the default log ticks label
 * almost every minor tick and crowd the axis.
 */
function logAxis(values: readonly number[]) {
  const lo = Math.min(...values) / 1.2;
  const hi = Math.max(...values) * 1.2;
  const k0 = Math.floor(Math.log10(lo));
  const k1 = Math.ceil(Math.log10(hi));
  const mantissas = k1 - k0 <= 3 ? [1, 2, 5] : [1];
  const ticks: number[] = [];
  for (let k = k0; k <= k1; k++) {
    for (const m of mantissas) {
      // Rounded through toPrecision so 0.1 * 3 style float noise never reaches a label.
      const t = Number((m * 10 ** k).toPrecision(6));
      if (t >= lo && t <= hi) ticks.push(t);
    }
  }
  return {
    scale: { type: "log" as const, domain: [lo, hi], nice: false },
    axis: { values: ticks, format: "~g" },
  };
}

/** Position channel pieces for a quantitative axis: fitted log axis when values span decades. */
export function quantAxis(values: readonly number[], zero: boolean) {
  // Few ticks: Vega's headless text-width estimate is generous, so dense labels get thinned unevenly.
  return spansDecades(values) ? logAxis(values) : { scale: { zero }, axis: { tickCount: 6 } };
}

export function fmt(v: number | null, digits = 1): string {
  return v === null ? "–" : v.toFixed(digits);
}

function classesNamed(names: readonly string[]): OrganelleClass[] {
  const out: OrganelleClass[] = [];
  for (const n of names) {
    const c = classByName(n);
    if (c) out.push(c);
  }
  return out;
}

export const CONTACT_CLASSES = CLASSES.filter((c) => c.measuresContacts);
export const SMALL_ORGANELLES = classesNamed(["ld", "lyso", "perox"]);
const MITO = classByName("mito");
const MITO_COLOR = MITO?.color ?? "#e6194b";
export const BRANCH_GROUPS = [
  { key: "unbranched", color: MITO_COLOR, shape: "circle" },
  { key: "branched", color: "#6b0f24", shape: "triangle-up" },
] as const;

export function mitoRows(rows: readonly InstanceRow[]): InstanceRow[] {
  return rows.filter((r) => r.class === "mito");
}

export function branchGroup(r: InstanceRow): "branched" | "unbranched" | undefined {
  return r.branched === true ? "branched" : r.branched === false ? "unbranched" : undefined;
}

interface Bin {
  lo: number;
  hi: number;
  count: number;
}

/** Equal-width bins, in log10 space when `log`, so a log axis shows bars of equal width. */
function histogram(values: readonly number[], log: boolean): Bin[] {
  const t = log ? Math.log10 : (v: number) => v;
  const inv = log ? (v: number) => 10 ** v : (v: number) => v;
  const tv = values.map(t);
  let lo = Math.min(...tv);
  let hi = Math.max(...tv);
  if (hi === lo) {
    // One distinct value still deserves a visible bar centred on it.
    const pad = log ? 0.05 : Math.abs(lo) * 0.05 || 0.5;
    lo -= pad;
    hi += pad;
  }
  const k = Math.min(30, Math.max(6, Math.ceil(Math.sqrt(values.length))));
  const step = (hi - lo) / k;
  const counts = new Array<number>(k).fill(0);
  for (const v of tv) counts[Math.min(k - 1, Math.floor((v - lo) / step))]++;
  return counts.map((count, i) => ({ lo: inv(lo + i * step), hi: inv(lo + (i + 1) * step), count }));
}

// ---------------------------------------------------------------------------------------------------
// Panel factories

interface Metric {
  key: NumericKey;
  /** Converts nm units to the plotted unit. */
  scale: number;
  axis: string;
}

export const VOLUME: Metric = { key: "volume_nm3", scale: NM3_PER_UM3, axis: "volume (µm³)" };
export const SURFACE: Metric = { key: "surface_nm2", scale: NM2_PER_UM2, axis: "surface area (µm²)" };
export const VSA: Metric = { key: "vsa_nm", scale: 1, axis: "volume / surface area (nm)" };
export const SPHERICITY: Metric = { key: "sphericity", scale: 1, axis: "sphericity (dimensionless)" };
export const LENGTH: Metric = { key: "length_nm", scale: 1, axis: "length (nm)" };
export const WIDTH_M: Metric = { key: "width_nm", scale: 1, axis: "width (nm)" };

export function values(rows: readonly InstanceRow[], m: Metric): number[] {
  return column(rows, m.key).map((v) => v / m.scale);
}

export function mitoHistogram(name: string, title: string, m: Metric, what: string): FigurePanel {
  return {
    name,
    title,
    caption: () => `Distribution of ${what} over all mitochondria of this dataset (bins equal-width on the axis shown).`,
    build(rows) {
      const v = values(mitoRows(rows), m);
      if (!v.length) return undefined;
      const log = spansDecades(v);
      return {
        ...head(title, [`n = ${v.length} mitochondria${log ? "; log axis" : ""}`]),
        width: WIDTH,
        height: HEIGHT,
        data: { values: histogram(v, log) },
        mark: { type: "bar", color: MITO_COLOR, stroke: "white", strokeWidth: 0.5 },
        encoding: {
          x: { field: "lo", type: "quantitative", title: m.axis, ...quantAxis(v, false) },
          x2: { field: "hi" },
          y: { field: "count", type: "quantitative", title: "mitochondria (count)", scale: { nice: 5, zero: true }, axis: { tickCount: 5 } },
          // Without a baseline Vega-Lite reads x/x2 + y as horizontal bars of fixed height.
          y2: { datum: 0 },
        },
      };
    },
  };
}

/** Box plot per class (whiskers 1.5 IQR, outliers as points), classes in registry order. */
export function perClassBox(
  name: string,
  title: string,
  classes: readonly OrganelleClass[],
  m: Metric,
  what: string,
  pick: (rows: readonly InstanceRow[], opts: FigureOptions) => readonly InstanceRow[] = (r) => r,
  note = "",
): FigurePanel {
  return {
    name,
    title,
    caption: () =>
      `${what} of ${classes.map((c) => `${c.label}s`).join(", ")} as box plots (median, quartiles, 1.5 IQR whiskers, outliers)${note}.`,
    build(rows, opts) {
      const data: { cls: string; v: number }[] = [];
      const present: OrganelleClass[] = [];
      const counts: string[] = [];
      const picked = pick(rows, opts);
      for (const c of classes) {
        const v = values(picked.filter((r) => r.class === c.name), m);
        if (!v.length) continue;
        present.push(c);
        counts.push(`${c.label} ${v.length}`);
        for (const x of v) data.push({ cls: c.label, v: x });
      }
      if (!data.length) return undefined;
      const all = data.map((d) => d.v);
      return {
        ...head(title, [`n: ${counts.join(", ")}${spansDecades(all) ? "; log axis" : ""}`]),
        width: Math.max(WIDTH, 110 * present.length),
        height: HEIGHT,
        data: { values: data },
        mark: { type: "boxplot", extent: 1.5, size: 36 },
        encoding: {
          x: { field: "cls", type: "nominal", title: null, sort: present.map((c) => c.label), axis: { labelAngle: 0 } },
          y: { field: "v", type: "quantitative", title: m.axis, ...quantAxis(all, false) },
          color: {
            field: "cls",
            type: "nominal",
            legend: null,
            scale: { domain: present.map((c) => c.label), range: present.map((c) => c.color) },
          },
        },
      };
    },
  };
}

export interface PercentBar {
  group: string;
  color: string;
  percent: number;
  n: number;
  inContact: number;
  label: string;
  /** Height of the label: above the bar or the paper's tick, whichever is higher, so they never overlap. */
  labelAt: number;
  paper?: number;
}

/** Bars on a fixed 0-100 % axis; the layer named "bars" is what tests and readers measure. */
export function percentBars(title: string, subtitle: string[], bars: readonly PercentBar[], yTitle: string): TopLevelSpec {
  const withPaper = bars.filter((b) => b.paper !== undefined);
  const order = bars.map((b) => b.group);
  const x = { field: "group", type: "nominal", title: null, sort: order, axis: { labelAngle: 0 } } as const;
  return {
    ...head(title, subtitle),
    width: Math.max(300, 95 * bars.length),
    height: HEIGHT,
    data: { values: bars.map((b) => ({ ...b })) },
    layer: [
      {
        name: "bars",
        mark: { type: "bar", size: 44 },
        encoding: {
          x,
          y: { field: "percent", type: "quantitative", title: yTitle, scale: { domain: [0, 100] } },
          color: { field: "group", type: "nominal", legend: null, scale: { domain: order, range: bars.map((b) => b.color) } },
        },
      },
      {
        mark: { type: "text", dy: -8, fontSize: 10 },
        encoding: { x, y: { field: "labelAt", type: "quantitative" }, text: { field: "label", type: "nominal" } },
      },
      ...(withPaper.length
        ? [
            {
              name: "paper",
              transform: [{ filter: "isValid(datum.paper)" }],
              mark: { type: "tick" as const, color: "black", thickness: 2, size: 54 },
              encoding: { x, y: { field: "paper", type: "quantitative" as const } },
            },
          ]
        : []),
    ],
  };
}

export function bar(group: string, color: string, t: ContactTally, paper?: number): PercentBar | undefined {
  if (t.percent === null) return undefined;
  const label = `${t.percent.toFixed(1)}% (${t.inContact}/${t.measured})`;
  const labelAt = Math.max(t.percent, paper ?? 0);
  return { group, color, percent: t.percent, n: t.measured, inContact: t.inContact, label, labelAt, paper };
}

