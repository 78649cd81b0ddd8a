import { describe, expect, it } from "vitest";
import type { Vec3 } from "./array.js";
import { PrecomputedError } from "./errors.js";
import { downsampleMean, downsampleMode, planScales } from "./multiscale.js";

describe("planScales", () => {
  it("5 x 5 x 45 nm: [2,2,1] until near-isotropic, then [2,2,2]", () => {
    const scales = planScales({ size: [4096, 4096, 300], resolution: [5, 5, 45], chunkSize: [64, 64, 64] });
    expect(scales.slice(0, 7).map((s) => s.resolution)).toEqual([
      [5, 5, 45], [10, 10, 45], [20, 20, 45], [40, 40, 45], [80, 80, 90], [160, 160, 180], [320, 320, 360],
    ]);
    expect(scales.slice(0, 5).map((s) => s.key)).toEqual(["5_5_45", "10_10_45", "20_20_45", "40_40_45", "80_80_90"]);
    expect(scales[1].step).toEqual([2, 2, 1]);
    expect(scales[4].step).toEqual([2, 2, 2]);
    // Stops at the first level that fits in one chunk: 4096 / 64 = 64 = 2^6 in x.
    const last = scales[scales.length - 1];
    expect(last.size).toEqual([64, 64, 38]); // z: ceil(300 / 8)
    expect(scales).toHaveLength(7);
  });

  it("isotropic data halves every axis; z-finer data holds z back instead", () => {
    expect(planScales({ size: [512, 512, 512], resolution: [8, 8, 8], chunkSize: [64, 64, 64] }).map((s) => s.step)).toEqual([
      [1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2],
    ]);
    const zFine = planScales({ size: [256, 256, 256], resolution: [40, 40, 10], chunkSize: [32, 32, 32], maxLevels: 4 });
    expect(zFine.map((s) => s.resolution)).toEqual([[40, 40, 10], [40, 40, 20], [40, 40, 40], [80, 80, 80]]);
  });

  it("sizes round up, offsets round down (cloud-volume), and maxLevels / minExtent cap the pyramid", () => {
    const s = planScales({ size: [101, 33, 7], resolution: [4, 4, 4], chunkSize: [16, 16, 16], voxelOffset: [5, -3, 0] });
    expect(s[1].size).toEqual([51, 17, 4]);
    expect(s[1].voxel_offset).toEqual([2, -2, 0]);
    expect(s[2].size).toEqual([26, 9, 2]);
    expect(planScales({ size: [1024, 1024, 1024], resolution: [1, 1, 1], chunkSize: [8, 8, 8], maxLevels: 3 })).toHaveLength(3);
    const capped = planScales({ size: [1024, 1024, 4], resolution: [4, 4, 4], chunkSize: [8, 8, 8], minExtent: 2 });
    expect(capped.map((x) => x.size[2])).toEqual([4, 2]);
    expect(planScales({ size: [10, 10, 10], resolution: [1, 1, 1], chunkSize: [64, 64, 64] })).toHaveLength(1);
    // z (11 sections) never shrinks under [2,2,1], so the pyramid stops once x and y fit in one chunk.
    expect(planScales({ size: [150, 90, 11], resolution: [5, 5, 45], chunkSize: [64, 64, 8] }).map((x) => x.size)).toEqual([
      [150, 90, 11], [75, 45, 11], [38, 23, 11],
    ]);
  });

  it("rejects bad input", () => {
    expect(() => planScales({ size: [0, 1, 1], resolution: [1, 1, 1], chunkSize: [1, 1, 1] })).toThrow(PrecomputedError);
    expect(() => planScales({ size: [1, 1, 1], resolution: [1, -1, 1], chunkSize: [1, 1, 1] })).toThrow(PrecomputedError);
  });
});

