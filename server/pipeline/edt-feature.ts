/**
 * Per-instance distances to a feature (the ER) on top of the face-metric feature transform: each instance's
 * minimum gap with where it occurs, and its boundary voxels within a contact threshold. Both read the field
 * only at instance boundary voxels, so one transform serves both, and its z pass runs only on the x-y
 * footprint of those voxels (the slowest pass, on a fraction of the lines).
 */
import type { Vec3 } from "../../precomputed/array.js";
import { runTransform, type Shape3 } from "./edt-core.js";

export interface FeatureDistances {
  /** Instance ids present in labels, ascending; the other arrays are indexed like ids. */
  ids: Uint32Array;
  /** Minimum face-to-face gap (nm) to the feature; Infinity when there is none (within maxDistanceNm). */
  minGapNm: Float64Array;
  /** The same minimum over voxel pairs in one section (dz = 0) only: what a single section shows. */
  minGapInPlaneNm: Float64Array;
  /** 1 when the minimum is attained by a pair in one section ("in-plane"), 0 when only across sections. */
  inPlane: Uint8Array;
  /** Linear indices of one voxel pair attaining minGapNm (in one section when inPlane); -1 when Infinity. */
  organelleVoxel: Float64Array;
  featureVoxel: Float64Array;
}

export interface MinDistanceOptions {
  /** Instances farther than this (nm) report Infinity; speeds up the transform. */
  maxDistanceNm?: number;
}

export interface ContactSurface {
  thresholdNm: number;
  /** Instance ids present in labels, ascending (including those without contacts). */
  ids: Uint32Array;
  /** Contact voxels of ids[k] are entries offsets[k] .. offsets[k + 1] - 1 of the arrays below. */
  offsets: Uint32Array;
  /** Boundary voxels (linear index, ascending per instance) within thresholdNm of the feature. */
  voxel: Uint32Array;
  /** Their face-to-face gap (nm). */
  gapNm: Float32Array;
  /** 1 when the gap is attained by a feature voxel in the same section. */
  inPlane: Uint8Array;
  /** A feature voxel attaining the gap (in the same section when inPlane). */
  featureVoxel: Uint32Array;
}

/**
 * Per instance (labels != 0; the feature itself must not be labelled) the minimum face-to-face gap to the
 * feature, where it occurs, and whether it is resolved in-plane. The minimum over an instance is always
 * attained on a boundary voxel (stepping from any voxel towards its nearest feature voxel never increases the
 * gap until the step would leave the instance), so reported voxels are boundary voxels.
 */
export function minDistanceToFeature(
  labels: Uint32Array,
  featureMask: Uint8Array,
  shape: Shape3,
  spacingNm: Vec3,
  opts: MinDistanceOptions = {},
): FeatureDistances {
  return featureDistances(labels, featureMask, shape, spacingNm, 0, opts.maxDistanceNm).distances;
}

/**
 * Per instance, its boundary voxels (a face neighbour inside the volume carries another label; the volume's
 * own edge is a cut, not a surface) whose face-to-face gap to the feature is <= thresholdNm.
 */
export function contactSurfaceVoxels(
  labels: Uint32Array,
  featureMask: Uint8Array,
  shape: Shape3,
  spacingNm: Vec3,
  thresholdNm: number,
): ContactSurface {
  return featureDistances(labels, featureMask, shape, spacingNm, thresholdNm, thresholdNm).contacts;
}

/**
 * minDistanceToFeature and contactSurfaceVoxels from one transform: the same numbers as calling both, for
 * half the work.
 */
