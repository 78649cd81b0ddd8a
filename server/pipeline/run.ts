import { existsSync, promises as fs } from "node:fs";
import * as path from "node:path";
import type { Vec3, Volume } from "../../precomputed/array.js";
import { LocalStorage } from "../../precomputed/storage.js";
import { PipelineError } from "./errors.js";
import type { Components } from "./label.js";
import type { InstanceStats } from "./stats.js";
import { silentProgress, type Progress } from "./progress.js";
import { readLabelsChecked, readImage } from "./inputs.js";
import { imageLayerInfo, startSegmentMeshes, writeImageLayer, writeSegmentationLayer, type SegmentMeshes } from "./layers.js";
import type { ContactAnalysis } from "./contacts.js";
import { DEFAULT_CONTACT_NM, writeContactLayer } from "./contact-layer.js";
import { startAnalysis, type PendingAnalysis } from "./analyse.js";
import { startFigures, writeReport, type FigureRun, type InstanceRow } from "./report.js";
import { buildState } from "./state.js";
import { writeTiffStack } from "./tiff.js";
import { openStack } from "./ingest.js";
import type { TtaMode } from "./segment/tta.js";
import type { ResampleMode } from "./segment/segment.js";
// Only the constant: blockwise/run.ts (and the object-store client it pulls in) loads when a run goes out of core.
import { DEFAULT_BLOCK_BUDGET } from "./blockwise/budget.js";
import { warmWorkers } from "./workers/pool.js";

export interface RunOptions {
  image: string;
  /** A class volume (DESIGN.md codes); alignment and segmentation are then skipped. */
  labels?: string;
  model?: string;
  /** Predicted fragments below this volume join the class they border most (segment/cleanup.ts); 0 keeps all. */
  minFragmentNm3?: number;
  /** Segmentation's test-time augmentation and decision thresholds (default: none, the model's). */
  tta?: TtaMode;
  thresholds?: Record<string, number>;
  /** Least 2D fragment areas per class (nm^2) instead of the model's ({}: none). */
  minAreaNm2?: Record<string, number>;
  /** Pixel-size matching: "auto" (default) infers sections outside the model's pixel sizes resampled; "none" as given. */
  resample?: ResampleMode;
  voxelNm: Vec3;
  out: string;
  align?: boolean;
  exportTiff?: boolean;
  contactNm?: number;
  progress?: Progress;
  /**
   * Voxels. Volumes above it run out of core (blockwise/run.ts), with blocks, crops and pyramid regions sized
   * to it. Default DEFAULT_BLOCK_BUDGET (64 Mvoxel).
   */
  blockBudget?: number;
  /** true: out of core whatever the size; false: in memory whatever the size. */
  blockwise?: boolean;
  /** Processing block shape of the out-of-core run (tests); default planned from the budget. */
  blockShape?: Vec3;
  /** Halo of the out-of-core contact pass in nm (default 300): min_dist_er_nm is exact below it, capped above. */
  distanceCapNm?: number;
  /**
   * redis://HOST:PORT: the in-memory run's image-layer pyramid (scales below 0) is built by `downsample` tasks on
   * this queue, run by `vemscope worker`s, which must see the output folder at the same absolute path (README,
   * Scale-out). Default: built in this process.
   */
  queue?: string;
  /** Out-of-core runs: scales with more chunks than this are written sharded (default 4096). */
  shardAboveChunks?: number;
}

export interface RunResult {
  instances: number;
  /** Which path ran. */
  mode: "memory" | "blockwise";
  seconds: number;
  out: string;
}

/** What stages hand each other. */
export interface RunContext {
  options: RunOptions;
  progress: Progress;
  /** Folder being written; renamed onto `out` only when every stage has succeeded. */
  staging: string;
  storage: LocalStorage;
  image?: Volume<Uint8Array | Uint16Array>;
  classes?: Volume<Uint8Array>;
  components?: Components;
  /** Per-instance voxel counts and boxes from the analysis, reused by the mesh writer. */
  stats?: InstanceStats;
  rows?: InstanceRow[];
  contacts?: ContactAnalysis;
  /** Instances and contacts done, per-object measures still running on the helper thread. */
  analysis?: PendingAnalysis;
  /** The report's figures, rendering (on a worker thread when there is one) since the analysis ended. */
  figures?: FigureRun;
  /** The segmentation layer's display meshes, queued on the worker pool as soon as the instances exist. */
  meshes?: SegmentMeshes;
}

