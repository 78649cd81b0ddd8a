/**
 * The 2D segmentation stage and its small-fragment cleanup as task kinds over a work store (server/jobs), so the
 * out-of-core run segments on a task queue with many workers. The results are the same bytes as the in-memory
 * stage: segmentVolume, then removeSmallFragments (cleanup.ts). The cleanup's kinds and coordinator are in
 * cleanup-tasks.ts; segmentOnTasks runs them after the section tasks.
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
import { availableParallelism } from "node:os";
import type { Vec3 } from "../../../precomputed/array.js";
import type { Storage } from "../../../precomputed/storage.js";
import type { TaskKind } from "../../jobs/kinds.js";
import { badTask, optStrParam, storageParam, workVolumeParam } from "../../jobs/params.js";
import { createTasks, type StageExecutor, type Task } from "../../jobs/tasks.js";
import { resumable, stepKey } from "../blockwise/resume.js";
import { blockKey, WorkVolume, type WorkVolumeSpec } from "../blockwise/work-store.js";
import { PipelineError } from "../errors.js";
import type { Progress } from "../progress.js";
import { DEFAULT_MIN_FRAGMENT_NM3 } from "./cleanup.js";
import { checkMinAreas, checkThresholds, DEFAULT_MODEL_PATH, loadModelInfo, parseMinAreas, parseThresholds, type ModelInfo } from "./model.js";
import { createRunner, defaultRunnerOptions, type RunnerOptions, type TileRunner } from "./pool.js";
import { checkResample, inferenceGrid, segmentSections, type ResampleMode } from "./segment.js";
import { isTtaMode, type TtaMode } from "./tta.js";
import { checkSpec, cleanupApplyKind, cleanupCclKind, cleanupOnTasks, cleanupStitchKind, cleanupVotesKind, digest, specJson } from "./cleanup-tasks.js";

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

/** Each marks its task done in the work store after its outputs (blockwise/resume.ts). */
export const segmentKinds: TaskKind[] = [sectionsKind, cleanupCclKind, cleanupStitchKind, cleanupVotesKind, cleanupApplyKind].map(resumable);

// ---------------------------------------------------------------------------------------------------------------
// Coordinators.

/** Pixels per `segment.sections` task when the class blocks allow it (~10 s of CPU at ~1.5 Mpx/s). */
const SEGMENT_TASK_PIXELS = 16 * 2 ** 20;

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
