/**
 * The phantom's organelles and ER elements, and their analytic measures (closed forms where they exist,
 * fine numerical integration for branched unions; never counted from the voxel grid).
 */
import type { Box, Centreline, Vec3 } from "./geometry.js";
import { arcPoint, centrelineBounds, dilate, dist, sampleCentreline, unionBox } from "./geometry.js";
import { capsuleUnionSurface, integrateCapsuleUnion, type Segment } from "./integrate.js";

export const CLASS_CODES = { background: 0, er: 1, mito: 2, ld: 3, lyso: 4, perox: 5, nucleus: 6 } as const;
export type ClassName = Exclude<keyof typeof CLASS_CODES, "background">;
export type OrganelleClass = Exclude<ClassName, "er">;
export type ShapeKind = "sphere" | "capsule" | "arc_tube" | "branched" | "sphere_cap";

/**
 * The designed nearest approach to the ER: an ER element at `gapNm` beyond the organelle's extreme point.
 * Along x or y (axis 0, 1) the gap is resolved within a section ("in-plane"); along z (axis 2) the partner
 * lies in the sections above or below and nothing comes as close within the organelle's own sections, so the
 * gap is seen only across sections.
 */
export interface ContactDesign {
  erElementId: number;
  /** Axis (0 x, 1 y, 2 z) and side of the approach. */
  axis: 0 | 1 | 2;
  sign: 1 | -1;
  gapNm: number;
  /** The organelle's surface point furthest along (axis, sign): on a voxel face along the axis, voxel centres across. */
  extremePoint: Vec3;
}

export interface Organelle {
  id: number;
  cls: OrganelleClass;
  shape: ShapeKind;
  /** All points within r of the centreline primitives (for the nucleus, clipped by the volume). */
  r: number;
  prims: Centreline[];
  contact?: ContactDesign;
  /** A voxel-centre point (nm) certainly inside: tests match pipeline instances to truth through it. */
  seedPoint: Vec3;
}

export type ErKind = "sheet" | "tube" | "connector";

/** An ER element: the axis-aligned box `box` dilated by r (sheets: r = 0; tubes: a degenerate box = a segment). */
export interface ErElement {
  id: number;
  kind: ErKind;
  box: Box;
  r: number;
  /** Organelle whose designed contact partner this is. */
  ownerId?: number;
}

export interface MitoMeasures {
  lengthNm: number;
  widthNm: number;
  feretMaxNm: number;
  branched: boolean;
  /** Branch points of the centreline graph (a Y or a T has one). */
  branchCount: number;
}

export interface Measures {
  volumeNm3: number;
  /** Closed surface of the part inside the volume (for the cut nucleus: membrane + cut face). */
  surfaceNm2: number;
  /** Nucleus only: the flat part of surfaceNm2 lying on the volume boundary. */
  cutFaceNm2?: number;
  centroidNm: Vec3;
  sphericity: number;
  volumeMethod: string;
  surfaceMethod: string;
  mito?: MitoMeasures;
}

export function sphericity(volume: number, surface: number): number {
  return (Math.cbrt(Math.PI) * (6 * volume) ** (2 / 3)) / surface;
}

export function organelleBounds(o: Organelle): Box {
  return dilate(unionBox(o.prims.map(centrelineBounds)), o.r);
}

/** Centreline samples for conservative distance bounds: each solid point is within r + spacing/2 of one. */
export function organelleSamples(o: Organelle, spacing: number): Vec3[] {
  return o.prims.flatMap((p) => sampleCentreline(p, spacing));
}

const CLOSED = "closed form";

export function measureOrganelle(o: Organelle, extent: Vec3): Measures {
  const r = o.r;
  const first = o.prims[0];
  if (!first) throw new Error(`organelle ${o.id} has no centreline`);
  let m: Measures;
  if (o.shape === "sphere" && first.kind === "point") {
    const v = (4 / 3) * Math.PI * r ** 3;
    const a = 4 * Math.PI * r * r;
    m = { volumeNm3: v, surfaceNm2: a, centroidNm: [...first.c], sphericity: 1, volumeMethod: CLOSED, surfaceMethod: CLOSED };
  } else if (o.shape === "sphere_cap" && first.kind === "point") {
    m = measureCap(first.c, r, extent);
  } else if (o.shape === "capsule" && first.kind === "segment") {
    const L = dist(first.a, first.b);
    const v = Math.PI * r * r * L + (4 / 3) * Math.PI * r ** 3;
    const a = 2 * Math.PI * r * L + 4 * Math.PI * r * r;
    const c: Vec3 = [(first.a[0] + first.b[0]) / 2, (first.a[1] + first.b[1]) / 2, (first.a[2] + first.b[2]) / 2];
    m = { volumeNm3: v, surfaceNm2: a, centroidNm: c, sphericity: sphericity(v, a), volumeMethod: CLOSED, surfaceMethod: CLOSED };
    m.mito = { lengthNm: L + 2 * r, widthNm: 2 * r, feretMaxNm: L + 2 * r, branched: false, branchCount: 0 };
  } else if (o.shape === "arc_tube" && first.kind === "arc") {
    m = measureArcTube(first, r);
  } else if (o.shape === "branched") {
    m = measureStar(o);
  } else {
    throw new Error(`organelle ${o.id}: shape ${o.shape} does not match its centreline`);
  }
  if (o.cls !== "mito") delete m.mito;
  return m;
}

