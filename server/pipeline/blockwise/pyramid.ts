/**
 * A multiscale precomputed volume written region by region. Scale 0 comes from a box reader; each lower scale
 * is made from the one above in blocks aligned to the downsampling step, so a block downsamples alone and gives
 * the same voxels as downsampling the whole volume (mean and mode look only inside their step-sized cells).
 * Scales that feed a next one go to a temporary block store (lossless, unlike JPEG chunks) and are dropped as
 * soon as the next scale is written. Memory: one region plus one child region.
 */
import * as path from "node:path";
import type { Vec3 } from "../../../precomputed/array.js";
import type { VolumeInfo } from "../../../precomputed/info.js";
import { downsampleMean, downsampleMode } from "../../../precomputed/multiscale.js";
import type { Storage } from "../../../precomputed/storage.js";
import { writeRegion } from "../../../precomputed/volume-io.js";
import { BlockStore, blockOrigins, type StoreArray, type StoreType } from "./store.js";

export type BoxReader = (origin: Vec3, extent: Vec3) => StoreArray | Promise<StoreArray>;

export interface PyramidOptions {
  /** Region shape in voxels at every scale: a multiple of the chunk size (and so of every step). */
  region: Vec3;
  /** Folder for the intermediate scales. */
  tmpDir: string;
  gzip?: boolean;
  onProgress?: (done: number, total: number) => void;
}

export async function writePyramid(storage: Storage, prefix: string, info: VolumeInfo, scale0: BoxReader, options: PyramidOptions): Promise<void> {
  const { region } = options;
  const chunk = info.scales[0].chunk_sizes[0];
  if (!region.every((r, d) => r > 0 && r % chunk[d] === 0)) throw new RangeError(`region ${region.join("x")} is not a multiple of the chunk ${chunk.join("x")}`);
  const type = info.data_type as StoreType;
  const downsample = info.type === "segmentation" ? downsampleMode : downsampleMean;
  await storage.put(`${prefix}/info`, JSON.stringify(info, null, 1));
  const regionsIn = (size: Vec3): number => size.reduce((n, s, d) => n * Math.ceil(s / region[d]), 1);
  const total = info.scales.reduce((n, s) => n + regionsIn(s.size), 0);
  let done = 0;
  let read: BoxReader = scale0;
  let prevStore: BlockStore | undefined;
  for (let s = 0; s < info.scales.length; s++) {
    const scale = info.scales[s];
    const size = scale.size;
    const step = s === 0 ? ([1, 1, 1] as Vec3) : ([0, 1, 2].map((d) => Math.round(scale.resolution[d] / info.scales[s - 1].resolution[d])) as Vec3);
    const prevSize = s === 0 ? size : info.scales[s - 1].size;
    const keep = s + 1 < info.scales.length ? new BlockStore(path.join(options.tmpDir, `scale-${s}`), size, region, type) : undefined;
    for (const origin of blockOrigins(size, region)) {
      const extent = [0, 1, 2].map((d) => Math.min(region[d], size[d] - origin[d])) as Vec3;
      let data: StoreArray;
      if (s === 0) {
        data = await read(origin, extent);
      } else {
        data = allocate(type, extent[0] * extent[1] * extent[2]);
        // Children: the step^3 regions of the scale above that this one covers, each downsampled on its own.
        for (let cz = 0; cz < step[2]; cz++) {
          for (let cy = 0; cy < step[1]; cy++) {
            for (let cx = 0; cx < step[0]; cx++) {
              const c = [cx, cy, cz];
              const co = [0, 1, 2].map((d) => origin[d] * step[d] + c[d] * region[d]) as Vec3;
              if (co.some((v, d) => v >= prevSize[d])) continue;
              const ce = [0, 1, 2].map((d) => Math.min(region[d], prevSize[d] - co[d])) as Vec3;
              const small = downsample({ data: await read(co, ce), shape: ce }, step);
              const at = [0, 1, 2].map((d) => (c[d] * region[d]) / step[d]);
              pasteBox(small.data as StoreArray, small.shape, data, extent, at as Vec3);
            }
          }
        }
      }
      await writeRegion(storage, prefix, info, s, [0, 1, 2].map((d) => scale.voxel_offset[d] + origin[d]) as Vec3, { data, shape: extent }, { gzip: options.gzip });
      keep?.writeBlock(origin, data);
      options.onProgress?.(++done, total);
    }
    prevStore?.remove();
    prevStore = keep;
    if (keep) read = (o, e) => keep.readBox(o, e);
  }
  prevStore?.remove();
}

function allocate(type: StoreType, n: number): StoreArray {
  return type === "uint8" ? new Uint8Array(n) : type === "uint16" ? new Uint16Array(n) : new Uint32Array(n);
}

function pasteBox(src: StoreArray, srcShape: Vec3, dst: StoreArray, dstShape: Vec3, at: Vec3): void {
  const [sx, sy, sz] = srcShape;
  for (let z = 0; z < sz; z++) {
    for (let y = 0; y < sy; y++) {
      const from = sx * (y + sy * z);
      dst.set(src.subarray(from, from + sx), at[0] + dstShape[0] * (at[1] + y + dstShape[1] * (at[2] + z)));
    }
  }
}
