/**
 * alignStack as tasks over a work store (the out-of-core run, server/pipeline/blockwise/run.ts): the same bytes
 * as the in-memory stage, computed by any number of workers. The coordinator (alignOnTasks) holds no image data,
 * only the chain, the maps (affine + node field per section) and the report; every task reads only its sections.
 *
 *   align.coarse   bbox = [0, 0, z0]-[w, h, z1], halo z 1   features of z0 - 1 .. z1 - 1, match of each z against z - 1
 *   align.pair     bbox = [ref, z, 0]-[ref + 1, z + 1, 1]    match of z against an earlier reference (after a blank or
 *                                                            unmatched section: coarseAlign matches the last good one)
 *   align.measure  bbox = [0, 0, chain[t0]]-[w, h, chain[t1 - 1] + 1]   one mesh round's patch correlations of the
 *                                                            pairs ending at chain positions [t0, t1) (StackMeasurer.measureRange)
 *   align.render   bbox = [0, 0, z0]-[w, h, z1], whole z blocks of the output   the aligned blocks, pixels without source
 *
 * Every result goes to a key named in the task's params (under `align/<digest of inputs and settings>/`), in one
 * atomic put, with bytes that depend on the inputs alone; `resumable` marks the task done after it. A rerun of a
 * killed run skips the done tasks and reads their results where they left them. The coordinator writes each
 * round's maps to a key named by its content before the round's tasks run, and reads results back in chain order,
 * so neither the split into tasks nor their order changes a byte (measureRange reproduces the whole chain's FFT
 * pairing at range boundaries).
 */
import { createHash } from "node:crypto";
import type { Vec3 } from "../../../precomputed/array.js";
import type { Storage } from "../../../precomputed/storage.js";
import type { TaskKind } from "../../jobs/kinds.js";
import { badTask, intParam, isObject, objectParam, storageParam, strParam, workVolumeParam } from "../../jobs/params.js";
import { taskId, type BBox, type Json, type JsonObject, type StageExecutor, type Task } from "../../jobs/tasks.js";
import { resumable } from "../blockwise/resume.js";
import { WorkVolume, type WorkVolumeSpec } from "../blockwise/work-store.js";
import { PipelineError } from "../errors.js";
import type { Progress } from "../progress.js";
import { ElasticSolver, alignSettings, outsideFraction, renderSection, throughput, type AlignOptions, type AlignReport } from "./align.js";
import { CoarseChain, matchSections, sectionFeatures, type CoarseOptions, type PairMatch } from "./coarse.js";
import { StackMeasurer, type ElasticOptions, type PairShifts } from "./elastic.js";
import type { Features } from "./features.js";
import type { Section } from "./image.js";
import { makeGrid, type SectionMap } from "./map.js";
import { matchJson, packMaps, packShifts, parseMatch, readMaps, readMapsHeader, unpackShifts } from "./task-results.js";

export type { StageExecutor };

export interface AlignOnTasksOptions {
  /** Runs a stage's tasks (in process or on a Redis queue) and throws if any failed. */
  execute: StageExecutor;
  /** The work store. */
  work: Storage;
  /** Its location as tasks open it (ctx.storage(url)); every task's `params.work`. */
  workUrl: string;
  /** The unaligned stack in the work store (uint8 or uint16, any blockShape). */
  raw: WorkVolumeSpec;
  /** Output: same shape and type, any blockShape; written whole, block by block. */
  aligned: WorkVolumeSpec;
  options?: AlignOptions;
  /** Sections per coarse and measure task (default 16); render tasks take whole multiples of aligned.blockShape[2]. */
  sectionsPerTask?: number;
  /** Reserved: the stages report through the executor. */
  progress?: Progress;
  /** Named in error messages. */
  file?: string;
}

export const DEFAULT_SECTIONS_PER_TASK = 16;

const sha = (data: string | Uint8Array): string => createHash("sha256").update(data).digest("hex");
const toJson = (v: unknown): Json => JSON.parse(JSON.stringify(v)) as Json;

