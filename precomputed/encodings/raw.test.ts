import { describe, expect, it } from "vitest";
import { allocate, BYTES_PER_VOXEL, type DataType, type Vec3, type Volume } from "../array.js";
import { PrecomputedError } from "../errors.js";
import { ENCODINGS } from "../info.js";
import { mulberry32 } from "../testing/random.js";
import { decodeChunk, encodeChunk, GZIP_WORTHWHILE, REGISTRY } from "./index.js";
import { rawCodec } from "./raw.js";

const TYPES: DataType[] = ["uint8", "uint16", "uint32", "uint64", "float32"];

function randomVolume(dataType: DataType, shape: Vec3, channels: number, seed: number): Volume {
  const rand = mulberry32(seed);
  const n = shape[0] * shape[1] * shape[2] * channels;
  const data = allocate(dataType, n);
  for (let i = 0; i < n; i++) {
    if (data instanceof BigUint64Array) data[i] = (BigInt(Math.floor(rand() * 2 ** 32)) << 32n) | BigInt(Math.floor(rand() * 2 ** 32));
    else if (data instanceof Float32Array) data[i] = (rand() - 0.5) * 1e6;
    else data[i] = Math.floor(rand() * 2 ** (8 * data.BYTES_PER_ELEMENT));
  }
  return { data, shape, channels };
}

/** Reads element (x, y, z, c) of a raw chunk straight from its bytes, little-endian, by the spec's layout. */
function readSpec(bytes: Uint8Array, dataType: DataType, shape: Vec3, x: number, y: number, z: number, c: number): number | bigint {
  const i = x + shape[0] * (y + shape[1] * (z + shape[2] * c));
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const at = i * BYTES_PER_VOXEL[dataType];
  const readers: Record<DataType, () => number | bigint> = {
    uint8: () => view.getUint8(at),
    uint16: () => view.getUint16(at, true),
    uint32: () => view.getUint32(at, true),
    uint64: () => view.getBigUint64(at, true),
    float32: () => view.getFloat32(at, true),
  };
  return readers[dataType]();
}

describe("raw", () => {
  for (const dataType of TYPES) {
    for (const [shape, channels] of [[[37, 19, 5], 1], [[3, 4, 2], 3], [[1, 1, 1], 1]] as [Vec3, number][]) {
      it(`round-trips ${dataType} ${shape.join("x")} x${channels} in x,y,z,channel little-endian order`, async () => {
        const v = randomVolume(dataType, shape, channels, shape[0] + channels);
        const bytes = await encodeChunk("raw", v);
        expect(bytes.length).toBe(v.data.length * BYTES_PER_VOXEL[dataType]);
        const rand = mulberry32(3);
        for (let k = 0; k < 50; k++) {
          const [x, y, z, c] = [shape[0], shape[1], shape[2], channels].map((s) => Math.floor(rand() * s));
          const i = x + shape[0] * (y + shape[1] * (z + shape[2] * c));
          expect(readSpec(bytes, dataType, shape, x, y, z, c)).toBe(v.data[i]);
        }
        // Decoding from an unaligned view must work (chunks often arrive as Buffer slices).
        const unaligned = new Uint8Array(bytes.length + 1);
        unaligned.set(bytes, 1);
        const back = await decodeChunk("raw", unaligned.subarray(1), { dataType, shape, channels });
        expect(back.data).toEqual(v.data);
        expect(back.shape).toEqual(shape);
        expect(back.channels).toBe(channels);
      });
    }
  }

  it("writes a known uint16 value as low byte first", async () => {
    const bytes = await rawCodec.encode({ data: new Uint16Array([0x0102, 0xa0b0]), shape: [2, 1, 1] }, {});
    expect([...bytes]).toEqual([0x02, 0x01, 0xb0, 0xa0]);
  });

  it("rejects chunks of the wrong length (>= 100 cases) with invalid_chunk", async () => {
    const rand = mulberry32(42);
    let cases = 0;
    for (const dataType of TYPES) {
      const shape: Vec3 = [7, 5, 3];
      const bytes = await rawCodec.encode(randomVolume(dataType, shape, 2, 1), {});
      for (let i = 0; i < 25; i++) {
        const len = i < 3 ? [0, bytes.length - 1, bytes.length + 1][i] : Math.floor(rand() * bytes.length * 2);
        if (len === bytes.length) continue;
        const input = new Uint8Array(len);
        input.set(bytes.subarray(0, Math.min(len, bytes.length)));
        const err = await rawCodec.decode(input, { dataType, shape, channels: 2 }).then(() => undefined, (e: unknown) => e);
        expect(err).toBeInstanceOf(PrecomputedError);
        expect((err as PrecomputedError).code).toBe("invalid_chunk");
        cases++;
      }
    }
    expect(cases).toBeGreaterThanOrEqual(100);
  });

  it("rejects volumes whose data does not match shape x channels", async () => {
    await expect(rawCodec.encode({ data: new Uint8Array(5), shape: [2, 2, 1] }, {})).rejects.toMatchObject({ code: "invalid_argument" });
    await expect(rawCodec.encode({ data: new Uint8Array(4), shape: [2, 2, 0] }, {})).rejects.toMatchObject({ code: "invalid_argument" });
  });
});

describe("encoding registry", () => {
  it("has a codec for every info encoding and nothing else", () => {
    expect(Object.keys(REGISTRY).sort()).toEqual([...ENCODINGS].sort());
    expect(Object.keys(GZIP_WORTHWHILE).sort()).toEqual([...ENCODINGS].sort());
    expect(GZIP_WORTHWHILE.jpeg).toBe(false);
  });

  it("rejects unknown encodings with 'unsupported'", async () => {
    const bad = "png" as unknown as "raw";
    await expect(decodeChunk(bad, new Uint8Array(1), { dataType: "uint8", shape: [1, 1, 1], channels: 1 })).rejects.toMatchObject({ code: "unsupported" });
    await expect(encodeChunk("toString" as unknown as "raw", { data: new Uint8Array(1), shape: [1, 1, 1] })).rejects.toMatchObject({ code: "unsupported" });
  });
});
