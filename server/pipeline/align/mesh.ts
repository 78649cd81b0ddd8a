/**
 * Spring mesh across sections (as in SOFIMA): node displacements u_k(p) of every section are pulled by
 * their measured offsets to the previous and the next section (zero-length springs along z) and by
 * springs to their in-plane grid neighbours; slice 0 is pinned. The energy is quadratic, so instead of
 * relaxing it step by step we solve its normal equations exactly with Jacobi-preconditioned conjugate
 * gradients: x and y decouple and share one matrix. Solving all sections together, rather than chaining
 * pairwise fields, is what keeps one bad pair from propagating unchecked down the stack.
 */
import type { Grid } from "./map.js";

export interface MeshLink {
  /** Section indices; the data say u_b - u_a = (dx, dy) where w > 0. */
  a: number;
  b: number;
  dx: Float32Array;
  dy: Float32Array;
  w: Float32Array;
}

export interface MeshOptions {
  /** In-plane spring stiffness relative to a data spring. */
  lambda: number;
  /**
   * Bending stiffness (second differences along rows and columns) relative to a data spring. Unlike the
   * stretching springs it costs nothing for an affine field, so nodes without data (patches that would
   * leave the section) continue the field linearly instead of flattening it.
   */
  bending?: number;
  maxIterations?: number;
  tolerance?: number;
}

/** Returns one field (ux, uy interleaved per node) per section; pinned sections get zeros. */
export function solveMesh(grid: Grid, sections: number, links: MeshLink[], pinned: ReadonlySet<number>, options: MeshOptions): Float32Array[] {
  const n = grid.nx * grid.ny;
  const total = n * sections;
  const lambda = options.lambda;
  const bend = options.bending ?? 0;
  // A whisper of pull towards zero keeps sections that no link reaches well defined; linked sections get
  // none, since along a long chain even 1e-6 adds up to a visible bias.
  const linked = new Set<number>(links.flatMap((l) => [l.a, l.b]));
  const diag = new Float64Array(total);
  for (let s = 0; s < sections; s++) diag.fill(linked.has(s) ? 1e-12 : 1e-6, s * n, (s + 1) * n);
  const bx = new Float64Array(total);
  const by = new Float64Array(total);
  const { nx, ny } = grid;
  for (let s = 0; s < sections; s++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++) {
        const deg = (i > 0 ? 1 : 0) + (i < nx - 1 ? 1 : 0) + (j > 0 ? 1 : 0) + (j < ny - 1 ? 1 : 0);
        // Each second difference (1, -2, 1) adds 1 to its end nodes' diagonal and 4 to its centre's.
        const bx1 = (i > 0 && i < nx - 1 ? 4 : 0) + (i > 1 ? 1 : 0) + (i < nx - 2 ? 1 : 0);
        const by1 = (j > 0 && j < ny - 1 ? 4 : 0) + (j > 1 ? 1 : 0) + (j < ny - 2 ? 1 : 0);
        diag[s * n + j * nx + i] = (diag[s * n + j * nx + i] as number) + lambda * deg + bend * (bx1 + by1);
      }
    }
  }
  for (const l of links) {
    for (let p = 0; p < n; p++) {
      const w = l.w[p] as number;
      if (!(w > 0)) continue;
      diag[l.a * n + p] = (diag[l.a * n + p] as number) + w;
      diag[l.b * n + p] = (diag[l.b * n + p] as number) + w;
      bx[l.b * n + p] = (bx[l.b * n + p] as number) + w * (l.dx[p] as number);
      by[l.b * n + p] = (by[l.b * n + p] as number) + w * (l.dy[p] as number);
      bx[l.a * n + p] = (bx[l.a * n + p] as number) - w * (l.dx[p] as number);
      by[l.a * n + p] = (by[l.a * n + p] as number) - w * (l.dy[p] as number);
    }
  }
  const second = new Float64Array(bend > 0 ? n : 0);
  const multiply = (x: Float64Array, out: Float64Array): void => {
    for (let s = 0; s < sections; s++) {
      const o = s * n;
      for (let j = 0; j < ny; j++) {
        for (let i = 0; i < nx; i++) {
          const k = o + j * nx + i;
          const v = x[k] as number;
          let acc = (diag[k] as number) * v;
          if (i > 0) acc -= lambda * (x[k - 1] as number);
          if (i < nx - 1) acc -= lambda * (x[k + 1] as number);
          if (j > 0) acc -= lambda * (x[k - nx] as number);
          if (j < ny - 1) acc -= lambda * (x[k + nx] as number);
          out[k] = acc;
        }
      }
      if (bend > 0) {
        // out += bend * (Dxx^T Dxx + Dyy^T Dyy) x, the off-diagonal part (the diagonal is in `diag`).
        for (const [step, count, len] of [[1, nx, ny], [nx, ny, nx]] as const) {
          second.fill(0);
          for (let j = 0; j < len; j++) {
            for (let i = 1; i < count - 1; i++) {
              const c = step === 1 ? j * nx + i : i * nx + j;
              second[c] = (x[o + c - step] as number) - 2 * (x[o + c] as number) + (x[o + c + step] as number);
            }
          }
          for (let j = 0; j < len; j++) {
            for (let i = 0; i < count; i++) {
              const c = step === 1 ? j * nx + i : i * nx + j;
              // (D^T e)_c = e_{c-step} - 2 e_c + e_{c+step} over the centres that exist, minus the diagonal part.
              let acc = 0;
              if (i > 0 && i < count - 1) acc += -2 * (second[c] as number) - 4 * (x[o + c] as number);
              if (i > 1) acc += (second[c - step] as number) - (x[o + c] as number);
              if (i < count - 2) acc += (second[c + step] as number) - (x[o + c] as number);
              out[o + c] = (out[o + c] as number) + bend * acc;
            }
          }
        }
      }
    }
    for (const l of links) {
      for (let p = 0; p < n; p++) {
        const w = l.w[p] as number;
        if (!(w > 0)) continue;
        const ka = l.a * n + p;
        const kb = l.b * n + p;
        out[ka] = (out[ka] as number) - w * (x[kb] as number);
        out[kb] = (out[kb] as number) - w * (x[ka] as number);
      }
    }
    // Pinned unknowns stay at zero: their rows become identity and their residual is never nonzero.
    for (const s of pinned) out.fill(0, s * n, (s + 1) * n);
  };
  for (const s of pinned) {
    bx.fill(0, s * n, (s + 1) * n);
    by.fill(0, s * n, (s + 1) * n);
  }
  const ux = conjugateGradient(multiply, diag, bx, options);
  const uy = conjugateGradient(multiply, diag, by, options);
  const out: Float32Array[] = [];
  for (let s = 0; s < sections; s++) {
    const f = new Float32Array(2 * n);
    if (!pinned.has(s)) {
      for (let p = 0; p < n; p++) {
        f[2 * p] = ux[s * n + p] as number;
        f[2 * p + 1] = uy[s * n + p] as number;
      }
    }
    out.push(f);
  }
  return out;
}

