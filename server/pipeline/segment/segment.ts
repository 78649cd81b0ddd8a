/**
 * 2D segmentation of a stack, section by section: z-score the whole section (as in training), cut it into
 * overlapping tiles, infer them on the runner (worker pool or in-process), blend the tiles' softmax
 * probabilities with the tiling weights, decide each pixel's class (thresholds, argmax), give fragments below
 * their class's minimum area to their surroundings and write class codes. Only a few sections' float buffers and
 * a bounded number of tiles are alive at once, so memory does not grow with the stack.
 */
import { availableParallelism } from "node:os";
import type { Volume } from "../../../precomputed/array.js";
import { PipelineError } from "../errors.js";
import { silentProgress, type Progress } from "../progress.js";
import { accumulate, divideByWeights, sectionPart, SumBuffers } from "./blend.js";
import { removeSmallAreas } from "./cleanup.js";
import { decideSection, thresholdsByChannel } from "./decide.js";
import { checkMinAreas, checkThresholds, DEFAULT_MODEL_PATH, loadModelInfo, type ModelInfo, type PixelRange } from "./model.js";
import { zscored } from "./normalise.js";
import { createRunner, defaultRunnerOptions, type RunnerOptions, type TileRunner } from "./pool.js";
import { RowResampler } from "./resample.js";
import { ResampledTiles } from "./resampled-tiles.js";
import { extractTile, planTiles, tilesOf, type Tile, type TilePlan } from "./tiling.js";
import { checkTta, runAugmented, TTA_VIEWS, type TtaMode } from "./tta.js";

export { DEFAULT_MODEL_PATH } from "./model.js";
export { decide, decideSection } from "./decide.js";

/**
 * Tiles of <= 1024 with >= 192 px overlap. With the GPU-trained model (which uses more context than the first CPU
 * one), 512/128 changed 0.31-0.42% of pixels against an untiled pass on 1024 x 768 real sections, 768/192
 * 0.04-0.09%. 1024 (session 11) infers sections up to 1024 x 1024 whole, with no overlap to infer twice: the
 * per-pixel cost of the network is the same at 768^2 and 1024^2 tiles, so 1024 x 1024 sections segment ~1.4x
 * faster than as four 608^2 tiles (Lucchi 1024 x 768: ~1.2x), at ~0.2 GB more peak memory with 2 workers.
 */
export const DEFAULT_TILE = 1024;
export const DEFAULT_OVERLAP = 192;
/**
 * Sections in flight: enough that the tile limiter (2 per runner slot), not the window, bounds inference, so
 * workers are fed while the main thread blends and decides; at least 2. With one tile per section a window
 * of 2 left each of 2 workers idle ~20% of the time (demo phantom, 512 x 512 sections).
 */
export function sectionsInFlight(slots: number, tilesPerSection: number): number {
  return Math.max(2, Math.ceil((2 * slots) / tilesPerSection) + 1);
}

export interface SegmentOptions {
  /** Model file (default: the shipped models/vemscope-unet-fast-int8.onnx, DEFAULT_MODEL_PATH) or an already loaded one. */
  model?: string | ModelInfo;
  /** Largest tile side in pixels (rounded down to the model's size multiple). */
  tile?: number;
  /** Least overlap between neighbouring tiles, in pixels. */
  overlap?: number;
  runner?: RunnerOptions;
  /** Keep per-class probability volumes (uint8, 255 = 1) in the result. */
  probabilities?: boolean;
  /** Decision thresholds per class name instead of the model's (`decide`); an empty map: plain argmax. */
  thresholds?: ReadonlyMap<string, number>;
  /** Test-time augmentation (tta.ts): "none" (default), "flips" (4 views), "d4" (8 views). */
  tta?: TtaMode;
  /**
   * Section pixel size (x, y) in nm. The minimum areas (`minAreaNm2`, or the model's) are in nm^2, so they apply
   * only when it is given; the CLI, `run` and the task kinds always give it.
   */
  pixelNm?: readonly [number, number];
  /** Least fragment area per class name (nm^2) instead of the model's (cleanup.ts `removeSmallAreas`); an empty map: none. */
  minAreaNm2?: ReadonlyMap<string, number>;
  /**
   * "auto" (default): with the pixel size given and the model's `pixelNm` known, a section whose pixel size is
   * outside what the model accepts is inferred resampled to the nearest size it was trained at, and its
   * probabilities resampled back (`inferenceGrid`); "none": always on the section's own grid.
   */
  resample?: ResampleMode;
  /** Called for each section in z order with its per-class probabilities (uint8), for streaming writers. */
  onProbabilities?: (z: number, planes: Uint8Array[]) => void | Promise<void>;
  progress?: Progress;
}

