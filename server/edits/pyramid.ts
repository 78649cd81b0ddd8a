import type { Vec3, Volume } from "../../precomputed/array.js";
import type { VolumeInfo } from "../../precomputed/info.js";
import { downsampleMode } from "../../precomputed/multiscale.js";
import type { Storage } from "../../precomputed/storage.js";
import { writeRegion } from "../../precomputed/volume-io.js";
import type { Box6 } from "./ops.js";

/**
 * Every scale of the segmentation held in memory (about 1.15-1.33x scale 0), so an edit recomputes only the
 * block modes its changed box feeds, scale by scale, and re-encodes only the chunks those touch. The result
 * equals a full cascade of downsampleMode (what the pipeline writes): each recomputed output voxel sees
 * exactly the same source block.
 */
export interface Pyramid {
  levels: Volume<Uint32Array>[];
  /** steps[i]: factor from scale i-1 to scale i ([1,1,1] for scale 0). */
  steps: Vec3[];
}

export function pyramidSteps(info: VolumeInfo): Vec3[] {
  return info.scales.map((s, i) => (i === 0 ? [1, 1, 1] : ([0, 1, 2].map((d) => Math.round(s.resolution[d] / info.scales[i - 1].resolution[d])) as Vec3)));
}

export function buildPyramid(info: VolumeInfo, scale0: Volume<Uint32Array>): Pyramid {
  const steps = pyramidSteps(info);
  const levels = [scale0];
  for (let i = 1; i < info.scales.length; i++) levels.push(downsampleMode(levels[i - 1], steps[i]));
  return { levels, steps };
}

function cropOf(v: Volume<Uint32Array>, lo: Vec3, hi: Vec3): Volume<Uint32Array> {
  const [nx, ny] = v.shape;
  const shape: Vec3 = [hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]];
  const out = new Uint32Array(shape[0] * shape[1] * shape[2]);
  let o = 0;
  for (let z = lo[2]; z < hi[2]; z++)
    for (let y = lo[1]; y < hi[1]; y++, o += shape[0]) {
      const from = lo[0] + nx * (y + ny * z);
      out.set(v.data.subarray(from, from + shape[0]), o);
    }
  return { data: out, shape };
}

function pasteInto(v: Volume<Uint32Array>, lo: Vec3, part: Volume<Uint32Array>): void {
  const [nx, ny] = v.shape;
  const [px, py, pz] = part.shape;
  for (let z = 0; z < pz; z++)
    for (let y = 0; y < py; y++) {
      const from = px * (y + py * z);
      v.data.set(part.data.subarray(from, from + px), lo[0] + nx * (lo[1] + y + ny * (lo[2] + z)));
    }
}

/** After scale 0 changed inside `box0`, recomputes the coarser scales there; returns each scale's changed box. */
export function updatePyramid(p: Pyramid, box0: Box6): Box6[] {
  const boxes: Box6[] = [box0];
  for (let i = 1; i < p.levels.length; i++) {
    const prev = boxes[i - 1];
    const step = p.steps[i];
    const size = p.levels[i].shape;
    const lo = [0, 1, 2].map((d) => Math.floor(prev[d] / step[d])) as Vec3;
    const hi = [0, 1, 2].map((d) => Math.min(size[d], Math.ceil(prev[d + 3] / step[d]))) as Vec3;
    const srcSize = p.levels[i - 1].shape;
    const src = cropOf(
      p.levels[i - 1],
      [lo[0] * step[0], lo[1] * step[1], lo[2] * step[2]],
      [0, 1, 2].map((d) => Math.min(srcSize[d], hi[d] * step[d])) as Vec3,
    );
    pasteInto(p.levels[i], lo, downsampleMode(src, step));
    boxes.push([lo[0], lo[1], lo[2], hi[0], hi[1], hi[2]]);
  }
  return boxes;
}

/** Re-encodes, in every scale, the chunks that intersect that scale's changed box. */
export async function writeChangedChunks(storage: Storage, prefix: string, info: VolumeInfo, p: Pyramid, boxes: readonly Box6[]): Promise<void> {
  for (let i = 0; i < boxes.length; i++) {
    const b = boxes[i];
    if (b[3] <= b[0] || b[4] <= b[1] || b[5] <= b[2]) continue;
    const scale = info.scales[i];
    const chunk = scale.chunk_sizes[0];
    if (scale.voxel_offset.some((v) => v !== 0)) throw new Error("edits need layers whose voxel_offset is 0");
    const lo = [0, 1, 2].map((d) => Math.floor(b[d] / chunk[d]) * chunk[d]) as Vec3;
    const hi = [0, 1, 2].map((d) => Math.min(scale.size[d], Math.ceil(b[d + 3] / chunk[d]) * chunk[d])) as Vec3;
    await writeRegion(storage, prefix, info, i, lo, cropOf(p.levels[i], lo, hi), { gzip: true });
  }
}