/** Folder of the segmentation layer in the output. */
const SEGMENTATION = "segmentation";

interface Stage {
  name: string;
  /** Skipped when false (e.g. alignment with --no-align or with --labels). */
  when?(ctx: RunContext): boolean;
  run(ctx: RunContext): Promise<void>;
}

function need<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new PipelineError("stage_failed", `internal: ${what} missing before it is used`);
  return value;
}

const STAGES: Stage[] = [
  {
    name: "ingest",
    async run(ctx) {
      // Worker threads load while the input is read (the analysis, meshes and figures use them).
      if (ctx.options.labels) warmWorkers();
      ctx.image = await readImage(ctx.options.image);
      if (ctx.options.labels) ctx.classes = await readLabelsChecked(ctx.options.labels, ctx.image);
    },
  },
  {
    name: "align",
    when: (ctx) => ctx.classes === undefined && ctx.options.align !== false,
    async run(ctx) {
      const { alignStack } = await import("./align/align.js");
      const { aligned, report } = await alignStack(need(ctx.image, "image"), { progress: ctx.progress, file: ctx.options.image });
      ctx.image = aligned;
      await ctx.storage.put("report/alignment.json", JSON.stringify(report, null, 1));
    },
  },
  {
    name: "segment",
    when: (ctx) => ctx.classes === undefined,
    async run(ctx) {
      // Loaded lazily: onnxruntime is only needed when no --labels are given.
      const { segmentVolume } = await import("./segment/index.js");
      const { tta, thresholds, minAreaNm2, resample, voxelNm } = ctx.options;
      const result = await segmentVolume(need(ctx.image, "image"), {
        model: ctx.options.model,
        progress: ctx.progress,
        tta,
        thresholds: thresholds && new Map(Object.entries(thresholds)),
        minAreaNm2: minAreaNm2 && new Map(Object.entries(minAreaNm2)),
        pixelNm: [voxelNm[0], voxelNm[1]],
        resample,
      });
      const { removeSmallFragments, DEFAULT_MIN_FRAGMENT_NM3 } = await import("./segment/cleanup.js");
      const minNm3 = ctx.options.minFragmentNm3 ?? DEFAULT_MIN_FRAGMENT_NM3;
      ctx.progress?.start("small fragments", 1, "volume");
      const cleaned = removeSmallFragments(result.classes.data, result.classes.shape, ctx.options.voxelNm, minNm3);
      ctx.progress?.end();
      const record = { model: result.stats.model, tta: result.stats.tta, thresholds: result.stats.thresholds, min_area_nm2: result.stats.minAreaNm2, min_fragment_nm3: minNm3, fragments_reassigned: cleaned.fragments, voxels_reassigned: cleaned.voxels, ...(result.stats.resampledTo ? { inferred_pixel_nm: result.stats.resampledTo.pixelNm } : {}) };
      await ctx.storage.put("report/segmentation.json", JSON.stringify(record, null, 1));
      ctx.classes = result.classes;
    },
  },
  {
    name: "analyse",
    async run(ctx) {
      const classes = need(ctx.classes, "class volume");
      ctx.analysis = startAnalysis(classes, ctx.options.voxelNm, {
        contactNm: ctx.options.contactNm,
        progress: ctx.progress,
        // The meshes need only the instances: queued now, the worker takes them up as soon as it has measured the
        // objects, while this thread still finds the ER contacts and writes the image layer.
        onInstances: (components, stats) => {
          ctx.meshes = startSegmentMeshes(components, stats, classes.shape, ctx.options.voxelNm, `${SEGMENTATION}/mesh`);
        },
      });
    },
  },
  // The image layer needs only the image: written while the helper thread still measures objects, so that this
  // thread does not take over objects (and warm up their kernels a second time) when it is done with the contacts.
  {
    name: "image layer",
    async run(ctx) {
      const queue = ctx.options.queue;
      if (queue === undefined) {
        await writeImageLayer(ctx.storage, "image", need(ctx.image, "image"), ctx.options.voxelNm, ctx.progress);
        return;
      }
      const image = need(ctx.image, "image");
      const { info, gzip } = imageLayerInfo(image, ctx.options.voxelNm);
      const { writeLayerOnQueue } = await import("../jobs/pyramid.js");
      let started = false;
      try {
        await writeLayerOnQueue(queue, ctx.storage, "image", path.join(ctx.staging, "image"), info, image, {
          gzip,
          onProgress: (p) => {
            if (!started) ctx.progress.start("image pyramid (queue)", p.total, "tasks");
            started = true;
            ctx.progress.update(p.done + p.failed);
          },
        });
      } catch (e) {
        if ((e as Error).name === "JobError") throw new PipelineError("stage_failed", `image pyramid: ${(e as Error).message}`, "--queue", { cause: e });
        throw e;
      }
      ctx.progress.end();
    },
  },
  {
    name: "measures",
    async run(ctx) {
      const analysis = need(ctx.analysis, "analysis").finish();
      ctx.components = analysis.components;
      ctx.stats = analysis.stats;
      ctx.rows = analysis.rows;
      ctx.contacts = analysis.contacts;
      ctx.figures = startFigures(analysis.rows, ctx.options.contactNm ?? DEFAULT_CONTACT_NM);
    },
  },
  {
    name: "contact layer",
    async run(ctx) {
      await writeContactLayer(ctx.storage, "contacts", need(ctx.contacts, "contacts"), ctx.options.voxelNm, need(ctx.classes, "class volume").shape);
    },
  },
  {
    name: "segmentation layer",
    async run(ctx) {
      const classes = need(ctx.classes, "class volume");
      const rows = need(ctx.rows, "instance rows");
      const meshes = ctx.meshes;
      ctx.meshes = undefined; // closed by the writer from here on
      await writeSegmentationLayer(ctx.storage, SEGMENTATION, need(ctx.components, "instances"), rows, classes.shape, ctx.options.voxelNm, ctx.progress, {
        stats: ctx.stats,
        meshes,
      });
    },
  },
  {
    name: "report",
    async run(ctx) {
      const classes = need(ctx.classes, "class volume");
      await writeReport(ctx.storage, need(ctx.rows, "instance rows"), classes.shape, ctx.options.voxelNm, ctx.options.contactNm ?? DEFAULT_CONTACT_NM, ctx.figures);
    },
  },
  {
    name: "state",
    async run(ctx) {
      const classes = need(ctx.classes, "class volume");
      const state = buildState({
        voxelNm: ctx.options.voxelNm,
        size: classes.shape,
        classOf: need(ctx.components, "instances").classOf,
        annotationLayers: [{ name: "ER contacts", folder: "contacts" }],
      });
      await ctx.storage.put("state.json", JSON.stringify(state, null, 1));
    },
  },
  {
    name: "export",
    when: (ctx) => ctx.options.exportTiff === true,
    async run(ctx) {
      const classes = need(ctx.classes, "class volume");
      const components = need(ctx.components, "instances");
      await fs.mkdir(path.join(ctx.staging, "export"), { recursive: true });
      await writeTiffStack(path.join(ctx.staging, "export", "classes.tif"), classes);
      await writeTiffStack(path.join(ctx.staging, "export", "instances.tif"), { data: components.labels, shape: classes.shape });
    },
  },
];

