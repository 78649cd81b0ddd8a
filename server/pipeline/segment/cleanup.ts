/**
 * Predicted fragments too small to be an organelle. A 2D network leaves specks where classes meet (a rim of
 * "peroxisome" around a lysosome, a few "ER" pixels in cytoplasm); each becomes its own instance in 3D and fills
 * the table with hundreds of objects nobody annotated. Each connected fragment (per class, 26-connectivity as
 * the analysis uses) below the minimum volume takes the organelle class it borders most (by face): a speck on an
 * organelle is that organelle's edge given the wrong class. Background only when it touches no other organelle.
 * The same rule runs per section in 2D with a minimum area per class (`removeSmallAreas`, the model's
 * `min_area_nm2`): a 2D network's specks of a class on real EM (session 11: mitochondria fragments below
 * 10^4 nm^2 were mostly false, removing them raised the mean Dice on the three real sources' training sections).
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
  return reassignSmall(classes, shape, new Float64Array(CLASSES).fill(minNm3 / (voxelNm[0] * voxelNm[1] * voxelNm[2])), passes);
}

/**
 * One section ([x, y] raster) in place: fragments (8-connected) of a class with a minimum area that are smaller
 * join the class they border most (by edge), as removeSmallFragments does in 3D; other classes are left alone.
 * Written on runs rather than through connectedComponents (which labels every class, ~40-80 ms a megapixel on
 * the main thread while the workers infer): the same answer (cleanup.test.ts compares them) in a few ms.
 */
export function removeSmallAreas(section: Uint8Array, width: number, height: number, pixelNm: readonly [number, number], minNm2ByCode: ReadonlyMap<number, number>): CleanupResult & { ruledPixels: number } {
  const minPixels = minPixelsOf(pixelNm, minNm2ByCode);
  const total = { fragments: 0, voxels: 0, ruledPixels: 0 };
  if (!minPixels.some((v) => v > 1)) return total;
  for (let p = 0; p < 3; p++) {
    const r = areaPass(section, width, height, minPixels);
    if (p === 0) total.ruledPixels = r.ruledPixels;
    total.fragments += r.fragments;
    total.voxels += r.voxels;
    // Fragments that went to classes without a minimum leave no new small fragment: a further pass finds none.
    if (!r.intoRuled) break;
  }
  return total;
}

/** The oracle of removeSmallAreas: the 3D rule on a one-section volume. */
export function removeSmallAreasByComponents(section: Uint8Array, width: number, height: number, pixelNm: readonly [number, number], minNm2ByCode: ReadonlyMap<number, number>): CleanupResult {
  return reassignSmall(section, [width, height, 1], minPixelsOf(pixelNm, minNm2ByCode), 3);
}

/** Least fragment size in pixels per class code (0: none; background never). */
function minPixelsOf(pixelNm: readonly [number, number], minNm2ByCode: ReadonlyMap<number, number>): Float64Array {
  const minPixels = new Float64Array(CLASSES);
  for (const [code, nm2] of minNm2ByCode) if (code !== 0) minPixels[code] = nm2 / (pixelNm[0] * pixelNm[1]);
  return minPixels;
}

