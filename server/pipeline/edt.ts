/**
 * Exact anisotropic Euclidean distance transforms and the ER-distance kernels built on them.
 *
 * Algorithm: Felzenszwalb & Huttenlocher (2012), "Distance transforms of sampled functions": a squared
 * distance sum_i (s_i d_i)^2 is separable, so three 1D passes (x, then y, then z) each take the lower
 * envelope of parabolas over one line. Linear time, exact up to float rounding, any spacing.
 *
 * Two metrics:
 * - "centre": centre-to-centre distance between voxels (what scipy.ndimage.distance_transform_edt gives).
 * - "face": DESIGN.md's face-to-face gap between voxel boundaries. For voxels (d_x, d_y, d_z) steps apart the gap
 *   is sqrt(sum_i (max(0, |d_i| - 1) s_i)^2), so touching by face, edge or corner is 0 and one empty voxel
 *   in x is s_x. Since max(0, |d| - 1) = min over e in {-1, 0, 1} of |d - e|, the gap to a feature set equals
 *   the centre distance to that set dilated by the 3x3x3 cube; dilation is separable too, so each 1D pass
 *   first takes a 3-wide running minimum along its axis, then the parabola envelope. The minimising
 *   dilated voxel always lies between the feature voxel and the query, so clipping the dilation at the
 *   volume edge loses nothing: the result is exact, not an approximation.
 *
 * Optionally each pass carries the index of the feature voxel that attains the minimum (a feature
 * transform); with the face metric the carried voxel is a real feature voxel, not a dilated one.
 */
import type { Vec3 } from "../../precomputed/array.js";
import { runTransform, type EdtArray, type EdtOptions, type FeatureEdtOptions, type Shape3 } from "./edt-core.js";

export { NO_VOXEL, type DistanceMetric, type EdtArray, type EdtOptions, type FeatureEdtOptions, type Shape3 } from "./edt-core.js";
export { cropVolume, edtBlock, exactBelowNm, haloBox, type BlockEdt, type BlockEdtOptions, type BlockRequest, type HaloBox } from "./edt-blocks.js";
export {
  contactSurfaceVoxels,
  featureDistances,
  minDistanceToFeature,
  type ContactSurface,
  type FeatureDistances,
  type MinDistanceOptions,
} from "./edt-feature.js";


/**
 * Squared distance (nm^2) from every voxel to the nearest voxel where mask == 0, 0 on those voxels, like
 * scipy.ndimage.distance_transform_edt(mask, sampling=(sz, sy, sx)) ** 2. Infinity where no zero exists.
 */
export function edtSquared(mask: Uint8Array, shape: Shape3, spacingNm: Vec3, opts: EdtOptions & { output: "float32" }): Float32Array;
export function edtSquared(mask: Uint8Array, shape: Shape3, spacingNm: Vec3, opts?: EdtOptions & { output?: "float64" }): Float64Array;
export function edtSquared(mask: Uint8Array, shape: Shape3, spacingNm: Vec3, opts: EdtOptions = {}): EdtArray {
  return runTransform(mask, shape, spacingNm, false, false, opts, null).field;
}

/**
 * Squared distance (nm^2) from every voxel to the nearest feature voxel (featureMask != 0); 0 on the feature.
 * metric "centre" (default) is centre-to-centre; "face" is the face-to-face gap squared (touching = 0).
 */
export function edtToFeature(
  featureMask: Uint8Array,
  shape: Shape3,
  spacingNm: Vec3,
  opts: FeatureEdtOptions & { output: "float32" },
): Float32Array;
export function edtToFeature(
  featureMask: Uint8Array,
  shape: Shape3,
  spacingNm: Vec3,
  opts?: FeatureEdtOptions & { output?: "float64" },
): Float64Array;
export function edtToFeature(featureMask: Uint8Array, shape: Shape3, spacingNm: Vec3, opts: FeatureEdtOptions = {}): EdtArray {
  return runTransform(featureMask, shape, spacingNm, true, opts.metric === "face", opts, null).field;
}
