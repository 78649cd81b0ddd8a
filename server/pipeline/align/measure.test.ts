import { beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_ELASTIC, StackMeasurer } from "./elastic.js";
import { emNeighbour288 } from "./fixtures.js";
import { makeGrid, sampleRowCubic, type SectionMap } from "./map.js";

const S = 288;
let data: Uint8Array;
beforeAll(async () => {
  data = new Uint8Array(S * S * 4);
  for (let z = 0; z < 4; z++) data.set((await emNeighbour288(z)).data, z * S * S);
});

describe("multi-gap patch measurement", () => {
  it("links over two sections measure what a direct pair measures, and neighbour links are unchanged", () => {
    const grid = makeGrid(S, S, 48);
    const maps: SectionMap[] = Array.from({ length: 4 }, () => ({ affine: [1, 0, 0, 0, 1, 0] }));
    const options = { ...DEFAULT_ELASTIC, patch: 64 };
    const both = new StackMeasurer(options).measure(data, S, S, maps, [0, 1, 2, 3], grid, undefined, 2);
    const single = new StackMeasurer(options).measure(data, S, S, maps, [0, 1, 2, 3], grid, undefined, 1);
    const direct = new StackMeasurer(options).measure(data, S, S, maps, [0, 2], grid, undefined, 1);
    expect(both).toHaveLength(2);
    expect(both[0]?.map((r) => Array.from(r.dx))).toEqual(single[0]?.map((r) => Array.from(r.dx)));
    expect(Array.from(both[1]?.[0]?.dx ?? [])).toEqual(Array.from(direct[0]?.[0]?.dx ?? []));
    expect(both[1]?.[0]?.valid).toBeGreaterThan(0);
    // Whole patches: full support.
    const r = both[0]?.[0];
    for (let k = 0; k < (r?.ok.length ?? 0); k++) if (r?.ok[k]) expect(r.support[k]).toBe(1);
  });
});

describe("Catmull-Rom sampling", () => {
  it("returns the pixels at integer positions and reproduces a linear ramp between them", () => {
    const w = 8;
    const src = new Uint16Array(w * w);
    for (let y = 0; y < w; y++) for (let x = 0; x < w; x++) src[y * w + x] = 100 + 10 * x + 3 * y;
    const xs = Float64Array.from([0, 3, 2.25, 4.5, 5.75]);
    const ys = Float64Array.from([0, 5, 1.5, 3.25, 7]); // (clamped borders are exact only at integer positions)
    const out = new Float64Array(5);
    expect(sampleRowCubic(src, w, w, xs, ys, 5, out, 0)).toBe(0);
    for (let k = 0; k < 5; k++) expect(out[k]).toBeCloseTo(100 + 10 * (xs[k] as number) + 3 * (ys[k] as number), 9);
    const outside = new Float64Array(1);
    expect(sampleRowCubic(src, w, w, Float64Array.of(-2), Float64Array.of(1), 1, outside, 0)).toBe(1);
    expect(Number.isNaN(outside[0])).toBe(true);
  });
});

describe("partly missing patches", () => {
  it("are measured on the pixels both sections have, and recover a known shift", () => {
    // Section a is image S seen through a map shifted 40 px right (its right border band falls outside);
    // section b holds S moved 80 px left, seen through a map shifted 40 px left plus the known offset t (its
    // left band falls outside). Content of a at p is at p - t in b, so every node should read -t; the border
    // columns of nodes have 37% of a patch missing, in one section only.
    const src = data.subarray(0, S * S);
    const stack = new Uint8Array(2 * S * S);
    stack.set(src, 0);
    for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) stack[S * S + y * S + x] = src[y * S + Math.min(S - 1, x + 80)] as number;
    const t = [0.37, -0.61];
    const maps: SectionMap[] = [{ affine: [1, 0, 40, 0, 1, 0] }, { affine: [1, 0, -40 + (t[0] as number), 0, 1, t[1] as number] }];
    const grid = makeGrid(S, S, 32);
    const errors = (jointMask: boolean, overlapNorm = false): { partial: number[]; full: number[] } => {
      const r = new StackMeasurer({ ...DEFAULT_ELASTIC, patch: 64, jointMask, overlapNorm }).measure(stack, S, S, maps, [0, 1], grid)[0]?.[0];
      const partial: number[] = [];
      const full: number[] = [];
      for (let k = 0; k < (r?.ok.length ?? 0); k++) {
        if (!r?.ok[k]) continue;
        const e = Math.hypot((r.dx[k] as number) + (t[0] as number), (r.dy[k] as number) + (t[1] as number));
        ((r.support[k] as number) < 1 ? partial : full).push(e);
      }
      return { partial, full };
    };
    const med = (v: number[]): number => [...v].sort((x, y) => x - y)[v.length >> 1] as number;
    const joint = errors(true);
    const plain = errors(false);
    expect(joint.partial.length).toBeGreaterThanOrEqual(10);
    expect(med(joint.full)).toBeLessThan(0.05);
    // Cut to their common pixels, partial pairs are nearly as good as full ones; filled separately, the
    // content only one of them has makes them about twice as bad (about 0.07 vs 0.13 px median here).
    expect(med(joint.partial)).toBeLessThan(0.1);
    expect(med(plain.partial)).toBeGreaterThan(1.5 * med(joint.partial));
    // Dividing the fit's correlation values by the envelope overlap removes most of the lean towards the
    // shift that best overlaps the valid regions (0.13 -> 0.07 px here); full pairs are untouched.
    const normed = errors(false, true);
    expect(med(normed.partial)).toBeLessThan(0.75 * med(plain.partial));
    expect(med(normed.full)).toBe(med(plain.full));
  });
});
