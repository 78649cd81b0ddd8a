/**
 * A queue worker for tests, run as a child process:
 *   node --import tsx test/helpers/job-worker.ts REDIS_URL [LOCK_MS] [QUEUE,QUEUE...]
 * (one BullMQ worker per queue named, default queue "vemscope").
 * Besides the built-in kinds it knows two test kinds:
 *   test.slow-write  waits params.ms, then writes params.out/<task id sanitised> with the task's bbox (atomic put)
 *   test.fail        always throws "deliberate failure <task id>"
 * Prints one line per worker event on stdout ("started <task id>", ...), so a test can kill it mid-task.
 */
import { LocalStorage } from "../../precomputed/storage.js";
import { builtinKinds } from "../../server/jobs/kinds.js";
import { startWorker } from "../../server/jobs/worker.js";

const [url, lockArg, queuesArg] = process.argv.slice(2);
if (!url) throw new Error("usage: job-worker.ts REDIS_URL [LOCK_MS] [QUEUE,QUEUE...]");
const lockMs = Number(lockArg ?? 1000);

const registry = (await builtinKinds())
  .register({
    name: "test.slow-write",
    summary: "sleep, then write one small object",
    async run(task) {
      await new Promise((r) => setTimeout(r, Number(task.params.ms ?? 0)));
      const key = task.id.replace(/[^A-Za-z0-9_.-]/g, "_");
      await new LocalStorage(String(task.params.out)).put(key, JSON.stringify(task.bbox));
      return { outputs: [key] };
    },
  })
  .register({
    name: "test.fail",
    summary: "always fails",
    async run(task) {
      throw new Error(`deliberate failure ${task.id}`);
    },
  });

const workers = await Promise.all(
  (queuesArg ?? "vemscope").split(",").map((queueName) =>
    startWorker(url, {
      queueName,
      registry,
      lockDurationMs: lockMs,
      stalledIntervalMs: Math.max(200, lockMs / 2),
      onEvent: (e) => process.stdout.write(`${e.type} ${e.taskId}${e.error ? ` ${e.error}` : ""}\n`),
    }),
  ),
);
process.stdout.write(`ready ${process.pid}\n`);
const stop = async () => {
  await Promise.all(workers.map((w) => w.close()));
  process.exit(0);
};
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
