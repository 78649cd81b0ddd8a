/**
 * The paper's figure panels (Jiang et al. 2021, Fig 3E-G, 4C-F, 5E-G) regenerated from this dataset's
 * instance rows as Vega-Lite specs, rendered server-side to SVG. Panels are a registry; each one returns
 * `undefined` when the columns it needs are unmeasured, so a run before morphometrics simply has fewer.
 */
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import * as path from "node:path";
import { compileFunction } from "node:vm";
import type * as VegaApi from "vega";
import type * as VegaLiteApi from "vega-lite";
import type { TopLevelSpec } from "vega-lite";
import type { OrganelleClass } from "./classes.js";
import type { InstanceRow } from "./report.js";
import { PAPER_CONTACT_PERCENT, PAPER_CONTACT_NM, PAPER_UNBRANCHED_LENGTH_NM, PAPER_UNBRANCHED_LW, num, column, contactTally, mitoSummary } from "./summary.js";
import { WIDTH, HEIGHT, NM3_PER_UM3, NM2_PER_UM2, head, quantAxis, fmt, CONTACT_CLASSES, SMALL_ORGANELLES, BRANCH_GROUPS, mitoRows, branchGroup, VOLUME, SURFACE, VSA, SPHERICITY, LENGTH, WIDTH_M, values, mitoHistogram, perClassBox, percentBars, bar, type FigureOptions, type FigurePanel, type PercentBar } from "./figure-charts.js";

export type { FigureOptions, FigurePanel };

export interface RenderedFigure {
  name: string;
  title: string;
  caption: string;
  svg: string;
}

// ---------------------------------------------------------------------------------------------------
// The registry

const FIG3F_TITLE = "Fig 3F — mitochondrial length vs width";
const fig3f: FigurePanel = {
  name: "fig3f-mito-length-width",
  title: FIG3F_TITLE,
  caption: () =>
    "Each point is one mitochondrion: centreline length (tip to tip) against width (2 x median distance to surface along it), branched vs unbranched.",
  build(rows, opts) {
    const pts: { length: number; width: number; group: string }[] = [];
    for (const r of mitoRows(rows)) {
      const l = num(r, "length_nm");
      const w = num(r, "width_nm");
      if (l === undefined || w === undefined) continue;
      pts.push({ length: l, width: w, group: branchGroup(r) ?? "not classified" });
    }
    if (!pts.length) return undefined;
    const s = mitoSummary(mitoRows(rows), opts.contactNm);
    const groups = [...BRANCH_GROUPS, { key: "not classified", color: "#999999", shape: "square" }].filter((g) =>
      pts.some((p) => p.group === g.key),
    );
    return {
      ...head(FIG3F_TITLE, [
        `n = ${pts.length}; unbranched mean length ${fmt(s.unbranched_mean_length_nm)} nm, length/width ${fmt(s.unbranched_mean_length_width, 2)}`,
        `(Jiang et al. 2021: ${PAPER_UNBRANCHED_LENGTH_NM} nm, ${PAPER_UNBRANCHED_LW})`,
      ]),
      width: WIDTH,
      height: HEIGHT,
      data: { values: pts },
      mark: { type: "point", filled: true, opacity: 0.7, size: 30 },
      encoding: {
        x: { field: "length", type: "quantitative", title: LENGTH.axis, ...quantAxis(pts.map((p) => p.length), false) },
        y: { field: "width", type: "quantitative", title: WIDTH_M.axis, ...quantAxis(pts.map((p) => p.width), false) },
        color: {
          field: "group",
          type: "nominal",
          title: null,
          scale: { domain: groups.map((g) => g.key), range: groups.map((g) => g.color) },
        },
        shape: {
          field: "group",
          type: "nominal",
          title: null,
          scale: { domain: groups.map((g) => g.key), range: groups.map((g) => g.shape) },
        },
      },
    };
  },
};

