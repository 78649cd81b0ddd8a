import type { Vec3 } from "../../precomputed/array.js";
import { JobError } from "./errors.js";

/**
 * The unit of distributed work: plain JSON, so it travels through a queue, a log or a file unchanged.
 * A task covers `bbox` (voxel coordinates, end exclusive) and may read `halo` voxels beyond it on each side
 * (clipped at the volume's bounds); it writes only what belongs to `bbox`, so tasks never write the same
 * output key and any task can run anywhere, any number of times.
 */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export interface BBox {
  start: Vec3;
  end: Vec3;
}

export interface Task {
  /** Deterministic from kind and bbox: the same plan gives the same ids, which is what makes runs resumable. */
  id: string;
  kind: string;
  bbox: BBox;
  halo: Vec3;
  params: JsonObject;
}

const KIND = /^[a-z][a-z0-9-]*(\.[a-z0-9-]+)*$/;

/** Runs one stage's tasks (in process or on a queue) and throws if any failed: what the coordinators plan against. */
export type StageExecutor = (stage: string, tasks: Task[]) => Promise<void>;

export function taskId(kind: string, bbox: BBox): string {
  return `${kind}/${bbox.start.join("_")}-${bbox.end.join("_")}`;
}

const isVec3 = (v: unknown, positive = false): v is Vec3 =>
  Array.isArray(v) && v.length === 3 && v.every((n) => Number.isSafeInteger(n) && (!positive || n > 0));

export interface CreateTasksOptions {
  /** Voxels each task may read beyond its block, per axis. Default [0, 0, 0]. */
  halo?: Vec3;
  /** Absolute coordinate of the volume's first voxel (a scale's voxel_offset). Default [0, 0, 0]. */
  origin?: Vec3;
}

/**
 * Cuts a volume into blocks of `blockShape` (the last block on each axis clipped at the edge), one task each,
 * z-major like the chunk grid, so neighbouring tasks are adjacent in the queue.
 */
export function createTasks(kind: string, volumeShape: Vec3, blockShape: Vec3, params: JsonObject = {}, options: CreateTasksOptions = {}): Task[] {
  if (!KIND.test(kind)) throw new JobError("invalid_argument", `task kind ${JSON.stringify(kind)} must be lowercase words joined by '-' or '.'`);
  if (!isVec3(volumeShape, true)) throw new JobError("invalid_argument", "volumeShape must be 3 positive integers");
  if (!isVec3(blockShape, true)) throw new JobError("invalid_argument", "blockShape must be 3 positive integers");
  const halo = options.halo ?? [0, 0, 0];
  const origin = options.origin ?? [0, 0, 0];
  if (!isVec3(halo) || halo.some((h) => h < 0)) throw new JobError("invalid_argument", "halo must be 3 non-negative integers");
  if (!isVec3(origin)) throw new JobError("invalid_argument", "origin must be 3 integers");
  const tasks: Task[] = [];
  for (let z = 0; z < volumeShape[2]; z += blockShape[2]) {
    for (let y = 0; y < volumeShape[1]; y += blockShape[1]) {
      for (let x = 0; x < volumeShape[0]; x += blockShape[0]) {
        const rel: Vec3 = [x, y, z];
        const start = rel.map((r, d) => origin[d] + r) as Vec3;
        const end = rel.map((r, d) => origin[d] + Math.min(r + blockShape[d], volumeShape[d])) as Vec3;
        const bbox = { start, end };
        tasks.push({ id: taskId(kind, bbox), kind, bbox, halo: [...halo], params: structuredClone(params) });
      }
    }
  }
  return tasks;
}

/** The box a task reads: its bbox grown by the halo, clipped to `bounds`. */
export function readBox(task: Task, bounds: BBox): BBox {
  return {
    start: task.bbox.start.map((s, d) => Math.max(bounds.start[d], s - task.halo[d])) as Vec3,
    end: task.bbox.end.map((e, d) => Math.min(bounds.end[d], e + task.halo[d])) as Vec3,
  };
}

export function voxelsOf(task: Task): number {
  return task.bbox.end.reduce((n, e, d) => n * (e - task.bbox.start[d]), 1);
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** Checks a task that arrived as JSON (from a queue or a file). */
export function parseTask(v: unknown): Task {
  const bad = (why: string): never => {
    throw new JobError("invalid_task", `not a task: ${why}`);
  };
  if (!isObject(v)) return bad("expected an object");
  if (typeof v.kind !== "string" || !KIND.test(v.kind)) return bad("kind");
  if (!isObject(v.bbox) || !isVec3(v.bbox.start) || !isVec3(v.bbox.end)) return bad("bbox needs start and end, 3 integers each");
  const bbox = { start: v.bbox.start, end: v.bbox.end };
  if (bbox.start.some((s, d) => s >= bbox.end[d])) return bad("bbox is empty");
  if (!isVec3(v.halo) || v.halo.some((h) => h < 0)) return bad("halo must be 3 non-negative integers");
  if (!isObject(v.params)) return bad("params must be an object");
  const id = taskId(v.kind, bbox);
  if (v.id !== undefined && v.id !== id) return bad(`id ${JSON.stringify(v.id)} does not match kind and bbox (${id})`);
  return { id, kind: v.kind, bbox, halo: v.halo, params: v.params as JsonObject };
}
