import { describe, expect, it } from "vitest";
import type { Vec3 } from "../precomputed/array.js";
import { encodeChunk } from "../precomputed/encodings/index.js";
import { chunkKey, type VolumeInfo } from "../precomputed/info.js";
import { joinKey } from "../precomputed/keys.js";
import { diffOf, MapStorage } from "./helpers/edits.js";
import { mulberry32 } from "../precomputed/testing/random.js";
import { makeInfo, readRegion, writeVolume } from "../precomputed/volume-io.js";
import { gunzipSync } from "node:zlib";
import { indexBlocks } from "../server/edits/cseg.js";
import { applyDiff, writeDiff } from "../server/edits/diff.js";
import { rowFacts, SegmentSums } from "../server/edits/measure.js";
import { mergeDiff, scanBox, type Box6 } from "../server/edits/ops.js";
import { writeChangedChunks } from "../server/edits/changed-chunks.js";
import { buildPyramid, knownBlocks, rebuildPyramid, updatePyramid, type Pyramid } from "../server/edits/pyramid.js";

/**
 * The commit path's shortcuts (server/edits/pyramid.ts, cseg.ts, measure.ts) against full recomputation:
 * the block index that lets the encoder and the pyramid skip uniform blocks, the span fast path of the
 * pyramid, the encoder's distinct-label list, and rows derived from diff runs instead of a scan.
 */

/** Blocky labels (so many compressed_segmentation blocks and 2 x 2 blocks are uniform) with noisy patches and ties. */
function blockyLabels(shape: Vec3, seed: number, ids: number): Uint32Array {
  const rand = mulberry32(seed);
  const labels = new Uint32Array(shape[0] * shape[1] * shape[2]);
  const cell = [6, 5, 3];
  const cellId = new Map<string, number>();
  for (let z = 0; z < shape[2]; z++)
    for (let y = 0; y < shape[1]; y++)
      for (let x = 0; x < shape[0]; x++) {
        const key = `${Math.floor(x / cell[0])},${Math.floor(y / cell[1])},${Math.floor(z / cell[2])}`;
        if (!cellId.has(key)) cellId.set(key, rand() < 0.15 ? -1 : Math.floor(rand() * (ids + 1)));
        const c = cellId.get(key) as number;
        // Noisy cells: one voxel in four a random id (mode ties in 2 x 2 blocks).
        labels[x + shape[0] * (y + shape[1] * z)] = c >= 0 ? c : Math.floor(rand() * (ids + 1));
      }
  return labels;
}

function expectPyramidEqual(p: Pyramid, info: VolumeInfo, labels: Uint32Array, shape: Vec3): void {
  const full = buildPyramid(info, { data: labels.slice(), shape });
  for (let i = 0; i < full.levels.length; i++) {
    expect(Buffer.from(p.levels[i].data.buffer).equals(Buffer.from(full.levels[i].data.buffer))).toBe(true);
    // The block index kept in step equals one made afresh.
    const kept = p.blocks?.[i];
    expect(kept).toBeDefined();
    const fresh = indexBlocks(full.levels[i].data, full.levels[i].shape, kept!.block);
    expect(Buffer.from(kept!.uniform).equals(Buffer.from(fresh.uniform))).toBe(true);
    for (let b = 0; b < fresh.uniform.length; b++) if (fresh.uniform[b]) expect(kept!.values[b]).toBe(fresh.values[b]);
  }
}

