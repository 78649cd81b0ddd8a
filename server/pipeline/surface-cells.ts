/**
 * The marching-cubes part of the surface measure (surface.ts, step 5): tables derived from a face rule, and
 * an accumulator that walks the cells of one span between sections, summing polygon areas and
 * divergence-theorem volumes without storing a mesh.
 */

/**
 * Marching-cubes tables, generated here rather than copied: for each of the 256 sign patterns of a cell's
 * corners (bit c set = corner c inside; corner bits 1 = +x, 2 = +y, 4 = +z), each face contributes segments
 * between the crossings on its edges, and the segments chain into closed loops, which become the polygons.
 * A face with two diagonal inside corners is always cut so as to separate them. That choice depends only
 * on the face's own corners, so the two cells sharing a face draw the same segments and the surface is
 * watertight: no cracks from ambiguous cases (Lorensen's original table has them), hence an exact
 * divergence-theorem volume. Segments run with the inside on their right seen from outside the cell, which
 * orients every loop with its normal pointing out of the object.
 *
 * MC_LOOPS[MC_START[m] ..]: loop count, then per loop its length and its edge ids; MC_EDGES[m]: the 12-bit
 * set of edges cut.
 */
const EDGE_A = new Int8Array(12);
const EDGE_B = new Int8Array(12);
const MC_START = new Int16Array(257);
const MC_EDGES = new Int16Array(256);
const MC_LOOPS: Int8Array = (() => {
  const ids = new Map<number, number>();
  for (let a = 0, n = 0; a < 8; a++) {
    for (const bit of [1, 2, 4]) {
      if (a & bit) continue;
      EDGE_A[n] = a;
      EDGE_B[n] = a | bit;
      ids.set(a * 8 + (a | bit), n++);
    }
  }
  const edgeOf = (a: number, b: number): number => ids.get(Math.min(a, b) * 8 + Math.max(a, b)) ?? -1;
  const pos = (c: number): number[] => [c & 1, (c >> 1) & 1, (c >> 2) & 1];
  const mid = (e: number): number[] => pos(EDGE_A[e]).map((v, k) => (v + pos(EDGE_B[e])[k]) / 2);
  // Faces as 4 corners in cyclic order with e_u x e_v = e_axis, and their outward normals.
  const faces: { corners: number[]; normal: number[] }[] = [];
  for (let ax = 0; ax < 3; ax++) {
    for (const side of [0, 1]) {
      const u = (ax + 1) % 3;
      const v = (ax + 2) % 3;
      const at = (cu: number, cv: number): number => (side << ax) | (cu << u) | (cv << v);
      const normal = [0, 0, 0];
      normal[ax] = side ? 1 : -1;
      faces.push({ corners: [at(0, 0), at(1, 0), at(1, 1), at(0, 1)], normal });
    }
  }
  const out: number[] = [];
  for (let m = 0; m < 256; m++) {
    MC_START[m] = out.length;
    const inside = (c: number): boolean => ((m >> c) & 1) === 1;
    const next = new Map<number, number>();
    for (const { corners: cs, normal } of faces) {
      const cuts = [0, 1, 2, 3].filter((k) => inside(cs[k]) !== inside(cs[(k + 1) % 4]));
      const segs: number[][] = []; // [edge, edge, an inside corner on the segment's inside]
      if (cuts.length === 2) {
        const [k0, k1] = cuts;
        segs.push([edgeOf(cs[k0], cs[(k0 + 1) % 4]), edgeOf(cs[k1], cs[(k1 + 1) % 4]), cs.find(inside) ?? -1]);
      } else if (cuts.length === 4) {
        for (let k = 0; k < 4; k++) {
          if (inside(cs[k])) segs.push([edgeOf(cs[(k + 3) % 4], cs[k]), edgeOf(cs[k], cs[(k + 1) % 4]), cs[k]]);
        }
      }
      for (const [p, q, c] of segs) {
        const P = mid(p);
        const Q = mid(q);
        const d = [Q[0] - P[0], Q[1] - P[1], Q[2] - P[2]];
        const r = pos(c).map((v, k) => v - P[k]);
        const left =
          (d[1] * r[2] - d[2] * r[1]) * normal[0] + (d[2] * r[0] - d[0] * r[2]) * normal[1] + (d[0] * r[1] - d[1] * r[0]) * normal[2] > 0;
        if (left) next.set(q, p);
        else next.set(p, q);
      }
    }
    const loops: number[][] = [];
    const seen = new Set<number>();
    for (const start of next.keys()) {
      if (seen.has(start)) continue;
      const loop: number[] = [];
      for (let e: number | undefined = start; e !== undefined && !seen.has(e); e = next.get(e)) {
        seen.add(e);
        loop.push(e);
      }
      loops.push(loop);
    }
    out.push(loops.length);
    for (const loop of loops) out.push(loop.length, ...loop);
    MC_EDGES[m] = [...next.keys()].reduce((bits, e) => bits | (1 << e), 0);
  }
  MC_START[256] = out.length;
  return Int8Array.from(out);
})();

