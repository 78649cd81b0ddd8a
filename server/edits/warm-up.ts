/**
 * Warms the merge's commit kernels on the real segmentation when an editor opens. V8 compiles a kernel
 * mid-loop on its first large input and throws that code away on reaching a branch it has not seen yet, so
 * the first 10^8-voxel merge ran at a fraction of the speed of the next (its pyramid update ~0.9 s cold vs
 * ~0.2-0.35 s warm). Here a merge of the two largest segments of one class, cut to a small box, is applied,
 * carried through the pyramid, encoded and undone: the same code paths, with the layer's own arrays, at a
 * small cost. (Warming on a private small volume made later edits slower, code specialised to other arrays.
 * Splits are not warmed: planning one inside a small box, or a whole split of the largest segment at open
 * (~1-2 s of CPU), left the first big split's planning as slow: 1.04-1.10 vs 1.09-1.11 s CPU, 10^8 voxels.)
 *
 * The do and undo run in one synchronous stretch, so nothing else sees the labels in between (the server is
 * single-threaded and the chunk worker only reads scale 0 during an edit); the pyramid is rebuilt if the undo
 * fails part way.
 */
import type { Vec3 } from "../../precomputed/array.js";
import type { VolumeInfo } from "../../precomputed/info.js";
import type { InstanceRow } from "../pipeline/report.js";
import { encodeChunkJob } from "./chunk-job.js";
import { applyDiff, writeDiff } from "./diff.js";
import type { SegmentSums } from "./measure.js";
import { mergeDiff, parseBox, type Box6 } from "./ops.js";
import { chunkBoxes, fastEncoded } from "./changed-chunks.js";
import { knownBlocks, rebuildPyramid, updateCoarser, updatePyramid, updateScale0, type Pyramid } from "./pyramid.js";

/** Largest warm-up box (voxels per axis): a few chunks, ~0.1-0.3 s of CPU. */
const BOX: Vec3 = [128, 128, 16];

export interface WarmTarget {
  info: VolumeInfo;
  pyramid: Pyramid;
  sums: SegmentSums;
  rows: ReadonlyMap<number, InstanceRow>;
}

const boxOf = (t: WarmTarget, id: number): Box6 => parseBox(t.rows.get(id)?.bbox_voxels ?? "") ?? [0, 0, 0, 0, 0, 0];

/** `box` cut to at most BOX around its centre. */
function centreBox(box: Box6): Box6 {
  const out = [...box] as Box6;
  for (let d = 0; d < 3; d++) {
    const n = box[d + 3] - box[d];
    if (n <= BOX[d]) continue;
    out[d] = box[d] + Math.floor((n - BOX[d]) / 2);
    out[d + 3] = out[d] + BOX[d];
  }
  return out;
}

/** Runs the warm-up merge; false when there was none to run (no class with two segments, or no voxel in the box). */
export function warmUp(t: WarmTarget): boolean {
  const rows = [...t.rows.values()].filter((r) => parseBox(r.bbox_voxels) !== undefined).sort((a, b) => b.voxels - a.voxels);
  // The largest segment that has another of its class, and the largest such other.
  for (const a of rows) {
    const b = rows.find((r) => r.id !== a.id && r.class === a.class);
    if (b) return warmMerge(t, Math.min(a.id, b.id), Math.max(a.id, b.id));
  }
  return false;
}

function warmMerge(t: WarmTarget, keep: number, drop: number): boolean {
  const p = t.pyramid;
  const { data: labels, shape } = p.levels[0];
  const voxelNm = t.info.scales[0].resolution;
  const diff = mergeDiff(labels, shape, keep, drop, centreBox(boxOf(t, drop)), knownBlocks(p));
  if (diff.runs.length === 0) return false;
  writeDiff(labels, diff.runs);
  let updated = false;
  try {
    const segs0 = updateScale0(p, diff.runs);
    const changes = updateCoarser(p, diff.bbox, segs0);
    updated = true;
    for (let i = 0; i < changes.length; i++) {
      if (!fastEncoded(t.info, i)) continue;
      const { data, shape: levelShape } = p.levels[i];
      const block = t.info.scales[i].compressed_segmentation_block_size as Vec3;
      encodeChunkJob({ data, shape: levelShape, block, index: p.blocks?.[i], boxes: chunkBoxes(t.info, p, i, changes[i].segs ?? new Int32Array(0)) });
    }
    const classes = new Map([keep, drop].map((id) => [id, t.rows.get(id)?.class ?? "unknown"]));
    t.sums.derive(labels, shape, voxelNm, classes, diff.runs);
  } finally {
    applyDiff(labels, diff.runs, "backward");
    // The block indexes follow an update by counting: one cut short is rebuilt instead (as the editor does).
    if (updated) updatePyramid(p, diff.bbox, diff.runs);
    else rebuildPyramid(p);
  }
  return true;
}
