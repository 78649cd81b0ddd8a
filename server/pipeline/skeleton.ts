/**
 * Centreline skeleton and tube morphometrics of one object (mitochondrion) cropped to its bounding box:
 * length, width, max Feret and branching as DESIGN.md "Definitions" states them.
 *
 * Method: TEASAR (Sato et al. 2000, as kimimaro implements it) on the native anisotropic grid, not
 * thinning. Thinning needs an isotropic grid: resampling 45-nm sections to 5 nm invents 8 of every 9
 * slices and a 7-section-tall mitochondrion becomes a staircase whose steps thinning turns into spurs.
 * TEASAR only needs a distance field and shortest paths, both of which take physical edge lengths
 * directly, so the sections are used as they are:
 *  1. distance to background per voxel, exact and anisotropic (separable squared EDT), in-plane and 3D;
 *  2. root = a tip: the voxel geodesically farthest from the most central voxel;
 *  3. one Dijkstra from the root over 26-neighbours, edge cost = physical length x a penalty that grows
 *     quadratically off the medial ridge, so that shortest paths run along the centreline;
 *  4. repeatedly take the remaining voxel farthest from the root along that tree, trace its path back to
 *     the skeleton, and invalidate a ball of radius 1.5 x distance-to-boundary (+ half a section) around
 *     the new path. Paths therefore reach the surface at every tip.
 * Steps 2-4 run on a grid binned 2 x 2 in-plane (10 x 10 x 45 nm), 4x fewer voxels; radii and tips are
 * measured at full resolution. The result is a tree; `prune` removes spurs; lengths are measured on a
 * Gaussian-smoothed polyline because a voxel path overstates length (8-neighbour staircase +8%, 45-nm
 * z-steps up to +27%); widths use a sub-section estimate of where the surface lies between sections.
 */
import type { Vec3 } from "../../precomputed/array.js";

export type Shape3 = readonly [number, number, number];

export interface SkeletonOptions {
  /** Off-ridge penalty P in cost = length x (1 + P (1 - m/m_max)^2); large enough to follow bends. */
  penalty: number;
  /** Invalidation ball radius = scale x distance-to-boundary + const (TEASAR; kimimaro's default scale). */
  invalidationScale: number;
  /** nm; undefined = half the largest voxel side, so one section's quantisation leaves no fringe. */
  invalidationConstNm?: number;
  /** k: a terminal branch is pruned when its reach beyond its own radius < k x radius at its junction. */
  pruneFactor: number;
  /** Gaussian sigma (nm) for measuring path length; undefined = 1.5 x the largest voxel side. */
  smoothingSigmaNm?: number;
  /**
   * In-plane binning of the grid the paths are searched on; undefined = floor(z / (4 x in-plane)), 2 at
   * 5 x 5 x 45 nm. Distances, radii and tips stay at full resolution; a 10-nm path grid only saves time.
   */
  binXY?: number;
}

export const DEFAULT_SKELETON_OPTIONS: SkeletonOptions = {
  penalty: 50,
  invalidationScale: 1.5,
  pruneFactor: 1.5,
};

export interface Skeleton {
  /** x, y, z in nm per vertex, crop coordinates: voxel (0,0,0)'s centre is the origin. */
  vertices: Float64Array;
  /** Pairs of vertex indices. */
  edges: Uint32Array;
  /** Inscribed radius (nm) of the cross-section at each vertex. */
  radius: Float64Array;
  /** Vertex indices of degree 1. */
  endpoints: number[];
  /** Branch points after pruning; junction nodes closer than their radius count once. */
  branchCount: number;
}

export interface TubeMeasure {
  length_nm: number;
  width_nm: number;
  feret_max_nm: number;
  branched: boolean;
  branch_count: number;
  /** Endpoints (tips) of the pruned skeleton. */
  endpoints: number;
  /** The two tips of the longest path after extension to the surface, nm in crop coordinates. */
  tips_nm: [Vec3, Vec3];
}

/** Padded copy of the mask plus its distance fields; the one-voxel background rim removes bound checks. */
interface Grid {
  px: number;
  py: number;
  pz: number;
  plane: number;
  s: Vec3;
  inside: Uint8Array;
  /** Distance (nm) from a voxel centre to the nearest background voxel centre in its own section. */
  d2: Float64Array;
  /** Same in 3D. */
  d3: Float64Array;
}