/** Pairs of a measure range per gap: those ending at chain positions [t0, t1). */
const pairCounts = (gaps: number, t0: number, t1: number): number[] => Array.from({ length: gaps }, (_, g) => Math.max(0, t1 - Math.max(t0, g + 1)));

// ---------------------------------------------------------------------------------------------------------------
// Task kinds

/** A plain object of numbers and booleans (resolved options), with the named fields present. */
function optionsOf<T>(task: Task, name: string, numbers: readonly string[], booleans: readonly string[] = []): T {
  const v = objectParam(task, name);
  for (const k of numbers) if (typeof v[k] !== "number") badTask(task, `params.${name}.${k} must be a number`);
  for (const k of booleans) if (typeof v[k] !== "boolean") badTask(task, `params.${name}.${k} must be a boolean`);
  for (const [k, x] of Object.entries(v)) if (typeof x !== "number" && typeof x !== "boolean") badTask(task, `params.${name}.${k} must be a number or a boolean`);
  return v as unknown as T;
}

const COARSE_FIELDS = ["featureMaxDim", "maxFeatures", "ratio", "ransacThreshold", "minInliers", "searchFraction", "seed"] as const;
const ELASTIC_NUMBERS = ["patch", "minRatio", "maxShift", "maxDeviation", "peakSigma", "maxOutside", "fadePx", "partialPower"] as const;
const ELASTIC_BOOLEANS = ["cubic", "jointMask", "overlapNorm"] as const;

const RAW_TYPES = ["uint8", "uint16"] as const;

async function readSection(vol: WorkVolume, z: number): Promise<Section> {
  const [w, h] = vol.spec.shape;
  return (await vol.readBox([0, 0, z], [w, h, 1])) as Section;
}

/** The z range of a task's bbox, inside the volume. */
function zRange(task: Task, spec: WorkVolumeSpec): [number, number] {
  const [w, h, depth] = spec.shape;
  const { start, end } = task.bbox;
  if (start[0] !== 0 || start[1] !== 0 || end[0] !== w || end[1] !== h || start[2] < 0 || end[2] > depth || start[2] >= end[2]) {
    badTask(task, `bbox must be [0, 0, z0]-[${w}, ${h}, z1] within ${spec.name} (${spec.shape.join("x")})`);
  }
  return [start[2], end[2]];
}

export const coarseKind: TaskKind = {
  name: "align.coarse",
  summary: "features of a range of sections and the match of each against the section before it",
  async run(task, ctx) {
    const store = storageParam(task, ctx);
    const raw = workVolumeParam(task, "raw", RAW_TYPES);
    const coarse = optionsOf<CoarseOptions>(task, "coarse", COARSE_FIELDS);
    const out = strParam(task, "out");
    const [w, h] = raw.shape;
    const [z0, z1] = zRange(task, raw);
    const vol = new WorkVolume(store, raw);
    let prev = z0 > 0 ? sectionFeatures(await readSection(vol, z0 - 1), w, h, coarse) : undefined;
    const sections: Json[] = [];
    for (let z = z0; z < z1; z++) {
      const features = sectionFeatures(await readSection(vol, z), w, h, coarse);
      // Only the section before is held: features are deterministic, so the next task recomputes them alike.
      sections.push({ blank: features === undefined, match: z > 0 && features && prev ? matchJson(matchSections(prev, features, w, h, z, coarse)) : null });
      prev = features;
    }
    await store.put(out, JSON.stringify({ z0, z1, sections }));
    return { outputs: [out] };
  },
};

