/**
 * Centreline skeleton and tube morphometrics of one object (mitochondrion) cropped to its bounding box:
 * length, width, max Feret and branching as DESIGN.md "Definitions" states them.
 *
 * Method: TEASAR (Sato et al. 2000, as kimimaro implements it) on the native anisotropic grid, not
 * thinning. Thinning needs an isotropic grid: resampling 45-nm sections to 5 nm invents 8 of every 9
 * slices and a 7-section-tall mitochondrion becomes a staircase whose steps thinning turns into spurs.
 * TEASAR only needs a distance field and shortest paths, both of which take physical edge lengths
 * directly, so the sections are used as they are:
 *  1. distance to background per voxel, exact and anisotropic (separable squared EDT), in-plane and 3D;
 *  2. root = a tip: the voxel geodesically farthest from the most central voxel;
 *  3. one Dijkstra from the root over 26-neighbours, edge cost = physical length x a penalty that grows
 *     quadratically off the medial ridge, so that shortest paths run along the centreline;
 *  4. repeatedly take the remaining voxel farthest from the root along that tree, trace its path back to
 *     the skeleton, and invalidate a ball of radius 1.5 x distance-to-boundary (+ half a section) around
 *     the new path. Paths therefore reach the surface at every tip.
 * Steps 2-4 run on a grid binned 2 x 2 in-plane (10 x 10 x 45 nm), 4x fewer voxels; radii and tips are
 * measured at full resolution. The result is a tree; `prune` removes spurs; lengths are measured on a
 * Gaussian-smoothed polyline because a voxel path overstates length (8-neighbour staircase +8%, 45-nm
 * z-steps up to +27%); widths use a sub-section estimate of where the surface lies between sections.
 */
import type { Vec3 } from "../../precomputed/array.js";
import { buildGrid, checkInput, gap, neighbours } from "./skeleton-grid.js";
import { binGrid, teasar } from "./skeleton-teasar.js";
import { buildTree, countBranchPoints, degree, leafPaths, prune, type Tree } from "./skeleton-tree.js";
import { feretMax, measurePath, pathWidth, type PathMeasure } from "./skeleton-path.js";

export { feretMax } from "./skeleton-path.js";

export type Shape3 = readonly [number, number, number];

export interface SkeletonOptions {
  /** Off-ridge penalty P in cost = length x (1 + P (1 - m/m_max)^2); large enough to follow bends. */
  penalty: number;
  /** Invalidation ball radius = scale x distance-to-boundary + const (TEASAR; kimimaro's default scale). */
  invalidationScale: number;
  /** nm; undefined = half the largest voxel side, so one section's quantisation leaves no fringe. */
  invalidationConstNm?: number;
  /** k: a terminal branch is pruned when its reach beyond its own radius < k x radius at its junction. */
  pruneFactor: number;
  /** Gaussian sigma (nm) for measuring path length; undefined = 1.5 x the largest voxel side. */
  smoothingSigmaNm?: number;
  /**
   * In-plane binning of the grid the paths are searched on; undefined = floor(z / (4 x in-plane)), 2 at
   * 5 x 5 x 45 nm. Distances, radii and tips stay at full resolution; a 10-nm path grid only saves time.
   */
  binXY?: number;
}

export const DEFAULT_SKELETON_OPTIONS: SkeletonOptions = {
  penalty: 50,
  invalidationScale: 1.5,
  pruneFactor: 1.5,
};

export interface Skeleton {
  /** x, y, z in nm per vertex, crop coordinates: voxel (0,0,0)'s centre is the origin. */
  vertices: Float64Array;
  /** Pairs of vertex indices. */
  edges: Uint32Array;
  /** Inscribed radius (nm) of the cross-section at each vertex. */
  radius: Float64Array;
  /** Vertex indices of degree 1. */
  endpoints: number[];
  /** Branch points after pruning; junction nodes closer than their radius count once. */
  branchCount: number;
}

export interface TubeMeasure {
  length_nm: number;
  width_nm: number;
  feret_max_nm: number;
  branched: boolean;
  branch_count: number;
  /** Endpoints (tips) of the pruned skeleton. */
  endpoints: number;
  /** The two tips of the longest path after extension to the surface, nm in crop coordinates. */
  tips_nm: [Vec3, Vec3];
}

interface Analysis {
  tree: Tree;
  branchCount: number;
  leaves: number[];
  longest: PathMeasure | null;
}

