/**
 * `npm run bench -- scale --pipeline [--size X,Y,Z] [--workers N] [--budget VOXELS] [--shard-above CHUNKS] [--from-image]`: the whole
 * out-of-core `run --labels` (with --from-image: `run` from the image alone, so alignment and segmentation run as
 * tasks too) with S3 input and output and N `vemscope worker`s on a Redis queue (issue 9's "done when").
 * Default size 1024 x 1024 x 2048 (2 Gvoxel), 2 workers, a 16 Mi-voxel block budget.
 *
 * - input: a 512 x 512 x 64 seeded phantom tiled to the size (odd copies mirrored in x, y and z, so organelles
 *   continue across seams), written section by section as single-page TIFF slices (never whole in memory) and
 *   uploaded to an s3rver bucket: s3://bench/in/image/, s3://bench/in/labels/;
 * - the coordinator (`runPipeline`, in a child process) reads them from S3 and writes s3://bench/out, sharded
 *   where a scale has more than 4096 chunks (--shard-above); the workers run every block task;
 * - measured: wall time, voxels per second, peak RSS (getrusage maxRSS) of the coordinator and of each worker,
 *   seconds per stage; checked: every layer's info validates, and Neuroglancer's own ShardedKvStore reads a sample
 *   of chunks of every sharded scale from the bucket, byte-equal to ours.
 * Redis and s3rver run in this process; everything lives in a temporary folder removed at the end.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { promises as fs } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import type { Vec3 } from "../../precomputed/array.js";
import { chunkGrid, validateInfo } from "../../precomputed/info.js";
import { volumeChunkId } from "../../precomputed/sharding-volume.js";
import { ShardedReader } from "../../precomputed/sharding.js";
import { loadNgSharded, type RangeStorage } from "../../precomputed/testing/neuroglancer-sharded.js";
import { generatePhantom } from "../../server/pipeline/phantom/index.js";
import type { Progress } from "../../server/pipeline/progress.js";
import { writeTiffStack } from "../../server/pipeline/tiff.js";
import { S3Storage } from "../../server/storage/index.js";
import { startRedis, startS3rver } from "../../test/helpers/services.js";

const VOXEL: Vec3 = [5, 5, 45];
const BASE: Vec3 = [512, 512, 64];

function vec(arg: string | undefined, fallback: Vec3): Vec3 {
  if (!arg) return fallback;
  const v = arg.split(",").map(Number);
  if (v.length !== 3 || !v.every((n) => Number.isInteger(n) && n > 0)) throw new Error(`expected X,Y,Z positive integers, got ${arg}`);
  return v as Vec3;
}

const option = (args: string[], name: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};

interface ChildSpec {
  image: string;
  labels?: string;
  out: string;
  queue: string;
  budget: number;
  shardAbove: number;
}

interface ChildResult {
  instances: number;
  seconds: number;
  maxRssKb: number;
  /** The coordinator's user + system CPU seconds. */
  cpuS: number;
  stages: [string, number][];
}

/** The coordinator: runPipeline with stage timings from its progress events. */
async function child(spec: ChildSpec): Promise<void> {
  const { runPipeline } = await import("../../server/pipeline/run.js");
  const stages: [string, number][] = [];
  let current: [string, number] | undefined;
  const progress: Progress = {
    start(stage) {
      current = [stage, performance.now()];
    },
    update() {},
    end() {
      if (current) stages.push([current[0], (performance.now() - current[1]) / 1000]);
      current = undefined;
    },
  };
  const r = await runPipeline({ image: spec.image, labels: spec.labels, out: spec.out, voxelNm: VOXEL, blockBudget: spec.budget, blockwise: true, queue: spec.queue, shardAboveChunks: spec.shardAbove, progress });
  const use = process.resourceUsage();
  const result: ChildResult = { instances: r.instances, seconds: r.seconds, maxRssKb: use.maxRSS, cpuS: (use.userCPUTime + use.systemCPUTime) / 1e6, stages };
  process.stdout.write(`\n@@${JSON.stringify(result)}\n`);
}

function runChild(spec: ChildSpec, env: NodeJS.ProcessEnv): Promise<ChildResult> {
  const self = fileURLToPath(import.meta.url);
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ["--import", "tsx", self, "--child", JSON.stringify(spec)], { stdio: ["ignore", "pipe", "inherit"], env });
    let out = "";
    p.stdout.on("data", (d: Buffer) => (out += d.toString()));
    p.on("error", reject);
    p.on("close", (code) => {
      const line = out.split("\n").find((l) => l.startsWith("@@"));
      if (code !== 0 || !line) reject(new Error(`coordinator exited ${code}: ${out.slice(-800)}`));
      else resolve(JSON.parse(line.slice(2)) as ChildResult);
    });
  });
}

