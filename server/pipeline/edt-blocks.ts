/**
 * Blockwise EDT with halos: what a block task must read, the distance below which its result equals the
 * whole-volume one, and the transform of one block restricted to the lines that reach its interior.
 */
import type { Vec3 } from "../../precomputed/array.js";
import { runTransform, type DistanceMetric, type EdtArray, type EdtOptions, type PassRanges, type Shape3 } from "./edt-core.js";

export interface BlockRequest {
  volumeShape: Shape3;
  /** The block's first voxel and extent in the volume; the result covers exactly this box. */
  blockOrigin: Vec3;
  blockShape: Vec3;
  /** Extra voxels read on each side (per axis, or one number for all); clipped at the volume edge. */
  haloVoxels: number | Vec3;
}

export interface HaloBox {
  origin: Vec3;
  shape: Vec3;
  /** Where the block starts inside the halo box. */
  interiorOffset: Vec3;
}

/** The box a block task must read: the block plus its halo, clipped to the volume. */
export function haloBox(req: BlockRequest): HaloBox {
  const halo = haloPerAxis(req.haloVoxels);
  const origin: Vec3 = [0, 0, 0];
  const shape: Vec3 = [0, 0, 0];
  const interiorOffset: Vec3 = [0, 0, 0];
  for (let a = 0; a < 3; a++) {
    const o = req.blockOrigin[a];
    const n = req.blockShape[a];
    const N = req.volumeShape[a];
    if (!Number.isInteger(o) || !Number.isInteger(n) || o < 0 || n < 1 || o + n > N) {
      throw new RangeError(`block [${req.blockOrigin}] + [${req.blockShape}] does not fit volume [${req.volumeShape}]`);
    }
    const lo = Math.max(0, o - halo[a]);
    const hi = Math.min(N, o + n + halo[a]);
    origin[a] = lo;
    shape[a] = hi - lo;
    interiorOffset[a] = o - lo;
  }
  return { origin, shape, interiorOffset };
}

/**
 * Distances below which a block's result is guaranteed to equal the whole-volume result. If the true nearest
 * target lies outside the halo box along axis a (on a side not clipped by the volume edge), it is at least
 * h_a + 1 steps away along a: centre distance >= (h_a + 1) s_a, face gap >= h_a s_a. So every result strictly
 * below min over such sides is exact; in particular every distance <= halo width in nm along the thinnest
 * axis (centre metric). Results above it are upper bounds: the block only ever sees a subset of targets.
 */
export function exactBelowNm(req: BlockRequest, spacingNm: Vec3, metric: DistanceMetric): number {
  const box = haloBox(req);
  let limit = Infinity;
  for (let a = 0; a < 3; a++) {
    const loClipped = box.origin[a] === 0;
    const hiClipped = box.origin[a] + box.shape[a] === req.volumeShape[a];
    const sides = [loClipped ? Infinity : box.interiorOffset[a], hiClipped ? Infinity : box.shape[a] - box.interiorOffset[a] - req.blockShape[a]];
    for (const h of sides) {
      if (h === Infinity) continue;
      limit = Math.min(limit, (metric === "face" ? h : h + 1) * spacingNm[a]);
    }
  }
  return limit;
}

export interface BlockEdtOptions extends EdtOptions {
  /** "background": distance to mask == 0 (edtSquared); "feature": distance to mask != 0 (edtToFeature). */
  target: "background" | "feature";
  metric?: DistanceMetric;
}

export interface BlockEdt {
  /** Squared distances (nm^2) for the block only, shape blockShape. */
  data: EdtArray;
  shape: Vec3;
  /** Results strictly below this distance (nm) are exact; see exactBelowNm. */
  exactBelowNm: number;
}

/**
 * EDT of one block from its halo box (haloMask holds haloBox(req), x fastest). Only lines that reach the
 * block are transformed in the y and z passes, so the halo costs one x pass plus a thin y pass.
 */
export function edtBlock(haloMask: Uint8Array, req: BlockRequest, spacingNm: Vec3, opts: BlockEdtOptions): BlockEdt {
  const box = haloBox(req);
  const metric = opts.metric ?? "centre";
  const face = metric === "face";
  if (face && opts.target === "background") throw new RangeError("the face metric is defined for target 'feature' only");
  const ranges: PassRanges = {
    yPassX: [box.interiorOffset[0], box.interiorOffset[0] + req.blockShape[0]],
    zPassX: [box.interiorOffset[0], box.interiorOffset[0] + req.blockShape[0]],
    zPassY: [box.interiorOffset[1], box.interiorOffset[1] + req.blockShape[1]],
  };
  const { field } = runTransform(haloMask, box.shape, spacingNm, opts.target === "feature", face, opts, null, ranges);
  const [bx, by, bz] = req.blockShape;
  const [hx, hy] = box.shape;
  const [ox, oy, oz] = box.interiorOffset;
  const data = field instanceof Float32Array ? new Float32Array(bx * by * bz) : new Float64Array(bx * by * bz);
  for (let z = 0; z < bz; z++) {
    for (let y = 0; y < by; y++) {
      const src = ((z + oz) * hy + (y + oy)) * hx + ox;
      data.set(field.subarray(src, src + bx), (z * by + y) * bx);
    }
  }
  return { data, shape: [bx, by, bz], exactBelowNm: exactBelowNm(req, spacingNm, metric) };
}

/** Copies box (origin, shape) out of a volume, x fastest, into an array of the same type (halo boxes, chunks). */
export function cropVolume<T extends Uint8Array | Uint16Array | Uint32Array>(data: T, volumeShape: Shape3, origin: Vec3, shape: Vec3): T {
  const [vx, vy] = volumeShape;
  const [cx, cy, cz] = shape;
  const out = new (data.constructor as new (n: number) => T)(cx * cy * cz);
  for (let z = 0; z < cz; z++) {
    for (let y = 0; y < cy; y++) {
      const src = ((z + origin[2]) * vy + (y + origin[1])) * vx + origin[0];
      out.set(data.subarray(src, src + cx), (z * cy + y) * cx);
    }
  }
  return out;
}

function haloPerAxis(h: number | Vec3): Vec3 {
  const v: Vec3 = typeof h === "number" ? [h, h, h] : [h[0], h[1], h[2]];
  if (v.some((n) => !Number.isInteger(n) || n < 0)) throw new RangeError(`halo must be non-negative integers, got ${String(h)}`);
  return v;
}
