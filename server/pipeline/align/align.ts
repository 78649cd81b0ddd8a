/**
 * alignStack: coarse (features + RANSAC affine) then elastic (patch correlation on a node grid,
 * spring mesh across all sections), then one bilinear resampling per section of the raw data through
 * the composed map. Slice 0 stays fixed. Everything the aligner could not do is flagged in the report.
 */
import type { Volume } from "../../../precomputed/array.js";
import { PipelineError } from "../errors.js";
import { silentProgress, type Progress } from "../progress.js";
import { IDENTITY, compose, decompose, fitAffine, type Affine } from "./affine.js";
import { DEFAULT_COARSE, coarseAlign, type CoarseOptions, type CoarseSection, type SectionStatus } from "./coarse.js";
import { DEFAULT_ELASTIC, StackMeasurer, type ElasticOptions, type PairShifts } from "./elastic.js";
import { sectionView, type Section } from "./image.js";
import { makeGrid, nodeX, nodeY, renderRows, type Grid, type SectionMap } from "./map.js";
import { solveMesh, type MeshLink } from "./mesh.js";

export type Stack = Volume<Uint8Array | Uint16Array>;

export interface AlignOptions {
  progress?: Progress;
  /** false: coarse affine refined by patch correlation, no elastic part (for comparison). */
  elastic?: boolean;
  stride?: number;
  /** Measure -> solve rounds; later rounds measure the residual left by the previous solution. */
  iterations?: number;
  /** In-plane spring stiffness relative to one data spring. */
  lambda?: number;
  /** Bending (second-difference) stiffness relative to one data spring: lets no-data nodes follow the field linearly. */
  bending?: number;
  /**
   * Elastic links from each section to the `reach` sections before it (1 = neighbours only). Longer links
   * measure the same displacement by an independent route, so pair errors no longer add up along z as a
   * random walk of single steps. Default 1: on Lucchi at 15-nm steps, sections 30 nm apart correlate too poorly
   * (loop closure 1-2 px) and k +- 2 links made the evaluation worse (README, "Alignment").
   */
  reach?: number;
  /** Weight of a link spanning g sections relative to a neighbour link: reachWeight^(g - 1). */
  reachWeight?: number;
  /** Final resampling: Catmull-Rom (default) or bilinear. */
  interpolation?: "cubic" | "linear";
  coarse?: Partial<CoarseOptions>;
  correlation?: Partial<ElasticOptions>;
  /** Named in error messages. */
  file?: string;
}

export interface SectionReport {
  index: number;
  status: SectionStatus;
  /** e.g. "blank", "no_matches", "elastic_fallback": what was substituted is in `message`. */
  flags: string[];
  message?: string;
  matchedTo: number;
  featureMatches: number;
  inliers: number;
  ransacRmsPx: number;
  rotationDeg: number;
  scale: number;
  translationPx: [number, number];
  /** Nodes whose correlation with the previous good section passed all tests, last round. */
  elasticNodes: number;
  elasticNodeFraction: number;
  /** Largest elastic displacement on top of the affine, px. */
  maxElasticPx: number;
  /** Output pixels with no source data (filled with 0). */
  outsideFraction: number;
}

export interface AlignReport {
  version: 1;
  shape: [number, number, number];
  mode: "elastic" | "affine";
  grid: { stride: number; patch: number; nodes: [number, number] };
  sections: SectionReport[];
  flagged: number[];
  seconds: { coarse: number; elastic: number; render: number; total: number };
  megapixelsPerSecond: number;
}

export interface AlignModel {
  grid: Grid;
  maps: SectionMap[];
  report: AlignReport;
}

export async function alignStack(image: Stack, opts: AlignOptions = {}): Promise<{ aligned: Stack; report: AlignReport; model: AlignModel }> {
  const model = await estimateAlignment(image, opts);
  const t0 = performance.now();
  const aligned = await renderStack(image, model, opts.progress ?? silentProgress, opts.interpolation !== "linear");
  const r = model.report;
  r.seconds.render = (performance.now() - t0) / 1000;
  r.seconds.total = r.seconds.coarse + r.seconds.elastic + r.seconds.render;
  r.megapixelsPerSecond = throughput(image.shape, r.seconds.total);
  return { aligned, report: r, model };
}

