/**
 * The kernels a worker thread can run, by name. Inputs and outputs cross threads by structured clone, so they
 * are plain data and typed arrays (views on a SharedArrayBuffer are shared, not copied).
 */
import { segmentMeshObjects, type MeshJob } from "../mesh-job.js";
import { measureObject, type ObjectJob } from "../object-measures.js";

/** Kernels for the asynchronous pool (pool.ts). */
export const KERNELS = {
  mesh: (job: MeshJob) => segmentMeshObjects(job),
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

export interface KernelRequest {
  seq: number;
  kind: KernelName;
  input: unknown;
}

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
