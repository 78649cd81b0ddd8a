import { describe, expect, it } from "vitest";
import { makeGrid } from "./map.js";
import { solveMesh, type MeshLink } from "./mesh.js";

describe("spring mesh", () => {
  const grid = makeGrid(200, 160, 40);
  const n = grid.nx * grid.ny;

  function link(a: number, b: number, dx: number, dy: number, holes: number[] = []): MeshLink {
    const w = new Float32Array(n).fill(1);
    for (const h of holes) w[h] = 0;
    return { a, b, dx: new Float32Array(n).fill(dx), dy: new Float32Array(n).fill(dy), w };
  }

  it("zero offsets between identical sections give zero displacement everywhere (no drift)", () => {
    const links = [0, 1, 2, 3, 4].map((k) => link(k, k + 1, 0, 0));
    const u = solveMesh(grid, 6, links, new Set([0]), { lambda: 0.02 });
    for (const f of u) for (const v of f) expect(Math.abs(v)).toBeLessThan(1e-9);
  });

  it("consistent offsets chain exactly from the pinned slice, holes filled by the springs", () => {
    const links = [0, 1, 2, 3].map((k) => link(k, k + 1, 0.5, -0.25, [3, 7, 8]));
    const u = solveMesh(grid, 5, links, new Set([0]), { lambda: 0.02 });
    for (let s = 0; s < 5; s++) {
      for (let p = 0; p < n; p++) {
        expect(u[s]?.[2 * p]).toBeCloseTo(0.5 * s, 4);
        expect(u[s]?.[2 * p + 1]).toBeCloseTo(-0.25 * s, 4);
      }
    }
  });

  it("one outlier pair measurement is pulled towards the neighbours instead of passing through", () => {
    const bad = link(1, 2, 0, 0);
    bad.dx[5] = 6; // a wrong match at one node
    const links = [link(0, 1, 0, 0), bad, link(2, 3, 0, 0)];
    const u = solveMesh(grid, 4, links, new Set([0]), { lambda: 0.2 });
    const moved = u[2]?.[10] ?? 0;
    expect(moved).toBeGreaterThan(0);
    expect(moved).toBeLessThan(6 * 0.6);
  });

  it("with bending springs, nodes without data continue an affine field linearly (no flattening at the border)", () => {
    // Data only on the interior nodes; the field is a ramp ux = 0.01 * x.
    const w = new Float32Array(n);
    const dx = new Float32Array(n);
    const dy = new Float32Array(n);
    for (let j = 0; j < grid.ny; j++) {
      for (let i = 0; i < grid.nx; i++) {
        const p = j * grid.nx + i;
        dx[p] = 0.01 * (grid.ox + i * grid.stride);
        if (i > 0 && i < grid.nx - 1 && j > 0 && j < grid.ny - 1) w[p] = 1;
      }
    }
    const u = solveMesh(grid, 2, [{ a: 0, b: 1, dx, dy, w }], new Set([0]), { lambda: 0, bending: 0.05 });
    for (let p = 0; p < n; p++) {
      expect(u[1]?.[2 * p]).toBeCloseTo(dx[p] as number, 3);
      expect(u[1]?.[2 * p + 1]).toBeCloseTo(0, 3);
    }
  });
});
