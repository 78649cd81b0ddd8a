/**
 * Connected components of a class volume too large to hold in memory, the way igneous/cc3d do it: label
 * each block on its own, stitch blocks through the voxel planes on either side of their shared faces,
 * union the per-block ("provisional") ids globally, then relabel. The result is byte-identical to
 * `connectedComponents` on the whole volume, including its numbering (ids by first voxel in z, y, x
 * raster order), so downstream stages cannot tell which path produced a volume.
 *
 * Memory, for a volume [NX, NY, NZ] in blocks [BX, BY, BZ]:
 * - pass 1 holds one block (classes, local labels, local union-find), the stitching planes — two XY planes
 *   of the whole volume (previous and current block layer's last z), two XZ strips NX x BZ (previous and
 *   current block row's last y) and one YZ face BY x BZ (previous block's last x), all Uint32 — and the
 *   provisional-id tables (21 bytes per block-local component: parent, class, first voxel, voxel count).
 * - between passes only the provisional tables survive, reduced to one Uint32 (provisional -> final id);
 *   the planes are dropped.
 * - pass 2 re-reads each block and recomputes its CCL instead of keeping local labels from pass 1: local
 *   labelling is deterministic, so it reproduces the same provisional ids, and peak memory stays at one
 *   block plus the provisional -> final map.
 * The XY planes are the only term that grows with the volume's cross-section (8 bytes per XY voxel);
 * a distributed version would keep each block's three high faces in storage instead.
 */
import { connectedComponents, type Components } from "./label.js";

export type Shape3 = readonly [number, number, number];

export interface BlockComponents extends Components {
  /** firstVoxel[id] is the block-local raster index (x + bx*(y + by*z)) of id's first voxel; [0] unused. */
  firstVoxel: Uint32Array;
}

/**
 * Local CCL of one block. Local ids are numbered by first voxel in the block's own raster order; because
 * raster order compares (z, y, x) lexicographically and a translation preserves that order, the first
 * local voxel of a block-local component is also its first voxel in global raster order among the block.
 */
export function labelBlock(classes: Uint8Array, blockShape: Shape3): BlockComponents {
  const cc = connectedComponents(classes, blockShape);
  const firstVoxel = new Uint32Array(cc.count + 1);
  const { labels } = cc;
  // Ids first appear in increasing order (that is how they were numbered), so one counter finds them all.
  let expect = 1;
  for (let i = 0; i < labels.length && expect <= cc.count; i++) {
    if (labels[i] === expect) firstVoxel[expect++] = i;
  }
  return { ...cc, firstVoxel };
}

/** A 2D plane of voxels (u fastest): provisional ids (0 = background) and their class codes. */
export interface FacePlane {
  labels: Uint32Array;
  classes: Uint8Array;
  width: number;
  height: number;
}

/**
 * Pairs of provisional ids to union across a block boundary: `near` and `far` are the two 1-voxel planes
 * on either side of it, and `farOrigin` is where far's (0, 0) lies in near's (u, v) frame. Each near voxel
 * touches the 3 x 3 far voxels around its own (u, v) (26-connectivity across a plane), and joins those of
 * its class. When `far` extends one voxel past `near` on a side (farOrigin -1, or wider), the extra rows
 * come from the blocks beyond near's edges, which stitches edge- and corner-diagonal block neighbours in
 * the same sweep; with equal planes and farOrigin [0, 0] it is plain face stitching.
 * Returns [a0, b0, a1, b1, ...] with a from near and b from far; consecutive repeats are dropped.
 */
export function blockFaceEquivalences(near: FacePlane, far: FacePlane, farOrigin: readonly [number, number] = [0, 0]): Uint32Array {
  checkPlane(near, "near");
  checkPlane(far, "far");
  const [ou, ov] = farOrigin;
  const { width: nw, height: nh } = near;
  const { width: fw, height: fh } = far;
  const out: number[] = [];
  let lastA = 0;
  let lastB = 0;
  for (let v = 0; v < nh; v++) {
    const fv0 = Math.max(0, v - 1 - ov);
    const fv1 = Math.min(fh - 1, v + 1 - ov);
    if (fv0 > fv1) continue;
    for (let u = 0; u < nw; u++) {
      const a = near.labels[u + nw * v];
      if (a === 0) continue;
      const c = near.classes[u + nw * v];
      const fu0 = Math.max(0, u - 1 - ou);
      const fu1 = Math.min(fw - 1, u + 1 - ou);
      for (let fv = fv0; fv <= fv1; fv++) {
        const row = fw * fv;
        for (let fu = fu0; fu <= fu1; fu++) {
          const b = far.labels[row + fu];
          if (b === 0 || far.classes[row + fu] !== c) continue;
          // Large components produce the same pair for run after run of voxels; one copy is enough.
          if (a === lastA && b === lastB) continue;
          out.push(a, b);
          lastA = a;
          lastB = b;
        }
      }
    }
  }
  return Uint32Array.from(out);
}

