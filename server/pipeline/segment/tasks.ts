/**
 * The 2D segmentation stage and its small-fragment cleanup as task kinds over a work store (server/jobs), so the
 * out-of-core run segments on a task queue with many workers. The results are the same bytes as the in-memory
 * stage: segmentVolume, then removeSmallFragments (cleanup.ts).
 *
 *   segment.sections        bbox = whole sections [0, 0, z0]-[W, H, z1], z1 - z0 a multiple of the output's block
 *                           depth (the last clipped; segmentOnTasks gives the raw classes thin blocks of ~16 Mpx per
 *                           layer): segments them as segmentVolume does (each section is z-scored and tiled on its
 *                           own) and writes whole blocks.
 *   segment.cleanup-ccl     bbox = a block   local CCL of a pass's classes      (blockwise/ccl.ts, per-pass keys)
 *   segment.cleanup-stitch  bbox = a block   id pairs across its low faces      (blockwise/ccl.ts, per-pass keys)
 *   segment.cleanup-votes   bbox = a block   for the voxels of small fragments, the classes of their 6 face
 *                           neighbours in other components (read with a 1-voxel halo of classes: a face
 *                           neighbour is in another component exactly when its class differs)
 *   segment.cleanup-apply   bbox = a block   the block with small fragments given their target class, into the
 *                           next pass's volume (or a plain copy into the final volume, planned over its blocks, so
 *                           the copy may change the block grid)
 *
 * Per cleanup pass (at most CLEANUP_PASSES, stopping at the first that finds no small fragment, as cleanup.ts) the
 * coordinator gathers the CCL parts, finishes the global ids (the blockwise CCL gives the in-memory partition and
 * ids), lists the small fragments, sums the blocks' votes (a table over small fragments only) and picks targets
 * with cleanup.ts's tie-breaking. It holds per-component tables, never a volume.
 *
 * Resumable: every key a task writes derives from the task; names of intermediate volumes and keys carry a digest
 * of the options; each pass leaves a result marker, and a finished stage a step marker with its record, so a rerun
 * of a killed run (whose done tasks the executor skips) redoes only what is missing, and the intermediate volumes
 * can be dropped as soon as the next pass has consumed them.
 */
import { createHash } from "node:crypto";
import { availableParallelism } from "node:os";
import type { Vec3 } from "../../../precomputed/array.js";
import type { Storage } from "../../../precomputed/storage.js";
import type { TaskKind } from "../../jobs/kinds.js";
import { badTask, checkBlock, extentOf, isShape, optStrParam, storageParam, strParam, workVolumeParam } from "../../jobs/params.js";
import { createTasks, type JsonObject, type StageExecutor, type Task } from "../../jobs/tasks.js";
import { blockIndex, blockName, cclBlockTask, cclKeys, finalIdsOfBlock, finishLabels, gatherParts, gridOf, stitchBlockTask } from "../blockwise/ccl.js";
import { arrayOf, packArrays, unpackArrays } from "../blockwise/pack.js";
import { resumable, stepKey } from "../blockwise/resume.js";
import { blockKey, removePrefix, WorkVolume, type WorkVolumeSpec } from "../blockwise/work-store.js";
import { PipelineError } from "../errors.js";
import type { Progress } from "../progress.js";
import { DEFAULT_MIN_FRAGMENT_NM3 } from "./cleanup.js";
import { checkMinAreas, checkThresholds, DEFAULT_MODEL_PATH, loadModelInfo, parseMinAreas, parseThresholds, type ModelInfo } from "./model.js";
import { createRunner, defaultRunnerOptions, type RunnerOptions, type TileRunner } from "./pool.js";
import { checkResample, inferenceGrid, segmentSections, type ResampleMode } from "./segment.js";
import { isTtaMode, type TtaMode } from "./tta.js";

/** cleanup.ts's removeSmallFragments default. */
export const CLEANUP_PASSES = 3;

export type { StageExecutor };

