/**
 * TEASAR on the (binned) grid: root at a tip, paths to the farthest remaining voxels, invalidation balls
 * (see skeleton.ts for the method).
 */
import type { Vec3 } from "../../precomputed/array.js";
import type { SkeletonOptions } from "./skeleton.js";
import { dijkstra, neighbours, position, type Grid, type Neighbours } from "./skeleton-grid.js";

export interface Teasar {
  /** Tree parent of every skeleton voxel (-1 at the root). */
  parent: Int32Array;
  /** Skeleton voxels, padded indices. */
  nodes: number[];
}

/**
 * The grid binned b x b in-plane. A cell is inside when any of its voxels is (thin necks stay connected)
 * and keeps its most medial voxel as `rep`, with that voxel's distances, so the medial ridge survives.
 */
export function binGrid(g: Grid, b: number): { grid: Grid; rep: Int32Array } {
  const cx = Math.ceil((g.px - 2) / b) + 2;
  const cy = Math.ceil((g.py - 2) / b) + 2;
  const cz = g.pz;
  const n = cx * cy * cz;
  const grid: Grid = {
    px: cx,
    py: cy,
    pz: cz,
    plane: cx * cy,
    s: [b * g.s[0], b * g.s[1], g.s[2]],
    inside: new Uint8Array(n),
    d2: new Float64Array(n),
    d3: new Float64Array(n),
  };
  const rep = new Int32Array(n).fill(-1);
  for (let z = 1; z < g.pz - 1; z++)
    for (let y = 1; y < g.py - 1; y++) {
      const row = g.px * (y + g.py * z);
      const crow = cx * (1 + Math.floor((y - 1) / b) + cy * z);
      for (let x = 1; x < g.px - 1; x++) {
        const i = row + x;
        if (g.inside[i] === 0) continue;
        const c = crow + 1 + Math.floor((x - 1) / b);
        grid.inside[c] = 1;
        const r = rep[c];
        if (r < 0 || g.d2[i] + g.d3[i] > g.d2[r] + g.d3[r]) {
          rep[c] = i;
          grid.d2[c] = g.d2[i];
          grid.d3[c] = g.d3[i];
        }
      }
    }
  return { grid, rep };
}

/**
 * TEASAR's root: the voxel geodesically farthest from `source`, i.e. a tip, found on a grid binned
 * in-plane to about half a section (the tip's neighbourhood is all that matters), then refined to the
 * voxel of the farthest cell that lies farthest from `source`. It must be a tip, not any boundary voxel:
 * distances from it order the targets and keep one arm's invalidation balls off a neighbouring arm.
 */
export function farthestTip(g: Grid, source: number): number {
  const b = Math.max(1, Math.round(g.s[2] / (2 * Math.max(g.s[0], g.s[1]))));
  const { grid: coarse, rep } = binGrid(g, b);
  const sx = (source % g.px) - 1;
  const sy = (Math.floor(source / g.px) % g.py) - 1;
  const sz = Math.floor(source / g.plane);
  const start = 1 + Math.floor(sx / b) + coarse.px * (1 + Math.floor(sy / b) + coarse.py * sz);
  const sp = dijkstra(coarse, neighbours(coarse), start, new Float64Array(coarse.inside.length).fill(1));
  const far = sp.order[sp.reached - 1];
  const fx = (far % coarse.px) - 1;
  const fy = (Math.floor(far / coarse.px) % coarse.py) - 1;
  const z = Math.floor(far / coarse.plane);
  const p0 = position(g, source);
  let best = rep[far];
  let bestD = -1;
  for (let y = 1 + fy * b; y < Math.min(g.py - 1, 1 + (fy + 1) * b); y++)
    for (let x = 1 + fx * b; x < Math.min(g.px - 1, 1 + (fx + 1) * b); x++) {
      const i = x + g.px * (y + g.py * z);
      if (g.inside[i] === 0) continue;
      const p = position(g, i);
      const d = Math.hypot(p[0] - p0[0], p[1] - p0[1], p[2] - p0[2]);
      if (d > bestD) {
        bestD = d;
        best = i;
      }
    }
  return best;
}

