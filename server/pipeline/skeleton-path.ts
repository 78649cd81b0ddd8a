/**
 * Measures along a skeleton path: smoothed length, extension to the surface at both tips, width; and the
 * exact maximum Feret diameter.
 */
import type { Vec3 } from "../../precomputed/array.js";
import type { Shape3 } from "./skeleton.js";
import { checkInput, gap, type Grid } from "./skeleton-grid.js";
import { column, type Column } from "./skeleton-teasar.js";
import type { Tree } from "./skeleton-tree.js";

/**
 * Gaussian smoothing of a polyline resampled by arc length. Odd reflection at the ends keeps the end
 * points fixed and straight ends straight; a bend of radius R shortens by only sigma^2 / (2 R^2).
 */
export function smoothPolyline(pts: Float64Array, sigma: number): Float64Array {
  const n = pts.length / 3;
  const cum = new Float64Array(n);
  for (let i = 1; i < n; i++) cum[i] = cum[i - 1] + gap(pts, i, pts, i - 1);
  const total = cum[n - 1];
  if (n < 3 || total === 0) return pts.slice();
  const m = Math.max(3, Math.ceil(total / Math.min(sigma / 8, total / 4)) + 1);
  const h = total / (m - 1);
  const q = new Float64Array(3 * m);
  let seg = 0;
  for (let j = 0; j < m; j++) {
    const s = j * h;
    while (seg < n - 2 && cum[seg + 1] < s) seg++;
    const span = cum[seg + 1] - cum[seg];
    const f = span > 0 ? Math.min(1, Math.max(0, (s - cum[seg]) / span)) : 0;
    for (let c = 0; c < 3; c++) q[3 * j + c] = pts[3 * seg + c] + f * (pts[3 * seg + 3 + c] - pts[3 * seg + c]);
  }
  const K = Math.ceil((3 * sigma) / h);
  const w = new Float64Array(K + 1);
  for (let j = 0; j <= K; j++) w[j] = Math.exp(-0.5 * ((j * h) / sigma) ** 2);
  const out = new Float64Array(3 * m);
  for (let i = 0; i < m; i++)
    for (let c = 0; c < 3; c++) {
      let acc = 0;
      let norm = 0;
      for (let j = -K; j <= K; j++) {
        const idx = i + j;
        let v: number;
        if (idx < 0) v = 2 * q[c] - q[3 * Math.min(m - 1, -idx) + c];
        else if (idx >= m) v = 2 * q[3 * (m - 1) + c] - q[3 * Math.max(0, 2 * (m - 1) - idx) + c];
        else v = q[3 * idx + c];
        const wj = w[Math.abs(j)];
        acc += wj * v;
        norm += wj;
      }
      out[3 * i + c] = acc / norm;
    }
  return out;
}

export function polylineLength(p: Float64Array): number {
  let L = 0;
  for (let i = 1; i < p.length / 3; i++) L += gap(p, i, p, i - 1);
  return L;
}

/**
 * Distance from p along unit dir until the ray leaves the object (0.1-pixel steps). In-plane the object
 * is its pixels; between two sections of which only one is inside, the surface is put where that
 * voxel's column fit puts it rather than on the voxel face, which may be 22 nm off.
 */
export function exitDistance(g: Grid, p: Vec3, dir: Vec3): number {
  const [sx, sy, sz] = g.s;
  const h = 0.1 * Math.min(sx, sy, sz);
  const limit = Math.hypot(g.px * sx, g.py * sy, g.pz * sz);
  let cached = -1;
  let cachedCol: Column = { inPlane: 0, up: 0, down: 0 };
  const col = (i: number): Column => {
    if (i !== cached) {
      cached = i;
      cachedCol = column(g, i);
    }
    return cachedCol;
  };
  for (let t = h; t < limit; t += h) {
    const x = Math.round((p[0] + t * dir[0]) / sx) + 1;
    const y = Math.round((p[1] + t * dir[1]) / sy) + 1;
    const zf = (p[2] + t * dir[2]) / sz + 1;
    const k0 = Math.floor(zf);
    if (x < 0 || y < 0 || k0 < 0 || x >= g.px || y >= g.py || k0 + 1 >= g.pz) return t - h / 2;
    const i0 = x + g.px * (y + g.py * k0);
    const i1 = i0 + g.plane;
    const in0 = g.inside[i0] === 1;
    const in1 = g.inside[i1] === 1;
    const frac = (zf - k0) * sz;
    const inside = in0 && in1 ? true : in0 ? frac <= col(i0).up : in1 ? sz - frac <= col(i1).down : false;
    if (!inside) return t - h / 2;
  }
  return 0;
}

