/**
 * `npm run bench -- scale [--size X,Y,Z] [--block X,Y,Z] [--workers 1,2,4]`: throughput of the `downsample`
 * task kind through the Redis queue with 1, 2, 4 `vemscope worker` processes on this machine, against the
 * in-process executor (the reference: same tasks, no queue, one process), with each worker's peak RSS and a
 * linear projection to 11 and 188 gigavoxels.
 *
 * Model: time(V) = V / R, R = measured source voxels per second for that many workers here. It assumes work
 * per voxel is constant (it is for downsampling: every voxel is read once and every coarser voxel written
 * once), storage keeps up, and the queue's per-task cost (about 10 Redis round trips) stays small next to a
 * task's compute. A cluster of M machines like this one is then M x the 4-worker row, as long as shared
 * storage keeps up. Only the pyramid is modelled, not the rest of the pipeline.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { promises as fs } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Vec3 } from "../../precomputed/array.js";
import { LocalStorage } from "../../precomputed/storage.js";
import { planDownsample } from "../../server/jobs/kinds/downsample.js";
import { runTasksInProcess } from "../../server/jobs/local-executor.js";
import { runTasksOnQueue } from "../../server/jobs/queue.js";
import { layerInfo, syntheticVolume, writeScaleZero } from "../../server/jobs/test-support.js";
import { startRedis } from "../../test/helpers/services.js";

function vec(arg: string | undefined, fallback: Vec3): Vec3 {
  if (!arg) return fallback;
  const v = arg.split(",").map(Number);
  if (v.length !== 3 || !v.every((n) => Number.isInteger(n) && n > 0)) throw new Error(`expected X,Y,Z positive integers, got ${arg}`);
  return v as Vec3;
}

function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
}

interface WorkerProc {
  proc: ChildProcess;
  out: () => string;
}

async function startWorkerProc(url: string, queueName: string): Promise<WorkerProc> {
  const proc = spawn(process.execPath, ["--no-concurrent-recompilation", "scripts/cli.mjs", "worker", "--queue", url, "--queue-name", queueName], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  proc.stdout?.on("data", (b: Buffer) => (out += b.toString()));
  proc.stderr?.on("data", () => {});
  const t0 = Date.now();
  while (!/worker pid/.test(out)) {
    if (proc.exitCode !== null) throw new Error(`worker exited: ${out}`);
    if (Date.now() - t0 > 60_000) throw new Error("worker did not start within 60 s");
    await new Promise((r) => setTimeout(r, 50));
  }
  return { proc, out: () => out };
}

async function stopWorkerProc(w: WorkerProc): Promise<number> {
  await new Promise<void>((resolve) => {
    w.proc.once("exit", () => resolve());
    w.proc.kill("SIGTERM");
  });
  const m = /peak RSS ([\d.]+) MiB/.exec(w.out());
  return m ? Number(m[1]) : NaN;
}

const GVOX = [11, 188];
const hours = (voxels: number, rate: number): string => (voxels / rate / 3600).toFixed(1);

export async function main(args: string[]): Promise<void> {
  if (args.includes("--pipeline")) return (await import("./scale-pipeline.js")).main(args.filter((a) => a !== "--pipeline"));
  const size = vec(option(args, "size"), [1024, 1024, 64]);
  const block = vec(option(args, "block"), [256, 256, 16]);
  const counts = (option(args, "workers") ?? "1,2,4").split(",").map(Number);
  // The paper's 5 x 5 x 45 nm voxels: three [2, 2, 1] steps, so blocks need only be 8 chunks wide in x and y.
  const info = layerInfo("image", size, [32, 32, 16], 4, [5, 5, 45]);
  const levels = info.scales.length - 1;
  const voxels = size[0] * size[1] * size[2];
  const work = await fs.mkdtemp(path.join(os.tmpdir(), "vemscope-bench-scale-"));
  const redis = await startRedis();
  try {
    const source = path.join(work, "source");
    await writeScaleZero(new LocalStorage(source), info, syntheticVolume("image", size, 1));
    const layerCopy = async (name: string): Promise<string> => {
      const dir = path.join(work, name);
      await fs.cp(source, dir, { recursive: true });
      return dir;
    };
    const plan = (layer: string) => planDownsample(info, { layer, levels }, block);
    const { tasks: sample, blockShape } = plan(source);
    process.stdout.write(
      `scale bench: ${size.join("x")} uint8 (${(voxels / 1e6).toFixed(1)} Mvox), ${levels} coarser scales, ` +
        `${sample.length} tasks of ${blockShape.join("x")}, ${os.cpus().length} cores, load ${os.loadavg()[0].toFixed(1)}\n`,
    );
    const rows: string[][] = [];
    const baseline = await layerCopy("in-process");
    let t0 = performance.now();
    await runTasksInProcess(plan(baseline).tasks);
    const refS = (performance.now() - t0) / 1000;
    const refRate = voxels / refS;
    const rssNow = process.resourceUsage().maxRSS / 1024;
    rows.push(["in-process (reference)", "1", refS.toFixed(1), (refRate / 1e6).toFixed(2), "1.00", `${rssNow.toFixed(0)} (bench process)`, ...GVOX.map((g) => hours(g * 1e9, refRate))]);
    for (const n of counts) {
      const layer = await layerCopy(`queue-${n}`);
      const queueName = `bench-${n}`;
      const workers = await Promise.all(Array.from({ length: n }, () => startWorkerProc(redis.url, queueName)));
      t0 = performance.now();
      const r = await runTasksOnQueue(redis.url, plan(layer).tasks, { queueName, pollMs: 20 });
      const s = (performance.now() - t0) / 1000;
      const rss = await Promise.all(workers.map(stopWorkerProc));
      if (r.failed > 0) throw new Error(`${r.failed} tasks failed: ${r.deadLetters[0]?.error}`);
      const rate = voxels / s;
      rows.push([`queue, ${n} worker${n > 1 ? "s" : ""}`, String(n), s.toFixed(1), (rate / 1e6).toFixed(2), (rate / refRate).toFixed(2), Math.max(...rss).toFixed(0), ...GVOX.map((g) => hours(g * 1e9, rate))]);
    }
    const head = ["executor", "workers", "wall s", "Mvox/s", "vs in-process", "peak RSS/worker MiB", ...GVOX.map((g) => `${g} Gvox h`)];
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
    const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
    process.stdout.write(`${line(head)}\n| ${widths.map((w) => "-".repeat(w)).join(" | ")} |\n${rows.map(line).join("\n")}\n`);
    process.stdout.write("projection: hours = voxels / (measured Mvox/s of that row); linear in volume, per machine like this one\n");
  } finally {
    await redis.stop();
    await fs.rm(work, { recursive: true, force: true });
  }
}