/** One pass on a snapshot: runs of the classes with a minimum, joined 8-connected by union-find, then votes. */
function areaPass(cls: Uint8Array, W: number, H: number, minPixels: Float64Array): CleanupResult & { intoRuled: boolean; ruledPixels: number } {
  let cap = 1024;
  let x0s = new Int32Array(cap);
  let x1s = new Int32Array(cap);
  let parent = new Int32Array(cap);
  let codeOf = new Int32Array(cap);
  const rowFirst = new Int32Array(H + 1);
  let n = 0;
  const find = (a: number): number => {
    while (parent[a] !== a) {
      parent[a] = parent[parent[a] as number] as number;
      a = parent[a] as number;
    }
    return a;
  };
  for (let y = 0; y < H; y++) {
    rowFirst[y] = n;
    const row = y * W;
    let q = y > 0 ? (rowFirst[y - 1] as number) : 0;
    const qEnd = n;
    for (let x = 0; x < W; ) {
      const c = cls[row + x] as number;
      if (!((minPixels[c] as number) > 1)) {
        x++;
        continue;
      }
      const x0 = x;
      while (x < W && cls[row + x] === c) x++;
      if (n === cap) {
        cap *= 2;
        const grow = (a: Int32Array) => {
          const b = new Int32Array(cap);
          b.set(a);
          return b;
        };
        x0s = grow(x0s);
        x1s = grow(x1s);
        parent = grow(parent);
        codeOf = grow(codeOf);
      }
      x0s[n] = x0;
      x1s[n] = x;
      parent[n] = n;
      codeOf[n] = c;
      // Runs of the row above touching [x0 - 1, x + 1) (8-connectivity) and of the same class join this one.
      while (q < qEnd && (x1s[q] as number) < x0) q++;
      for (let k = q; k < qEnd && (x0s[k] as number) <= x; k++) {
        if (codeOf[k] !== c) continue;
        const a = find(k);
        const b = find(n);
        if (a !== b) parent[Math.max(a, b)] = Math.min(a, b);
      }
      n++;
    }
  }
  rowFirst[H] = n;
  const area = new Float64Array(n);
  let ruledPixels = 0;
  for (let r = 0; r < n; r++) {
    area[find(r)] += (x1s[r] as number) - (x0s[r] as number);
    ruledPixels += (x1s[r] as number) - (x0s[r] as number);
  }
  const slot = new Int32Array(n).fill(-1);
  let small = 0;
  for (let r = 0; r < n; r++) {
    if (parent[r] === r && (area[r] as number) < (minPixels[codeOf[r] as number] as number)) slot[r] = small++;
  }
  if (small === 0) return { fragments: 0, voxels: 0, intoRuled: false, ruledPixels };
  // A 4-neighbour of a fragment's pixel is of another class (one of its class would be in the fragment).
  const votes = new Uint32Array(small * CLASSES);
  let moved = 0;
  for (let y = 0; y < H; y++) {
    const row = y * W;
    for (let r = rowFirst[y] as number; r < (rowFirst[y + 1] as number); r++) {
      const s = slot[find(r)] as number;
      if (s < 0) continue;
      const v = s * CLASSES;
      const x0 = x0s[r] as number;
      const x1 = x1s[r] as number;
      const c = codeOf[r] as number;
      if (x0 > 0) votes[v + (cls[row + x0 - 1] as number)]++;
      if (x1 < W) votes[v + (cls[row + x1] as number)]++;
      for (let x = x0; x < x1; x++) {
        if (y > 0 && cls[row - W + x] !== c) votes[v + (cls[row - W + x] as number)]++;
        if (y < H - 1 && cls[row + W + x] !== c) votes[v + (cls[row + W + x] as number)]++;
      }
      moved += x1 - x0;
    }
  }
  const target = new Uint8Array(small);
  let intoRuled = false;
  for (let s = 0; s < small; s++) {
    let best = 0;
    for (let c = 1; c < CLASSES; c++) if ((votes[s * CLASSES + c] as number) > (best === 0 ? 0 : (votes[s * CLASSES + best] as number))) best = c;
    target[s] = best;
    if ((minPixels[best] as number) > 1) intoRuled = true;
  }
  for (let y = 0; y < H; y++) {
    for (let r = rowFirst[y] as number; r < (rowFirst[y + 1] as number); r++) {
      const s = slot[find(r)] as number;
      if (s >= 0) cls.fill(target[s] as number, y * W + (x0s[r] as number), y * W + (x1s[r] as number));
    }
  }
  return { fragments: small, voxels: moved, intoRuled, ruledPixels };
}

const CLASSES = 256;

/** minVoxels[c]: fragments of class c with fewer voxels move (0: never). */
function reassignSmall(classes: Uint8Array, shape: readonly [number, number, number], minVoxels: Float64Array, passes: number): CleanupResult {
  const total = { fragments: 0, voxels: 0 };
  for (let p = 0; p < passes; p++) {
    const r = onePass(classes, shape, minVoxels);
    if (r.fragments === 0) break;
    total.fragments += r.fragments;
    total.voxels += r.voxels;
  }
  return total;
}

function onePass(classes: Uint8Array, shape: readonly [number, number, number], minVoxels: Float64Array): CleanupResult {
  const { labels, count, classOf, voxels } = connectedComponents(classes, shape);
  // Dense index of the small fragments, so the vote table is small.
  const slot = new Int32Array(count + 1).fill(-1);
  let small = 0;
  for (let id = 1; id <= count; id++) if (classOf[id] !== 0 && voxels[id] < (minVoxels[classOf[id]] as number)) slot[id] = small++;
  if (small === 0) return { fragments: 0, voxels: 0 };
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