const SIXTH = 1 / 6;

/** Weights of (p, a, b, q) at each layer t = j / substeps: Catmull-Rom, or linear between a and b. */
function tabulate(substeps: number, cubic: boolean): Float64Array<ArrayBuffer> {
  const wts = new Float64Array(4 * (substeps + 1));
  for (let j = 0; j <= substeps; j++) {
    const t = j / substeps;
    const t2 = t * t;
    const t3 = t2 * t;
    if (cubic) wts.set([0.5 * (-t + 2 * t2 - t3), 0.5 * (2 - 5 * t2 + 3 * t3), 0.5 * (t + 4 * t2 - 3 * t3), 0.5 * (t3 - t2)], 4 * j);
    else wts.set([0, 1 - t, t, 0], 4 * j);
  }
  return wts;
}

/** Sums the area and divergence-theorem volume of the zero level, one span between sections at a time. */
export class CellAccumulator {
  area = 0;
  volume = 0;
  private readonly val = new Float64Array(8);
  /** Cut point per edge of the current cell, xyz interleaved. */
  private readonly cut = new Float64Array(12 * 3);
  /** Per pixel of two rows, its field sampled at every layer of the span, and the row each slot holds. */
  private curves = new Float64Array(0);
  private curveRow = new Int32Array(0);
  /** Per layer, the weights of p, a, b, q. */
  private linearWeights = new Float64Array(0);
  private cubicWeights = new Float64Array(0);
  private bits = new Uint8Array(0);

  /** Per edge, xyz (nm) of its first corner and from its first to its second corner, for the cut points. */
  private readonly edgeFrom = new Float64Array(36);
  private readonly edgeStep = new Float64Array(36);

  constructor(
    private readonly sx: number,
    private readonly sy: number,
    private readonly dz: number,
    private readonly ox: number,
    private readonly oy: number,
    private readonly oz: number,
  ) {
    const size = [sx, sy, dz];
    for (let e = 0; e < 12; e++) {
      for (let a = 0; a < 3; a++) {
        const from = (EDGE_A[e] >> a) & 1;
        this.edgeFrom[3 * e + a] = from * size[a];
        this.edgeStep[3 * e + a] = (((EDGE_B[e] >> a) & 1) - from) * size[a];
      }
    }
  }