function checkInput(mask: ArrayLike<number>, shape: Shape3, spacing: Shape3): void {
  const [nx, ny, nz] = shape;
  if (![nx, ny, nz].every((n) => Number.isInteger(n) && n > 0)) throw new RangeError(`bad shape ${shape.join(",")}`);
  if (mask.length !== nx * ny * nz) throw new RangeError(`mask has ${mask.length} voxels, shape needs ${nx * ny * nz}`);
  if (!spacing.every((v) => Number.isFinite(v) && v > 0)) throw new RangeError(`bad spacing ${spacing.join(",")}`);
}

/** Felzenszwalb-Huttenlocher 1D squared distance transform of f (sampled every s nm) into d. */
function edt1d(f: Float64Array, d: Float64Array, n: number, s: number, v: Int32Array, z: Float64Array): void {
  let k = 0;
  v[0] = 0;
  z[0] = -Infinity;
  z[1] = Infinity;
  for (let q = 1; q < n; q++) {
    const xq = q * s;
    const fq = f[q] + xq * xq;
    for (;;) {
      const p = v[k];
      const xp = p * s;
      const sep = (fq - (f[p] + xp * xp)) / (2 * (xq - xp));
      if (sep <= z[k]) {
        k--;
        continue;
      }
      k++;
      v[k] = q;
      z[k] = sep;
      z[k + 1] = Infinity;
      break;
    }
  }
  k = 0;
  for (let q = 0; q < n; q++) {
    const xq = q * s;
    while (z[k + 1] < xq) k++;
    const dx = xq - v[k] * s;
    d[q] = dx * dx + f[v[k]];
  }
}

/** Squared EDT along one axis of a padded volume, in place. */
function edtAxis(a: Float64Array, dims: Shape3, axis: 0 | 1 | 2, s: number): void {
  const [px, py, pz] = dims;
  const n = dims[axis];
  const stride = axis === 0 ? 1 : axis === 1 ? px : px * py;
  const f = new Float64Array(n);
  const d = new Float64Array(n);
  const v = new Int32Array(n);
  const z = new Float64Array(n + 1);
  const [ua, ub] = axis === 0 ? [py, pz] : axis === 1 ? [px, pz] : [px, py];
  for (let b = 0; b < ub; b++) {
    for (let a2 = 0; a2 < ua; a2++) {
      const base = axis === 0 ? px * (a2 + py * b) : axis === 1 ? a2 + px * py * b : a2 + px * b;
      let inside = false;
      for (let i = 0; i < n; i++) {
        f[i] = a[base + i * stride];
        if (f[i] !== 0) inside = true;
      }
      if (!inside) continue;
      edt1d(f, d, n, s, v, z);
      for (let i = 0; i < n; i++) a[base + i * stride] = d[i];
    }
  }
}

function buildGrid(mask: ArrayLike<number>, shape: Shape3, spacing: Shape3): Grid {
  const [nx, ny, nz] = shape;
  const px = nx + 2;
  const py = ny + 2;
  const pz = nz + 2;
  const plane = px * py;
  const inside = new Uint8Array(plane * pz);
  // Finite stand-in for infinity: every x-line of the padded grid holds background, so it never survives.
  const far = 1e30;
  const sq = new Float64Array(inside.length);
  for (let z = 0; z < nz; z++)
    for (let y = 0; y < ny; y++) {
      const src = nx * (y + ny * z);
      const dst = 1 + px * (y + 1 + py * (z + 1));
      for (let x = 0; x < nx; x++)
        if (mask[src + x] !== 0) {
          inside[dst + x] = 1;
          sq[dst + x] = far;
        }
    }
  const dims: Shape3 = [px, py, pz];
  edtAxis(sq, dims, 0, spacing[0]);
  edtAxis(sq, dims, 1, spacing[1]);
  const d2 = new Float64Array(sq.length);
  for (let i = 0; i < sq.length; i++) d2[i] = Math.sqrt(sq[i]);
  edtAxis(sq, dims, 2, spacing[2]);
  for (let i = 0; i < sq.length; i++) sq[i] = Math.sqrt(sq[i]);
  return { px, py, pz, plane, s: [spacing[0], spacing[1], spacing[2]], inside, d2, d3: sq };
}