export interface PathMeasure {
  length: number;
  tips: [Vec3, Vec3];
  nodes: number[];
}

/**
 * Tip-to-tip length of one tree path: smoothed length, plus at each end the distance along the end
 * tangent to where the ray leaves the object. The tangent is taken over the last sigma of the smoothed
 * path. Ray rather than "+ distance-to-surface at the end": TEASAR ends already sit on the surface, where
 * that distance is ~0 for any direction, while a ray also completes a skeleton that stops short of a tip.
 */
export function measurePath(g: Grid, tr: Tree, nodes: number[], sigma: number): PathMeasure {
  const pts = new Float64Array(3 * nodes.length);
  nodes.forEach((v, i) => pts.set(tr.pos.subarray(3 * v, 3 * v + 3), 3 * i));
  const sm = smoothPolyline(pts, sigma);
  const length = polylineLength(sm);
  const m = sm.length / 3;
  const samples = Math.round(((m - 1) * Math.min(sigma, 0.5 * length)) / Math.max(length, 1e-9));
  const back = Math.max(1, Math.min(m - 1, samples));
  const end = (i: number, j: number): { tip: Vec3; ext: number } => {
    const p: Vec3 = [sm[3 * i], sm[3 * i + 1], sm[3 * i + 2]];
    const d: Vec3 = [p[0] - sm[3 * j], p[1] - sm[3 * j + 1], p[2] - sm[3 * j + 2]];
    const dn = Math.hypot(d[0], d[1], d[2]);
    if (dn === 0) return { tip: p, ext: 0 };
    const u: Vec3 = [d[0] / dn, d[1] / dn, d[2] / dn];
    const ext = exitDistance(g, p, u);
    return { tip: [p[0] + ext * u[0], p[1] + ext * u[1], p[2] + ext * u[2]], ext };
  };
  const a = end(0, back);
  const b = end(m - 1, m - 1 - back);
  return { length: length + a.ext + b.ext, tips: [a.tip, b.tip], nodes };
}

/**
 * Width = 2 x median cross-section radius along the path, leaving out the end caps: a node closer to a
 * tip than its own radius lies in the cap, where a skeleton made by thinning would not reach (with a 25%
 * margin: in a sphere every node sits at that limit and would be kept or not by chance). When under a
 * fifth of the path is left the object is round rather than tubular (a capsule shorter than half its
 * radius, a sphere), the few nodes left are not representative, and the largest radius is used instead.
 */
export function pathWidth(tr: Tree, pm: PathMeasure): number {
  const kept: number[] = [];
  let fallback = 0;
  for (const v of pm.nodes) {
    const s = Math.min(gap(tr.pos, v, pm.tips[0], 0), gap(tr.pos, v, pm.tips[1], 0));
    if (s >= 1.25 * tr.rho[v]) kept.push(tr.rho[v]);
    fallback = Math.max(fallback, tr.rho[v]);
  }
  if (kept.length < 0.2 * pm.nodes.length) return 2 * fallback;
  kept.sort((x, y) => x - y);
  const h = kept.length >> 1;
  return kept.length % 2 === 1 ? 2 * kept[h] : kept[h - 1] + kept[h];
}