function tick(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** The settings estimateAlignment derives from the options and the section size. */
export interface AlignSettings {
  elasticMode: boolean;
  correlation: ElasticOptions;
  coarse: CoarseOptions;
  stride: number;
  iterations: number;
  lambda: number;
  bending: number;
  reach: number;
  reachWeight: number;
  grid: Grid;
  /** Nodes per section. */
  n: number;
}

export function alignSettings(w: number, h: number, opts: AlignOptions = {}): AlignSettings {
  const elasticMode = opts.elastic !== false;
  const correlation: ElasticOptions = { ...DEFAULT_ELASTIC, ...opts.correlation };
  // Patches larger than the section cannot be placed; shrink to the largest power of two that fits.
  while (correlation.patch > 32 && correlation.patch > Math.min(w, h)) correlation.patch /= 2;
  correlation.maxShift = Math.min(correlation.maxShift, correlation.patch / 4);
  const stride = opts.stride ?? 32;
  const grid = makeGrid(w, h, stride);
  return {
    elasticMode,
    correlation,
    coarse: { ...DEFAULT_COARSE, ...opts.coarse },
    stride,
    iterations: opts.iterations ?? (elasticMode ? 3 : 2),
    // No stretching springs by default: they pull every section's field towards zero gradient, so along a long
    // stack they fight the correction of accumulated affine error (32 sections: 0.82 -> 0.54 px exact error).
    lambda: opts.lambda ?? 0,
    // Stiffer than the 0.05 it was: over 32 sections 0.05 -> 0.2 -> 0.6 -> 2 gave 0.37 -> 0.28 -> 0.26 -> 0.31 px exact error.
    bending: opts.bending ?? 0.5,
    reach: opts.reach ?? 1,
    reachWeight: opts.reachWeight ?? 1,
    grid,
    n: grid.nx * grid.ny,
  };
}

/**
 * The elastic rounds' state between measurements: the maps, what each section was flagged with, and the chain
 * of registered sections that the measurements run along. The in-memory path and the task coordinator
 * (tasks.ts) both drive it: measure along `chain` with `gaps`, then `apply`.
 */
export class ElasticSolver {
  readonly maps: SectionMap[];
  readonly flags: string[][];
  readonly messages: (string | undefined)[];
  readonly good: boolean[];
  /** Consecutive registered sections: the neighbour links. */
  readonly pairs: [number, number][] = [];
  /** The registered sections in order. */
  readonly chain: number[];
  readonly nodeCount: number[];
  readonly gaps: number;
  private readonly nodeXY: Float64Array;
  private readonly pinned = new Set<number>([0]);
  private readonly depth: number;

  constructor(
    readonly coarse: CoarseSection[],
    readonly settings: AlignSettings,
  ) {
    const depth = (this.depth = coarse.length);
    const { grid, n } = settings;
    this.maps = coarse.map((c) => ({ affine: c.affine }));
    this.flags = coarse.map((c) => (c.status === "blank" || c.status === "no_matches" ? [c.status] : []));
    this.messages = coarse.map((c) => c.message);
    // Elastic links join consecutive sections that were registered; a skipped section follows its reference.
    this.good = coarse.map((c, z) => c.status === "ok" || (z === 0 && c.status === "reference"));
    let last = -1;
    for (let z = 0; z < depth; z++) {
      if (!this.good[z]) continue;
      if (last >= 0) this.pairs.push([last, z]);
      last = z;
    }
    this.nodeCount = new Array<number>(depth).fill(0);
    this.nodeXY = new Float64Array(2 * n);
    for (let j = 0; j < grid.ny; j++) for (let i = 0; i < grid.nx; i++) this.nodeXY.set([nodeX(grid, i), nodeY(grid, j)], 2 * (j * grid.nx + i));
    this.chain = this.good.flatMap((g, z) => (g ? [z] : []));
    this.gaps = settings.elasticMode ? Math.max(1, Math.min(settings.reach, this.chain.length - 1)) : 1;
  }

  /** Rounds to run: none without a pair. */
  get rounds(): number {
    return this.pairs.length > 0 ? this.settings.iterations : 0;
  }

  /** One round's measurements (StackMeasurer.measure along `chain` with `gaps`) -> links -> new maps. */
  apply(it: number, measured: PairShifts[][]): void {
    const { maps, flags, messages, pairs, chain, nodeCount, depth } = this;
    const { elasticMode, n, correlation, reachWeight, grid, lambda, bending } = this.settings;
    const links: MeshLink[] = [];
    const affineSteps: (Affine | undefined)[] = new Array<Affine | undefined>(depth).fill(undefined);
    const shifts = measured[0] as PairShifts[];
    // Links over 2.. gaps sections: only where enough patches matched (a long link with too little data says nothing).
    for (let g = 2; g <= this.gaps && elasticMode; g++) {
      (measured[g - 1] as PairShifts[]).forEach((s, c) => {
        if (s.valid >= Math.max(4, 0.05 * n)) links.push(linkFor(chain[c] as number, chain[c + g] as number, s, maps, n, true, reachWeight ** (g - 1), correlation.partialPower));
      });
    }
    pairs.forEach(([a, b], q) => {
      const s = shifts[q] as PairShifts;
      nodeCount[b] = s.valid;
      const enough = s.valid >= Math.max(4, 0.05 * n);
      if (!enough && it === 0) {
        flags[b]?.push("elastic_fallback");
        messages[b] = `only ${s.valid} of ${n} patches matched section ${a}: affine only, elastic shape of section ${a} kept`;
      }
      if (elasticMode) links.push(linkFor(a, b, s, maps, n, enough, 1, correlation.partialPower));
      else affineSteps[b] = enough ? fitDisplacementAffine(this.nodeXY, s) : undefined;
    });
    if (elasticMode) {
      const fields = solveMesh(grid, depth, links, this.pinned, { lambda, bending });
      for (let z = 0; z < depth; z++) if (this.good[z]) (maps[z] as SectionMap).field = fields[z];
    } else {
      // Chain the per-pair corrections so section b moves with everything a moved by.
      const cumulative: Affine[] = new Array<Affine>(depth).fill(IDENTITY);
      for (const [a, b] of pairs) {
        const step = affineSteps[b] ?? IDENTITY;
        const ca = cumulative[a] as Affine;
        cumulative[b] = [ca[0] + step[0] - 1, ca[1] + step[1], ca[2] + step[2], ca[3] + step[3], ca[4] + step[4] - 1, ca[5] + step[5]];
      }
      for (let z = 0; z < depth; z++) if (this.good[z]) (maps[z] as SectionMap).affine = compose((maps[z] as SectionMap).affine, cumulative[z] as Affine);
    }
  }

  /** After the last round: sections that were skipped follow the last good section before them (or slice 0). */
  finish(): void {
    const { maps, good } = this;
    let prevGood = 0;
    for (let z = 0; z < this.depth; z++) {
      if (good[z]) prevGood = z;
      else if (z > 0) maps[z] = { affine: (maps[prevGood] as SectionMap).affine, field: (maps[prevGood] as SectionMap).field };
    }
  }

  /** The report (outsideFraction 0 until rendered; seconds as given). */
  report(w: number, h: number, seconds: AlignReport["seconds"]): AlignReport {
    const { maps, flags, messages, nodeCount, coarse } = this;
    const { n, elasticMode, stride, correlation, grid } = this.settings;
    const sections: SectionReport[] = coarse.map((c, z) => {
      const map = maps[z] as SectionMap;
      const d = decompose(map.affine);
      let maxElastic = 0;
      if (map.field) for (let p = 0; p < n; p++) maxElastic = Math.max(maxElastic, Math.hypot(map.field[2 * p] as number, map.field[2 * p + 1] as number));
      return {
        index: z,
        status: c.status,
        flags: flags[z] ?? [],
        ...(messages[z] ? { message: messages[z] } : {}),
        matchedTo: c.matchedTo,
        featureMatches: c.matches,
        inliers: c.inliers,
        ransacRmsPx: round(c.rmsPx),
        rotationDeg: round(d.rotationDeg),
        scale: round(d.scale, 5),
        translationPx: [round(map.affine[2]), round(map.affine[5])],
        elasticNodes: nodeCount[z] ?? 0,
        elasticNodeFraction: round((nodeCount[z] ?? 0) / n),
        maxElasticPx: round(maxElastic),
        outsideFraction: 0,
      };
    });
    return {
      version: 1,
      shape: [w, h, this.depth],
      mode: elasticMode ? "elastic" : "affine",
      grid: { stride, patch: correlation.patch, nodes: [grid.nx, grid.ny] },
      sections,
      flagged: sections.filter((s) => s.flags.length > 0).map((s) => s.index),
      seconds,
      megapixelsPerSecond: 0,
    };
  }
}

export async function estimateAlignment(image: Stack, opts: AlignOptions = {}): Promise<AlignModel> {
  const [w, h, depth] = image.shape;
  const progress = opts.progress ?? silentProgress;
  if (w * h * depth !== image.data.length || depth < 1) {
    throw new PipelineError("bad_input", `stack shape ${w}x${h}x${depth} does not match ${image.data.length} voxels`, opts.file);
  }
  const settings = alignSettings(w, h, opts);
  const { grid, iterations } = settings;

  const t0 = performance.now();
  const coarse = await coarseAlign(image.data, w, h, depth, settings.coarse, progress);
  const t1 = performance.now();

  const solver = new ElasticSolver(coarse, settings);
  const measurer = new StackMeasurer(settings.correlation);
  progress.start(settings.elasticMode ? "align: elastic" : "align: refine", iterations * grid.ny, "node rows");
  for (let it = 0; it < solver.rounds; it++) {
    const measured = measurer.measure(image.data, w, h, solver.maps, solver.chain, grid, (row) => progress.update(it * grid.ny + row), solver.gaps);
    await tick();
    solver.apply(it, measured);
  }
  solver.finish();
  progress.end();
  const t2 = performance.now();
  const report = solver.report(w, h, { coarse: (t1 - t0) / 1000, elastic: (t2 - t1) / 1000, render: 0, total: (t2 - t0) / 1000 });
  return { grid, maps: solver.maps, report };
}

/** A section's report value for `outside` output pixels without source data. */
export function outsideFraction(outside: number, w: number, h: number): number {
  return round(outside / (w * h), 4);
}

/** Mega-voxels per second of the whole run, as the report gives it. */
export function throughput(shape: readonly number[], seconds: number): number {
  return ((shape[0] as number) * (shape[1] as number) * (shape[2] as number)) / 1e6 / Math.max(1e-9, seconds);
}

/** Band of output rows rendered per renderRows call. */
export const RENDER_BAND = 64;

/** One output section through its map, in row bands; returns the pixels that had no source. */
export function renderSection(src: Section, w: number, h: number, map: SectionMap, grid: Grid, dst: Uint8Array | Uint16Array, xs: Float64Array, ys: Float64Array, cubic: boolean): number {
  let outside = 0;
  for (let y = 0; y < h; y += RENDER_BAND) outside += renderRows(src, w, h, w, map, grid, y, Math.min(h, y + RENDER_BAND), dst, xs, ys, 0, cubic);
  return outside;
}

function round(v: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

/** Data springs for one pair: measured residual + current relative displacement; identity shape when too few. */
function linkFor(a: number, b: number, s: PairShifts, maps: SectionMap[], n: number, enough: boolean, weight = 1, partialPower = 0): MeshLink {
  const fa = (maps[a] as SectionMap).field;
  const fb = (maps[b] as SectionMap).field;
  const dx = new Float32Array(n);
  const dy = new Float32Array(n);
  const wt = new Float32Array(n);
  for (let p = 0; p < n; p++) {
    const rel = (f: Float32Array | undefined, c: number): number => (f ? (f[2 * p + c] as number) : 0);
    if (enough && !s.ok[p]) continue;
    const rx = enough ? (s.dx[p] as number) : 0;
    const ry = enough ? (s.dy[p] as number) : 0;
    dx[p] = rel(fb, 0) - rel(fa, 0) + rx;
    dy[p] = rel(fb, 1) - rel(fa, 1) + ry;
    // The fallback ties b's shape to a's everywhere, weakly, so it neither drifts nor distorts.
    wt[p] = enough ? weight * (partialPower > 0 ? (s.support[p] as number) ** partialPower : 1) : 0.1;
  }
  if (!enough) {
    // Relative displacement from before this round stays as it was (no new information).
    for (let p = 0; p < n; p++) {
      dx[p] = (fb ? (fb[2 * p] as number) : 0) - (fa ? (fa[2 * p] as number) : 0);
      dy[p] = (fb ? (fb[2 * p + 1] as number) : 0) - (fa ? (fa[2 * p + 1] as number) : 0);
    }
  }
  return { a, b, dx, dy, w: wt };
}

/** Affine p -> p + d(p) fitted to the valid node residuals, with two rounds of outlier trimming. */
function fitDisplacementAffine(nodeXY: Float64Array, s: PairShifts): Affine | undefined {
  const n = s.ok.length;
  const dst = new Float64Array(2 * n);
  for (let p = 0; p < n; p++) {
    dst[2 * p] = (nodeXY[2 * p] as number) + (s.dx[p] as number);
    dst[2 * p + 1] = (nodeXY[2 * p + 1] as number) + (s.dy[p] as number);
  }
  let idx: number[] = [];
  for (let p = 0; p < n; p++) if (s.ok[p]) idx.push(p);
  let t = fitAffine(nodeXY, dst, undefined, idx);
  for (let round = 0; round < 2 && t; round++) {
    const tt: Affine = t;
    const res = idx.map((p) => Math.hypot(tt[0] * (nodeXY[2 * p] as number) + tt[1] * (nodeXY[2 * p + 1] as number) + tt[2] - (dst[2 * p] as number), tt[3] * (nodeXY[2 * p] as number) + tt[4] * (nodeXY[2 * p + 1] as number) + tt[5] - (dst[2 * p + 1] as number)));
    const sorted = [...res].sort((x, y) => x - y);
    const cut = Math.max(0.5, 3 * (sorted[sorted.length >> 1] ?? 0));
    idx = idx.filter((_, k) => (res[k] as number) <= cut);
    t = fitAffine(nodeXY, dst, undefined, idx) ?? t;
  }
  return t;
}

/**
 * One resampling per section, in row bands; counts pixels that had no source. Cubic by default: a bilinear
 * sample blurs by an amount that depends on the sub-pixel phase, which differs from section to section.
 */
export async function renderStack(image: Stack, model: AlignModel, progress: Progress, cubic = true): Promise<Stack> {
  const [w, h, depth] = image.shape;
  const out = image.data instanceof Uint16Array ? new Uint16Array(image.data.length) : new Uint8Array(image.data.length);
  const xs = new Float64Array(w);
  const ys = new Float64Array(w);
  progress.start("align: render", depth, "sections");
  for (let z = 0; z < depth; z++) {
    const src: Section = sectionView(image.data, w, h, z);
    const dst = out.subarray(z * w * h, (z + 1) * w * h);
    const outside = renderSection(src, w, h, model.maps[z] as SectionMap, model.grid, dst, xs, ys, cubic);
    const s = model.report.sections[z];
    if (s) s.outsideFraction = outsideFraction(outside, w, h);
    progress.update(z + 1);
    await tick();
  }
  progress.end();
  return { data: out, shape: [w, h, depth] };
}
