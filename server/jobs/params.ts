/**
 * Parsing of a task's params (plain JSON) for the task kinds: each helper returns the typed value or throws
 * JobError "invalid_task" with `<task id>: <why>`, so a bad task fails before it reads or writes anything.
 */
import type { Vec3 } from "../../precomputed/array.js";
import type { Storage } from "../../precomputed/storage.js";
import type { WorkVolumeSpec } from "../pipeline/blockwise/work-store.js";
import type { StoreType } from "../pipeline/blockwise/store.js";
import { JobError } from "./errors.js";
import type { TaskContext } from "./kinds.js";
import type { Json, Task } from "./tasks.js";

export const isObject = (v: unknown): v is Record<string, Json> => typeof v === "object" && v !== null && !Array.isArray(v);

/** 3 positive safe integers (a shape or block shape). */
export const isShape = (v: unknown): v is Vec3 => Array.isArray(v) && v.length === 3 && v.every((n) => Number.isSafeInteger(n) && (n as number) > 0);

/** 3 positive finite numbers (a voxel size). */
export const isPositiveVec3 = (v: unknown): v is Vec3 => Array.isArray(v) && v.length === 3 && v.every((n) => typeof n === "number" && Number.isFinite(n) && n > 0);

export function badTask(task: Task, why: string): never {
  throw new JobError("invalid_task", `${task.id}: ${why}`);
}

export function strParam(task: Task, name: string): string {
  const v = task.params[name];
  if (typeof v !== "string" || v.length === 0) badTask(task, `params.${name} must be a non-empty string`);
  return v;
}

/** A non-empty string, or undefined where the param is absent or null. */
export function optStrParam(task: Task, name: string): string | undefined {
  const v = task.params[name];
  if (v === undefined || v === null) return undefined;
  return strParam(task, name);
}

/** A finite number. */
export function numParam(task: Task, name: string): number {
  const v = task.params[name];
  if (typeof v !== "number" || !Number.isFinite(v)) badTask(task, `params.${name} must be a number`);
  return v;
}

/** A safe integer >= min. */
export function intParam(task: Task, name: string, min = 0): number {
  const v = task.params[name];
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min) badTask(task, `params.${name} must be an integer >= ${min}`);
  return v;
}

export function objectParam(task: Task, name: string): Record<string, Json> {
  const v = task.params[name];
  if (!isObject(v)) badTask(task, `params.${name} must be an object`);
  return v;
}

/** 3 positive finite numbers. */
export function positiveVec3Param(task: Task, name: string): Vec3 {
  const v = task.params[name];
  if (!isPositiveVec3(v)) badTask(task, `params.${name} must be 3 positive numbers`);
  return v;
}

/** The storage named by a URL param (the run's work store by default). */
export const storageParam = (task: Task, ctx: TaskContext, name = "work"): Storage => ctx.storage(strParam(task, name));

const ALL_TYPES: readonly StoreType[] = ["uint8", "uint16", "uint32"];

/**
 * A work volume {name, shape, blockShape, type, codec?: "rle"} given as JSON (`label` names it in the error, e.g.
 * "stage.source" for a nested one), of one of `types`.
 */
export function workVolumeOf(task: Task, v: Json | undefined, label: string, types: readonly StoreType[] = ALL_TYPES): WorkVolumeSpec {
  if (
    !isObject(v) ||
    typeof v.name !== "string" ||
    !isShape(v.shape) ||
    !isShape(v.blockShape) ||
    typeof v.type !== "string" ||
    !(types as readonly string[]).includes(v.type) ||
    !(v.codec === undefined || v.codec === null || v.codec === "rle")
  ) {
    return badTask(task, `params.${label} must be a work volume {name, shape, blockShape, type: ${types.join(" | ")}, codec?: "rle"}`);
  }
  return { name: v.name, shape: v.shape, blockShape: v.blockShape, type: v.type as StoreType, ...(v.codec === "rle" ? { codec: "rle" as const } : {}) };
}

/** The work volume in `params[name]`, of one of `types` (default: any). */
export const workVolumeParam = (task: Task, name: string, types?: readonly StoreType[]): WorkVolumeSpec => workVolumeOf(task, task.params[name], name, types);

/** The size of a task's bbox. */
export const extentOf = (task: Task): Vec3 => task.bbox.end.map((e, d) => e - task.bbox.start[d]) as Vec3;

/** A block task's bbox must be one block of the volume (the last clipped to its shape). */
export function checkBlock(task: Task, spec: WorkVolumeSpec): void {
  const ok = [0, 1, 2].every((d) => task.bbox.start[d] % spec.blockShape[d] === 0 && task.bbox.end[d] === Math.min(task.bbox.start[d] + spec.blockShape[d], spec.shape[d]));
  if (!ok) badTask(task, `bbox must be one ${spec.blockShape.join("x")} block of ${spec.name} (${spec.shape.join("x")})`);
}