const FIG3G_TITLE = "Fig 3G — branched vs unbranched mitochondria";
const fig3g: FigurePanel = {
  name: "fig3g-mito-branched-vs-unbranched",
  title: FIG3G_TITLE,
  caption: () => "Volume, length, length/width and sphericity of branched vs unbranched mitochondria (box plots).",
  build(rows, opts) {
    const classified = mitoRows(rows).filter((r) => branchGroup(r) !== undefined);
    const metrics: { axis: string; get: (r: InstanceRow) => number | undefined }[] = [
      {
        axis: VOLUME.axis,
        get: (r) => {
          const v = num(r, "volume_nm3");
          return v === undefined ? undefined : v / NM3_PER_UM3;
        },
      },
      { axis: LENGTH.axis, get: (r) => num(r, "length_nm") },
      {
        axis: "length / width",
        get: (r) => {
          const l = num(r, "length_nm");
          const w = num(r, "width_nm");
          return l !== undefined && w !== undefined && w > 0 ? l / w : undefined;
        },
      },
      { axis: SPHERICITY.axis, get: (r) => num(r, "sphericity") },
    ];
    const present = BRANCH_GROUPS.filter((g) => classified.some((r) => branchGroup(r) === g.key));
    const views = [];
    for (const m of metrics) {
      const data: { group: string; v: number }[] = [];
      for (const r of classified) {
        const v = m.get(r);
        const g = branchGroup(r);
        if (g !== undefined && v !== undefined && Number.isFinite(v)) data.push({ group: g, v });
      }
      if (!data.length) continue;
      views.push({
        width: 46 * present.length + 40,
        height: HEIGHT,
        data: { values: data },
        mark: { type: "boxplot" as const, extent: 1.5, size: 26 },
        encoding: {
          x: { field: "group", type: "nominal" as const, title: null, sort: present.map((g) => g.key), axis: { labelAngle: -35 } },
          y: { field: "v", type: "quantitative" as const, title: m.axis, ...quantAxis(data.map((d) => d.v), false) },
          color: {
            field: "group",
            type: "nominal" as const,
            legend: null,
            scale: { domain: present.map((g) => g.key), range: present.map((g) => g.color) },
          },
        },
      });
    }
    if (!views.length) return undefined;
    const s = mitoSummary(classified, opts.contactNm);
    return {
      ...head(FIG3G_TITLE, [`n = ${s.branch_measured}: ${s.branched_count} branched (${fmt(s.branched_percent)}%), ${s.unbranched_count} unbranched`]),
      hconcat: views,
      spacing: 28,
    };
  },
};

const FIG5E_TITLE = "Fig 5E — minimum distance to ER";
const fig5e: FigurePanel = {
  name: "fig5e-min-dist-er",
  title: FIG5E_TITLE,
  caption: (o) =>
    `Cumulative distribution of each organelle's minimum surface distance to the ER; the dashed line is the ${o.contactNm} nm contact threshold, where each curve reads off that class's contact %.`,
  build(rows, opts) {
    const pts: { cls: string; d: number; pct: number }[] = [];
    const present: OrganelleClass[] = [];
    const counts: string[] = [];
    for (const c of CONTACT_CLASSES) {
      const d = column(rows.filter((r) => r.class === c.name), "min_dist_er_nm").sort((a, b) => a - b);
      if (!d.length) continue;
      present.push(c);
      counts.push(`${c.label} ${d.length}`);
      pts.push({ cls: c.label, d: d[0], pct: 0 });
      for (let i = 0; i < d.length; i++) {
        // Ties collapse to one step at their last index, so each x has exactly F(x).
        if (i + 1 < d.length && d[i + 1] === d[i]) continue;
        pts.push({ cls: c.label, d: d[i], pct: (100 * (i + 1)) / d.length });
      }
    }
    if (!pts.length) return undefined;
    const max = Math.max(opts.contactNm, ...pts.map((p) => p.d));
    // Distances include exact zeros (touching), which a log axis cannot show; symlog keeps 0 and the
    // sub-threshold range readable while still fitting microns of separation.
    const symlog = max > 10 * Math.max(opts.contactNm, 10);
    const ticks = [0, 10, 30, 100, 300, 1000, 3000, 10000, 30000, 100000].filter((t) => t <= max * 1.05);
    const x = {
      field: "d",
      type: "quantitative",
      title: "minimum distance to ER (nm)",
      scale: symlog ? { type: "symlog" as const, constant: 10 } : { zero: true },
      axis: symlog ? { values: ticks } : {},
    } as const;
    return {
      ...head(FIG5E_TITLE, [`n: ${counts.join(", ")}${symlog ? "; symlog axis" : ""}`]),
      width: WIDTH,
      height: HEIGHT,
      layer: [
        {
          data: { values: pts },
          mark: { type: "line", interpolate: "step-after", strokeWidth: 2 },
          encoding: {
            x,
            y: { field: "pct", type: "quantitative", title: "organelles within distance (%)", scale: { domain: [0, 100] } },
            color: {
              field: "cls",
              type: "nominal",
              title: null,
              sort: present.map((c) => c.label),
              scale: { domain: present.map((c) => c.label), range: present.map((c) => c.color) },
            },
          },
        },
        {
          data: { values: [{ d: opts.contactNm, label: `${opts.contactNm} nm` }] },
          layer: [
            { mark: { type: "rule", strokeDash: [4, 3], color: "#555" }, encoding: { x } },
            {
              mark: { type: "text", align: "left", dx: 4, y: 8, color: "#555" },
              encoding: { x, text: { field: "label", type: "nominal" } },
            },
          ],
        },
      ],
    };
  },
};

