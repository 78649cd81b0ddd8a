/**
 * MurmurHash3 x86_128 (Austin Appleby's reference `MurmurHash3_x86_128`) over arbitrary bytes, and the
 * compressed Morton code Neuroglancer uses as the chunk id of a volumetric chunk in a sharded scale.
 *
 * The general byte form exists so the hash can be checked against the published reference vectors;
 * sharding only ever hashes one uint64 (8 bytes, little-endian, seed 0) and keeps the low 64 bits.
 */

const C1 = 0x239b961b;
const C2 = 0xab0e9789;
const C3 = 0x38b34ae5;
const C4 = 0xa1e38b93;

const rotl = (x: number, r: number): number => (x << r) | (x >>> (32 - r));

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The 128-bit hash as four uint32 words h1..h4 (the reference writes them in this order, little-endian). */
export function murmurHash3X86_128(bytes: Uint8Array, seed = 0): [number, number, number, number] {
  let h1 = seed >>> 0;
  let h2 = h1;
  let h3 = h1;
  let h4 = h1;
  const len = bytes.length;
  const blocks = Math.floor(len / 16);
  const word = (i: number): number => bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24);
  for (let b = 0; b < blocks; b++) {
    const o = b * 16;
    let k1 = word(o);
    let k2 = word(o + 4);
    let k3 = word(o + 8);
    let k4 = word(o + 12);
    k1 = Math.imul(rotl(Math.imul(k1, C1), 15), C2);
    h1 ^= k1;
    h1 = rotl(h1, 19) + h2;
    h1 = (Math.imul(h1, 5) + 0x561ccd1b) | 0;
    k2 = Math.imul(rotl(Math.imul(k2, C2), 16), C3);
    h2 ^= k2;
    h2 = rotl(h2, 17) + h3;
    h2 = (Math.imul(h2, 5) + 0x0bcaa747) | 0;
    k3 = Math.imul(rotl(Math.imul(k3, C3), 17), C4);
    h3 ^= k3;
    h3 = rotl(h3, 15) + h4;
    h3 = (Math.imul(h3, 5) + 0x96cd1c35) | 0;
    k4 = Math.imul(rotl(Math.imul(k4, C4), 18), C1);
    h4 ^= k4;
    h4 = rotl(h4, 13) + h1;
    h4 = (Math.imul(h4, 5) + 0x32ac3b17) | 0;
  }
  const tail = blocks * 16;
  const rest = len & 15;
  const k = [0, 0, 0, 0];
  for (let i = rest - 1; i >= 0; i--) k[i >> 2] ^= bytes[tail + i] << ((i & 3) * 8);
  if (rest > 12) h4 ^= Math.imul(rotl(Math.imul(k[3], C4), 18), C1);
  if (rest > 8) h3 ^= Math.imul(rotl(Math.imul(k[2], C3), 17), C4);
  if (rest > 4) h2 ^= Math.imul(rotl(Math.imul(k[1], C2), 16), C3);
  if (rest > 0) h1 ^= Math.imul(rotl(Math.imul(k[0], C1), 15), C2);
  h1 ^= len;
  h2 ^= len;
  h3 ^= len;
  h4 ^= len;
  h1 = (h1 + h2 + h3 + h4) | 0;
  h2 = (h2 + h1) | 0;
  h3 = (h3 + h1) | 0;
  h4 = (h4 + h1) | 0;
  h1 = fmix32(h1);
  h2 = fmix32(h2);
  h3 = fmix32(h3);
  h4 = fmix32(h4);
  h1 = (h1 + h2 + h3 + h4) >>> 0;
  h2 = (h2 + h1) >>> 0;
  h3 = (h3 + h1) >>> 0;
  h4 = (h4 + h1) >>> 0;
  return [h1, h2, h3, h4];
}

/** The sharding hash of a uint64 key: the low 64 bits of murmurhash3_x86_128 of its 8 little-endian bytes, seed 0. */
export function murmurHashUint64(key: bigint): bigint {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigUint64(0, BigInt.asUintN(64, key), true);
  const [h1, h2] = murmurHash3X86_128(bytes, 0);
  return BigInt(h1) | (BigInt(h2) << 32n);
}

/**
 * Compressed Morton code of a chunk's grid position: bits of x, y, z interleaved from the lowest, each axis
 * contributing only while it still has bits (ceil(log2(grid extent)) of them). Neuroglancer's chunk id for
 * volumetric chunks in a sharded scale.
 */
export function compressedMortonCode(position: readonly number[], gridShape: readonly number[]): bigint {
  const bits = gridShape.map((n) => Math.ceil(Math.log2(n)));
  const maxBits = Math.max(0, ...bits);
  let code = 0n;
  let bitAt = 0n;
  for (let bit = 0; bit < maxBits; bit++) {
    for (let d = 0; d < position.length; d++) {
      if (bit < bits[d]) {
        code |= BigInt((position[d] >>> bit) & 1) << bitAt;
        bitAt++;
      }
    }
  }
  return code;
}
