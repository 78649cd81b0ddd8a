import type { DataType, Vec3 } from "./array.js";
import { PrecomputedError } from "./errors.js";
import { isRecord } from "./json-checks.js";
import { validateSharding, type ShardingSpec } from "./sharding.js";

/**
 * The `info` file of a Neuroglancer precomputed volume
 * (neuroglancer/src/datasource/precomputed/volume.md), validated by hand rather than with zod so that
 * every error carries a JSON path in exactly the form `scales[1].chunk_sizes[0][2]`.
 */

export type Encoding = "raw" | "jpeg" | "compressed_segmentation";
export const ENCODINGS: readonly Encoding[] = ["raw", "jpeg", "compressed_segmentation"];
export const DATA_TYPES: readonly DataType[] = ["uint8", "uint16", "uint32", "uint64", "float32"];
export type VolumeType = "image" | "segmentation";

export interface ScaleInfo {
  key: string;
  size: Vec3;
  resolution: Vec3;
  voxel_offset: Vec3;
  chunk_sizes: Vec3[];
  encoding: Encoding;
  compressed_segmentation_block_size?: Vec3;
  /** Not part of Neuroglancer's spec (it ignores it); the quality our jpeg writer uses for this scale. */
  jpeg_quality?: number;
  /** Sharded layout (validated); chunk I/O for sharded scales lives in sharding-volume.ts, not volume-io. */
  sharding?: ShardingSpec;
  hidden?: boolean;
}

export interface VolumeInfo {
  "@type": "neuroglancer_multiscale_volume";
  type: VolumeType;
  data_type: DataType;
  num_channels: number;
  scales: ScaleInfo[];
  mesh?: string;
  skeletons?: string;
  segment_properties?: string;
}

/** A chunk's voxel box in absolute coordinates (voxel_offset included), end exclusive. */
export interface ChunkBox {
  start: Vec3;
  end: Vec3;
}

const fail = (message: string, path: string): never => {
  throw new PrecomputedError("invalid_info", message, path);
};

const describe = (v: unknown): string =>
  v === null ? "null" : Array.isArray(v) ? "an array" : typeof v === "string" ? JSON.stringify(v) : typeof v;

function objectAt(v: unknown, path: string): Record<string, unknown> {
  return isRecord(v) ? v : fail(`expected an object, got ${describe(v)}`, path);
}

const join = (path: string, key: string): string => (path === "$" ? key : `${path}.${key}`);

function stringAt(v: unknown, path: string): string {
  return typeof v === "string" ? v : fail(`expected a string, got ${describe(v)}`, path);
}

function enumAt<T extends string>(v: unknown, allowed: readonly T[], path: string): T {
  const s = stringAt(v, path);
  return (allowed as readonly string[]).includes(s)
    ? (s as T)
    : fail(`expected one of ${allowed.map((a) => JSON.stringify(a)).join(", ")}, got ${JSON.stringify(s)}`, path);
}

type NumberRule = "positive-int" | "int" | "positive";

function numberAt(v: unknown, rule: NumberRule, path: string): number {
  if (typeof v !== "number" || !Number.isFinite(v)) return fail(`expected a finite number, got ${describe(v)}`, path);
  if (rule !== "positive" && !Number.isSafeInteger(v)) return fail(`expected an integer, got ${v}`, path);
  if (rule !== "int" && v <= 0) return fail(`expected a value > 0, got ${v}`, path);
  return v;
}

function vec3At(v: unknown, rule: NumberRule, path: string): Vec3 {
  if (!Array.isArray(v)) return fail(`expected an array of 3 numbers, got ${describe(v)}`, path);
  if (v.length !== 3) return fail(`expected 3 elements, got ${v.length}`, path);
  return [numberAt(v[0], rule, `${path}[0]`), numberAt(v[1], rule, `${path}[1]`), numberAt(v[2], rule, `${path}[2]`)];
}

/** Scale keys and mesh / segment_properties paths become storage prefixes: they must not escape the layer. */
function relativePathAt(v: unknown, path: string): string {
  const key = stringAt(v, path);
  if (key.length === 0) return fail("must not be empty", path);
  if (key.startsWith("/") || key.includes("\\") || /[\u0000-\u001f]/.test(key)) {
    return fail(`${JSON.stringify(key)} must be a relative path`, path);
  }
  if (key.split("/").some((p) => p === "" || p === "." || p === "..")) {
    return fail(`${JSON.stringify(key)} has an empty, '.' or '..' segment`, path);
  }
  return key;
}

