/**
 * Placing the phantom's organelles, each together with its designed ER contact partner.
 *
 * Gap design: every centreline point (sphere centre, capsule end, arc centre, branch junction) sits on a
 * voxel centre and every radius is (m + 1/2) voxels, so an organelle's extreme point along +-x or +-y
 * lies on a voxel face. The partner (a vertical ER sheet or z-parallel tube) starts exactly `gap` beyond
 * that face, on the far side of it. The organelle lies entirely on one side of the plane through its
 * extreme point and the partner entirely beyond plane + gap, so the analytic surface-to-surface distance
 * is the gap, and so is the voxel face-to-face distance (the extreme row of voxels reaches the face).
 * Every other ER element stays at least gap + erClearance away (more than the 2 x 22.8 nm by which
 * voxelisation can shrink a distance), so the partner alone sets min_dist_er.
 */
import type { Rng } from "../random.js";
import { DEFAULT_PHANTOM_CONFIG, REFERENCE_EXTENT_NM, admissibleRadii, gapChoices, type PhantomConfig, type Range } from "./config.js";
import type { Box, Centreline, Vec3 } from "./geometry.js";
import { arcPoint, distBoxBox, distSqPointBox, dilate, isOnGrid, snapToCentre } from "./geometry.js";
import type { ErElement, Organelle, OrganelleClass, ShapeKind } from "./shapes.js";
import { organelleBounds, organelleSamples } from "./shapes.js";

export interface Layout {
  cfg: PhantomConfig;
  rng: Rng;
  voxel: Vec3;
  extent: Vec3;
  organelles: Organelle[];
  bounds: Map<number, Box>;
  samples: Map<number, Vec3[]>;
  er: ErElement[];
  nextOrganelleId: number;
  nextErId: number;
  /** Volume relative to the reference 512 x 512 x 64 stack: scales the counts. */
  volumeScale: number;
}

export function newLayout(rng: Rng, voxel: Vec3, size: Vec3, cfg: PhantomConfig = DEFAULT_PHANTOM_CONFIG): Layout {
  const extent: Vec3 = [size[0] * voxel[0], size[1] * voxel[1], size[2] * voxel[2]];
  const volumeScale = (extent[0] * extent[1] * extent[2]) / (REFERENCE_EXTENT_NM[0] * REFERENCE_EXTENT_NM[1] * REFERENCE_EXTENT_NM[2]);
  return { cfg, rng, voxel, extent, organelles: [], bounds: new Map(), samples: new Map(), er: [], nextOrganelleId: 1, nextErId: 1, volumeScale };
}

/** Stochastic rounding of a count scaled to the volume: the default volume gets the configured range. */
export function scaledCount(L: Layout, range: Range): number {
  const x = L.rng.int(range[0], range[1]) * L.volumeScale;
  return Math.floor(x + L.rng.next());
}

export const minInPlaneExtent = (L: Layout) => Math.min(L.extent[0], L.extent[1]);

/** Conservative lower bound of the distance between an organelle and an ER element. */
export function lowerBoundOrgEr(L: Layout, o: Organelle, e: ErElement): number {
  const b = L.bounds.get(o.id) ?? organelleBounds(o);
  const coarse = distBoxBox(b, dilate(e.box, e.r));
  if (coarse > L.cfg.maxGap + L.cfg.erClearance + L.cfg.erSeparation) return coarse;
  let best = Infinity;
  for (const p of L.samples.get(o.id) ?? organelleSamples(o, L.cfg.sampleSpacing)) best = Math.min(best, distSqPointBox(p[0], p[1], p[2], e.box));
  return Math.sqrt(best) - o.r - e.r - L.cfg.sampleSpacing / 2;
}

