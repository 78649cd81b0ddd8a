import type { Vec3, Volume } from "../../precomputed/array.js";
import { multiresMeshInfo, writeMultiresMeshInfo } from "../../precomputed/mesh-multires.js";
import { buildSegmentProperties, writeSegmentProperties } from "../../precomputed/segment-properties.js";
import type { VolumeInfo } from "../../precomputed/info.js";
import type { Storage } from "../../precomputed/storage.js";
import { makeInfo, writeVolume } from "../../precomputed/volume-io.js";
import { CLASSES } from "./classes.js";
import { PipelineError } from "./errors.js";
import type { Components } from "./label.js";
import { MESH_QUANTIZATION_BITS, segmentMeshObjects, type MeshJob, type StoredObject } from "./mesh-job.js";
import { instanceStats, type InstanceStats } from "./stats.js";
import { processPool, requestedWorkers } from "./workers/pool.js";
import type { Progress } from "./progress.js";
import type { InstanceRow } from "./report.js";

/** Chunks of 128 x 128 x 16 voxels: about 640 x 640 x 720 nm at 5 x 5 x 45, near-cubic in space. */
/** Chunk shape of every volumetric layer vemscope writes (both the in-memory and the out-of-core run). */
export const LAYER_CHUNK: Vec3 = [128, 128, 16];
const CHUNK = LAYER_CHUNK;

/** The image layer's info, and whether its chunks are gzipped (raw 16-bit) or not (jpeg 8-bit). */
export function imageLayerInfo(image: Volume<Uint8Array | Uint16Array>, voxelNm: Vec3): { info: VolumeInfo; gzip: boolean } {
  return imageLayerInfoFor(image.data instanceof Uint8Array, image.shape, voxelNm);
}

/** The image layer's info from its bit depth and shape alone (the out-of-core run never holds the volume). */
export function imageLayerInfoFor(uint8: boolean, shape: Vec3, voxelNm: Vec3): { info: VolumeInfo; gzip: boolean } {
  const info = makeInfo({
    type: "image",
    dataType: uint8 ? "uint8" : "uint16",
    size: shape,
    resolution: voxelNm,
    chunkSize: CHUNK,
    // JPEG only exists for 8-bit; 16-bit keeps its full range in gzipped raw chunks.
    encoding: uint8 ? "jpeg" : "raw",
  });
  return { info, gzip: !uint8 };
}

/** The segmentation layer's info: uint32 compressed_segmentation with multires meshes and segment properties. */
export function segmentationLayerInfo(shape: Vec3, voxelNm: Vec3): VolumeInfo {
  return makeInfo({
    type: "segmentation",
    dataType: "uint32",
    size: shape,
    resolution: voxelNm,
    chunkSize: CHUNK,
    encoding: "compressed_segmentation",
    blockSize: [8, 8, 8],
    mesh: "mesh",
    segmentProperties: "segment_properties",
  });
}

export async function writeImageLayer(storage: Storage, prefix: string, image: Volume<Uint8Array | Uint16Array>, voxelNm: Vec3, progress: Progress): Promise<void> {
  const { info, gzip } = imageLayerInfo(image, voxelNm);
  await writeVolume(storage, prefix, info, image, { gzip, onProgress: stageProgress(progress, "image layer", "chunks") });
  progress.end();
}

export interface SegmentationLayerOptions {
  /** instanceStats of the components when the caller has them (analyseClasses does), else computed here. */
  stats?: InstanceStats;
  /**
   * The display meshes, already started by startSegmentMeshes on the same components with `<prefix>/mesh`
   * (run.ts starts them before the ER contacts, so the worker pool meshes while this thread measures); started
   * here when not given. Closed here either way.
   */
  meshes?: SegmentMeshes;
}

export async function writeSegmentationLayer(
  storage: Storage,
  prefix: string,
  components: Components,
  rows: readonly InstanceRow[],
  shape: Vec3,
  voxelNm: Vec3,
  progress: Progress,
  opts: SegmentationLayerOptions = {},
): Promise<void> {
  const stats = opts.stats ?? instanceStats(components.labels, shape, components.count);
  const info = segmentationLayerInfo(shape, voxelNm);
  // Meshing starts first, on worker threads, so that it overlaps the chunk encoding on this thread.
  const meshes = opts.meshes ?? startSegmentMeshes(components, stats, shape, voxelNm, `${prefix}/mesh`);
  try {
    if (meshes.meshPrefix !== `${prefix}/mesh`) throw new PipelineError("stage_failed", `internal: meshes started for ${meshes.meshPrefix}, written under ${prefix}/mesh`);
    await writeVolume(storage, prefix, info, { data: components.labels, shape }, { gzip: true, onProgress: stageProgress(progress, "segmentation", "chunks") });
    progress.end();
    await writeSegmentProperties(storage, `${prefix}/segment_properties`, segmentProperties(rows));
    await writeMultiresMeshInfo(storage, `${prefix}/mesh`, multiresMeshInfo({ vertexQuantizationBits: MESH_QUANTIZATION_BITS }));
    progress.start("meshes", meshes.results.length, "segments");
    await meshes.drainHere();
    let done = 0;
    // In id order, as the meshes come: the write order (and so the folder) does not depend on thread timing.
    for (const result of meshes.results) {
      for (const o of await result()) await storage.put(o.key, o.data, o.options);
      progress.update(++done);
    }
    progress.end();
  } finally {
    await meshes.close();
  }
}

