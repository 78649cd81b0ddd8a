import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { transposeArray2d } from "neuroglancer/unstable/util/array.js";
import type { Vec3, Volume } from "../array.js";
import { PrecomputedError } from "../errors.js";
import { mulberry32 } from "../testing/random.js";
import { decodeChunk, encodeChunk } from "./index.js";
import { jpegCodec } from "./jpeg.js";

/** Neuroglancer's bundled JPEG decoder (pdf.js's); its module ships without type declarations. */
interface NgJpegDecoder {
  parse(data: Uint8Array): void;
  width: number;
  height: number;
  numComponents: number;
  getData(width: number, height: number, forceRGB: boolean): Uint8Array;
}
const JPG_MODULE: string = "neuroglancer/unstable/third_party/jpgjs/jpg.js";
const { JpegDecoder } = (await import(JPG_MODULE)) as { JpegDecoder: new () => NgJpegDecoder };

/**
 * What Neuroglancer's jpeg chunk path does (async_computation/decode_jpeg.js, called by
 * sliceview/backend_chunk_decoders/jpeg.js with area = x*y*z and numComponents = channels).
 */
function neuroglancerDecode(bytes: Uint8Array, shape: Vec3, channels: number): Uint8Array {
  const parser = new JpegDecoder();
  parser.parse(bytes);
  if (parser.width * parser.height !== shape[0] * shape[1] * shape[2]) throw new Error("area mismatch");
  if (parser.numComponents !== channels) throw new Error("component mismatch");
  const data = parser.getData(parser.width, parser.height, false);
  return channels === 1 ? data : transposeArray2d(data, parser.width * parser.height, 3);
}

/** Smooth content, so JPEG error is small and a layout mistake (transposed y/z, swapped channels) is large. */
function smoothVolume(shape: Vec3, channels: number): Volume<Uint8Array> {
  const [sx, sy, sz] = shape;
  const data = new Uint8Array(sx * sy * sz * channels);
  for (let c = 0; c < channels; c++)
    for (let z = 0; z < sz; z++)
      for (let y = 0; y < sy; y++)
        for (let x = 0; x < sx; x++) {
          const v = 128 + 90 * Math.sin(x / 6 + c) * Math.cos(y / 9 - c) + 30 * Math.sin(z / 2 + 2 * c);
          data[x + sx * (y + sy * (z + sz * c))] = Math.max(0, Math.min(255, Math.round(v)));
        }
  return { data, shape, channels };
}

function meanAbsError(a: Uint8Array, b: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
  return sum / a.length;
}

describe("jpeg", () => {
  for (const [shape, channels] of [[[64, 64, 16], 1], [[37, 19, 5], 1], [[37, 19, 5], 3], [[8, 8, 1], 3]] as [Vec3, number][]) {
    it(`${shape.join("x")} x${channels}: a ${shape[0]} x ${shape[1] * shape[2]} image Neuroglancer and sharp decode alike`, async () => {
      const v = smoothVolume(shape, channels);
      const bytes = await encodeChunk("jpeg", v, { jpegQuality: 95 });
      const meta = await sharp(bytes).metadata();
      expect([meta.format, meta.width, meta.height, meta.channels]).toEqual(["jpeg", shape[0], shape[1] * shape[2], channels]);

      const ours = await decodeChunk("jpeg", bytes, { dataType: "uint8", shape, channels });
      const ng = neuroglancerDecode(bytes, shape, channels);
      expect(ours.data.length).toBe(v.data.length);
      expect(meanAbsError(ours.data as Uint8Array, v.data)).toBeLessThan(2);
      expect(meanAbsError(ng, v.data)).toBeLessThan(2);
      // Two decoders of one file differ only by IDCT rounding.
      expect(meanAbsError(ng, ours.data as Uint8Array)).toBeLessThan(1);
    });
  }

  it("a transposed layout would be caught: y and z swapped gives a large error", async () => {
    const shape: Vec3 = [16, 12, 6];
    const v = smoothVolume(shape, 1);
    const swapped = new Uint8Array(v.data.length);
    for (let z = 0; z < 6; z++) for (let y = 0; y < 12; y++) for (let x = 0; x < 16; x++) swapped[x + 16 * (z + 6 * y)] = v.data[x + 16 * (y + 12 * z)];
    const ng = neuroglancerDecode(await encodeChunk("jpeg", v, { jpegQuality: 95 }), shape, 1);
    expect(meanAbsError(ng, swapped)).toBeGreaterThan(10);
  });

  it("lower quality gives smaller files and larger error", async () => {
    const shape: Vec3 = [64, 64, 4];
    const v = smoothVolume(shape, 1);
    const rand = mulberry32(1);
    for (let i = 0; i < v.data.length; i++) v.data[i] = Math.min(255, v.data[i] + Math.floor(rand() * 20));
    const hi = await encodeChunk("jpeg", v, { jpegQuality: 95 });
    const lo = await encodeChunk("jpeg", v, { jpegQuality: 30 });
    expect(lo.length).toBeLessThan(hi.length);
    const params = { dataType: "uint8" as const, shape, channels: 1 };
    const eHi = meanAbsError((await decodeChunk("jpeg", hi, params)).data as Uint8Array, v.data);
    const eLo = meanAbsError((await decodeChunk("jpeg", lo, params)).data as Uint8Array, v.data);
    expect(eLo).toBeGreaterThan(eHi);
  });

  it("rejects what JPEG cannot hold", async () => {
    await expect(jpegCodec.encode({ data: new Uint16Array(8), shape: [2, 2, 2] }, {})).rejects.toMatchObject({ code: "invalid_argument" });
    await expect(jpegCodec.encode({ data: new Uint8Array(16), shape: [2, 2, 2], channels: 2 }, {})).rejects.toMatchObject({ code: "invalid_argument" });
    await expect(jpegCodec.encode({ data: new Uint8Array(8), shape: [2, 2, 2] }, { jpegQuality: 0 })).rejects.toMatchObject({ code: "invalid_argument" });
  });

  it("rejects malformed or mismatched JPEG chunks with invalid_chunk", async () => {
    const shape: Vec3 = [16, 8, 2];
    const bytes = await encodeChunk("jpeg", smoothVolume(shape, 1), {});
    const rand = mulberry32(77);
    const bad: Uint8Array[] = [new Uint8Array(0), new Uint8Array([0xff, 0xd8, 0xff]), bytes.slice(0, 20), bytes.slice(0, bytes.length >> 1)];
    for (let i = 0; i < 20; i++) bad.push(Uint8Array.from({ length: 1 + Math.floor(rand() * 400) }, () => Math.floor(rand() * 256)));
    for (const b of bad) {
      const err = await jpegCodec.decode(b, { dataType: "uint8", shape, channels: 1 }).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(PrecomputedError);
      expect((err as PrecomputedError).code).toBe("invalid_chunk");
    }
    await expect(jpegCodec.decode(bytes, { dataType: "uint8", shape: [16, 8, 3], channels: 1 })).rejects.toMatchObject({ code: "invalid_chunk" });
    await expect(jpegCodec.decode(bytes, { dataType: "uint8", shape, channels: 3 })).rejects.toMatchObject({ code: "invalid_chunk" });
  });
});
