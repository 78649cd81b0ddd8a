/**
 * Predicted fragments too small to be an organelle. A 2D network leaves specks where classes meet (a rim of
 * "peroxisome" around a lysosome, a few "ER" pixels in cytoplasm); each becomes its own instance in 3D and fills
 * the table with hundreds of objects nobody annotated. Each connected fragment (per class, 26-connectivity as
 * the analysis uses) below the minimum volume takes the organelle class it borders most (by face): a speck on an
 * organelle is that organelle's edge given the wrong class. Background only when it touches no other organelle.
 */
import { connectedComponents } from "../label.js";

/** 0.001 um^3: a 124 nm sphere, below the smallest organelle of the paper's classes (peroxisomes ~0.1-1 um). */
export const DEFAULT_MIN_FRAGMENT_NM3 = 1e6;

export interface CleanupResult {
  /** Fragments reassigned, and the voxels they held. */
  fragments: number;
  voxels: number;
}

/**
 * In place on `classes` ([x, y, z] raster, x fastest). Repeats (at most `passes` times) because a speck that only
 * touched other specks gets its class from them before they move.
 */
export function removeSmallFragments(
  classes: Uint8Array,
  shape: readonly [number, number, number],
  voxelNm: readonly [number, number, number],
  minNm3 = DEFAULT_MIN_FRAGMENT_NM3,
  passes = 3,
): CleanupResult {
  const total = { fragments: 0, voxels: 0 };
  for (let p = 0; p < passes; p++) {
    const r = onePass(classes, shape, voxelNm, minNm3);
    if (r.fragments === 0) break;
    total.fragments += r.fragments;
    total.voxels += r.voxels;
  }
  return total;
}

function onePass(
  classes: Uint8Array,
  shape: readonly [number, number, number],
  voxelNm: readonly [number, number, number],
  minNm3 = DEFAULT_MIN_FRAGMENT_NM3,
): CleanupResult {
  const minVoxels = minNm3 / (voxelNm[0] * voxelNm[1] * voxelNm[2]);
  const { labels, count, classOf, voxels } = connectedComponents(classes, shape);
  // Dense index of the small fragments, so the vote table is small.
  const slot = new Int32Array(count + 1).fill(-1);
  let small = 0;
  for (let id = 1; id <= count; id++) if (classOf[id] !== 0 && voxels[id] < minVoxels) slot[id] = small++;
  if (small === 0) return { fragments: 0, voxels: 0 };
  const CLASSES = 256;
  const votes = new Float64Array(small * CLASSES);
  const [nx, ny, nz] = shape;
  const sxy = nx * ny;
  const vote = (s: number, id: number, j: number) => {
    if (labels[j] !== id) votes[s * CLASSES + classes[j]] += 1;
  };
  for (let z = 0, i = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++, i++) {
        const id = labels[i];
        const s = slot[id];
        if (s < 0) continue;
        if (x > 0) vote(s, id, i - 1);
        if (x < nx - 1) vote(s, id, i + 1);
        if (y > 0) vote(s, id, i - nx);
        if (y < ny - 1) vote(s, id, i + nx);
        if (z > 0) vote(s, id, i - sxy);
        if (z < nz - 1) vote(s, id, i + sxy);
      }
    }
  }
  const target = new Uint8Array(small);
  for (let s = 0; s < small; s++) {
    let best = 0;
    for (let c = 1; c < CLASSES; c++) if (votes[s * CLASSES + c] > (best === 0 ? 0 : votes[s * CLASSES + best])) best = c;
    target[s] = best;
  }
  let moved = 0;
  for (let i = 0; i < classes.length; i++) {
    const s = slot[labels[i]];
    if (s >= 0) {
      classes[i] = target[s];
      moved++;
    }
  }
  return { fragments: small, voxels: moved };
}
