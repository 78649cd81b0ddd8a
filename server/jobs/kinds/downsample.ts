import type { Vec3 } from "../../../precomputed/array.js";
import { PrecomputedError } from "../../../precomputed/errors.js";
import { boxesIn, chunkKey, validateInfo, type VolumeInfo } from "../../../precomputed/info.js";
import { readStoredJson } from "../../../precomputed/keys.js";
import { downsampleMean, downsampleMode } from "../../../precomputed/multiscale.js";
import { readRegion, writeRegion } from "../../../precomputed/volume-io.js";
import { JobError } from "../errors.js";
import type { TaskKind } from "../kinds.js";
import { createTasks, type JsonObject, type Task } from "../tasks.js";

/**
 * `downsample`: builds scales source+1 .. source+levels of a precomputed layer for one block of the source
 * scale (igneous's DownsampleTask): read the block, block-mean (image) or block-mode (segmentation) down the
 * layer's own scale steps, write every chunk of each coarser scale that the block covers.
 *
 * Blocks must be aligned to chunk x cumulative factor at every level (planDownsample chooses such blocks), so
 * each output chunk comes from exactly one task: tasks never share an output key and the union of their
 * outputs equals writeVolume's pyramid byte for byte.
 */

export interface DownsampleParams {
  /** Layer location: local folder or s3://bucket/prefix (holding `info`). */
  layer: string;
  /** Scale the block's coordinates refer to. Default 0. */
  source_scale?: number;
  /** Coarser scales to produce. */
  levels: number;
  /** gzip raw / compressed_segmentation chunks (Content-Encoding), as writeVolume's option. Default true. */
  gzip?: boolean;
}

function params(task: Task): Required<DownsampleParams> {
  const p = task.params;
  const bad = (why: string): never => {
    throw new JobError("invalid_task", `${task.id}: ${why}`);
  };
  if (typeof p.layer !== "string" || p.layer.length === 0) bad("params.layer must be a storage location");
  const source = p.source_scale ?? 0;
  if (typeof source !== "number" || !Number.isInteger(source) || source < 0) bad("params.source_scale must be an integer >= 0");
  if (typeof p.levels !== "number" || !Number.isInteger(p.levels) || p.levels < 1) bad("params.levels must be an integer >= 1");
  if (p.gzip !== undefined && typeof p.gzip !== "boolean") bad("params.gzip must be a boolean");
  return { layer: p.layer as string, source_scale: source as number, levels: p.levels as number, gzip: p.gzip !== false };
}

function stepBetween(info: VolumeInfo, i: number): Vec3 {
  const a = info.scales[i - 1];
  const b = info.scales[i];
  const step = [0, 1, 2].map((d) => b.resolution[d] / a.resolution[d]);
  if (!step.every((s) => Math.abs(s - Math.round(s)) < 1e-6 && Math.round(s) >= 1)) {
    throw new JobError("invalid_task", `scale ${i} is not an integer downsampling of scale ${i - 1}`);
  }
  return step.map(Math.round) as Vec3;
}

/** Smallest block edge per axis that keeps every level's writes whole chunks: chunk_i x factor from source to i. */
export function downsampleAlignment(info: VolumeInfo, source: number, levels: number): Vec3 {
  const align: Vec3 = [1, 1, 1];
  let factor: Vec3 = [1, 1, 1];
  for (let i = source + 1; i <= source + levels; i++) {
    const step = stepBetween(info, i);
    factor = factor.map((f, d) => f * step[d]) as Vec3;
    const chunk = info.scales[i].chunk_sizes[0];
    for (let d = 0; d < 3; d++) align[d] = lcm(align[d], chunk[d] * factor[d]);
  }
  return align;
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
const lcm = (a: number, b: number): number => (a / gcd(a, b)) * b;

export const downsampleKind: TaskKind = {
  name: "downsample",
  summary: "coarser scales of a precomputed layer for one block of a finer scale",
  async run(task, ctx) {
    const p = params(task);
    const storage = ctx.storage(p.layer);
    const info = validateInfo(await readStoredJson(storage, "info", "layer info"));
    const last = p.source_scale + p.levels;
    if (last >= info.scales.length) throw new JobError("invalid_task", `${task.id}: the layer has ${info.scales.length} scales, the task needs ${last + 1}`);
    const src = info.scales[p.source_scale];
    const align = downsampleAlignment(info, p.source_scale, p.levels);
    const srcEnd = src.size.map((s, d) => s + src.voxel_offset[d]);
    for (let d = 0; d < 3; d++) {
      const rs = task.bbox.start[d] - src.voxel_offset[d];
      const re = task.bbox.end[d] - src.voxel_offset[d];
      if (rs < 0 || task.bbox.end[d] > srcEnd[d] || rs % align[d] !== 0 || (re % align[d] !== 0 && task.bbox.end[d] !== srcEnd[d])) {
        throw new JobError("invalid_task", `${task.id}: bbox must lie in scale ${p.source_scale} on a ${align.join("x")} grid (or end at its edge)`);
      }
    }
    const outputs: string[] = [];
    try {
      let volume = await readRegion(storage, "", info, p.source_scale, task.bbox.start, task.bbox.end);
      let rel = task.bbox.start.map((s, d) => s - src.voxel_offset[d]) as Vec3;
      const downsample = info.type === "segmentation" ? downsampleMode : downsampleMean;
      for (let i = p.source_scale + 1; i <= last; i++) {
        const step = stepBetween(info, i);
        const scale = info.scales[i];
        volume = downsample(volume, step);
        rel = rel.map((r, d) => r / step[d]) as Vec3;
        const at = rel.map((r, d) => r + scale.voxel_offset[d]) as Vec3;
        await writeRegion(storage, "", info, i, at, volume, { gzip: p.gzip });
        const end = at.map((a, d) => a + volume.shape[d]) as Vec3;
        for (const box of boxesIn(at, end, scale.chunk_sizes[0], scale.voxel_offset)) outputs.push(chunkKey(scale, box.start, box.end));
      }
    } catch (e) {
      if (e instanceof PrecomputedError && (e.code === "invalid_argument" || e.code === "invalid_info")) {
        throw new JobError("invalid_task", `${task.id}: ${e.message}`, { cause: e });
      }
      throw e;
    }
    return { outputs };
  },
};

/**
 * One downsample task per block of the source scale. The block is the requested shape rounded up to the
 * alignment the levels need (see downsampleAlignment).
 */
export function planDownsample(info: VolumeInfo, p: DownsampleParams, blockShape: Vec3): { tasks: Task[]; blockShape: Vec3 } {
  const source = p.source_scale ?? 0;
  const align = downsampleAlignment(info, source, p.levels);
  const block = blockShape.map((b, d) => Math.max(1, Math.ceil(b / align[d])) * align[d]) as Vec3;
  const src = info.scales[source];
  const params: JsonObject = { layer: p.layer, source_scale: source, levels: p.levels, gzip: p.gzip !== false };
  const tasks = createTasks("downsample", src.size, block, params, { origin: src.voxel_offset });
  return { tasks, blockShape: block };
}