  /**
   * One span between sections a (at height zLo, nm) and b (one section up), cut into `substeps` layers.
   * With ghosts p (below a) and q (above b) the field is Catmull-Rom in z, else linear.
   */
  slab(
    p: Float32Array | null,
    a: Float32Array,
    b: Float32Array,
    q: Float32Array | null,
    w: number,
    h: number,
    substeps: number,
    zLo: number,
  ): void {
    const n1 = substeps + 1;
    if (this.bits.length < w * h) this.bits = new Uint8Array(w * h);
    // A column of cells holds surface only if its 4 corner curves can change sign. A linear blend stays
    // between its ends; a Catmull-Rom segment stays inside its Bezier control values. Per pixel: bit 1 = some
    // value < 0, bit 2 = some value >= 0; a column is live when its 4 pixels together have both bits.
    // (Each phase is its own function, so that none is optimised mid-loop and then thrown away on reaching
    // code that has not run yet.)
    if (p !== null && q !== null) liveBitsCubic(this.bits, p, a, b, q, w * h);
    else liveBitsLinear(this.bits, a, b, w * h);
    if (this.curves.length < 2 * w * n1) {
      this.curves = new Float64Array(2 * w * n1);
      this.curveRow = new Int32Array(2 * w);
    }
    const cubic = p !== null && q !== null;
    if (this.cubicWeights.length !== 4 * n1) {
      this.linearWeights = tabulate(substeps, false);
      this.cubicWeights = tabulate(substeps, true);
    }
    this.curveRow.fill(-1);
    this.cells(p ?? a, a, b, q ?? b, w, h, substeps, zLo, cubic ? this.cubicWeights : this.linearWeights);
  }

  /**
   * The live columns of one span. Each pixel's curve through the span, sampled at the layers, is computed once
   * and shared by the up to 4 live columns it is a corner of; two rows of them are kept. Layer j = pa a + pb b
   * + pp p + pq q with weights tabulated once: Catmull-Rom, or linear when there are no ghosts (pp = pq = 0).
   */
  private cells(
    pp: Float32Array,
    a: Float32Array,
    b: Float32Array,
    qq: Float32Array,
    w: number,
    h: number,
    substeps: number,
    zLo: number,
    weights: Float64Array,
  ): void {
    const n1 = substeps + 1;
    const { val, sx, sy, dz, bits, curves, curveRow } = this;
    for (let y = 0; y < h - 1; y++) {
      const y0 = this.oy + y * sy;
      for (let x = 0; x < w - 1; x++) {
        const i0 = y * w + x;
        if ((bits[i0] | bits[i0 + 1] | bits[i0 + w] | bits[i0 + w + 1]) !== 3) continue;
        const o0 = curveAt(curves, curveRow, weights, pp, a, b, qq, w, n1, substeps, x, y);
        const o1 = curveAt(curves, curveRow, weights, pp, a, b, qq, w, n1, substeps, x + 1, y);
        const o2 = curveAt(curves, curveRow, weights, pp, a, b, qq, w, n1, substeps, x, y + 1);
        const o3 = curveAt(curves, curveRow, weights, pp, a, b, qq, w, n1, substeps, x + 1, y + 1);
        const x0 = this.ox + x * sx;
        let v0 = curves[o0], v1 = curves[o1], v2 = curves[o2], v3 = curves[o3];
        let low = (v0 < 0 ? 1 : 0) | (v1 < 0 ? 2 : 0) | (v2 < 0 ? 4 : 0) | (v3 < 0 ? 8 : 0);
        for (let j = 0; j < substeps; j++) {
          const w0 = curves[o0 + j + 1], w1 = curves[o1 + j + 1], w2 = curves[o2 + j + 1], w3 = curves[o3 + j + 1];
          const high = (w0 < 0 ? 1 : 0) | (w1 < 0 ? 2 : 0) | (w2 < 0 ? 4 : 0) | (w3 < 0 ? 8 : 0);
          const m = low | (high << 4);
          if (m !== 0 && m !== 255) {
            val[0] = v0; val[1] = v1; val[2] = v2; val[3] = v3;
            val[4] = w0; val[5] = w1; val[6] = w2; val[7] = w3;
            this.cube(m, x0, y0, this.oz + zLo + j * dz);
          }
          v0 = w0; v1 = w1; v2 = w2; v3 = w3;
          low = high;
        }
      }
    }
  }

