/**
 * The kernels a worker thread can run, by name. Inputs and outputs cross threads by structured clone, so they
 * are plain data and typed arrays (views on a SharedArrayBuffer are shared, not copied).
 */
import type { MessagePort } from "node:worker_threads";
import { encodeChunkJob, type ChunkJob } from "../../edits/chunk-job.js";
import type { FigureJob, RenderedFigure } from "../figures-job.js";
import { segmentMeshObjects, type MeshJob } from "../mesh-job.js";
import { measureObject, type ObjectJob } from "../object-measures.js";

/** Kernels for the asynchronous pool (pool.ts). */
export const KERNELS = {
  mesh: (job: MeshJob) => segmentMeshObjects(job),
  // Vega is loaded only by the thread that renders (~1.3 s of CPU to load).
  figures: async (job: FigureJob): Promise<RenderedFigure[]> => (await import("../figures-job.js")).renderFigureJob(job),
  // The editor's commit: scale 0's changed chunks, encoded beside the pyramid update (edits/chunk-job.ts).
  editChunks: (job: ChunkJob) => encodeChunkJob(job),
};

/** Synchronous kernels, for work shared with a helper thread (shared-jobs.ts). */
export const SYNC_KERNELS = {
  object: (job: ObjectJob) => measureObject(job),
};

export type SyncKernelName = keyof typeof SYNC_KERNELS;
export type SyncKernelInput<K extends SyncKernelName> = Parameters<(typeof SYNC_KERNELS)[K]>[0];
export type SyncKernelOutput<K extends SyncKernelName> = ReturnType<(typeof SYNC_KERNELS)[K]>;

export type KernelName = keyof typeof KERNELS;
export type KernelInput<K extends KernelName> = Parameters<(typeof KERNELS)[K]>[0];
export type KernelOutput<K extends KernelName> = Awaited<ReturnType<(typeof KERNELS)[K]>>;

/** A batch of synchronous jobs for one pool worker (shared-jobs.ts): claimed through `counter`, results to `port`. */
export interface SharedBatch {
  kind: SyncKernelName;
  inputs: unknown[];
  /** [next job to claim, jobs the worker finished], on a SharedArrayBuffer. */
  counter: Int32Array;
  port: MessagePort;
}

export type KernelRequest = { seq: number; kind: KernelName; input: unknown } | { seq: number; kind: "shared"; input: SharedBatch };

export type KernelReply = { seq: number; ok: true; output: unknown } | { seq: number; ok: false; message: string };

/** Buffers of the typed arrays inside a value (not shared ones), so a reply moves them instead of copying. */
export function transferables(value: unknown, out: ArrayBuffer[] = []): ArrayBuffer[] {
  if (ArrayBuffer.isView(value)) {
    if (value.buffer instanceof ArrayBuffer && !out.includes(value.buffer)) out.push(value.buffer);
  } else if (Array.isArray(value)) {
    for (const v of value) transferables(v, out);
  } else if (typeof value === "object" && value !== null) {
    for (const v of Object.values(value)) transferables(v, out);
  }
  return out;
}
