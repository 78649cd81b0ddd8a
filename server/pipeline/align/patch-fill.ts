/** Filling a patch's missing (NaN, outside the section) pixels before its FFT, so the gap's edge is not a feature. */

/** NaN -> the valid pixels' mean. */
export function fillMissing(p: Float64Array): void {
  let s = 0;
  let c = 0;
  for (const v of p) {
    if (v === v) {
      s += v;
      c++;
    }
  }
  const m = c > 0 ? s / c : 0;
  for (let k = 0; k < p.length; k++) if (p[k] !== p[k]) p[k] = m;
}

/** Fills NaN with the valid mean and fades valid pixels into it within `fade` px (chamfer distance) of a gap. */
export function fadeMissing(p: Float64Array, size: number, fade: number, dist: Float32Array, weight?: Float32Array): void {
  let s = 0;
  let c = 0;
  for (let k = 0; k < p.length; k++) {
    const v = p[k] as number;
    if (v === v) {
      s += v;
      c++;
      dist[k] = 1e9;
    } else dist[k] = 0;
  }
  const m = c > 0 ? s / c : 0;
  const d2 = Math.SQRT2;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const k = y * size + x;
      let v = dist[k] as number;
      if (x > 0) v = Math.min(v, (dist[k - 1] as number) + 1);
      if (y > 0) {
        v = Math.min(v, (dist[k - size] as number) + 1);
        if (x > 0) v = Math.min(v, (dist[k - size - 1] as number) + d2);
        if (x < size - 1) v = Math.min(v, (dist[k - size + 1] as number) + d2);
      }
      dist[k] = v;
    }
  }
  for (let y = size - 1; y >= 0; y--) {
    for (let x = size - 1; x >= 0; x--) {
      const k = y * size + x;
      let v = dist[k] as number;
      if (x < size - 1) v = Math.min(v, (dist[k + 1] as number) + 1);
      if (y < size - 1) {
        v = Math.min(v, (dist[k + size] as number) + 1);
        if (x < size - 1) v = Math.min(v, (dist[k + size + 1] as number) + d2);
        if (x > 0) v = Math.min(v, (dist[k + size - 1] as number) + d2);
      }
      dist[k] = v;
    }
  }
  for (let k = 0; k < p.length; k++) {
    const v = p[k] as number;
    const d = dist[k] as number;
    if (v !== v) {
      p[k] = m;
      if (weight) weight[k] = 0;
    } else if (d < fade) {
      const t = 0.5 - 0.5 * Math.cos((Math.PI * d) / fade);
      p[k] = m + t * (v - m);
      if (weight) weight[k] = t;
    } else if (weight) weight[k] = 1;
  }
}