/** A sphere cut by one face of the volume; the nucleus is placed so only one face cuts it. */
function measureCap(c: Vec3, R: number, extent: Vec3): Measures {
  // The cut axis is the one along which the sphere's centre lies outside the volume.
  let axis = -1;
  let h = 0;
  let inward = 1;
  for (let i = 0; i < 3; i++) {
    const ci = c[i] as number;
    const ei = extent[i] as number;
    if (ci < 0) [axis, h, inward] = [i, ci + R, 1];
    else if (ci > ei) [axis, h, inward] = [i, ei - (ci - R), -1];
  }
  if (axis < 0) throw new Error("sphere_cap is not cut by the volume");
  const v = (Math.PI * h * h * (3 * R - h)) / 3;
  const curved = 2 * Math.PI * R * h;
  const cutR2 = 2 * R * h - h * h;
  const cut = Math.PI * cutR2;
  // Centroid of a cap of height h: 3(2R - h)^2 / (4(3R - h)) from the sphere's centre, towards the cap.
  const off = (3 * (2 * R - h) ** 2) / (4 * (3 * R - h));
  const centroid: Vec3 = [...c];
  centroid[axis] = (c[axis] as number) + inward * off;
  return {
    volumeNm3: v,
    surfaceNm2: curved + cut,
    cutFaceNm2: cut,
    centroidNm: centroid,
    sphericity: sphericity(v, curved + cut),
    volumeMethod: `${CLOSED} (spherical cap, height ${h} nm)`,
    surfaceMethod: `${CLOSED} (cap 2 pi R h plus the cut disc on the volume boundary)`,
  };
}

/** Torus sector (Pappus) plus two half-balls; exact while R > r and the caps stay apart. */
function measureArcTube(arc: Extract<Centreline, { kind: "arc" }>, r: number): Measures {
  const phi = arc.theta1 - arc.theta0;
  const R = arc.R;
  const vTube = Math.PI * r * r * R * phi;
  const vHalf = (2 / 3) * Math.PI * r ** 3;
  const v = vTube + 2 * vHalf;
  const a = 2 * Math.PI * r * R * phi + 4 * Math.PI * r * r;
  const mid = (arc.theta0 + arc.theta1) / 2;
  const half = phi / 2;
  const rhoTube = ((R * R + (r * r) / 4) * Math.sin(half)) / (R * half);
  const cx = arc.c[0] + rhoTube * Math.cos(mid);
  const cy = arc.c[1] + rhoTube * Math.sin(mid);
  const e0 = arcPoint(arc, arc.theta0);
  const e1 = arcPoint(arc, arc.theta1);
  const k = (3 * r) / 8;
  const h0: Vec3 = [e0[0] + k * Math.sin(arc.theta0), e0[1] - k * Math.cos(arc.theta0), arc.c[2]];
  const h1: Vec3 = [e1[0] - k * Math.sin(arc.theta1), e1[1] + k * Math.cos(arc.theta1), arc.c[2]];
  const centroid: Vec3 = [(vTube * cx + vHalf * (h0[0] + h1[0])) / v, (vTube * cy + vHalf * (h0[1] + h1[1])) / v, arc.c[2]];
  const chord = dist(e0, e1);
  return {
    volumeNm3: v,
    surfaceNm2: a,
    centroidNm: centroid,
    sphericity: sphericity(v, a),
    volumeMethod: `${CLOSED} (Pappus: torus sector + two half-balls)`,
    surfaceMethod: `${CLOSED} (Pappus: 2 pi r x arc length + sphere)`,
    mito: {
      lengthNm: R * phi + 2 * r,
      widthNm: 2 * r,
      feretMaxNm: (phi <= Math.PI ? chord : 2 * R) + 2 * r,
      branched: false,
      branchCount: 0,
    },
  };
}

/** A star of capsules sharing their first endpoint (the junction). */
function measureStar(o: Organelle): Measures {
  const segs: Segment[] = o.prims.map((p) => {
    if (p.kind !== "segment") throw new Error(`branched organelle ${o.id} has a ${p.kind} primitive`);
    return { a: p.a, b: p.b };
  });
  const junction = (segs[0] as Segment).a;
  const r = o.r;
  const vol = integrateCapsuleUnion(segs, r, 1);
  const area = capsuleUnionSurface(segs, r, 1);
  const arms = segs.map((s) => dist(s.a, s.b));
  let longest = 0;
  for (let i = 0; i < arms.length; i++) for (let j = i + 1; j < arms.length; j++) longest = Math.max(longest, (arms[i] as number) + (arms[j] as number));
  const pts = [junction, ...segs.map((s) => s.b)];
  let feret = 0;
  for (const p of pts) for (const q of pts) feret = Math.max(feret, dist(p, q));
  return {
    volumeNm3: vol.volume,
    surfaceNm2: area,
    centroidNm: vol.centroid,
    sphericity: sphericity(vol.volume, area),
    volumeMethod: "numerical: exact capsule intervals along x-lines, midpoint rule on a 1 nm (y, z) grid",
    surfaceMethod: "numerical: each capsule's surface on a 1 nm equal-area grid, cells inside another capsule dropped",
    mito: { lengthNm: longest + 2 * r, widthNm: 2 * r, feretMaxNm: feret + 2 * r, branched: true, branchCount: 1 },
  };
}
