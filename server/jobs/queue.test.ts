import { spawn, type ChildProcess } from "node:child_process";
import { promises as fs } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalStorage } from "../../precomputed/storage.js";
import { startRedis, type RunningService } from "../../test/helpers/services.js";
import { planDownsample } from "./kinds/downsample.js";
import { runTasksInProcess } from "./local-executor.js";
import { TaskKindRegistry } from "./kinds.js";
import { keys, listDeadLetters, runTasksOnQueue } from "./queue.js";
import { startWorker } from "./worker.js";
import { writeLayerOnQueue } from "./pyramid.js";
import { imageLayerInfo, writeImageLayer } from "../pipeline/layers.js";
import { silentProgress } from "../pipeline/progress.js";
import { Redis } from "ioredis";
import { JobError } from "./errors.js";
import { createTasks } from "./tasks.js";
import { layerInfo, snapshot, syntheticVolume, writeScaleZero } from "./test-support.js";

// Real redis-server on loopback, real worker processes (the CLI's `vemscope worker` and a test worker with
// extra kinds), real SIGKILL. No mocks.

interface Child {
  proc: ChildProcess;
  output: () => string;
}

function startChild(args: string[]): Promise<Child> {
  const proc = spawn(process.execPath, ["--import", "tsx", ...args], { cwd: process.cwd(), stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stdout?.on("data", (b: Buffer) => (out += b.toString()));
  proc.stderr?.on("data", (b: Buffer) => (out += b.toString()));
  const child = { proc, output: () => out };
  return waitFor(child, /^(worker pid|ready) /m, 40_000).then(() => child);
}

function waitFor(child: Child, pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const tick = () => {
      const m = child.output().match(pattern);
      if (m) return resolve(m);
      if (child.proc.exitCode !== null) return reject(new Error(`child exited (${child.proc.exitCode}) before ${pattern}:\n${child.output()}`));
      if (Date.now() - started > timeoutMs) return reject(new Error(`no ${pattern} within ${timeoutMs} ms:\n${child.output()}`));
      setTimeout(tick, 50);
    };
    tick();
  });
}

function stop(child: Child): Promise<void> {
  if (child.proc.exitCode !== null || child.proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.proc.once("exit", () => resolve());
    child.proc.kill("SIGTERM");
    setTimeout(() => child.proc.kill("SIGKILL"), 10_000).unref();
  });
}