describe("fast commit path", () => {
  for (const [shape, seed] of [
    [[64, 56, 24], 3],
    [[70, 61, 23], 8],
  ] as [Vec3, number][]) {
    it(`merges, splits, undos equal full recomputation: pyramid, block index, chunk bytes, rows (${shape.join("x")})`, async () => {
      const info = makeInfo({ type: "segmentation", dataType: "uint32", size: shape, resolution: [5, 5, 10], chunkSize: [16, 16, 8], encoding: "compressed_segmentation", blockSize: [4, 4, 2], minExtent: 2 });
      // Steps 2 x 2 x 1, then 2 x 2 x 2; every scale's chunks on its block grid, so every scale is indexed.
      expect(info.scales.length).toBeGreaterThanOrEqual(4);
      const voxelNm: Vec3 = [5, 5, 10];
      const rand = mulberry32(seed + 100);
      const labels = blockyLabels(shape, seed, 6);
      const base = new MapStorage();
      await writeVolume(base, "seg", info, { data: labels.slice(), shape }, { gzip: true });
      const pyramid = buildPyramid(info, { data: labels, shape });
      const sums = SegmentSums.scan(labels, shape);
      let storage = base;
      let nextId = 7;
      const done: Uint32Array[] = [];
      for (let step = 0; step < 14; step++) {
        let runs: Uint32Array;
        const ids = [...new Set(labels)].filter((v) => v !== 0).sort((a, b) => a - b);
        const kind = step % 4;
        if (kind === 0 || kind === 3) {
          // A merge (the smaller id survives) or, for kind 3, a merge into the background-adjacent smallest id.
          const a = kind === 3 ? ids[0] : ids[Math.floor(rand() * ids.length)];
          const b = ids[Math.floor(rand() * ids.length)];
          if (a === b) continue;
          const drop = Math.max(a, b);
          runs = mergeDiff(labels, shape, Math.min(a, b), drop, scanBox(labels, shape, new Set([drop])) as Box6).runs;
          writeDiff(labels, runs);
        } else if (kind === 1) {
          // A split: every voxel of one id to one of two new ids, cut by a plane.
          const id = ids[Math.floor(rand() * ids.length)];
          const cut = Math.floor(rand() * shape[0]);
          const [p, q] = [nextId++, nextId++];
          runs = diffOf(labels, (i) => (labels[i] === id ? (i % shape[0] < cut ? p : q) : labels[i]));
          writeDiff(labels, runs);
        } else {
          // Undo of an earlier edit, checked against the block index: as a swapped diff applied forwards, or
          // (every other time) as the editor's rollback does it, the runs backwards and the pyramid told the
          // forward runs.
          const last = done.pop();
          if (!last) continue;
          if (step % 8 === 2) {
            expect(applyDiff(labels, last, "backward", knownBlocks(pyramid))).toBe(true);
            runs = last;
          } else {
            runs = new Uint32Array(last.length);
            for (let k = 0; k < last.length; k += 4) runs.set([last[k], last[k + 1], last[k + 3], last[k + 2]], k);
            expect(applyDiff(labels, runs, "forward", knownBlocks(pyramid))).toBe(true);
          }
        }
        if (runs.length === 0) continue;
        if (kind !== 2) done.push(runs);
        const undone = kind === 2 && step % 8 === 2;
        const bbox: Box6 = [0, 0, 0, shape[0], shape[1], shape[2]];
        const changes = updatePyramid(pyramid, bbox, runs);
        expectPyramidEqual(pyramid, info, labels, shape);
        // Chunks: written ones are byte for byte the layer writer's encoding; all decode to a full rebuild.
        const next = new MapStorage(storage);
        await writeChangedChunks(next, "seg", info, pyramid, changes, runs);
        const full = buildPyramid(info, { data: labels.slice(), shape });
        for (let i = 0; i < info.scales.length; i++) {
          const scale = info.scales[i];
          const read = await readRegion(next, "seg", info, i, [0, 0, 0], scale.size);
          expect(Buffer.from((read.data as Uint32Array).buffer).equals(Buffer.from(full.levels[i].data.buffer))).toBe(true);
        }
        for (const [key, bytes] of next.files) {
          const i = info.scales.findIndex((s) => key.startsWith(`seg/${s.key}/`));
          const scale = info.scales[i];
          const [lo, hi] = key.split("/").at(-1)!.split("_").map((r) => r.split("-").map(Number)).reduce<[number[], number[]]>((acc, [a, b]) => [[...acc[0], a], [...acc[1], b]], [[], []]);
          expect(joinKey("seg", chunkKey(scale, lo as Vec3, hi as Vec3))).toBe(key);
          const crop = new Uint32Array((hi[0] - lo[0]) * (hi[1] - lo[1]) * (hi[2] - lo[2]));
          const lv = full.levels[i];
          let o = 0;
          for (let z = lo[2]; z < hi[2]; z++) for (let y = lo[1]; y < hi[1]; y++) for (let x = lo[0]; x < hi[0]; x++) crop[o++] = lv.data[x + lv.shape[0] * (y + lv.shape[1] * z)];
          const want = await encodeChunk("compressed_segmentation", { data: crop, shape: [hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]] }, { blockSize: scale.compressed_segmentation_block_size });
          const got = bytes[0] === 0x1f && bytes[1] === 0x8b ? gunzipSync(bytes) : bytes;
          expect(Buffer.from(got).equals(Buffer.from(want))).toBe(true);
        }
        storage = next;
        // Rows from the runs equal a scan of the whole volume, for every id the runs touch and a few others.
        if (undone) {
          // The rollback's runs read backwards: rows from the swapped runs.
          const swapped = new Uint32Array(runs.length);
          for (let k = 0; k < runs.length; k += 4) swapped.set([runs[k], runs[k + 1], runs[k + 3], runs[k + 2]], k);
          runs = swapped;
        }
        const touched = new Set<number>();
        for (let k = 0; k < runs.length; k += 4) for (const id of [runs[k + 2], runs[k + 3]]) if (id !== 0) touched.add(id);
        const classes = new Map([...touched, ids[0], nextId + 5].map((id) => [id, "mito"]));
        const derived = sums.derive(labels, shape, voxelNm, classes, runs);
        sums.commit(derived.next);
        const scanned = rowFacts(labels, shape, voxelNm, classes, [0, 0, 0, shape[0], shape[1], shape[2]]);
        expect([...derived.rows.entries()].sort((a, b) => a[0] - b[0])).toEqual([...scanned.entries()].sort((a, b) => a[0] - b[0]));
        const again = SegmentSums.scan(labels, shape);
        for (const id of new Set(labels)) if (id !== 0) expect(sums.get(id)).toEqual(again.get(id));
      }
    });
  }

  it("checks a diff against the block index as against the voxels, and rebuilds a pyramid cut short", () => {
    const shape: Vec3 = [40, 36, 12];
    const info = makeInfo({ type: "segmentation", dataType: "uint32", size: shape, resolution: [5, 5, 10], chunkSize: [16, 16, 8], encoding: "compressed_segmentation", blockSize: [4, 4, 2], minExtent: 2 });
    const labels = blockyLabels(shape, 21, 4);
    const pyramid = buildPyramid(info, { data: labels, shape });
    const rand = mulberry32(4);
    for (let t = 0; t < 300; t++) {
      // Two runs; the second's expected label is right or (half the time) wrong somewhere inside.
      const runs: number[] = [];
      let at = Math.floor(rand() * (labels.length / 2));
      for (let r = 0; r < 2; r++) {
        const len = 1 + Math.floor(rand() * 60);
        const want = labels[at];
        let ok = true;
        for (let i = at; i < at + len; i++) if (labels[i] !== want) ok = false;
        const wrong = r === 1 && rand() < 0.5;
        runs.push(at, ok ? len : 1, wrong ? want + 1 : want, 99);
        at += len + Math.floor(rand() * 40);
      }
      const before = labels.slice();
      const slow = labels.slice();
      const okSlow = applyDiff(slow, Uint32Array.from(runs), "forward");
      const okFast = applyDiff(labels, Uint32Array.from(runs), "forward", knownBlocks(pyramid));
      expect(okFast).toBe(okSlow);
      expect(Buffer.from(labels.buffer).equals(Buffer.from(slow.buffer))).toBe(true);
      // Back to the start for the next try (the index describes `before`).
      labels.set(before);
    }
    // A pyramid whose levels and indexes went wrong is made right from scale 0.
    pyramid.levels[1].data.fill(3);
    pyramid.blocks?.[0]?.uniform.fill(1);
    rebuildPyramid(pyramid);
    expectPyramidEqual(pyramid, info, labels, shape);
  });
});