function conjugateGradient(multiply: (x: Float64Array, out: Float64Array) => void, diag: Float64Array, b: Float64Array, options: MeshOptions): Float64Array {
  const m = b.length;
  const x = new Float64Array(m);
  const r = Float64Array.from(b);
  const z = new Float64Array(m);
  const q = new Float64Array(m);
  for (let i = 0; i < m; i++) z[i] = (r[i] as number) / (diag[i] as number);
  const p = Float64Array.from(z);
  let rz = dot(r, z);
  const b2 = Math.max(dot(b, b), 1e-30);
  const tol = options.tolerance ?? 1e-10;
  const maxIt = options.maxIterations ?? 2000;
  for (let it = 0; it < maxIt && dot(r, r) > tol * tol * b2; it++) {
    multiply(p, q);
    const pq = dot(p, q);
    if (!(pq > 0)) break;
    const alpha = rz / pq;
    for (let i = 0; i < m; i++) {
      x[i] = (x[i] as number) + alpha * (p[i] as number);
      r[i] = (r[i] as number) - alpha * (q[i] as number);
    }
    for (let i = 0; i < m; i++) z[i] = (r[i] as number) / (diag[i] as number);
    const rz2 = dot(r, z);
    const beta = rz2 / rz;
    rz = rz2;
    for (let i = 0; i < m; i++) p[i] = (z[i] as number) + beta * (p[i] as number);
  }
  return x;
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] as number) * (b[i] as number);
  return s;
}