export type ResampleMode = "auto" | "none";
const RESAMPLE_MODES: readonly string[] = ["auto", "none"];

export function checkResample(mode: string): ResampleMode {
  if (!RESAMPLE_MODES.includes(mode)) throw new PipelineError("bad_argument", `expected one of ${RESAMPLE_MODES.join(", ")}, got '${mode}'`, "--resample");
  return mode as ResampleMode;
}

/** The grid a section is inferred on: its own unless `inferenceGrid` says otherwise. */
export interface InferenceGrid {
  width: number;
  height: number;
  /** Its pixel size (nm); undefined when the section's pixel size is not known. */
  pixelNm: [number, number] | undefined;
  resampled: boolean;
}

/**
 * Per axis, a pixel size outside the model's `accepts` goes to the nearest end of its `trained` span (a 2.5 nm
 * section is inferred at the finest training size, a 10 nm one at the coarsest); inside `accepts` the section
 * is left as it is: the scale augmentation showed the network those sizes, and resampling costs time.
 * Measured (README "Pixel size"): Lucchi held-aside sections made 2.5 nm: mito Dice 0.25 as they are, 0.94
 * resampled; 10 nm: 0.911 vs 0.940.
 */
export function inferenceGrid(width: number, height: number, pixelNm: readonly [number, number] | undefined, range: PixelRange | undefined, mode: ResampleMode): InferenceGrid {
  if (pixelNm === undefined || range === undefined || mode === "none") return { width, height, pixelNm: pixelNm ? [pixelNm[0], pixelNm[1]] : undefined, resampled: false };
  const axis = (n: number, p: number): [number, number] => {
    if (p >= range.accepts[0] && p <= range.accepts[1]) return [n, p];
    const t = Math.min(Math.max(p, range.trained[0]), range.trained[1]);
    const m = Math.max(1, Math.round((n * p) / t));
    return [m, (n * p) / m]; // the pixel size the rounded grid really has
  };
  const [w, px] = axis(width, pixelNm[0]);
  const [h, py] = axis(height, pixelNm[1]);
  return { width: w, height: h, pixelNm: [px, py], resampled: w !== width || h !== height };
}

export interface ClassProbabilities {
  name: string;
  code: number;
  volume: Volume<Uint8Array>;
}

export interface SegmentStats {
  sections: number;
  tiles: number;
  /** Section pixels segmented, in millions. */
  megapixels: number;
  /** Pixels fed to the network (tiles overlap and pad), in millions. */
  inferredMegapixels: number;
  seconds: number;
  runner: string;
  model: string;
  tileSize: [number, number];
  tta: TtaMode;
  /** The decision thresholds used (the override's or the model's). */
  thresholds: Record<string, number>;
  /** The minimum areas applied (nm^2; empty when none or when no pixel size was given). */
  minAreaNm2: Record<string, number>;
  /** What they removed: fragments, their pixels, and all pixels the decision gave those classes. */
  minAreaRemoved: { fragments: number; pixels: number; ofPixels: number };
  /** Where sections were inferred resampled (`inferenceGrid`): that grid's size and pixel size (nm). */
  resampledTo?: { width: number; height: number; pixelNm: [number, number] };
}

export interface SegmentResult {
  classes: Volume<Uint8Array>;
  probabilities?: ClassProbabilities[];
  stats: SegmentStats;
}

/** Where sections come from: a volume in memory, or a stack read a few sections at a time. */
export interface SectionSource {
  shape: [number, number, number];
  /** Section z; the array is read until the section is done (tiles are normalised as they are cut), so not reused. */
  read(z: number): Promise<Uint8Array | Uint16Array>;
}

/** Receives each section's class codes (and per-channel probabilities when asked), in z order. */
export type SectionSink = (z: number, classes: Uint8Array, probabilities: Uint8Array[] | undefined) => void | Promise<void>;