/** Width x height of the 2D image a jpeg chunk is stored as must stay within JPEG's 16-bit dimensions. */
const JPEG_MAX_DIM = 65535;

function validateScale(raw: unknown, path: string, dataType: DataType, numChannels: number): ScaleInfo {
  const obj = objectAt(raw, path);
  const key = relativePathAt(obj.key, join(path, "key"));
  const size = vec3At(obj.size, "positive-int", join(path, "size"));
  const resolution = vec3At(obj.resolution, "positive", join(path, "resolution"));
  const voxel_offset = obj.voxel_offset === undefined ? ([0, 0, 0] as Vec3) : vec3At(obj.voxel_offset, "int", join(path, "voxel_offset"));
  const csPath = join(path, "chunk_sizes");
  if (!Array.isArray(obj.chunk_sizes)) fail(`expected an array of [x, y, z] chunk sizes, got ${describe(obj.chunk_sizes)}`, csPath);
  const chunkList = obj.chunk_sizes as unknown[];
  if (chunkList.length === 0) fail("at least one chunk size is required", csPath);
  const chunk_sizes = chunkList.map((c, i) => vec3At(c, "positive-int", `${csPath}[${i}]`));
  const encoding = enumAt(obj.encoding, ENCODINGS, join(path, "encoding"));
  const scale: ScaleInfo = { key, size, resolution, voxel_offset, chunk_sizes, encoding };

  if (encoding === "compressed_segmentation") {
    if (dataType !== "uint32" && dataType !== "uint64") {
      fail(`compressed_segmentation needs data_type uint32 or uint64, not ${dataType}`, join(path, "encoding"));
    }
    const bsPath = join(path, "compressed_segmentation_block_size");
    if (obj.compressed_segmentation_block_size === undefined) fail("required with compressed_segmentation encoding", bsPath);
    scale.compressed_segmentation_block_size = vec3At(obj.compressed_segmentation_block_size, "positive-int", bsPath);
  } else if (obj.compressed_segmentation_block_size !== undefined) {
    vec3At(obj.compressed_segmentation_block_size, "positive-int", join(path, "compressed_segmentation_block_size"));
  }

  if (encoding === "jpeg") {
    if (dataType !== "uint8") fail(`jpeg needs data_type uint8, not ${dataType}`, join(path, "encoding"));
    if (numChannels !== 1 && numChannels !== 3) fail(`jpeg needs 1 or 3 channels, not ${numChannels}`, join(path, "encoding"));
    chunk_sizes.forEach(([x, y, z], i) => {
      if (x > JPEG_MAX_DIM || y * z > JPEG_MAX_DIM) {
        fail(`a jpeg chunk is a ${x} x ${y * z} image; JPEG allows at most ${JPEG_MAX_DIM} per side`, `${csPath}[${i}]`);
      }
    });
  }
  if (obj.jpeg_quality !== undefined) {
    const q = numberAt(obj.jpeg_quality, "positive-int", join(path, "jpeg_quality"));
    if (q > 100) fail(`expected 1..100, got ${q}`, join(path, "jpeg_quality"));
    scale.jpeg_quality = q;
  }
  if (obj.sharding !== undefined) {
    scale.sharding = validateSharding(obj.sharding, join(path, "sharding"));
    if (chunk_sizes.length !== 1) fail("sharding requires exactly one chunk size", csPath);
  }
  if (obj.hidden !== undefined) {
    if (typeof obj.hidden !== "boolean") fail(`expected a boolean, got ${describe(obj.hidden)}`, join(path, "hidden"));
    scale.hidden = obj.hidden as boolean;
  }
  return scale;
}

