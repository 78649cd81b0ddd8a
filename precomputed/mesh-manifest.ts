/**
 * The `<id>.index` manifest of a multi-resolution mesh (neuroglancer src/datasource/precomputed/meshes.md; decoded by
 * `decodeMultiscaleManifestChunk`): chunk shape, grid origin, per-lod scales and vertex offsets, fragment positions
 * (z-curve order) and byte sizes. mesh-multires.ts writes the fragments it indexes.
 */
import type { Vec3 } from "./array.js";
import { PrecomputedError } from "./errors.js";
import { zorderLess } from "./mesh-fragments.js";

export interface MultiresLodManifest {
  /** Octree cell of each fragment, in cells of `chunkShape * 2^lod`, strictly increasing in z-curve order. */
  fragmentPositions: Vec3[];
  /** Encoded size in bytes of each fragment; 0 marks an empty cell. */
  fragmentSizes: number[];
}

export interface MultiresManifest {
  chunkShape: Vec3;
  gridOrigin: Vec3;
  /** Per lod, the size of detail it shows, in stored-model units (times the info's lod_scale_multiplier). */
  lodScales: number[];
  vertexOffsets: Vec3[];
  lods: MultiresLodManifest[];
}

const isUint32 = (v: number): boolean => Number.isInteger(v) && v >= 0 && v <= 0xffffffff;

export function checkManifest(m: MultiresManifest, code: "invalid_argument" | "invalid_chunk"): void {
  const vec = (v: Vec3, what: string, positive: boolean): void => {
    if (v.length !== 3 || v.some((x) => !Number.isFinite(x) || (positive && !(x > 0)))) {
      throw new PrecomputedError(code, positive ? "expected 3 finite positive numbers" : "expected 3 finite numbers", what);
    }
  };
  vec(m.chunkShape, "chunk_shape", true);
  vec(m.gridOrigin, "grid_origin", false);
  const n = m.lods.length;
  // Neuroglancer sums the fragment counts with a reduce that has no initial value: zero lods crash it.
  if (n < 1) throw new PrecomputedError(code, "a manifest needs at least one lod", "num_lods");
  if (m.lodScales.length !== n || m.vertexOffsets.length !== n) throw new PrecomputedError(code, `expected ${n} lod scales and vertex offsets`, "lod_scales");
  m.lodScales.forEach((s, i) => {
    if (!Number.isFinite(s) || s < 0) throw new PrecomputedError(code, "expected a finite non-negative number", `lod_scales[${i}]`);
  });
  m.vertexOffsets.forEach((v, i) => vec(v, `vertex_offsets[${i}]`, false));
  m.lods.forEach((lod, k) => {
    const { fragmentPositions: pos, fragmentSizes: sizes } = lod;
    if (pos.length !== sizes.length) throw new PrecomputedError(code, "fragment positions and sizes differ in length", `lods[${k}]`);
    pos.forEach((p, i) => {
      if (p.length !== 3 || !p.every(isUint32)) throw new PrecomputedError(code, "expected 3 uint32 cell coordinates", `lods[${k}].fragment_positions[${i}]`);
      if (i > 0 && !zorderLess(pos[i - 1], p)) {
        throw new PrecomputedError(code, "fragment positions must be strictly increasing in z-curve order", `lods[${k}].fragment_positions[${i}]`);
      }
    });
    sizes.forEach((s, i) => {
      if (!isUint32(s)) throw new PrecomputedError(code, "expected a uint32 byte count", `lods[${k}].fragment_offsets[${i}]`);
    });
  });
}

export function encodeMultiresManifest(m: MultiresManifest): Uint8Array {
  checkManifest(m, "invalid_argument");
  const n = m.lods.length;
  const total = m.lods.reduce((s, l) => s + l.fragmentPositions.length, 0);
  const bytes = new Uint8Array(28 + 20 * n + 16 * total);
  const dv = new DataView(bytes.buffer);
  let o = 0;
  const f32 = (v: number): void => {
    dv.setFloat32(o, v, true);
    o += 4;
  };
  const u32 = (v: number): void => {
    dv.setUint32(o, v, true);
    o += 4;
  };
  m.chunkShape.forEach(f32);
  m.gridOrigin.forEach(f32);
  u32(n);
  m.lodScales.forEach(f32);
  m.vertexOffsets.forEach((v) => v.forEach(f32));
  m.lods.forEach((l) => u32(l.fragmentPositions.length));
  for (const l of m.lods) {
    for (let d = 0; d < 3; ++d) for (const p of l.fragmentPositions) u32(p[d]);
    l.fragmentSizes.forEach(u32);
  }
  return bytes;
}

/** Decodes and checks a `<id>.index` manifest; anything malformed is a PrecomputedError("invalid_chunk"). */
export function readMultiresManifest(bytes: Uint8Array): MultiresManifest {
  if (!(bytes instanceof Uint8Array)) throw new PrecomputedError("invalid_argument", "expected a Uint8Array");
  const size = bytes.byteLength;
  if (size < 28 || size % 4 !== 0) throw new PrecomputedError("invalid_chunk", `manifest of ${size} bytes is too short or not a multiple of 4`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, size);
  let o = 0;
  const f32 = (): number => {
    const v = dv.getFloat32(o, true);
    o += 4;
    return v;
  };
  const u32 = (): number => {
    const v = dv.getUint32(o, true);
    o += 4;
    return v;
  };
  const vec = (read: () => number): Vec3 => [read(), read(), read()];
  const chunkShape = vec(f32);
  const gridOrigin = vec(f32);
  const n = u32();
  // Checked before allocating anything sized by n, so a corrupt count cannot ask for gigabytes.
  if (o + 20 * n > size) throw new PrecomputedError("invalid_chunk", `manifest of ${size} bytes cannot hold ${n} lods`, "num_lods");
  const lodScales = Array.from({ length: n }, f32);
  const vertexOffsets = Array.from({ length: n }, () => vec(f32));
  const counts = Array.from({ length: n }, u32);
  const total = counts.reduce((s, c) => s + c, 0);
  if (size !== o + 16 * total) {
    throw new PrecomputedError("invalid_chunk", `manifest of ${size} bytes does not match ${n} lods with ${total} fragments`, "num_fragments_per_lod");
  }
  const lods = counts.map((count): MultiresLodManifest => {
    const cols = [0, 1, 2, 3].map(() => Array.from({ length: count }, u32));
    return { fragmentPositions: cols[0].map((x, i): Vec3 => [x, cols[1][i], cols[2][i]]), fragmentSizes: cols[3] };
  });
  const m: MultiresManifest = { chunkShape, gridOrigin, lodScales, vertexOffsets, lods };
  checkManifest(m, "invalid_chunk");
  return m;
}

/** Byte range of every fragment in the data file `<id>`, per lod, in manifest order. */
export function multiresFragmentRanges(m: MultiresManifest): { offset: number; size: number }[][] {
  let offset = 0;
  return m.lods.map((l) =>
    l.fragmentSizes.map((size) => {
      const r = { offset, size };
      offset += size;
      return r;
    }),
  );
}
