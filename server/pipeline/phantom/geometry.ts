/**
 * Analytic geometry of the phantom, in nm. Every solid is "all points within r of a centreline"
 * (point -> sphere, segment -> capsule, in-plane circular arc -> bent tube with round caps), or an
 * axis-aligned box dilated by r (ER sheets with r = 0, and axis-parallel ER tubes as degenerate boxes).
 * Those two families have exact inside tests and cheap distances, which is all rasterising needs.
 */
import type { Vec3 } from "../../../precomputed/array.js";

export type { Vec3 };

export interface Box {
  lo: Vec3;
  hi: Vec3;
}

/** A circular arc in the plane z = c[2], from angle theta0 to theta1 (theta1 > theta0, span < 2 pi). */
export interface Arc {
  kind: "arc";
  c: Vec3;
  R: number;
  theta0: number;
  theta1: number;
}

export type Centreline = { kind: "point"; c: Vec3 } | { kind: "segment"; a: Vec3; b: Vec3 } | Arc;

export const sub = (a: Vec3, b: Vec3): Vec3 => [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
export const add = (a: Vec3, b: Vec3): Vec3 => [a[0] + b[0], a[1] + b[1], a[2] + b[2]];
export const scale = (a: Vec3, s: number): Vec3 => [a[0] * s, a[1] * s, a[2] * s];
export const dot = (a: Vec3, b: Vec3): number => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
export const norm = (a: Vec3): number => Math.hypot(a[0], a[1], a[2]);
export const dist = (a: Vec3, b: Vec3): number => Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);

export function arcPoint(arc: Arc, theta: number): Vec3 {
  return [arc.c[0] + arc.R * Math.cos(theta), arc.c[1] + arc.R * Math.sin(theta), arc.c[2]];
}

export function distSqPointSegment(px: number, py: number, pz: number, a: Vec3, b: Vec3): number {
  const ux = b[0] - a[0];
  const uy = b[1] - a[1];
  const uz = b[2] - a[2];
  const wx = px - a[0];
  const wy = py - a[1];
  const wz = pz - a[2];
  const uu = ux * ux + uy * uy + uz * uz;
  let t = uu > 0 ? (wx * ux + wy * uy + wz * uz) / uu : 0;
  t = t < 0 ? 0 : t > 1 ? 1 : t;
  const dx = wx - t * ux;
  const dy = wy - t * uy;
  const dz = wz - t * uz;
  return dx * dx + dy * dy + dz * dz;
}

const TWO_PI = 2 * Math.PI;

/** Exact: inside the angular range the nearest arc point shares the query's polar angle. */
export function distSqPointArc(px: number, py: number, pz: number, arc: Arc): number {
  const dx = px - arc.c[0];
  const dy = py - arc.c[1];
  const dz = pz - arc.c[2];
  let t = Math.atan2(dy, dx) - arc.theta0;
  t -= TWO_PI * Math.floor(t / TWO_PI);
  if (t <= arc.theta1 - arc.theta0) {
    const rho = Math.hypot(dx, dy) - arc.R;
    return rho * rho + dz * dz;
  }
  const e0 = arcPoint(arc, arc.theta0);
  const e1 = arcPoint(arc, arc.theta1);
  const d0 = (px - e0[0]) ** 2 + (py - e0[1]) ** 2 + dz * dz;
  const d1 = (px - e1[0]) ** 2 + (py - e1[1]) ** 2 + dz * dz;
  return Math.min(d0, d1);
}

export function distSqPointCentreline(px: number, py: number, pz: number, prim: Centreline): number {
  switch (prim.kind) {
    case "point":
      return (px - prim.c[0]) ** 2 + (py - prim.c[1]) ** 2 + (pz - prim.c[2]) ** 2;
    case "segment":
      return distSqPointSegment(px, py, pz, prim.a, prim.b);
    case "arc":
      return distSqPointArc(px, py, pz, prim);
  }
}

