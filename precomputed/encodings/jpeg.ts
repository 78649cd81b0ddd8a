import sharp from "sharp";
import type { DataType, Volume } from "../array.js";
import { badArgument, badChunk, checkDecodeParams, checkVolume, voxelCount, type ChunkCodec, type DecodeParams, type EncodeOptions } from "./codec.js";
import { PrecomputedError } from "../errors.js";

const JPEG_TYPES: readonly DataType[] = ["uint8"];
const MAX_DIM = 65535;
export const DEFAULT_JPEG_QUALITY = 85;

/**
 * A chunk of shape [x, y, z] is one JPEG image `x` wide and `y * z` tall: its rows in order are
 * (y=0,z=0), (y=1,z=0), ... so row-major pixel order is the chunk's x-fastest voxel order.
 * Neuroglancer's decoder (async_computation/decode_jpeg.js) checks only that width * height equals
 * the chunk's voxel count and reads the pixels in that order; with 3 channels it de-interleaves RGB
 * into channel-planar order, which is the Volume layout.
 */
export const jpegCodec: ChunkCodec = {
  dataTypes: JPEG_TYPES,

  async encode(volume: Volume, options: EncodeOptions): Promise<Uint8Array> {
    const channels = checkVolume(volume, JPEG_TYPES, "jpeg");
    if (channels !== 1 && channels !== 3) badArgument(`jpeg needs 1 or 3 channels, got ${channels}`);
    const [x, y, z] = volume.shape;
    if (x > MAX_DIM || y * z > MAX_DIM) badArgument(`a ${x} x ${y * z} image exceeds JPEG's ${MAX_DIM} limit`);
    const quality = options.jpegQuality ?? DEFAULT_JPEG_QUALITY;
    if (!Number.isInteger(quality) || quality < 1 || quality > 100) badArgument(`jpeg quality must be 1..100, got ${quality}`);
    const n = voxelCount(volume.shape);
    const planar = volume.data as Uint8Array;
    let pixels = planar;
    if (channels === 3) {
      pixels = new Uint8Array(n * 3);
      for (let i = 0; i < n; i++) {
        pixels[3 * i] = planar[i];
        pixels[3 * i + 1] = planar[n + i];
        pixels[3 * i + 2] = planar[2 * n + i];
      }
    }
    try {
      let image = sharp(pixels, { raw: { width: x, height: y * z, channels } });
      // sharp would write a 1-channel input as a 3-component (sRGB) JPEG, which Neuroglancer rejects for a
      // 1-channel layer (it requires components === channels).
      if (channels === 1) image = image.toColourspace("b-w");
      // 4:4:4 because a chunk is small and chroma subsampling would blur colour across y/z rows.
      const out = await image.jpeg({ quality, chromaSubsampling: "4:4:4" }).toBuffer();
      return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    } catch (e) {
      throw new PrecomputedError("io", `jpeg encoding failed: ${(e as Error).message}`, undefined, { cause: e });
    }
  },

  async decode(bytes: Uint8Array, params: DecodeParams): Promise<Volume> {
    checkDecodeParams(params, JPEG_TYPES, "jpeg");
    if (params.channels !== 1 && params.channels !== 3) badArgument(`jpeg holds 1 or 3 channels, not ${params.channels}`);
    const unreadable = (e: unknown): never => {
      throw new PrecomputedError("invalid_chunk", `not a readable JPEG: ${(e as Error).message}`, undefined, { cause: e });
    };
    const n = voxelCount(params.shape);
    let pixels: Buffer;
    try {
      // sharp throws synchronously on some inputs (e.g. empty), asynchronously on others.
      const meta = await sharp(bytes, { failOn: "error" }).metadata();
      if (meta.format !== "jpeg") badChunk(`expected a JPEG, got ${meta.format ?? "unknown"} data`);
      const { width = 0, height = 0, channels = 0 } = meta;
      if (width * height !== n) badChunk(`JPEG is ${width} x ${height}; the chunk ${params.shape.join("x")} needs ${n} pixels`);
      // Neuroglancer rejects a JPEG whose component count differs from the layer's channels; so do we.
      if (channels !== params.channels) badChunk(`JPEG has ${channels} component(s); the layer has ${params.channels} channel(s)`);
      // Without b-w, sharp would hand back a greyscale JPEG as 3-channel sRGB.
      const image = sharp(bytes, { failOn: "error" });
      pixels = await (channels === 1 ? image.toColourspace("b-w") : image).raw().toBuffer();
    } catch (e) {
      if (e instanceof PrecomputedError) throw e;
      return unreadable(e);
    }
    if (pixels.length !== n * params.channels) badChunk(`JPEG decoded to ${pixels.length} bytes, expected ${n * params.channels}`);
    const out = new Uint8Array(n * params.channels);
    if (params.channels === 1) {
      out.set(pixels);
    } else {
      for (let i = 0; i < n; i++) {
        out[i] = pixels[3 * i];
        out[n + i] = pixels[3 * i + 1];
        out[2 * n + i] = pixels[3 * i + 2];
      }
    }
    return { data: out, shape: [...params.shape], channels: params.channels };
  },
};
