/**
 * Splits of big objects on cells refined along the cut (server/edits/ops.ts splitDiffRefined): the cells'
 * watershed decides the pieces, the cells along the cut are flooded again voxel by voxel, so the cut sits on
 * the neck, follows the object's own voxels (a gap inside one cell is not crossed), every seed's voxel gets
 * its group and every voxel a piece; the planner logs the grid (a finer one when seeds of two groups share a
 * cell) and a replay reruns exactly that split (grids of one section per cell replay as the old coarse split).
 */
import { describe, expect, it } from "vitest";
import type { Vec3 } from "../precomputed/array.js";
import type { OpRecord } from "../server/edits/db.js";
import { applyDiff } from "../server/edits/diff.js";
import { finerGrid, scanBox, splitDiff, splitDiffCoarse, splitDiffRefined, splitGrid, type Box6, type VoxelSeed } from "../server/edits/ops.js";
import { planEdit } from "../server/edits/plan.js";
import { replayLog } from "../server/edits/replay.js";
import { mitoState } from "./helpers/edits.js";

const VOXEL: Vec3 = [5, 5, 45];
const same = (a: Uint32Array, b: Uint32Array) => a.length === b.length && a.every((v, i) => v === b[i]);

/** Two balls joined by a neck along x (label 7), as test/edits-split-coarse.test.ts's, `scale` times ops.test.ts's in xy, `nz` sections. */
function dumbbell(scale: number, nz = 6): { labels: Uint32Array; shape: Vec3 } {
  const shape: Vec3 = [60 * scale, 30 * scale, nz];
  const labels = new Uint32Array(shape[0] * shape[1] * shape[2]);
  const mz = (nz - 1) / 2;
  for (let z = 0; z < shape[2]; z++)
    for (let y = 0; y < shape[1]; y++)
      for (let x = 0; x < shape[0]; x++) {
        const ball = (cx: number) => Math.hypot((x - cx * scale) * 5, (y - 15 * scale) * 5, (z - mz) * 45) <= 60 * scale;
        const neck = x > 15 * scale && x < 45 * scale && Math.hypot((y - 15 * scale) * 5, (z - mz) * 45) <= 15 * scale;
        if (ball(15) || ball(45) || neck) labels[x + shape[0] * (y + shape[1] * z)] = 7;
      }
  return { labels, shape };
}

function applied(labels: Uint32Array, runs: Uint32Array): Uint32Array {
  const after = labels.slice();
  expect(applyDiff(after, runs, "forward")).toBe(true);
  return after;
}

const indexOf = (v: Vec3, shape: Vec3) => v[0] + shape[0] * (v[1] + shape[1] * v[2]);

