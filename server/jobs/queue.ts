import { createHash } from "node:crypto";
import { Queue } from "bullmq";
import { JobError } from "./errors.js";
import type { DeadLetter, RetryPolicy, RunProgress, RunResult } from "./local-executor.js";
import { RedisConnections, type RedisCommands } from "./redis.js";
import type { Task } from "./tasks.js";

/**
 * The distributed executor's coordinator side: `runTasksOnQueue` enqueues a run's tasks on a BullMQ queue,
 * waits while any number of `vemscope worker`s (worker.ts) run them, and reports progress from Redis.
 *
 * Redis keys (besides BullMQ's own under `bull:<queue>:`):
 *   vemscope:<queue>:runs               SET of run ids
 *   vemscope:<queue>:run:<id>:done      SET of task ids finished (added by the worker after its outputs are written)
 *   vemscope:<queue>:run:<id>:dead      HASH task id -> DeadLetter JSON
 * Resuming: the same tasks give the same run id (a hash of the plan), tasks in `done` are skipped, dead ones
 * get a fresh set of attempts, and tasks still queued from the interrupted run are not queued twice (the job
 * id is `<run>.<task id>`).
 */

export const DEFAULT_QUEUE = "vemscope";

export const keys = {
  runs: (queue: string) => `vemscope:${queue}:runs`,
  done: (queue: string, runId: string) => `vemscope:${queue}:run:${runId}:done`,
  dead: (queue: string, runId: string) => `vemscope:${queue}:run:${runId}:dead`,
};

export interface JobPayload {
  runId: string;
  task: Task;
}

export const jobIdFor = (runId: string, taskId: string): string => `${runId}.${taskId}`;

export function checkQueueName(name: string): string {
  if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new JobError("invalid_argument", `queue name ${JSON.stringify(name)}: letters, digits, '_', '.', '-' only`);
  return name;
}

/** A run id from the plan: re-running the same command resumes instead of starting over. */
export function runIdFor(tasks: readonly Task[]): string {
  const h = createHash("sha256");
  for (const t of tasks) h.update(JSON.stringify([t.id, t.halo, t.params])).update("\n");
  return h.digest("hex").slice(0, 16);
}

export interface QueueRunOptions extends RetryPolicy {
  queueName?: string;
  /** Default: runIdFor(tasks). */
  runId?: string;
  /** How often progress is read from Redis. Default 250 ms. */
  pollMs?: number;
  onProgress?: (p: RunProgress & { runId: string }) => void;
  /** Give up waiting (the run stays resumable). Default: wait forever. */
  timeoutMs?: number;
}

export interface QueueRunResult extends RunResult {
  runId: string;
}

function parseDeadLetters(values: string[]): DeadLetter[] {
  return values
    .map((v) => JSON.parse(v) as DeadLetter)
    .sort((a, b) => (a.taskId < b.taskId ? -1 : a.taskId > b.taskId ? 1 : 0));
}

/** Enqueues the tasks not yet done, waits until every task is done or dead, and returns the tally. */
export async function runTasksOnQueue(url: string, tasks: readonly Task[], options: QueueRunOptions = {}): Promise<QueueRunResult> {
  const queueName = checkQueueName(options.queueName ?? DEFAULT_QUEUE);
  const runId = options.runId ?? runIdFor(tasks);
  if (!/^[A-Za-z0-9_-]+$/.test(runId)) throw new JobError("invalid_argument", `run id ${JSON.stringify(runId)}: letters, digits, '_', '-' only`);
  const byId = new Map<string, Task>();
  for (const t of tasks) {
    if (byId.has(t.id)) throw new JobError("invalid_argument", `duplicate task id ${t.id}`);
    byId.set(t.id, t);
  }
  const conns = new RedisConnections(url);
  try {
    const redis = await conns.command();
    const doneKey = keys.done(queueName, runId);
    const deadKey = keys.dead(queueName, runId);
    await redis.sadd(keys.runs(queueName), runId);
    const already = new Set(await redis.smembers(doneKey));
    const skipped = tasks.filter((t) => already.has(t.id)).length;
    const queue = new Queue<JobPayload>(queueName, { connection: conns.bull() });
    try {
      // Dead tasks of an earlier attempt get another chance: forget the letter and the failed job.
      const deadBefore = (await redis.hkeys(deadKey)).filter((id) => byId.has(id));
      for (const job of await queue.getFailed()) {
        if (job.id?.startsWith(`${runId}.`)) await job.remove().catch(() => undefined);
      }
      await redis.hdel(deadKey, ...deadBefore);
      const todo = tasks.filter((t) => !already.has(t.id));
      const attempts = Math.max(1, options.attempts ?? 3);
      const backoffMs = options.backoffMs ?? 1000;
      for (let i = 0; i < todo.length; i += 500) {
        await queue.addBulk(
          todo.slice(i, i + 500).map((task) => ({
            name: task.kind,
            data: { runId, task },
            opts: {
              jobId: jobIdFor(runId, task.id),
              attempts,
              backoff: { type: "exponential", delay: backoffMs },
              removeOnComplete: true,
              // Kept so a failure that no worker recorded (a job stalled too often) is still found below.
              removeOnFail: false,
            },
          })),
        );
      }
      return await waitForRun(redis, queue, runId, byId, skipped, options);
    } finally {
      await queue.close();
    }
  } finally {
    await conns.close();
  }
}

