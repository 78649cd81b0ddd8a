/**
 * Operations on one pair's measured shift field (a shift per mesh node): outlier rejection against the
 * neighbours, and the optional smoothers (normalised Gaussian, least-squares polynomial) applied after it.
 */
import type { Grid } from "./map.js";

export interface PairShifts {
  /** Residual shift per node: content of a at node p sits at p + (dx, dy) in b. */
  dx: Float32Array;
  dy: Float32Array;
  ok: Uint8Array;
  /** Valid (inside-the-section) fraction of the poorer of the two patches (of their common part after a joint-mask re-measure); set for failed nodes too. */
  support: Float32Array;
  valid: number;
}

/** Normalised Gaussian convolution of the valid nodes' shifts (separable); nodes keep their validity. */
export function smoothShifts(grid: Grid, r: PairShifts, sigmaNodes: number): void {
  const { nx, ny } = grid;
  // The pair's affine part is taken out first and put back after, so that the border nodes, whose
  // neighbourhood is one-sided, are not pulled towards the interior's mean (a zeroth-order smoother's bias).
  const lin = { dx: Float32Array.from(r.dx), dy: Float32Array.from(r.dy), ok: r.ok, support: r.support, valid: r.valid };
  polyFitShifts(grid, lin, 1);
  for (let p = 0; p < nx * ny; p++) {
    if (!r.ok[p]) continue;
    r.dx[p] = (r.dx[p] as number) - (lin.dx[p] as number);
    r.dy[p] = (r.dy[p] as number) - (lin.dy[p] as number);
  }
  const rad = Math.ceil(3 * sigmaNodes);
  const g = new Float64Array(2 * rad + 1);
  for (let t = -rad; t <= rad; t++) g[t + rad] = Math.exp(-(t * t) / (2 * sigmaNodes * sigmaNodes));
  const n = nx * ny;
  const planes = [new Float64Array(n), new Float64Array(n), new Float64Array(n)];
  for (let p = 0; p < n; p++) {
    const w = r.ok[p] ? 1 : 0;
    (planes[0] as Float64Array)[p] = w;
    (planes[1] as Float64Array)[p] = w * (r.dx[p] as number);
    (planes[2] as Float64Array)[p] = w * (r.dy[p] as number);
  }
  const tmp = new Float64Array(n);
  for (const pl of planes) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++) {
        let s = 0;
        for (let t = Math.max(-rad, -i); t <= Math.min(rad, nx - 1 - i); t++) s += (g[t + rad] as number) * (pl[j * nx + i + t] as number);
        tmp[j * nx + i] = s;
      }
    }
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++) {
        let s = 0;
        for (let t = Math.max(-rad, -j); t <= Math.min(rad, ny - 1 - j); t++) s += (g[t + rad] as number) * (tmp[(j + t) * nx + i] as number);
        pl[j * nx + i] = s;
      }
    }
  }
  for (let p = 0; p < n; p++) {
    if (!r.ok[p]) continue;
    const w = planes[0]?.[p] as number;
    r.dx[p] = (planes[1]?.[p] as number) / w + (lin.dx[p] as number);
    r.dy[p] = (planes[2]?.[p] as number) / w + (lin.dy[p] as number);
  }
}