export interface StreamOptions extends Omit<SegmentOptions, "probabilities" | "onProbabilities" | "model"> {
  model: ModelInfo;
  /** Compute per-channel probabilities for the sink. */
  probabilities?: boolean;
  /** An open runner to use (and leave open) instead of creating one from `runner` for this call. */
  tileRunner?: TileRunner;
}

export async function segmentVolume(image: Volume<Uint8Array | Uint16Array>, options: SegmentOptions = {}): Promise<SegmentResult> {
  const [W, H, D] = image.shape;
  if ((image.channels ?? 1) !== 1) {
    throw new PipelineError("bad_input", `image has ${image.channels} channels; segmentation needs one greyscale channel`, "--image");
  }
  if (!(image.data instanceof Uint8Array || image.data instanceof Uint16Array)) {
    throw new PipelineError("bad_input", "image must be 8- or 16-bit unsigned integers", "--image");
  }
  if (W < 1 || H < 1 || D < 1 || image.data.length !== W * H * D) {
    throw new PipelineError("bad_input", `image shape ${W}x${H}x${D} does not match its ${image.data.length} voxels`, "--image");
  }
  const model = typeof options.model === "object" ? options.model : await loadModelInfo(options.model ?? DEFAULT_MODEL_PATH);
  const n = W * H;
  const classes = new Uint8Array(n * D);
  const kept = options.probabilities === true ? model.codes.map(() => new Uint8Array(n * D)) : undefined;
  const source: SectionSource = { shape: [W, H, D], read: async (z) => image.data.subarray(z * n, (z + 1) * n) };
  const stats = await segmentSections(
    source,
    async (z, plane, planes) => {
      classes.set(plane, z * n);
      if (planes) {
        kept?.forEach((v, k) => v.set(planes[k] as Uint8Array, z * n));
        await options.onProbabilities?.(z, planes);
      }
    },
    { ...options, model, probabilities: kept !== undefined || options.onProbabilities !== undefined },
  );
  return {
    classes: { data: classes, shape: [W, H, D] },
    probabilities: kept?.map((data, k) => ({ name: model.classNames[k] as string, code: model.codes[k] as number, volume: { data, shape: [W, H, D] } })),
    stats,
  };
}

/**
 * The streaming core: sections are read, normalised and tiled while earlier ones are still being inferred;
 * at most sectionsInFlight sections and 2 tiles per runner slot are alive at once.
 */