/** 2D convex hull (Andrew's monotone chain) of points [x0, y0, x1, y1, ...]; returns hull vertices. */
export function hull2d(xy: number[]): number[] {
  const n = xy.length / 2;
  if (n <= 2) return xy.slice();
  const idx = Array.from({ length: n }, (_, i) => i);
  idx.sort((a, b) => xy[2 * a] - xy[2 * b] || xy[2 * a + 1] - xy[2 * b + 1]);
  const cross = (o: number, a: number, b: number): number =>
    (xy[2 * a] - xy[2 * o]) * (xy[2 * b + 1] - xy[2 * o + 1]) -
    (xy[2 * a + 1] - xy[2 * o + 1]) * (xy[2 * b] - xy[2 * o]);
  const lower: number[] = [];
  for (const i of idx) {
    while (lower.length >= 2 && cross(lower[lower.length - 2], lower[lower.length - 1], i) <= 0) lower.pop();
    lower.push(i);
  }
  const upper: number[] = [];
  for (let k = idx.length - 1; k >= 0; k--) {
    const i = idx[k];
    while (upper.length >= 2 && cross(upper[upper.length - 2], upper[upper.length - 1], i) <= 0) upper.pop();
    upper.push(i);
  }
  const out: number[] = [];
  for (const i of [...lower.slice(0, -1), ...upper.slice(0, -1)]) out.push(xy[2 * i], xy[2 * i + 1]);
  return out;
}

/**
 * Maximum Feret diameter (nm): the largest distance between corners of the object's voxels, exact.
 * The farthest pair are hull vertices; within a section every voxel spans the same z, so only the 2D
 * hull of each row's outer corners is kept, at the section's two z faces. Pairs are then compared from
 * the outside in, stopping once |p - c| + |q - c| cannot beat the best distance found.
 */
export function feretMax(mask: ArrayLike<number>, shape: Shape3, spacingNm: Shape3): number {
  checkInput(mask, shape, spacingNm);
  // Two functions, one per phase, so that neither is optimised mid-loop and thrown away on the next phase.
  return farthestPair(hullCorners(mask, shape, spacingNm));
}

/** xyz triples: per section, the 2D hull of its rows' outer corners at the section's two z faces. */
function hullCorners(mask: ArrayLike<number>, shape: Shape3, spacingNm: Shape3): number[] {
  const [nx, ny, nz] = shape;
  const [sx, sy, sz] = spacingNm;
  const pts: number[] = [];
  for (let z = 0; z < nz; z++) {
    const xy: number[] = [];
    for (let y = 0; y < ny; y++) {
      const row = nx * (y + ny * z);
      let x0 = -1;
      let x1 = -1;
      for (let x = 0; x < nx; x++)
        if (mask[row + x] !== 0) {
          if (x0 < 0) x0 = x;
          x1 = x;
        }
      if (x0 < 0) continue;
      const ya = (y - 0.5) * sy;
      const yb = (y + 0.5) * sy;
      xy.push((x0 - 0.5) * sx, ya, (x1 + 0.5) * sx, ya);
      xy.push((x0 - 0.5) * sx, yb, (x1 + 0.5) * sx, yb);
    }
    const h = hull2d(xy);
    for (let i = 0; i < h.length; i += 2) pts.push(h[i], h[i + 1], (z - 0.5) * sz, h[i], h[i + 1], (z + 0.5) * sz);
  }
  return pts;
}

/** Largest distance between two of the points (xyz triples). */
function farthestPair(pts: number[]): number {
  const n = pts.length / 3;
  if (n === 0) return 0;
  let c0 = 0;
  let c1 = 0;
  let c2 = 0;
  for (let i = 0; i < n; i++) {
    c0 = c0 + pts[3 * i] / n;
    c1 = c1 + pts[3 * i + 1] / n;
    c2 = c2 + pts[3 * i + 2] / n;
  }
  const c = [c0, c1, c2];
  const r = new Float64Array(n);
  for (let i = 0; i < n; i++) r[i] = gap(pts, i, c, 0);
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => r[b] - r[a]);
  let best = 0;
  for (let a = 0; a < n; a++) {
    const i = order[a];
    if (a + 1 < n && r[i] + r[order[a + 1]] <= best) break;
    for (let b = a + 1; b < n; b++) {
      const j = order[b];
      if (r[i] + r[j] <= best) break;
      const d = Math.hypot(pts[3 * i] - pts[3 * j], pts[3 * i + 1] - pts[3 * j + 1], pts[3 * i + 2] - pts[3 * j + 2]);
      if (d > best) best = d;
    }
  }
  return best;
}