interface WorkerProc {
  proc: ChildProcess;
  out: () => string;
}

async function startWorker(url: string, env: NodeJS.ProcessEnv): Promise<WorkerProc> {
  const proc = spawn(process.execPath, ["--no-concurrent-recompilation", "scripts/cli.mjs", "worker", "--queue", url, "--lock-ms", "120000"], { stdio: ["ignore", "pipe", "pipe"], env });
  let out = "";
  proc.stdout?.on("data", (b: Buffer) => (out += b.toString()));
  proc.stderr?.on("data", (b: Buffer) => (out += b.toString()));
  const t0 = Date.now();
  while (!/worker pid/.test(out)) {
    if (proc.exitCode !== null) throw new Error(`worker exited: ${out}`);
    if (Date.now() - t0 > 90_000) throw new Error("worker did not start within 90 s");
    await new Promise((r) => setTimeout(r, 50));
  }
  return { proc, out: () => out };
}

async function stopWorker(w: WorkerProc): Promise<{ rssMiB: number; cpuS: number; tasks: number }> {
  await new Promise<void>((resolve) => {
    w.proc.once("exit", () => resolve());
    w.proc.kill("SIGTERM");
  });
  const m = /peak RSS ([\d.]+) MiB/.exec(w.out());
  const c = /; CPU ([\d.]+) s/.exec(w.out());
  return { rssMiB: m ? Number(m[1]) : NaN, cpuS: c ? Number(c[1]) : NaN, tasks: (w.out().match(/^completed /gm) ?? []).length };
}

/** Index into a tile of `n` voxels for coordinate `c`, odd tiles mirrored. */
const mirrored = (c: number, n: number): number => (Math.floor(c / n) % 2 === 0 ? c % n : n - 1 - (c % n));

/** The phantom tiled to `size`, one section at a time, as TIFF slices under dir/image and dir/labels. */
async function writeSlices(dir: string, size: Vec3): Promise<void> {
  const ph = generatePhantom({ seed: 11, size: BASE, voxelNm: VOXEL });
  const [nx, ny, nz] = size;
  const [bx, by] = BASE;
  const xs = Int32Array.from({ length: nx }, (_, x) => mirrored(x, bx));
  await fs.mkdir(path.join(dir, "image"), { recursive: true });
  await fs.mkdir(path.join(dir, "labels"), { recursive: true });
  const digits = String(nz).length;
  const image = new Uint8Array(nx * ny);
  const labels = new Uint8Array(nx * ny);
  const srcImage = ph.image.data as Uint8Array;
  for (let z = 0; z < nz; z++) {
    const sz = mirrored(z, BASE[2]);
    for (let y = 0; y < ny; y++) {
      const row = bx * (mirrored(y, by) + by * sz);
      for (let x = 0; x < nx; x++) {
        image[x + nx * y] = srcImage[row + xs[x]];
        labels[x + nx * y] = ph.labels.data[row + xs[x]];
      }
    }
    const name = `${String(z).padStart(digits, "0")}.tif`;
    await writeTiffStack(path.join(dir, "image", name), { data: image, shape: [nx, ny, 1] });
    await writeTiffStack(path.join(dir, "labels", name), { data: labels, shape: [nx, ny, 1] });
  }
}

