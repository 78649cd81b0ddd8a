/**
 * `run` out of core: peak memory follows the block budget, not the volume. The heavy passes are tasks (tasks.ts,
 * align/tasks.ts, segment/tasks.ts) over blocks of a work store, run by the in-process executor by default or by
 * `vemscope worker`s on a Redis queue (`queue`); this coordinator plans them, waits between stages that depend on
 * each other, and does the reductions:
 * 1. ingest (here): a few sections at a time from the TIFF/PNG stacks (codes checked per slab) into raw blocks
 *    in the work store;
 * 1a. without --labels: alignment (`align.*` tasks: pair features, patch correlation per mesh iteration, the mesh
 *    solved here, one render per section range) and segmentation (`segment.sections`, then the small-fragment
 *    cleanup as per-block CCL, vote and apply tasks), each the same bytes as the in-memory stage;
 * 2. image layer: `blockwise.pyramid` tasks, stage by stage (+ `blockwise.shard` for sharded scales);
 * 3. instances: `blockwise.ccl` -> offsets (here) -> `blockwise.stitch` -> unions and final ids (here) ->
 *    `blockwise.relabel` (label blocks + per-block statistics) -> statistics summed (here); same ids as the
 *    in-memory CCL;
 * 4. objects: `blockwise.objects` over id ranges: surfaces, mito skeletons and display meshes on per-instance
 *    crops (objects.ts), merged into the rows (here);
 * 5. ER contacts: `blockwise.contacts` with a halo, merged in block order (contacts.ts);
 * 6. segmentation layer: `blockwise.pyramid` (+ `blockwise.shard`) from the label blocks;
 * 7. contact layer, report, state (here), as the in-memory run writes them.
 * Every reduction reads the tasks' results in block order, so the output is the same bytes whichever executor,
 * however many workers and in whatever order the tasks ran. The work store is removed after a successful run
 * only: a rerun of a killed one skips the tasks it completed and the ingest (resume.ts).
 */
import { promises as fs, readdirSync, readFileSync, rmSync } from "node:fs";
import * as path from "node:path";
import type { Vec3 } from "../../../precomputed/array.js";
import type { VolumeInfo } from "../../../precomputed/info.js";
import { multiresMeshInfo, writeMultiresMeshInfo } from "../../../precomputed/mesh-multires.js";
import { writeSegmentProperties } from "../../../precomputed/segment-properties.js";
import { LocalStorage, type Storage } from "../../../precomputed/storage.js";
import { builtinKinds, defaultContext } from "../../jobs/kinds.js";
import { runTasksInProcess, type RunResult as TaskRunResult } from "../../jobs/local-executor.js";
import { createTasks, taskId, type BBox, type JsonObject, type StageExecutor, type Task } from "../../jobs/tasks.js";
import { storageFor } from "../../storage/index.js";
import { applyContacts, writeContactLayer } from "../contact-layer.js";
import { PipelineError } from "../errors.js";
import { openStack } from "../ingest.js";
import { openSlabInputs } from "../inputs.js";
import { imageLayerInfoFor, LAYER_CHUNK, segmentationLayerInfo, segmentProperties } from "../layers.js";
import type { Progress } from "../progress.js";
import { instanceRows, writeReport } from "../report.js";
import { buildState } from "../state.js";
import { blockIndex, blockName, finishLabels, gatherParts, gatherStats } from "./ccl.js";
import { ContactMerge, haloVoxels } from "./contacts.js";
import { gatherObjects, objectRanges, writeObjectTables } from "./objects.js";
import { planPyramid, shardsOf, withSharding } from "./pyramid.js";
import { BlockStore } from "./store.js";
import { BlockStats } from "./stats.js";
import { pendingTasks, stepKey, sweepTempFiles } from "./resume.js";
import { contactKey } from "./tasks.js";
import { removePrefix, WorkVolume, type WorkVolumeSpec } from "./work-store.js";
import type { TtaMode } from "../segment/tta.js";
import type { ResampleMode } from "../segment/segment.js";

/** layers.ts's chunk: the blockwise layers use the same grid so their chunks are interchangeable. */
const CHUNK: Vec3 = LAYER_CHUNK;
export { DEFAULT_BLOCK_BUDGET } from "./budget.js";
/** Halo of the contact pass in nm: min_dist_er_nm is exact below it and reported as this value above it. */
export const DEFAULT_DISTANCE_CAP_NM = 300;
/** Scales with more chunks than this are written sharded (neuroglancer_uint64_sharded_v1). */
export const DEFAULT_SHARD_ABOVE_CHUNKS = 4096;
/** Instances per `blockwise.objects` task. */
const OBJECTS_PER_TASK = 4;

