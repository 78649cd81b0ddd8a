import { describe, expect, it } from "vitest";
import type { Vec3 } from "../precomputed/array.js";
import type { Storage } from "../precomputed/storage.js";
import { diffOf, MapStorage } from "./helpers/edits.js";
import { mulberry32 } from "../precomputed/testing/random.js";
import { makeInfo, readRegion, writeVolume } from "../precomputed/volume-io.js";
import { applyDiff } from "../server/edits/diff.js";
import { mergeDiff, scanBox, type Box6 } from "../server/edits/ops.js";
import { writeChangedChunks } from "../server/edits/changed-chunks.js";
import { buildPyramid, updatePyramid } from "../server/edits/pyramid.js";

describe("edit pyramid", () => {
  it("updates only changed block modes and chunks, equal to a full rebuild and to the written layer", async () => {
    // Small random blocks of few ids: many mode ties (2 x 2 blocks of two ids), the case where a merge is
    // not a relabelling of the coarser scales.
    const shape: Vec3 = [44, 38, 9];
    const info = makeInfo({ type: "segmentation", dataType: "uint32", size: shape, resolution: [5, 5, 45], chunkSize: [16, 16, 4], encoding: "compressed_segmentation", minExtent: 2 });
    expect(info.scales.length).toBeGreaterThanOrEqual(3);
    const rand = mulberry32(11);
    const labels = new Uint32Array(shape[0] * shape[1] * shape[2]);
    for (let z = 0; z < shape[2]; z++)
      for (let y = 0; y < shape[1]; y++)
        for (let x = 0; x < shape[0]; x++) {
          const cell = (x >> 1) + 97 * (y >> 1) + 331 * (z >> 1);
          labels[x + shape[0] * (y + shape[1] * z)] = ((cell * 2654435761) >>> 0) % 7 === 0 ? 0 : 1 + Math.floor(rand() * 6);
        }
    const base = new MapStorage();
    await writeVolume(base, "seg", info, { data: labels.slice(), shape }, { gzip: true });
    const pyramid = buildPyramid(info, { data: labels, shape });
    let storage: Storage = base;
    let nextId = 7;
    for (let step = 0; step < 12; step++) {
      let runs: Uint32Array;
      if (step % 3 === 0) {
        // A merge: the smaller id survives.
        const ids = [...new Set(labels)].filter((v) => v !== 0).sort((a, b) => a - b);
        const a = ids[Math.floor(rand() * ids.length)];
        const b = ids[Math.floor(rand() * ids.length)];
        if (a === b) continue;
        const drop = Math.max(a, b);
        runs = mergeDiff(labels, shape, Math.min(a, b), drop, scanBox(labels, shape, new Set([drop])) as Box6).runs;
      } else {
        // A split-like relabelling of part of one id inside a random box (undo and redo are diffs too).
        const ids = [...new Set(labels)].filter((v) => v !== 0);
        const id = ids[Math.floor(rand() * ids.length)];
        const lo = [0, 1, 2].map((d) => Math.floor(rand() * shape[d]));
        const hi = [0, 1, 2].map((d) => lo[d] + 1 + Math.floor(rand() * (shape[d] - lo[d])));
        const fresh = nextId++;
        runs = diffOf(labels, (i) => {
          const x = i % shape[0];
          const y = Math.floor(i / shape[0]) % shape[1];
          const z = Math.floor(i / (shape[0] * shape[1]));
          const inside = x >= lo[0] && x < hi[0] && y >= lo[1] && y < hi[1] && z >= lo[2] && z < hi[2];
          return inside && labels[i] === id ? fresh : labels[i];
        });
      }
      if (runs.length === 0) continue;
      expect(applyDiff(labels, runs, "forward")).toBe(true);
      const changes = updatePyramid(pyramid, [0, 0, 0, shape[0], shape[1], shape[2]], runs);
      const full = buildPyramid(info, { data: labels, shape });
      for (let i = 0; i < full.levels.length; i++) expect(Buffer.from(pyramid.levels[i].data.buffer).equals(Buffer.from(full.levels[i].data.buffer))).toBe(true);
      const next = new MapStorage(storage);
      await writeChangedChunks(next, "seg", info, pyramid, changes, runs);
      for (let i = 0; i < info.scales.length; i++) {
        const read = await readRegion(next, "seg", info, i, [0, 0, 0], info.scales[i].size);
        expect(Buffer.from((read.data as Uint32Array).buffer).equals(Buffer.from(full.levels[i].data.buffer))).toBe(true);
      }
      // Only chunks whose content changed are written: in a coarser scale, those holding a changed mode.
      for (let i = 1; i < info.scales.length; i++) {
        const { box, mask } = changes[i];
        const chunk = info.scales[i].chunk_sizes[0];
        const hit = new Set<string>();
        let c = 0;
        for (let z = box[2]; z < box[5]; z++)
          for (let y = box[1]; y < box[4]; y++)
            for (let x = box[0]; x < box[3]; x++, c++) if (mask?.[c]) hit.add([x, y, z].map((v, d) => Math.floor(v / chunk[d])).join());
        const written = [...next.files.keys()].filter((k) => k.startsWith(`seg/${info.scales[i].key}/`)).length;
        expect(written).toBe(hit.size);
      }
      storage = next;
    }
  });
});

describe("edit chunk encoder", () => {
  it("writes compressed_segmentation byte for byte as the precomputed encoder does", async () => {
    const { encodeChunk } = await import("../precomputed/encodings/index.js");
    const { encodeChunkU32 } = await import("../server/edits/cseg.js");
    const rand = mulberry32(5);
    const shape: Vec3 = [37, 29, 11];
    const data = new Uint32Array(shape[0] * shape[1] * shape[2]);
    // Uniform regions, two- to many-label blocks, big ids, and repeated tables.
    for (let i = 0; i < data.length; i++) {
      const x = i % shape[0];
      const r = rand();
      data[i] = x < 9 ? 5 : x < 17 ? (r < 0.5 ? 5 : 4294967295) : x < 25 ? Math.floor(r * 3) : Math.floor(r * 70);
    }
    for (const [lo, hi] of [
      [[0, 0, 0], [16, 16, 8]],
      [[16, 16, 8], [37, 29, 11]],
      [[3, 5, 1], [30, 20, 10]],
    ] as [Vec3, Vec3][]) {
      const crop = new Uint32Array((hi[0] - lo[0]) * (hi[1] - lo[1]) * (hi[2] - lo[2]));
      let o = 0;
      for (let z = lo[2]; z < hi[2]; z++) for (let y = lo[1]; y < hi[1]; y++) for (let x = lo[0]; x < hi[0]; x++) crop[o++] = data[x + shape[0] * (y + shape[1] * z)];
      const want = await encodeChunk("compressed_segmentation", { data: crop, shape: [hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]] }, { blockSize: [8, 8, 8] });
      const got = encodeChunkU32(data, shape, lo, hi, [8, 8, 8]);
      expect(Buffer.from(got).equals(Buffer.from(want))).toBe(true);
      const got2 = encodeChunkU32(data, shape, lo, hi, [4, 4, 2]);
      const want2 = await encodeChunk("compressed_segmentation", { data: crop, shape: [hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]] }, { blockSize: [4, 4, 2] });
      expect(Buffer.from(got2).equals(Buffer.from(want2))).toBe(true);
    }
  });
});
