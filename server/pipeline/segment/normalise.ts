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

/** z-scored float32 copy of one section (into `out` when given). */
export function normaliseSection(section: Uint8Array | Uint16Array, out?: Float32Array): Float32Array {
  const { mean, std } = sectionStats(section);
  const dst = out ?? new Float32Array(section.length);
  if (dst.length !== section.length) throw new RangeError(`normaliseSection: output holds ${dst.length} values, section ${section.length}`);
  const inv = 1 / std;
  for (let i = 0; i < section.length; i++) dst[i] = ((section[i] as number) - mean) * inv;
  return dst;
}