/**
 * The whole pipeline into `out`. Everything is written into a staging folder beside `out` and renamed into
 * place at the end, so a failure leaves no half-written output and an earlier result stays intact.
 */
export async function runPipeline(options: RunOptions): Promise<RunResult> {
  // s3:// inputs or output: fetched / written by the object-store path (blockwise/remote.ts).
  if ([options.image, options.labels, options.out].some((u) => u?.startsWith("s3://"))) {
    const { runWithObjectStore } = await import("./blockwise/remote.js");
    return runWithObjectStore(options, runPipeline);
  }
  const t0 = performance.now();
  const out = path.resolve(options.out);
  await refuseForeignFolder(out);
  const budget = options.blockBudget ?? DEFAULT_BLOCK_BUDGET;
  if (!(Number.isSafeInteger(budget) && budget > 0)) throw new PipelineError("bad_argument", `expected a positive number of voxels, got ${budget}`, "--block-budget");
  if (options.queue !== undefined && !/^rediss?:\/\//.test(options.queue)) throw new PipelineError("bad_argument", `expected redis://HOST:PORT, got '${options.queue}'`, "--queue");
  if (options.labels === undefined && (options.thresholds !== undefined || options.minAreaNm2 !== undefined)) {
    // Checked against the model before any alignment work; segmentation checks again with what it loads.
    const { checkMinAreas, checkThresholds, DEFAULT_MODEL_PATH, loadModelInfo } = await import("./segment/model.js");
    const model = await loadModelInfo(options.model ?? DEFAULT_MODEL_PATH);
    checkThresholds(model, options.thresholds && new Map(Object.entries(options.thresholds)));
    checkMinAreas(model, options.minAreaNm2 && new Map(Object.entries(options.minAreaNm2)));
  }
  const blockwise = await outOfCore(options, budget);
  const contactNm = options.contactNm ?? DEFAULT_CONTACT_NM;
  // Out of core, the staging folder is named by the inputs and options, so a rerun of a killed run (or of one whose
  // tasks failed) continues it (blockwise/resume.ts); the in-memory run has nothing to resume and starts afresh.
  const staging = blockwise
    ? `${out}.partial-${await (await import("./blockwise/resume.js")).resumeKey({ ...options, contactNm, budget, capNm: options.distanceCapNm })}`
    : `${out}.partial-${process.pid}`;
  if (!blockwise) await fs.rm(staging, { recursive: true, force: true });
  await fs.mkdir(staging, { recursive: true });
  const ctx: RunContext = { options, progress: options.progress ?? silentProgress, staging, storage: new LocalStorage(staging) };
  let mode: RunResult["mode"] = "memory";
  let instances = 0;
  try {
    if (blockwise) {
      mode = "blockwise";
      // Work store in the staging folder: with --queue the workers must mount it at the same path (README, Scale-out).
      const work = path.join(staging, ".blocks");
      const { runBlockwise } = await import("./blockwise/run.js");
      ({ instances } = await runBlockwise({
        image: options.image,
        labels: options.labels,
        align: options.align,
        model: options.model,
        minFragmentNm3: options.minFragmentNm3,
        tta: options.tta,
        thresholds: options.thresholds,
        minAreaNm2: options.minAreaNm2,
        resample: options.resample,
        voxelNm: options.voxelNm,
        contactNm,
        storage: ctx.storage,
        outputUrl: staging,
        workUrl: work,
        scratch: work,
        progress: ctx.progress,
        budget,
        blockShape: options.blockShape,
        capNm: options.distanceCapNm,
        queue: options.queue,
        shardAboveChunks: options.shardAboveChunks,
      }));
    } else {
      for (const stage of STAGES) {
        if (stage.when && !stage.when(ctx)) continue;
        await stage.run(ctx);
      }
      instances = ctx.components?.count ?? 0;
    }
    await replaceFolder(staging, out);
  } catch (e) {
    ctx.progress.end();
    // Mesh jobs queued for a segmentation layer that will not be written are withdrawn.
    await ctx.meshes?.close();
    // Failed tasks (stage_failed) may pass on a rerun, which then continues; bad inputs or options leave nothing.
    if (!(blockwise && e instanceof PipelineError && e.code === "stage_failed")) await fs.rm(staging, { recursive: true, force: true });
    throw e;
  }
  return { instances, mode, seconds: (performance.now() - t0) / 1000, out };
}

/** Out of core when asked, or when the volume (from the image's headers) exceeds the budget. TIFF export needs the whole volume. */
async function outOfCore(options: RunOptions, budget: number): Promise<boolean> {
  if (options.blockwise === false) return false;
  if (options.blockwise !== true) {
    const [nx, ny, nz] = (await openStack(options.image, "image")).shape;
    if (nx * ny * nz <= budget) return false;
  }
  if (options.exportTiff) throw new PipelineError("bad_argument", "TIFF export needs the whole volume in memory: not available for out-of-core runs (raise --block-budget)", "--export-tiff");
  return true;
}

/** Replacing `out` is only safe when it is an earlier vemscope result (or empty), never someone's other files. */
async function refuseForeignFolder(out: string): Promise<void> {
  if (!existsSync(out)) return;
  const stat = await fs.stat(out);
  if (!stat.isDirectory()) throw new PipelineError("bad_argument", "exists and is not a folder", out);
  const entries = await fs.readdir(out);
  if (entries.length > 0 && !entries.includes("state.json")) {
    throw new PipelineError("bad_argument", "exists and is not a vemscope output (no state.json): choose another --out or empty it", out);
  }
}

async function replaceFolder(staging: string, out: string): Promise<void> {
  if (!existsSync(out)) {
    await fs.mkdir(path.dirname(out), { recursive: true });
    await fs.rename(staging, out);
    return;
  }
  const old = `${out}.old-${process.pid}`;
  await fs.rename(out, old);
  await fs.rename(staging, out);
  await fs.rm(old, { recursive: true, force: true });
}