/** Whether two organelles may be closer than `need` (conservative: centreline samples, early exit). */
export function organellesTooClose(L: Layout, a: Organelle, aSamples: Vec3[], aBounds: Box, b: Organelle, need: number): boolean {
  const bBounds = L.bounds.get(b.id) ?? organelleBounds(b);
  if (distBoxBox(aBounds, bBounds) >= need) return false;
  const bSamples = L.samples.get(b.id) ?? [];
  const reach = need + a.r + b.r + L.cfg.sampleSpacing;
  const reach2 = reach * reach;
  // Only a's samples near b's bounds can be close to b.
  const zone = dilate(bBounds, reach);
  for (const p of aSamples) {
    if (distSqPointBox(p[0], p[1], p[2], zone) > 0) continue;
    for (const q of bSamples) if ((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2 + (p[2] - q[2]) ** 2 < reach2) return true;
  }
  return false;
}

export const erDistance = (a: ErElement, b: ErElement): number => distBoxBox(a.box, b.box) - a.r - b.r;

/**
 * The ER clearance an organelle needs from every ER element except its partner. An across-section design
 * (partner along z) also keeps every other element clear of the threshold, so that no ER comes within it
 * inside the organelle's own sections.
 */
export function requiredClearance(L: Layout, o: Organelle): number {
  const gap = o.contact?.gapNm ?? 0;
  return o.contact?.axis === 2 ? acrossClearance(L, gap) : gap + L.cfg.erClearance;
}

/**
 * Clearance from every ER element but the partner for an across-section design with z gap `gap`:
 * max(gap, threshold) + acrossClearance. Both voxel centres of a voxel pair lie inside their shapes, so
 * their distance is at least the analytic one, d; the face-to-face gap drops the z step of adjacent sections
 * (45 nm) and at most 5 sqrt(2) nm in-plane, so it is >= sqrt(d^2 - 45^2) - 7.1 nm (adjacent sections),
 * >= d - 7.1 nm (same section), >= 45 nm (further). With d >= 60 nm that is > 30 nm: no other ER within the
 * threshold anywhere; with d >= 75 nm > 45 nm, the negative controls' partner alone sets min_dist_er.
 */
export function acrossClearance(L: Layout, gap: number): number {
  return Math.max(gap, L.cfg.contactThreshold) + L.cfg.acrossClearance;
}

export function erElementFits(L: Layout, e: ErElement, ignoreOrganelle?: number, ignoreEr: ReadonlySet<number> = new Set()): boolean {
  for (const o of L.organelles) {
    if (o.id === ignoreOrganelle) continue;
    if (lowerBoundOrgEr(L, o, e) < requiredClearance(L, o)) return false;
  }
  for (const other of L.er) {
    if (ignoreEr.has(other.id)) continue;
    if (erDistance(e, other) < L.cfg.erSeparation) return false;
  }
  return true;
}

const centreOf = (x: number, v: number) => snapToCentre(x, v);

export function snapPoint(L: Layout, p: Vec3): Vec3 {
  return [centreOf(p[0], L.voxel[0]), centreOf(p[1], L.voxel[1]), centreOf(p[2], L.voxel[2])];
}

export function randomPoint(L: Layout, margin: Vec3): Vec3 {
  const p: Vec3 = [0, 0, 0];
  for (let i = 0; i < 3; i++) {
    const lo = margin[i] as number;
    const hi = (L.extent[i] as number) - lo;
    p[i] = hi > lo ? L.rng.uniform(lo, hi) : (L.extent[i] as number) / 2;
  }
  return snapPoint(L, p);
}

export interface Candidate {
  cls: OrganelleClass;
  shape: ShapeKind;
  r: number;
  prims: Centreline[];
  seedPoint: Vec3;
}

/** Extreme surface point along (axis, sign), or undefined if it is not grid-aligned (arc end caps). */
export function extremePoint(L: Layout, c: Candidate, axis: 0 | 1, sign: 1 | -1): Vec3 | undefined {
  let best: Vec3 | undefined;
  let bestV = -Infinity;
  const consider = (centre: Vec3, aligned: boolean) => {
    const v = sign * (centre[axis] as number) + c.r;
    if (v > bestV + 1e-9 || (aligned && Math.abs(v - bestV) <= 1e-9 && best === undefined)) {
      bestV = v;
      best = aligned ? centre : undefined;
    }
  };
  for (const p of c.prims) {
    if (p.kind === "point") consider(p.c, true);
    else if (p.kind === "segment") {
      consider(p.a, true);
      consider(p.b, true);
    } else {
      consider(arcPoint(p, p.theta0), false);
      consider(arcPoint(p, p.theta1), false);
      const theta = axis === 0 ? (sign > 0 ? 0 : Math.PI) : sign > 0 ? Math.PI / 2 : -Math.PI / 2;
      let t = theta - p.theta0;
      t -= 2 * Math.PI * Math.floor(t / (2 * Math.PI));
      if (t <= p.theta1 - p.theta0) consider(arcPoint(p, theta), true);
    }
  }
  if (!best) return undefined;
  const e: Vec3 = [...(best as Vec3)];
  e[axis] = (e[axis] as number) + sign * c.r;
  const [vx, vy, vz] = L.voxel;
  const v = [vx, vy];
  const other = axis === 0 ? 1 : 0;
  const ok = isOnGrid(e[axis] as number, v[axis] as number, 0) && isOnGrid(e[other] as number, v[other] as number, (v[other] as number) / 2) && isOnGrid(e[2], vz, vz / 2);
  return ok ? e : undefined;
}

interface PartnerPlan {
  axis: 0 | 1;
  sign: 1 | -1;
  gap: number;
  extreme: Vec3;
}

/** A vertical sheet or z-parallel tube starting exactly `gap` beyond the extreme point. */
function makePartner(L: Layout, plan: PartnerPlan, fullZ: boolean, tube: boolean, tubeRadii: number[]): ErElement | undefined {
  const { axis, sign, gap, extreme } = plan;
  const [vx, vy, vz] = L.voxel;
  const vIn = axis === 0 ? vx : vy;
  const other = axis === 0 ? 1 : 0;
  const vOther = axis === 0 ? vy : vx;
  const face = (extreme[axis] as number) + sign * gap;
  const ez = L.extent[2];
  const zSections = () => L.rng.int(2, 8);
  const lo: Vec3 = [0, 0, 0];
  const hi: Vec3 = [0, 0, 0];
  let r = 0;
  if (tube) {
    r = L.rng.pick(tubeRadii);
    const a = face + sign * r;
    lo[axis] = hi[axis] = a;
    lo[other] = hi[other] = extreme[other] as number;
    lo[2] = fullZ ? 0 : Math.max(vz / 2, extreme[2] - zSections() * vz);
    hi[2] = fullZ ? ez : Math.min(ez - vz / 2, extreme[2] + zSections() * vz);
    if (a - r < 0 || a + r > (L.extent[axis] as number)) return undefined;
  } else {
    const t = Math.round(L.rng.uniform(L.cfg.erSheetThickness[0], L.cfg.erSheetThickness[1]) / vIn) * vIn;
    lo[axis] = Math.min(face, face + sign * t);
    hi[axis] = Math.max(face, face + sign * t);
    const half = () => (Math.floor(L.rng.uniform(L.cfg.erSheetHalfLength[0], L.cfg.erSheetHalfLength[1]) / vOther) + 0.5) * vOther;
    lo[other] = Math.max(0, (extreme[other] as number) - half());
    hi[other] = Math.min(L.extent[other] as number, (extreme[other] as number) + half());
    lo[2] = fullZ ? 0 : Math.max(0, extreme[2] - (zSections() + 0.5) * vz);
    hi[2] = fullZ ? ez : Math.min(ez, extreme[2] + (zSections() + 0.5) * vz);
    if ((lo[axis] as number) < 0 || (hi[axis] as number) > (L.extent[axis] as number)) return undefined;
  }
  return { id: -1, kind: tube ? "tube" : "sheet", box: { lo, hi }, r };
}

/** Extends a partner section by section up and down while it still fits: taller ER connects more easily. */
function growVertically(L: Layout, e: ErElement, ownerId: number): void {
  const vz = L.voxel[2];
  const floor = e.r > 0 ? vz / 2 : 0;
  const ceiling = e.r > 0 ? L.extent[2] - vz / 2 : L.extent[2];
  for (const end of ["lo", "hi"] as const) {
    for (;;) {
      const z = e.box[end][2] + (end === "lo" ? -vz : vz);
      if (z < floor - 1e-9 || z > ceiling + 1e-9) break;
      const before = e.box[end][2];
      e.box[end][2] = z;
      if (!erElementFits(L, e, ownerId)) {
        e.box[end][2] = before;
        break;
      }
    }
  }
}

function insideMargins(L: Layout, b: Box, skipAxis?: number): boolean {
  const m: Vec3 = [L.cfg.boundaryMargin, L.cfg.boundaryMargin, L.cfg.boundaryMarginSections * L.voxel[2]];
  for (let i = 0; i < 3; i++) {
    if (i === skipAxis) continue;
    if ((b.lo[i] as number) < (m[i] as number) || (b.hi[i] as number) > (L.extent[i] as number) - (m[i] as number)) return false;
  }
  return true;
}

export interface PlaceOptions {
  inContact: boolean;
  /** Allowed partner directions; default all four in-plane ones (only +-x if x and y voxels differ). */
  directions?: [0 | 1, 1 | -1][];
  /** The nucleus may cross the volume boundary along this axis. */
  boundaryAxis?: number;
  /** Bounds to use instead of the centreline's (the nucleus: only its part inside the volume). */
  bounds?: Box;
  tubeRadii: number[];
}

/** Tries to add the candidate with a partner; returns the new organelle or undefined if it does not fit. */
export function tryPlace(L: Layout, c: Candidate, opts: PlaceOptions): Organelle | undefined {
  const o: Organelle = { id: L.nextOrganelleId, cls: c.cls, shape: c.shape, r: c.r, prims: c.prims, seedPoint: c.seedPoint };
  const bounds = opts.bounds ?? organelleBounds(o);
  if (!insideMargins(L, bounds, opts.boundaryAxis)) return undefined;
  const samples = organelleSamples(o, L.cfg.sampleSpacing);
  for (const other of L.organelles) {
    if (organellesTooClose(L, o, samples, bounds, other, L.cfg.organelleSeparation)) return undefined;
  }
  const { contact, noContact } = gapChoices(L.cfg, L.voxel[0]);
  const gap = L.rng.pick(opts.inContact ? contact : noContact);
  L.bounds.set(o.id, bounds);
  L.samples.set(o.id, samples);
  const fail = () => {
    L.bounds.delete(o.id);
    L.samples.delete(o.id);
    return undefined;
  };
  for (const e of L.er) if (lowerBoundOrgEr(L, o, e) < gap + L.cfg.erClearance) return fail();
  const sameXY = L.voxel[0] === L.voxel[1];
  const dirs = L.rng.shuffle(
    (opts.directions ?? [[0, 1], [0, -1], [1, 1], [1, -1]]).filter(([axis]) => axis === 0 || sameXY) as [0 | 1, 1 | -1][],
  );
  for (const [axis, sign] of dirs) {
    const extreme = extremePoint(L, c, axis, sign);
    if (!extreme) continue;
    for (const fullZ of [true, false, false]) {
      const partner = makePartner(L, { axis, sign, gap, extreme }, fullZ, L.rng.bool(0.45), opts.tubeRadii);
      if (!partner || !erElementFits(L, partner, o.id)) continue;
      if (!fullZ) growVertically(L, partner, o.id);
      partner.id = L.nextErId++;
      partner.ownerId = o.id;
      o.contact = { erElementId: partner.id, axis, sign, gapNm: gap, extremePoint: extreme };
      L.nextOrganelleId++;
      L.organelles.push(o);
      L.er.push(partner);
      return o;
    }
  }
  return fail();
}

/** The nucleus: a large sphere cut by one in-plane face of the volume, its partner on the inward side. */
export function placeNucleus(L: Layout, inContact: boolean, tubeRadii: number[]): Organelle | undefined {
  const v = L.voxel[0];
  for (let attempt = 0; attempt < 20; attempt++) {
    const axis: 0 | 1 = L.voxel[0] === L.voxel[1] ? (L.rng.int(0, 1) as 0 | 1) : 0;
    const low = L.rng.bool();
    const other = axis === 0 ? 1 : 0;
    const h = Math.round((L.cfg.nucleusDepthFraction * (L.extent[axis] as number)) / v) * v;
    const limit = Math.min((L.extent[other] as number) / 2, L.extent[2] / 2) - 200;
    const baseR = L.rng.uniform(0.7, 0.9) * limit;
    if (baseR < 300 || h < 100) return undefined;
    const R = (Math.round(((baseR * baseR + h * h) / (2 * h)) / v - 0.5) + 0.5) * v;
    const c: Vec3 = [0, 0, 0];
    c[axis] = low ? h - R : (L.extent[axis] as number) + R - h;
    c[other] = snapToCentre((L.extent[other] as number) / 2 + L.rng.uniform(-0.1, 0.1) * (L.extent[other] as number), L.voxel[other] as number);
    c[2] = snapToCentre(L.extent[2] / 2 + L.rng.uniform(-0.05, 0.05) * L.extent[2], L.voxel[2]);
    const seed: Vec3 = [...c];
    seed[axis] = snapToCentre(low ? h / 2 : (L.extent[axis] as number) - h / 2, L.voxel[axis] as number);
    const cand: Candidate = { cls: "nucleus", shape: "sphere_cap", r: R, prims: [{ kind: "point", c }], seedPoint: seed };
    const cut = Math.sqrt(2 * R * h - h * h);
    const capBox: Box = { lo: [...c], hi: [...c] };
    capBox.lo[other] = (c[other] as number) - cut;
    capBox.hi[other] = (c[other] as number) + cut;
    capBox.lo[2] = c[2] - cut;
    capBox.hi[2] = c[2] + cut;
    capBox.lo[axis] = low ? 0 : (L.extent[axis] as number) - h;
    capBox.hi[axis] = low ? h : (L.extent[axis] as number);
    if (!insideMargins(L, capBox, axis)) continue;
    const placed = tryPlace(L, cand, { inContact, directions: [[axis, low ? 1 : -1]], boundaryAxis: axis, bounds: capBox, tubeRadii });
    if (placed) return placed;
  }
  return undefined;
}

export function radiiFor(L: Layout, range: Range, kind: "tube" | "ball"): number[] {
  const fit = Math.min(L.extent[0], L.extent[1], L.extent[2]) / 4;
  const clamped: Range = [range[0], Math.min(range[1], fit)];
  return clamped[1] < clamped[0] ? [] : admissibleRadii(clamped, L.voxel, kind, L.cfg.maxRepresentationError);
}