export function teasar(g: Grid, nb: Neighbours, opts: SkeletonOptions): Teasar {
  const n = g.inside.length;
  // The 3D field sees the sections' coarse z-steps; adding the exact in-plane field makes the ridge
  // sharp within a section (a flat tube's 3D distance is z-limited and flat across its middle). Each phase is
  // its own function, so that none is optimised mid-loop and then thrown away on reaching code not yet run.
  const medial = new Float64Array(n);
  const found = medialField(g, medial);
  const source = found.source;
  const mMax = found.max;
  if (source < 0) throw new RangeError("empty mask");
  const weight = pathWeights(g, medial, mMax, opts.penalty);
  const root = farthestTip(g, source);
  const tree = dijkstra(g, nb, root, weight);
  const { parent, along, order, reached } = tree;
  const valid = new Uint8Array(n);
  let remaining = order.slice(0, reached);
  for (let r = 0; r < remaining.length; r++) valid[remaining[r]] = 1;
  const skel = new Uint8Array(n);
  skel[root] = 1;
  const nodes = [root];
  const constNm = opts.invalidationConstNm ?? 0.5 * Math.max(g.s[0], g.s[1], g.s[2]);
  const scan = { target: -1, kept: 0 };

  for (;;) {
    // The farthest valid voxel; compacting the list as we go keeps later scans short.
    farthestValid(remaining, valid, along, scan);
    remaining = remaining.subarray(0, scan.kept);
    const target = scan.target;
    if (target < 0) break;
    const path: number[] = [];
    let v = target;
    while (v >= 0 && skel[v] === 0) {
      skel[v] = 1;
      nodes.push(v);
      path.push(v);
      v = parent[v];
    }
    if (v >= 0) path.push(v);
    valid[target] = 0;
    invalidateAlong(g, path, along, valid, opts.invalidationScale, constNm);
  }
  return { parent, nodes };
}

/** medial = d2 + d3 inside; the first voxel of the largest value (-1 when nothing is inside). */
function medialField(g: Grid, medial: Float64Array): { source: number; max: number } {
  let source = -1;
  let mMax = 0;
  for (let i = 0; i < medial.length; i++) {
    if (g.inside[i] === 0) continue;
    const m = g.d2[i] + g.d3[i];
    medial[i] = m;
    if (m > mMax) {
      mMax = m;
      source = i;
    }
  }
  return { source, max: mMax };
}

function pathWeights(g: Grid, medial: Float64Array, mMax: number, penalty: number): Float64Array {
  const weight = new Float64Array(medial.length);
  for (let i = 0; i < medial.length; i++) {
    if (g.inside[i] === 0) continue;
    const t = 1 - medial[i] / mMax;
    weight[i] = 1 + penalty * t * t;
  }
  return weight;
}

/** Compacts `remaining` to its valid voxels (scan.kept of them) and finds the first of the largest `along`. */
function farthestValid(remaining: Int32Array, valid: Uint8Array, along: Float64Array, scan: { target: number; kept: number }): void {
  let target = -1;
  let best = -1;
  let w = 0;
  for (let r = 0; r < remaining.length; r++) {
    const i = remaining[r];
    if (valid[i] === 0) continue;
    remaining[w++] = i;
    if (along[i] > best) {
      best = along[i];
      target = i;
    }
  }
  scan.target = target;
  scan.kept = w;
}

/**
 * Clears `valid` within a ball around each path voxel. Balls are stamped every quarter radius with the
 * radius grown to cover the gaps between them. A voxel is spared when its distance from the root differs
 * from the ball centre's by more than 2 radii: it belongs to another arm that merely passes close by
 * (a U-shaped mitochondrion), which a plain Euclidean ball would erase.
 */
export function invalidateAlong(
  g: Grid,
  path: number[],
  along: Float64Array,
  valid: Uint8Array,
  scale: number,
  constNm: number,
): void {
  const [sx, sy, sz] = g.s;
  let last: Vec3 | null = null;
  let lastR = 0;
  for (let p = 0; p < path.length; p++) {
    const c = path[p];
    const pos = position(g, c);
    const R = scale * g.d3[c] + constNm;
    if (last !== null && p !== path.length - 1) {
      const moved = Math.hypot(pos[0] - last[0], pos[1] - last[1], pos[2] - last[2]);
      if (moved < 0.25 * Math.min(R, lastR)) continue;
    }
    last = pos;
    lastR = R;
    const Rc = R * 1.01 + 0.5 * sx;
    const cx = c % g.px;
    const cy = Math.floor(c / g.px) % g.py;
    const cz = Math.floor(c / g.plane);
    const tol = 2 * Rc;
    const ac = along[c];
    const kz = Math.floor(Rc / sz);
    for (let dz = -kz; dz <= kz; dz++) {
      const z = cz + dz;
      if (z < 0 || z >= g.pz) continue;
      const r2z = Rc * Rc - dz * sz * dz * sz;
      const ky = Math.floor(Math.sqrt(r2z) / sy);
      for (let dy = -ky; dy <= ky; dy++) {
        const y = cy + dy;
        if (y < 0 || y >= g.py) continue;
        const r2 = r2z - dy * sy * dy * sy;
        if (r2 < 0) continue;
        const kx = Math.floor(Math.sqrt(r2) / sx);
        const row = g.px * (y + g.py * z);
        const x0 = Math.max(0, cx - kx);
        const x1 = Math.min(g.px - 1, cx + kx);
        for (let x = x0; x <= x1; x++) {
          const i = row + x;
          if (valid[i] === 1 && Math.abs(along[i] - ac) <= tol) valid[i] = 0;
        }
      }
    }
  }
}