async function waitForRun(
  redis: RedisCommands,
  queue: Queue<JobPayload>,
  runId: string,
  byId: Map<string, Task>,
  skipped: number,
  options: QueueRunOptions,
): Promise<QueueRunResult> {
  const queueName = queue.name;
  const total = byId.size;
  const pollMs = options.pollMs ?? 250;
  const started = Date.now();
  let last = "";
  let idlePolls = 0;
  for (;;) {
    const done = await redis.scard(keys.done(queueName, runId));
    const failed = await redis.hlen(keys.dead(queueName, runId));
    const progress = { total, done, failed, skipped, runId };
    const stamp = `${done}/${failed}`;
    if (stamp !== last) {
      last = stamp;
      options.onProgress?.(progress);
    }
    if (done + failed >= total) {
      const deadLetters = parseDeadLetters(await redis.hvals(keys.dead(queueName, runId)));
      return { ...progress, deadLetters };
    }
    if (options.timeoutMs !== undefined && Date.now() - started > options.timeoutMs) {
      throw new JobError("queue", `run ${runId}: ${done + failed} of ${total} tasks finished after ${options.timeoutMs} ms; run again to resume`);
    }
    // Nothing left to run yet not all accounted for: find failures no worker recorded (jobs that stalled
    // more often than allowed are failed by BullMQ's stalled checker, not by our processor).
    const counts = await queue.getJobCounts("waiting", "active", "delayed", "prioritized", "waiting-children");
    idlePolls = Object.values(counts).every((n) => n === 0) ? idlePolls + 1 : 0;
    if (idlePolls >= 2) {
      await recordUnseenFailures(redis, queue, runId, byId);
      const after = (await redis.scard(keys.done(queueName, runId))) + (await redis.hlen(keys.dead(queueName, runId)));
      if (after < total && idlePolls >= 8) {
        throw new JobError("queue", `run ${runId}: ${total - after} tasks are neither done, failed nor queued (queue emptied by hand?); run again to re-enqueue them`);
      }
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

async function recordUnseenFailures(redis: RedisCommands, queue: Queue<JobPayload>, runId: string, byId: Map<string, Task>): Promise<void> {
  const deadKey = keys.dead(queue.name, runId);
  const known = new Set(await redis.hkeys(deadKey));
  for (const job of await queue.getFailed()) {
    const taskId = job.id?.startsWith(`${runId}.`) ? job.id.slice(runId.length + 1) : undefined;
    const task = taskId === undefined ? undefined : byId.get(taskId);
    if (!task || known.has(task.id)) continue;
    const letter: DeadLetter = {
      taskId: task.id,
      task,
      error: job.failedReason || "failed",
      attempts: job.attemptsMade,
      at: new Date(job.finishedOn ?? Date.now()).toISOString(),
    };
    await redis.hset(deadKey, task.id, JSON.stringify(letter));
  }
}

/** Dead letters of one run, or of every run the queue has seen. Sorted by task id. */
export async function listDeadLetters(url: string, options: { queueName?: string; runId?: string } = {}): Promise<(DeadLetter & { runId: string })[]> {
  const queueName = checkQueueName(options.queueName ?? DEFAULT_QUEUE);
  const conns = new RedisConnections(url);
  try {
    const redis = await conns.command();
    const runs = options.runId !== undefined ? [options.runId] : (await redis.smembers(keys.runs(queueName))).sort();
    const out: (DeadLetter & { runId: string })[] = [];
    for (const runId of runs) {
      for (const d of parseDeadLetters(await redis.hvals(keys.dead(queueName, runId)))) out.push({ ...d, runId });
    }
    return out;
  } finally {
    await conns.close();
  }
}