export interface BlockwiseOptions {
  image: string;
  /** A class volume; absent: the image is aligned (unless `align` is false) and segmented by tasks. */
  labels?: string;
  align?: boolean;
  /** Segmentation model (default the shipped one) and the fragment cleanup's minimum, as the in-memory run. */
  model?: string;
  minFragmentNm3?: number;
  tta?: TtaMode;
  thresholds?: Record<string, number>;
  minAreaNm2?: Record<string, number>;
  resample?: ResampleMode;
  voxelNm: Vec3;
  contactNm: number;
  /** The output. */
  storage: Storage;
  /** The output's location as the tasks open it: an absolute local path or s3://bucket/prefix. */
  outputUrl: string;
  /** The work store's location (local path or s3://); removed at the end. */
  workUrl: string;
  /** A local folder for ingest; when it is the work store itself (local runs) nothing is copied. */
  scratch: string;
  progress: Progress;
  /** Voxels: the largest block + halo of any pass, and the largest object box cut out whole. */
  budget: number;
  /** Processing block shape; default from the budget (planBlocks). */
  blockShape?: Vec3;
  capNm?: number;
  /** redis://HOST:PORT: tasks go to this queue for `vemscope worker`s. Default: run in this process. */
  queue?: string;
  queueName?: string;
  /** Scales with more chunks than this are sharded. Default DEFAULT_SHARD_ABOVE_CHUNKS. */
  shardAboveChunks?: number;
}

export interface BlockPlan {
  blockShape: Vec3;
  region: Vec3;
  halo: Vec3;
}

/**
 * Blocks of whole chunks whose halo box fits the budget (the contact pass holds ~25 bytes per halo-box voxel),
 * largest first; pyramid regions of whole chunks within a quarter of it.
 */
export function planBlocks(shape: Vec3, voxelNm: Vec3, budget: number, capNm: number): BlockPlan {
  const halo = haloVoxels(capNm, voxelNm);
  const clip = (b: Vec3): Vec3 => b.map((v, d) => Math.min(v, shape[d])) as Vec3;
  const vox = (b: Vec3): number => b[0] * b[1] * b[2];
  let best: Vec3 = clip(CHUNK);
  let region: Vec3 = [...CHUNK];
  for (let a = 1; a <= 64; a++) {
    for (let c = 1; c <= 64; c++) {
      const b = clip([CHUNK[0] * a, CHUNK[1] * a, CHUNK[2] * c]);
      const box = clip(b.map((v, d) => v + 2 * halo[d]) as Vec3);
      if (vox(box) <= budget && vox(b) > vox(best)) best = b;
      const r: Vec3 = [CHUNK[0] * a, CHUNK[1] * a, CHUNK[2] * c];
      if (vox(r) <= budget / 4 && vox(clip(r)) > vox(clip(region))) region = r;
    }
  }
  return { blockShape: best, region, halo };
}

/** `base` + "/" + `name` for a local path or an s3:// URL. */
export const joinLocation = (base: string, name: string): string => `${base.replace(/\/+$/, "")}/${name}`;


async function makeExecutor(o: BlockwiseOptions, work: Storage): Promise<StageExecutor> {
  const { progress } = o;
  const registry = o.queue === undefined ? await builtinKinds() : undefined;
  const context = defaultContext();
  return async (stage, all) => {
    // A resumed run skips the tasks a killed one completed (their markers: resume.ts).
    const tasks = await pendingTasks(work, all);
    if (tasks.length === 0) return;
    progress.start(stage, tasks.length, "tasks");
    const onProgress = (p: { done: number; failed: number }) => progress.update(p.done + p.failed);
    let result: TaskRunResult;
    if (o.queue !== undefined) {
      const { runTasksOnQueue } = await import("../../jobs/queue.js");
      try {
        result = await runTasksOnQueue(o.queue, tasks, { queueName: o.queueName, onProgress });
      } catch (e) {
        throw new PipelineError("stage_failed", `${stage}: ${(e as Error).message}`, "--queue", { cause: e });
      }
    } else {
      result = await runTasksInProcess(tasks, { registry, context, onProgress, backoffMs: 200 });
    }
    progress.end();
    if (result.failed > 0) {
      const first = result.deadLetters[0];
      throw new PipelineError(
        "stage_failed",
        `${stage}: ${result.failed} of ${result.total} tasks failed (first: ${first?.taskId}: ${first?.error})` +
          (o.queue !== undefined ? "; see `vemscope worker --queue URL --dead-letters`" : ""),
        o.queue !== undefined ? "--queue" : undefined,
      );
    }
  };
}