export interface Column {
  /** Largest in-plane distance to the boundary in the column near the voxel (nm). */
  inPlane: number;
  /** Distance (nm) from the voxel centre up / down to the estimated surface; Infinity past the window. */
  up: number;
  down: number;
}

/**
 * The voxel's column, within about 1.5 local radii. In-plane distances are exact to a pixel; this
 * subtracts a quarter pixel because the nearest background centre lies 0-1 pixel beyond the true edge.
 * Along z the mask only says that the surface lies within one section beyond the last inside voxel. For
 * a round or elliptical cross-section the squared in-plane half-width is quadratic in height, so a
 * parabola fitted to the column's squared in-plane distances puts the top and bottom inside that section
 * (clamped to it; the face, half a section out, when the fit is not concave or has under 3 points).
 */
export function column(g: Grid, i: number): Column {
  const sz = g.s[2];
  const corr = 0.125 * (g.s[0] + g.s[1]);
  const kw = Math.max(1, Math.ceil((1.5 * g.d3[i] + sz) / sz));
  let lo = 0;
  while (lo > -kw && g.inside[i + (lo - 1) * g.plane] === 1) lo--;
  let hi = 0;
  while (hi < kw && g.inside[i + (hi + 1) * g.plane] === 1) hi++;
  let a = 0;
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, t0 = 0, t1 = 0, t2 = 0;
  for (let k = lo; k <= hi; k++) {
    const e = Math.max(0, g.d2[i + k * g.plane] - corr);
    if (e > a) a = e;
    const t = k * sz;
    const y = e * e;
    s0 += 1;
    s1 += t;
    s2 += t * t;
    s3 += t * t * t;
    s4 += t * t * t * t;
    t0 += y;
    t1 += y * t;
    t2 += y * t * t;
  }
  const top = hi * sz;
  const bottom = lo * sz;
  let up = top + 0.5 * sz;
  let down = bottom - 0.5 * sz;
  if (hi - lo >= 2) {
    // Normal equations of y = alpha + beta t + gamma t^2, solved by Cramer's rule.
    const det = s0 * (s2 * s4 - s3 * s3) - s1 * (s1 * s4 - s3 * s2) + s2 * (s1 * s3 - s2 * s2);
    if (Math.abs(det) > 1e-9 * s0 * s2 * s4) {
      const alpha = (t0 * (s2 * s4 - s3 * s3) - s1 * (t1 * s4 - s3 * t2) + s2 * (t1 * s3 - s2 * t2)) / det;
      const beta = (s0 * (t1 * s4 - t2 * s3) - t0 * (s1 * s4 - s3 * s2) + s2 * (s1 * t2 - t1 * s2)) / det;
      const gamma = (s0 * (s2 * t2 - t1 * s3) - s1 * (s1 * t2 - t1 * s2) + t0 * (s1 * s3 - s2 * s2)) / det;
      if (gamma < 0) {
        const peakAt = -beta / (2 * gamma);
        const peak = alpha - (beta * beta) / (4 * gamma);
        if (peak > 0) {
          const half = Math.sqrt(peak / -gamma);
          up = Math.min(top + sz, Math.max(top, peakAt + half));
          down = Math.max(bottom - sz, Math.min(bottom, peakAt - half));
        }
      }
    }
  }
  return {
    inPlane: a,
    up: g.inside[i + (hi + 1) * g.plane] === 0 ? up : Infinity,
    down: g.inside[i + (lo - 1) * g.plane] === 0 ? -down : Infinity,
  };
}