export interface SegmentOnTasksOptions {
  /** Runs a stage's tasks (in process or on a Redis queue) and throws if any failed. */
  execute: StageExecutor;
  /** The work store (LocalStorage or S3). */
  work: Storage;
  /** Its location as tasks open it; every task's params carry it as `work` (resumable() writes done markers there). */
  workUrl: string;
  /** The (aligned) image in the work store, uint8 or uint16, any blockShape. */
  image: WorkVolumeSpec;
  /** Output class codes, uint8, any blockShape; written whole. */
  classes: WorkVolumeSpec;
  /** Model path, default the shipped one (DEFAULT_MODEL_PATH). */
  model?: string;
  voxelNm: Vec3;
  /** Default DEFAULT_MIN_FRAGMENT_NM3; 0 keeps every fragment. */
  minFragmentNm3?: number;
  /** Test-time augmentation and decision thresholds, as segmentSections takes them (default: none, the model's). */
  tta?: TtaMode;
  thresholds?: Record<string, number>;
  /** Least 2D fragment areas per class (nm^2) instead of the model's ({}: none). */
  minAreaNm2?: Record<string, number>;
  /** Pixel-size matching (segment.ts `inferenceGrid`; default auto). */
  resample?: ResampleMode;
  /** Unused by the coordinator itself: the executor reports each stage's tasks. */
  progress?: Progress;
}

export interface SegmentRecord {
  model: string;
  tta: TtaMode;
  thresholds: Record<string, number>;
  min_area_nm2: Record<string, number>;
  min_fragment_nm3: number;
  fragments_reassigned: number;
  voxels_reassigned: number;
  /** Where sections were inferred resampled (segment.ts `inferenceGrid`): the pixel size (x, y, nm) they had. */
  inferred_pixel_nm?: [number, number];
}

export interface CleanupOnTasksOptions {
  execute: StageExecutor;
  work: Storage;
  workUrl: string;
  /** Class codes before cleanup (uint8); kept unless dropInput. */
  input: WorkVolumeSpec;
  /** The cleaned classes: same shape as input, another name; another block shape costs one copy at the end. */
  output: WorkVolumeSpec;
  voxelNm: Vec3;
  minFragmentNm3?: number;
  /** Remove `input` once the first pass has consumed it (an intermediate volume of the caller). */
  dropInput?: boolean;
}

export interface CleanupTotals {
  fragments: number;
  voxels: number;
}

/** A section task's test-time augmentation (absent in tasks of older coordinators: none). */
function ttaParam(task: Task): TtaMode {
  const v = optStrParam(task, "tta") ?? "none";
  if (!isTtaMode(v)) badTask(task, `params.tta must be none, flips or d4, got '${v}'`);
  return v;
}

/** A section task's pixel-size matching (absent in tasks of older coordinators: auto). */
function resampleParam(task: Task): ResampleMode {
  const v = optStrParam(task, "resample") ?? "auto";
  if (v !== "auto" && v !== "none") badTask(task, `params.resample must be auto or none, got '${v}'`);
  return v;
}

