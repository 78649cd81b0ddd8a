import { describe, expect, it } from "vitest";
import { connectedComponents } from "../label.js";
import { removeSmallFragments } from "./cleanup.js";

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
