import { describe, expect, it } from "vitest";
import { decodeChannels as ngDecode32 } from "neuroglancer/unstable/sliceview/compressed_segmentation/decode_uint32.js";
import { decodeChannels as ngDecode64 } from "neuroglancer/unstable/sliceview/compressed_segmentation/decode_uint64.js";
import { encodeChannels as ngEncode32 } from "neuroglancer/unstable/sliceview/compressed_segmentation/encode_uint32.js";
import { encodeChannels as ngEncode64 } from "neuroglancer/unstable/sliceview/compressed_segmentation/encode_uint64.js";
import { TypedArrayBuilder } from "neuroglancer/unstable/util/array.js";
import type { Vec3, Volume } from "../array.js";
import { PrecomputedError } from "../errors.js";
import { mulberry32 } from "../testing/random.js";
import { compressedSegmentationCodec as codec, encodeCompressedSegmentation } from "./compressed-segmentation.js";
import { decodeChunk, encodeChunk } from "./index.js";

type Labels = Uint32Array | BigUint64Array;

/** Labels drawn from a palette of `distinct` values, so every block has at most that many. */
function labels(kind: "uint32" | "uint64", n: number, distinct: number, seed: number): Labels {
  const rand = mulberry32(seed);
  const palette = Array.from({ length: distinct }, (_, i) => (i === 0 ? 0 : Math.floor(rand() * 2 ** 32)));
  if (kind === "uint32") return Uint32Array.from({ length: n }, () => palette[Math.floor(rand() * distinct)]);
  const hi = palette.map(() => BigInt(Math.floor(rand() * 2 ** 32)) << 32n);
  return BigUint64Array.from({ length: n }, () => {
    const i = Math.floor(rand() * distinct);
    return hi[i] | BigInt(palette[i]);
  });
}

function volumeOf(data: Labels, shape: Vec3, channels = 1): Volume {
  return { data, shape, channels };
}

function ngEncode(v: Volume, block: Vec3): Uint32Array {
  const out = new TypedArrayBuilder(Uint32Array, 1024);
  const size = [...v.shape, v.channels ?? 1];
  if (v.data instanceof Uint32Array) ngEncode32(out, block, v.data, size);
  else if (v.data instanceof BigUint64Array) ngEncode64(out, block, v.data, size);
  return out.view.slice();
}

function ngDecode(words: Uint32Array, v: Volume, block: Vec3): Labels {
  const size = [...v.shape, v.channels ?? 1];
  if (v.data instanceof Uint32Array) return ngDecode32(new Uint32Array(v.data.length), words, 0, size, block);
  return ngDecode64(new BigUint64Array(v.data.length), words, 0, size, block);
}

/** -1 when equal; otherwise the first differing index (keeps failure output small for big arrays). */
function mismatch(a: ArrayLike<number | bigint>, b: ArrayLike<number | bigint>): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

const asBytes = (w: Uint32Array) => new Uint8Array(w.buffer, w.byteOffset, w.byteLength);

/** encodedBits of every block header of channel 0. */
function headerBits(words: Uint32Array, shape: Vec3, block: Vec3): Set<number> {
  const blocks = shape.reduce((n, s, d) => n * Math.ceil(s / block[d]), 1);
  const bits = new Set<number>();
  for (let b = 0; b < blocks; b++) bits.add(words[words[0] + 2 * b] >>> 24);
  return bits;
}

const CASES: { shape: Vec3; block: Vec3; channels: number; distinct: number }[] = [
  { shape: [37, 19, 5], block: [8, 8, 8], channels: 1, distinct: 5 },
  { shape: [37, 19, 5], block: [8, 8, 8], channels: 3, distinct: 40 },
  { shape: [16, 16, 16], block: [8, 8, 8], channels: 1, distinct: 2 },
  { shape: [9, 7, 3], block: [4, 2, 3], channels: 2, distinct: 3 },
  { shape: [1, 1, 1], block: [8, 8, 8], channels: 1, distinct: 1 },
  { shape: [64, 64, 8], block: [8, 8, 8], channels: 1, distinct: 300 },
  { shape: [13, 1, 1], block: [1, 1, 1], channels: 1, distinct: 4 },
];