export async function main(args: string[]): Promise<void> {
  const childSpec = option(args, "child");
  if (childSpec) return child(JSON.parse(childSpec) as ChildSpec);
  const size = vec(option(args, "size"), [1024, 1024, 2048]);
  const nWorkers = Number(option(args, "workers") ?? 2);
  const budget = Number(option(args, "budget") ?? 16 * 2 ** 20);
  const shardAbove = Number(option(args, "shard-above") ?? 4096);
  const fromImage = args.includes("--from-image");
  const inputs = fromImage ? ["image"] : ["image", "labels"];
  const voxels = size[0] * size[1] * size[2];
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), "vemscope-bench-pipeline-"));
  const [redis, s3] = await Promise.all([startRedis(), startS3rver(["bench"])]);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    AWS_ENDPOINT_URL: s3.endpoint,
    AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey,
  };
  Object.assign(process.env, { AWS_ENDPOINT_URL: s3.endpoint, AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey });
  const workers: WorkerProc[] = [];
  try {
    process.stdout.write(`pipeline scale bench: ${size.join("x")} (${(voxels / 1e6).toFixed(0)} Mvox) ${fromImage ? "uint8 image only (align + segment as tasks)" : "labels + uint8 image"}, ${nWorkers} workers, budget ${budget} voxels, ${os.cpus().length} cores, load ${os.loadavg()[0].toFixed(1)}\n`);
    let t0 = performance.now();
    await writeSlices(path.join(tmp, "in"), size);
    const bucket = new S3Storage("bench", "");
    for (const layer of inputs) {
      for (const f of (await fs.readdir(path.join(tmp, "in", layer))).sort()) {
        await bucket.put(`in/${layer}/${f}`, await fs.readFile(path.join(tmp, "in", layer, f)));
      }
    }
    await fs.rm(path.join(tmp, "in"), { recursive: true, force: true });
    process.stdout.write(`input generated and uploaded to s3://bench/in/ in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
    workers.push(...(await Promise.all(Array.from({ length: nWorkers }, () => startWorker(redis.url, env)))));
    t0 = performance.now();
    // This process's CPU during the run is s3rver's and Redis client's (redis-server is measured apart, below).
    const cpu0 = process.cpuUsage();
    const r = await runChild({ image: "s3://bench/in/image/", ...(fromImage ? {} : { labels: "s3://bench/in/labels/" }), out: "s3://bench/out", queue: redis.url, budget, shardAbove }, env);
    const wall = (performance.now() - t0) / 1000;
    const stopped = await Promise.all(workers.splice(0).map(stopWorker));
    const own = process.cpuUsage(cpu0);
    const rate = voxels / wall;
    process.stdout.write(`\n${r.instances} instances; wall ${wall.toFixed(1)} s = ${(rate / 1e6).toFixed(3)} Mvox/s; coordinator peak RSS ${(r.maxRssKb / 1024).toFixed(0)} MiB\n`);
    stopped.forEach((w, i) => process.stdout.write(`worker ${i + 1}: ${w.tasks} tasks, peak RSS ${w.rssMiB.toFixed(0)} MiB, CPU ${w.cpuS.toFixed(1)} s\n`));
    // CPU seconds measure the work on a shared machine, where wall time mostly measures the other jobs.
    const cpuS = r.cpuS + stopped.reduce((n, w) => n + w.cpuS, 0) + (own.user + own.system) / 1e6;
    process.stdout.write(`CPU: coordinator ${r.cpuS.toFixed(1)} s, workers ${stopped.map((w) => w.cpuS.toFixed(1)).join(" + ")} s, bench process (s3rver) ${((own.user + own.system) / 1e6).toFixed(1)} s; total ${cpuS.toFixed(1)} s = ${(cpuS / (voxels / 1e6)).toFixed(2)} CPU s per Mvox\n`);
    process.stdout.write(`stages (s): ${r.stages.map(([n, s]) => `${n} ${s.toFixed(1)}`).join("; ")}\n`);
    for (const g of [2, 11, 188]) process.stdout.write(`projection ${g} Gvox: ${((g * 1e9) / rate / 3600).toFixed(1)} h at this rate (linear in volume)\n`);

    // What Neuroglancer needs: valid infos, and shards its own reader can read.
    const out = new S3Storage("bench", "out");
    const ng = await loadNgSharded();
    let checked = 0;
    for (const layer of ["image", "segmentation"]) {
      const bytes = await out.get(`${layer}/info`);
      if (!bytes) throw new Error(`no ${layer}/info`);
      const info = validateInfo(JSON.parse(new TextDecoder().decode(bytes)));
      for (const scale of info.scales) {
        if (!scale.sharding) continue;
        const reader = new ShardedReader(out, `${layer}/${scale.key}`, scale.sharding);
        const boxes = [...chunkGrid(scale)];
        const step = Math.max(1, Math.floor(boxes.length / 40));
        for (let i = 0; i < boxes.length; i += step) {
          const id = volumeChunkId(scale, boxes[i].start);
          const ours = await reader.get(id);
          const theirs = await ng.read(scale.sharding, out as RangeStorage, `${layer}/${scale.key}`, id);
          if (!ours || !theirs || Buffer.compare(Buffer.from(ours), Buffer.from(theirs)) !== 0) throw new Error(`${layer} ${scale.key} chunk ${id}: Neuroglancer reads different bytes`);
          checked++;
        }
      }
      process.stdout.write(`${layer}: ${info.scales.length} scales, sharded: ${info.scales.filter((s) => s.sharding).map((s) => s.key).join(", ") || "none"}\n`);
    }
    if (!(await out.get("state.json"))) throw new Error("no state.json");
    process.stdout.write(`Neuroglancer's ShardedKvStore read ${checked} sampled chunks from s3://bench/out, equal to ours\n`);
  } finally {
    await Promise.all(workers.map(stopWorker));
    await redis.stop();
    await s3.stop();
    await fs.rm(tmp, { recursive: true, force: true });
  }
}
if (process.argv.includes("--child")) await main(process.argv.slice(2));
