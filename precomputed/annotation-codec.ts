/**
 * Binary encodings of precomputed annotations (neuroglancer src/datasource/precomputed/annotations.md,
 * "Single annotation encoding" and "Multiple annotation encoding").
 *
 * Record layout: geometry as float32le; then properties grouped by alignment — 4-byte types (uint32, int32,
 * float32), then 2-byte (uint16, int16), then 1-byte (uint8, int8, rgb, rgba), each group in info order; then
 * zero padding to a multiple of 4. This is also the in-memory layout Neuroglancer decodes into
 * (`getPropertyOffsets` in src/annotation/index.ts: a stable sort by decreasing alignment), which is why its
 * spatial-chunk parser can hand the bytes to the GPU unchanged.
 */
import { PrecomputedError } from "./errors.js";

export type AnnotationGeometryType = "point" | "line" | "axis_aligned_bounding_box" | "ellipsoid";
export type AnnotationPropertyType = "rgb" | "rgba" | "uint8" | "int8" | "uint16" | "int16" | "uint32" | "int32" | "float32";
export type AnnotationId = number | bigint;
/** A number for numeric types; [r, g, b] or [r, g, b, a] bytes for rgb / rgba. */
export type AnnotationPropertyValue = number | number[];

export interface AnnotationPropertySpec {
  /** Must match /^[a-z][a-zA-Z0-9_]*$/ (the spec's rule). */
  id: string;
  type: AnnotationPropertyType;
  description?: string;
  enum_values?: number[];
  enum_labels?: string[];
}

/** Everything a reader needs to decode records. */
export interface AnnotationEncodingSpec {
  type: AnnotationGeometryType;
  rank: number;
  properties: AnnotationPropertySpec[];
  /** Relationship ids in info order; only the `by_id` (single) encoding carries them. */
  relationships?: string[];
}

export interface AnnotationGeometry {
  /** point */
  point?: number[];
  /** line endpoints, or bounding box corners */
  pointA?: number[];
  pointB?: number[];
  /** ellipsoid */
  center?: number[];
  radii?: number[];
}

export interface Annotation extends AnnotationGeometry {
  id: AnnotationId;
  properties?: Record<string, AnnotationPropertyValue>;
  /** relationship id -> related segment ids */
  relationships?: Record<string, AnnotationId[]>;
}

export interface DecodedAnnotation extends AnnotationGeometry {
  id: bigint;
  properties: Record<string, AnnotationPropertyValue>;
  relationships?: Record<string, bigint[]>;
}

interface PropertyCodec {
  bytes: number;
  alignment: number;
  write(dv: DataView, offset: number, v: AnnotationPropertyValue, path: string): void;
  read(dv: DataView, offset: number): AnnotationPropertyValue;
}

function intCodec(
  name: string,
  bytes: 1 | 2 | 4,
  [min, max]: [number, number],
  set: (dv: DataView, offset: number, v: number) => void,
  get: (dv: DataView, offset: number) => number,
): PropertyCodec {
  return {
    bytes,
    alignment: bytes,
    write(dv, offset, v, path) {
      if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
        throw new PrecomputedError("invalid_argument", `expected a ${name} value, got ${JSON.stringify(v)}`, path);
      }
      set(dv, offset, v);
    },
    read: get,
  };
}

function colorCodec(channels: 3 | 4): PropertyCodec {
  return {
    bytes: channels,
    alignment: 1,
    write(dv, offset, v, path) {
      if (!Array.isArray(v) || v.length !== channels || v.some((c) => !Number.isInteger(c) || c < 0 || c > 255)) {
        throw new PrecomputedError("invalid_argument", `expected ${channels} integers in 0..255`, path);
      }
      v.forEach((c, i) => dv.setUint8(offset + i, c));
    },
    read: (dv, offset) => Array.from({ length: channels }, (_, i) => dv.getUint8(offset + i)),
  };
}

/** Registry of property types: size, alignment, and how a value is written and read. */
export const ANNOTATION_PROPERTY_CODECS: Record<AnnotationPropertyType, PropertyCodec> = {
  float32: {
    bytes: 4,
    alignment: 4,
    write(dv, offset, v, path) {
      if (typeof v !== "number") throw new PrecomputedError("invalid_argument", "expected a number", path);
      dv.setFloat32(offset, v, true);
    },
    read: (dv, offset) => dv.getFloat32(offset, true),
  },
  uint32: intCodec("uint32", 4, [0, 0xffffffff], (dv, o, v) => dv.setUint32(o, v, true), (dv, o) => dv.getUint32(o, true)),
  int32: intCodec("int32", 4, [-0x80000000, 0x7fffffff], (dv, o, v) => dv.setInt32(o, v, true), (dv, o) => dv.getInt32(o, true)),
  uint16: intCodec("uint16", 2, [0, 0xffff], (dv, o, v) => dv.setUint16(o, v, true), (dv, o) => dv.getUint16(o, true)),
  int16: intCodec("int16", 2, [-0x8000, 0x7fff], (dv, o, v) => dv.setInt16(o, v, true), (dv, o) => dv.getInt16(o, true)),
  uint8: intCodec("uint8", 1, [0, 0xff], (dv, o, v) => dv.setUint8(o, v), (dv, o) => dv.getUint8(o)),
  int8: intCodec("int8", 1, [-0x80, 0x7f], (dv, o, v) => dv.setInt8(o, v), (dv, o) => dv.getInt8(o)),
  rgb: colorCodec(3),
  rgba: colorCodec(4),
};

