/**
 * `npm run bench -- segment [--image DIR|TIF] [--slices 6] [--tile 1024] [--overlap 192] [--model M.onnx]`
 *
 * Tiled inference (normalise, tile, infer, blend, argmax) against a bare onnxruntime session that only runs
 * the same tiles, on real EM (default: the shared lucchi_train images). Each configuration runs in its own
 * child process so its peak RSS is its own. Reports tiles/s, Mpx/s of section pixels, CPU seconds (on a
 * shared machine wall time is an upper bound; Mpx per CPU-second is steadier) and ours/bare ratios.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { availableParallelism, tmpdir } from "node:os";
import * as path from "node:path";
import { Worker } from "node:worker_threads";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as ort from "onnxruntime-node";
import type { Volume } from "../../precomputed/array.js";
import { readStack } from "../../server/pipeline/ingest.js";
import { sessionOptions } from "../../server/pipeline/segment/engine.js";
import { loadModelInfo } from "../../server/pipeline/segment/model.js";
import { writeTiffStack } from "../../server/pipeline/tiff.js";
import type { RusageReport } from "./analysis.js";
import { zscored } from "../../server/pipeline/segment/normalise.js";
import { DEFAULT_MODEL_PATH, DEFAULT_OVERLAP, DEFAULT_TILE, segmentVolume } from "../../server/pipeline/segment/segment.js";
import { extractTile, planTiles, tilesOf } from "../../server/pipeline/segment/tiling.js";

const DEFAULT_IMAGE = fileURLToPath(new URL("../../../shared/data/lucchi_train/image", import.meta.url));

interface Config {
  name: string;
  /** bare: onnxruntime alone; ours: segmentVolume in this process; cli: `vemscope segment` as users run it. */
  kind: "bare" | "ours" | "cli";
  workers: number;
  threads: number;
}

interface Measured {
  name: string;
  tiles: number;
  megapixels: number;
  wallS: number;
  cpuS: number;
  peakRssMiB: number;
}

function opt(args: string[], name: string, fallback: string): string {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? (args[i + 1] as string) : fallback;
}

async function load(args: string[]): Promise<{ image: Volume<Uint8Array | Uint16Array>; tile: number; overlap: number; model: string }> {
  const slices = Number(opt(args, "slices", "6"));
  const { volume } = await readStack(opt(args, "image", DEFAULT_IMAGE));
  const [W, H, D] = volume.shape;
  const d = Math.min(D, slices);
  return {
    image: { data: volume.data.subarray(0, W * H * d) as Uint8Array | Uint16Array, shape: [W, H, d] },
    tile: Number(opt(args, "tile", String(DEFAULT_TILE))),
    overlap: Number(opt(args, "overlap", String(DEFAULT_OVERLAP))),
    model: opt(args, "model", DEFAULT_MODEL_PATH),
  };
}

/** One configuration, in this (child) process. */
async function measure(config: Config, args: string[]): Promise<Measured> {
  const { image, tile, overlap, model: modelPath } = await load(args);
  const model = await loadModelInfo(modelPath);
  const [W, H, D] = image.shape;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let tiles = 0;
  if (config.kind === "cli") return measureCli(config, image, tile, overlap, modelPath);
  if (config.kind === "bare") {
    // The reference: the same tiles, prepared up front (not timed), through one session, nothing else.
    const plan = planTiles(W, H, Math.floor(tile / model.sizeMultiple) * model.sizeMultiple, overlap, model.sizeMultiple);
    const inputs = [];
    for (let z = 0; z < D; z++) {
      const norm = zscored(image.data.subarray(z * W * H, (z + 1) * W * H));
      for (const t of tilesOf(plan)) inputs.push({ data: extractTile(norm, W, H, t), h: t.h, w: t.w });
    }
    if (config.workers > 0) {
      const m = await bareWorkers(model.bytes, inputs, config.workers);
      return { name: config.name, tiles: inputs.length, megapixels: (W * H * D) / 1e6, wallS: m.wallS, cpuS: m.cpuS, peakRssMiB: process.resourceUsage().maxRSS / 1024 };
    }
    const session = await ort.InferenceSession.create(model.bytes, sessionOptions(config.threads));
    const name = session.inputNames[0] as string;
    const s0 = performance.now();
    const c0 = process.cpuUsage();
    for (const inp of inputs) await session.run({ [name]: new ort.Tensor("float32", inp.data, [1, 1, inp.h, inp.w]) });
    const c1 = process.cpuUsage(c0);
    tiles = inputs.length;
    return { name: config.name, tiles, megapixels: (W * H * D) / 1e6, wallS: (performance.now() - s0) / 1000, cpuS: (c1.user + c1.system) / 1e6, peakRssMiB: process.resourceUsage().maxRSS / 1024 };
  }
  const r = await segmentVolume(image, { model, tile, overlap, runner: { workers: config.workers, threads: config.threads } });
  tiles = r.stats.tiles;
  const c = process.cpuUsage(cpu0);
  return { name: config.name, tiles, megapixels: r.stats.megapixels, wallS: (performance.now() - t0) / 1000, cpuS: (c.user + c.system) / 1e6, peakRssMiB: process.resourceUsage().maxRSS / 1024 };
}

