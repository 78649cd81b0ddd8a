/**
 * Splits of big objects on cells: the cell-wise split (server/edits/ops.ts splitDiffCoarse, what splits ran
 * before the refinement along the cut, kept to replay their logs): the cut still falls on the neck, every
 * voxel of the object goes to a piece, the result does not depend on the box given; the planner logs the
 * grid of its (refined, test/edits-split-refine.test.ts) split and a replay of the log reruns exactly that
 * split (logs without a grid replay at full resolution).
 */
import { describe, expect, it } from "vitest";
import type { Vec3 } from "../precomputed/array.js";
import type { OpRecord } from "../server/edits/db.js";
import { applyDiff } from "../server/edits/diff.js";
import { COARSE_SPLIT_GRID, COARSE_SPLIT_VOXELS, scanBox, splitDiff, splitDiffCoarse, type Box6 } from "../server/edits/ops.js";
import { planEdit } from "../server/edits/plan.js";
import { replayLog } from "../server/edits/replay.js";
import { mitoState } from "./helpers/edits.js";

const VOXEL: Vec3 = [5, 5, 45];

/** Two balls joined by a neck along x (label 7), `scale` times the size of ops.test.ts's dumbbell in xy. */
function dumbbell(scale: number): { labels: Uint32Array; shape: Vec3 } {
  const shape: Vec3 = [60 * scale, 30 * scale, 6];
  const labels = new Uint32Array(shape[0] * shape[1] * shape[2]);
  for (let z = 0; z < shape[2]; z++)
    for (let y = 0; y < shape[1]; y++)
      for (let x = 0; x < shape[0]; x++) {
        const ball = (cx: number) => Math.hypot((x - cx * scale) * 5, (y - 15 * scale) * 5, (z - 2.5) * 45) <= 60 * scale;
        const neck = x > 15 * scale && x < 45 * scale && Math.hypot((y - 15 * scale) * 5, (z - 2.5) * 45) <= 15 * scale;
        if (ball(15) || ball(45) || neck) labels[x + shape[0] * (y + shape[1] * z)] = 7;
      }
  return { labels, shape };
}

const same = (a: Uint32Array, b: Uint32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

describe("coarse split", () => {
  it("cuts at the neck on 2 x 2 x 1 cells, gives every voxel a piece, whatever box it is given", () => {
    const { labels, shape } = dumbbell(2);
    const box = scanBox(labels, shape, new Set([7])) as Box6;
    const seeds = [
      { voxel: [21, 31, 2] as Vec3, group: 0 },
      { voxel: [99, 30, 3] as Vec3, group: 1 },
    ];
    const diff = splitDiffCoarse(labels, shape, VOXEL, 7, box, seeds, [8, 9], [2, 2, 1]);
    expect(diff).toBeDefined();
    const runs = (diff as NonNullable<typeof diff>).runs;
    const after = labels.slice();
    expect(applyDiff(after, runs, "forward")).toBe(true);
    expect(after.includes(7)).toBe(false);
    expect(after.filter((v) => v === 8).length + after.filter((v) => v === 9).length).toBe(labels.filter((v) => v === 7).length);
    for (let i = 0; i < after.length; i++) {
      if (after[i] === 0) continue;
      const x = i % shape[0];
      if (x < 56) expect(after[i]).toBe(8);
      if (x > 64) expect(after[i]).toBe(9);
    }
    // A looser box (an odd origin, a margin) gives the same runs: cells sit on the volume's grid.
    const loose: Box6 = [box[0] - 3, box[1] - 1, 0, Math.min(shape[0], box[3] + 5), Math.min(shape[1], box[4] + 2), shape[2]];
    const again = splitDiffCoarse(labels, shape, VOXEL, 7, loose, seeds, [8, 9], [2, 2, 1]);
    expect(same(runs, (again as NonNullable<typeof again>).runs)).toBe(true);
    // Seeds of two groups in one cell cannot be honoured on the grid: the caller falls back.
    expect(splitDiffCoarse(labels, shape, VOXEL, 7, box, [{ voxel: [40, 30, 2], group: 0 }, { voxel: [41, 31, 2], group: 1 }], [8, 9], [2, 2, 1])).toBeUndefined();
    // 4 x 4 x 1 cells too (objects of ~10^8 voxels).
    const d4 = splitDiffCoarse(labels, shape, VOXEL, 7, box, seeds, [8, 9], [4, 4, 1]);
    const after4 = labels.slice();
    expect(applyDiff(after4, (d4 as NonNullable<typeof d4>).runs, "forward")).toBe(true);
    expect(after4.includes(7)).toBe(false);
    for (let i = 0; i < after4.length; i++) if (after4[i] !== 0 && (i % shape[0] < 52 || i % shape[0] > 68)) expect(after4[i]).toBe(i % shape[0] < 52 ? 8 : 9);
    // Full resolution cuts in the same place, give or take a cell.
    const full = labels.slice();
    applyDiff(full, splitDiff(labels, shape, VOXEL, 7, box, seeds, [8, 9]).runs, "forward");
    let differ = 0;
    for (let i = 0; i < full.length; i++) if (full[i] !== after[i]) differ++;
    expect(differ).toBeLessThan(0.02 * labels.filter((v) => v === 7).length);
  });

  it("is chosen by size, logged with its grid, and replayed exactly", async () => {
    // Big enough in box volume for the coarse rule (the rule reads the box, not the voxel count).
    const scale = Math.ceil(Math.sqrt((1.5 * COARSE_SPLIT_VOXELS) / (60 * 30 * 6)));
    const { labels, shape } = dumbbell(scale);
    const box = scanBox(labels, shape, new Set([7])) as Box6;
    expect((box[3] - box[0]) * (box[4] - box[1]) * (box[5] - box[2])).toBeGreaterThan(COARSE_SPLIT_VOXELS);
    const nm = (v: Vec3): Vec3 => v.map((c, d) => (c + 0.5) * VOXEL[d]) as Vec3;
    const seeds = [
      { point: nm([15 * scale, 15 * scale, 2]), group: "a" },
      { point: nm([45 * scale, 15 * scale, 3]), group: "b" },
    ];
    const state = mitoState(labels, shape, VOXEL, 7, box);
    const plan = await planEdit(state, { kind: "split", base: 0, segment: 7, seeds });
    expect(plan.params).toMatchObject({ grid: COARSE_SPLIT_GRID });
    const op: OpRecord = { id: 1, kind: "split", user: "t", time: "", base: 0, version: 1, params: plan.params, inputs: plan.inputs, outputs: plan.outputs, maxId: plan.maxId, files: [], deleted: [] };
    const edited = labels.slice();
    expect(applyDiff(edited, plan.diff.runs, "forward")).toBe(true);
    expect(same(await replayLog(labels, shape, VOXEL, [op], (id) => (id === 7 ? "mito" : undefined)), edited)).toBe(true);
    // A log written before the grid existed (no `grid`) replays at full resolution.
    const { grid: _grid, ...old } = plan.params as { grid: Vec3 };
    const full = labels.slice();
    applyDiff(full, splitDiff(labels, shape, VOXEL, 7, box, [{ voxel: [15 * scale, 15 * scale, 2], group: 0 }, { voxel: [45 * scale, 15 * scale, 3], group: 1 }], [8, 9]).runs, "forward");
    expect(same(await replayLog(labels, shape, VOXEL, [{ ...op, params: old }], (id) => (id === 7 ? "mito" : undefined)), full)).toBe(true);
  });
});
