/**
 * A synthetic hepatocyte-like volume with analytic ground truth: class labels, an EM-like image and
 * truth.json (see truth.ts for the schema). Deterministic per seed.
 */
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Vec3, Volume } from "../../../precomputed/array.js";
import { PipelineError } from "../errors.js";
import { tempPathFor, writeTiffStack, type ProgressCallback } from "../tiff.js";
import { DEFAULT_PHANTOM_CONFIG, type PhantomConfig } from "./config.js";
import { rasterise } from "./rasterise.js";
import { DEFAULT_EM_STYLE, renderEM, type EmStyle } from "./render.js";
import { buildScene } from "./scene.js";
import { buildTruth, type PhantomTruth } from "./truth.js";

export type { PhantomTruth, OrganelleTruth, ErElementTruth } from "./truth.js";
export type { EmStyle } from "./render.js";
export { DEFAULT_EM_STYLE, renderEM, variedEmStyle } from "./render.js";
export { CLASS_CODES } from "./shapes.js";
export { DEFAULT_PHANTOM_CONFIG, type PhantomConfig } from "./config.js";

export interface PhantomOptions {
  seed: number;
  /** Voxels [x, y, z]; default 512 x 512 x 64. */
  size?: Vec3;
  voxelNm?: Vec3;
  style?: EmStyle;
  config?: PhantomConfig;
  onProgress?: ProgressCallback;
}

export interface Phantom {
  image: Volume<Uint8Array>;
  /** uint8 class codes (0 background, 1 er, 2 mito, 3 ld, 4 lyso, 5 perox, 6 nucleus). */
  labels: Volume<Uint8Array>;
  truth: PhantomTruth;
}

export const DEFAULT_PHANTOM_SIZE: Vec3 = [512, 512, 64];
export const DEFAULT_PHANTOM_VOXEL_NM: Vec3 = [5, 5, 45];

export function generatePhantom(options: PhantomOptions): Phantom {
  const { seed, size = DEFAULT_PHANTOM_SIZE, voxelNm = DEFAULT_PHANTOM_VOXEL_NM, style = DEFAULT_EM_STYLE, config = DEFAULT_PHANTOM_CONFIG, onProgress } = options;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new PipelineError("bad_argument", `seed must be an integer in [0, 2^32), got ${seed}`, "--seed");
  if (!size.every((n) => Number.isInteger(n) && n >= 1) || size[0] * size[1] * size[2] > 2 ** 31) {
    throw new PipelineError("bad_argument", `size must be three positive integers with < 2^31 voxels, got ${size.join(",")}`, "--size");
  }
  if (!voxelNm.every((v) => Number.isFinite(v) && v > 0)) throw new PipelineError("bad_argument", `voxel size must be positive, got ${voxelNm.join(",")}`, "--voxel");
  onProgress?.(0, 4, "layout");
  const scene = buildScene(seed, size, voxelNm, config);
  onProgress?.(1, 4, "rasterise");
  const raster = rasterise(scene.organelles, scene.er, size, voxelNm);
  if (raster.conflicts > 0) {
    throw new PipelineError("stage_failed", `phantom seed ${seed}: ${raster.conflicts} voxels claimed by two objects (layout bug)`, "phantom");
  }
  onProgress?.(2, 4, "measure");
  const truth = buildTruth(scene, raster, config.contactThreshold);
  onProgress?.(3, 4, "render");
  const labels: Volume<Uint8Array> = { data: raster.labels, shape: [...size] };
  const image = renderEM(labels, seed, style);
  onProgress?.(4, 4, "done");
  return { image, labels, truth };
}

export interface WritePhantomOptions {
  onProgress?: ProgressCallback;
}

/**
 * Writes DIR/image.tif, DIR/labels.tif and DIR/truth.json, each to a temporary name then renamed.
 * truth.json goes last and a stale one is removed first, so a folder with truth.json is complete.
 */
export async function writePhantom(dir: string, phantom: Phantom, options: WritePhantomOptions = {}): Promise<void> {
  const { onProgress } = options;
  const voxelNm = phantom.truth.voxel_nm;
  try {
    await mkdir(dir, { recursive: true });
    await rm(join(dir, "truth.json"), { force: true });
  } catch (e) {
    throw new PipelineError("stage_failed", `cannot prepare output folder: ${e instanceof Error ? e.message : String(e)}`, dir, { cause: e });
  }
  onProgress?.(0, 3, "image.tif");
  await writeTiffStack(join(dir, "image.tif"), phantom.image, { voxelNm });
  onProgress?.(1, 3, "labels.tif");
  await writeTiffStack(join(dir, "labels.tif"), phantom.labels, { voxelNm });
  onProgress?.(2, 3, "truth.json");
  const target = join(dir, "truth.json");
  const tmp = tempPathFor(target);
  try {
    await writeFile(tmp, `${JSON.stringify(phantom.truth, null, 1)}\n`);
    await rename(tmp, target);
  } catch (e) {
    await rm(tmp, { force: true });
    throw new PipelineError("stage_failed", `cannot write truth.json: ${e instanceof Error ? e.message : String(e)}`, target, { cause: e });
  }
  onProgress?.(3, 3, "done");
}
