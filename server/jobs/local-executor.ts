import { builtinKinds, defaultContext, type TaskContext, type TaskKindRegistry } from "./kinds.js";
import { JobError } from "./errors.js";
import type { Task } from "./tasks.js";

/** What both executors report while running and return at the end. */
export interface RunProgress {
  total: number;
  /** Finished successfully (in this run or, on a queue, an earlier attempt of it). */
  done: number;
  /** Ended in the dead-letter list. */
  failed: number;
  /** Already done before this call (resumed runs). */
  skipped: number;
}

export interface DeadLetter {
  taskId: string;
  task: Task;
  error: string;
  attempts: number;
  /** ISO time of the last failure. */
  at: string;
}

export interface RunResult extends RunProgress {
  deadLetters: DeadLetter[];
}

export interface RetryPolicy {
  /** Tries per task, the first included. Default 3. */
  attempts?: number;
  /** Wait before retry n (1-based) is backoffMs x 2^(n-1). Default 1000. */
  backoffMs?: number;
}

export interface LocalRunOptions extends RetryPolicy {
  registry?: TaskKindRegistry;
  context?: TaskContext;
  /** Tasks in flight at once. Default 1: kernels are CPU-bound and the event loop is one core. */
  concurrency?: number;
  onProgress?: (p: RunProgress) => void;
}

/** Errors that no retry can fix: the task itself is wrong. */
export const isPermanent = (e: unknown): boolean => e instanceof JobError && (e.code === "invalid_task" || e.code === "unknown_kind");

/** The message, prefixed with the error's type unless it is a plain Error. */
export const describeError = (e: unknown): string =>
  e instanceof Error ? (e.name === "Error" ? e.message : `${e.name}: ${e.message}`) : String(e);

/**
 * The default executor: runs tasks in this process with the same retry policy and dead-letter semantics as
 * the queue, so a pipeline can switch between the two without behaving differently.
 */
export async function runTasksInProcess(tasks: readonly Task[], options: LocalRunOptions = {}): Promise<RunResult> {
  const registry = options.registry ?? (await builtinKinds());
  const context = options.context ?? defaultContext();
  const attempts = Math.max(1, options.attempts ?? 3);
  const backoffMs = options.backoffMs ?? 1000;
  const concurrency = Math.max(1, options.concurrency ?? 1);
  const progress: RunProgress = { total: tasks.length, done: 0, failed: 0, skipped: 0 };
  const deadLetters: DeadLetter[] = [];
  const seen = new Set<string>();
  for (const t of tasks) {
    if (seen.has(t.id)) throw new JobError("invalid_argument", `duplicate task id ${t.id}`);
    seen.add(t.id);
  }
  let next = 0;
  const runOne = async (task: Task): Promise<void> => {
    for (let attempt = 1; ; attempt++) {
      try {
        await registry.get(task.kind).run(task, context);
        progress.done++;
        return;
      } catch (e) {
        if (attempt >= attempts || isPermanent(e)) {
          deadLetters.push({ taskId: task.id, task, error: describeError(e), attempts: attempt, at: new Date().toISOString() });
          progress.failed++;
          return;
        }
        await new Promise((r) => setTimeout(r, backoffMs * 2 ** (attempt - 1)));
      }
    }
  };
  const lane = async (): Promise<void> => {
    while (next < tasks.length) {
      const task = tasks[next++];
      await runOne(task);
      options.onProgress?.({ ...progress });
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, tasks.length) }, lane));
  return { ...progress, deadLetters };
}