describe("refined split", () => {
  it("cuts a dumbbell at its neck, close to the full-resolution split, every voxel in a piece", () => {
    const { labels, shape } = dumbbell(4, 8);
    const box = scanBox(labels, shape, new Set([7])) as Box6;
    const seeds: VoxelSeed[] = [
      { voxel: [60, 60, 3], group: 0 },
      { voxel: [180, 60, 4], group: 1 },
    ];
    const total = labels.filter((v) => v === 7).length;
    const full = applied(labels, splitDiff(labels, shape, VOXEL, 7, box, seeds, [8, 9]).runs);
    for (const grid of [[2, 2, 2], [4, 4, 2], [8, 8, 2], [8, 8, 4]] as Vec3[]) {
      const d = splitDiffRefined(labels, shape, VOXEL, 7, box, seeds, [8, 9], grid);
      expect(d).toBeDefined();
      const after = applied(labels, (d as NonNullable<typeof d>).runs);
      expect(after.includes(7)).toBe(false);
      expect(after.filter((v) => v === 8).length + after.filter((v) => v === 9).length).toBe(total);
      for (const s of seeds) expect(after[indexOf(s.voxel, shape)]).toBe(8 + s.group);
      // The neck runs from x = 84 to 156 (balls of radius 24 voxels at 60 and 180); the cut falls in its middle.
      let misplaced = 0;
      for (let i = 0; i < after.length; i++) {
        const x = i % shape[0];
        if ((x < 110 && after[i] === 9) || (x > 130 && after[i] === 8)) misplaced++;
      }
      expect(misplaced).toBe(0);
      let differ = 0;
      for (let i = 0; i < full.length; i++) if (full[i] !== after[i]) differ++;
      expect(differ).toBeLessThan(0.02 * total);
    }
  });

  it("does not cross a gap that lies inside one cell, and honours a seed inside the band", () => {
    // Two slabs 2 voxels apart at x = 28, 29, merged into one segment; the 8 x 8 x 2 cell over x = 24..31
    // holds voxels of both, so the cells' watershed alone would give one slab a strip of the other.
    const shape: Vec3 = [64, 40, 8];
    const labels = new Uint32Array(shape[0] * shape[1] * shape[2]);
    for (let z = 1; z < 7; z++)
      for (let y = 2; y < 38; y++) {
        const row = shape[0] * (y + shape[1] * z);
        labels.fill(7, row + 2, row + 28);
        labels.fill(7, row + 30, row + 62);
      }
    const box = scanBox(labels, shape, new Set([7])) as Box6;
    const check = (seeds: VoxelSeed[], grid: Vec3) => {
      const d = splitDiffRefined(labels, shape, VOXEL, 7, box, seeds, [8, 9], grid);
      expect(d).toBeDefined();
      const after = applied(labels, (d as NonNullable<typeof d>).runs);
      let wrong = 0;
      for (let i = 0; i < after.length; i++) if (labels[i] === 7 && after[i] !== (i % shape[0] < 28 ? 8 : 9)) wrong++;
      expect(wrong).toBe(0);
    };
    check([{ voxel: [12, 20, 4], group: 0 }, { voxel: [50, 20, 4], group: 1 }], [8, 8, 2]);
    check([{ voxel: [12, 20, 4], group: 0 }, { voxel: [50, 20, 4], group: 1 }], [4, 4, 2]);
    // Seed b on slab b's first column, in the cell shared with slab a (a band cell): its voxel keeps group b.
    check([{ voxel: [12, 20, 4], group: 0 }, { voxel: [30, 20, 4], group: 1 }], [8, 8, 2]);
    // The old cell-wise split gives that cell's voxels of one slab to the other slab's piece.
    const old = splitDiffCoarse(labels, shape, VOXEL, 7, box, [{ voxel: [12, 20, 4], group: 0 }, { voxel: [50, 20, 4], group: 1 }], [8, 9], [8, 8, 1]);
    const oldAfter = applied(labels, (old as NonNullable<typeof old>).runs);
    expect(oldAfter[indexOf([27, 20, 4], shape)]).toBe(oldAfter[indexOf([30, 20, 4], shape)]);
  });

  it("gives each seed group its own piece with several seeds per group and an unseeded island", () => {
    const { labels, shape } = dumbbell(4, 8);
    // An island apart from the dumbbell, nearer seed group 1's seed: it goes to group 1 (the nearest seed).
    for (let z = 2; z < 5; z++) for (let y = 2; y < 8; y++) for (let x = 200; x < 210; x++) labels[indexOf([x, y, z], shape)] = 7;
    const box = scanBox(labels, shape, new Set([7])) as Box6;
    const seeds: VoxelSeed[] = [
      { voxel: [50, 60, 3], group: 0 },
      { voxel: [66, 50, 4], group: 0 },
      { voxel: [180, 60, 4], group: 1 },
      { voxel: [190, 70, 3], group: 1 },
    ];
    const d = splitDiffRefined(labels, shape, VOXEL, 7, box, seeds, [8, 9], [4, 4, 2]);
    const after = applied(labels, (d as NonNullable<typeof d>).runs);
    expect(after.includes(7)).toBe(false);
    for (const s of seeds) expect(after[indexOf(s.voxel, shape)]).toBe(8 + s.group);
    for (let z = 2; z < 5; z++) for (let y = 2; y < 8; y++) for (let x = 200; x < 210; x++) expect(after[indexOf([x, y, z], shape)]).toBe(9);
    // Cells sit on the volume's grid: a looser box gives the same runs.
    const loose: Box6 = [box[0] - 3, box[1] - 1, 0, Math.min(shape[0], box[3] + 5), Math.min(shape[1], box[4] + 2), shape[2]];
    const again = splitDiffRefined(labels, shape, VOXEL, 7, loose, seeds, [8, 9], [4, 4, 2]);
    expect(same((d as NonNullable<typeof d>).runs, (again as NonNullable<typeof again>).runs)).toBe(true);
    // Seeds of two groups in one cell: undefined (the planner tries a finer grid).
    expect(splitDiffRefined(labels, shape, VOXEL, 7, box, [{ voxel: [64, 60, 4], group: 0 }, { voxel: [65, 61, 4], group: 1 }], [8, 9], [4, 4, 2])).toBeUndefined();
  });

  it("picks cells by box size, xy first, and steps back to finer ones", () => {
    expect(splitGrid([0, 0, 0, 100, 100, 100])).toEqual([1, 1, 1]);
    expect(splitGrid([0, 0, 0, 500, 500, 40])).toEqual([4, 4, 2]);
    expect(splitGrid([0, 0, 0, 1000, 1000, 20])).toEqual([8, 8, 2]);
    expect(splitGrid([0, 0, 0, 1000, 1000, 100])).toEqual([8, 8, 4]);
    expect(splitGrid([0, 0, 0, 4000, 4000, 100])).toEqual([32, 32, 8]);
    expect(finerGrid([16, 16, 8])).toEqual([16, 16, 4]);
    expect(finerGrid([16, 16, 4])).toEqual([8, 8, 4]);
    expect(finerGrid([8, 8, 4])).toEqual([8, 8, 2]);
    expect(finerGrid([4, 4, 2])).toEqual([2, 2, 2]);
    expect(finerGrid([2, 2, 2])).toBeUndefined();
  });

  it("logs the grid it ran on (finer when seeds share a cell) and replays exactly; old coarse logs replay as coarse", async () => {
    const { labels, shape } = dumbbell(4, 8);
    const box = scanBox(labels, shape, new Set([7])) as Box6;
    const state = mitoState(labels, shape, VOXEL, 7, box);
    const nm = (v: Vec3): Vec3 => v.map((c, d) => (c + 0.5) * VOXEL[d]) as Vec3;
    const replayed = async (params: unknown) => {
      const op: OpRecord = { id: 1, kind: "split", user: "t", time: "", base: 0, version: 1, params, inputs: [7], outputs: [8, 9], maxId: 9, files: [], deleted: [] };
      return replayLog(labels, shape, VOXEL, [op], (id) => (id === 7 ? "mito" : undefined));
    };
    // Seeds 1 voxel apart in x: one 4 x 4 x 2 cell holds both, the planner steps down to 2 x 2 x 2.
    const close = [
      { point: nm([64, 60, 4]), group: "a" },
      { point: nm([66, 60, 4]), group: "b" },
    ];
    const plan = await planEdit(state, { kind: "split", base: 0, segment: 7, seeds: close, grid: [4, 4, 2] });
    expect(plan.params).toMatchObject({ grid: [2, 2, 2] });
    const edited = applied(labels, plan.diff.runs);
    expect(edited[indexOf([64, 60, 4], shape)]).toBe(8);
    expect(edited[indexOf([66, 60, 4], shape)]).toBe(9);
    expect(same(await replayed(plan.params), edited)).toBe(true);
    // A grid of one section per cell (logged before the refinement) replays as the cell-wise split.
    const seeds = [
      { point: nm([60, 60, 3]), group: "a" },
      { point: nm([180, 60, 4]), group: "b" },
    ];
    const coarse = splitDiffCoarse(labels, shape, VOXEL, 7, box, [{ voxel: [60, 60, 3], group: 0 }, { voxel: [180, 60, 4], group: 1 }], [8, 9], [4, 4, 1]);
    expect(same(await replayed({ segment: 7, seeds, grid: [4, 4, 1] }), applied(labels, (coarse as NonNullable<typeof coarse>).runs))).toBe(true);
  });
});