/** Crop-frame nm position of padded voxel index i. */
function position(g: Grid, i: number): Vec3 {
  const x = i % g.px;
  const y = Math.floor(i / g.px) % g.py;
  const z = Math.floor(i / g.plane);
  return [(x - 1) * g.s[0], (y - 1) * g.s[1], (z - 1) * g.s[2]];
}

/** Distance between point i of xyz-triples a and point j of b. */
function gap(a: ArrayLike<number>, i: number, b: ArrayLike<number>, j: number): number {
  return Math.hypot(a[3 * i] - b[3 * j], a[3 * i + 1] - b[3 * j + 1], a[3 * i + 2] - b[3 * j + 2]);
}

/**
 * Bucket queue for Dijkstra (Dial's algorithm with buckets as wide as the cheapest edge): entries in one
 * bucket cannot improve one another, so each bucket is settled in any order and the result is exact.
 * O(1) per operation instead of a heap's O(log n); buckets are reused circularly because no live entry
 * lies more than one maximal edge cost ahead of the current bucket.
 */
class BucketQueue {
  private head: Int32Array;
  private next: Int32Array = new Int32Array(4096);
  private node: Int32Array = new Int32Array(4096);
  private used = 0;
  private free = -1;
  private current = 0;
  private readonly inv: number;
  size = 0;
  constructor(width: number, maxEdgeCost: number) {
    // A hair narrower than the cheapest edge so that rounding never files a successor in its parent's bucket.
    this.inv = 1 / (0.999 * width);
    this.head = new Int32Array(Math.ceil(maxEdgeCost * this.inv) + 2).fill(-1);
  }
  push(cost: number, v: number): void {
    let e = this.free;
    if (e >= 0) this.free = this.next[e];
    else {
      if (this.used === this.node.length) {
        const grow = (a: Int32Array): Int32Array => {
          const b = new Int32Array(a.length * 2);
          b.set(a);
          return b;
        };
        this.next = grow(this.next);
        this.node = grow(this.node);
      }
      e = this.used++;
    }
    const slot = Math.floor(cost * this.inv) % this.head.length;
    this.node[e] = v;
    this.next[e] = this.head[slot];
    this.head[slot] = e;
    this.size++;
  }
  /** Removes and returns an entry of the lowest non-empty bucket; call only when size > 0. */
  pop(): number {
    let slot = this.current % this.head.length;
    while (this.head[slot] < 0) {
      this.current++;
      slot = this.current % this.head.length;
    }
    const e = this.head[slot];
    this.head[slot] = this.next[e];
    this.next[e] = this.free;
    this.free = e;
    this.size--;
    return this.node[e];
  }
}

interface Neighbours {
  off: Int32Array;
  len: Float64Array;
}

function neighbours(g: Grid): Neighbours {
  const off = new Int32Array(26);
  const len = new Float64Array(26);
  let k = 0;
  for (let dz = -1; dz <= 1; dz++)
    for (let dy = -1; dy <= 1; dy++)
      for (let dx = -1; dx <= 1; dx++) {
        if (dx === 0 && dy === 0 && dz === 0) continue;
        off[k] = dx + g.px * dy + g.plane * dz;
        len[k] = Math.hypot(dx * g.s[0], dy * g.s[1], dz * g.s[2]);
        k++;
      }
  return { off, len };
}

interface ShortestPaths {
  cost: Float64Array;
  parent: Int32Array;
  /** Physical length (nm) of each voxel's path in the tree. */
  along: Float64Array;
  /** Voxels in the order they were settled (reached voxels only). */
  order: Int32Array;
  reached: number;
}

