/**
 * The out-of-core run's stages as task kinds (server/jobs): plain JSON over bounding boxes, run by the in-process
 * executor or by `vemscope worker`s on a queue. Every kind reads the run's work store (`params.work`, a local
 * folder every worker mounts at the same path, or s3://) and writes only keys derived from its bbox, each in one
 * atomic put, with bytes that depend on the inputs alone: retries and duplicate deliveries are harmless.
 *
 *   blockwise.ccl       bbox = a block   local CCL, summary + boundary planes          (ccl.ts)
 *   blockwise.stitch    bbox = a block   provisional id pairs across its low faces    (ccl.ts)
 *   blockwise.relabel   bbox = a block   final labels + the block's instance stats   (ccl.ts)
 *   blockwise.objects   bbox = [first id, 0, 0]-[end id, 1, 1]   surfaces, skeletons, meshes     (objects.ts)
 *   blockwise.contacts  bbox = a block, halo = the distance cap   ER distances and contact voxels (contacts.ts)
 *   blockwise.pyramid   bbox = a block of a stage's source scale  chunks of the scales it makes   (pyramid.ts)
 *   blockwise.shard     bbox = [shard, 0, 0]-[shard + 1, 1, 1]    one shard file of a sharded scale
 */
import type { Vec3 } from "../../../precomputed/array.js";
import { validateInfo } from "../../../precomputed/info.js";
import { readStoredJson } from "../../../precomputed/keys.js";
import { JobError } from "../../jobs/errors.js";
import type { TaskKind } from "../../jobs/kinds.js";
import { badTask, checkBlock, extentOf, isObject, isShape, numParam, positiveVec3Param, storageParam, strParam, workVolumeOf, workVolumeParam } from "../../jobs/params.js";
import type { Task } from "../../jobs/tasks.js";
import { cclBlockTask, relabelBlockTask, stitchBlockTask, CCL_KEYS, blockName, blockIndex } from "./ccl.js";
import { contactBox, contactsOfBlock, packContactBlock } from "./contacts.js";
import { objectsTask } from "./objects.js";
import { pyramidTask, shardTask, type PyramidStage } from "./pyramid.js";
import { resumable } from "./resume.js";
import { WorkVolume } from "./work-store.js";

export const cclKind: TaskKind = {
  name: "blockwise.ccl",
  summary: "local 26-connected components of one block, with its summary and boundary planes",
  async run(task, ctx) {
    const classes = workVolumeParam(task, "classes");
    checkBlock(task, classes);
    return { outputs: await cclBlockTask(storageParam(task, ctx), classes, task.bbox.start, extentOf(task)) };
  },
};

export const stitchKind: TaskKind = {
  name: "blockwise.stitch",
  summary: "component pairs joined across one block's low faces",
  async run(task, ctx) {
    const classes = workVolumeParam(task, "classes");
    checkBlock(task, classes);
    return { outputs: await stitchBlockTask(storageParam(task, ctx), classes, task.bbox.start, extentOf(task)) };
  },
};

export const relabelKind: TaskKind = {
  name: "blockwise.relabel",
  summary: "final instance labels and statistics of one block",
  async run(task, ctx) {
    const classes = workVolumeParam(task, "classes");
    const labels = workVolumeParam(task, "labels");
    checkBlock(task, classes);
    return { outputs: await relabelBlockTask(storageParam(task, ctx), classes, labels, task.bbox.start, extentOf(task)) };
  },
};

export const contactKey = (b: string): string => `contacts/${b}`;

