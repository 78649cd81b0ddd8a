import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { tmpdir } from "node:os";
import * as path from "node:path";
import type { Vec3 } from "../../precomputed/array.js";
import { generatePhantom } from "../pipeline/phantom/index.js";
import { runPipeline } from "../pipeline/run.js";
import { writeTiffStack } from "../pipeline/tiff.js";

/** Shared by the edit tests and the bench: a phantom run folder (pipeline output) in a temp dir. */
export async function phantomRun(size: Vec3 = [192, 192, 24], seed = 3): Promise<string> {
  const dir = mkdtempSync(path.join(tmpdir(), "vemscope-edits-"));
  const phantom = generatePhantom({ seed, size });
  await writeTiffStack(path.join(dir, "image.tif"), phantom.image);
  await writeTiffStack(path.join(dir, "labels.tif"), phantom.labels);
  const out = path.join(dir, "run");
  await runPipeline({ image: path.join(dir, "image.tif"), labels: path.join(dir, "labels.tif"), voxelNm: [5, 5, 45], out });
  return out;
}

export const SYNTH_SHAPE: Vec3 = [128, 128, 16];
export const SYNTH_VOXEL: Vec3 = [5, 5, 45];
export const SYNTH_PEROX = 42;

/**
 * A hand-made class volume, quick to run through the pipeline (the phantom takes 25-50 s at sizes with
 * several organelles per class on this machine): an ER sheet, a dumbbell mitochondrion (two balls and a
 * neck: the split case), two lysosomes, a lipid droplet and a 7 x 6 grid of 42 separate peroxisomes
 * (many disjoint merge pairs for the concurrency test).
 */
export function synthClasses(): Uint8Array {
  const [nx, ny, nz] = SYNTH_SHAPE;
  const v = SYNTH_VOXEL;
  const c = new Uint8Array(nx * ny * nz);
  const fill = (inside: (x: number, y: number, z: number) => boolean, code: number) => {
    for (let z = 0; z < nz; z++)
      for (let y = 0; y < ny; y++)
        for (let x = 0; x < nx; x++) if (inside((x + 0.5) * v[0], (y + 0.5) * v[1], (z + 0.5) * v[2])) c[x + nx * (y + ny * z)] = code;
  };
  const ball = (cx: number, cy: number, cz: number, r: number) => (x: number, y: number, z: number) => Math.hypot(x - cx * v[0], y - cy * v[1], z - cz * v[2]) <= r;
  fill((_x, _y, z) => z > 14 * v[2] && z < 15 * v[2], 1);
  fill((x, y, z) => ball(30, 30, 4.5, 90)(x, y, z) || ball(70, 30, 4.5, 90)(x, y, z) || (x > 30 * v[0] && x < 70 * v[0] && Math.hypot(y - 30 * v[1], z - 4.5 * v[2]) <= 25), 2);
  fill(ball(30, 80, 4.5, 80), 4);
  fill(ball(70, 80, 4.5, 70), 4);
  fill(ball(105, 55, 4.5, 60), 3);
  for (let i = 0; i < 7; i++) for (let j = 0; j < 6; j++) fill(ball(9 + 18 * i, 9 + 18 * j, 10.5, 35), 5);
  return c;
}

/** synthClasses through `run --labels` into a temp folder. */
export async function synthRun(): Promise<string> {
  const dir = mkdtempSync(path.join(tmpdir(), "vemscope-edits-"));
  const classes = synthClasses();
  const image = Uint8Array.from(classes, (k, i) => (k ? 60 + k * 20 : 180) + (i % 7));
  await writeTiffStack(path.join(dir, "image.tif"), { data: image, shape: SYNTH_SHAPE });
  await writeTiffStack(path.join(dir, "labels.tif"), { data: classes, shape: SYNTH_SHAPE });
  const out = path.join(dir, "run");
  await runPipeline({ image: path.join(dir, "image.tif"), labels: path.join(dir, "labels.tif"), voxelNm: SYNTH_VOXEL, out });
  return out;
}

/** A fresh copy of a run folder, so each test edits its own. */
export function copyRun(run: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), "vemscope-edits-copy-"));
  const out = path.join(dir, "run");
  cpSync(run, out, { recursive: true });
  return out;
}

/**
 * synthRun, built once per machine and pipeline version (the run takes ~20 s here with the training job
 * running): keyed by the sources that decide its output, built aside and renamed into place, so test files
 * running in parallel never see half of it. Callers edit a copyRun of it, never the cache itself.
 */
export async function cachedSynthRun(): Promise<string> {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const hash = createHash("sha256");
  for (const f of ["test-fixture.ts", "../pipeline/run.ts", "../pipeline/layers.ts"]) {
    hash.update(readFileSync(path.join(here, f)));
  }
  const cache = path.join(tmpdir(), `vemscope-edits-fixture-${hash.digest("hex").slice(0, 16)}`);
  if (existsSync(path.join(cache, "state.json"))) return cache;
  const built = await synthRun();
  try {
    renameSync(built, cache);
  } catch {
    // another test file won the race; its copy is identical
    rmSync(path.dirname(built), { recursive: true, force: true });
  }
  return cache;
}