export const pairKind: TaskKind = {
  name: "align.pair",
  summary: "the match of one section against an earlier reference section",
  async run(task, ctx) {
    const store = storageParam(task, ctx);
    const raw = workVolumeParam(task, "raw", RAW_TYPES);
    const coarse = optionsOf<CoarseOptions>(task, "coarse", COARSE_FIELDS);
    const out = strParam(task, "out");
    const [w, h, depth] = raw.shape;
    const [ref, z] = [task.bbox.start[0], task.bbox.start[1]];
    if (!(ref >= 0 && ref < z && z < depth) || task.bbox.end[0] !== ref + 1 || task.bbox.end[1] !== z + 1 || task.bbox.start[2] !== 0 || task.bbox.end[2] !== 1) {
      badTask(task, `bbox must be [ref, z, 0]-[ref + 1, z + 1, 1] with 0 <= ref < z < ${depth}`);
    }
    const vol = new WorkVolume(store, raw);
    const fr = sectionFeatures(await readSection(vol, ref), w, h, coarse);
    const fz = sectionFeatures(await readSection(vol, z), w, h, coarse);
    if (!fr || !fz) throw new PipelineError("stage_failed", `${task.id}: section ${fr ? z : ref} is blank, nothing to match`);
    await store.put(out, JSON.stringify(matchJson(matchSections(fr as Features, fz as Features, w, h, z, coarse))));
    return { outputs: [out] };
  },
};

export const measureKind: TaskKind = {
  name: "align.measure",
  summary: "one mesh round's patch correlations of the pairs ending in a range of the chain",
  async run(task, ctx) {
    const store = storageParam(task, ctx);
    const raw = workVolumeParam(task, "raw", RAW_TYPES);
    const correlation = optionsOf<ElasticOptions>(task, "correlation", ELASTIC_NUMBERS, ELASTIC_BOOLEANS);
    const mapsKey = strParam(task, "maps");
    const out = strParam(task, "out");
    const gaps = intParam(task, "gaps", 1);
    const t0 = intParam(task, "t0");
    const t1 = intParam(task, "t1", t0 + 1);
    const [w, h] = raw.shape;
    const grid = makeGrid(w, h, intParam(task, "stride", 1));
    const nodes = grid.nx * grid.ny;
    const header = await readMapsHeader(store, mapsKey);
    const { chain } = header;
    if (header.nodes !== nodes || header.depth !== raw.shape[2] || t1 > chain.length) badTask(task, `${mapsKey} does not fit this task (${header.depth} sections, ${header.nodes} nodes, chain of ${chain.length})`);
    const window = StackMeasurer.window(chain.length, gaps, t0, t1);
    let lists: PairShifts[][] = pairCounts(gaps, t0, t1).map(() => []);
    if (window) {
      const [lo, hi] = window;
      const zs = chain.slice(lo, hi);
      const maps = await readMaps(store, mapsKey, header, zs[0] as number, (zs[zs.length - 1] as number) + 1);
      const vol = new WorkVolume(store, raw);
      const sections = new Map<number, Section>();
      for (const z of zs) sections.set(z, await readSection(vol, z));
      const section = (z: number): Section => {
        const s = sections.get(z);
        if (!s) throw new RangeError(`${task.id}: section ${z} is outside the task's window`);
        return s;
      };
      lists = new StackMeasurer(correlation).measureRange(section, w, h, maps, chain, grid, gaps, t0, t1);
    }
    await store.put(out, packShifts(lists, nodes));
    return { outputs: [out] };
  },
};

