/**
 * A section's map from output (slice-0) coordinates to its source pixels: source = A(p + u(p)), A the
 * coarse affine, u a displacement field on a regular node grid interpolated bilinearly. Both the
 * correlator's patches and the final rendering go through `mapRow`, so what was measured is exactly
 * what is rendered, and rendering interpolates the raw section once.
 */
import type { Affine } from "./affine.js";
import type { Section } from "./image.js";

export interface Grid {
  nx: number;
  ny: number;
  stride: number;
  /** Position of node (0, 0); nodes sit at (ox + i * stride, oy + j * stride). */
  ox: number;
  oy: number;
}

export interface SectionMap {
  affine: Affine;
  /** 2 values (ux, uy) per node, row-major over the grid; absent = no elastic part. */
  field?: Float32Array;
}

/** Nodes centred on the image, covering it up to half a stride from each border. */
export function makeGrid(width: number, height: number, stride: number): Grid {
  const nx = Math.max(1, Math.floor((width - 1) / stride) + 1);
  const ny = Math.max(1, Math.floor((height - 1) / stride) + 1);
  return { nx, ny, stride, ox: (width - 1 - (nx - 1) * stride) / 2, oy: (height - 1 - (ny - 1) * stride) / 2 };
}

export function nodeX(g: Grid, i: number): number {
  return g.ox + i * g.stride;
}
export function nodeY(g: Grid, j: number): number {
  return g.oy + j * g.stride;
}

/** Source coordinates of output pixels (x0 .. x0 + count - 1, y). */
export function mapRow(map: SectionMap, grid: Grid, y: number, x0: number, count: number, xs: Float64Array, ys: Float64Array): void {
  const [a, b, c, d, e, f] = map.affine;
  const field = map.field;
  if (!field) {
    for (let k = 0; k < count; k++) {
      const x = x0 + k;
      xs[k] = a * x + b * y + c;
      ys[k] = d * x + e * y + f;
    }
    return;
  }
  const { nx, ny, stride, ox, oy } = grid;
  let gy = (y - oy) / stride;
  gy = gy < 0 ? 0 : gy > ny - 1 ? ny - 1 : gy;
  const j0 = Math.min(Math.floor(gy), Math.max(0, ny - 2));
  const j1 = Math.min(j0 + 1, ny - 1);
  const fy = gy - j0;
  // The field along this row is piecewise linear between grid columns: interpolate the columns once.
  if (colX.length < nx) {
    colX = new Float64Array(nx);
    colY = new Float64Array(nx);
  }
  const i0 = Math.max(0, Math.min(nx - 1, Math.floor((x0 - ox) / stride)));
  const i1 = Math.max(0, Math.min(nx - 1, Math.ceil((x0 + count - 1 - ox) / stride)));
  for (let i = i0; i <= i1; i++) {
    const p = 2 * (j0 * nx + i);
    const q = 2 * (j1 * nx + i);
    colX[i] = (field[p] as number) * (1 - fy) + (field[q] as number) * fy;
    colY[i] = (field[p + 1] as number) * (1 - fy) + (field[q + 1] as number) * fy;
  }
  const inv = 1 / stride;
  for (let k = 0; k < count; k++) {
    const x = x0 + k;
    let gx = (x - ox) * inv;
    gx = gx < 0 ? 0 : gx > nx - 1 ? nx - 1 : gx;
    const c0 = Math.min(Math.floor(gx), Math.max(0, nx - 2));
    const c1 = c0 + 1 < nx ? c0 + 1 : c0;
    const fx = gx - c0;
    const ux = (colX[c0] as number) + ((colX[c1] as number) - (colX[c0] as number)) * fx;
    const uy = (colY[c0] as number) + ((colY[c1] as number) - (colY[c0] as number)) * fx;
    const qx = x + ux;
    const qy = y + uy;
    xs[k] = a * qx + b * qy + c;
    ys[k] = d * qx + e * qy + f;
  }
}

let colX = new Float64Array(0);
let colY = new Float64Array(0);

/**
 * Bilinear samples of `src` at the given coordinates into out[at..]; NaN outside (when `fill` is
 * undefined) or `fill`. Returns how many fell outside.
 */
