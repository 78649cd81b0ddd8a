/**
 * `npm run bench -- stream [--budget VOXELS] [--sizes 1,2,4] [--no-memory] [--keep DIR]`: peak RSS of the
 * out-of-core `run --labels` on phantom-like volumes 1x, 2x and 4x the block budget, each in its own child
 * process (getrusage maxRSS), with the in-memory run beside it for scale. The volumes are a 512 x 512 x 64
 * phantom stacked in z, every other copy mirrored so that organelles continue across the seams; they are
 * generated into a temporary folder and deleted afterwards (never committed).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import type { Vec3 } from "../../precomputed/array.js";
import { generatePhantom } from "../../server/pipeline/phantom/index.js";
import { writeTiffStack } from "../../server/pipeline/tiff.js";

const VOXEL: Vec3 = [5, 5, 45];
const BASE: Vec3 = [512, 512, 64];

interface ChildResult {
  mode: string;
  instances: number;
  seconds: number;
  maxRssKb: number;
  blockShape?: number[];
}

function arg(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

/** z-stacked copies of one volume, odd copies mirrored in z. */
function tile(data: Uint8Array, shape: Vec3, copies: number): Uint8Array {
  const plane = shape[0] * shape[1];
  const out = new Uint8Array(data.length * copies);
  for (let c = 0; c < copies; c++) {
    for (let z = 0; z < shape[2]; z++) {
      const src = c % 2 === 0 ? z : shape[2] - 1 - z;
      out.set(data.subarray(src * plane, (src + 1) * plane), (c * shape[2] + z) * plane);
    }
  }
  return out;
}

async function child(spec: string): Promise<void> {
  const { image, labels, out, budget, blockwise } = JSON.parse(spec) as { image: string; labels: string; out: string; budget: number; blockwise: boolean };
  const { runPipeline } = await import("../../server/pipeline/run.js");
  const r = await runPipeline({ image, labels, out, voxelNm: VOXEL, blockBudget: budget, blockwise });
  let blockShape: number[] | undefined;
  if (r.mode === "blockwise") {
    const { readFileSync } = await import("node:fs");
    blockShape = (JSON.parse(readFileSync(path.join(out, "report", "blockwise.json"), "utf8")) as { block_shape_voxels: number[] }).block_shape_voxels;
  }
  const result: ChildResult = { mode: r.mode, instances: r.instances, seconds: r.seconds, maxRssKb: process.resourceUsage().maxRSS, blockShape };
  process.stdout.write(`\n@@${JSON.stringify(result)}\n`);
}

function runChild(spec: object): Promise<ChildResult> {
  const self = fileURLToPath(import.meta.url);
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ["--import", "tsx", self, "--child", JSON.stringify(spec)], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    p.stdout.on("data", (d: Buffer) => (out += d.toString()));
    p.on("error", reject);
    p.on("close", (code) => {
      const line = out.split("\n").find((l) => l.startsWith("@@"));
      if (code !== 0 || !line) reject(new Error(`child exited ${code}: ${out.slice(-500)}`));
      else resolve(JSON.parse(line.slice(2)) as ChildResult);
    });
  });
}

export async function main(args: string[]): Promise<void> {
  const spec = arg(args, "--child");
  if (spec) return child(spec);
  const budget = Number(arg(args, "--budget") ?? 16 * 2 ** 20);
  const sizes = (arg(args, "--sizes") ?? "1,2,4").split(",").map(Number);
  const withMemory = !args.includes("--no-memory");
  const keep = arg(args, "--keep");
  const dir = keep ?? mkdtempSync(path.join(tmpdir(), "vemscope-stream-"));
  process.stderr.write(`phantom ${BASE.join("x")} ...\n`);
  const phantom = generatePhantom({ seed: 1, size: BASE, voxelNm: VOXEL });
  const baseVoxels = BASE[0] * BASE[1] * BASE[2];
  const rows: string[] = [];
  try {
    for (const k of sizes) {
      // Copies so the volume is k x the budget (the base is one budget at the default 16 Mi voxels).
      const copies = Math.max(1, Math.round((k * budget) / baseVoxels));
      const shape: Vec3 = [BASE[0], BASE[1], BASE[2] * copies];
      const image = path.join(dir, `image-${copies}.tif`);
      const labels = path.join(dir, `labels-${copies}.tif`);
      await writeTiffStack(image, { data: tile(phantom.image.data, BASE, copies), shape });
      await writeTiffStack(labels, { data: tile(phantom.labels.data, BASE, copies), shape });
      const voxels = shape[0] * shape[1] * shape[2];
      for (const blockwise of withMemory ? [true, false] : [true]) {
        process.stderr.write(`${shape.join("x")} ${blockwise ? "blockwise" : "in memory"} ...\n`);
        const r = await runChild({ image, labels, out: path.join(dir, `out-${copies}-${blockwise ? "b" : "m"}`), budget, blockwise });
        rows.push(
          `| ${shape.join(" x ")} | ${(voxels / 2 ** 20).toFixed(1)} | ${(voxels / budget).toFixed(1)}x | ${r.mode}${r.blockShape ? ` (blocks ${r.blockShape.join("x")})` : ""} | ${r.instances} | ${r.seconds.toFixed(1)} | ${(voxels / 1e6 / r.seconds).toFixed(2)} | ${(r.maxRssKb / 1024).toFixed(0)} |`,
        );
        process.stderr.write(`${rows[rows.length - 1]}\n`);
        rmSync(path.join(dir, `out-${copies}-${blockwise ? "b" : "m"}`), { recursive: true, force: true });
      }
      rmSync(image, { force: true });
      rmSync(labels, { force: true });
    }
  } finally {
    if (!keep) rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(`budget ${budget} voxels (${(budget / 2 ** 20).toFixed(0)} Mi)\n\n`);
  process.stdout.write("| volume (voxels) | Mi voxels | x budget | path | instances | seconds | Mvoxel/s | peak RSS MiB |\n|---|---|---|---|---|---|---|---|\n");
  process.stdout.write(`${rows.join("\n")}\n`);
}

if (process.argv.includes("--child")) await main(process.argv.slice(2));