function analyse(
  mask: ArrayLike<number>,
  shape: Shape3,
  spacingNm: Shape3,
  options: Partial<SkeletonOptions>,
): Analysis {
  checkInput(mask, shape, spacingNm);
  const opts: SkeletonOptions = { ...DEFAULT_SKELETON_OPTIONS, ...options };
  const { penalty, invalidationScale, pruneFactor, binXY } = opts;
  if (![penalty, invalidationScale, pruneFactor].every((v) => Number.isFinite(v) && v >= 0))
    throw new RangeError("skeleton options must be finite and non-negative");
  if (binXY !== undefined && !(Number.isInteger(binXY) && binXY >= 1))
    throw new RangeError(`binXY must be a positive integer, got ${binXY}`);
  const grid = buildGrid(mask, shape, spacingNm);
  const b = opts.binXY ?? Math.max(1, Math.floor(spacingNm[2] / (4 * Math.max(spacingNm[0], spacingNm[1]))));
  const coarse = b > 1 ? binGrid(grid, b) : { grid, rep: Int32Array.from(grid.inside, (_, i) => i) };
  const tree = buildTree(grid, coarse.rep, teasar(coarse.grid, neighbours(coarse.grid), opts));
  prune(tree, opts.pruneFactor);
  const branchCount = countBranchPoints(tree);
  const leaves: number[] = [];
  for (let v = 0; v < tree.n; v++) if (tree.alive[v] === 1 && degree(tree, v) === 1) leaves.push(v);
  const sigma = opts.smoothingSigmaNm ?? 1.5 * Math.max(...spacingNm);
  let longest: PathMeasure | null = null;
  // Every leaf pair is measured: smoothed lengths, not voxel-step counts, decide which path is longest.
  // A pruned mitochondrion has a handful of leaves; past 24 only the 24 farthest from the centroid are.
  let cand = leaves;
  if (leaves.length > 24) {
    const c: Vec3 = [0, 0, 0];
    for (const v of leaves) for (let k = 0; k < 3; k++) c[k] += tree.pos[3 * v + k] / leaves.length;
    const r = (v: number): number => gap(tree.pos, v, c, 0);
    cand = leaves.slice().sort((a, b) => r(b) - r(a)).slice(0, 24);
  }
  for (const path of leafPaths(tree, cand)) {
    const pm = measurePath(grid, tree, path, sigma);
    if (longest === null || pm.length > longest.length) longest = pm;
  }
  return { tree, branchCount, leaves, longest };
}

/** The pruned centreline skeleton of one object (binary mask, nonzero = inside, x fastest). */
export function skeletonize(
  mask: ArrayLike<number>,
  shape: Shape3,
  spacingNm: Shape3,
  options: Partial<SkeletonOptions> = {},
): Skeleton {
  const { tree, branchCount, leaves } = analyse(mask, shape, spacingNm, options);
  const id = new Int32Array(tree.n).fill(-1);
  let m = 0;
  for (let v = 0; v < tree.n; v++) if (tree.alive[v] === 1) id[v] = m++;
  const vertices = new Float64Array(3 * m);
  const radius = new Float64Array(m);
  const edges: number[] = [];
  for (let v = 0; v < tree.n; v++) {
    if (id[v] < 0) continue;
    vertices.set(tree.pos.subarray(3 * v, 3 * v + 3), 3 * id[v]);
    radius[id[v]] = tree.rho[v];
    for (const u of tree.adj[v]) if (u > v && id[u] >= 0) edges.push(id[v], id[u]);
  }
  return { vertices, edges: Uint32Array.from(edges), radius, endpoints: leaves.map((v) => id[v]), branchCount };
}

/**
 * Length, width, max Feret and branching of one object (DESIGN.md "Definitions"). `mask` is the object
 * cropped to its bounding box (nonzero = inside, x fastest, shape [nx, ny, nz]); spacing in nm.
 */
export function measureTube(
  mask: ArrayLike<number>,
  shape: Shape3,
  spacingNm: Shape3,
  options: Partial<SkeletonOptions> = {},
): TubeMeasure {
  const { tree, branchCount, leaves, longest } = analyse(mask, shape, spacingNm, options);
  const feret = feretMax(mask, shape, spacingNm);
  if (longest === null) {
    // A blob whose skeleton is one voxel: no path to measure along, so fall back to the extremes.
    const v = Math.max(0, tree.alive.indexOf(1));
    const c: Vec3 = [tree.pos[3 * v], tree.pos[3 * v + 1], tree.pos[3 * v + 2]];
    return {
      length_nm: feret,
      width_nm: 2 * tree.rho[v],
      feret_max_nm: feret,
      branched: false,
      branch_count: 0,
      endpoints: 0,
      tips_nm: [c, c],
    };
  }
  return {
    length_nm: longest.length,
    width_nm: pathWidth(tree, longest),
    feret_max_nm: feret,
    branched: branchCount > 0,
    branch_count: branchCount,
    endpoints: leaves.length,
    tips_nm: longest.tips,
  };
}