/**
 * A coordinator step whose result is kept in the work store: a resumed run takes it from there instead of planning
 * the step's tasks again (their inputs, e.g. the unaligned stack, may already be gone).
 */
async function onceStep<T>(work: Storage, name: string, step: () => Promise<T>): Promise<T> {
  const kept = await work.get(stepKey(name));
  if (kept !== undefined) return JSON.parse(Buffer.from(kept).toString("utf8")) as T;
  const result = await step();
  await work.put(stepKey(name), JSON.stringify(result));
  return result;
}

/** Ingest wrote BlockStore files into scratch/<name>; a work store elsewhere gets them uploaded, then they go. */
async function publish(scratch: string, work: Storage, name: string): Promise<void> {
  if (work instanceof LocalStorage && path.resolve(work.root) === path.resolve(scratch)) return;
  const dir = path.join(scratch, name);
  for (const file of readdirSync(dir).sort()) {
    await work.put(`${name}/${file}`, readFileSync(path.join(dir, file)));
    rmSync(path.join(dir, file));
  }
}

export async function runBlockwise(o: BlockwiseOptions): Promise<{ instances: number; plan: BlockPlan }> {
  const inputs = o.labels !== undefined ? await openSlabInputs(o.image, o.labels) : undefined;
  const image = inputs?.image ?? (await openStack(o.image, "image"));
  const shape: Vec3 = [...image.shape];
  const align = inputs === undefined && o.align !== false;
  const capNm = o.capNm ?? DEFAULT_DISTANCE_CAP_NM;
  if (!(o.contactNm < capNm)) throw new PipelineError("bad_argument", `the contact threshold must stay below the ${capNm} nm distance cap of out-of-core runs`, "--contact-nm");
  const plan = planBlocks(shape, o.voxelNm, o.budget, capNm);
  if (o.blockShape) plan.blockShape = o.blockShape.map((v, d) => Math.min(v, shape[d])) as Vec3;
  const shardAbove = o.shardAboveChunks ?? DEFAULT_SHARD_ABOVE_CHUNKS;
  const { progress, storage, voxelNm } = o;
  const work = storageFor(o.workUrl);
  const execute = await makeExecutor(o, work);
  const common: JsonObject = { work: o.workUrl };
  try {
    // 1. ingest
    const bits = image.bits;
    const uint8 = bits === 8;
    const { info: plainImageInfo, gzip: imageGzip } = imageLayerInfoFor(uint8, shape, voxelNm);
    const imageInfo = withSharding(plainImageInfo, shardAbove);
    const imageStages = planPyramid(imageInfo, "image", "image", o.budget);
    const imageSpec = imageStages[0].source;
    const classesSpec: WorkVolumeSpec = { name: "classes", shape, blockShape: plan.blockShape, type: "uint8" };
    const plane = shape[0] * shape[1];
    const perRead = Math.max(1, Math.min(64, Math.floor(o.budget / 8 / plane)));
    // The unaligned stack in whole-section slabs: alignment tasks read sections, never boxes.
    const rawSpec: WorkVolumeSpec = { name: "raw", shape, blockShape: [shape[0], shape[1], Math.min(shape[2], Math.max(1, Math.min(16, perRead)))], type: uint8 ? "uint8" : "uint16" };
    const imageTarget = align ? rawSpec : imageSpec;
    const names = inputs ? ["classes", imageTarget.name] : [imageTarget.name];
    // Ingest is redone whole unless it finished: its block files are appended section by section.
    const ingested = (await work.get(stepKey("ingest"))) !== undefined;
    if (!ingested) {
      for (const name of names) await fs.rm(path.join(o.scratch, name), { recursive: true, force: true });
      const classStore = inputs ? new BlockStore<Uint8Array>(path.join(o.scratch, "classes"), shape, plan.blockShape, "uint8") : undefined;
      const imageStore = new BlockStore<Uint8Array | Uint16Array>(path.join(o.scratch, imageTarget.name), shape, imageTarget.blockShape, uint8 ? "uint8" : "uint16");
      progress.start("read slabs", shape[2], "sections");
      for (let z0 = 0; z0 < shape[2]; z0 += perRead) {
        const z1 = Math.min(shape[2], z0 + perRead);
        const classes = inputs ? await inputs.readClasses(z0, z1) : undefined;
        const sections = await image.read(z0, z1);
        for (let z = z0; z < z1; z++) {
          if (classes) classStore?.appendSection(z, classes.subarray((z - z0) * plane, (z - z0 + 1) * plane));
          imageStore.appendSection(z, sections.subarray((z - z0) * plane, (z - z0 + 1) * plane));
        }
        progress.update(z1);
      }
      progress.end();
      for (const name of names) await publish(o.scratch, work, name);
      await work.put(stepKey("ingest"), "");
    }

    // 1a. alignment and segmentation, when no labels were given
    if (align) {
      const report = await onceStep(work, "align", async () => {
        const { alignOnTasks } = await import("../align/tasks.js");
        return alignOnTasks({ execute, work, workUrl: o.workUrl, raw: rawSpec, aligned: imageSpec, progress, file: o.image });
      });
      await storage.put("report/alignment.json", JSON.stringify(report, null, 1));
      await new WorkVolume(work, rawSpec).remove();
    }
    if (!inputs) {
      const record = await onceStep(work, "segment", async () => {
        const { segmentOnTasks } = await import("../segment/tasks.js");
        const r = await segmentOnTasks({ execute, work, workUrl: o.workUrl, image: imageSpec, classes: classesSpec, model: o.model, voxelNm, minFragmentNm3: o.minFragmentNm3, tta: o.tta, thresholds: o.thresholds, minAreaNm2: o.minAreaNm2, resample: o.resample, progress });
        // The in-memory run's key order, so report/segmentation.json is the same bytes.
        return { model: r.model, tta: r.tta, thresholds: r.thresholds, min_area_nm2: r.min_area_nm2, min_fragment_nm3: r.min_fragment_nm3, fragments_reassigned: r.fragments_reassigned, voxels_reassigned: r.voxels_reassigned, ...(r.inferred_pixel_nm ? { inferred_pixel_nm: r.inferred_pixel_nm } : {}) };
      });
      await storage.put("report/segmentation.json", JSON.stringify(record, null, 1));
    }

    // 2. image layer
    await writeLayer(execute, storage, o, "image", imageInfo, imageStages, imageGzip);
    await new WorkVolume(work, imageSpec).remove();

    // 3. instances
    const blockTasks = (kind: string, params: JsonObject, halo?: Vec3): Task[] => createTasks(kind, shape, plan.blockShape, { ...common, ...params }, { halo });
    await execute("instances: blocks", blockTasks("blockwise.ccl", { classes: classesSpec }));
    const { parts } = await gatherParts(work, classesSpec);
    await execute("instances: faces", blockTasks("blockwise.stitch", { classes: classesSpec }));
    const cc = await finishLabels(work, classesSpec, parts);
    // Run-length encoded: the labels are the work store's largest traffic (crops, halo boxes, pyramid), mostly runs.
    const labelsSpec: WorkVolumeSpec = { name: "labels", shape, blockShape: plan.blockShape, type: "uint32", codec: "rle" };
    await execute("instances: labels", blockTasks("blockwise.relabel", { classes: classesSpec, labels: labelsSpec }));
    await new WorkVolume(work, classesSpec).remove();
    const stats = new BlockStats(shape);
    await gatherStats(work, classesSpec, stats);
    const instanceStats = stats.finish(cc.count);
    const components = { labels: new Uint32Array(0), count: cc.count, classOf: cc.classOf, voxels: cc.voxels };
    const rows = instanceRows(components, shape, voxelNm, instanceStats);

    // 4. objects
    const meshPrefix = "segmentation/mesh";
    await writeMultiresMeshInfo(storage, meshPrefix, multiresMeshInfo({ vertexQuantizationBits: 10 }));
    await writeObjectTables(work, rows, instanceStats.bbox);
    const ranges = objectRanges(cc.count, OBJECTS_PER_TASK);
    const objectParams: JsonObject = { ...common, labels: labelsSpec, output: o.outputUrl, mesh_prefix: meshPrefix, voxel_nm: voxelNm, crop_budget: o.budget };
    await execute(
      "objects",
      ranges.map(([first, end]): Task => {
        const bbox: BBox = { start: [first, 0, 0], end: [end, 1, 1] };
        return { id: taskId("blockwise.objects", bbox), kind: "blockwise.objects", bbox, halo: [0, 0, 0], params: objectParams };
      }),
    );
    const oversized = await gatherObjects(work, rows, ranges);

    // 5. contacts
    await execute(
      "ER contacts",
      blockTasks("blockwise.contacts", { labels: labelsSpec, voxel_nm: voxelNm, threshold_nm: o.contactNm, cap_nm: capNm }, plan.halo),
    );
    const merge = new ContactMerge(cc.classOf, shape, o.contactNm, capNm);
    for (const t of blockTasks("blockwise.contacts", {})) {
      const key = contactKey(blockName(blockIndex(labelsSpec, t.bbox.start)));
      const bytes = await work.get(key);
      if (!bytes) throw new PipelineError("stage_failed", "contact block result missing", key);
      merge.addPacked(bytes, key);
    }
    const contacts = merge.finish();
    applyContacts(rows, contacts);

    // 6. segmentation layer
    const segInfo = withSharding(segmentationLayerInfo(shape, voxelNm), shardAbove);
    await writeLayer(execute, storage, o, "segmentation", segInfo, planPyramid(segInfo, labelsSpec, "segmentation", o.budget), true);
    await writeSegmentProperties(storage, "segmentation/segment_properties", segmentProperties(rows));

    // 7. contact layer, report, state
    await writeContactLayer(storage, "contacts", contacts, voxelNm, shape);
    await writeReport(storage, rows, shape, voxelNm, o.contactNm);
    await storage.put(
      "report/blockwise.json",
      JSON.stringify(
        {
          block_shape_voxels: plan.blockShape,
          halo_voxels: plan.halo,
          min_dist_er_cap_nm: capNm,
          min_dist_er_note: `min_dist_er_nm is exact below ${capNm} nm; a value of ${capNm} means "at least ${capNm} nm" (contact_in_plane is then empty)`,
          oversized_ids: oversized,
          oversized_note: "boxes larger than the crop budget: no surface or skeleton columns; display mesh from an in-plane coarsened mask",
          budget_voxels: o.budget,
        },
        null,
        1,
      ),
    );
    const state = buildState({ voxelNm, size: shape, classOf: cc.classOf, annotationLayers: [{ name: "ER contacts", folder: "contacts" }] });
    await storage.put("state.json", JSON.stringify(state, null, 1));
    // Only a finished run drops its work store: a failed or killed one keeps it for a rerun to continue.
    await fs.rm(o.scratch, { recursive: true, force: true });
    if (!(work instanceof LocalStorage)) await removePrefix(work, "").catch(() => undefined);
    else await fs.rm(work.root, { recursive: true, force: true });
    if (storage instanceof LocalStorage) await sweepTempFiles(storage.root);
    return { instances: cc.count, plan };
  } catch (e) {
    // A separate local ingest folder (s3:// work store) is not resumed from; the work store itself is kept.
    if (!(work instanceof LocalStorage && path.resolve(work.root) === path.resolve(o.scratch))) await fs.rm(o.scratch, { recursive: true, force: true });
    throw e;
  }
}