export const renderKind: TaskKind = {
  name: "align.render",
  summary: "aligned output blocks of a range of whole z blocks, resampled once through the final maps",
  async run(task, ctx) {
    const store = storageParam(task, ctx);
    const raw = workVolumeParam(task, "raw", RAW_TYPES);
    const aligned = workVolumeParam(task, "aligned", RAW_TYPES);
    const mapsKey = strParam(task, "maps");
    const out = strParam(task, "out");
    const cubic = task.params.cubic !== false;
    if (aligned.type !== raw.type || aligned.shape.some((s, d) => s !== raw.shape[d])) badTask(task, "params.aligned must have the shape and type of params.raw");
    const [w, h, depth] = raw.shape;
    const [z0, z1] = zRange(task, aligned);
    const bz = aligned.blockShape[2];
    if (z0 % bz !== 0 || (z1 % bz !== 0 && z1 !== depth)) badTask(task, `bbox must cover whole z blocks of ${aligned.name} (${bz} sections)`);
    const grid = makeGrid(w, h, intParam(task, "stride", 1));
    const header = await readMapsHeader(store, mapsKey);
    if (header.nodes !== grid.nx * grid.ny || header.depth !== depth) badTask(task, `${mapsKey} does not fit this task`);
    const maps = await readMaps(store, mapsKey, header, z0, z1);
    const rawVol = new WorkVolume(store, raw);
    const outVol = new WorkVolume(store, aligned);
    const xs = new Float64Array(w);
    const ys = new Float64Array(w);
    const [bx, by] = aligned.blockShape;
    const outside: number[] = [];
    for (let s0 = z0; s0 < z1; s0 += bz) {
      const nz = Math.min(bz, depth - s0);
      // One z layer of output blocks at a time: the task holds bz sections.
      const slab = outVol.allocate(w * h * nz) as Uint8Array | Uint16Array;
      for (let k = 0; k < nz; k++) {
        const z = s0 + k;
        outside.push(renderSection(await readSection(rawVol, z), w, h, maps[z] as SectionMap, grid, slab.subarray(k * w * h, (k + 1) * w * h), xs, ys, cubic));
      }
      for (let y0 = 0; y0 < h; y0 += by) {
        for (let x0 = 0; x0 < w; x0 += bx) {
          const origin: Vec3 = [x0, y0, s0];
          const [ex, ey] = outVol.blockExtent(origin);
          const block = outVol.allocate(ex * ey * nz) as Uint8Array | Uint16Array;
          for (let k = 0; k < nz; k++) for (let y = 0; y < ey; y++) block.set(slab.subarray(k * w * h + (y0 + y) * w + x0, k * w * h + (y0 + y) * w + x0 + ex), (k * ey + y) * ex);
          await outVol.writeBlock(origin, block);
        }
      }
    }
    await store.put(out, JSON.stringify({ z0, z1, outside }));
    return { outputs: [out] };
  },
};

/** Each marks its task done in the work store after its outputs (resume.ts). */
export const alignKinds: TaskKind[] = [coarseKind, pairKind, measureKind, renderKind].map(resumable);

// ---------------------------------------------------------------------------------------------------------------
// Coordinator

const ranges = (from: number, to: number, step: number): [number, number][] => {
  const out: [number, number][] = [];
  for (let a = from; a < to; a += step) out.push([a, Math.min(to, a + step)]);
  return out;
};

function makeTask(kind: string, bbox: BBox, halo: Vec3, params: JsonObject): Task {
  return { id: taskId(kind, bbox), kind, bbox, halo, params };
}

const zBox = (w: number, h: number, z0: number, z1: number): BBox => ({ start: [0, 0, z0], end: [w, h, z1] });

async function readResult(store: Storage, key: string, file?: string): Promise<Uint8Array> {
  const bytes = await store.get(key);
  if (!bytes) throw new PipelineError("stage_failed", `alignment result ${key} is missing from the work store`, file);
  return bytes;
}

async function readJsonResult(store: Storage, key: string, file?: string): Promise<Record<string, Json>> {
  const bytes = await readResult(store, key, file);
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes).toString("utf8"));
  } catch {
    v = undefined;
  }
  if (!isObject(v)) throw new PipelineError("stage_failed", `alignment result ${key} is corrupt (not a JSON object)`, file);
  return v;
}

/**
 * alignStack over a work store with tasks: the aligned volume written block by block and the report, both the
 * same as alignStack's (but the timings).
 */
