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

/**
 * Scale-0 chunks (grid cells of `chunk`) holding a voxel of the runs, as boxes clipped to the volume: the
 * runs are x-runs (a run that wraps onto later rows covers those rows whole).
 */
function chunksOfRuns(runs: Uint32Array, shape: Vec3, chunk: Vec3): Box6[] {
  const [nx, ny] = shape;
  const g = [0, 1, 2].map((d) => Math.ceil(shape[d] / chunk[d])) as Vec3;
  const hit = new Uint8Array(g[0] * g[1] * g[2]);
  for (let k = 0; k < runs.length; k += 4) {
    const start = runs[k];
    const end = start + runs[k + 1];
    for (let i = start; i < end; ) {
      const x = i % nx;
      const r = (i - x) / nx;
      const y = r % ny;
      const z = (r - y) / ny;
      const rowEnd = Math.min(end, i - x + nx);
      const gy = Math.floor(y / chunk[1]);
      const gz = Math.floor(z / chunk[2]);
      const last = Math.floor((rowEnd - 1 - (i - x)) / chunk[0]);
      for (let gx = Math.floor(x / chunk[0]); gx <= last; gx++) hit[gx + g[0] * (gy + g[1] * gz)] = 1;
      i = rowEnd;
    }
  }
  const out: Box6[] = [];
  for (let gz = 0, c = 0; gz < g[2]; gz++)
    for (let gy = 0; gy < g[1]; gy++)
      for (let gx = 0; gx < g[0]; gx++, c++)
        if (hit[c]) {
          const lo = [gx * chunk[0], gy * chunk[1], gz * chunk[2]];
          out.push([lo[0], lo[1], lo[2], Math.min(shape[0], lo[0] + chunk[0]), Math.min(shape[1], lo[1] + chunk[1]), Math.min(shape[2], lo[2] + chunk[2])]);
        }
  return out;
}

/**
 * Re-encodes, in every scale, the chunks that intersect that scale's changed box. Given the edit's runs,
 * only the chunks whose content can have changed: the scale-0 chunks holding a changed voxel, and in each
 * coarser scale the chunks holding a block mode fed by those (the same box arithmetic as updatePyramid,
 * per changed chunk), so a sparse object (a long diagonal neurite) does not rewrite its whole box.
 */
export async function writeChangedChunks(storage: Storage, prefix: string, info: VolumeInfo, p: Pyramid, boxes: readonly Box6[], runs?: Uint32Array): Promise<void> {
  const changed: Box6[][] | undefined = runs && [chunksOfRuns(runs, p.levels[0].shape, info.scales[0].chunk_sizes[0])];
  if (changed) {
    for (let i = 1; i < boxes.length; i++) {
      const step = p.steps[i];
      const size = p.levels[i].shape;
      changed.push(changed[i - 1].map((prev) => {
        const lo = [0, 1, 2].map((d) => Math.floor(prev[d] / step[d]));
        const hi = [0, 1, 2].map((d) => Math.min(size[d], Math.ceil(prev[d + 3] / step[d])));
        return [lo[0], lo[1], lo[2], hi[0], hi[1], hi[2]];
      }));
    }
  }
  for (let i = 0; i < boxes.length; i++) {
    const b = boxes[i];
    if (b[3] <= b[0] || b[4] <= b[1] || b[5] <= b[2]) continue;
    const scale = info.scales[i];
    const chunk = scale.chunk_sizes[0];
    if (scale.voxel_offset.some((v) => v !== 0)) throw new Error("edits need layers whose voxel_offset is 0");
    const regionOf = (r: Box6) => {
      const lo = [0, 1, 2].map((d) => Math.floor(r[d] / chunk[d]) * chunk[d]) as Vec3;
      const hi = [0, 1, 2].map((d) => Math.min(scale.size[d], Math.ceil(r[d + 3] / chunk[d]) * chunk[d])) as Vec3;
      return { lo, hi };
    };
    if (!changed) {
      const { lo, hi } = regionOf(b);
      await writeRegion(storage, prefix, info, i, lo, cropOf(p.levels[i], lo, hi), { gzip: true });
      continue;
    }
    // Chunks of this scale that a changed box reaches, each written once.
    const g = [0, 1, 2].map((d) => Math.ceil(scale.size[d] / chunk[d]));
    const hit = new Set<number>();
    for (const r of changed[i]) {
      if (r[3] <= r[0] || r[4] <= r[1] || r[5] <= r[2]) continue;
      const { lo, hi } = regionOf(r);
      for (let z = lo[2]; z < hi[2]; z += chunk[2])
        for (let y = lo[1]; y < hi[1]; y += chunk[1])
          for (let x = lo[0]; x < hi[0]; x += chunk[0]) hit.add(x / chunk[0] + g[0] * (y / chunk[1] + g[1] * (z / chunk[2])));
    }
    for (const c of [...hit].sort((a, b2) => a - b2)) {
      const gx = c % g[0];
      const gy = Math.floor(c / g[0]) % g[1];
      const gz = Math.floor(c / (g[0] * g[1]));
      const lo: Vec3 = [gx * chunk[0], gy * chunk[1], gz * chunk[2]];
      const hi = [0, 1, 2].map((d) => Math.min(scale.size[d], lo[d] + chunk[d])) as Vec3;
      await writeRegion(storage, prefix, info, i, lo, cropOf(p.levels[i], lo, hi), { gzip: true });
    }
  }
}