export async function segmentSections(source: SectionSource, sink: SectionSink, options: StreamOptions): Promise<SegmentStats> {
  const [W, H, D] = source.shape;
  const model = options.model;
  const m = model.sizeMultiple;
  const tileOpt = options.tile ?? DEFAULT_TILE;
  const overlap = options.overlap ?? DEFAULT_OVERLAP;
  const maxTile = Math.floor(tileOpt / m) * m;
  if (!Number.isInteger(tileOpt) || maxTile < m) throw new PipelineError("bad_argument", `expected an integer >= ${m} (the model's size multiple), got ${tileOpt}`, "--tile");
  if (!Number.isInteger(overlap) || overlap < 0 || 2 * overlap >= maxTile) {
    throw new PipelineError("bad_argument", `expected an integer from 0 to below half the tile (${maxTile / 2}), got ${overlap}`, "--overlap");
  }
  checkThresholds(model, options.thresholds);
  checkMinAreas(model, options.minAreaNm2);
  const tta = checkTta(options.tta ?? "none");
  const minAreas = options.pixelNm === undefined ? new Map<string, number>() : (options.minAreaNm2 ?? model.minAreaNm2);
  const pixelNm = options.pixelNm;
  if (pixelNm !== undefined && !pixelNm.every((v) => Number.isFinite(v) && v > 0)) throw new PipelineError("bad_argument", `expected positive pixel sizes, got ${pixelNm.join(",")}`, "--voxel");
  const minAreaByCode = new Map([...minAreas].map(([name, nm2]) => [model.codes[model.classNames.indexOf(name)] as number, nm2]));
  const grid = inferenceGrid(W, H, pixelNm, model.pixelNm, checkResample(options.resample ?? "auto"));
  const plan = planTiles(grid.width, grid.height, maxTile, overlap, m);
  const tiles = tilesOf(plan);
  const progress = options.progress ?? silentProgress;
  const started = performance.now();

  const own = options.tileRunner === undefined;
  const runner = options.tileRunner ?? (await createRunner(model, options.runner ?? defaultRunnerOptions(availableParallelism(), tiles.length * D)));
  const limiter = new Limiter(runner.slots * 2);
  const inFlight = sectionsInFlight(runner.slots, tiles.length);
  const rows = windowRows(plan, tiles.length);
  const sums = new SumBuffers(model.codes.length * rows * grid.width, rows * grid.width);
  const ctx: SectionContext = {
    plan, tiles, runner, limiter, sums, model, tta, rows, size: [W, H],
    wantProbs: options.probabilities === true,
    threshold: thresholdsByChannel(model, options.thresholds),
  };
  // Progress in Mpx (one decimal) so the bar and the CLI's end-of-stage line read as a pixel rate.
  const mpx = (sections: number) => Math.round((sections * W * H) / 1e5) / 10;
  progress.start("segment", mpx(D), "Mpx");
  type Done = { classes: Uint8Array; planes: Uint8Array[] | undefined };
  const removed = { fragments: 0, pixels: 0, ofPixels: 0 };
  const window: Promise<Done>[] = [];
  try {
    // Sections finish in z order: the window is awaited oldest first, so `done` is the next z.
    let done = 0;
    const finish = async (r: Done) => {
      if (pixelNm !== undefined && minAreaByCode.size > 0) {
        const c = removeSmallAreas(r.classes, W, H, pixelNm, minAreaByCode);
        removed.fragments += c.fragments;
        removed.pixels += c.voxels;
        removed.ofPixels += c.ruledPixels;
      }
      await sink(done, r.classes, r.planes);
      progress.update(mpx(++done));
    };
    for (let z = 0; z < D; z++) {
      const section = await source.read(z);
      if (section.length !== W * H) throw new PipelineError("bad_input", `section ${z} has ${section.length} pixels, expected ${W * H}`, "--image");
      let cut: (t: Tile) => Float32Array;
      if (grid.resampled) {
        const resampled = new ResampledTiles(section, W, H, grid.width, grid.height, tiles);
        cut = (t) => resampled.cut(t);
      } else {
        const norm = zscored(section);
        cut = (t) => extractTile(norm, W, H, t);
      }
      window.push(segmentSection(cut, ctx));
      if (window.length >= inFlight) await finish(await (window.shift() as Promise<Done>));
    }
    while (window.length > 0) await finish(await (window.shift() as Promise<Done>));
  } catch (e) {
    // Sections still in the window fail too once the runner closes; their rejections are this one's echo.
    for (const p of window) p.catch(() => undefined);
    throw e;
  } finally {
    progress.end();
    if (own) await runner.close();
  }
  return {
    sections: D,
    tiles: tiles.length * D,
    megapixels: (W * H * D) / 1e6,
    inferredMegapixels: (tiles.length * plan.x.size * plan.y.size * D * TTA_VIEWS[tta].length) / 1e6,
    seconds: (performance.now() - started) / 1000,
    runner: runner.description,
    model: model.path,
    tileSize: [plan.x.size, plan.y.size],
    tta,
    thresholds: Object.fromEntries(options.thresholds ?? model.thresholds),
    minAreaNm2: Object.fromEntries(minAreas),
    minAreaRemoved: removed,
    ...(grid.resampled ? { resampledTo: { width: grid.width, height: grid.height, pixelNm: grid.pixelNm as [number, number] } } : {}),
  };
}

/** What every section of a stack shares (segmentSections builds it once). */
interface SectionContext {
  plan: TilePlan;
  tiles: Tile[];
  runner: TileRunner;
  limiter: Limiter;
  sums: SumBuffers;
  model: ModelInfo;
  wantProbs: boolean;
  threshold: Float64Array;
  tta: TtaMode;
  /** The section's own size; the plan's grid differs where sections are resampled. */
  size: [number, number];
  /** Rows of the blending window (`windowRows`). */
  rows: number;
}

/**
 * Rows of the plan's grid held in blending sums at once: one tile row's height, so a wide section holds only the
 * rows its tiles still overlap (a 16k x 16k section: 7 channels x 16k x 1024 floats, 0.46 GB, instead of 7.5 GB).
 * A single tile holds the whole grid (it is the whole grid).
 */
function windowRows(plan: TilePlan, tiles: number): number {
  return tiles === 1 ? plan.height : Math.min(plan.y.size, plan.height);
}