  /** The polygons of one cell with corner sign mask m (bit c = corner c inside) and low corner (x0, y0, z0). */
  private cube(m: number, x0: number, y0: number, z0: number): void {
    const { cut, val, sx, sy, dz } = this;
    const { edgeFrom, edgeStep } = this;
    for (let bits = MC_EDGES[m], e = 0; bits !== 0; bits >>= 1, e++) {
      if ((bits & 1) === 0) continue;
      const va = val[EDGE_A[e]];
      const f = va / (va - val[EDGE_B[e]]);
      const k = 3 * e;
      cut[k] = x0 + edgeFrom[k] + f * edgeStep[k];
      cut[k + 1] = y0 + edgeFrom[k + 1] + f * edgeStep[k + 1];
      cut[k + 2] = z0 + edgeFrom[k + 2] + f * edgeStep[k + 2];
    }
    let area = 0;
    let volume = 0;
    let k = MC_START[m];
    for (let loops = MC_LOOPS[k++]; loops > 0; loops--) {
      const len = MC_LOOPS[k];
      const i0 = 3 * MC_LOOPS[k + 1];
      const px = cut[i0], py = cut[i0 + 1], pz = cut[i0 + 2];
      // Vector area of the loop, by a fan from its first point. Its length is the area of the polygon when
      // planar (nearly so at this sampling); P0 . n / 6 is the loop's exact divergence-theorem volume term.
      let nx = 0, ny = 0, nz = 0;
      let ux = cut[3 * MC_LOOPS[k + 2]] - px, uy = cut[3 * MC_LOOPS[k + 2] + 1] - py, uz = cut[3 * MC_LOOPS[k + 2] + 2] - pz;
      for (let j = 3; j <= len; j++) {
        const i = 3 * MC_LOOPS[k + j];
        const vx = cut[i] - px, vy = cut[i + 1] - py, vz = cut[i + 2] - pz;
        nx += uy * vz - uz * vy;
        ny += uz * vx - ux * vz;
        nz += ux * vy - uy * vx;
        ux = vx;
        uy = vy;
        uz = vz;
      }
      area += Math.sqrt(nx * nx + ny * ny + nz * nz);
      volume += px * nx + py * ny + pz * nz;
      k += len + 1;
    }
    this.area += 0.5 * area;
    this.volume += volume / 6;
  }
}

function liveBitsCubic(bits: Uint8Array, p: Float32Array, a: Float32Array, b: Float32Array, q: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const va = a[i];
    const vb = b[i];
    const ca = va + (vb - p[i]) * SIXTH;
    const cb = vb - (q[i] - va) * SIXTH;
    bits[i] = (va < 0 || vb < 0 || ca < 0 || cb < 0 ? 1 : 0) | (va >= 0 || vb >= 0 || ca >= 0 || cb >= 0 ? 2 : 0);
  }
}

function liveBitsLinear(bits: Uint8Array, a: Float32Array, b: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) bits[i] = (a[i] < 0 || b[i] < 0 ? 1 : 0) | (a[i] >= 0 || b[i] >= 0 ? 2 : 0);
}

/** Offset in curves of pixel (x, y)'s curve through the span, sampled now if its slot holds another row. */
function curveAt(
  curves: Float64Array,
  curveRow: Int32Array,
  weights: Float64Array,
  pp: Float32Array,
  a: Float32Array,
  b: Float32Array,
  qq: Float32Array,
  w: number,
  n1: number,
  substeps: number,
  x: number,
  y: number,
): number {
  const slot = (y & 1) * w + x;
  const o = slot * n1;
  if (curveRow[slot] === y) return o;
  curveRow[slot] = y;
  const i = y * w + x;
  const va = a[i], vb = b[i], vp = pp[i], vq = qq[i];
  for (let j = 0, k = 0; j < substeps; j++, k += 4) {
    curves[o + j] = weights[k] * vp + weights[k + 1] * va + weights[k + 2] * vb + weights[k + 3] * vq;
  }
  curves[o + substeps] = vb; // exact, so that neighbouring spans meet without cracks
  return o;
}
