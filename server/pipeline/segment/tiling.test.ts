import { describe, expect, it } from "vitest";
import { asNormalised, normaliseSection, sectionStats, zscored } from "./normalise.js";
import { axisWeights, extractTile, planAxis, planTiles, reflectIndex, tilesOf } from "./tiling.js";

describe("planAxis", () => {
  it("covers the axis with tiles that are multiples of the size multiple and overlap at least as asked", () => {
    for (const length of [1, 15, 16, 100, 511, 512, 513, 768, 1000, 1024, 2049, 4096]) {
      for (const [tile, overlap] of [[512, 64], [256, 32], [128, 0], [1024, 100]] as const) {
        const p = planAxis(length, tile, overlap, 16);
        expect(p.size % 16).toBe(0);
        expect(p.size).toBeLessThanOrEqual(Math.max(tile, Math.ceil(length / 16) * 16));
        expect(p.starts[0]).toBe(0);
        const last = p.starts[p.starts.length - 1] as number;
        expect(last + p.size).toBeGreaterThanOrEqual(length);
        if (p.starts.length > 1) expect(last + p.size).toBeLessThan(length + 16);
        for (const st of p.starts) expect(st % 16).toBe(0);
        for (let i = 1; i < p.starts.length; i++) {
          expect((p.starts[i - 1] as number) + p.size - (p.starts[i] as number)).toBeGreaterThanOrEqual(overlap);
        }
      }
    }
  });

  it("spreads tiles evenly instead of a short last tile (1024 px in tiles of <= 512, overlap 64: three of 384)", () => {
    expect(planAxis(1024, 512, 64, 16)).toEqual({ size: 384, starts: [0, 320, 640] });
    expect(planAxis(300, 512, 64, 16)).toEqual({ size: 304, starts: [0] });
  });
});

describe("blend weights", () => {
  it("sum to one wherever two tiles overlap by the same amount, and are 1 at section borders", () => {
    const p = planAxis(1024, 512, 64, 16);
    const w = axisWeights(p, 1024);
    const sum = new Float64Array(1024);
    p.starts.forEach((s, i) => (w[i] as Float32Array).forEach((v, d) => (sum[s + d] += v)));
    for (const v of sum) expect(v).toBeCloseTo(1, 5);
    expect(w[0]?.[0]).toBe(1);
    expect(w[2]?.[383]).toBe(1);
    // Interior edges fade almost to zero: the least-trusted pixels barely count.
    expect(w[1]?.[0]).toBeLessThan(0.001);
    expect(w[0]?.[383]).toBeLessThan(0.001);
  });
});

describe("tiles", () => {
  it("reflect like numpy's pad mode 'reflect', also for pads longer than the section", () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7, 8].map((i) => reflectIndex(i, 3))).toEqual([0, 1, 2, 1, 0, 1, 2, 1, 0]);
    expect(reflectIndex(5, 1)).toBe(0);
  });

  it("extract the section's pixels, padded by reflection past the right and bottom edges", () => {
    const W = 5;
    const H = 3;
    const s = Float32Array.from({ length: W * H }, (_, i) => i);
    const plan = planTiles(W, H, 512, 64, 8);
    const [t] = tilesOf(plan);
    expect(t).toEqual({ index: 0, x0: 0, y0: 0, w: 8, h: 8 });
    const tile = extractTile(asNormalised(s), W, H, t as NonNullable<typeof t>);
    expect(Array.from(tile.subarray(0, 8))).toEqual([0, 1, 2, 3, 4, 3, 2, 1]);
    expect(Array.from(tile.subarray(8 * 3, 8 * 3 + 3))).toEqual([5, 6, 7]); // row 3 reflects row 1
  });

  it("normalised as they are cut equal tiles of the z-scored copy to the bit (8 and 16 bit, inside and reflected)", () => {
    const [W, H] = [300, 130];
    const a8 = Uint8Array.from({ length: W * H }, (_, i) => (Math.imul(i, 2654435761) >>> 24) ^ (i % 7));
    const a16 = Uint16Array.from(a8, (v, i) => v * 251 + (i % 13));
    for (const a of [a8, a16]) {
      const copy = asNormalised(normaliseSection(a));
      const lazy = zscored(a);
      for (const t of tilesOf(planTiles(W, H, 128, 32, 16))) {
        expect(Buffer.from(extractTile(lazy, W, H, t).buffer).equals(Buffer.from(extractTile(copy, W, H, t).buffer))).toBe(true);
      }
    }
  });
});

describe("normalisation", () => {
  it("z-scores the whole section (mean 0, std 1) and is identical for 8-bit and the same image at 16 bit (x * 257)", () => {
    const n = 4096;
    const a8 = Uint8Array.from({ length: n }, (_, i) => (i * 37 + ((i * i) % 101)) % 256);
    const a16 = Uint16Array.from(a8, (v) => v * 257);
    const z8 = normaliseSection(a8);
    const z16 = normaliseSection(a16);
    let mean = 0;
    for (const v of z8) mean += v;
    mean /= n;
    let sd = 0;
    for (const v of z8) sd += (v - mean) ** 2;
    expect(mean).toBeCloseTo(0, 5);
    expect(Math.sqrt(sd / n)).toBeCloseTo(1, 5);
    let maxDiff = 0;
    for (let i = 0; i < n; i++) maxDiff = Math.max(maxDiff, Math.abs((z8[i] as number) - (z16[i] as number)));
    expect(maxDiff).toBeLessThan(1e-5);
  });

  it("maps a blank section to zeros (std floored at 1e-3) and keeps 16-bit precision", () => {
    expect(Array.from(normaliseSection(new Uint16Array(10).fill(40000)))).toEqual(new Array(10).fill(0));
    expect(sectionStats(new Uint8Array(4).fill(7)).std).toBe(1e-3);
    const big = Uint16Array.from({ length: 1000 }, (_, i) => 65000 + (i % 2));
    const st = sectionStats(big);
    expect(st.mean).toBeCloseTo(65000.5, 9);
    expect(st.std).toBeCloseTo(0.5, 9);
  });
});