export async function alignOnTasks(o: AlignOnTasksOptions): Promise<AlignReport> {
  const { execute, work, raw, aligned, file } = o;
  const [w, h, depth] = raw.shape;
  if (raw.type !== "uint8" && raw.type !== "uint16") throw new PipelineError("bad_input", `alignment needs uint8 or uint16 sections, not ${raw.type}`, file);
  if (aligned.type !== raw.type || aligned.shape.some((s, d) => s !== raw.shape[d])) {
    throw new PipelineError("bad_argument", `aligned volume ${aligned.name} (${aligned.shape.join("x")} ${aligned.type}) must match ${raw.name} (${raw.shape.join("x")} ${raw.type})`, file);
  }
  const opts = o.options ?? {};
  const settings = alignSettings(w, h, opts);
  const cubic = opts.interpolation !== "linear";
  const per = Math.max(1, Math.floor(o.sectionsPerTask ?? DEFAULT_SECTIONS_PER_TASK));
  // Keys of other inputs or settings never mix with these (a work store kept for a resumed run).
  const prefix = `align/${sha(JSON.stringify({ v: 1, raw, aligned, settings, cubic })).slice(0, 16)}`;
  const base: JsonObject = { work: o.workUrl, raw: toJson(raw), prefix };
  const coarseParams = toJson(settings.coarse);

  // 1. Coarse: every section's match against the one before, then the chain; follow-up pairs where the
  // reference is an earlier section (after blank or unmatched ones), one round per missing pair.
  const t0 = performance.now();
  const coarseRanges = ranges(0, depth, per);
  const coarseKey = (z0: number, z1: number): string => `${prefix}/coarse/${z0}-${z1}.json`;
  await execute(
    "align: coarse",
    coarseRanges.map(([z0, z1]) => makeTask("align.coarse", zBox(w, h, z0, z1), [0, 0, 1], { ...base, coarse: coarseParams, out: coarseKey(z0, z1) })),
  );
  const blank: boolean[] = [];
  const previous: (PairMatch | undefined)[] = [];
  for (const [z0, z1] of coarseRanges) {
    const key = coarseKey(z0, z1);
    const r = await readJsonResult(work, key, file);
    const sections = r.sections;
    if (!Array.isArray(sections) || sections.length !== z1 - z0) throw new PipelineError("stage_failed", `alignment result ${key} is corrupt (expected ${z1 - z0} sections)`, file);
    for (const s of sections) {
      if (!isObject(s) || typeof s.blank !== "boolean") throw new PipelineError("stage_failed", `alignment result ${key} is corrupt (bad section)`, file);
      const m = s.match === null ? undefined : parseMatch(s.match);
      if (s.match !== null && !m) throw new PipelineError("stage_failed", `alignment result ${key} is corrupt (bad match)`, file);
      blank.push(s.blank);
      previous.push(m);
    }
  }
  const chain = new CoarseChain(settings.coarse);
  const followUps = new Map<string, PairMatch>();
  for (let z = 0; z < depth; ) {
    const isBlank = blank[z] as boolean;
    const ref = chain.referenceOf(z, isBlank);
    let match: PairMatch | undefined;
    if (ref === z - 1) {
      match = previous[z];
      if (!match) throw new PipelineError("stage_failed", `alignment result ${coarseKey(z - (z % per), Math.min(depth, z - (z % per) + per))} is corrupt (no match of section ${z} against ${z - 1})`, file);
    } else if (ref !== undefined) {
      const key = `${prefix}/pair/${ref}-${z}.json`;
      match = followUps.get(key);
      if (!match) {
        await execute("align: coarse pairs", [makeTask("align.pair", { start: [ref, z, 0], end: [ref + 1, z + 1, 1] }, [0, 0, 0], { ...base, coarse: coarseParams, out: key })]);
        const m = parseMatch(await readJsonResult(work, key, file));
        if (!m) throw new PipelineError("stage_failed", `alignment result ${key} is corrupt (bad match)`, file);
        followUps.set(key, m);
        continue;
      }
    }
    chain.add(z, isBlank, match);
    z++;
  }
  const t1 = performance.now();

  // 2. Elastic rounds: the maps go to the work store, tasks measure ranges of the chain, the mesh is solved here.
  const solver = new ElasticSolver(chain.sections, settings);
  const { gaps, n } = { gaps: solver.gaps, n: settings.n };
  const length = solver.chain.length;
  const measureRanges = ranges(1, length, per);
  for (let it = 0; it < solver.rounds; it++) {
    const blob = packMaps(solver.maps, solver.chain, n);
    const tag = `${it}-${sha(blob).slice(0, 16)}`;
    const mapsKey = `${prefix}/maps/${tag}.bin`;
    await work.put(mapsKey, blob);
    const shiftsKey = (b0: number, b1: number): string => `${prefix}/shifts/${tag}/${b0}-${b1}.bin`;
    const tasks = measureRanges.map(([b0, b1]) => {
      const c = solver.chain;
      const win = StackMeasurer.window(length, gaps, b0, b1) ?? [b0, b1];
      const halo = Math.max((c[b0] as number) - (c[win[0]] as number), (c[win[1] - 1] as number) - (c[b1 - 1] as number), 0);
      return makeTask("align.measure", zBox(w, h, c[b0] as number, (c[b1 - 1] as number) + 1), [0, 0, halo], {
        ...base,
        maps: mapsKey,
        iteration: it,
        t0: b0,
        t1: b1,
        gaps,
        stride: settings.stride,
        correlation: toJson(settings.correlation),
        out: shiftsKey(b0, b1),
      });
    });
    await execute(`align: ${settings.elasticMode ? "elastic" : "refine"} ${it + 1}/${solver.rounds}`, tasks);
    const measured: PairShifts[][] = Array.from({ length: gaps }, () => []);
    for (const [b0, b1] of measureRanges) {
      const key = shiftsKey(b0, b1);
      unpackShifts(await readResult(work, key, file), key, gaps, n, pairCounts(gaps, b0, b1), file).forEach((list, g) => (measured[g] as PairShifts[]).push(...list));
    }
    solver.apply(it, measured);
  }
  solver.finish();
  const t2 = performance.now();
  const report = solver.report(w, h, { coarse: (t1 - t0) / 1000, elastic: (t2 - t1) / 1000, render: 0, total: 0 });

  // 3. Render: whole z blocks of the output per task, through the final maps.
  const blob = packMaps(solver.maps, solver.chain, n);
  const mapsKey = `${prefix}/maps/final-${sha(blob).slice(0, 16)}.bin`;
  await work.put(mapsKey, blob);
  const bz = aligned.blockShape[2];
  const renderRanges = ranges(0, depth, Math.max(1, Math.ceil(per / bz)) * bz);
  const renderKey = (z0: number, z1: number): string => `${prefix}/render/${aligned.name}/${z0}-${z1}.json`;
  await execute(
    "align: render",
    renderRanges.map(([z0, z1]) =>
      makeTask("align.render", zBox(w, h, z0, z1), [0, 0, 0], { ...base, aligned: toJson(aligned), maps: mapsKey, stride: settings.stride, cubic, out: renderKey(z0, z1) }),
    ),
  );
  for (const [z0, z1] of renderRanges) {
    const key = renderKey(z0, z1);
    const r = await readJsonResult(work, key, file);
    const outside = r.outside;
    if (!Array.isArray(outside) || outside.length !== z1 - z0 || !outside.every((v) => typeof v === "number")) throw new PipelineError("stage_failed", `alignment result ${key} is corrupt (expected ${z1 - z0} counts)`, file);
    outside.forEach((v, k) => ((report.sections[z0 + k] as AlignReport["sections"][number]).outsideFraction = outsideFraction(v as number, w, h)));
  }
  const t3 = performance.now();
  const s = report.seconds;
  s.render = (t3 - t2) / 1000;
  s.total = s.coarse + s.elastic + s.render;
  report.megapixelsPerSecond = throughput(raw.shape, s.total);
  return report;
}