export function sampleRow(src: Section, w: number, h: number, xs: Float64Array, ys: Float64Array, count: number, out: Float64Array | Uint8Array | Uint16Array, at: number, fill?: number): number {
  let outside = 0;
  const maxX = w - 1;
  const maxY = h - 1;
  const missing = fill ?? NaN;
  const round = !(out instanceof Float64Array);
  // Round-off of an identity map (1e-12 below zero) must not blank a border row.
  const tol = 1e-3;
  for (let k = 0; k < count; k++) {
    let x = xs[k] as number;
    let y = ys[k] as number;
    if (!(x >= -tol && y >= -tol && x <= maxX + tol && y <= maxY + tol)) {
      out[at + k] = missing;
      outside++;
      continue;
    }
    x = x < 0 ? 0 : x > maxX ? maxX : x;
    y = y < 0 ? 0 : y > maxY ? maxY : y;
    let x0 = Math.floor(x);
    let y0 = Math.floor(y);
    if (x0 >= maxX) x0 = maxX > 0 ? maxX - 1 : 0;
    if (y0 >= maxY) y0 = maxY > 0 ? maxY - 1 : 0;
    const fx = x - x0;
    const fy = y - y0;
    const i = y0 * w + x0;
    const dx = w > 1 ? 1 : 0;
    const dy = h > 1 ? w : 0;
    const p = src[i] as number;
    const q = src[i + dx] as number;
    const r = src[i + dy] as number;
    const s = src[i + dy + dx] as number;
    const v = p + (q - p) * fx + (r - p) * fy + (p - q - r + s) * fx * fy;
    out[at + k] = round ? Math.round(v) : v;
  }
  return outside;
}

/**
 * Catmull-Rom (Keys, a = -0.5) samples: like sampleRow, but the interpolation barely blurs, so a section
 * that was already resampled once (a real distortion, or a synthetic warp) loses less detail a second time,
 * and the blur no longer depends on the sub-pixel phase, which correlation would read as a shift.
 * Indices are clamped at the borders.
 */
export function sampleRowCubic(src: Section, w: number, h: number, xs: Float64Array, ys: Float64Array, count: number, out: Float64Array | Uint8Array | Uint16Array, at: number, fill?: number): number {
  if (w < 4 || h < 4) return sampleRow(src, w, h, xs, ys, count, out, at, fill);
  let outside = 0;
  const maxX = w - 1;
  const maxY = h - 1;
  const missing = fill ?? NaN;
  const integer = !(out instanceof Float64Array);
  const top = out instanceof Uint16Array ? 65535 : 255;
  const tol = 1e-3;
  for (let k = 0; k < count; k++) {
    let x = xs[k] as number;
    let y = ys[k] as number;
    if (!(x >= -tol && y >= -tol && x <= maxX + tol && y <= maxY + tol)) {
      out[at + k] = missing;
      outside++;
      continue;
    }
    x = x < 0 ? 0 : x > maxX ? maxX : x;
    y = y < 0 ? 0 : y > maxY ? maxY : y;
    const ix = Math.min(Math.floor(x), maxX - 1);
    const iy = Math.min(Math.floor(y), maxY - 1);
    const tx = x - ix;
    const ty = y - iy;
    const tx2 = tx * tx;
    const tx3 = tx2 * tx;
    const wx0 = 0.5 * (-tx3 + 2 * tx2 - tx);
    const wx1 = 0.5 * (3 * tx3 - 5 * tx2 + 2);
    const wx2 = 0.5 * (-3 * tx3 + 4 * tx2 + tx);
    const wx3 = 0.5 * (tx3 - tx2);
    const ty2 = ty * ty;
    const ty3 = ty2 * ty;
    const wy0 = 0.5 * (-ty3 + 2 * ty2 - ty);
    const wy1 = 0.5 * (3 * ty3 - 5 * ty2 + 2);
    const wy2 = 0.5 * (-3 * ty3 + 4 * ty2 + ty);
    const wy3 = 0.5 * (ty3 - ty2);
    const xa = ix > 0 ? ix - 1 : 0;
    const xd = ix + 2 <= maxX ? ix + 2 : maxX;
    let v = 0;
    for (let r = 0; r < 4; r++) {
      let yy = iy - 1 + r;
      yy = yy < 0 ? 0 : yy > maxY ? maxY : yy;
      const o = yy * w;
      const row = wx0 * (src[o + xa] as number) + wx1 * (src[o + ix] as number) + wx2 * (src[o + ix + 1] as number) + wx3 * (src[o + xd] as number);
      v += (r === 0 ? wy0 : r === 1 ? wy1 : r === 2 ? wy2 : wy3) * row;
    }
    // Cubic kernels overshoot: clamp to the output type's range.
    out[at + k] = integer ? Math.max(0, Math.min(top, Math.round(v))) : v;
  }
  return outside;
}

