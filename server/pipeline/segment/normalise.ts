/**
 * Input normalisation, identical to training (train.py `zscore`): each section is z-scored with the mean
 * and standard deviation of ALL its pixels, whatever the bit depth, std floored at 1e-3. Statistics are
 * taken once per section, never per tile: per-tile statistics would shift intensities between neighbouring
 * tiles and show up as seams (and differ from what the network saw in training).
 */

/** Floor on the standard deviation, so a blank section maps to zeros instead of dividing by zero. */
export const MIN_STD = 1e-3;

export interface SectionStats {
  mean: number;
  std: number;
}

/** Mean and population std (ddof 0, as numpy) in two passes: one-pass sums of squares lose digits at 16 bit. */
export function sectionStats(section: Uint8Array | Uint16Array): SectionStats {
  const n = section.length;
  if (n === 0) return { mean: 0, std: MIN_STD };
  let sum = 0;
  for (let i = 0; i < n; i++) sum += section[i] as number;
  const mean = sum / n;
  let ss = 0;
  for (let i = 0; i < n; i++) {
    const d = (section[i] as number) - mean;
    ss += d * d;
  }
  return { mean, std: Math.max(Math.sqrt(ss / n), MIN_STD) };
}

/**
 * A section as the network's input without a float copy of it: input = (pixel - mean) * inv, applied as tiles are
 * cut (tiling.ts `extractTile`), so a section in flight costs its own 1-2 bytes a pixel, not 4 more.
 */
export interface NormalisedSection {
  data: Uint8Array | Uint16Array | Float32Array;
  mean: number;
  inv: number;
  /** The first row `data` holds (rows above are not held: resampled-tiles.ts); default 0. */
  firstRow?: number;
}

/** The section z-scored lazily (see NormalisedSection); values equal normaliseSection's to the bit. */
export function zscored(section: Uint8Array | Uint16Array): NormalisedSection {
  const { mean, std } = sectionStats(section);
  return { data: section, mean, inv: 1 / std };
}

/** Values already normalised (a resampled section): the identity map, exact on float32. */
export function asNormalised(data: Float32Array): NormalisedSection {
  return { data, mean: 0, inv: 1 };
}

/** z-scored float32 copy of one section (into `out` when given). */
export function normaliseSection(section: Uint8Array | Uint16Array, out?: Float32Array): Float32Array {
  const { mean, inv } = zscored(section);
  const dst = out ?? new Float32Array(section.length);
  if (dst.length !== section.length) throw new RangeError(`normaliseSection: output holds ${dst.length} values, section ${section.length}`);
  for (let i = 0; i < section.length; i++) dst[i] = ((section[i] as number) - mean) * inv;
  return dst;
}