/** Dijkstra over inside voxels; an edge costs its length times the mean of its end voxels' weights. */
function dijkstra(g: Grid, nb: Neighbours, source: number, weight: Float64Array): ShortestPaths {
  const n = g.inside.length;
  const cost = new Float64Array(n).fill(Infinity);
  const parent = new Int32Array(n).fill(-1);
  const along = new Float64Array(n);
  const step = new Float64Array(n);
  // 1 = inside and not yet settled: one array read per neighbour instead of two.
  const open = g.inside.slice();
  const order = new Int32Array(n);
  let reached = 0;
  let wMax = 1;
  let wMin = Infinity;
  for (let i = 0; i < n; i++)
    if (open[i] === 1) {
      if (weight[i] > wMax) wMax = weight[i];
      if (weight[i] < wMin) wMin = weight[i];
    }
  const { off, len } = nb;
  const halfLen = len.map((l) => 0.5 * l);
  const queue = new BucketQueue(Math.min(...len) * wMin, Math.max(...len) * wMax);
  cost[source] = 0;
  queue.push(0, source);
  while (queue.size > 0) {
    const u = queue.pop();
    if (open[u] === 0) continue;
    open[u] = 0;
    order[reached++] = u;
    const key = cost[u];
    const p = parent[u];
    if (p >= 0) along[u] = along[p] + step[u];
    const wu = weight[u];
    for (let k = 0; k < 26; k++) {
      const v = u + off[k];
      if (open[v] === 0) continue;
      const c = key + halfLen[k] * (wu + weight[v]);
      if (c < cost[v]) {
        cost[v] = c;
        parent[v] = u;
        step[v] = len[k];
        queue.push(c, v);
      }
    }
  }
  return { cost, parent, along, order, reached };
}

interface Teasar {
  /** Tree parent of every skeleton voxel (-1 at the root). */
  parent: Int32Array;
  /** Skeleton voxels, padded indices. */
  nodes: number[];
}

/**
 * The grid binned b x b in-plane. A cell is inside when any of its voxels is (thin necks stay connected)
 * and keeps its most medial voxel as `rep`, with that voxel's distances, so the medial ridge survives.
 */
