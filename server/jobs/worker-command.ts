import { JobError } from "./errors.js";
import { DEFAULT_QUEUE, listDeadLetters } from "./queue.js";
import { startWorker, type WorkerEvent } from "./worker.js";

/**
 * `vemscope worker --queue redis://HOST:PORT [--concurrency N] [--queue-name NAME] [--lock-ms MS]`
 * consumes tasks until SIGINT / SIGTERM (finishing the tasks in hand first);
 * `vemscope worker --queue URL --dead-letters [--run ID]` prints the dead-letter list as JSON lines and exits.
 * Bad options throw JobError "invalid_argument" (the CLI turns it into a usage message).
 */

export interface WorkerCommandOptions {
  queue: string | undefined;
  concurrency?: string;
  queueName?: string;
  lockMs?: string;
  deadLetters?: boolean;
  run?: string;
  out: (line: string) => void;
  err: (line: string) => void;
}

function positiveInt(v: string | undefined, name: string, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new JobError("invalid_argument", `--${name}: expected an integer >= 1, got '${v}'`);
  return n;
}

/** `vemscope worker`'s default task lock (--lock-ms). */
export const DEFAULT_WORKER_LOCK_MS = 300_000;

export async function workerCommand(o: WorkerCommandOptions): Promise<number> {
  if (!o.queue) throw new JobError("invalid_argument", "missing --queue redis://HOST:PORT");
  if (!o.queue.startsWith("redis://")) throw new JobError("invalid_argument", `--queue: expected redis://HOST:PORT, got '${o.queue}'`);
  const queueName = o.queueName ?? DEFAULT_QUEUE;
  if (o.deadLetters) {
    for (const d of await listDeadLetters(o.queue, { queueName, runId: o.run })) o.out(JSON.stringify(d));
    return 0;
  }
  const concurrency = positiveInt(o.concurrency, "concurrency", 1);
  // Tasks are CPU-bound and mostly synchronous: BullMQ renews a lock from a timer, which cannot fire while a kernel
  // runs, so a lock shorter than the longest task makes other workers run it again (seen: 30 s locks and 30-50 s
  // alignment tasks ran 2-3 times each). A killed worker's task is picked up after at most this long.
  const lockMs = positiveInt(o.lockMs, "lock-ms", DEFAULT_WORKER_LOCK_MS);
  const log = (e: WorkerEvent): void => {
    const tail = e.type === "completed" ? ` ${e.ms} ms` : e.error ? `: ${e.error}` : "";
    o.err(`${e.type} ${e.taskId} (run ${e.runId}, attempt ${e.attempt})${tail}`);
  };
  const worker = await startWorker(o.queue, {
    queueName,
    concurrency,
    lockDurationMs: lockMs,
    // Look for crashed workers' jobs about as often as a lock can expire.
    stalledIntervalMs: Math.max(500, Math.floor(lockMs / 2)),
    onEvent: log,
  });
  o.out(`worker pid ${process.pid} on ${o.queue} queue ${queueName}, concurrency ${concurrency}`);
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  await worker.close();
  const { maxRSS: rss, userCPUTime, systemCPUTime } = process.resourceUsage();
  // CPU seconds beside RSS: on a shared machine they measure a worker's work where wall time does not.
  o.out(`worker pid ${process.pid} stopped; peak RSS ${(rss / 1024).toFixed(1)} MiB; CPU ${((userCPUTime + systemCPUTime) / 1e6).toFixed(1)} s`);
  return 0;
}