/** A section task's per-class values for this model (`thresholds`, `min_area`; null or absent: the model's own). */
function perClassParam(task: Task, key: string, model: ModelInfo, parse: (raw: unknown, names: readonly string[]) => Map<string, number>): Map<string, number> | undefined {
  const v = task.params[key];
  if (v === undefined || v === null) return undefined;
  try {
    return parse(v, model.classNames);
  } catch (e) {
    badTask(task, `params.${key}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** A section task's pixel size (x, y) in nm, which the minimum areas need (absent in tasks of older coordinators). */
function pixelParam(task: Task): [number, number] | undefined {
  const v = task.params.pixel_nm;
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.length !== 2 || !v.every((x): x is number => typeof x === "number" && Number.isFinite(x) && x > 0)) badTask(task, "params.pixel_nm must be two positive numbers");
  return [v[0] as number, v[1] as number];
}

// ---------------------------------------------------------------------------------------------------------------
// The model and tile runner, once per process.

interface Loaded {
  model: ModelInfo;
  runner: TileRunner;
}

const loaded = new Map<string, Promise<Loaded>>();
let runnerOptions: RunnerOptions | undefined;

/**
 * The process's model and runner for `path`: created by the first section task, reused by the following ones (a
 * worker runs hundreds). Pool workers are unref'd while idle, so a runner nobody closes never keeps a finished
 * process alive.
 */
function loadShared(path: string): Promise<Loaded> {
  let p = loaded.get(path);
  if (!p) {
    const created = (async (): Promise<Loaded> => {
      const model = await loadModelInfo(path);
      const runner = await createRunner(model, { ...(runnerOptions ?? defaultRunnerOptions(availableParallelism())), unrefIdle: true });
      return { model, runner };
    })();
    p = created;
    loaded.set(path, created);
    created.catch(() => {
      if (loaded.get(path) === created) loaded.delete(path);
    });
  }
  return p;
}

/** Drops one process-wide runner (after a failure: a retry starts a fresh one). */
async function dropShared(path: string, which: Promise<Loaded>): Promise<void> {
  if (loaded.get(path) !== which) return;
  loaded.delete(path);
  await which.then(
    (l) => l.runner.close(),
    () => undefined,
  );
}

/** Closes the runners section tasks created in this process (tests; a worker that wants to free the memory). */
export async function closeSegmentRunners(): Promise<void> {
  const all = [...loaded.values()];
  loaded.clear();
  await Promise.all(all.map((p) => p.then((l) => l.runner.close(), () => undefined)));
}

/** Runner for later section tasks of this process (default: defaultRunnerOptions for a large job). */
export async function configureSegmentRunner(options?: RunnerOptions): Promise<void> {
  await closeSegmentRunners();
  runnerOptions = options;
}

// ---------------------------------------------------------------------------------------------------------------
// Task parameters.

const specJson = (s: WorkVolumeSpec): JsonObject => ({ name: s.name, shape: [...s.shape], blockShape: [...s.blockShape], type: s.type, ...(s.codec ? { codec: s.codec } : {}) });

function sameGrid(task: Task, a: WorkVolumeSpec, b: WorkVolumeSpec): void {
  if (a.shape.some((v, d) => v !== b.shape[d]) || a.blockShape.some((v, d) => v !== b.blockShape[d])) {
    badTask(task, `${a.name} and ${b.name} must have the same shape and block shape`);
  }
}

async function need(storage: Storage, key: string): Promise<Uint8Array> {
  const bytes = await storage.get(key);
  if (!bytes) throw new PipelineError("stage_failed", "work object missing (did the previous stage finish?)", key);
  return bytes;
}

/** Index of `v` in the sorted `a`, or -1. */
function indexOf(a: Uint32Array, v: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid] < v) lo = mid + 1;
    else hi = mid;
  }
  return lo < a.length && a[lo] === v ? lo : -1;
}

// ---------------------------------------------------------------------------------------------------------------
// Kinds.

export const sectionsKind: TaskKind = {
  name: "segment.sections",
  summary: "2D segmentation of a z range of whole sections into whole class blocks",
  async run(task, ctx) {
    const store = storageParam(task, ctx);
    const image = workVolumeParam(task, "image", ["uint8", "uint16"]);
    const output = workVolumeParam(task, "output", ["uint8"]);
    const [W, H, D] = output.shape;
    if (image.shape.some((v, d) => v !== output.shape[d])) badTask(task, `image ${image.shape.join("x")} and classes ${output.shape.join("x")} differ in shape`);
    const { start, end } = task.bbox;
    const bz = output.blockShape[2];
    const [z0, z1] = [start[2], end[2]];
    if (start[0] !== 0 || start[1] !== 0 || end[0] !== W || end[1] !== H || z0 % bz !== 0 || z1 > D || ((z1 - z0) % bz !== 0 && z1 !== D)) {
      badTask(task, `bbox must be whole sections [0, 0, z0]-[${W}, ${H}, z1] with z0 and z1 on ${bz}-section block bounds (or z1 = ${D})`);
    }
    const path = optStrParam(task, "model") ?? DEFAULT_MODEL_PATH;
    const shared = loadShared(path);
    const { model, runner } = await shared;
    const tta = ttaParam(task);
    const resample = resampleParam(task);
    const thresholds = perClassParam(task, "thresholds", model, parseThresholds);
    const minAreaNm2 = perClassParam(task, "min_area", model, parseMinAreas);
    const imageVol = new WorkVolume<Uint8Array | Uint16Array>(store, image);
    const n = W * H;
    const slab = new Uint8Array(n * (z1 - z0));
    try {
      await segmentSections(
        { shape: [W, H, z1 - z0], read: (z) => imageVol.readBox([0, 0, z0 + z], [W, H, 1]) },
        (z, plane) => {
          slab.set(plane, z * n);
        },
        { model, tileRunner: runner, tta, thresholds, minAreaNm2, pixelNm: pixelParam(task), resample },
      );
    } catch (e) {
      // A broken pool (a worker that died) must not fail every later task of this process.
      await dropShared(path, shared);
      throw e;
    }
    const out = new WorkVolume<Uint8Array>(store, output);
    const outputs: string[] = [];
    const [bx, by] = output.blockShape;
    for (let z = z0; z < z1; z += bz) {
      for (let y = 0; y < H; y += by) {
        for (let x = 0; x < W; x += bx) {
          const origin: Vec3 = [x, y, z];
          const e = out.blockExtent(origin);
          const block = new Uint8Array(e[0] * e[1] * e[2]);
          for (let k = 0; k < e[2]; k++) {
            for (let j = 0; j < e[1]; j++) {
              const from = x + W * (y + j) + n * (z - z0 + k);
              block.set(slab.subarray(from, from + e[0]), e[0] * (j + e[1] * k));
            }
          }
          await out.writeBlock(origin, block);
          outputs.push(blockKey(output, origin));
        }
      }
    }
    return { outputs };
  },
};

export const cleanupCclKind: TaskKind = {
  name: "segment.cleanup-ccl",
  summary: "local 26-connected components of one block of a cleanup pass's classes",
  async run(task, ctx) {
    const input = workVolumeParam(task, "input", ["uint8"]);
    checkBlock(task, input);
    return { outputs: await cclBlockTask(storageParam(task, ctx), input, task.bbox.start, extentOf(task), cclKeys(strParam(task, "ccl"))) };
  },
};

export const cleanupStitchKind: TaskKind = {
  name: "segment.cleanup-stitch",
  summary: "component pairs joined across one block's low faces, for a cleanup pass",
  async run(task, ctx) {
    const input = workVolumeParam(task, "input", ["uint8"]);
    checkBlock(task, input);
    return { outputs: await stitchBlockTask(storageParam(task, ctx), input, task.bbox.start, extentOf(task), cclKeys(strParam(task, "ccl"))) };
  },
};

/** Reads the block with a 1-voxel halo (clipped at the volume): returns the halo box and the block cut from it. */
async function blockWithHalo(vol: WorkVolume<Uint8Array>, origin: Vec3, extent: Vec3): Promise<{ halo: Uint8Array; lo: Vec3; hs: Vec3; block: Uint8Array }> {
  const shape = vol.spec.shape;
  const lo = origin.map((o) => Math.max(0, o - 1)) as Vec3;
  const hi = origin.map((o, d) => Math.min(shape[d], o + extent[d] + 1)) as Vec3;
  const hs = hi.map((h, d) => h - lo[d]) as Vec3;
  const halo = await vol.readBox(lo, hs);
  const block = new Uint8Array(extent[0] * extent[1] * extent[2]);
  for (let z = 0; z < extent[2]; z++) {
    for (let y = 0; y < extent[1]; y++) {
      const from = origin[0] - lo[0] + hs[0] * (origin[1] - lo[1] + y + hs[1] * (origin[2] - lo[2] + z));
      block.set(halo.subarray(from, from + extent[0]), extent[0] * (y + extent[1] * z));
    }
  }
  return { halo, lo, hs, block };
}

export const cleanupVotesKind: TaskKind = {
  name: "segment.cleanup-votes",
  summary: "face-neighbour class votes of the small fragments' voxels in one block",
  async run(task, ctx) {
    const store = storageParam(task, ctx);
    const input = workVolumeParam(task, "input", ["uint8"]);
    checkBlock(task, input);
    const origin = task.bbox.start;
    const extent = extentOf(task);
    const smallKey = strParam(task, "small");
    const small = arrayOf(unpackArrays(await need(store, smallKey), smallKey), "ids", Uint32Array, smallKey);
    const { halo, lo, hs, block: classes } = await blockWithHalo(new WorkVolume<Uint8Array>(store, input), origin, extent);
    const { block, finalOf } = await finalIdsOfBlock(store, input, classes, origin, extent, cclKeys(strParam(task, "ccl")));
    // Local id -> final id of a small fragment (0: not small). Several local ids may share a final id.
    const smallFinal = new Uint32Array(block.count + 1);
    let any = false;
    for (let l = 1; l <= block.count; l++) {
      const f = finalOf[l - 1];
      if (indexOf(small, f) >= 0) {
        smallFinal[l] = f;
        any = true;
      }
    }
    // (final id * 256 + class) -> votes: only the classes a fragment actually touches.
    const votes = new Map<number, number>();
    if (any) {
      const [sx, sy, sz] = extent;
      const [nx, ny, nz] = input.shape;
      const [hx, hy] = hs;
      const hxy = hx * hy;
      const labels = block.labels;
      for (let z = 0, i = 0; z < sz; z++) {
        const gz = origin[2] + z;
        for (let y = 0; y < sy; y++) {
          const gy = origin[1] + y;
          for (let x = 0; x < sx; x++, i++) {
            const f = smallFinal[labels[i]];
            if (f === 0) continue;
            const gx = origin[0] + x;
            const c = classes[i];
            const h = gx - lo[0] + hx * (gy - lo[1]) + hxy * (gz - lo[2]);
            // A face neighbour of the same class is in the same component; any other class is another one.
            const vote = (j: number): void => {
              const cj = halo[j];
              if (cj === c) return;
              const key = f * 256 + cj;
              votes.set(key, (votes.get(key) ?? 0) + 1);
            };
            if (gx > 0) vote(h - 1);
            if (gx < nx - 1) vote(h + 1);
            if (gy > 0) vote(h - hx);
            if (gy < ny - 1) vote(h + hx);
            if (gz > 0) vote(h - hxy);
            if (gz < nz - 1) vote(h + hxy);
          }
        }
      }
    }
    const keys = [...votes.keys()].sort((a, b) => a - b);
    const ids = new Uint32Array(keys.length);
    const cls = new Uint8Array(keys.length);
    const counts = new Float64Array(keys.length);
    keys.forEach((k, n) => {
      ids[n] = Math.floor(k / 256);
      cls[n] = k % 256;
      counts[n] = votes.get(k) as number;
    });
    const key = `${strParam(task, "votes")}/${blockName(blockIndex(input, origin))}`;
    await store.put(key, packArrays({ ids, cls, counts }));
    return { outputs: [key] };
  },
};

export const cleanupApplyKind: TaskKind = {
  name: "segment.cleanup-apply",
  summary: "one block of a cleanup pass's output: small fragments take their target class (a copy without targets)",
  async run(task, ctx) {
    const store = storageParam(task, ctx);
    const input = workVolumeParam(task, "input", ["uint8"]);
    const output = workVolumeParam(task, "output", ["uint8"]);
    const targetsKey = optStrParam(task, "targets");
    // A copy (no targets) may change the block grid: it is planned over the output's blocks and reads any box.
    if (targetsKey === undefined) {
      checkBlock(task, output);
      if (input.shape.some((v, d) => v !== output.shape[d])) badTask(task, `${input.name} and ${output.name} must have the same shape`);
    } else {
      checkBlock(task, input);
      sameGrid(task, input, output);
    }
    if (input.name === output.name) badTask(task, "a pass must not write its own input");
    const origin = task.bbox.start;
    const extent = extentOf(task);
    const classes = await new WorkVolume<Uint8Array>(store, input).readBox(origin, extent);
    if (targetsKey !== undefined) {
      const u = unpackArrays(await need(store, targetsKey), targetsKey);
      const ids = arrayOf(u, "ids", Uint32Array, targetsKey);
      const targets = arrayOf(u, "targets", Uint8Array, targetsKey);
      const { block, finalOf } = await finalIdsOfBlock(store, input, classes, origin, extent, cclKeys(strParam(task, "ccl")));
      // Local id -> target class + 1 (0: keep).
      const to = new Uint16Array(block.count + 1);
      let any = false;
      for (let l = 1; l <= block.count; l++) {
        const s = indexOf(ids, finalOf[l - 1]);
        if (s >= 0) {
          to[l] = targets[s] + 1;
          any = true;
        }
      }
      if (any) {
        const labels = block.labels;
        for (let i = 0; i < classes.length; i++) {
          const t = to[labels[i]];
          if (t !== 0) classes[i] = t - 1;
        }
      }
    }
    await new WorkVolume<Uint8Array>(store, output).writeBlock(origin, classes);
    return { outputs: [blockKey(output, origin)] };
  },
};

/** Each marks its task done in the work store after its outputs (blockwise/resume.ts). */
export const segmentKinds: TaskKind[] = [sectionsKind, cleanupCclKind, cleanupStitchKind, cleanupVotesKind, cleanupApplyKind].map(resumable);

// ---------------------------------------------------------------------------------------------------------------
// Coordinators.

/** Pixels per `segment.sections` task when the class blocks allow it (~10 s of CPU at ~1.5 Mpx/s). */
const SEGMENT_TASK_PIXELS = 16 * 2 ** 20;

const digest = (v: unknown): string => createHash("sha256").update(JSON.stringify(v)).digest("hex").slice(0, 12);

function checkSpec(s: WorkVolumeSpec, what: string, types: readonly string[]): void {
  if (!types.includes(s.type)) throw new PipelineError("bad_argument", `${what} (${s.name}) must be ${types.join(" or ")}, not ${s.type}`);
  if (!isShape(s.shape) || !isShape(s.blockShape)) throw new PipelineError("bad_argument", `${what} (${s.name}) needs positive integer shape and block shape`);
}

/**
 * removeSmallFragments (cleanup.ts) out of core: the same bytes in `output` and the same counts. Each pass's
 * CCL, votes and targets live under their own keys; a finished pass leaves a result marker.
 */
export async function cleanupOnTasks(o: CleanupOnTasksOptions): Promise<CleanupTotals> {
  const { execute, work, workUrl, input, output, voxelNm } = o;
  const minNm3 = o.minFragmentNm3 ?? DEFAULT_MIN_FRAGMENT_NM3;
  checkSpec(input, "cleanup input", ["uint8"]);
  checkSpec(output, "cleanup output", ["uint8"]);
  if (input.shape.some((v, d) => v !== output.shape[d]) || input.name === output.name) {
    throw new PipelineError("bad_argument", `cleanup output ${output.name} must have ${input.name}'s shape under another name`);
  }
  const sameBlocks = input.blockShape.every((v, d) => v === output.blockShape[d]);
  const d = digest({ v: 1, input: specJson(input), output: specJson(output), voxelNm, minNm3 });
  const root = `segment-cleanup/${d}`;
  const doneMarker = stepKey(`segment-cleanup-${d}`);
  const finished = await work.get(doneMarker);
  if (finished) {
    await removePrefix(work, `${root}/`);
    return JSON.parse(new TextDecoder().decode(finished)) as CleanupTotals;
  }
  const minVoxels = minNm3 / (voxelNm[0] * voxelNm[1] * voxelNm[2]);
  // Passes run on the input's blocks; the last one writes the output itself when the grids agree.
  const volumeOf = (p: number): WorkVolumeSpec => (p === CLEANUP_PASSES && sameBlocks ? output : { ...input, name: `${output.name}-pass${p}-${d}` });
  const blockTasks = (kind: string, spec: WorkVolumeSpec, params: JsonObject): Task[] => createTasks(kind, spec.shape, spec.blockShape, { work: workUrl, ...params });
  const total: CleanupTotals = { fragments: 0, voxels: 0 };
  let current = input;
  // Every fragment has at least one voxel: below a minimum of 1 voxel nothing is small, and no pass changes anything.
  for (let p = 1; p <= CLEANUP_PASSES && minVoxels > 1; p++) {
    const next = volumeOf(p);
    const resultKey = `${root}/result/pass${p}`;
    let result: CleanupTotals;
    const stored = await work.get(resultKey);
    if (stored) result = JSON.parse(new TextDecoder().decode(stored)) as CleanupTotals;
    else {
      result = await cleanupPass({ execute, work, blockTasks, input: current, output: next, minVoxels, pass: p, prefix: `${root}/pass${p}` });
      await work.put(resultKey, JSON.stringify(result));
    }
    if (result.fragments === 0) break;
    total.fragments += result.fragments;
    total.voxels += result.voxels;
    // The pass's keys and its input are no longer needed (a rerun skips the pass on its result marker).
    await removePrefix(work, `${root}/pass${p}/`);
    if (current !== input || o.dropInput === true) await new WorkVolume(work, current).remove();
    current = next;
  }
  if (current !== output) {
    // Stopped before the last pass: the last pass's output (or the input) is the result.
    await execute("small fragments: final classes", blockTasks("segment.cleanup-apply", output, { input: specJson(current), output: specJson(output), targets: null, ccl: null, pass: 0 }));
    if (current !== input || o.dropInput === true) await new WorkVolume(work, current).remove();
  }
  await work.put(doneMarker, JSON.stringify(total));
  await removePrefix(work, `${root}/`);
  return total;
}

interface PassOptions {
  execute: StageExecutor;
  work: Storage;
  blockTasks: (kind: string, spec: WorkVolumeSpec, params: JsonObject) => Task[];
  input: WorkVolumeSpec;
  output: WorkVolumeSpec;
  minVoxels: number;
  pass: number;
  prefix: string;
}

/** One pass of cleanup.ts's onePass: CCL, small fragments, votes, targets, apply. */
async function cleanupPass(o: PassOptions): Promise<CleanupTotals> {
  const { execute, work, input, pass, prefix } = o;
  const cclPrefix = `${prefix}/ccl`;
  const keys = cclKeys(cclPrefix);
  const label = `small fragments ${pass}`;
  const common: JsonObject = { input: specJson(input), ccl: cclPrefix, pass };
  await execute(`${label}: blocks`, o.blockTasks("segment.cleanup-ccl", input, common));
  const { parts } = await gatherParts(work, input, keys);
  await execute(`${label}: faces`, o.blockTasks("segment.cleanup-stitch", input, common));
  const cc = await finishLabels(work, input, parts, keys);
  let n = 0;
  let voxels = 0;
  for (let id = 1; id <= cc.count; id++) {
    if (cc.classOf[id] !== 0 && cc.voxels[id] < o.minVoxels) {
      n++;
      voxels += cc.voxels[id];
    }
  }
  if (n === 0) return { fragments: 0, voxels: 0 };
  // Final ids in increasing order: tasks look theirs up by binary search.
  const small = new Uint32Array(n);
  for (let id = 1, s = 0; id <= cc.count; id++) if (cc.classOf[id] !== 0 && cc.voxels[id] < o.minVoxels) small[s++] = id;
  const smallKey = `${prefix}/small`;
  await work.put(smallKey, packArrays({ ids: small }));
  const votesPrefix = `${prefix}/votes`;
  await execute(`${label}: votes`, o.blockTasks("segment.cleanup-votes", input, { ...common, small: smallKey, votes: votesPrefix }));
  // cleanup.ts: the class (code >= 1) with the most votes, the lowest code on a tie; background without any.
  const best = new Uint8Array(n);
  const bestVotes = new Float64Array(n);
  const sums = new Map<number, number>();
  const grid = gridOf(input);
  for (let k = 0; k < grid[2]; k++) {
    for (let j = 0; j < grid[1]; j++) {
      for (let i = 0; i < grid[0]; i++) {
        const key = `${votesPrefix}/${blockName([i, j, k])}`;
        const u = unpackArrays(await need(work, key), key);
        const ids = arrayOf(u, "ids", Uint32Array, key);
        const cls = arrayOf(u, "cls", Uint8Array, key);
        const counts = arrayOf(u, "counts", Float64Array, key);
        for (let v = 0; v < ids.length; v++) {
          if (cls[v] === 0) continue;
          const s = indexOf(small, ids[v]);
          if (s < 0) throw new PipelineError("stage_failed", `votes for fragment ${ids[v]}, which is not small`, key);
          const sk = s * 256 + cls[v];
          sums.set(sk, (sums.get(sk) ?? 0) + counts[v]);
        }
      }
    }
  }
  for (const [sk, v] of sums) {
    const s = Math.floor(sk / 256);
    const c = sk % 256;
    if (v > bestVotes[s] || (v === bestVotes[s] && c < best[s])) {
      best[s] = c;
      bestVotes[s] = v;
    }
  }
  const targetsKey = `${prefix}/targets`;
  await work.put(targetsKey, packArrays({ ids: small, targets: best }));
  await execute(`${label}: classes`, o.blockTasks("segment.cleanup-apply", input, { ...common, output: specJson(o.output), targets: targetsKey }));
  return { fragments: n, voxels };
}

/**
 * The "segment" stage out of core: segmentation tasks into an intermediate class volume, then the cleanup passes
 * into `classes`. Returns (and keeps in the work store, for a rerun) the record run.ts writes to
 * report/segmentation.json.
 */
export async function segmentOnTasks(o: SegmentOnTasksOptions): Promise<SegmentRecord> {
  const { work, workUrl, image, classes, voxelNm } = o;
  checkSpec(image, "image", ["uint8", "uint16"]);
  checkSpec(classes, "classes", ["uint8"]);
  if (image.shape.some((v, d) => v !== classes.shape[d])) {
    throw new PipelineError("bad_argument", `image ${image.shape.join("x")} and classes ${classes.shape.join("x")} differ in shape`);
  }
  const minNm3 = o.minFragmentNm3 ?? DEFAULT_MIN_FRAGMENT_NM3;
  const modelPath = o.model ?? DEFAULT_MODEL_PATH;
  const tta = o.tta ?? "none";
  const resample = checkResample(o.resample ?? "auto");
  const d = digest({ v: 2, image: specJson(image), classes: specJson(classes), model: o.model ?? null, voxelNm, minNm3, tta, thresholds: o.thresholds ?? null, ...(o.minAreaNm2 ? { minAreaNm2: o.minAreaNm2 } : {}), ...(resample === "auto" ? {} : { resample }) });
  const doneMarker = stepKey(`segment-${d}`);
  const finished = await work.get(doneMarker);
  if (finished) return JSON.parse(new TextDecoder().decode(finished)) as SegmentRecord;
  // Fail here on a bad model or thresholds rather than in every task.
  const model = await loadModelInfo(modelPath);
  const override = o.thresholds && new Map(Object.entries(o.thresholds));
  checkThresholds(model, override);
  const areas = o.minAreaNm2 && new Map(Object.entries(o.minAreaNm2));
  checkMinAreas(model, areas);
  const minVoxels = minNm3 / (voxelNm[0] * voxelNm[1] * voxelNm[2]);
  const cleanup = minVoxels > 1;
  const [W, H] = classes.shape;
  // With a cleanup the raw classes get thinner blocks than `classes` (the cleanup copies them over at the end), so
  // the segmentation, the slowest stage, spreads over more tasks: about SEGMENT_TASK_PIXELS each.
  const sections = Math.max(1, Math.min(classes.blockShape[2], Math.round(SEGMENT_TASK_PIXELS / (W * H))));
  const raw: WorkVolumeSpec = cleanup ? { ...classes, name: `${classes.name}-pass0-${d}`, blockShape: [classes.blockShape[0], classes.blockShape[1], sections] } : classes;
  await o.execute("segment", createTasks("segment.sections", classes.shape, [W, H, raw.blockShape[2]], { work: workUrl, image: specJson(image), output: specJson(raw), model: o.model ?? null, tta, thresholds: o.thresholds ?? null, min_area: o.minAreaNm2 ?? null, pixel_nm: [voxelNm[0], voxelNm[1]], resample }));
  const totals = cleanup ? await cleanupOnTasks({ execute: o.execute, work, workUrl, input: raw, output: classes, voxelNm, minFragmentNm3: minNm3, dropInput: true }) : { fragments: 0, voxels: 0 };
  const grid = inferenceGrid(W, H, [voxelNm[0], voxelNm[1]], model.pixelNm, resample);
  const record: SegmentRecord = { model: modelPath, tta, thresholds: Object.fromEntries(override ?? model.thresholds), min_area_nm2: Object.fromEntries(areas ?? model.minAreaNm2), min_fragment_nm3: minNm3, fragments_reassigned: totals.fragments, voxels_reassigned: totals.voxels, ...(grid.resampled ? { inferred_pixel_nm: grid.pixelNm } : {}) };
  await work.put(doneMarker, JSON.stringify(record));
  return record;
}