describe("compressed_segmentation", () => {
  for (const kind of ["uint32", "uint64"] as const) {
    for (const c of CASES) {
      const label = `${kind} ${c.shape.join("x")} block ${c.block.join("x")} x${c.channels} (${c.distinct} labels)`;
      it(`round-trips and matches Neuroglancer: ${label}`, async () => {
        const n = c.shape[0] * c.shape[1] * c.shape[2] * c.channels;
        const v = volumeOf(labels(kind, n, c.distinct, n + c.distinct), c.shape, c.channels);
        const bytes = await encodeChunk("compressed_segmentation", v, { blockSize: c.block });
        const params = { dataType: kind, shape: c.shape, channels: c.channels, blockSize: c.block };
        expect(mismatch((await decodeChunk("compressed_segmentation", bytes, params)).data, v.data)).toBe(-1);
        // Neuroglancer's decoder reads our bytes...
        const words = new Uint32Array(bytes.slice().buffer);
        expect(mismatch(ngDecode(words, v, c.block), v.data)).toBe(-1);
        // ...Neuroglancer's encoder produces bytes we read...
        const theirs = ngEncode(v, c.block);
        expect(mismatch((await codec.decode(asBytes(theirs), params)).data, v.data)).toBe(-1);
        // ...and both encoders make the same layout, word for word (same order, dedup and padding).
        expect(mismatch(words, theirs)).toBe(-1);
      });
    }
  }

  it("uses every bit width 0, 1, 2, 4, 8, 16, 32 as the number of distinct values grows", async () => {
    const block: Vec3 = [64, 64, 17];
    const shape: Vec3 = [64, 64, 17];
    const n = shape[0] * shape[1] * shape[2];
    const expected: [number, number][] = [[1, 0], [2, 1], [3, 2], [4, 2], [5, 4], [16, 4], [17, 8], [256, 8], [257, 16], [65536, 16], [65537, 32]];
    for (const [distinct, bits] of expected) {
      const data = new Uint32Array(n);
      for (let i = 0; i < n; i++) data[i] = (i % distinct) * 7919 + 1;
      const words = encodeCompressedSegmentation(volumeOf(data, shape), block);
      expect(headerBits(words, shape, block)).toEqual(new Set([bits]));
      // Neuroglancer's JS decoder masks with (1 << bits) - 1, which is 0 for bits = 32 (JS shifts mod 32),
      // so it cannot read 32-bit blocks; its own encoder writes them too. Compare with it below 32 only.
      if (bits < 32) expect(mismatch(ngDecode32(new Uint32Array(n), words, 0, [...shape, 1], block), data)).toBe(-1);
      const back = await codec.decode(asBytes(words), { dataType: "uint32", shape, channels: 1, blockSize: block });
      expect(mismatch(back.data, data)).toBe(-1);
    }
    // All unique uint64 values need 32 bits too.
    const big = BigUint64Array.from({ length: n }, (_, i) => (BigInt(i) << 33n) | 5n);
    const words = encodeCompressedSegmentation(volumeOf(big, shape), block);
    expect(headerBits(words, shape, block)).toEqual(new Set([32]));
    const back = await codec.decode(asBytes(words), { dataType: "uint64", shape, channels: 1, blockSize: block });
    expect(mismatch(back.data, big)).toBe(-1);
  });

  it("writes a lookup table shared by several blocks only once", () => {
    const shape: Vec3 = [32, 16, 8];
    const block: Vec3 = [8, 8, 8];
    const data = Uint32Array.from({ length: 32 * 16 * 8 }, (_, i) => (i % 3 === 0 ? 10 : 20));
    const words = encodeCompressedSegmentation(volumeOf(data, shape), block);
    const blocks = 4 * 2 * 1;
    // channel header + block headers + 1-bit values (16 words per 512-voxel block) + one 2-entry table
    expect(words.length).toBe(1 + 2 * blocks + 16 * blocks + 2);
    const tableOffsets = new Set(Array.from({ length: blocks }, (_, b) => words[1 + 2 * b] & 0xffffff));
    expect(tableOffsets.size).toBe(1);
    const table = 1 + [...tableOffsets][0];
    expect([...words.slice(table, table + 2)]).toEqual([10, 20]);
  });

  it("treats partial edge blocks as padded: only in-volume voxels decide the table", () => {
    const shape: Vec3 = [9, 8, 8];
    const data = new Uint32Array(9 * 8 * 8).fill(4);
    const words = encodeCompressedSegmentation(volumeOf(data, shape), [8, 8, 8]);
    expect(headerBits(words, shape, [8, 8, 8])).toEqual(new Set([0]));
    expect(words.length).toBe(1 + 2 * 2 + 1);
  });

  it("rejects bad arguments", async () => {
    const v = volumeOf(new Uint32Array(8), [2, 2, 2]);
    await expect(codec.encode(v, {})).rejects.toMatchObject({ code: "invalid_argument" });
    await expect(codec.encode({ data: new Uint8Array(8), shape: [2, 2, 2] }, { blockSize: [2, 2, 2] })).rejects.toMatchObject({ code: "invalid_argument" });
    await expect(codec.encode(volumeOf(new Uint32Array(7), [2, 2, 2]), { blockSize: [2, 2, 2] })).rejects.toMatchObject({ code: "invalid_argument" });
    await expect(codec.decode(new Uint8Array(8), { dataType: "uint32", shape: [2, 2, 2], channels: 1 })).rejects.toMatchObject({ code: "invalid_argument" });
  });
});

