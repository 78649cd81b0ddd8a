/**
 * Voxelisation by voxel-centre inside tests on the analytic shapes, each evaluated only inside its
 * bounding box. Organelles are written first with their instance ids; a voxel claimed twice by
 * organelles, or by an organelle and the ER, is counted as a conflict (the layout guarantees none).
 */
import type { Vec3 } from "./geometry.js";
import { distSqPointBox, distSqPointCentreline } from "./geometry.js";
import { CLASS_CODES, organelleBounds, type ErElement, type Organelle } from "./shapes.js";

export interface Raster {
  labels: Uint8Array;
  /** Organelle id per voxel (0 for background and ER). */
  instances: Uint16Array;
  voxelCounts: Map<number, number>;
  /** Inclusive voxel index bounds of each organelle's voxels. */
  voxelBounds: Map<number, { min: Vec3; max: Vec3 }>;
  conflicts: number;
}

function indexRange(lo: number, hi: number, v: number, n: number): [number, number] {
  return [Math.max(0, Math.ceil(lo / v - 0.5)), Math.min(n - 1, Math.floor(hi / v - 0.5))];
}

export function rasterise(organelles: readonly Organelle[], er: readonly ErElement[], size: Vec3, voxel: Vec3): Raster {
  const [nx, ny, nz] = size;
  const [vx, vy, vz] = voxel;
  const labels = new Uint8Array(nx * ny * nz);
  const instances = new Uint16Array(nx * ny * nz);
  const voxelCounts = new Map<number, number>();
  const voxelBounds = new Map<number, { min: Vec3; max: Vec3 }>();
  let conflicts = 0;

  for (const o of organelles) {
    const b = organelleBounds(o);
    const [i0, i1] = indexRange(b.lo[0], b.hi[0], vx, nx);
    const [j0, j1] = indexRange(b.lo[1], b.hi[1], vy, ny);
    const [k0, k1] = indexRange(b.lo[2], b.hi[2], vz, nz);
    const r2 = o.r * o.r;
    const code = CLASS_CODES[o.cls];
    const min: Vec3 = [Infinity, Infinity, Infinity];
    const max: Vec3 = [-Infinity, -Infinity, -Infinity];
    let count = 0;
    for (let k = k0; k <= k1; k++) {
      const z = (k + 0.5) * vz;
      for (let j = j0; j <= j1; j++) {
        const y = (j + 0.5) * vy;
        const row = nx * (j + ny * k);
        for (let i = i0; i <= i1; i++) {
          const x = (i + 0.5) * vx;
          let inside = false;
          for (const p of o.prims) {
            if (distSqPointCentreline(x, y, z, p) <= r2) {
              inside = true;
              break;
            }
          }
          if (!inside) continue;
          const at = row + i;
          if (labels[at] !== 0) conflicts++;
          labels[at] = code;
          instances[at] = o.id;
          count++;
          if (i < min[0]) min[0] = i;
          if (j < min[1]) min[1] = j;
          if (k < min[2]) min[2] = k;
          if (i > max[0]) max[0] = i;
          if (j > max[1]) max[1] = j;
          if (k > max[2]) max[2] = k;
        }
      }
    }
    voxelCounts.set(o.id, count);
    voxelBounds.set(o.id, { min, max });
  }

  const erCode = CLASS_CODES.er;
  for (const e of er) {
    const [i0, i1] = indexRange(e.box.lo[0] - e.r, e.box.hi[0] + e.r, vx, nx);
    const [j0, j1] = indexRange(e.box.lo[1] - e.r, e.box.hi[1] + e.r, vy, ny);
    const [k0, k1] = indexRange(e.box.lo[2] - e.r, e.box.hi[2] + e.r, vz, nz);
    const r2 = e.r * e.r;
    for (let k = k0; k <= k1; k++) {
      const z = (k + 0.5) * vz;
      for (let j = j0; j <= j1; j++) {
        const y = (j + 0.5) * vy;
        const row = nx * (j + ny * k);
        for (let i = i0; i <= i1; i++) {
          if (distSqPointBox((i + 0.5) * vx, y, z, e.box) > r2) continue;
          const at = row + i;
          const prev = labels[at];
          if (prev === erCode) continue;
          if (prev !== 0) conflicts++;
          labels[at] = erCode;
        }
      }
    }
  }
  return { labels, instances, voxelCounts, voxelBounds, conflicts };
}
