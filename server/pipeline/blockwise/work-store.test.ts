import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { Vec3 } from "../../../precomputed/array.js";
import { LocalStorage, type Storage } from "../../../precomputed/storage.js";
import { cropVolume } from "../edt.js";
import { blockOrigins } from "./store.js";
import { eachLimited, WorkVolume, type WorkVolumeSpec } from "./work-store.js";

const dir = mkdtempSync(path.join(tmpdir(), "vemscope-work-store-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SHAPE: Vec3 = [37, 29, 13];
/** Runs of labels (what rle is for), some one voxel long, with ids above 2^16. */
const volume = Uint32Array.from({ length: SHAPE[0] * SHAPE[1] * SHAPE[2] }, (_, i) => {
  const r = Math.floor(i / (1 + (i % 7)));
  return r % 3 === 0 ? 0 : (r * 2654435761) >>> 8;
});

/** A storage without getRange: the whole-object fallback. */
const withoutRanges = (s: LocalStorage): Storage => ({ get: (k) => s.get(k), put: (k, d) => s.put(k, d), list: (p) => s.list(p), delete: (k) => s.delete(k) });

describe("WorkVolume", () => {
  for (const codec of [undefined, "rle"] as const) {
    it(`reads any box back (${codec ?? "raw"} blocks, with and without range reads)`, async () => {
      const storage = new LocalStorage(path.join(dir, codec ?? "raw"));
      const spec: WorkVolumeSpec = { name: "v", shape: SHAPE, blockShape: [16, 8, 5], type: "uint32", ...(codec ? { codec } : {}) };
      const w = new WorkVolume<Uint32Array>(storage, spec);
      for (const o of blockOrigins(SHAPE, spec.blockShape)) await w.writeBlock(o, cropVolume(volume, SHAPE, o, w.blockExtent(o)));
      for (const store of [storage, withoutRanges(storage)]) {
        const r = new WorkVolume<Uint32Array>(store, spec);
        // Boxes inside one block, across blocks, one voxel thick (the per-section path), the whole volume.
        const boxes: [Vec3, Vec3][] = [
          [[0, 0, 0], SHAPE],
          [[3, 2, 1], [5, 3, 4]],
          [[10, 5, 2], [20, 10, 9]],
          [[15, 7, 4], [2, 2, 2]],
          [[0, 28, 0], [37, 1, 13]],
          [[36, 0, 12], [1, 29, 1]],
        ];
        for (const [o, e] of boxes) expect(Array.from(await r.readBox(o, e)), `${o} ${e}`).toEqual(Array.from(cropVolume(volume, SHAPE, o, e)));
      }
    });
  }

  it("rle blocks of runs are much smaller than raw ones", async () => {
    const storage = new LocalStorage(path.join(dir, "size"));
    const shape: Vec3 = [64, 64, 4];
    const labels = Uint32Array.from({ length: 64 * 64 * 4 }, (_, i) => (i % 64 < 20 ? 0 : 7 + (i >> 12)));
    await new WorkVolume(storage, { name: "v", shape, blockShape: shape, type: "uint32", codec: "rle" }).writeBlock([0, 0, 0], labels);
    const bytes = await storage.get("v/0_0_0.raw");
    // Two runs per 64-voxel row: 16 bytes instead of 256.
    expect(bytes?.length).toBeLessThan(labels.byteLength / 10);
  });
});

describe("eachLimited", () => {
  it("runs every item with a bounded number in flight and rethrows the first error", async () => {
    let inFlight = 0;
    let most = 0;
    const seen: number[] = [];
    await eachLimited([...Array(20).keys()], 3, async (i) => {
      most = Math.max(most, ++inFlight);
      await new Promise((r) => setTimeout(r, 1));
      seen.push(i);
      inFlight--;
    });
    expect(seen.sort((a, b) => a - b)).toEqual([...Array(20).keys()]);
    expect(most).toBe(3);
    await expect(eachLimited([1, 2, 3], 2, async (i) => { if (i === 2) throw new Error("two"); })).rejects.toThrow("two");
  });
});