export function featureDistances(
  labels: Uint32Array,
  featureMask: Uint8Array,
  shape: Shape3,
  spacingNm: Vec3,
  thresholdNm: number,
  maxDistanceNm?: number,
): { distances: FeatureDistances; contacts: ContactSurface } {
  if (labels.length !== featureMask.length) throw new RangeError(`labels have ${labels.length} voxels, feature mask ${featureMask.length}`);
  if (!(thresholdNm >= 0)) throw new RangeError(`threshold must be >= 0 nm, got ${thresholdNm}`);
  const b = boundaryVoxels(labels, shape);
  const k = b.ids.length;
  const nb = b.voxel.length;
  const planeGap = new Float64Array(nb);
  const planeFeat = new Uint32Array(nb);
  const { field, carry } = runTransform(
    featureMask,
    shape,
    spacingNm,
    true,
    true,
    { maxDistanceNm },
    {
      afterInPlane: (f, c) => {
        for (let j = 0; j < nb; j++) {
          planeGap[j] = f[b.voxel[j]];
          planeFeat[j] = c[b.voxel[j]];
        }
      },
    },
    { footprint: b.footprint },
  );

  // Per instance minima, in-plane and 3D. Strict < in raster order: ties resolve to the first voxel.
  const bestIn = new Float64Array(k).fill(Infinity);
  const best = new Float64Array(k).fill(Infinity);
  const vox = new Float64Array(k).fill(-1);
  const feat = new Float64Array(k).fill(-1);
  const inVox = new Float64Array(k).fill(-1);
  const inFeat = new Float64Array(k).fill(-1);
  const limit2 = thresholdNm * thresholdNm;
  let kept = 0;
  for (let s = 0; s < k; s++) {
    for (let j = b.offsets[s]; j < b.offsets[s + 1]; j++) {
      const i = b.voxel[j];
      const g2 = field[i];
      if (planeGap[j] < bestIn[s]) {
        bestIn[s] = planeGap[j];
        inVox[s] = i;
        inFeat[s] = planeFeat[j];
      }
      if (g2 < best[s]) {
        best[s] = g2;
        vox[s] = i;
        feat[s] = carry[i];
      }
      if (g2 <= limit2) kept++;
    }
  }
  const inPlaneMin = new Uint8Array(k);
  for (let s = 0; s < k; s++) {
    if (best[s] === Infinity) continue;
    if (attainedInPlane(bestIn[s], best[s])) {
      inPlaneMin[s] = 1;
      vox[s] = inVox[s];
      feat[s] = inFeat[s];
    }
  }
  const distances: FeatureDistances = {
    ids: b.ids,
    minGapNm: best.map(Math.sqrt),
    minGapInPlaneNm: bestIn.map(Math.sqrt),
    inPlane: inPlaneMin,
    organelleVoxel: vox,
    featureVoxel: feat,
  };

  const offsets = new Uint32Array(k + 1);
  const voxel = new Uint32Array(kept);
  const gapNm = new Float32Array(kept);
  const inPlane = new Uint8Array(kept);
  const featureVoxel = new Uint32Array(kept);
  let w = 0;
  for (let s = 0; s < k; s++) {
    offsets[s] = w;
    for (let j = b.offsets[s]; j < b.offsets[s + 1]; j++) {
      const i = b.voxel[j];
      const g2 = field[i];
      if (!(g2 <= limit2)) continue;
      const flat = attainedInPlane(planeGap[j], g2);
      voxel[w] = i;
      gapNm[w] = Math.sqrt(g2);
      inPlane[w] = flat ? 1 : 0;
      featureVoxel[w] = flat ? planeFeat[j] : carry[i];
      w++;
    }
  }
  offsets[k] = w;
  return { distances, contacts: { thresholdNm, ids: b.ids, offsets, voxel, gapNm, inPlane, featureVoxel } };
}

interface Boundary {
  /** Instance ids present in labels, ascending. */
  ids: Uint32Array;
  /** Boundary voxels of ids[s] are voxel[offsets[s] .. offsets[s + 1]), in raster order. */
  offsets: Uint32Array;
  voxel: Uint32Array;
  /** x-y pixels (nx * ny) holding a boundary voxel in some section. */
  footprint: Uint8Array;
}

/**
 * Boundary voxels grouped by instance, in one pass over the volume: the boundary voxels in raster order with
 * their labels, then a counting sort by instance (stable, so each instance's stay in raster order). An instance
 * without boundary voxels fills the whole volume (its voxels' face neighbours all carry it), so the instances
 * present are those of the boundary voxels, or the one label of a uniform volume.
 */
