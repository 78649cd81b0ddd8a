/**
 * The in-plane part of the surface measure (surface.ts, steps 1-2): per section, an exact 2D signed distance
 * in nm whose zero level lies on the voxel faces, lightly blurred without letting a pixel centre change side.
 */

/** In-plane workspace for one object's sections, allocated once per object. */
export class SectionField {
  readonly mask: Uint8Array;
  /** Squared distance (nm^2) from each pixel to the nearest pixel of the other class. */
  private readonly d2: Float32Array;
  private readonly lastIn: Int32Array;
  private readonly lastOut: Int32Array;
  /** Lower-envelope workspace: parabola roots, their values f there, f + s2 q^2, and where each starts to win. */
  private readonly v: Int32Array;
  private readonly fv: Float64Array;
  private readonly hv: Float64Array;
  private readonly zb: Float64Array;
  private readonly tmp: Float32Array;
  private readonly kernel: Float64Array;

  constructor(
    readonly w: number,
    readonly h: number,
    private readonly sx: number,
    private readonly sy: number,
    sigma: number,
  ) {
    const n = w * h;
    const m = Math.max(w, h);
    this.mask = new Uint8Array(n);
    this.d2 = new Float32Array(n);
    this.lastIn = new Int32Array(w);
    this.lastOut = new Int32Array(w);
    this.v = new Int32Array(m);
    this.fv = new Float64Array(m);
    this.hv = new Float64Array(m);
    this.zb = new Float64Array(m);
    this.tmp = new Float32Array(n);
    this.kernel = gaussianKernel(sigma);
  }

  /**
   * Half-width of the smoothing kernel in pixels, and the margin the crop needs around the object. Cut at
   * 2 sigma: 3 sigma changed no test area by more than 0.1% and costs a wider margin and more taps.
   */
  static kernelRadius(sigma: number): number {
    return sigma > 0 ? Math.ceil(2 * sigma) : 0;
  }

  /** Deepest inside value of the last computed field after blurring (nm, >= 0). */
  depth = 0;

  /**
   * Fills `out` with the signed distance of `this.mask`; returns the inscribed radius (deepest inside
   * value before blurring, nm). Both it and `depth` are needed: see CapCache in surface.ts.
   */
  compute(out: Float32Array): number {
    const { w, h, mask, d2 } = this;
    this.squaredEdt();
    const half = 0.5 * Math.min(this.sx, this.sy);
    let lowest = 0;
    for (let i = 0; i < w * h; i++) {
      const v = mask[i] !== 0 ? half - Math.sqrt(d2[i]) : Math.sqrt(d2[i]) - half;
      out[i] = v;
      if (v < lowest) lowest = v;
    }
    this.depth = -lowest;
    if (this.smooth(out)) {
      // Blurring must not move a pixel centre across the zero level: the voxel-centre sampling says which
      // side each centre is on, and without this a 1-2 pixel wide object would thin out or vanish.
      const floor = 0.1 * half;
      let deepest = 0;
      for (let i = 0; i < w * h; i++) {
        if (mask[i] !== 0) {
          if (out[i] > -floor) out[i] = -floor;
          else if (-out[i] > deepest) deepest = -out[i];
        } else if (out[i] < floor) out[i] = floor;
      }
      this.depth = Math.max(deepest, floor);
    }
    return -lowest;
  }