describe("compressed_segmentation decoder on malformed input", () => {
  const shape: Vec3 = [37, 19, 5];
  const block: Vec3 = [8, 8, 8];

  async function expectRejects(bytes: Uint8Array, kind: "uint32" | "uint64", channels: number, why: string): Promise<void> {
    const err = await codec.decode(bytes, { dataType: kind, shape, channels, blockSize: block }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err, why).toBeInstanceOf(PrecomputedError);
    expect((err as PrecomputedError).code, why).toBe("invalid_chunk");
  }

  it("rejects every truncation (>= 100 cases)", async () => {
    const rand = mulberry32(99);
    let cases = 0;
    for (const kind of ["uint32", "uint64"] as const) {
      for (const channels of [1, 2]) {
        const v = volumeOf(labels(kind, 37 * 19 * 5 * channels, 9, channels), shape, channels);
        const bytes = await codec.encode(v, { blockSize: block });
        for (let i = 0; i < 30; i++) {
          const len = i < 4 ? [0, 1, 3, bytes.length - 1][i] : Math.floor(rand() * bytes.length);
          await expectRejects(bytes.slice(0, len), kind, channels, `truncated to ${len} of ${bytes.length}`);
          cases++;
        }
      }
    }
    expect(cases).toBeGreaterThanOrEqual(100);
  });

  it("rejects bad bit widths, offsets past the end and bad channel offsets (>= 100 cases)", async () => {
    const rand = mulberry32(5);
    const v = volumeOf(labels("uint64", 37 * 19 * 5, 9, 3), shape);
    const good = new Uint32Array((await codec.encode(v, { blockSize: block })).slice().buffer);
    const blocks = 5 * 3 * 1;
    const corruptions: [string, (w: Uint32Array) => void][] = [
      ["bit width", (w) => {
        const b = 1 + 2 * Math.floor(rand() * blocks);
        const bad = [3, 5, 6, 7, 9, 12, 31, 33, 64, 255][Math.floor(rand() * 10)];
        w[b] = (w[b] & 0xffffff) | (bad << 24);
      }],
      ["table offset", (w) => {
        const b = 1 + 2 * Math.floor(rand() * blocks);
        w[b] = (w[b] & 0xff000000) | (w.length + Math.floor(rand() * 0xfff000));
      }],
      ["values offset", (w) => {
        const b = 2 + 2 * Math.floor(rand() * blocks);
        w[b] = w.length - 1 + Math.floor(rand() * 2 ** 31);
      }],
      ["channel offset", (w) => {
        w[0] = rand() < 0.5 ? 0 : w.length + Math.floor(rand() * 1000);
      }],
    ];
    let cases = 0;
    for (const [what, corrupt] of corruptions) {
      for (let i = 0; i < 30; i++) {
        const w = good.slice();
        corrupt(w);
        await expectRejects(asBytes(w), "uint64", 1, what);
        cases++;
      }
    }
    expect(cases).toBeGreaterThanOrEqual(100);
  });

  it("random word flips either decode to a full volume or fail with invalid_chunk, never crash", async () => {
    const rand = mulberry32(11);
    const v = volumeOf(labels("uint32", 37 * 19 * 5, 20, 8), shape);
    const good = new Uint32Array((await codec.encode(v, { blockSize: block })).slice().buffer);
    for (let i = 0; i < 300; i++) {
      const w = good.slice();
      for (let k = 0; k < 1 + (i % 4); k++) w[Math.floor(rand() * w.length)] = Math.floor(rand() * 2 ** 32);
      try {
        const out = await codec.decode(asBytes(w), { dataType: "uint32", shape, channels: 1, blockSize: block });
        expect(out.data.length).toBe(v.data.length);
      } catch (e) {
        expect(e).toBeInstanceOf(PrecomputedError);
        expect((e as PrecomputedError).code).toBe("invalid_chunk");
      }
    }
  });
});
