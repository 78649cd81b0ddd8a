import { describe, expect, it } from "vitest";
import { polyFitShifts, rejectInconsistent, smoothShifts, type PairShifts } from "./shift-field.js";
import { makeGrid } from "./map.js";

describe("a pair's node shifts: outlier rejection and smooth models (maxDeviation, polyDegree, smoothPx options)", () => {
  const grid = makeGrid(400, 320, 32);
  const n = grid.nx * grid.ny;
  const field = (f: (x: number, y: number) => [number, number], holes: number[] = []): PairShifts => {
    const r: PairShifts = { dx: new Float32Array(n), dy: new Float32Array(n), ok: new Uint8Array(n).fill(1), support: new Float32Array(n).fill(1), valid: n };
    for (let p = 0; p < n; p++) {
      const [dx, dy] = f(p % grid.nx, Math.floor(p / grid.nx));
      r.dx[p] = dx;
      r.dy[p] = dy;
    }
    for (const h of holes) r.ok[h] = 0;
    return r;
  };

  it("a cubic field passes a degree-3 fit unchanged, and the fit removes node noise", () => {
    const cubic = (x: number, y: number): [number, number] => [0.3 + 0.01 * x - 0.002 * x * y + 1e-4 * x ** 3, -0.2 + 0.02 * y + 5e-5 * y ** 3];
    const r = field(cubic, [0, 5, 17]);
    polyFitShifts(grid, r, 3);
    for (let p = 0; p < n; p++) {
      if (!r.ok[p]) continue;
      const [ex, ey] = cubic(p % grid.nx, Math.floor(p / grid.nx));
      expect(r.dx[p]).toBeCloseTo(ex, 3);
      expect(r.dy[p]).toBeCloseTo(ey, 3);
    }
    const noisy = field((x, y) => [((x * 7 + y * 13) % 5) / 10 - 0.2, 0]);
    polyFitShifts(grid, noisy, 3);
    let spread = 0;
    for (let p = 0; p < n; p++) spread = Math.max(spread, Math.abs(noisy.dx[p] as number));
    expect(spread).toBeLessThan(0.1);
  });

  it("the Gaussian smoother keeps an affine field exactly (no pull of border nodes)", () => {
    const affine = (x: number, y: number): [number, number] => [0.5 + 0.05 * x - 0.03 * y, -1 + 0.02 * x];
    const r = field(affine, [3, 20]);
    smoothShifts(grid, r, 2);
    for (let p = 0; p < n; p++) {
      if (!r.ok[p]) continue;
      const [ex, ey] = affine(p % grid.nx, Math.floor(p / grid.nx));
      expect(r.dx[p]).toBeCloseTo(ex, 4);
      expect(r.dy[p]).toBeCloseTo(ey, 4);
    }
  });

  it("drops a node that strays from its neighbours' median, keeps a lone node and the smooth field", () => {
    const r = field((x, y) => [0.1 * x, -0.05 * y]);
    const stray = 3 * grid.nx + 4;
    r.dx[stray] = (r.dx[stray] as number) + 2; // 2 px off where the neighbours agree within 0.1 px
    const lone = (grid.ny - 1) * grid.nx + grid.nx - 1; // a corner whose neighbours have all failed
    for (const q of [lone - 1, lone - grid.nx, lone - grid.nx - 1]) r.ok[q] = 0;
    r.dx[lone] = 9;
    const kept = rejectInconsistent(grid, r.dx, r.dy, r.ok, 1.5);
    expect(r.ok[stray]).toBe(0);
    expect(r.ok[lone]).toBe(1);
    expect(kept).toBe(n - 4);
    // the same stray within tolerance stays
    const mild = field((x, y) => [0.1 * x, -0.05 * y]);
    mild.dx[stray] = (mild.dx[stray] as number) + 1;
    expect(rejectInconsistent(grid, mild.dx, mild.dy, mild.ok, 1.5)).toBe(n);
  });
});