function checkPlane(p: FacePlane, name: string): void {
  const n = p.width * p.height;
  if (!Number.isInteger(p.width) || !Number.isInteger(p.height) || p.width < 0 || p.height < 0) {
    throw new RangeError(`${name} plane size must be non-negative integers, got ${p.width} x ${p.height}`);
  }
  if (p.labels.length !== n || p.classes.length !== n) {
    throw new RangeError(`${name} plane is ${p.width} x ${p.height} but has ${p.labels.length} labels, ${p.classes.length} classes`);
  }
}

/**
 * Union-find over provisional ids with their per-part statistics. Parts are appended block by block, so
 * the tables grow; typed arrays keep them at 21 bytes per part.
 */
export class ProvisionalComponents {
  private parent = new Uint32Array(1024);
  private cls = new Uint8Array(1024);
  private first = new Float64Array(1024);
  private vox = new Float64Array(1024);
  /** Provisional ids in use are 1..size. */
  size = 0;
  private spent = false;

  /** Appends a block's local components; returns the offset to add to its local ids. */
  addBlock(block: BlockComponents, origin: Shape3, blockShape: Shape3, volumeShape: Shape3): number {
    if (this.spent) throw new Error("provisional components were already finalized");
    const offset = this.size;
    const need = offset + block.count + 1;
    if (need > 0xffffffff) throw new RangeError(`more than ${0xffffffff} provisional components; use larger blocks`);
    if (need > this.parent.length) this.grow(need);
    const [bx, by] = blockShape;
    const [nx, ny] = volumeShape;
    const [ox, oy, oz] = origin;
    const bxy = bx * by;
    for (let l = 1; l <= block.count; l++) {
      const p = offset + l;
      const i = block.firstVoxel[l];
      const lz = Math.floor(i / bxy);
      const r = i - lz * bxy;
      const ly = Math.floor(r / bx);
      const lx = r - ly * bx;
      this.parent[p] = p;
      this.cls[p] = block.classOf[l];
      // Float64: a global raster index passes 2^32 in volumes this module exists for; exact below 2^53.
      this.first[p] = ox + lx + nx * (oy + ly + ny * (oz + lz));
      this.vox[p] = block.voxels[l];
    }
    this.size = offset + block.count;
    return offset;
  }

  classOf(p: number): number {
    return this.cls[p];
  }

  find(a: number): number {
    const parent = this.parent;
    while (parent[a] !== a) {
      const up = parent[parent[a]];
      parent[a] = up; // path halving
      a = up;
    }
    return a;
  }

  union(a: number, b: number): void {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra === rb) return;
    if (ra < rb) this.parent[rb] = ra;
    else this.parent[ra] = rb;
  }

  unionPairs(pairs: Uint32Array): void {
    for (let k = 0; k + 1 < pairs.length; k += 2) this.union(pairs[k], pairs[k + 1]);
  }

  /**
   * Final ids that reproduce whole-volume numbering: a component's first raster voxel is the earliest
   * first voxel among its parts, and components are numbered in the order of those voxels.
   * Returns finalOf (provisional -> final, finalOf[0] = 0) plus per-final-id class and voxel count.
   * Consumes the tables: no parts can be added or unioned afterwards.
   */
  finalize(): { finalOf: Uint32Array; count: number; classOf: Uint8Array; voxels: Float64Array } {
    if (this.spent) throw new Error("provisional components were already finalized");
    this.spent = true;
    const n = this.size;
    const finalOf = new Uint32Array(n + 1);
    let count = 0;
    for (let p = 1; p <= n; p++) {
      const r = this.find(p);
      // finalOf holds each part's root until the roots are ranked, so find runs once per part.
      finalOf[p] = r;
      if (r === p) {
        count++;
        continue;
      }
      if (this.first[p] < this.first[r]) this.first[r] = this.first[p];
      this.vox[r] += this.vox[p];
    }
    const keys = new Float64Array(count);
    let k = 0;
    for (let p = 1; p <= n; p++) if (finalOf[p] === p) keys[k++] = this.first[p];
    // Native numeric sort plus a binary search per root avoids a comparator closure over 10^6 roots.
    keys.sort();
    const classOf = new Uint8Array(count + 1);
    const voxels = new Float64Array(count + 1);
    const rank = new Uint32Array(n + 1);
    for (let p = 1; p <= n; p++) {
      if (finalOf[p] !== p) continue;
      const id = lowerBound(keys, this.first[p]) + 1;
      rank[p] = id;
      classOf[id] = this.cls[p];
      voxels[id] = this.vox[p];
    }
    for (let p = 1; p <= n; p++) finalOf[p] = rank[finalOf[p]];
    // The relabel pass needs only finalOf: drop the tables now rather than hold them through pass 2.
    this.parent = new Uint32Array(0);
    this.cls = new Uint8Array(0);
    this.first = new Float64Array(0);
    this.vox = new Float64Array(0);
    return { finalOf, count, classOf, voxels };
  }

  private grow(need: number): void {
    let len = this.parent.length;
    while (len < need) len *= 2;
    const parent = new Uint32Array(len);
    parent.set(this.parent);
    const cls = new Uint8Array(len);
    cls.set(this.cls);
    const first = new Float64Array(len);
    first.set(this.first);
    const vox = new Float64Array(len);
    vox.set(this.vox);
    this.parent = parent;
    this.cls = cls;
    this.first = first;
    this.vox = vox;
  }
}

