import type { Storage } from "../../precomputed/storage.js";
import { storageFor } from "../storage/index.js";
import { JobError } from "./errors.js";
import type { Task } from "./tasks.js";

/**
 * Task kinds are a registry: a worker runs any task whose kind it has. A kind's `run` must be idempotent:
 * it writes only keys derived from the task, each atomically, with bytes that depend on the inputs alone,
 * so a retry, a duplicate delivery or a resumed run leaves the same output.
 */

export interface TaskContext {
  /** Opens a storage location named in the task's params (local path or s3://). */
  storage(url: string): Storage;
}

export interface TaskOutcome {
  /** Output keys written (for logs and tests). */
  outputs: string[];
}

export interface TaskKind {
  name: string;
  summary: string;
  run(task: Task, ctx: TaskContext): Promise<TaskOutcome>;
}

export class TaskKindRegistry {
  private readonly kinds = new Map<string, TaskKind>();

  register(kind: TaskKind): this {
    if (this.kinds.has(kind.name)) throw new JobError("invalid_argument", `task kind ${kind.name} is already registered`);
    this.kinds.set(kind.name, kind);
    return this;
  }

  get(name: string): TaskKind {
    const k = this.kinds.get(name);
    if (!k) throw new JobError("unknown_kind", `no task kind ${JSON.stringify(name)} (known: ${this.names().join(", ") || "none"})`);
    return k;
  }

  names(): string[] {
    return [...this.kinds.keys()].sort();
  }
}

/** Storages are cached per URL within a process: S3 clients keep their connection pools warm. */
export function defaultContext(): TaskContext {
  const open = new Map<string, Storage>();
  return {
    storage(url: string): Storage {
      let s = open.get(url);
      if (!s) open.set(url, (s = storageFor(url)));
      return s;
    },
  };
}

/** The kinds every vemscope worker knows. */
export async function builtinKinds(): Promise<TaskKindRegistry> {
  const { downsampleKind } = await import("./kinds/downsample.js");
  // The out-of-core run's stages (server/pipeline/blockwise/tasks.ts): ccl, stitch, relabel, contacts, pyramid, shard.
  const { blockwiseKinds } = await import("../pipeline/blockwise/tasks.js");
  // Alignment and segmentation of out-of-core runs without --labels (align/tasks.ts, segment/tasks.ts).
  const { alignKinds } = await import("../pipeline/align/tasks.js");
  const { segmentKinds } = await import("../pipeline/segment/tasks.js");
  const registry = new TaskKindRegistry().register(downsampleKind);
  for (const kind of [...blockwiseKinds, ...alignKinds, ...segmentKinds]) registry.register(kind);
  return registry;
}