function boundaryVoxels(labels: Uint32Array, shape: Shape3): Boundary {
  const [nx, ny, nz] = shape;
  const sxy = nx * ny;
  const footprint = new Uint8Array(sxy);
  let found: Uint32Array = new Uint32Array(1 << 16);
  let foundLab: Uint32Array = new Uint32Array(1 << 16);
  let m = 0;
  for (let z = 0, i = 0; z < nz; z++) {
    for (let y = 0, p = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++, i++, p++) {
        const lab = labels[i];
        if (lab === 0 || !isBoundary(labels, i, lab, x, y, z, nx, ny, nz, sxy)) continue;
        if (m === found.length) {
          found = growU32(found);
          foundLab = growU32(foundLab);
        }
        found[m] = i;
        foundLab[m++] = lab;
        footprint[p] = 1;
      }
    }
  }
  const slots = instanceSlots(m === 0 && labels.length > 0 && labels[0] !== 0 ? labels.subarray(0, 1) : foundLab.subarray(0, m), labels.length);
  const k = slots.ids.length;
  const slot = slots.slot;
  const offsets = new Uint32Array(k + 1);
  for (let j = 0; j < m; j++) offsets[slot[j] + 1]++;
  for (let s = 0; s < k; s++) offsets[s + 1] += offsets[s];
  const voxel = new Uint32Array(offsets[k]);
  const fill = offsets.slice(0, k);
  for (let j = 0; j < m; j++) voxel[fill[slot[j]]++] = found[j];
  return { ids: slots.ids, offsets, voxel, footprint };
}

function growU32(a: Uint32Array): Uint32Array {
  const b = new Uint32Array(a.length * 2);
  b.set(a);
  return b;
}

/**
 * In-plane minimum equals the 3D one. The x-y passes and the z pass's dz = 0 term add the same numbers, so
 * equality is bitwise for integer nm spacings; the relative slack covers other spacings' rounding.
 */
function attainedInPlane(inPlane2: number, all2: number): boolean {
  return inPlane2 <= all2 + all2 * 1e-12;
}

function isBoundary(labels: Uint32Array, i: number, lab: number, x: number, y: number, z: number, nx: number, ny: number, nz: number, sxy: number): boolean {
  return (
    (x > 0 && labels[i - 1] !== lab) ||
    (x < nx - 1 && labels[i + 1] !== lab) ||
    (y > 0 && labels[i - nx] !== lab) ||
    (y < ny - 1 && labels[i + nx] !== lab) ||
    (z > 0 && labels[i - sxy] !== lab) ||
    (z < nz - 1 && labels[i + sxy] !== lab)
  );
}

interface InstanceSlots {
  /** The distinct labels, ascending. */
  ids: Uint32Array;
  /** Per entry of the labels given, its index in ids. */
  slot: Int32Array;
}

/**
 * Distinct nonzero labels of `labs` and each entry's slot: a dense label -> slot table when ids are compact
 * (connectedComponents numbers 1..n; the same bound on the largest id as before, against the volume's voxel
 * count), a Map otherwise.
 */
function instanceSlots(labs: Uint32Array, voxels: number): InstanceSlots {
  const slot = new Int32Array(labs.length);
  let max = 0;
  for (let j = 0; j < labs.length; j++) if (labs[j] > max) max = labs[j];
  if (max <= Math.max(1 << 20, voxels)) {
    const table = new Int32Array(max + 1).fill(-1);
    for (let j = 0; j < labs.length; j++) table[labs[j]] = 0;
    let k = 0;
    for (let id = 1; id <= max; id++) if (table[id] === 0) k++;
    const ids = new Uint32Array(k);
    k = 0;
    for (let id = 1; id <= max; id++) {
      if (table[id] === 0) {
        ids[k] = id;
        table[id] = k++;
      }
    }
    for (let j = 0; j < labs.length; j++) slot[j] = table[labs[j]];
    return { ids, slot };
  }
  const seen = new Set<number>();
  for (let j = 0; j < labs.length; j++) if (labs[j] !== 0) seen.add(labs[j]);
  const ids = Uint32Array.from(seen).sort();
  const map = new Map<number, number>();
  ids.forEach((id, s) => map.set(id, s));
  for (let j = 0; j < labs.length; j++) slot[j] = map.get(labs[j]) ?? -1;
  return { ids, slot };
}