const FIG5F_TITLE = "Fig 5F — organelles in contact with ER";
const fig5f: FigurePanel = {
  name: "fig5f-contact-percent",
  title: FIG5F_TITLE,
  caption: (o) =>
    `Percentage of each class whose minimum distance to the ER is <= ${o.contactNm} nm (over organelles with a measured distance)${
      o.contactNm === PAPER_CONTACT_NM ? "; black ticks are the values of Jiang et al. 2021" : ""
    }.`,
  build(rows, opts) {
    const bars: PercentBar[] = [];
    for (const c of CONTACT_CLASSES) {
      const paper = opts.contactNm === PAPER_CONTACT_NM ? PAPER_CONTACT_PERCENT[c.name] : undefined;
      const b = bar(c.label, c.color, contactTally(rows.filter((r) => r.class === c.name), opts.contactNm), paper);
      if (b) bars.push(b);
    }
    if (!bars.length) return undefined;
    const ref = bars.some((b) => b.paper !== undefined) ? ["black ticks: Jiang et al. 2021"] : [];
    return percentBars(FIG5F_TITLE, [`contact: minimum distance to ER <= ${opts.contactNm} nm`, ...ref], bars, "in contact with ER (%)");
  },
};

const FIG5GBRANCHED_TITLE = "Fig 5G — ER contact, branched vs unbranched";
const fig5gBranched: FigurePanel = {
  name: "fig5g-mito-contact-branched",
  title: FIG5GBRANCHED_TITLE,
  caption: (o) => `Percentage of branched and of unbranched mitochondria within ${o.contactNm} nm of the ER.`,
  build(rows, opts) {
    const bars: PercentBar[] = [];
    for (const g of BRANCH_GROUPS) {
      const b = bar(g.key, g.color, contactTally(mitoRows(rows).filter((r) => branchGroup(r) === g.key), opts.contactNm));
      if (b) bars.push(b);
    }
    if (!bars.length) return undefined;
    return percentBars(FIG5GBRANCHED_TITLE, [`contact: minimum distance to ER <= ${opts.contactNm} nm`], bars, "in contact with ER (%)");
  },
};

const inContact = (rows: readonly InstanceRow[], opts: FigureOptions) =>
  rows.filter((r) => {
    const d = num(r, "min_dist_er_nm");
    const a = num(r, "contact_area_nm2");
    return d !== undefined && d <= opts.contactNm && a !== undefined && a > 0;
  });