/** Geometry vectors per type, in encoding order. */
const GEOMETRY_FIELDS: Record<AnnotationGeometryType, (keyof AnnotationGeometry)[]> = {
  point: ["point"],
  line: ["pointA", "pointB"],
  axis_aligned_bounding_box: ["pointA", "pointB"],
  ellipsoid: ["center", "radii"],
};

export interface AnnotationLayout {
  spec: AnnotationEncodingSpec;
  geometryBytes: number;
  /** Bytes per record (geometry + properties + padding), a multiple of 4. */
  stride: number;
  /** Byte offset of each property (in `spec.properties` order) within a record. */
  offsets: number[];
}

// Neuroglancer splits records wider than this into separately padded groups (MAX_BUFFER_STRIDE in
// src/annotation/index.ts), a layout the spec does not describe; refuse rather than guess.
const MAX_STRIDE = 255;

export function annotationLayout(spec: AnnotationEncodingSpec): AnnotationLayout {
  if (typeof spec !== "object" || spec === null || !Array.isArray(spec.properties)) {
    throw new PrecomputedError("invalid_argument", "expected an encoding spec {type, rank, properties}");
  }
  if (!Number.isInteger(spec.rank) || spec.rank < 1 || spec.rank > 32) {
    throw new PrecomputedError("invalid_argument", "rank must be an integer in 1..32", "rank");
  }
  const fields = GEOMETRY_FIELDS[spec.type];
  if (fields === undefined) throw new PrecomputedError("unsupported", `annotation type ${JSON.stringify(spec.type)}`, "type");
  const geometryBytes = 4 * spec.rank * fields.length;
  const codecs = spec.properties.map((p, i) => {
    const c = ANNOTATION_PROPERTY_CODECS[p.type];
    if (c === undefined) throw new PrecomputedError("unsupported", `property type ${JSON.stringify(p.type)}`, `properties[${i}].type`);
    return c;
  });
  const offsets = new Array<number>(spec.properties.length);
  let offset = geometryBytes;
  for (const alignment of [4, 2, 1]) {
    codecs.forEach((c, i) => {
      if (c.alignment !== alignment) return;
      offsets[i] = offset;
      offset += c.bytes;
    });
  }
  const stride = offset + ((4 - (offset % 4)) % 4);
  if (stride > MAX_STRIDE) {
    throw new PrecomputedError("unsupported", `annotation record of ${stride} bytes exceeds Neuroglancer's ${MAX_STRIDE}`, "properties");
  }
  return { spec, geometryBytes, stride, offsets };
}

const UINT64_MAX = (1n << 64n) - 1n;

export function toUint64(id: AnnotationId, path: string): bigint {
  if (typeof id === "bigint" ? id < 0n || id > UINT64_MAX : !Number.isSafeInteger(id) || id < 0) {
    throw new PrecomputedError("invalid_argument", `expected a uint64 id (non-negative integer; bigint above 2^53), got ${String(id)}`, path);
  }
  return BigInt(id);
}

/** Writes one record (geometry, properties, padding) at `offset`. */
export function writeAnnotationRecord(
  dv: DataView,
  offset: number,
  a: Annotation,
  layout: AnnotationLayout,
  path: string,
): void {
  const { spec } = layout;
  let o = offset;
  for (const field of GEOMETRY_FIELDS[spec.type]) {
    const v = a[field];
    if (!Array.isArray(v) || v.length !== spec.rank || v.some((x) => typeof x !== "number" || !Number.isFinite(x))) {
      throw new PrecomputedError("invalid_argument", `${field} must be ${spec.rank} finite numbers`, `${path}.${field}`);
    }
    for (const x of v) {
      dv.setFloat32(o, x, true);
      o += 4;
    }
  }
  spec.properties.forEach((p, i) => {
    const value = a.properties?.[p.id];
    if (value === undefined) throw new PrecomputedError("invalid_argument", "missing property value", `${path}.properties.${p.id}`);
    ANNOTATION_PROPERTY_CODECS[p.type].write(dv, offset + layout.offsets[i], value, `${path}.properties.${p.id}`);
  });
}

function readAnnotationRecord(dv: DataView, offset: number, id: bigint, layout: AnnotationLayout): DecodedAnnotation {
  const { spec } = layout;
  const out: DecodedAnnotation = { id, properties: {} };
  let o = offset;
  for (const field of GEOMETRY_FIELDS[spec.type]) {
    const v = new Array<number>(spec.rank);
    for (let d = 0; d < spec.rank; ++d, o += 4) v[d] = dv.getFloat32(o, true);
    out[field] = v;
  }
  spec.properties.forEach((p, i) => {
    out.properties[p.id] = ANNOTATION_PROPERTY_CODECS[p.type].read(dv, offset + layout.offsets[i]);
  });
  return out;
}

