import { describe, expect, it } from "vitest";
import { connectedComponents } from "../label.js";
import { removeSmallAreas, removeSmallAreasByComponents, removeSmallFragments } from "./cleanup.js";

const shape = [40, 40, 10] as const;
const voxelNm = [5, 5, 45] as const; // 1125 nm^3 per voxel
const at = (x: number, y: number, z: number) => x + shape[0] * (y + shape[1] * z);

function box(v: Uint8Array, cls: number, [x0, y0, z0]: number[], [x1, y1, z1]: number[]) {
  for (let z = z0; z < z1; z++) for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) v[at(x, y, z)] = cls;
}

describe("removeSmallFragments", () => {
  it("gives a speck the class it borders most, background when isolated, and keeps objects at the minimum", () => {
    const v = new Uint8Array(shape[0] * shape[1] * shape[2]);
    box(v, 2, [5, 5, 2], [25, 25, 8]); // a mitochondrion, 2400 voxels
    box(v, 5, [25, 10, 4], [27, 12, 6]); // 8 voxels of "peroxisome" on its +x face: a rim artefact
    box(v, 1, [33, 33, 1], [35, 35, 2]); // 4 isolated voxels of "ER" in cytoplasm
    box(v, 4, [30, 2, 0], [35, 7, 4]); // a lysosome of 100 voxels: exactly the minimum below
    const kept = v.slice();
    const r = removeSmallFragments(v, shape, voxelNm, 100 * 1125);
    expect(r).toEqual({ fragments: 2, voxels: 12 }); // one pass suffices: neither speck touches the other
    expect(v[at(25, 10, 4)]).toBe(2);
    expect(v[at(33, 33, 1)]).toBe(0);
    for (let i = 0; i < v.length; i++) if (kept[i] === 4 || kept[i] === 2) expect(v[i]).toBe(kept[i]);
    const cc = connectedComponents(v, shape);
    expect([...cc.classOf.slice(1)].sort()).toEqual([2, 4]);
  });

  it("changes nothing when every object is large enough, or with a minimum of 0", () => {
    const v = new Uint8Array(shape[0] * shape[1] * shape[2]);
    box(v, 3, [0, 0, 0], [3, 3, 1]);
    const before = v.slice();
    expect(removeSmallFragments(v, shape, voxelNm, 0)).toEqual({ fragments: 0, voxels: 0 });
    expect(removeSmallFragments(v, shape, voxelNm, 9 * 1125)).toEqual({ fragments: 0, voxels: 0 });
    expect(v).toEqual(before);
  });
});

describe("removeSmallAreas (per section, per class, in nm^2)", () => {
  const W = 64;
  const H = 48;
  /** A disc of class `cls` centred at (cx, cy) with radius r pixels. */
  function disc(s: Uint8Array, cls: number, cx: number, cy: number, r: number) {
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) if ((x - cx) ** 2 + (y - cy) ** 2 <= r * r) s[x + W * y] = cls;
  }
  const count = (s: Uint8Array, cls: number) => s.reduce((n, v) => n + (v === cls ? 1 : 0), 0);

  it("removes fragments of a ruled class below its area, scaled by the pixel size, and leaves other classes", () => {
    const s = new Uint8Array(W * H).fill(1); // ER everywhere: what a removed speck borders
    disc(s, 2, 15, 15, 10); // 317 px
    disc(s, 2, 45, 30, 3); // 29 px
    disc(s, 4, 50, 8, 2); // a 13-px lysosome speck: lysosomes have no rule
    const big = count(s, 2) - 29;
    const a = s.slice();
    // 5 nm pixels: 29 px = 725 nm^2 < 1000 nm^2 <= 317 px = 7925 nm^2.
    expect(removeSmallAreas(a, W, H, [5, 5], new Map([[2, 1000]]))).toEqual({ fragments: 1, voxels: 29, ruledPixels: big + 29 });
    expect(count(a, 2)).toBe(big);
    expect(a[45 + W * 30]).toBe(1);
    expect(count(a, 4)).toBe(13);
    // Twice the pixel size: the big disc (317 px = 31700 nm^2) falls below 40000 nm^2, and goes too.
    const b = s.slice();
    expect(removeSmallAreas(b, W, H, [10, 10], new Map([[2, 40000]]))).toEqual({ fragments: 2, voxels: big + 29, ruledPixels: big + 29 });
    expect(count(b, 2)).toBe(0);
    // A fragment at exactly the minimum stays.
    const c = s.slice();
    expect(removeSmallAreas(c, W, H, [1, 1], new Map([[2, 29]]))).toEqual({ fragments: 0, voxels: 0, ruledPixels: big + 29 });
    expect(c).toEqual(s);
  });

  it("joins diagonal neighbours (8-connected) and gives a fragment the class it borders most", () => {
    const s = new Uint8Array(W * H);
    // Two 2x2 blocks touching only at a corner: one fragment of 8 px.
    for (const [x, y] of [[10, 10], [11, 10], [10, 11], [11, 11], [12, 12], [13, 12], [12, 13], [13, 13]]) s[(x as number) + W * (y as number)] = 2;
    for (let y = 8; y < 16; y++) s[9 + W * y] = 6; // nucleus on its left edge: borders 2 of its pixels
    for (let x = 12; x < 14; x++) s[x + W * 14] = 3; // and a lipid droplet below: 2 more
    s[14 + W * 12] = 6; // one more nucleus pixel on the right: nucleus 3, lipid droplet 2
    const r = removeSmallAreas(s, W, H, [1, 1], new Map([[2, 9]]));
    expect(r).toEqual({ fragments: 1, voxels: 8, ruledPixels: 8 });
    expect(s[10 + W * 10]).toBe(6);
    expect(s[13 + W * 13]).toBe(6);
  });

  it("gives the same classes as the 3D rule on a one-section volume (its oracle), on random sections", () => {
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    for (let trial = 0; trial < 40; trial++) {
      const s = new Uint8Array(W * H);
      const k = 1 + Math.floor(rand() * 25);
      for (let i = 0; i < k; i++) disc(s, Math.floor(rand() * 7), rand() * W, rand() * H, rand() * 8);
      for (let i = 0; i < 60; i++) s[Math.floor(rand() * W * H)] = Math.floor(rand() * 7); // specks
      const rules = new Map([[2, 1 + rand() * 150], ...(trial % 2 ? [[5, 1 + rand() * 60] as [number, number]] : [])]);
      const a = s.slice();
      const b = s.slice();
      const { fragments, voxels } = removeSmallAreas(a, W, H, [1, 1], rules);
      expect({ fragments, voxels }).toEqual(removeSmallAreasByComponents(b, W, H, [1, 1], rules));
      expect(a).toEqual(b);
    }
  });
});
