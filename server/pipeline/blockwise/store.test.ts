import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { Vec3 } from "../../../precomputed/array.js";
import { cropVolume } from "../edt.js";
import { BlockStore, blockOrigins } from "./store.js";

const dir = mkdtempSync(path.join(tmpdir(), "vemscope-store-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SHAPE: Vec3 = [23, 17, 11];
const volume = Uint32Array.from({ length: SHAPE[0] * SHAPE[1] * SHAPE[2] }, (_, i) => (i * 2654435761) >>> 0);

describe("BlockStore", () => {
  it("reads any box back, whether written block by block or section by section", () => {
    const byBlock = new BlockStore<Uint32Array>(path.join(dir, "a"), SHAPE, [8, 5, 4], "uint32");
    for (const o of blockOrigins(SHAPE, byBlock.blockShape)) byBlock.writeBlock(o, cropVolume(volume, SHAPE, o, byBlock.blockExtent(o)));
    const bySection = new BlockStore<Uint32Array>(path.join(dir, "b"), SHAPE, [6, 7, 3], "uint32");
    const plane = SHAPE[0] * SHAPE[1];
    for (let z = 0; z < SHAPE[2]; z++) bySection.appendSection(z, volume.subarray(z * plane, (z + 1) * plane));
    let seed = 7;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    for (let k = 0; k < 40; k++) {
      const o = [0, 1, 2].map((d) => rand(SHAPE[d])) as Vec3;
      const e = [0, 1, 2].map((d) => 1 + rand(SHAPE[d] - o[d])) as Vec3;
      const want = cropVolume(volume, SHAPE, o, e);
      expect(byBlock.readBox(o, e)).toEqual(want);
      expect(bySection.readBox(o, e)).toEqual(want);
    }
    expect(bySection.readBox([0, 0, 0], SHAPE)).toEqual(volume);
  });
});
