/**
 * Candidate organelles, one factory per form. Every centreline point is put on a voxel centre (see
 * layout.ts for why), then the whole shape is moved by whole voxels to a random position inside the
 * boundary margins.
 */
import type { Centreline, Vec3 } from "./geometry.js";
import { arcPoint, dist } from "./geometry.js";
import { minInPlaneExtent, randomPoint, snapPoint, type Candidate, type Layout } from "./layout.js";
import type { OrganelleClass } from "./shapes.js";
import { organelleBounds } from "./shapes.js";

function translate(p: Vec3, t: Vec3): Vec3 {
  return [p[0] + t[0], p[1] + t[1], p[2] + t[2]];
}

/**
 * Moves a candidate by whole voxels to a uniformly drawn position where its bounds keep the boundary
 * margins; whole-voxel moves keep every centreline point on a voxel centre.
 */
export function fitInside(L: Layout, c: Candidate): Candidate | undefined {
  const b = organelleBounds({ id: 0, ...c });
  const m: Vec3 = [L.cfg.boundaryMargin, L.cfg.boundaryMargin, L.cfg.boundaryMarginSections * L.voxel[2]];
  const t: Vec3 = [0, 0, 0];
  for (let i = 0; i < 3; i++) {
    const v = L.voxel[i] as number;
    const k0 = Math.ceil(((m[i] as number) - (b.lo[i] as number)) / v - 1e-9);
    const k1 = Math.floor(((L.extent[i] as number) - (m[i] as number) - (b.hi[i] as number)) / v + 1e-9);
    if (k1 < k0) return undefined;
    t[i] = L.rng.int(k0, k1) * v;
  }
  const prims: Centreline[] = c.prims.map((p) =>
    p.kind === "point" ? { kind: "point", c: translate(p.c, t) } : p.kind === "segment" ? { kind: "segment", a: translate(p.a, t), b: translate(p.b, t) } : { ...p, c: translate(p.c, t) },
  );
  return { ...c, prims, seedPoint: translate(c.seedPoint, t) };
}

/** Candidate factories, one per organelle form. */
export function sphereCandidate(L: Layout, cls: OrganelleClass, radii: number[]): Candidate | undefined {
  if (radii.length === 0) return undefined;
  const r = L.rng.pick(radii);
  const c = randomPoint(L, [r + L.cfg.boundaryMargin, r + L.cfg.boundaryMargin, r + L.cfg.boundaryMarginSections * L.voxel[2]]);
  return fitInside(L, { cls, shape: "sphere", r, prims: [{ kind: "point", c }], seedPoint: c });
}

export function straightMitoCandidate(L: Layout, radii: number[]): Candidate | undefined {
  if (radii.length === 0) return undefined;
  const r = L.rng.pick(radii);
  const len = L.rng.uniform(L.cfg.straightMitoLength[0], Math.min(L.cfg.straightMitoLength[1], 0.6 * minInPlaneExtent(L)));
  const roll = L.rng.next();
  const elevation = ((roll < 0.65 ? L.rng.uniform(0, 20) : roll < 0.9 ? L.rng.uniform(20, 60) : L.rng.uniform(60, 90)) * Math.PI) / 180;
  const az = L.rng.uniform(0, 2 * Math.PI);
  const u: Vec3 = [Math.cos(elevation) * Math.cos(az), Math.cos(elevation) * Math.sin(az), Math.sin(elevation) * (L.rng.bool() ? 1 : -1)];
  const c = randomPoint(L, [r, r, r]);
  const a = snapPoint(L, [c[0] - (u[0] * len) / 2, c[1] - (u[1] * len) / 2, c[2] - (u[2] * len) / 2]);
  const b = snapPoint(L, [c[0] + (u[0] * len) / 2, c[1] + (u[1] * len) / 2, c[2] + (u[2] * len) / 2]);
  if (dist(a, b) < 2 * r) return undefined;
  return fitInside(L, { cls: "mito", shape: "capsule", r, prims: [{ kind: "segment", a, b }], seedPoint: a });
}

export function curvedMitoCandidate(L: Layout, radii: number[]): Candidate | undefined {
  if (radii.length === 0) return undefined;
  const r = L.rng.pick(radii);
  const v = L.voxel[0];
  const rMax = Math.min(L.cfg.arcRadius[1], 0.3 * minInPlaneExtent(L));
  const rMin = Math.max(L.cfg.arcRadius[0], 2.5 * r);
  if (rMax < rMin) return undefined;
  const R = Math.round(L.rng.uniform(rMin, rMax) / v) * v;
  const span = (L.rng.uniform(L.cfg.arcSpanDeg[0], L.cfg.arcSpanDeg[1]) * Math.PI) / 180;
  if (2 * R * Math.sin(span / 2) < 2 * r + 60) return undefined;
  // The arc bulges over one axis direction, so its extreme point there is grid-aligned.
  const towards = (L.rng.int(0, 3) * Math.PI) / 2;
  const slack = span / 2 - (10 * Math.PI) / 180;
  const mid = towards + L.rng.uniform(-slack, slack);
  const c = randomPoint(L, [0, 0, r]);
  const arc = { kind: "arc" as const, c, R, theta0: mid - span / 2, theta1: mid + span / 2 };
  return fitInside(L, { cls: "mito", shape: "arc_tube", r, prims: [arc], seedPoint: snapPoint(L, arcPoint(arc, towards)) });
}

export function branchedMitoCandidate(L: Layout, radii: number[]): Candidate | undefined {
  if (radii.length === 0) return undefined;
  const r = L.rng.pick(radii);
  const j = randomPoint(L, [r, r, r]);
  const base = L.rng.uniform(0, 2 * Math.PI);
  const deg = Math.PI / 180;
  const y = L.rng.bool();
  const angles = y
    ? [0, 120, 240].map((a) => base + (a + L.rng.uniform(-15, 15)) * deg)
    : [base, base + Math.PI, base + (90 + L.rng.uniform(-10, 10)) * deg];
  const minArm = Math.max(L.cfg.armLength[0], 2.5 * r);
  const maxArm = Math.min(L.cfg.armLength[1], 0.3 * minInPlaneExtent(L));
  if (maxArm < minArm) return undefined;
  const prims: Centreline[] = angles.map((a) => {
    const len = L.rng.uniform(minArm, maxArm);
    const dz = L.rng.pick([-1, 0, 0, 1]) * L.voxel[2];
    return { kind: "segment" as const, a: j, b: snapPoint(L, [j[0] + len * Math.cos(a), j[1] + len * Math.sin(a), j[2] + dz]) };
  });
  if (prims.some((p) => p.kind === "segment" && dist(p.a, p.b) < 2.2 * r)) return undefined;
  return fitInside(L, { cls: "mito", shape: "branched", r, prims, seedPoint: j });
}

