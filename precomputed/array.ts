/** Typed arrays a precomputed volume can hold. */
export type VoxelArray = Uint8Array | Uint16Array | Uint32Array | BigUint64Array | Float32Array;
export type DataType = "uint8" | "uint16" | "uint32" | "uint64" | "float32";

/**
 * A dense 3D (optionally multi-channel) block in Neuroglancer's memory order: x fastest, then y, z, channel.
 * `shape` is [x, y, z]; `channels` defaults to 1.
 */
export interface Volume<T extends VoxelArray = VoxelArray> {
  data: T;
  shape: [number, number, number];
  channels?: number;
}

export type Vec3 = [number, number, number];

export const BYTES_PER_VOXEL: Record<DataType, number> = {
  uint8: 1,
  uint16: 2,
  uint32: 4,
  uint64: 8,
  float32: 4,
};

export function allocate(dataType: DataType, length: number): VoxelArray {
  const ctor = {
    uint8: Uint8Array,
    uint16: Uint16Array,
    uint32: Uint32Array,
    uint64: BigUint64Array,
    float32: Float32Array,
  }[dataType];
  return new ctor(length);
}

export function dataTypeOf(a: VoxelArray): DataType {
  if (a instanceof Uint8Array) return "uint8";
  if (a instanceof Uint16Array) return "uint16";
  if (a instanceof Uint32Array) return "uint32";
  if (a instanceof BigUint64Array) return "uint64";
  return "float32";
}

/** Growable uint32 list (mesh indices and fragment buffers): amortised doubling, no per-push allocation. */
export class GrowableU32 {
  data: Uint32Array;
  length = 0;
  constructor(capacity = 64) {
    this.data = new Uint32Array(capacity);
  }
  push(v: number): void {
    if (this.length === this.data.length) {
      const next = new Uint32Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = v;
  }
  toArray(): Uint32Array {
    return this.data.slice(0, this.length);
  }
}