/** Checks a parsed `info` JSON against the spec; returns a normalised copy (voxel_offset filled in, `@type` set). */
export function validateInfo(json: unknown): VolumeInfo {
  const obj = objectAt(json, "$");
  if (obj["@type"] !== undefined && obj["@type"] !== "neuroglancer_multiscale_volume") {
    fail(`expected "neuroglancer_multiscale_volume", got ${describe(obj["@type"])}`, "@type");
  }
  const type = enumAt<VolumeType>(obj.type, ["image", "segmentation"], "type");
  const data_type = enumAt(obj.data_type, DATA_TYPES, "data_type");
  if (type === "segmentation" && data_type === "float32") fail("a segmentation needs an unsigned integer data_type", "data_type");
  const num_channels = numberAt(obj.num_channels, "positive-int", "num_channels");
  if (!Array.isArray(obj.scales)) fail(`expected an array of scales, got ${describe(obj.scales)}`, "scales");
  const rawScales = obj.scales as unknown[];
  if (rawScales.length === 0) fail("at least one scale is required", "scales");
  const scales = rawScales.map((s, i) => validateScale(s, `scales[${i}]`, data_type, num_channels));
  const seen = new Map<string, number>();
  scales.forEach((s, i) => {
    const prev = seen.get(s.key);
    if (prev !== undefined) fail(`duplicate scale key ${JSON.stringify(s.key)} (also scales[${prev}])`, `scales[${i}].key`);
    seen.set(s.key, i);
  });
  const info: VolumeInfo = { "@type": "neuroglancer_multiscale_volume", type, data_type, num_channels, scales };
  for (const field of ["mesh", "skeletons", "segment_properties"] as const) {
    if (obj[field] !== undefined) info[field] = relativePathAt(obj[field], field);
  }
  return info;
}

/** Neuroglancer's chunk file name: `<key>/<x0>-<x1>_<y0>-<y1>_<z0>-<z1>` in absolute voxel coordinates. */
export function chunkKey(scale: Pick<ScaleInfo, "key">, start: Vec3, end: Vec3): string {
  return `${scale.key}/${start[0]}-${end[0]}_${start[1]}-${end[1]}_${start[2]}-${end[2]}`;
}

const CHUNK_NAME = /^(-?\d+)-(-?\d+)_(-?\d+)-(-?\d+)_(-?\d+)-(-?\d+)$/;

/** Inverse of chunkKey. The scale key may itself contain `/`, so the chunk name is what follows the last one. */
export function parseChunkKey(key: string): { scaleKey: string } & ChunkBox {
  const slash = key.lastIndexOf("/");
  const m = CHUNK_NAME.exec(key.slice(slash + 1));
  if (slash <= 0 || !m) throw new PrecomputedError("invalid_key", "not a chunk key <scale>/<x0>-<x1>_<y0>-<y1>_<z0>-<z1>", key);
  const n = m.slice(1).map(Number);
  const start: Vec3 = [n[0], n[2], n[4]];
  const end: Vec3 = [n[1], n[3], n[5]];
  if (!n.every(Number.isSafeInteger) || start.some((s, i) => s >= end[i])) {
    throw new PrecomputedError("invalid_key", "chunk bounds must be integers with start < end", key);
  }
  return { scaleKey: key.slice(0, slash), start, end };
}

/** Every chunk box of a scale, x fastest, clipped at the volume's upper edge; absolute coordinates. */
export function* chunkGrid(scale: Pick<ScaleInfo, "size" | "voxel_offset" | "chunk_sizes">, chunkSizeIndex = 0): Generator<ChunkBox> {
  const chunk = scale.chunk_sizes[chunkSizeIndex];
  if (!chunk) throw new PrecomputedError("invalid_argument", `scale has no chunk size #${chunkSizeIndex}`);
  yield* boxesIn(scale.voxel_offset, add(scale.voxel_offset, scale.size), chunk, scale.voxel_offset);
}

/** Chunk boxes of the grid anchored at `origin` that intersect [lo, hi), each clipped to [lo, hi). */
export function* boxesIn(lo: Vec3, hi: Vec3, chunk: Vec3, origin: Vec3): Generator<ChunkBox> {
  const first = [0, 1, 2].map((d) => origin[d] + Math.floor((lo[d] - origin[d]) / chunk[d]) * chunk[d]);
  for (let z = first[2]; z < hi[2]; z += chunk[2]) {
    for (let y = first[1]; y < hi[1]; y += chunk[1]) {
      for (let x = first[0]; x < hi[0]; x += chunk[0]) {
        yield {
          start: [Math.max(x, lo[0]), Math.max(y, lo[1]), Math.max(z, lo[2])],
          end: [Math.min(x + chunk[0], hi[0]), Math.min(y + chunk[1], hi[1]), Math.min(z + chunk[2], hi[2])],
        };
      }
    }
  }
}

export const add = (a: Vec3, b: Vec3): Vec3 => [a[0] + b[0], a[1] + b[1], a[2] + b[2]];
export const sub = (a: Vec3, b: Vec3): Vec3 => [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
