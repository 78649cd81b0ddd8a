/**
 * The padded grid of one object with its in-plane and 3D distances to the background, and exact shortest
 * paths over it (Dijkstra with a bucket queue): what TEASAR (skeleton.ts) works on.
 */
import type { Vec3 } from "../../precomputed/array.js";
import { edtSquared } from "./edt.js";
import type { Shape3 } from "./skeleton.js";

/** Padded copy of the mask plus its distance fields; the one-voxel background rim removes bound checks. */
export interface Grid {
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

export function checkInput(mask: ArrayLike<number>, shape: Shape3, spacing: Shape3): void {
  const [nx, ny, nz] = shape;
  if (![nx, ny, nz].every((n) => Number.isInteger(n) && n > 0)) throw new RangeError(`bad shape ${shape.join(",")}`);
  if (mask.length !== nx * ny * nz) throw new RangeError(`mask has ${mask.length} voxels, shape needs ${nx * ny * nz}`);
  if (!spacing.every((v) => Number.isFinite(v) && v > 0)) throw new RangeError(`bad spacing ${spacing.join(",")}`);
}

export function buildGrid(mask: ArrayLike<number>, shape: Shape3, spacing: Shape3): Grid {
  const [nx, ny, nz] = shape;
  const px = nx + 2;
  const py = ny + 2;
  const pz = nz + 2;
  const plane = px * py;
  const inside = padMask(mask, shape);
  // The rim of background makes every x-line hold some, so no distance is Infinity.
  const d2 = new Float64Array(inside.length);
  const d3 = edtSquared(inside, [px, py, pz], [spacing[0], spacing[1], spacing[2]], {
    onInPlane: (f) => sqrtInto(d2, f),
  });
  sqrtInto(d3, d3);
  return { px, py, pz, plane, s: [spacing[0], spacing[1], spacing[2]], inside, d2, d3 };
}

/** The mask with a one-voxel rim of background (its own function, like each phase here: see sqrtInto). */
function padMask(mask: ArrayLike<number>, shape: Shape3): Uint8Array {
  const [nx, ny, nz] = shape;
  const px = nx + 2;
  const py = ny + 2;
  const inside = new Uint8Array(px * py * (nz + 2));
  for (let z = 0; z < nz; z++)
    for (let y = 0; y < ny; y++) {
      const src = nx * (y + ny * z);
      const dst = 1 + px * (y + 1 + py * (z + 1));
      for (let x = 0; x < nx; x++) if (mask[src + x] !== 0) inside[dst + x] = 1;
    }
  return inside;
}

/**
 * out[i] = sqrt(f[i]). A loop of its own rather than one of several in the caller, so that the caller is not
 * optimised mid-loop and then thrown away on reaching the next loop, not yet run.
 */
function sqrtInto(out: Float64Array, f: ArrayLike<number>): void {
  for (let i = 0; i < f.length; i++) out[i] = Math.sqrt(f[i]);
}

/** Crop-frame nm position of padded voxel index i. */
export function position(g: Grid, i: number): Vec3 {
  const x = i % g.px;
  const y = Math.floor(i / g.px) % g.py;
  const z = Math.floor(i / g.plane);
  return [(x - 1) * g.s[0], (y - 1) * g.s[1], (z - 1) * g.s[2]];
}

/** Distance between point i of xyz-triples a and point j of b. */
export function gap(a: ArrayLike<number>, i: number, b: ArrayLike<number>, j: number): number {
  return Math.hypot(a[3 * i] - b[3 * j], a[3 * i + 1] - b[3 * j + 1], a[3 * i + 2] - b[3 * j + 2]);
}

/**
 * Bucket queue for Dijkstra (Dial's algorithm with buckets as wide as the cheapest edge): entries in one
 * bucket cannot improve one another, so each bucket is settled in any order and the result is exact.
 * O(1) per operation instead of a heap's O(log n); buckets are reused circularly because no live entry
 * lies more than one maximal edge cost ahead of the current bucket.
 */
export class BucketQueue {
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

export interface Neighbours {
  off: Int32Array;
  len: Float64Array;
}

export function neighbours(g: Grid): Neighbours {
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

export interface ShortestPaths {
  cost: Float64Array;
  parent: Int32Array;
  /** Physical length (nm) of each voxel's path in the tree. */
  along: Float64Array;
  /** Voxels in the order they were settled (reached voxels only). */
  order: Int32Array;
  reached: number;
}

/** Dijkstra over inside voxels; an edge costs its length times the mean of its end voxels' weights. */
export function dijkstra(g: Grid, nb: Neighbours, source: number, weight: Float64Array): ShortestPaths {
  const n = g.inside.length;
  const cost = new Float64Array(n).fill(Infinity);
  const parent = new Int32Array(n).fill(-1);
  const along = new Float64Array(n);
  const step = new Float64Array(n);
  // 1 = inside and not yet settled: one array read per neighbour instead of two.
  const open = g.inside.slice();
  const order = new Int32Array(n);
  const range = weightRange(open, weight);
  const { off, len } = nb;
  const halfLen = len.map((l) => 0.5 * l);
  const queue = new BucketQueue(Math.min(...len) * range.min, Math.max(...len) * range.max);
  cost[source] = 0;
  queue.push(0, source);
  const reached = settle(queue, open, cost, parent, along, step, order, weight, off, len, halfLen);
  return { cost, parent, along, order, reached };
}

/** Smallest and largest weight (at least 1) of the open voxels. */
function weightRange(open: Uint8Array, weight: Float64Array): { min: number; max: number } {
  let wMax = 1;
  let wMin = Infinity;
  for (let i = 0; i < open.length; i++)
    if (open[i] === 1) {
      if (weight[i] > wMax) wMax = weight[i];
      if (weight[i] < wMin) wMin = weight[i];
    }
  return { min: wMin, max: wMax };
}

/** Dijkstra's main loop (a function of its own: see sqrtInto); returns how many voxels it settled. */
function settle(
  queue: BucketQueue,
  open: Uint8Array,
  cost: Float64Array,
  parent: Int32Array,
  along: Float64Array,
  step: Float64Array,
  order: Int32Array,
  weight: Float64Array,
  off: Int32Array,
  len: Float64Array,
  halfLen: Float64Array,
): number {
  let reached = 0;
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
  return reached;
}