  /**
   * Exact squared Euclidean distance from every pixel to the nearest pixel of the other class, both classes
   * at once (Felzenszwalb & Huttenlocher 2012, separable). Columns first, by two row-major sweeps (cache
   * friendly) that count pixels to the nearest other-class pixel in the same column. Then rows: a pixel's
   * nearest other-class pixel lies in the same run of its own class or just past the run's ends — anything
   * beyond an end is farther than that end pixel, which is itself of the other class — so each run gets its
   * own lower envelope over the run plus its two end neighbours. One envelope per pixel, not two.
   */
  private squaredEdt(): void {
    const { w, h, mask, d2, v, fv, hv, zb, lastIn, lastOut } = this;
    const sy = this.sy;
    // A column without an other-class pixel gets a count beyond any distance in the crop.
    const far = w + h + 2;
    lastIn.fill(-far);
    lastOut.fill(-far);
    for (let y = 0, i = 0; y < h; y++) {
      for (let x = 0; x < w; x++, i++) {
        if (mask[i] !== 0) {
          lastIn[x] = y;
          d2[i] = y - lastOut[x];
        } else {
          lastOut[x] = y;
          d2[i] = y - lastIn[x];
        }
      }
    }
    lastIn.fill(h - 1 + far);
    lastOut.fill(h - 1 + far);
    for (let y = h - 1; y >= 0; y--) {
      for (let x = 0, i = y * w; x < w; x++, i++) {
        let d: number;
        if (mask[i] !== 0) {
          lastIn[x] = y;
          d = lastOut[x] - y;
        } else {
          lastOut[x] = y;
          d = lastIn[x] - y;
        }
        const m = (d < d2[i] ? d : d2[i]) * sy;
        d2[i] = m * m;
      }
    }
    const s2 = this.sx * this.sx;
    const twoS2 = 2 * s2;
    for (let y = 0; y < h; y++) {
      const row = y * w;
      for (let x = 0; x < w; ) {
        const cls = mask[row + x];
        const r0 = x;
        while (x < w && mask[row + x] === cls) x++;
        const r1 = x - 1;
        // Envelope of s2 (t - q)^2 + f(q) over q in [lo, hi]; the end neighbours have f = 0.
        const lo = r0 > 0 ? r0 - 1 : r0;
        const hi = r1 < w - 1 ? r1 + 1 : r1;
        let k = 0;
        v[0] = lo;
        fv[0] = lo < r0 ? 0 : d2[row + lo];
        hv[0] = fv[0] + s2 * lo * lo;
        zb[0] = Number.NEGATIVE_INFINITY;
        for (let q = lo + 1; q <= hi; q++) {
          const fq = q > r1 ? 0 : d2[row + q];
          const a = fq + s2 * q * q;
          // Pop parabolas hidden by q (their intersection with q lies left of where they start to win),
          // multiplying instead of dividing; zb[0] = -Infinity stops the loop at the first parabola.
          while (a - hv[k] <= zb[k] * (twoS2 * (q - v[k]))) k--;
          const s = (a - hv[k]) / (twoS2 * (q - v[k]));
          k++;
          v[k] = q;
          fv[k] = fq;
          hv[k] = a;
          zb[k] = s;
        }
        // Reads of d2 above stay within [lo, hi] and run left to right, so writing the run back is safe:
        // its own entries are no longer needed and the right neighbour hi = r1 + 1 is not written.
        for (let q = r0, j = 0; q <= r1; q++) {
          while (j < k && zb[j + 1] < q) j++;
          const dq = q - v[j];
          d2[row + q] = s2 * dq * dq + fv[j];
        }
      }
    }
  }

  /**
   * Separable Gaussian, edges clamped (the crop margin keeps clamping off the zero level). Only a band
   * around the zero level is blurred: further out the field is a plain distance whose blur is itself to
   * within sigma^2 * curvature / 2, and skipping it saves most of the work on large sections.
   */
  private smooth(a: Float32Array): boolean {
    const { w, h, tmp, kernel } = this;
    const r = (kernel.length - 1) / 2;
    if (r === 0) return false;
    const step = Math.max(this.sx, this.sy);
    const band = (r + 1) * step;
    const feed = band + (r + 1) * step; // the rows the band's vertical taps read
    for (let y = 0; y < h; y++) {
      const row = y * w;
      for (let x = 0; x < w; x++) {
        if (Math.abs(a[row + x]) > feed) continue;
        let acc = 0;
        if (x >= r && x < w - r) {
          for (let k = 0, j = row + x - r; k <= 2 * r; k++, j++) acc += kernel[k] * a[j];
        } else {
          for (let k = -r; k <= r; k++) acc += kernel[k + r] * a[row + Math.min(w - 1, Math.max(0, x + k))];
        }
        tmp[row + x] = acc;
      }
    }
    for (let y = 0; y < h; y++) {
      const row = y * w;
      const inner = y >= r && y < h - r;
      for (let x = 0; x < w; x++) {
        if (Math.abs(a[row + x]) > band) continue;
        let acc = 0;
        if (inner) {
          for (let k = 0, j = row - r * w + x; k <= 2 * r; k++, j += w) acc += kernel[k] * tmp[j];
        } else {
          for (let k = -r; k <= r; k++) acc += kernel[k + r] * tmp[Math.min(h - 1, Math.max(0, y + k)) * w + x];
        }
        a[row + x] = acc;
      }
    }
    return true;
  }
}

function gaussianKernel(sigma: number): Float64Array {
  const r = SectionField.kernelRadius(sigma);
  const k = new Float64Array(2 * r + 1);
  if (r === 0) {
    k[0] = 1;
    return k;
  }
  let sum = 0;
  for (let i = -r; i <= r; i++) sum += k[i + r] = Math.exp(-(i * i) / (2 * sigma * sigma));
  for (let i = 0; i < k.length; i++) k[i] /= sum;
  return k;
}