/** A size x size patch of the mapped section centred on (cx, cy); returns the count of pixels outside. */
export function samplePatch(src: Section, w: number, h: number, map: SectionMap, grid: Grid, cx: number, cy: number, size: number, out: Float64Array, xs: Float64Array, ys: Float64Array, cubic = false): number {
  const x0 = Math.round(cx - size / 2);
  const y0 = Math.round(cy - size / 2);
  if (!cubic) return samplePatchLinear(src, w, h, map, grid, x0, y0, size, out);
  let outside = 0;
  for (let j = 0; j < size; j++) {
    mapRow(map, grid, y0 + j, x0, size, xs, ys);
    outside += sampleRowCubic(src, w, h, xs, ys, size, out, j * size);
  }
  return outside;
}

let patchXs = new Float64Array(0);
let patchYs = new Float64Array(0);
let patchC0 = new Int32Array(0);
let patchC1 = new Int32Array(0);
let patchFx = new Float64Array(0);

/**
 * samplePatch's bilinear case: mapRow and sampleRow (Float64Array out, NaN outside) fused, with the
 * per-column part of mapRow (grid cell and fraction, the same for every row of the patch) computed once
 * per patch. Every value is the one that mapRow + sampleRow compute, by the same operations in the same order,
 * and the interpolated grid columns go through mapRow's buffers exactly as mapRow fills them.
 */