/** Display meshes being made (startSegmentMeshes), for writeSegmentationLayer. */
export interface SegmentMeshes {
  meshPrefix: string;
  /** Per segment with voxels, in id order: its stored objects (a job not started yet runs here when asked). */
  results: (() => Promise<StoredObject[]>)[];
  /** Runs the jobs no worker has taken yet on this thread. */
  drainHere(): Promise<void>;
  /** Withdraws the jobs no worker has taken yet. */
  close(): Promise<void>;
}

/**
 * Display meshes of every segment, one job each, on the process's worker pool over a shared copy of the labels
 * (jobs largest box first, so one big ER network does not finish last alone). Measurements never use these
 * meshes (surface.ts measures areas). VEMSCOPE_WORKERS=0 keeps everything on this thread; a job whose worker
 * fails is redone here.
 */
export function startSegmentMeshes(components: Components, stats: InstanceStats, shape: Vec3, voxelNm: Vec3, meshPrefix: string): SegmentMeshes {
  const ids: number[] = [];
  for (let id = 1; id <= components.count; id++) if (stats.voxels[id] > 0) ids.push(id);
  const job = (labels: Uint32Array, id: number): MeshJob => ({ labels, shape, voxelNm, id, bbox: Array.from(stats.bbox.subarray(6 * id, 6 * id + 6)), meshPrefix });
  const local = (id: number): Promise<StoredObject[]> => segmentMeshObjects(job(components.labels, id));
  const size = workerCount(ids.length);
  if (size === 0) {
    // Each job starts when the writer asks for it, so only one mesh is held at a time.
    return { meshPrefix, results: ids.map((id) => () => local(id)), drainHere: async () => undefined, close: async () => undefined };
  }
  // analyseClasses already hands over its labels in shared memory when it used threads.
  let shared = components.labels;
  if (!(shared.buffer instanceof SharedArrayBuffer)) {
    shared = new Uint32Array(new SharedArrayBuffer(components.labels.byteLength));
    shared.set(components.labels);
  }
  const pool = processPool(size);
  const group = {};
  const volume = (id: number): number => {
    const b = stats.bbox.subarray(6 * id, 6 * id + 6);
    return (b[3] - b[0]) * (b[4] - b[1]) * (b[5] - b[2]);
  };
  const byId = new Map<number, Promise<StoredObject[]>>();
  let closed = false;
  for (const id of [...ids].sort((a, b) => volume(b) - volume(a))) {
    const p = pool.run("mesh", job(shared, id), [], group).catch((e: unknown) => (closed ? Promise.reject(e) : local(id)));
    p.catch(() => undefined); // awaited later in id order; an early failure must not count as unhandled
    byId.set(id, p);
  }
  return {
    meshPrefix,
    results: ids.map((id) => () => byId.get(id) ?? local(id)),
    // Jobs no worker has taken yet run here, on the labels as they are (the same numbers).
    drainHere: () => pool.drainHere((_kind, input) => segmentMeshObjects({ ...(input as MeshJob), labels: components.labels }), group),
    // The pool serves the whole run; only this writer's jobs that never started are withdrawn.
    close: async () => {
      closed = true;
      pool.cancel(group);
    },
  };
}

function workerCount(jobs: number): number {
  const requested = requestedWorkers();
  return jobs < 2 ? 0 : Math.min(requested, jobs);
}

/** Adapts a (done, total) callback to a Progress stage that starts on the first call, when the total is known. */
function stageProgress(progress: Progress, name: string, unit: string): (done: number, total: number) => void {
  let started = false;
  return (done, total) => {
    if (!started) {
      progress.start(name, total, unit);
      started = true;
    }
    progress.update(done);
  };
}

/** Label, class tag and every numeric column, so Neuroglancer's own segment table can sort and filter. */
export function segmentProperties(rows: readonly InstanceRow[]) {
  const tagIndex = new Map(CLASSES.map((c, i) => [c.name, i]));
  const cell = (r: InstanceRow, k: string): unknown => (r as unknown as Record<string, unknown>)[k];
  // A column joins when any row measured it; rows where it does not apply carry -1 (JSON has no NaN), and
  // booleans become 0/1, so Neuroglancer's query box can filter e.g. `in_contact=1`.
  const numeric = Object.keys(rows[0] ?? {}).filter(
    (k) => k !== "id" && rows.some((r) => typeof cell(r, k) === "number" || typeof cell(r, k) === "boolean"),
  );
  return buildSegmentProperties({
    ids: rows.map((r) => r.id),
    label: rows.map((r) => `${r.class} ${r.id}`),
    tags: {
      names: CLASSES.map((c) => c.name),
      descriptions: CLASSES.map((c) => c.label),
      values: rows.map((r) => {
        const t = tagIndex.get(r.class);
        return t === undefined ? [] : [t];
      }),
    },
    numbers: numeric.map((k) => ({
      id: k,
      type: "float32" as const,
      values: rows.map((r) => {
        const v = cell(r, k);
        return typeof v === "number" ? v : typeof v === "boolean" ? Number(v) : -1;
      }),
    })),
  });
}
