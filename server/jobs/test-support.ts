/** Shared by the job tests and the scale bench: a small layer with scale 0 written and its full pyramid planned. */
import { promises as fs } from "node:fs";
import * as path from "node:path";
import type { Vec3, Volume } from "../../precomputed/array.js";
import type { VolumeInfo } from "../../precomputed/info.js";
import type { Storage } from "../../precomputed/storage.js";
import { makeInfo, writeRegion } from "../../precomputed/volume-io.js";

/** Smooth blobs plus seeded noise for images; a few labelled slabs for segmentations. Deterministic. */
export function syntheticVolume(kind: "image" | "segmentation", shape: Vec3, seed = 1): Volume {
  const [nx, ny, nz] = shape;
  const n = nx * ny * nz;
  let s = seed >>> 0;
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  if (kind === "image") {
    const data = new Uint8Array(n);
    for (let z = 0, i = 0; z < nz; z++) for (let y = 0; y < ny; y++) for (let x = 0; x < nx; x++, i++) {
      data[i] = Math.max(0, Math.min(255, 128 + 60 * Math.sin(x / 7) * Math.cos(y / 9) + 30 * Math.sin(z / 3) + 20 * (rnd() - 0.5)));
    }
    return { data, shape };
  }
  const data = new Uint32Array(n);
  for (let z = 0, i = 0; z < nz; z++) for (let y = 0; y < ny; y++) for (let x = 0; x < nx; x++, i++) {
    data[i] = rnd() < 0.05 ? 0 : 1 + ((Math.floor(x / 11) + 3 * Math.floor(y / 13) + 7 * Math.floor(z / 5)) % 17);
  }
  return { data, shape };
}

export function layerInfo(kind: "image" | "segmentation", size: Vec3, chunk: Vec3, maxLevels: number, resolution: Vec3 = [8, 8, 16]): VolumeInfo {
  return makeInfo({
    type: kind,
    dataType: kind === "image" ? "uint8" : "uint32",
    size,
    resolution,
    chunkSize: chunk,
    encoding: kind === "image" ? "raw" : "compressed_segmentation",
    maxLevels,
  });
}

/** Writes `info` and scale 0 only: the input a downsample run starts from. */
export async function writeScaleZero(storage: Storage, info: VolumeInfo, volume: Volume): Promise<void> {
  await storage.put("info", JSON.stringify(info, null, 1));
  await writeRegion(storage, "", info, 0, info.scales[0].voxel_offset, volume, { gzip: true });
}

/** Every file under a folder, relative path -> bytes (ignores nothing: temp files would show up as a difference). */
export async function snapshot(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const walk = async (d: string): Promise<void> => {
    for (const e of await fs.readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out.set(path.relative(dir, p), await fs.readFile(p));
    }
  };
  await walk(dir);
  return out;
}

