import { UnrecoverableError, Worker, type Job } from "bullmq";
import { JobError } from "./errors.js";
import { builtinKinds, defaultContext, type TaskContext, type TaskKindRegistry } from "./kinds.js";
import { describeError, isPermanent, type DeadLetter } from "./local-executor.js";
import { checkQueueName, DEFAULT_QUEUE, keys, type JobPayload } from "./queue.js";
import { RedisConnections, redactRedisUrl, type RedisCommands } from "./redis.js";
import { parseTask } from "./tasks.js";

/**
 * The worker side: consumes a queue's tasks until closed. A task is marked done in Redis only after its kind
 * has written all outputs, so a worker killed at any point loses nothing: BullMQ's lock on the job expires,
 * another worker's stalled check puts it back in the queue, and the re-run rewrites the same bytes.
 */

export interface WorkerEvent {
  type: "started" | "completed" | "retrying" | "failed";
  taskId: string;
  runId: string;
  attempt: number;
  error?: string;
  ms?: number;
}

export interface StartWorkerOptions {
  queueName?: string;
  /** Tasks this process runs at once. Default 1. */
  concurrency?: number;
  /**
   * How long a job stays locked without a heartbeat before another worker may take it. Default 30 s.
   * Lower it (tests) for faster take-over after a crash; keep it well above one event-loop stall.
   */
  lockDurationMs?: number;
  /** How often this worker looks for jobs whose lock expired. Default 30 s (BullMQ's). */
  stalledIntervalMs?: number;
  /** Times a job may be recovered from a crashed worker before it counts as failed. Default 5. */
  maxStalledCount?: number;
  registry?: TaskKindRegistry;
  context?: TaskContext;
  onEvent?: (e: WorkerEvent) => void;
}

export interface RunningWorker {
  /** Finishes the tasks in hand, then disconnects. */
  close(): Promise<void>;
}

export async function startWorker(url: string, options: StartWorkerOptions = {}): Promise<RunningWorker> {
  const queueName = checkQueueName(options.queueName ?? DEFAULT_QUEUE);
  const registry = options.registry ?? (await builtinKinds());
  const context = options.context ?? defaultContext();
  const emit = options.onEvent ?? (() => {});
  const concurrency = options.concurrency ?? 1;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new JobError("invalid_argument", "concurrency must be an integer >= 1");
  const conns = new RedisConnections(url);
  const redis = await conns.command();
  try {
    return await consume(queueName, conns, redis, registry, context, emit, concurrency, options);
  } catch (e) {
    await conns.close();
    throw e instanceof JobError ? e : new JobError("queue", `worker on ${redactRedisUrl(url)} did not start: ${(e as Error).message}`, { cause: e });
  }
}

async function consume(
  queueName: string,
  conns: RedisConnections,
  redis: RedisCommands,
  registry: TaskKindRegistry,
  context: TaskContext,
  emit: (e: WorkerEvent) => void,
  concurrency: number,
  options: StartWorkerOptions,
): Promise<RunningWorker> {
  const processJob = async (job: Job<JobPayload>): Promise<void> => {
    const runId = String(job.data.runId);
    let task;
    try {
      task = parseTask(job.data.task);
    } catch (e) {
      throw new UnrecoverableError(describeError(e));
    }
    const t0 = Date.now();
    emit({ type: "started", taskId: task.id, runId, attempt: job.attemptsMade + 1 });
    try {
      await registry.get(task.kind).run(task, context);
    } catch (e) {
      // Retrying a malformed task or an unknown kind only delays the dead letter.
      if (isPermanent(e)) throw new UnrecoverableError(describeError(e));
      throw e instanceof Error ? e : new Error(String(e));
    }
    await redis.sadd(keys.done(queueName, runId), task.id);
    emit({ type: "completed", taskId: task.id, runId, attempt: job.attemptsMade + 1, ms: Date.now() - t0 });
  };

  const worker = new Worker<JobPayload>(queueName, processJob, {
    connection: conns.bull(),
    concurrency,
    lockDuration: options.lockDurationMs ?? 30_000,
    stalledInterval: options.stalledIntervalMs ?? 30_000,
    maxStalledCount: options.maxStalledCount ?? 5,
    autorun: true,
  });

  worker.on("failed", (job, err) => {
    if (!job) return;
    const data = job.data;
    const taskId = typeof data?.task?.id === "string" ? data.task.id : String(job.id);
    const runId = String(data?.runId);
    // finishedOn is set only when BullMQ gave up on the job (no attempts left or unrecoverable).
    const final = typeof job.finishedOn === "number";
    const error = err.name === "UnrecoverableError" ? err.message : describeError(err);
    emit({ type: final ? "failed" : "retrying", taskId, runId, attempt: job.attemptsMade, error });
    if (!final) return;
    const letter: DeadLetter = { taskId, task: data.task, error, attempts: job.attemptsMade, at: new Date().toISOString() };
    redis.hset(keys.dead(queueName, runId), taskId, JSON.stringify(letter)).catch(() => {
      // The coordinator also finds failed jobs that no worker recorded (queue.ts recordUnseenFailures).
    });
  });
  worker.on("error", () => {
    // Connection trouble: BullMQ retries on its own; the coordinator's timeout bounds the wait.
  });
  try {
    await worker.waitUntilReady();
  } catch (e) {
    await worker.close().catch(() => undefined);
    throw e;
  }

  return {
    async close() {
      await worker.close();
      await conns.close();
    },
  };
}