/** A multiscale layer: info here, the scales by pyramid tasks stage by stage, then shard files. */
async function writeLayer(
  execute: StageExecutor,
  storage: Storage,
  o: BlockwiseOptions,
  name: string,
  info: VolumeInfo,
  stages: ReturnType<typeof planPyramid>,
  gzip: boolean,
): Promise<void> {
  await storage.put(`${name}/info`, JSON.stringify(info, null, 1));
  const layer = joinLocation(o.outputUrl, name);
  for (const stage of stages) {
    const size = info.scales[stage.sourceScale].size;
    const params: JsonObject = { work: o.workUrl, layer, layer_name: name, gzip, stage: { ...stage, keep: stage.keep ?? null } };
    const last = stage.sourceScale + stage.levels;
    const first = stage.sourceScale === 0 ? 0 : stage.sourceScale + 1;
    await execute(`${name} layer: ${first === last ? `scale ${last}` : `scales ${first}-${last}`}`, createTasks("blockwise.pyramid", size, stage.block, params));
    if (stage.sourceScale > 0) await new WorkVolume(storageFor(o.workUrl), stage.source).remove();
  }
  for (let s = 0; s < info.scales.length; s++) {
    const scale = info.scales[s];
    const sharding = scale.sharding;
    if (!sharding) continue;
    const tasks = shardsOf({ ...scale, sharding }).map((shard): Task => {
      const n = Number(shard);
      const bbox: BBox = { start: [n, 0, 0], end: [n + 1, 1, 1] };
      return { id: taskId("blockwise.shard", bbox), kind: "blockwise.shard", bbox, halo: [0, 0, 0], params: { work: o.workUrl, layer, layer_name: name, scale: s } };
    });
    await execute(`${name} layer: shards of scale ${s}`, tasks);
  }
}