export const FIGURES: readonly FigurePanel[] = [
  mitoHistogram("fig3e-mito-volume", "Fig 3E — mitochondrial volume", VOLUME, "volume"),
  mitoHistogram("fig3e-mito-surface", "Fig 3E — mitochondrial surface area", SURFACE, "surface area"),
  mitoHistogram("fig3e-mito-sphericity", "Fig 3E — mitochondrial sphericity", SPHERICITY, "sphericity, pi^(1/3) (6V)^(2/3) / A"),
  fig3f,
  fig3g,
  perClassBox("fig4c-volume", "Fig 4C — organelle volume", SMALL_ORGANELLES, VOLUME, "Volume"),
  perClassBox("fig4d-surface", "Fig 4D — organelle surface area", SMALL_ORGANELLES, SURFACE, "Surface area"),
  perClassBox("fig4e-vsa", "Fig 4E — organelle volume / surface area", SMALL_ORGANELLES, VSA, "Volume to surface ratio"),
  perClassBox("fig4f-sphericity", "Fig 4F — organelle sphericity", SMALL_ORGANELLES, SPHERICITY, "Sphericity"),
  fig5e,
  fig5f,
  fig5gBranched,
  perClassBox(
    "fig5g-contact-area",
    "Fig 5G — ER contact area",
    CONTACT_CLASSES,
    { key: "contact_area_nm2", scale: NM2_PER_UM2, axis: "contact area with ER (µm²)" },
    "Area of organelle surface within the contact threshold of the ER",
    inContact,
    ", over organelles in contact with a non-zero measured area",
  ),
];

// ---------------------------------------------------------------------------------------------------
// Rendering

interface Renderer {
  vega: typeof VegaApi;
  compile: typeof VegaLiteApi.compile;
}

/**
 * Vega and Vega-Lite from the single-file bundles both packages ship (build/vega.js, build/vega-lite.min.js; the
 * same releases as their module builds), instead of their ES module graphs: those are ~150 modules, each resolved
 * and loaded through the TypeScript loader's hooks, ~1.4 s of CPU per run against ~0.25 s for the two bundles.
 * Both are UMD; each is evaluated as CommonJS with its own `module` (not through a module loader, which may run a
 * UMD bundle in its browser branch, as vitest's does), and the Vega-Lite bundle's require("vega") gets the Vega
 * bundle (its module build would load the whole graph). Falls back to the module builds where a bundle is missing.
 */
async function loadRenderer(): Promise<Renderer> {
  const require = createRequire(import.meta.url);
  const vegaBundle = path.join(path.dirname(require.resolve("vega")), "vega.js");
  const vlBundle = path.join(path.dirname(require.resolve("vega-lite")), "vega-lite.min.js");
  if (!existsSync(vegaBundle) || !existsSync(vlBundle)) {
    const [vega, vl] = await Promise.all([import("vega"), import("vega-lite")]);
    return { vega, compile: vl.compile };
  }
  const vega = evaluateBundle(vegaBundle, {}) as typeof VegaApi;
  const { compile } = evaluateBundle(vlBundle, { vega }) as Partial<typeof VegaLiteApi>;
  if (typeof vega.View !== "function" || compile === undefined) throw new Error(`the Vega bundles ${vegaBundle}, ${vlBundle} lack View or compile()`);
  return { vega, compile };
}

/** Runs a UMD bundle's CommonJS branch; `deps` answers its require() calls. */
function evaluateBundle(file: string, deps: Record<string, unknown>): unknown {
  const module = { exports: {} };
  const requireDep = (id: string): unknown => {
    if (!(id in deps)) throw new Error(`${file} asked for '${id}'`);
    return deps[id];
  };
  compileFunction(readFileSync(file, "utf8"), ["exports", "module", "require"], { filename: file })(module.exports, module, requireDep);
  return module.exports;
}

let renderer: Promise<Renderer> | undefined;

async function toSvg(spec: TopLevelSpec): Promise<string> {
  const { vega, compile } = await (renderer ??= loadRenderer());
  // Vega and Vega-Lite warn on the console by default; a library stays silent.
  const logger = vega.logger(vega.None);
  const view = new vega.View(vega.parse(compile(spec, { logger }).spec), { renderer: "none", logger });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Every registry panel that has data, rendered in registry order (sequentially, so output is stable). */
export async function renderFigures(rows: readonly InstanceRow[], opts: FigureOptions): Promise<RenderedFigure[]> {
  if (!Number.isFinite(opts.contactNm) || opts.contactNm < 0) {
    throw new RangeError(`contact threshold must be >= 0 nm, got ${opts.contactNm}`);
  }
  const out: RenderedFigure[] = [];
  for (const panel of FIGURES) {
    const spec = panel.build(rows, opts);
    if (spec === undefined) continue;
    out.push({ name: panel.name, title: panel.title, caption: panel.caption(opts), svg: await toSvg(spec) });
  }
  return out;
}

export { figureIndexHtml } from "./figures-job.js";