/** Least-squares polynomial (total degree `degree`, scaled coordinates) through the valid nodes' shifts. */
export function polyFitShifts(grid: Grid, r: PairShifts, degree: number): void {
  const { nx, ny } = grid;
  const terms: [number, number][] = [];
  for (let t = 0; t <= degree; t++) for (let a = 0; a <= t; a++) terms.push([a, t - a]);
  const m = terms.length;
  const valid: number[] = [];
  for (let p = 0; p < nx * ny; p++) if (r.ok[p]) valid.push(p);
  if (valid.length < 2 * m) return;
  const basis = (p: number, out: Float64Array): void => {
    const x = nx > 1 ? (2 * (p % nx)) / (nx - 1) - 1 : 0;
    const y = ny > 1 ? (2 * Math.floor(p / nx)) / (ny - 1) - 1 : 0;
    terms.forEach(([a, b], k) => (out[k] = x ** a * y ** b));
  };
  const A = new Float64Array(m * m);
  const bx = new Float64Array(m);
  const by = new Float64Array(m);
  const v = new Float64Array(m);
  for (const p of valid) {
    basis(p, v);
    for (let i = 0; i < m; i++) {
      bx[i] = (bx[i] as number) + (v[i] as number) * (r.dx[p] as number);
      by[i] = (by[i] as number) + (v[i] as number) * (r.dy[p] as number);
      for (let j = 0; j < m; j++) A[i * m + j] = (A[i * m + j] as number) + (v[i] as number) * (v[j] as number);
    }
  }
  // A tiny ridge keeps the system solvable where the valid nodes do not span every term.
  for (let i = 0; i < m; i++) A[i * m + i] = (A[i * m + i] as number) * (1 + 1e-9) + 1e-9;
  const cx = solveSpd(A, bx, m);
  const cy = solveSpd(A, by, m);
  if (!cx || !cy) return;
  for (const p of valid) {
    basis(p, v);
    let sx = 0;
    let sy = 0;
    for (let i = 0; i < m; i++) {
      sx += (v[i] as number) * (cx[i] as number);
      sy += (v[i] as number) * (cy[i] as number);
    }
    r.dx[p] = sx;
    r.dy[p] = sy;
  }
}

/** Cholesky solve of a small symmetric positive definite system; undefined if it is not. */
function solveSpd(A: Float64Array, b: Float64Array, m: number): Float64Array | undefined {
  const L = new Float64Array(m * m);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j <= i; j++) {
      let s = A[i * m + j] as number;
      for (let k = 0; k < j; k++) s -= (L[i * m + k] as number) * (L[j * m + k] as number);
      if (i === j) {
        if (!(s > 0)) return undefined;
        L[i * m + i] = Math.sqrt(s);
      } else L[i * m + j] = s / (L[j * m + j] as number);
    }
  }
  const y = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    let s = b[i] as number;
    for (let k = 0; k < i; k++) s -= (L[i * m + k] as number) * (y[k] as number);
    y[i] = s / (L[i * m + i] as number);
  }
  const x = new Float64Array(m);
  for (let i = m - 1; i >= 0; i--) {
    let s = y[i] as number;
    for (let k = i + 1; k < m; k++) s -= (L[k * m + i] as number) * (x[k] as number);
    x[i] = s / (L[i * m + i] as number);
  }
  return x;
}

function median(values: number[]): number {
  values.sort((a, b) => a - b);
  const m = values.length >> 1;
  return values.length % 2 ? (values[m] as number) : ((values[m - 1] as number) + (values[m] as number)) / 2;
}

/**
 * Drops nodes that disagree with the median of their valid 8-neighbours; isolated nodes (fewer than two
 * valid neighbours) are kept only if the peak test passed, since a smooth field can have lone
 * textured spots. Returns the number of nodes kept.
 */
export function rejectInconsistent(grid: Grid, dx: Float32Array, dy: Float32Array, ok: Uint8Array, maxDeviation: number): number {
  const { nx, ny } = grid;
  const drop: number[] = [];
  const mx: number[] = [];
  const my: number[] = [];
  for (let j = 0; j < ny; j++) {
    for (let i = 0; i < nx; i++) {
      const k = j * nx + i;
      if (!ok[k]) continue;
      mx.length = 0;
      my.length = 0;
      for (let b = -1; b <= 1; b++) {
        for (let a = -1; a <= 1; a++) {
          if ((a === 0 && b === 0) || i + a < 0 || j + b < 0 || i + a >= nx || j + b >= ny) continue;
          const q = (j + b) * nx + i + a;
          if (ok[q]) {
            mx.push(dx[q] as number);
            my.push(dy[q] as number);
          }
        }
      }
      if (mx.length < 2) continue;
      if (Math.hypot((dx[k] as number) - median(mx), (dy[k] as number) - median(my)) > maxDeviation) drop.push(k);
    }
  }
  for (const k of drop) ok[k] = 0;
  let valid = 0;
  for (const v of ok) valid += v;
  return valid;
}
