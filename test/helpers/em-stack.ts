/** A small real EM stack the aligner has work on: for runs of the whole pipeline from an image alone. */
import type { Vec3 } from "../../precomputed/array.js";
import { emNeighbour288 } from "../../server/pipeline/align/fixtures.js";

/** Fixture sections 0-3 there and back: consecutive sections share features like real neighbours. */
const ORDER = [0, 1, 2, 3, 2, 1, 0, 1];

/** Real SBEM sections (288 x 288, the alignment fixtures), each moved by a few whole pixels (edges repeated). */
export async function shiftedEmStack(): Promise<{ data: Uint8Array; shape: Vec3 }> {
  const shape: Vec3 = [288, 288, ORDER.length];
  const [nx, ny, nz] = shape;
  const sections = await Promise.all(ORDER.map((i) => emNeighbour288(i)));
  const data = new Uint8Array(nx * ny * nz);
  for (let z = 0; z < nz; z++) {
    const src = sections[z]?.data ?? new Uint8Array(nx * ny);
    const dx = [0, 3, -2, 4, 1][z % 5] ?? 0;
    const dy = [0, -2, 3, 1, -3][z % 5] ?? 0;
    for (let y = 0; y < ny; y++) {
      const sy = Math.min(ny - 1, Math.max(0, y - dy));
      for (let x = 0; x < nx; x++) data[x + nx * (y + ny * z)] = src[Math.min(nx - 1, Math.max(0, x - dx)) + nx * sy] ?? 0;
    }
  }
  return { data, shape };
}