let redis: RunningService;
let dir: string;
const children: Child[] = [];
// Started once (process start-up dominates on a loaded 2-core machine): the CLI's worker on queue "pyramid",
// and two test workers on "pyramid" and the default queue with 1 s locks.
let cliWorker: Child;
let testWorkers: Child[];
beforeAll(async () => {
  redis = await startRedis();
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "vemscope-queue-"));
  const started = await Promise.all([
    startChild(["scripts/vemscope.ts", "worker", "--queue", redis.url, "--queue-name", "pyramid", "--lock-ms", "5000"]),
    startChild(["test/helpers/job-worker.ts", redis.url, "1000", "pyramid,vemscope"]),
    startChild(["test/helpers/job-worker.ts", redis.url, "1000", "pyramid,vemscope"]),
  ]);
  children.push(...started);
  [cliWorker, ...testWorkers] = started;
});
afterAll(async () => {
  await Promise.all(children.map(stop));
  await redis?.stop();
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

describe("BullMQ executor", () => {
  it("three worker processes (one `vemscope worker`) write the same bytes as the in-process executor; a resumed run redoes only what is missing", async () => {
    const workers = [cliWorker, ...testWorkers];
    const info = layerInfo("image", [100, 72, 20], [8, 8, 4], 4);
    const volume = syntheticVolume("image", [100, 72, 20], 3);
    const local = path.join(dir, "local");
    const queued = path.join(dir, "queued");
    await writeScaleZero(new LocalStorage(local), info, volume);
    await writeScaleZero(new LocalStorage(queued), info, volume);
    const plan = (layer: string) => planDownsample(info, { layer, levels: info.scales.length - 1 }, [16, 16, 4]).tasks;
    await runTasksInProcess(plan(local));
    const tasks = plan(queued);
    const progress: number[] = [];
    const result = await runTasksOnQueue(redis.url, tasks, { queueName: "pyramid", pollMs: 50, timeoutMs: 40_000, onProgress: (p) => progress.push(p.done) });
    expect(result).toMatchObject({ total: tasks.length, done: tasks.length, failed: 0, skipped: 0, deadLetters: [] });
    expect(progress[progress.length - 1]).toBe(tasks.length);
    const want = await snapshot(local);
    const got = await snapshot(queued);
    expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
    for (const [k, bytes] of want) expect(got.get(k)?.equals(bytes), k).toBe(true);
    const completions = workers.map((w) => (w.output().match(/^completed /gm) ?? []).length);
    expect(completions.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(tasks.length);

    // An interrupted run: one task's outputs lost and not marked done. Running the same plan again
    // (same run id, from the plan's hash) skips the rest and restores exactly those bytes.
    const victim = tasks[tasks.length - 1];
    const conn = new Redis(redis.url);
    await conn.srem(keys.done("pyramid", result.runId), victim.id);
    await conn.quit();
    const lost = [...got.keys()].filter((k) => !k.startsWith("8_8_16/") && k !== "info");
    for (const k of lost) await fs.rm(path.join(queued, k));
    const again = await runTasksOnQueue(redis.url, tasks, { queueName: "pyramid", pollMs: 50, timeoutMs: 30_000 });
    expect(again).toMatchObject({ runId: result.runId, skipped: tasks.length - 1, done: tasks.length, failed: 0 });
    const restored = await snapshot(queued);
    // Only the victim's chunks come back; the others stay deleted, which proves nothing else re-ran.
    const victimKeys = [...restored.keys()].filter((k) => lost.includes(k));
    expect(victimKeys.length).toBeGreaterThan(0);
    for (const k of victimKeys) expect(restored.get(k)?.equals(want.get(k) ?? Buffer.alloc(0)), k).toBe(true);
    expect(victimKeys.length).toBeLessThan(lost.length);
  });

  it("a worker killed mid-task (SIGKILL) loses nothing: its task is taken over when the lock expires", async () => {
    const out = path.join(dir, "slow");
    const [a, b] = testWorkers;
    const tasks = createTasks("test.slow-write", [4, 1, 1], [1, 1, 1], { ms: 1500, out });
    const run = runTasksOnQueue(redis.url, tasks, { pollMs: 50, backoffMs: 50, timeoutMs: 40_000 });
    const [, taskId] = await waitFor(a, /^started (test\.slow-write\/\S+)$/m, 30_000);
    a.proc.kill("SIGKILL");
    const result = await run;
    expect(result).toMatchObject({ done: 4, failed: 0, deadLetters: [] });
    const completedLine = new RegExp(`^completed ${taskId.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}$`, "m");
    expect(a.output()).not.toMatch(completedLine);
    expect(b.output()).toMatch(completedLine);
    const written = await new LocalStorage(out).list("");
    expect(written).toHaveLength(4);
  });

  it("a task that always throws ends in the dead-letter list with its error, after its retries", async () => {
    const tasks = [...createTasks("test.fail", [1, 1, 1], [1, 1, 1]), ...createTasks("no-such-kind", [1, 1, 1], [1, 1, 1])];
    const result = await runTasksOnQueue(redis.url, tasks, { pollMs: 50, attempts: 3, backoffMs: 50, runId: "failing", timeoutMs: 30_000 });
    expect(result.done).toBe(0);
    expect(result.failed).toBe(2);
    expect(result.deadLetters.map((d) => [d.taskId, d.attempts])).toEqual([
      ["no-such-kind/0_0_0-1_1_1", 1],
      ["test.fail/0_0_0-1_1_1", 3],
    ]);
    expect(result.deadLetters[1].error).toBe("deliberate failure test.fail/0_0_0-1_1_1");
    expect(result.deadLetters[0].error).toMatch(/no task kind "no-such-kind"/);
    expect(await listDeadLetters(redis.url, { runId: "failing" })).toEqual(result.deadLetters.map((d) => ({ ...d, runId: "failing" })));
    const cli = await new Promise<string>((resolve, reject) => {
      const p = spawn(process.execPath, ["--import", "tsx", "scripts/vemscope.ts", "worker", "--queue", redis.url, "--dead-letters", "--run", "failing"], { stdio: ["ignore", "pipe", "inherit"] });
      let s = "";
      p.stdout.on("data", (b: Buffer) => (s += b.toString()));
      p.on("exit", (code) => (code === 0 ? resolve(s) : reject(new Error(`exit ${code}`))));
    });
    const lines = cli.trim().split("\n").map((l) => JSON.parse(l) as { taskId: string; error: string });
    expect(lines.map((l) => l.taskId)).toEqual(["no-such-kind/0_0_0-1_1_1", "test.fail/0_0_0-1_1_1"]);
    expect(lines[1].error).toContain("deliberate failure");
  });
});

describe("image layer pyramid on the queue (vemscope run --queue)", () => {
  it("scale 0 written here, coarser scales by the workers: 16-bit raw byte-identical to writeImageLayer, 8-bit jpeg complete", async () => {
    for (const uint8 of [false, true]) {
      const shape: [number, number, number] = [300, 260, 40];
      const base = syntheticVolume("image", shape, 5).data as Uint8Array;
      const image = uint8 ? { data: base, shape } : { data: Uint16Array.from(base, (v) => v * 257), shape };
      const voxelNm: [number, number, number] = [5, 5, 40];
      const reference = path.join(dir, `layer-ref-${uint8 ? 8 : 16}`);
      const queued = path.join(dir, `layer-queued-${uint8 ? 8 : 16}`);
      await writeImageLayer(new LocalStorage(reference), "image", image, voxelNm, silentProgress);
      const { info, gzip } = imageLayerInfo(image, voxelNm);
      expect(info.scales.length).toBeGreaterThan(1);
      const result = await writeLayerOnQueue(redis.url, new LocalStorage(queued), "image", path.join(queued, "image"), info, image, {
        gzip,
        queueName: "pyramid",
        pollMs: 50,
        timeoutMs: 60_000,
        blockShape: [128, 128, 16],
      });
      expect(result).toMatchObject({ failed: 0 });
      expect(result?.done).toBe(result?.total);
      const want = await snapshot(reference);
      const got = await snapshot(queued);
      expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
      const scale0 = `image/${info.scales[0].key}/`;
      for (const [k, bytes] of want) {
        if (!uint8 || k.startsWith(scale0) || k === "image/info") expect(got.get(k)?.equals(bytes), k).toBe(true);
      }
    }
  });
});

describe("unreachable redis", () => {
  it("the coordinator, a worker and the dead-letter list fail fast with a JobError naming the URL", async () => {
    const url = "redis://127.0.0.1:1";
    const tasks = createTasks("test.fail", [1, 1, 1], [1, 1, 1]);
    for (const attempt of [
      () => runTasksOnQueue(url, tasks, { timeoutMs: 5000 }),
      () => startWorker(url, { registry: new TaskKindRegistry() }),
      () => listDeadLetters(url),
    ]) {
      const e = await attempt().then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(e).toBeInstanceOf(JobError);
      expect(e).toMatchObject({ code: "queue", message: expect.stringMatching(/cannot reach redis at redis:\/\/127\.0\.0\.1:1.*ECONNREFUSED/) });
    }
    await expect(runTasksOnQueue("http://127.0.0.1:1", tasks)).rejects.toMatchObject({ code: "invalid_argument" });
  });
});