export const contactsKind: TaskKind = {
  name: "blockwise.contacts",
  summary: "ER distances and contact voxels of one block, read with a halo",
  async run(task, ctx) {
    const store = storageParam(task, ctx);
    const labelsSpec = workVolumeParam(task, "labels");
    const voxelNm = positiveVec3Param(task, "voxel_nm");
    const classOf = await store.get(CCL_KEYS.classOf);
    if (!classOf) throw new JobError("task_failed", `${task.id}: ${CCL_KEYS.classOf} missing from the work store`);
    const req = {
      volumeShape: labelsSpec.shape,
      origin: task.bbox.start,
      extent: extentOf(task),
      halo: task.halo,
      voxelNm,
      thresholdNm: numParam(task, "threshold_nm"),
      capNm: numParam(task, "cap_nm"),
      classOf,
    };
    const box = contactBox(req);
    const labels = await new WorkVolume<Uint32Array>(store, labelsSpec).readBox(box.origin, box.shape);
    const key = contactKey(blockName(blockIndex(labelsSpec, task.bbox.start)));
    await store.put(key, packContactBlock(contactsOfBlock(labels, req)));
    return { outputs: [key] };
  },
};

function stageOf(task: Task): PyramidStage {
  const s = task.params.stage;
  if (!isObject(s) || typeof s.sourceScale !== "number" || typeof s.levels !== "number" || !isShape(s.block)) badTask(task, "params.stage must be {sourceScale, levels, block, source, keep?}");
  return {
    sourceScale: s.sourceScale as number,
    levels: s.levels as number,
    block: s.block as Vec3,
    source: workVolumeOf(task, s.source, "stage.source"),
    keep: s.keep === undefined || s.keep === null ? undefined : workVolumeOf(task, s.keep, "stage.keep"),
  };
}

export const pyramidKind: TaskKind = {
  name: "blockwise.pyramid",
  summary: "one block of a layer's scales, from a lossless work volume",
  async run(task, ctx) {
    const layer = ctx.storage(strParam(task, "layer"));
    const info = validateInfo(await readStoredJson(layer, "info", "layer info"));
    const stage = stageOf(task);
    if (stage.sourceScale + stage.levels >= info.scales.length) badTask(task, "the stage needs more scales than the layer has");
    await pyramidTask({ layer, work: storageParam(task, ctx), layerName: strParam(task, "layer_name"), info, stage, gzip: task.params.gzip !== false, start: task.bbox.start, end: task.bbox.end });
    return { outputs: [] };
  },
};

export const shardKind: TaskKind = {
  name: "blockwise.shard",
  summary: "one shard file of a sharded scale, from the encoded chunks the pyramid tasks left",
  async run(task, ctx) {
    const layer = ctx.storage(strParam(task, "layer"));
    const info = validateInfo(await readStoredJson(layer, "info", "layer info"));
    const scale = numParam(task, "scale");
    if (!Number.isInteger(scale) || scale < 0 || scale >= info.scales.length) badTask(task, "params.scale is not a scale of the layer");
    const outputs = await shardTask(layer, storageParam(task, ctx), strParam(task, "layer_name"), info, scale, BigInt(task.bbox.start[0]));
    return { outputs };
  },
};

export const objectsKind: TaskKind = {
  name: "blockwise.objects",
  summary: "surfaces, mito skeletons and display meshes of a range of instance ids, from crops of the label blocks",
  async run(task, ctx) {
    const store = storageParam(task, ctx);
    const labelsSpec = workVolumeParam(task, "labels");
    const voxelNm = positiveVec3Param(task, "voxel_nm");
    const first = task.bbox.start[0];
    if (first < 1) badTask(task, "bbox x is the id range and starts at 1");
    const outputs = await objectsTask({
      work: store,
      labels: new WorkVolume<Uint32Array>(store, labelsSpec),
      output: ctx.storage(strParam(task, "output")),
      meshPrefix: strParam(task, "mesh_prefix"),
      first,
      end: task.bbox.end[0],
      voxelNm,
      cropBudget: numParam(task, "crop_budget"),
    });
    return { outputs };
  },
};

/** Each marks its task done in the work store after its outputs, so a rerun of a killed run skips it (resume.ts). */
export const blockwiseKinds: TaskKind[] = [cclKind, stitchKind, relabelKind, objectsKind, contactsKind, pyramidKind, shardKind].map(resumable);
