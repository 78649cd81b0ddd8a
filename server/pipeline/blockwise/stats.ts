import type { Vec3 } from "../../../precomputed/array.js";
import type { InstanceStats } from "../stats.js";

/**
 * stats.ts's instanceStats gathered block by block. Counts and coordinate sums are integers, exact in float64 in
 * any order, so the centroids equal the whole-volume ones bit for bit.
 */
export class BlockStats {
  private voxels = new Float64Array(1024);
  private bbox = new Int32Array(6 * 1024);
  private sums = new Float64Array(3 * 1024);

  constructor(private readonly shape: Vec3) {
    this.resetBoxes(0);
  }

  add(labels: Uint32Array, origin: readonly number[], extent: readonly number[]): void {
    const [ox, oy, oz] = origin;
    const [ex, ey, ez] = extent;
    let i = 0;
    for (let z = oz; z < oz + ez; z++) {
      for (let y = oy; y < oy + ey; y++) {
        for (let x = ox; x < ox + ex; x++, i++) {
          const id = labels[i];
          if (id === 0) continue;
          if (id >= this.voxels.length) this.grow(id + 1);
          this.voxels[id]++;
          const b = 6 * id;
          const box = this.bbox;
          if (x < box[b]) box[b] = x;
          if (y < box[b + 1]) box[b + 1] = y;
          if (z < box[b + 2]) box[b + 2] = z;
          if (x >= box[b + 3]) box[b + 3] = x + 1;
          if (y >= box[b + 4]) box[b + 4] = y + 1;
          if (z >= box[b + 5]) box[b + 5] = z + 1;
          this.sums[3 * id] += x;
          this.sums[3 * id + 1] += y;
          this.sums[3 * id + 2] += z;
        }
      }
    }
  }

  /**
   * A block's share gathered elsewhere (ccl.ts relabelBlockTask): per entry an id (0 = none), its voxel count,
   * box [x0, y0, z0, x1, y1, z1) and coordinate sums. An id may appear in many blocks and many entries.
   */
  addPartial(ids: Uint32Array, voxels: Float64Array, bbox: Int32Array, sums: Float64Array): void {
    for (let k = 0; k < ids.length; k++) {
      const id = ids[k];
      if (id === 0 || voxels[k] === 0) continue;
      if (id >= this.voxels.length) this.grow(id + 1);
      this.voxels[id] += voxels[k];
      const b = 6 * id;
      const box = this.bbox;
      for (let a = 0; a < 3; a++) {
        if (bbox[6 * k + a] < box[b + a]) box[b + a] = bbox[6 * k + a];
        if (bbox[6 * k + 3 + a] > box[b + 3 + a]) box[b + 3 + a] = bbox[6 * k + 3 + a];
        this.sums[3 * id + a] += sums[3 * k + a];
      }
    }
  }

  finish(count: number): InstanceStats {
    if (count + 1 > this.voxels.length) this.grow(count + 1);
    const voxels = this.voxels.slice(0, count + 1);
    const bbox = this.bbox.slice(0, 6 * (count + 1));
    const centroid = new Float64Array(3 * (count + 1));
    for (let id = 1; id <= count; id++) {
      const n = voxels[id];
      if (n === 0) continue;
      for (let a = 0; a < 3; a++) centroid[3 * id + a] = this.sums[3 * id + a] / n + 0.5;
    }
    return { count, voxels, bbox, centroid };
  }

  private grow(need: number): void {
    let n = this.voxels.length;
    while (n < need) n *= 2;
    const from = this.voxels.length;
    const voxels = new Float64Array(n);
    voxels.set(this.voxels);
    const bbox = new Int32Array(6 * n);
    bbox.set(this.bbox);
    const sums = new Float64Array(3 * n);
    sums.set(this.sums);
    this.voxels = voxels;
    this.bbox = bbox;
    this.sums = sums;
    this.resetBoxes(from);
  }

  private resetBoxes(from: number): void {
    const [nx, ny, nz] = this.shape;
    for (let id = from; id < this.voxels.length; id++) this.bbox.set([nx, ny, nz, 0, 0, 0], 6 * id);
  }
}