function lowerBound(a: Float64Array, x: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export type ReadBlock = (origin: Shape3, shape: Shape3) => Uint8Array | Promise<Uint8Array>;
export type WriteBlock = (origin: Shape3, shape: Shape3, labels: Uint32Array) => void | Promise<void>;

export interface BlockwiseResult {
  count: number;
  classOf: Uint8Array;
  voxels: Float64Array;
}

/** Block origins and shapes in z, y, x block-raster order; edge blocks are clipped to the volume. */
export function* blockGrid(volumeShape: Shape3, blockShape: Shape3): Generator<{ origin: Shape3; shape: Shape3 }> {
  const [nx, ny, nz] = volumeShape;
  const [bx, by, bz] = blockShape;
  for (let oz = 0; oz < nz; oz += bz) {
    for (let oy = 0; oy < ny; oy += by) {
      for (let ox = 0; ox < nx; ox += bx) {
        yield { origin: [ox, oy, oz], shape: [Math.min(bx, nx - ox), Math.min(by, ny - oy), Math.min(bz, nz - oz)] };
      }
    }
  }
}

/**
 * Whole-volume-identical CCL through block callbacks: pass 1 reads every block, labels it and stitches it
 * to the blocks before it in block-raster order; pass 2 re-reads, relabels to final ids and writes.
 * `writeBlock` receives a fresh array per block, which it may keep. See the module comment for memory.
 */
export async function connectedComponentsBlockwise(
  readBlock: ReadBlock,
  volumeShape: Shape3,
  blockShape: Shape3,
  writeBlock: WriteBlock,
): Promise<BlockwiseResult> {
  if (!volumeShape.every((n) => Number.isInteger(n) && n >= 0)) throw new RangeError(`volume shape must be non-negative integers, got [${volumeShape}]`);
  if (!blockShape.every((n) => Number.isInteger(n) && n > 0)) throw new RangeError(`block shape must be positive integers, got [${blockShape}]`);
  const [nx, ny] = volumeShape;
  const bz = Math.min(blockShape[2], volumeShape[2]);
  const by = Math.min(blockShape[1], volumeShape[1]);

  const read = async (origin: Shape3, shape: Shape3): Promise<Uint8Array> => {
    const data = await readBlock(origin, shape);
    const n = shape[0] * shape[1] * shape[2];
    if (data.length !== n) throw new RangeError(`block at [${origin}] has ${data.length} voxels, shape [${shape}] needs ${n}`);
    return data;
  };

  const parts = new ProvisionalComponents();
  const offsets: number[] = [];
  {
    // Last z-plane of the previous / current block layer, last y-row strip of the previous / current block
    // row, last x-face of the previous block: exactly the processed voxels a new block can touch.
    let zPrev = new Uint32Array(nx * ny);
    let zNext = new Uint32Array(nx * ny);
    let yPrev = new Uint32Array(nx * bz);
    let yNext = new Uint32Array(nx * bz);
    const xPrev = new Uint32Array(by * bz);
    let layerZ = -1;
    let rowKey = "";

    for (const { origin, shape } of blockGrid(volumeShape, blockShape)) {
      const [ox, oy, oz] = origin;
      const [sx, sy, sz] = shape;
      if (oz !== layerZ) {
        if (layerZ >= 0) [zPrev, zNext] = [zNext, zPrev];
        layerZ = oz;
      }
      const key = `${oy},${oz}`;
      if (key !== rowKey) {
        if (rowKey !== "") [yPrev, yNext] = [yNext, yPrev];
        rowKey = key;
      }

      const classes = await read(origin, shape);
      const block = labelBlock(classes, shape);
      const offset = parts.addBlock(block, origin, shape, volumeShape);
      offsets.push(offset);
      const local = block.labels;
      const sxy = sx * sy;
      const gid = (i: number): number => (local[i] === 0 ? 0 : local[i] + offset);

      if (oz > 0) {
        const near = nearPlane(sx, sy, (u, v) => u + sx * v, local, classes, offset);
        const x0 = Math.max(0, ox - 1);
        const x1 = Math.min(nx, ox + sx + 1);
        const y0 = Math.max(0, oy - 1);
        const y1 = Math.min(ny, oy + sy + 1);
        const far = farPlane(x1 - x0, y1 - y0, (u, v) => zPrev[x0 + u + nx * (y0 + v)], parts);
        parts.unionPairs(blockFaceEquivalences(near, far, [x0 - ox, y0 - oy]));
      }
      if (oy > 0) {
        const near = nearPlane(sx, sz, (u, v) => u + sxy * v, local, classes, offset);
        const x0 = Math.max(0, ox - 1);
        const x1 = Math.min(nx, ox + sx + 1);
        // z stays inside the block's layer: the row below (z = oz - 1) was stitched through the z plane,
        // and the layer above is not labelled yet.
        const far = farPlane(x1 - x0, sz, (u, v) => yPrev[x0 + u + nx * v], parts);
        parts.unionPairs(blockFaceEquivalences(near, far, [x0 - ox, 0]));
      }
      if (ox > 0) {
        const near = nearPlane(sy, sz, (u, v) => sx * u + sxy * v, local, classes, offset);
        const far = farPlane(sy, sz, (u, v) => xPrev[u + sy * v], parts);
        parts.unionPairs(blockFaceEquivalences(near, far, [0, 0]));
      }

      const top = sxy * (sz - 1);
      for (let y = 0; y < sy; y++) for (let x = 0; x < sx; x++) zNext[ox + x + nx * (oy + y)] = gid(top + x + sx * y);
      const back = sx * (sy - 1);
      for (let z = 0; z < sz; z++) for (let x = 0; x < sx; x++) yNext[ox + x + nx * z] = gid(back + x + sxy * z);
      for (let z = 0; z < sz; z++) for (let y = 0; y < sy; y++) xPrev[y + sy * z] = gid(sx - 1 + sx * y + sxy * z);
    }
  }

  const total = parts.size;
  const { finalOf, count, classOf, voxels } = parts.finalize();

  let b = 0;
  for (const { origin, shape } of blockGrid(volumeShape, blockShape)) {
    const classes = await read(origin, shape);
    const block = labelBlock(classes, shape);
    const offset = offsets[b];
    const expected = (b + 1 < offsets.length ? offsets[b + 1] : total) - offset;
    if (block.count !== expected) {
      throw new RangeError(`block at [${origin}] changed between passes: ${block.count} components, first pass found ${expected}`);
    }
    const labels = block.labels;
    for (let i = 0; i < labels.length; i++) {
      const l = labels[i];
      if (l !== 0) labels[i] = finalOf[offset + l];
    }
    await writeBlock(origin, shape, labels);
    b++;
  }
  return { count, classOf, voxels };
}

/** A block's boundary plane with provisional ids; `at(u, v)` maps plane coordinates to block indices. */
function nearPlane(
  width: number,
  height: number,
  at: (u: number, v: number) => number,
  local: Uint32Array,
  classes: Uint8Array,
  offset: number,
): FacePlane {
  const labels = new Uint32Array(width * height);
  const cls = new Uint8Array(width * height);
  for (let v = 0; v < height; v++) {
    for (let u = 0; u < width; u++) {
      const i = at(u, v);
      const l = local[i];
      if (l === 0) continue;
      labels[u + width * v] = l + offset;
      cls[u + width * v] = classes[i];
    }
  }
  return { labels, classes: cls, width, height };
}

/** A window of a stitching buffer; classes come from the provisional table, so buffers hold ids only. */
function farPlane(width: number, height: number, idAt: (u: number, v: number) => number, parts: ProvisionalComponents): FacePlane {
  const labels = new Uint32Array(width * height);
  const cls = new Uint8Array(width * height);
  for (let v = 0; v < height; v++) {
    for (let u = 0; u < width; u++) {
      const p = idAt(u, v);
      labels[u + width * v] = p;
      if (p !== 0) cls[u + width * v] = parts.classOf(p);
    }
  }
  return { labels, classes: cls, width, height };
}
