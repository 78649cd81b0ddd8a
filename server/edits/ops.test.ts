import { describe, expect, it } from "vitest";
import type { Vec3 } from "../../precomputed/array.js";
import { analyseClasses } from "../pipeline/analyse.js";
import { applyDiff, decodeDiff, encodeDiff } from "./diff.js";
import { measureRow } from "./measure.js";
import { mergeDiff, parseBox, scanBox, splitDiff } from "./ops.js";
import { synthClasses, SYNTH_SHAPE, SYNTH_VOXEL } from "./test-fixture.js";

const VOXEL: Vec3 = [5, 5, 45];

/** Two balls joined by a thin neck along x, label 7. */
function dumbbell(): { labels: Uint32Array; shape: Vec3 } {
  const shape: Vec3 = [60, 30, 6];
  const labels = new Uint32Array(shape[0] * shape[1] * shape[2]);
  for (let z = 0; z < shape[2]; z++)
    for (let y = 0; y < shape[1]; y++)
      for (let x = 0; x < shape[0]; x++) {
        const ball = (cx: number) => Math.hypot((x - cx) * 5, (y - 15) * 5, (z - 2.5) * 45) <= 60;
        const neck = x > 15 && x < 45 && Math.hypot((y - 15) * 5, (z - 2.5) * 45) <= 15;
        if (ball(15) || ball(45) || neck) labels[x + shape[0] * (y + shape[1] * z)] = 7;
      }
  return { labels, shape };
}

describe("edit kernels", () => {
  it("splits a dumbbell at its neck, one new id per seed group, deterministic", () => {
    const { labels, shape } = dumbbell();
    const box = scanBox(labels, shape, new Set([7]));
    expect(box).toBeDefined();
    const seeds = [
      { voxel: [10, 15, 2] as Vec3, group: 0 },
      { voxel: [50, 15, 3] as Vec3, group: 1 },
    ];
    const diff = splitDiff(labels, shape, VOXEL, 7, box as NonNullable<typeof box>, seeds, [8, 9]);
    const again = splitDiff(labels, shape, VOXEL, 7, box as NonNullable<typeof box>, seeds, [8, 9]);
    expect(Buffer.compare(Buffer.from(diff.runs.buffer), Buffer.from(again.runs.buffer))).toBe(0);
    const after = labels.slice();
    expect(applyDiff(after, diff.runs, "forward")).toBe(true);
    expect(after.includes(7)).toBe(false);
    // Each side of the neck's middle (x = 30) belongs to one part only.
    for (let i = 0; i < after.length; i++) {
      if (after[i] === 0) continue;
      const x = i % shape[0];
      if (x < 28) expect(after[i]).toBe(8);
      if (x > 32) expect(after[i]).toBe(9);
    }
    expect(applyDiff(after, diff.runs, "backward")).toBe(true);
    expect(Buffer.compare(Buffer.from(after.buffer), Buffer.from(labels.buffer))).toBe(0);
  });

  it("splits a neckless capsule between seeds placed at different depths near its ends", () => {
    // A straight mitochondrion: one basin in the distance transform, no neck to cut at. Seeds one and two
    // voxels in from the surface must both get a real piece, not one seed the whole core and the other a sliver.
    const shape: Vec3 = [80, 24, 5];
    const labels = new Uint32Array(shape[0] * shape[1] * shape[2]);
    for (let z = 0; z < shape[2]; z++)
      for (let y = 0; y < shape[1]; y++)
        for (let x = 0; x < shape[0]; x++) {
          const along = Math.min(Math.max(x, 20), 60);
          if (Math.hypot((x - along) * 5, (y - 12) * 5, (z - 2) * 45) <= 55) labels[x + shape[0] * (y + shape[1] * z)] = 7;
        }
    const box = scanBox(labels, shape, new Set([7]));
    expect(box).toBeDefined();
    const seeds = [
      { voxel: [12, 12, 2] as Vec3, group: 0 },
      { voxel: [66, 11, 2] as Vec3, group: 1 },
    ];
    const diff = splitDiff(labels, shape, VOXEL, 7, box as NonNullable<typeof box>, seeds, [8, 9]);
    const after = labels.slice();
    expect(applyDiff(after, diff.runs, "forward")).toBe(true);
    const total = labels.filter((v) => v === 7).length;
    const a = after.filter((v) => v === 8).length;
    const b = after.filter((v) => v === 9).length;
    expect(a + b).toBe(total);
    expect(Math.min(a, b)).toBeGreaterThan(0.3 * total);
  });

  it("merges, and a diff that no longer fits is refused and leaves labels untouched", () => {
    const labels = Uint32Array.from([1, 1, 2, 2, 0, 2, 3]);
    const shape: Vec3 = [7, 1, 1];
    const diff = mergeDiff(labels, shape, 1, 2, [0, 0, 0, 7, 1, 1]);
    expect(Array.from(decodeDiff(encodeDiff(diff.runs)))).toEqual(Array.from(diff.runs));
    const copy = labels.slice();
    copy[5] = 3; // someone else changed a voxel of segment 2
    expect(applyDiff(copy, diff.runs, "forward")).toBe(false);
    expect(Array.from(copy)).toEqual([1, 1, 2, 2, 0, 3, 3]);
    expect(applyDiff(labels, diff.runs, "forward")).toBe(true);
    expect(Array.from(labels)).toEqual([1, 1, 1, 1, 0, 1, 3]);
  });

  it("re-measures a segment on a crop exactly as the pipeline measured it in the whole volume", () => {
    const classes = synthClasses();
    const a = analyseClasses({ data: classes, shape: SYNTH_SHAPE }, SYNTH_VOXEL);
    const classOf = (id: number) => a.rows[id - 1]?.class;
    for (const ref of a.rows.filter((r) => r.class !== "er").slice(0, 8)) {
      const row = { ...ref, surface_nm2: null, sphericity: null, length_nm: null, min_dist_er_nm: null, in_contact: null, contact_area_nm2: null, contact_sites: null };
      measureRow(row, parseBox(ref.bbox_voxels) as NonNullable<ReturnType<typeof parseBox>>, a.components.labels, SYNTH_SHAPE, SYNTH_VOXEL, classOf, 30);
      expect(row).toEqual(ref);
    }
  });
});