/**
 * The product as users run it: the sections written to a TIFF (not timed), then `node scripts/cli.mjs segment`
 * (the bundled CLI, with package.json's node flags) timed from spawn to exit, TIFF in and out included; its CPU and
 * peak RSS from the analysis bench's rusage preload.
 */
async function measureCli(config: Config, image: Volume<Uint8Array | Uint16Array>, tile: number, overlap: number, modelPath: string): Promise<Measured> {
  const dir = mkdtempSync(path.join(tmpdir(), "vemscope-bench-segment-"));
  try {
    const input = path.join(dir, "image.tif");
    await writeTiffStack(input, image);
    const cli = fileURLToPath(new URL("../cli.mjs", import.meta.url));
    const rusagePath = path.join(dir, "rusage.json");
    const preload = pathToFileURL(fileURLToPath(new URL("./analysis-rusage.mjs", import.meta.url))).href;
    const args = ["--no-concurrent-recompilation", "--import", preload, cli, "segment", "--image", input, "--voxel", "5,5,5", "--out", path.join(dir, "classes.tif"), "--model", modelPath, "--tile", String(tile), "--overlap", String(overlap), "--workers", String(config.workers), "--threads", String(config.threads)];
    // The bundle is built (or found fresh) once before timing, as a user's earlier command would have.
    const help = spawnSync(process.execPath, [cli, "--help"], { encoding: "utf8" });
    if (help.status !== 0) throw new Error(`vemscope --help failed: ${help.stderr}`);
    const t0 = performance.now();
    const run = spawnSync(process.execPath, args, { encoding: "utf8", maxBuffer: 1 << 24, env: { ...process.env, VEMSCOPE_BENCH_RUSAGE: rusagePath } });
    const wallS = (performance.now() - t0) / 1000;
    if (run.status !== 0) throw new Error(`vemscope segment failed: ${run.stderr}`);
    const tiles = Number(/(\d+) tiles of/.exec(run.stdout + run.stderr)?.[1] ?? NaN);
    const [W, H, D] = image.shape;
    const r = JSON.parse(readFileSync(rusagePath, "utf8")) as RusageReport;
    return { name: config.name, tiles, megapixels: (W * H * D) / 1e6, wallS, cpuS: r.userCpuS + r.systemCpuS, peakRssMiB: r.maxRssKb / 1024 };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The ceiling of our worker layout: one single-threaded session per worker thread, the tiles dealt round robin,
 * timed from the moment every session is loaded (so no start-up, no normalising, no blending).
 */
async function bareWorkers(bytes: Uint8Array, inputs: { data: Float32Array; h: number; w: number }[], n: number): Promise<{ wallS: number; cpuS: number }> {
  const ortPath = createRequire(import.meta.url).resolve("onnxruntime-node");
  const code = `
    const { parentPort, workerData } = require("node:worker_threads");
    const ort = require(workerData.ortPath);
    (async () => {
      const s = await ort.InferenceSession.create(workerData.bytes, workerData.options);
      parentPort.postMessage("ready");
      parentPort.once("message", async () => {
        for (const t of workerData.tiles) await s.run({ [s.inputNames[0]]: new ort.Tensor("float32", t.data, [1, 1, t.h, t.w]) });
        parentPort.postMessage("done");
      });
    })();`;
  const workers = Array.from({ length: n }, (_, k) => new Worker(code, { eval: true, workerData: { ortPath, bytes, options: sessionOptions(1), tiles: inputs.filter((_, i) => i % n === k) } }));
  const next = (w: Worker) => new Promise<void>((resolve, reject) => { w.once("message", () => resolve()); w.once("error", reject); });
  await Promise.all(workers.map(next));
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const done = workers.map(next);
  for (const w of workers) w.postMessage("go");
  await Promise.all(done);
  const c = process.cpuUsage(c0);
  const wallS = (performance.now() - t0) / 1000;
  await Promise.all(workers.map((w) => w.terminate()));
  return { wallS, cpuS: (c.user + c.system) / 1e6 };
}

export async function main(args: string[]): Promise<void> {
  const child = opt(args, "child", "");
  const cores = availableParallelism();
  const configs: Config[] = [
    { name: `bare ORT, 1 session x ${cores} threads`, kind: "bare", workers: 0, threads: cores },
    { name: `bare ORT, ${cores} workers x 1 thread`, kind: "bare", workers: cores, threads: 1 },
    { name: `ours, 1 session x ${cores} threads`, kind: "ours", workers: 0, threads: cores },
    { name: `ours, ${cores} workers x 1 thread`, kind: "ours", workers: cores, threads: 1 },
    { name: `vemscope segment, ${cores} workers x 1 thread`, kind: "cli", workers: cores, threads: 1 },
    { name: `ours, 1 worker x ${cores} threads`, kind: "ours", workers: 1, threads: cores },
  ];
  if (child) {
    const config = configs.find((c) => c.name === child);
    if (!config) throw new Error(`unknown configuration ${child}`);
    process.stdout.write(`${JSON.stringify(await measure(config, args))}\n`);
    return;
  }
  const { image } = await load(args);
  const [W, H, D] = image.shape;
  process.stdout.write(`segment bench: ${W}x${H}x${D} (${((W * H * D) / 1e6).toFixed(1)} Mpx), ${cores} cores, model ${opt(args, "model", DEFAULT_MODEL_PATH)}\n`);
  const results: Measured[] = [];
  for (const c of configs) {
    const self = fileURLToPath(new URL("./index.ts", import.meta.url));
    const run = spawnSync(process.execPath, [...process.execArgv, self, "segment", ...args, "--child", c.name], { encoding: "utf8", maxBuffer: 1 << 24 });
    if (run.status !== 0) throw new Error(`${c.name} failed: ${run.stderr}`);
    const m = JSON.parse(run.stdout.trim().split("\n").pop() as string) as Measured;
    results.push(m);
    process.stdout.write(
      `${m.name.padEnd(36)} ${m.tiles} tiles  ${(m.tiles / m.wallS).toFixed(2)} tiles/s  ${(m.megapixels / m.wallS).toFixed(3)} Mpx/s  ` +
        `cpu ${m.cpuS.toFixed(1)} s (${(m.megapixels / m.cpuS).toFixed(3)} Mpx/cpu-s)  peak RSS ${m.peakRssMiB.toFixed(0)} MiB\n`,
    );
  }
  const bare = results.filter((r) => r.name.startsWith("bare")).reduce((a, b) => (b.wallS < a.wallS ? b : a));
  const best = results.filter((r) => !r.name.startsWith("bare")).reduce((a, b) => (b.wallS < a.wallS ? b : a));
  process.stdout.write(
    `\nfastest of ours: ${best.name}: ${(best.megapixels / best.wallS).toFixed(3)} Mpx/s = ${(bare.wallS / best.wallS).toFixed(2)}x the fastest bare ORT (${bare.name}) ` +
      `(wall overhead ratio ours/bare ${(best.wallS / bare.wallS).toFixed(2)}, cpu ratio ${(best.cpuS / bare.cpuS).toFixed(2)}); target 2 Mpx/s on 2 cores\n`,
  );
}
