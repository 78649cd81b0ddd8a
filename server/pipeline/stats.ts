/** Per-instance voxel statistics in one pass: count, bounding box (voxels, end exclusive), centroid (voxels). */
export interface InstanceStats {
  count: number;
  voxels: Float64Array;
  /** 6 per id: x0, y0, z0, x1, y1, z1. */
  bbox: Int32Array;
  /** 3 per id: mean voxel index + 0.5 (voxel centres), in voxel units. */
  centroid: Float64Array;
}

export function instanceStats(labels: Uint32Array, shape: readonly [number, number, number], count: number): InstanceStats {
  const [nx, ny, nz] = shape;
  const voxels = new Float64Array(count + 1);
  const bbox = new Int32Array(6 * (count + 1));
  const sums = new Float64Array(3 * (count + 1));
  for (let id = 0; id <= count; id++) {
    bbox.set([nx, ny, nz, 0, 0, 0], 6 * id);
  }
  let i = 0;
  for (let z = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++, i++) {
        const id = labels[i];
        if (id === 0) continue;
        voxels[id]++;
        const b = 6 * id;
        if (x < bbox[b]) bbox[b] = x;
        if (y < bbox[b + 1]) bbox[b + 1] = y;
        if (z < bbox[b + 2]) bbox[b + 2] = z;
        if (x >= bbox[b + 3]) bbox[b + 3] = x + 1;
        if (y >= bbox[b + 4]) bbox[b + 4] = y + 1;
        if (z >= bbox[b + 5]) bbox[b + 5] = z + 1;
        sums[3 * id] += x;
        sums[3 * id + 1] += y;
        sums[3 * id + 2] += z;
      }
    }
  }
  const centroid = new Float64Array(3 * (count + 1));
  for (let id = 1; id <= count; id++) {
    const n = voxels[id];
    if (n === 0) continue;
    for (let a = 0; a < 3; a++) centroid[3 * id + a] = sums[3 * id + a] / n + 0.5;
  }
  return { count, voxels, bbox, centroid };
}

/** One instance's binary mask cut to its bounding box (x fastest), for the per-object kernels. */
export function cropMask(labels: Uint32Array, shape: readonly [number, number, number], stats: InstanceStats, id: number): { mask: Uint8Array; shape: [number, number, number]; origin: [number, number, number] } {
  return cropBox(labels, shape, stats.bbox.subarray(6 * id, 6 * id + 6), id);
}

/** The voxels of `id` inside box b (x0, y0, z0, x1, y1, z1, end exclusive) as a binary mask, x fastest. */
export function cropBox(labels: Uint32Array, shape: readonly [number, number, number], b: ArrayLike<number>, id: number): { mask: Uint8Array; shape: [number, number, number]; origin: [number, number, number] } {
  const [nx, ny] = shape;
  const cs: [number, number, number] = [b[3] - b[0], b[4] - b[1], b[5] - b[2]];
  const mask = new Uint8Array(Math.max(0, cs[0] * cs[1] * cs[2]));
  let o = 0;
  for (let z = b[2]; z < b[5]; z++) {
    for (let y = b[1]; y < b[4]; y++) {
      const row = b[0] + nx * (y + ny * z);
      for (let x = 0; x < cs[0]; x++, o++) if (labels[row + x] === id) mask[o] = 1;
    }
  }
  return { mask, shape: cs, origin: [b[0], b[1], b[2]] };
}