export function distSqPointBox(px: number, py: number, pz: number, box: Box): number {
  const dx = Math.max(box.lo[0] - px, 0, px - box.hi[0]);
  const dy = Math.max(box.lo[1] - py, 0, py - box.hi[1]);
  const dz = Math.max(box.lo[2] - pz, 0, pz - box.hi[2]);
  return dx * dx + dy * dy + dz * dz;
}

/** Exact Euclidean distance between two axis-aligned boxes (0 when they meet). */
export function distBoxBox(a: Box, b: Box): number {
  let s = 0;
  for (let i = 0; i < 3; i++) {
    const g = Math.max((a.lo[i] as number) - (b.hi[i] as number), (b.lo[i] as number) - (a.hi[i] as number), 0);
    s += g * g;
  }
  return Math.sqrt(s);
}

/** Axis-aligned bounds of a centreline (not yet dilated by the radius). */
export function centrelineBounds(prim: Centreline): Box {
  switch (prim.kind) {
    case "point":
      return { lo: [...prim.c], hi: [...prim.c] };
    case "segment":
      return {
        lo: [Math.min(prim.a[0], prim.b[0]), Math.min(prim.a[1], prim.b[1]), Math.min(prim.a[2], prim.b[2])],
        hi: [Math.max(prim.a[0], prim.b[0]), Math.max(prim.a[1], prim.b[1]), Math.max(prim.a[2], prim.b[2])],
      };
    case "arc": {
      const pts = [arcPoint(prim, prim.theta0), arcPoint(prim, prim.theta1)];
      for (let k = Math.ceil(prim.theta0 / (Math.PI / 2)); k * (Math.PI / 2) <= prim.theta1; k++) pts.push(arcPoint(prim, (k * Math.PI) / 2));
      return {
        lo: [Math.min(...pts.map((p) => p[0])), Math.min(...pts.map((p) => p[1])), prim.c[2]],
        hi: [Math.max(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[1])), prim.c[2]],
      };
    }
  }
}

export function unionBox(boxes: readonly Box[]): Box {
  const lo: Vec3 = [Infinity, Infinity, Infinity];
  const hi: Vec3 = [-Infinity, -Infinity, -Infinity];
  for (const b of boxes) {
    for (let i = 0; i < 3; i++) {
      lo[i] = Math.min(lo[i] as number, b.lo[i] as number);
      hi[i] = Math.max(hi[i] as number, b.hi[i] as number);
    }
  }
  return { lo, hi };
}

export function dilate(box: Box, r: number): Box {
  return { lo: [box.lo[0] - r, box.lo[1] - r, box.lo[2] - r], hi: [box.hi[0] + r, box.hi[1] + r, box.hi[2] + r] };
}

export function centrelineLength(prim: Centreline): number {
  switch (prim.kind) {
    case "point":
      return 0;
    case "segment":
      return dist(prim.a, prim.b);
    case "arc":
      return prim.R * (prim.theta1 - prim.theta0);
  }
}

/** Points along the centreline no further than `spacing` apart (every centreline point is within spacing/2 of one). */
export function sampleCentreline(prim: Centreline, spacing: number): Vec3[] {
  const len = centrelineLength(prim);
  if (prim.kind === "point" || len === 0) return [prim.kind === "point" ? prim.c : prim.kind === "segment" ? prim.a : arcPoint(prim, prim.theta0)];
  const n = Math.max(1, Math.ceil(len / spacing));
  const out: Vec3[] = [];
  for (let i = 0; i <= n; i++) {
    const t = i / n;
    out.push(prim.kind === "segment" ? add(prim.a, scale(sub(prim.b, prim.a), t)) : arcPoint(prim, prim.theta0 + t * (prim.theta1 - prim.theta0)));
  }
  return out;
}

/** Centre of the voxel containing coordinate x along an axis of voxel size v. */
export const snapToCentre = (x: number, v: number): number => (Math.floor(x / v) + 0.5) * v;
/** Nearest voxel face to x along an axis of voxel size v. */
export const snapToFace = (x: number, v: number): number => Math.round(x / v) * v;

export function isOnGrid(x: number, v: number, offset: number): boolean {
  const k = (x - offset) / v;
  return Math.abs(k - Math.round(k)) < 1e-6;
}