/**
 * Class codes of one section, and uint8 probabilities per channel when asked. `cut` gives a tile's network input
 * (the section on the plan's grid, normalised as it is cut; tiles are asked for in plan order, as the limiter grants
 * them: resampled-tiles.ts relies on it). Tiles are blended in plan order; after each row of tiles the rows no later
 * tile reaches are final: they are divided by their weights, decided and dropped from the window. Where the grid is
 * not the section's own, final rows are resampled back (RowResampler: a section row leaves as soon as the grid rows
 * it reads are final) before the decision.
 */
async function segmentSection(cut: (t: Tile) => Float32Array, ctx: SectionContext): Promise<{ classes: Uint8Array; planes: Uint8Array[] | undefined }> {
  const { plan, tiles, limiter, model, rows } = ctx;
  const { width: W, height: H } = plan;
  const C = model.codes.length;
  const [sw, sh] = ctx.size;
  const classes = new Uint8Array(sw * sh);
  const planes = ctx.wantProbs ? model.codes.map(() => new Uint8Array(sw * sh)) : undefined;
  // One tile has no neighbour to fade into (its weights are all 1): its section part is the answer as it is.
  const blended = tiles.length === 1 ? undefined : ctx.sums.take();
  let acc: Float32Array | undefined = blended?.acc;
  const wsum = blended?.wsum;
  const stride = rows * W; // between channel planes of the window
  const back = sw !== W || sh !== H ? new RowResampler(C, W, H, sw, sh) : undefined;
  let start = 0; // the grid row at the window's first row
  // Grid rows [start, end) are final: to probabilities, decided (resampled back first where the grid is not the section's).
  const finalise = (probs: Float32Array, end: number) => {
    const count = end - start;
    if (wsum) divideByWeights(probs, wsum, C, count * W, stride);
    // The section rows now final: these grid rows themselves, or the rows resampled back from them.
    const r = back ? back.push(probs, count, stride) : { y0: start, rows: count, data: probs };
    const at = r.y0 * sw;
    const n = r.rows * sw;
    const bytes = planes?.map((p) => p.subarray(at, at + n));
    decideSection(r.data, n, C, model.codes, ctx.threshold, bytes, back ? n : stride, classes.subarray(at, at + n));
    if (wsum && end < H) {
      for (let k = 0; k < C; k++) {
        probs.copyWithin(k * stride, k * stride + count * W, (k + 1) * stride);
        probs.fill(0, (k + 1) * stride - count * W, (k + 1) * stride);
      }
      wsum.copyWithin(0, count * W);
      wsum.fill(0, stride - count * W);
    }
    start = end;
  };
  const nx = plan.x.starts.length;
  const banded = rows < H;
  // Float sums depend on their order where tiles overlap: tiles are blended in plan order, whichever finishes
  // first, so a section gets the same bytes on any runner and in any run (tasks must be idempotent). A tile's
  // limiter slot is held until it is blended, so finished tiles waiting for an earlier one stay bounded too.
  const finished = new Map<number, Float32Array>();
  let next = 0;
  await Promise.all(
    tiles.map(async (t, i) => {
      await limiter.acquire();
      let probs: Float32Array;
      try {
        probs = await runAugmented(ctx.runner, cut(t), t.h, t.w, C, ctx.tta);
      } catch (e) {
        limiter.release();
        throw e;
      }
      finished.set(i, probs);
      for (let p = finished.get(next); p !== undefined; p = finished.get(next)) {
        finished.delete(next);
        if (acc && wsum) accumulate(acc, wsum, p, C, plan, tiles[next] as Tile, start, stride);
        else acc = sectionPart(p, C, plan, tiles[next] as Tile);
        // The end of a row of tiles: rows above the next row's first start get nothing more.
        const row = Math.floor(next / nx);
        if (banded && acc && (next + 1) % nx === 0 && row + 1 < plan.y.starts.length) finalise(acc, plan.y.starts[row + 1] as number);
        next++;
        limiter.release();
      }
    }),
  );
  finalise(acc as Float32Array, H);
  if (blended) ctx.sums.give(blended);
  return { classes, planes };
}

/** A counting semaphore: bounds tiles extracted and in flight, hence memory, whatever the section size. */
class Limiter {
  private waiting: (() => void)[] = [];
  private free: number;

  constructor(n: number) {
    this.free = n;
  }

  acquire(): Promise<void> {
    if (this.free > 0) {
      this.free -= 1;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free += 1;
  }
}