/** Multiple annotation encoding: uint64le count, the records, then the uint64le ids. */
export function encodeAnnotationChunk(annotations: readonly Annotation[], layout: AnnotationLayout): Uint8Array {
  const n = annotations.length;
  const bytes = new Uint8Array(8 + n * (layout.stride + 8));
  const dv = new DataView(bytes.buffer);
  dv.setBigUint64(0, BigInt(n), true);
  const idBase = 8 + n * layout.stride;
  annotations.forEach((a, i) => {
    writeAnnotationRecord(dv, 8 + i * layout.stride, a, layout, `annotations[${i}]`);
    dv.setBigUint64(idBase + 8 * i, toUint64(a.id, `annotations[${i}].id`), true);
  });
  return bytes;
}

/**
 * Single annotation encoding (the `by_id` index): the record, then for each relationship of
 * `layout.spec.relationships` a uint32le count and that many uint64le segment ids.
 */
export function encodeSingleAnnotation(a: Annotation, layout: AnnotationLayout): Uint8Array {
  const rels = layout.spec.relationships ?? [];
  const related = rels.map((r) => (a.relationships?.[r] ?? []).map((s, j) => toUint64(s, `relationships.${r}[${j}]`)));
  const size = layout.stride + related.reduce((sum, ids) => sum + 4 + 8 * ids.length, 0);
  const bytes = new Uint8Array(size);
  const dv = new DataView(bytes.buffer);
  writeAnnotationRecord(dv, 0, a, layout, "annotation");
  let o = layout.stride;
  for (const ids of related) {
    dv.setUint32(o, ids.length, true);
    o += 4;
    for (const s of ids) {
      dv.setBigUint64(o, s, true);
      o += 8;
    }
  }
  return bytes;
}

function layoutOf(spec: AnnotationEncodingSpec | AnnotationLayout): AnnotationLayout {
  if (typeof spec === "object" && spec !== null && "stride" in spec) return spec;
  return annotationLayout(spec);
}

function malformed(message: string): never {
  throw new PrecomputedError("invalid_chunk", message);
}

function view(bytes: Uint8Array): DataView {
  if (!(bytes instanceof Uint8Array)) throw new PrecomputedError("invalid_argument", "expected a Uint8Array");
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Decodes a spatial-index or relationship-index chunk. */
export function decodeAnnotationChunk(bytes: Uint8Array, spec: AnnotationEncodingSpec | AnnotationLayout): DecodedAnnotation[] {
  const layout = layoutOf(spec);
  const dv = view(bytes);
  if (bytes.byteLength < 8) malformed(`annotation chunk of ${bytes.byteLength} bytes lacks the 8-byte count`);
  const count = dv.getBigUint64(0, true);
  const perAnnotation = BigInt(layout.stride + 8);
  const expected = 8n + count * perAnnotation;
  if (expected !== BigInt(bytes.byteLength)) {
    malformed(`annotation chunk with count ${count} and ${layout.stride}-byte records needs ${expected} bytes, got ${bytes.byteLength}`);
  }
  const n = Number(count);
  const idBase = 8 + n * layout.stride;
  const out = new Array<DecodedAnnotation>(n);
  for (let i = 0; i < n; ++i) {
    out[i] = readAnnotationRecord(dv, 8 + i * layout.stride, dv.getBigUint64(idBase + 8 * i, true), layout);
  }
  return out;
}

/** Decodes a `by_id` entry; the id is not stored in it, so the caller passes it. */
export function decodeSingleAnnotation(bytes: Uint8Array, spec: AnnotationEncodingSpec | AnnotationLayout, id: AnnotationId): DecodedAnnotation {
  const layout = layoutOf(spec);
  const dv = view(bytes);
  if (bytes.byteLength < layout.stride) malformed(`annotation of ${bytes.byteLength} bytes is shorter than its ${layout.stride}-byte record`);
  const out = readAnnotationRecord(dv, 0, toUint64(id, "id"), layout);
  const rels = layout.spec.relationships ?? [];
  let o = layout.stride;
  if (rels.length > 0) out.relationships = {};
  for (const r of rels) {
    if (o + 4 > bytes.byteLength) malformed(`annotation ends before the count of relationship ${JSON.stringify(r)}`);
    const n = dv.getUint32(o, true);
    o += 4;
    if (o + 8 * n > bytes.byteLength) malformed(`relationship ${JSON.stringify(r)} claims ${n} ids but the annotation ends first`);
    const ids = new Array<bigint>(n);
    for (let j = 0; j < n; ++j, o += 8) ids[j] = dv.getBigUint64(o, true);
    if (out.relationships) out.relationships[r] = ids;
  }
  if (o !== bytes.byteLength) malformed(`annotation has ${bytes.byteLength - o} trailing bytes`);
  return out;
}

/** The geometry vectors of an annotation of `type`, in encoding order (for bounds and spatial indexing). */
export function geometryVectors(a: AnnotationGeometry, type: AnnotationGeometryType): (number[] | undefined)[] {
  return GEOMETRY_FIELDS[type].map((f) => a[f]);
}