function binGrid(g: Grid, b: number): { grid: Grid; rep: Int32Array } {
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
function farthestTip(g: Grid, source: number): number {
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

function teasar(g: Grid, nb: Neighbours, opts: SkeletonOptions): Teasar {
  const n = g.inside.length;
  // The 3D field sees the sections' coarse z-steps; adding the exact in-plane field makes the ridge
  // sharp within a section (a flat tube's 3D distance is z-limited and flat across its middle).
  let source = -1;
  let mMax = 0;
  const medial = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    if (g.inside[i] === 0) continue;
    const m = g.d2[i] + g.d3[i];
    medial[i] = m;
    if (m > mMax) {
      mMax = m;
      source = i;
    }
  }
  if (source < 0) throw new RangeError("empty mask");
  const weight = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    if (g.inside[i] === 0) continue;
    const t = 1 - medial[i] / mMax;
    weight[i] = 1 + opts.penalty * t * t;
  }
  const root = farthestTip(g, source);
  const tree = dijkstra(g, nb, root, weight);
  const { parent, along, order, reached } = tree;
  const valid = new Uint8Array(n);
  let remaining = order.slice(0, reached);
  for (const i of remaining) valid[i] = 1;
  const skel = new Uint8Array(n);
  skel[root] = 1;
  const nodes = [root];
  const constNm = opts.invalidationConstNm ?? 0.5 * Math.max(g.s[0], g.s[1], g.s[2]);

  for (;;) {
    // The farthest valid voxel; compacting the list as we go keeps later scans short.
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
    remaining = remaining.subarray(0, w);
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

/**
 * Clears `valid` within a ball around each path voxel. Balls are stamped every quarter radius with the
 * radius grown to cover the gaps between them. A voxel is spared when its distance from the root differs
 * from the ball centre's by more than 2 radii: it belongs to another arm that merely passes close by
 * (a U-shaped mitochondrion), which a plain Euclidean ball would erase.
 */
function invalidateAlong(
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

interface Column {
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
function column(g: Grid, i: number): Column {
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

/**
 * Inscribed radius (nm) of the cross-section through a voxel: min(in-plane, half the z-extent). A tube
 * lying flat is limited by whichever is smaller; a tilted or upright one has a long column and is limited
 * in-plane, where 5-nm pixels resolve it. Measured about the column's own centre rather than the voxel's,
 * whose section can sit up to half a section off the tube axis.
 */
function inscribedRadius(c: Column): number {
  return Math.min(c.inPlane, 0.5 * (c.up + c.down));
}

/** The skeleton as an undirected tree over compact node ids; pruning clears `alive`. */
interface Tree {
  n: number;
  pos: Float64Array;
  /** Inscribed radius of the cross-section (nm). */
  rho: Float64Array;
  /** Pruning scale: rho, or the in-plane half-width where that is over 2 rho (see prune). */
  size: Float64Array;
  adj: number[][];
  alive: Uint8Array;
}

/** `t` was grown on a binned grid whose cells stand for the full-resolution voxels `rep`. */
function buildTree(g: Grid, rep: Int32Array, t: Teasar): Tree {
  const n = t.nodes.length;
  const id = new Map<number, number>();
  t.nodes.forEach((v, k) => id.set(v, k));
  const pos = new Float64Array(3 * n);
  const rho = new Float64Array(n);
  const size = new Float64Array(n);
  const adj: number[][] = Array.from({ length: n }, () => []);
  t.nodes.forEach((v, k) => {
    pos.set(position(g, rep[v]), 3 * k);
    const c = column(g, rep[v]);
    rho[k] = inscribedRadius(c);
    size[k] = c.inPlane >= 2 * rho[k] ? c.inPlane : rho[k];
    const p = id.get(t.parent[v]);
    if (p !== undefined) {
      adj[k].push(p);
      adj[p].push(k);
    }
  });
  return { n, pos, rho, size, adj, alive: new Uint8Array(n).fill(1) };
}

function degree(tr: Tree, v: number): number {
  let d = 0;
  for (const u of tr.adj[v]) d += tr.alive[u];
  return d;
}

function dist(tr: Tree, a: number, b: number): number {
  const p = tr.pos;
  return Math.hypot(p[3 * a] - p[3 * b], p[3 * a + 1] - p[3 * b + 1], p[3 * a + 2] - p[3 * b + 2]);
}

/** Walks from `from` through `first` along degree-2 nodes; returns the nodes passed and the stop node. */
function walk(tr: Tree, from: number, first: number): { chain: number[]; end: number } {
  const chain: number[] = [];
  let prev = from;
  let cur = first;
  while (degree(tr, cur) === 2) {
    chain.push(cur);
    let next = -1;
    for (const u of tr.adj[cur]) if (tr.alive[u] === 1 && u !== prev) next = u;
    if (next < 0) break;
    prev = cur;
    cur = next;
  }
  return { chain, end: cur };
}

/**
 * Removes spurs, shortest first. A TEASAR branch runs from its junction out to the surface, so a bump
 * of height h yields a branch about (radius + h) long. Its reach = |tip - junction| - (largest radius
 * along it) is h for a bump but about the arm length for a real arm; it is pruned when
 * reach < k x radius at the junction. k = 1.5: a bumpy or z-stepped tube (reach <= 0.3 r) loses its
 * spurs, a stub of 1.25 r is pruned and an arm of 1.75 r or more survives (measured on T and Y shapes,
 * r = 120-200 nm). "Radius" here is `size`: the in-plane half-width where that exceeds twice the
 * inscribed radius, so that a sheet a few sections thick is not read as a bush of branches. Shortest
 * first, one at a time, so that at a junction near a tip the longer of two short ends stays on.
 */
function prune(tr: Tree, k: number): void {
  for (;;) {
    let best: number[] | null = null;
    let bestReach = Infinity;
    for (let v = 0; v < tr.n; v++) {
      if (tr.alive[v] === 0 || degree(tr, v) !== 1) continue;
      let first = -1;
      for (const u of tr.adj[v]) if (tr.alive[u] === 1) first = u;
      const { chain, end } = walk(tr, v, first);
      if (degree(tr, end) < 3) return; // the whole tree is one unbranched path
      let sizeMax = Math.max(tr.size[v], tr.size[end]);
      for (const c of chain) sizeMax = Math.max(sizeMax, tr.size[c]);
      const reach = dist(tr, v, end) - sizeMax;
      if (reach < k * tr.size[end] && reach < bestReach) {
        bestReach = reach;
        best = [v, ...chain];
      }
    }
    if (best === null) return;
    for (const c of best) tr.alive[c] = 0;
  }
}

/** Junction nodes joined by a stretch shorter than their radius are one branch point (e.g. a "+"). */
function countBranchPoints(tr: Tree): number {
  const junctions: number[] = [];
  for (let v = 0; v < tr.n; v++) if (tr.alive[v] === 1 && degree(tr, v) >= 3) junctions.push(v);
  const root = new Map<number, number>(junctions.map((j) => [j, j]));
  const find = (a: number): number => {
    let r = a;
    for (let up = root.get(r); up !== undefined && up !== r; up = root.get(r)) r = up;
    return r;
  };
  for (const j of junctions)
    for (const u of tr.adj[j]) {
      if (tr.alive[u] === 0) continue;
      const { end } = walk(tr, j, u);
      if (end !== j && degree(tr, end) >= 3 && dist(tr, j, end) < Math.max(tr.size[j], tr.size[end]))
        root.set(find(j), find(end));
    }
  return new Set(junctions.map(find)).size;
}

/** Tree path between every pair of leaves, via one BFS per leaf. */
function leafPaths(tr: Tree, leaves: number[]): number[][] {
  const out: number[][] = [];
  const parent = new Int32Array(tr.n);
  for (let a = 0; a < leaves.length; a++) {
    parent.fill(-2);
    const queue = [leaves[a]];
    parent[leaves[a]] = -1;
    for (let h = 0; h < queue.length; h++) {
      const v = queue[h];
      for (const u of tr.adj[v])
        if (tr.alive[u] === 1 && parent[u] === -2) {
          parent[u] = v;
          queue.push(u);
        }
    }
    for (let b = a + 1; b < leaves.length; b++) {
      const path: number[] = [];
      for (let v = leaves[b]; v >= 0; v = parent[v]) path.push(v);
      out.push(path);
    }
  }
  return out;
}

/**
 * Gaussian smoothing of a polyline resampled by arc length. Odd reflection at the ends keeps the end
 * points fixed and straight ends straight; a bend of radius R shortens by only sigma^2 / (2 R^2).
 */
function smoothPolyline(pts: Float64Array, sigma: number): Float64Array {
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

function polylineLength(p: Float64Array): number {
  let L = 0;
  for (let i = 1; i < p.length / 3; i++) L += gap(p, i, p, i - 1);
  return L;
}

/**
 * Distance from p along unit dir until the ray leaves the object (0.1-pixel steps). In-plane the object
 * is its pixels; between two sections of which only one is inside, the surface is put where that
 * voxel's column fit puts it rather than on the voxel face, which may be 22 nm off.
 */
function exitDistance(g: Grid, p: Vec3, dir: Vec3): number {
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

interface PathMeasure {
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
function measurePath(g: Grid, tr: Tree, nodes: number[], sigma: number): PathMeasure {
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
function pathWidth(tr: Tree, pm: PathMeasure): number {
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
function hull2d(xy: number[]): number[] {
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
      for (const yy of [(y - 0.5) * sy, (y + 0.5) * sy]) xy.push((x0 - 0.5) * sx, yy, (x1 + 0.5) * sx, yy);
    }
    const h = hull2d(xy);
    for (let i = 0; i < h.length; i += 2) pts.push(h[i], h[i + 1], (z - 0.5) * sz, h[i], h[i + 1], (z + 0.5) * sz);
  }
  const n = pts.length / 3;
  if (n === 0) return 0;
  let c: Vec3 = [0, 0, 0];
  for (let i = 0; i < n; i++) c = [c[0] + pts[3 * i] / n, c[1] + pts[3 * i + 1] / n, c[2] + pts[3 * i + 2] / n];
  const r = Array.from({ length: n }, (_, i) => gap(pts, i, c, 0));
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

interface Analysis {
  tree: Tree;
  branchCount: number;
  leaves: number[];
  longest: PathMeasure | null;
}

function analyse(
  mask: ArrayLike<number>,
  shape: Shape3,
  spacingNm: Shape3,
  options: Partial<SkeletonOptions>,
): Analysis {
  checkInput(mask, shape, spacingNm);
  const opts: SkeletonOptions = { ...DEFAULT_SKELETON_OPTIONS, ...options };
  const { penalty, invalidationScale, pruneFactor, binXY } = opts;
  if (![penalty, invalidationScale, pruneFactor].every((v) => Number.isFinite(v) && v >= 0))
    throw new RangeError("skeleton options must be finite and non-negative");
  if (binXY !== undefined && !(Number.isInteger(binXY) && binXY >= 1))
    throw new RangeError(`binXY must be a positive integer, got ${binXY}`);
  const grid = buildGrid(mask, shape, spacingNm);
  const b = opts.binXY ?? Math.max(1, Math.floor(spacingNm[2] / (4 * Math.max(spacingNm[0], spacingNm[1]))));
  const coarse = b > 1 ? binGrid(grid, b) : { grid, rep: Int32Array.from(grid.inside, (_, i) => i) };
  const tree = buildTree(grid, coarse.rep, teasar(coarse.grid, neighbours(coarse.grid), opts));
  prune(tree, opts.pruneFactor);
  const branchCount = countBranchPoints(tree);
  const leaves: number[] = [];
  for (let v = 0; v < tree.n; v++) if (tree.alive[v] === 1 && degree(tree, v) === 1) leaves.push(v);
  const sigma = opts.smoothingSigmaNm ?? 1.5 * Math.max(...spacingNm);
  let longest: PathMeasure | null = null;
  // Every leaf pair is measured: smoothed lengths, not voxel-step counts, decide which path is longest.
  // A pruned mitochondrion has a handful of leaves; past 24 only the 24 farthest from the centroid are.
  let cand = leaves;
  if (leaves.length > 24) {
    const c: Vec3 = [0, 0, 0];
    for (const v of leaves) for (let k = 0; k < 3; k++) c[k] += tree.pos[3 * v + k] / leaves.length;
    const r = (v: number): number => gap(tree.pos, v, c, 0);
    cand = leaves.slice().sort((a, b) => r(b) - r(a)).slice(0, 24);
  }
  for (const path of leafPaths(tree, cand)) {
    const pm = measurePath(grid, tree, path, sigma);
    if (longest === null || pm.length > longest.length) longest = pm;
  }
  return { tree, branchCount, leaves, longest };
}

/** The pruned centreline skeleton of one object (binary mask, nonzero = inside, x fastest). */
export function skeletonize(
  mask: ArrayLike<number>,
  shape: Shape3,
  spacingNm: Shape3,
  options: Partial<SkeletonOptions> = {},
): Skeleton {
  const { tree, branchCount, leaves } = analyse(mask, shape, spacingNm, options);
  const id = new Int32Array(tree.n).fill(-1);
  let m = 0;
  for (let v = 0; v < tree.n; v++) if (tree.alive[v] === 1) id[v] = m++;
  const vertices = new Float64Array(3 * m);
  const radius = new Float64Array(m);
  const edges: number[] = [];
  for (let v = 0; v < tree.n; v++) {
    if (id[v] < 0) continue;
    vertices.set(tree.pos.subarray(3 * v, 3 * v + 3), 3 * id[v]);
    radius[id[v]] = tree.rho[v];
    for (const u of tree.adj[v]) if (u > v && id[u] >= 0) edges.push(id[v], id[u]);
  }
  return { vertices, edges: Uint32Array.from(edges), radius, endpoints: leaves.map((v) => id[v]), branchCount };
}

/**
 * Length, width, max Feret and branching of one object (DESIGN.md "Definitions"). `mask` is the object
 * cropped to its bounding box (nonzero = inside, x fastest, shape [nx, ny, nz]); spacing in nm.
 */
export function measureTube(
  mask: ArrayLike<number>,
  shape: Shape3,
  spacingNm: Shape3,
  options: Partial<SkeletonOptions> = {},
): TubeMeasure {
  const { tree, branchCount, leaves, longest } = analyse(mask, shape, spacingNm, options);
  const feret = feretMax(mask, shape, spacingNm);
  if (longest === null) {
    // A blob whose skeleton is one voxel: no path to measure along, so fall back to the extremes.
    const v = Math.max(0, tree.alive.indexOf(1));
    const c: Vec3 = [tree.pos[3 * v], tree.pos[3 * v + 1], tree.pos[3 * v + 2]];
    return {
      length_nm: feret,
      width_nm: 2 * tree.rho[v],
      feret_max_nm: feret,
      branched: false,
      branch_count: 0,
      endpoints: 0,
      tips_nm: [c, c],
    };
  }
  return {
    length_nm: longest.length,
    width_nm: pathWidth(tree, longest),
    feret_max_nm: feret,
    branched: branchCount > 0,
    branch_count: branchCount,
    endpoints: leaves.length,
    tips_nm: longest.tips,
  };
}