function samplePatchLinear(src: Section, w: number, h: number, map: SectionMap, grid: Grid, x0: number, y0: number, size: number, out: Float64Array): number {
  const [a, b, c, d, e, f] = map.affine;
  const field = map.field;
  const maxX = w - 1;
  const maxY = h - 1;
  const tol = 1e-3;
  const sdx = w > 1 ? 1 : 0;
  const sdy = h > 1 ? w : 0;
  let outside = 0;
  const { nx, ny, stride, ox, oy } = grid;
  const inv = 1 / stride;
  let i0 = 0;
  let i1 = 0;
  if (field) {
    if (patchC0.length < size) {
      patchC0 = new Int32Array(size);
      patchC1 = new Int32Array(size);
      patchFx = new Float64Array(size);
    }
    for (let k = 0; k < size; k++) {
      const x = x0 + k;
      let gx = (x - ox) * inv;
      gx = gx < 0 ? 0 : gx > nx - 1 ? nx - 1 : gx;
      const c0 = Math.min(Math.floor(gx), Math.max(0, nx - 2));
      patchC0[k] = c0;
      patchC1[k] = c0 + 1 < nx ? c0 + 1 : c0;
      patchFx[k] = gx - c0;
    }
    if (colX.length < nx) {
      colX = new Float64Array(nx);
      colY = new Float64Array(nx);
    }
    i0 = Math.max(0, Math.min(nx - 1, Math.floor((x0 - ox) / stride)));
    i1 = Math.max(0, Math.min(nx - 1, Math.ceil((x0 + size - 1 - ox) / stride)));
  }
  if (patchXs.length < size) {
    patchXs = new Float64Array(size);
    patchYs = new Float64Array(size);
  }
  const pxs = patchXs;
  const pys = patchYs;
  const cX = colX;
  const cY = colY;
  const pc0 = patchC0;
  const pc1 = patchC1;
  const pfx = patchFx;
  for (let j = 0; j < size; j++) {
    const y = y0 + j;
    if (field) {
      let gy = (y - oy) / stride;
      gy = gy < 0 ? 0 : gy > ny - 1 ? ny - 1 : gy;
      const j0 = Math.min(Math.floor(gy), Math.max(0, ny - 2));
      const j1 = Math.min(j0 + 1, ny - 1);
      const fy = gy - j0;
      for (let i = i0; i <= i1; i++) {
        const p = 2 * (j0 * nx + i);
        const q = 2 * (j1 * nx + i);
        cX[i] = (field[p] as number) * (1 - fy) + (field[q] as number) * fy;
        cY[i] = (field[p + 1] as number) * (1 - fy) + (field[q + 1] as number) * fy;
      }
    }
    const at = j * size;
    // The row's source coordinates first: when all of them lie strictly inside [0, w - 1) x [0, h - 1), the
    // bounds test and the clamps below change nothing and the row takes the loop without them.
    let inside = true;
    if (field) {
      // Runs of pixels in one grid cell share the cell's end values and their difference.
      for (let k = 0; k < size; ) {
        const c0 = pc0[k] as number;
        const c1 = pc1[k] as number;
        const bx = cX[c0] as number;
        const by = cY[c0] as number;
        const ex = (cX[c1] as number) - bx;
        const ey = (cY[c1] as number) - by;
        for (; k < size && pc0[k] === c0; k++) {
          const fx = pfx[k] as number;
          const qx = x0 + k + (bx + ex * fx);
          const qy = y + (by + ey * fx);
          const sx = a * qx + b * qy + c;
          const sy = d * qx + e * qy + f;
          pxs[k] = sx;
          pys[k] = sy;
          if (!(sx >= 0 && sx < maxX && sy >= 0 && sy < maxY)) inside = false;
        }
      }
    } else {
      for (let k = 0; k < size; k++) {
        const x = x0 + k;
        const sx = a * x + b * y + c;
        const sy = d * x + e * y + f;
        pxs[k] = sx;
        pys[k] = sy;
        if (!(sx >= 0 && sx < maxX && sy >= 0 && sy < maxY)) inside = false;
      }
    }
    if (inside) {
      for (let k = 0; k < size; k++) {
        const sx = pxs[k] as number;
        const sy = pys[k] as number;
        // Non-negative and below 2^31: truncation is Math.floor.
        const ix = sx | 0;
        const iy = sy | 0;
        const fx = sx - ix;
        const fy = sy - iy;
        const i = iy * w + ix;
        const p = src[i] as number;
        const q = src[i + 1] as number;
        const r = src[i + w] as number;
        const s = src[i + w + 1] as number;
        out[at + k] = p + (q - p) * fx + (r - p) * fy + (p - q - r + s) * fx * fy;
      }
      continue;
    }
    for (let k = 0; k < size; k++) {
      let sx = pxs[k] as number;
      let sy = pys[k] as number;
      if (!(sx >= -tol && sy >= -tol && sx <= maxX + tol && sy <= maxY + tol)) {
        out[at + k] = NaN;
        outside++;
        continue;
      }
      sx = sx < 0 ? 0 : sx > maxX ? maxX : sx;
      sy = sy < 0 ? 0 : sy > maxY ? maxY : sy;
      let ix = Math.floor(sx);
      let iy = Math.floor(sy);
      if (ix >= maxX) ix = maxX > 0 ? maxX - 1 : 0;
      if (iy >= maxY) iy = maxY > 0 ? maxY - 1 : 0;
      const fx = sx - ix;
      const fy = sy - iy;
      const i = iy * w + ix;
      const p = src[i] as number;
      const q = src[i + sdx] as number;
      const r = src[i + sdy] as number;
      const s = src[i + sdy + sdx] as number;
      out[at + k] = p + (q - p) * fx + (r - p) * fy + (p - q - r + s) * fx * fy;
    }
  }
  return outside;
}

/**
 * Renders output rows [y0, y1) of one section into `out` (row-major, full output width), so memory
 * beyond the output stays at two coordinate rows however large the section. Returns pixels outside.
 */
export function renderRows(src: Section, w: number, h: number, outW: number, map: SectionMap, grid: Grid, y0: number, y1: number, out: Uint8Array | Uint16Array, xs: Float64Array, ys: Float64Array, fill = 0, cubic = false): number {
  let outside = 0;
  for (let y = y0; y < y1; y++) {
    mapRow(map, grid, y, 0, outW, xs, ys);
    outside += cubic ? sampleRowCubic(src, w, h, xs, ys, outW, out, y * outW, fill) : sampleRow(src, w, h, xs, ys, outW, out, y * outW, fill);
  }
  return outside;
}
