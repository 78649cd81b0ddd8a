import type { Volume } from "../array.js";
import { PrecomputedError } from "../errors.js";
import type { Encoding } from "../info.js";
import type { ChunkCodec, DecodeParams, EncodeOptions } from "./codec.js";
import { compressedSegmentationCodec } from "./compressed-segmentation.js";
import { jpegCodec } from "./jpeg.js";
import { rawCodec } from "./raw.js";

export type { ChunkCodec, DecodeParams, EncodeOptions } from "./codec.js";

/** One codec per `encoding` value of the info file; adding an encoding means adding an entry here. */
export const REGISTRY: Readonly<Record<Encoding, ChunkCodec>> = {
  raw: rawCodec,
  jpeg: jpegCodec,
  compressed_segmentation: compressedSegmentationCodec,
};

/** Encodings whose bytes gain from gzip on top (jpeg is already entropy-coded). */
export const GZIP_WORTHWHILE: Readonly<Record<Encoding, boolean>> = {
  raw: true,
  jpeg: false,
  compressed_segmentation: true,
};

function codecFor(encoding: string): ChunkCodec {
  const codec = Object.hasOwn(REGISTRY, encoding) ? REGISTRY[encoding as Encoding] : undefined;
  if (!codec) throw new PrecomputedError("unsupported", `no codec for encoding ${JSON.stringify(encoding)}`);
  return codec;
}

export async function encodeChunk(encoding: Encoding, volume: Volume, options: EncodeOptions = {}): Promise<Uint8Array> {
  return codecFor(encoding).encode(volume, options);
}

export async function decodeChunk(encoding: Encoding, bytes: Uint8Array, params: DecodeParams): Promise<Volume> {
  return codecFor(encoding).decode(bytes, params);
}