describe("downsampleMean", () => {
  it("averages 2x2x1 blocks, rounding half up, with partial edge blocks", () => {
    // 3 x 2 x 1: blocks are x {0,1} and x {2} (partial)
    const v = { data: new Uint8Array([1, 2, 10, 4, 4, 11]), shape: [3, 2, 1] as Vec3 };
    const out = downsampleMean(v, [2, 2, 1]);
    expect(out.shape).toEqual([2, 1, 1]);
    // (1+2+4+4)/4 = 2.75 -> 3; (10+11)/2 = 10.5 -> 11
    expect([...out.data]).toEqual([3, 11]);
  });

  it("keeps exact means for float32, handles channels and 2x2x2", () => {
    const data = new Float32Array(16);
    for (let i = 0; i < 8; i++) data[i] = i; // channel 0
    for (let i = 0; i < 8; i++) data[8 + i] = 100; // channel 1
    const out = downsampleMean({ data, shape: [2, 2, 2], channels: 2 }, [2, 2, 2]);
    expect(out.shape).toEqual([1, 1, 1]);
    expect(out.channels).toBe(2);
    expect([...out.data]).toEqual([3.5, 100]);
  });

  it("works for uint16 and uint64 without overflow", () => {
    expect([...downsampleMean({ data: new Uint16Array([65535, 65535, 65534, 65535]), shape: [4, 1, 1] }, [4, 1, 1]).data]).toEqual([65535]);
    const big = 2n ** 63n;
    expect([...downsampleMean({ data: new BigUint64Array([big, big + 2n]), shape: [2, 1, 1] }, [2, 1, 1]).data]).toEqual([big + 1n]);
  });
});

describe("downsampleMode", () => {
  it("picks the most frequent label, ties to the smallest", () => {
    const v = { data: new Uint32Array([7, 7, 0, 3, 5, 5, 9, 9]), shape: [2, 2, 2] as Vec3 };
    // z=0 block {7,7,0,3} -> 7; z=1 block {5,5,9,9} tie -> 5
    expect([...downsampleMode(v, [2, 2, 1]).data]).toEqual([7, 5]);
    expect([...downsampleMode({ data: new Uint8Array([0, 0, 7, 7]), shape: [2, 2, 1] }, [2, 2, 1]).data]).toEqual([0]);
  });

  it("handles odd edges and uint64 labels above 2^53", () => {
    const a = 2n ** 60n + 1n;
    const b = 2n ** 60n + 2n;
    // 3 x 1 x 1: blocks {a, b} (tie -> a) and {b} (partial)
    const out = downsampleMode({ data: new BigUint64Array([b, a, b]), shape: [3, 1, 1] }, [2, 1, 1]);
    expect(out.shape).toEqual([2, 1, 1]);
    expect([...out.data]).toEqual([a, b]);
  });

  it("a labelled 8^3 cube downsampled 2x2x2 stays a 4^3 cube of the same label", () => {
    const s = 16;
    const data = new Uint32Array(s * s * s);
    for (let z = 4; z < 12; z++) for (let y = 4; y < 12; y++) for (let x = 4; x < 12; x++) data[x + s * (y + s * z)] = 42;
    const out = downsampleMode({ data, shape: [s, s, s] }, [2, 2, 2]);
    expect(out.data.reduce((n, v) => n + (v === 42 ? 1 : 0), 0)).toBe(64);
    expect(out.data[2 + 8 * (2 + 8 * 2)]).toBe(42);
    expect(out.data[5 + 8 * (5 + 8 * 5)]).toBe(42);
    expect(out.data[6 + 8 * (5 + 8 * 5)]).toBe(0);
  });

  it("rejects mismatched volumes", () => {
    expect(() => downsampleMode({ data: new Uint32Array(3), shape: [2, 2, 1] }, [2, 2, 1])).toThrow(PrecomputedError);
    expect(() => downsampleMean({ data: new Uint8Array(4), shape: [2, 2, 1] }, [0, 2, 1])).toThrow(PrecomputedError);
  });
});
