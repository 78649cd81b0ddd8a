/**
 * Precomputed annotation collections (`neuroglancer_annotations_v1`): the info JSON, and a writer for the
 * unsharded layout — `by_id/<id>`, `rel_<relationship>/<segment id>`, `spatial<level>/<i>_<j>_<k>`.
 * Spec: neuroglancer src/datasource/precomputed/annotations.md. Binary records: ./annotation-codec.ts;
 * spatial index: ./annotation-spatial.ts.
 */
import {
  annotationLayout,
  encodeAnnotationChunk,
  encodeSingleAnnotation,
  geometryVectors,
  toUint64,
  type Annotation,
  type AnnotationEncodingSpec,
  type AnnotationGeometryType,
  type AnnotationPropertySpec,
} from "./annotation-codec.js";
import { buildSpatialIndex, type SpatialItem } from "./annotation-spatial.js";
import { PrecomputedError } from "./errors.js";
import type { Storage } from "./storage.js";
import { joinKey, readStoredJson } from "./keys.js";
import { INTEGER_RANGES, integerRange, isRecord } from "./json-checks.js";

export * from "./annotation-codec.js";

/** Dimension name -> [scale, unit], in order (e.g. `{x: [5e-9, "m"], y: [5e-9, "m"], z: [4.5e-8, "m"]}`). */
export type AnnotationDimensions = Record<string, [number, string]>;

export type AnnotationTypeName = "POINT" | "LINE" | "AXIS_ALIGNED_BOUNDING_BOX" | "ELLIPSOID";

export interface AnnotationInfo {
  "@type": "neuroglancer_annotations_v1";
  dimensions: AnnotationDimensions;
  lower_bound: number[];
  upper_bound: number[];
  annotation_type: AnnotationTypeName;
  properties: AnnotationPropertySpec[];
  relationships: { id: string; key: string }[];
  by_id: { key: string };
  spatial: { key: string; grid_shape: number[]; chunk_size: number[]; limit: number }[];
}

export interface WriteAnnotationsInput {
  type: AnnotationGeometryType;
  dimensions: AnnotationDimensions;
  annotations: readonly Annotation[];
  propertySpecs?: AnnotationPropertySpec[];
  /** Relationship ids; each gets the index `rel_<id>/`. */
  relationships?: string[];
  /** Default: floor of the geometry's minimum. */
  lowerBound?: number[];
  /** Exclusive; default: floor of the geometry's maximum + 1. */
  upperBound?: number[];
  spatial?: { limit?: number; seed?: number; maxLevels?: number };
}

const TYPE_NAMES: Record<AnnotationGeometryType, AnnotationTypeName> = {
  point: "POINT",
  line: "LINE",
  axis_aligned_bounding_box: "AXIS_ALIGNED_BOUNDING_BOX",
  ellipsoid: "ELLIPSOID",
};
const PROPERTY_ID = /^[a-z][a-zA-Z0-9_]*$/;
const DIMENSION_NAME = /^[a-zA-Z][a-zA-Z0-9_]*$/;
const KEY_SAFE = /^[A-Za-z0-9_.-]+$/;
function numberArray(x: unknown, rank: number, path: string, fail: (m: string, p: string) => never): number[] {
  if (!Array.isArray(x) || x.length !== rank || x.some((v) => typeof v !== "number" || !Number.isFinite(v))) {
    fail(`expected ${rank} finite numbers`, path);
  }
  return x as number[];
}

/** Checks an info JSON (ours or another writer's) and returns it typed. */
export function validateAnnotationInfo(json: unknown, code: "invalid_info" | "invalid_argument" = "invalid_info"): AnnotationInfo {
  const fail = (m: string, p: string): never => {
    throw new PrecomputedError(code, m, p);
  };
  if (!isRecord(json)) fail("expected a JSON object", "");
  const j = json as Record<string, unknown>;
  if (j["@type"] !== "neuroglancer_annotations_v1") fail('must be "neuroglancer_annotations_v1"', "@type");
  if (!isRecord(j.dimensions) || Object.keys(j.dimensions).length === 0) fail("expected a non-empty object", "dimensions");
  const dimensions = j.dimensions as Record<string, unknown>;
  for (const [name, v] of Object.entries(dimensions)) {
    if (!DIMENSION_NAME.test(name)) fail("dimension names must match /^[a-zA-Z][a-zA-Z0-9_]*$/", `dimensions.${name}`);
    if (!Array.isArray(v) || v.length !== 2 || typeof v[0] !== "number" || !(v[0] > 0) || !Number.isFinite(v[0]) || typeof v[1] !== "string") {
      fail("expected [positive scale, unit]", `dimensions.${name}`);
    }
  }
  const rank = Object.keys(dimensions).length;
  const lower = numberArray(j.lower_bound, rank, "lower_bound", fail);
  const upper = numberArray(j.upper_bound, rank, "upper_bound", fail);
  upper.forEach((u, d) => {
    if (!(u > lower[d])) fail("upper_bound must exceed lower_bound", `upper_bound[${d}]`);
  });
  const typeName = j.annotation_type;
  if (typeof typeName !== "string" || !Object.values(TYPE_NAMES).includes(typeName as AnnotationTypeName)) {
    fail("must be POINT, LINE, AXIS_ALIGNED_BOUNDING_BOX or ELLIPSOID", "annotation_type");
  }
  const properties = validatePropertySpecs(j.properties, fail);
  if (!Array.isArray(j.relationships)) fail("expected an array", "relationships");
  const relationships = (j.relationships as unknown[]).map((r, i) => {
    if (!isRecord(r) || typeof r.id !== "string" || typeof r.key !== "string" || r.key === "") fail("expected {id, key}", `relationships[${i}]`);
    const rel = r as { id: string; key: string };
    return { id: rel.id, key: rel.key };
  });
  if (!isRecord(j.by_id) || typeof j.by_id.key !== "string" || j.by_id.key === "") fail("expected {key}", "by_id");
  if (!Array.isArray(j.spatial)) fail("expected an array", "spatial");
  const spatial = (j.spatial as unknown[]).map((s, i) => {
    const p = `spatial[${i}]`;
    if (!isRecord(s) || typeof s.key !== "string" || s.key === "") fail("expected {key, grid_shape, chunk_size, limit}", p);
    const level = s as Record<string, unknown>;
    const grid = numberArray(level.grid_shape, rank, `${p}.grid_shape`, fail);
    if (grid.some((g) => !Number.isInteger(g) || g < 1)) fail("expected positive integers", `${p}.grid_shape`);
    const chunk = numberArray(level.chunk_size, rank, `${p}.chunk_size`, fail);
    if (chunk.some((c) => !(c > 0))) fail("expected positive numbers", `${p}.chunk_size`);
    if (typeof level.limit !== "number" || !Number.isInteger(level.limit) || level.limit < 1) fail("expected a positive integer", `${p}.limit`);
    return { key: level.key as string, grid_shape: grid, chunk_size: chunk, limit: level.limit as number };
  });
  return {
    "@type": "neuroglancer_annotations_v1",
    dimensions: dimensions as AnnotationDimensions,
    lower_bound: lower,
    upper_bound: upper,
    annotation_type: typeName as AnnotationTypeName,
    properties,
    relationships,
    by_id: { key: (j.by_id as { key: string }).key },
    spatial,
  };
}

function validatePropertySpecs(json: unknown, fail: (m: string, p: string) => never): AnnotationPropertySpec[] {
  if (!Array.isArray(json)) fail("expected an array", "properties");
  const properties = (json as unknown[]).map((p, i) => validatePropertySpec(p, `properties[${i}]`, fail));
  const ids = new Set<string>();
  properties.forEach((p, i) => {
    if (ids.has(p.id)) fail("duplicate property id", `properties[${i}].id`);
    ids.add(p.id);
  });
  return properties;
}

function validatePropertySpec(p: unknown, path: string, fail: (m: string, p: string) => never): AnnotationPropertySpec {
  if (!isRecord(p)) fail("expected an object", path);
  const spec = p as Record<string, unknown>;
  if (typeof spec.id !== "string" || !PROPERTY_ID.test(spec.id)) fail("id must match /^[a-z][a-zA-Z0-9_]*$/", `${path}.id`);
  const type = spec.type as AnnotationPropertySpec["type"];
  if (typeof type !== "string" || !["rgb", "rgba", "float32", ...Object.keys(INTEGER_RANGES)].includes(type)) {
    fail("type must be rgb, rgba, uint8, int8, uint16, int16, uint32, int32 or float32", `${path}.type`);
  }
  if (spec.description !== undefined && typeof spec.description !== "string") fail("expected a string", `${path}.description`);
  const out: AnnotationPropertySpec = { id: spec.id as string, type };
  if (spec.description !== undefined) out.description = spec.description as string;
  if ((spec.enum_values === undefined) !== (spec.enum_labels === undefined)) fail("enum_values and enum_labels come together", path);
  if (spec.enum_values !== undefined) {
    if (type === "rgb" || type === "rgba") fail("colour properties cannot have enum values", `${path}.enum_values`);
    const range = integerRange(type);
    const values = spec.enum_values;
    if (!Array.isArray(values) || values.some((v) => typeof v !== "number" || !Number.isFinite(v) || (range && (!Number.isInteger(v) || v < range[0] || v > range[1])))) {
      fail(`expected ${type} values`, `${path}.enum_values`);
    }
    const labels = spec.enum_labels;
    if (!Array.isArray(labels) || labels.length !== (values as number[]).length || labels.some((l) => typeof l !== "string")) {
      fail("expected one string label per enum value", `${path}.enum_labels`);
    }
    out.enum_values = values as number[];
    out.enum_labels = labels as string[];
  }
  return out;
}

/** The decoding spec for an info's records. */
export function annotationEncodingSpec(info: AnnotationInfo): AnnotationEncodingSpec {
  const type = (Object.keys(TYPE_NAMES) as AnnotationGeometryType[]).find((t) => TYPE_NAMES[t] === info.annotation_type);
  if (type === undefined) throw new PrecomputedError("invalid_info", "unknown annotation type", "annotation_type");
  return {
    type,
    rank: Object.keys(info.dimensions).length,
    properties: info.properties,
    relationships: info.relationships.map((r) => r.id),
  };
}


/** Smallest float32 >= x: Neuroglancer parses chunk_size into a Float32Array, so extents must survive that. */
function float32Ceil(x: number): number {
  const f = Math.fround(x);
  if (f >= x) return f;
  const buf = new Float32Array([f]);
  new Uint32Array(buf.buffer)[0] += f > 0 ? 1 : -1;
  return buf[0];
}

/** Axis-aligned extent of an annotation's geometry (ellipsoid: centre +- radii). Geometry was checked by encoding. */
function extentOf(a: Annotation, type: AnnotationGeometryType): [number[], number[]] {
  const [v0, v1] = geometryVectors(a, type) as number[][];
  if (type === "point") return [v0, v0];
  if (type === "ellipsoid") return [v0.map((c, d) => c - Math.abs(v1[d])), v0.map((c, d) => c + Math.abs(v1[d]))];
  return [v0.map((c, d) => Math.min(c, v1[d])), v0.map((c, d) => Math.max(c, v1[d]))];
}

/** The items the spatial index places, with the geometry checked against the bounds. */
function spatialItems(input: WriteAnnotationsInput, ids: bigint[], extents: [number[], number[]][], lower: number[], upper: number[]): SpatialItem[] {
  const { type, annotations } = input;
  return annotations.map((a, i) => {
    const [lo, hi] = extents[i];
    for (let d = 0; d < lower.length; ++d) {
      if (lo[d] < lower[d] || hi[d] > upper[d]) {
        throw new PrecomputedError("invalid_argument", `geometry [${lo[d]}, ${hi[d]}] in dimension ${d} is outside [${lower[d]}, ${upper[d]}]`, `annotations[${i}]`);
      }
    }
    if (type === "line") {
      const [p, q] = geometryVectors(a, type) as number[][];
      return { id: ids[i], kind: "segment", a: p, b: q };
    }
    return type === "point" ? { id: ids[i], kind: "point", a: lo } : { id: ids[i], kind: "box", a: lo, b: hi };
  });
}

async function putAll(storage: Storage, entries: Iterable<[string, Uint8Array]>): Promise<void> {
  // Bounded concurrency: thousands of small files, without thousands of open handles.
  const queue = [...entries];
  const worker = async (): Promise<void> => {
    for (let next = queue.pop(); next; next = queue.pop()) await storage.put(next[0], next[1]);
  };
  await Promise.all(Array.from({ length: 16 }, worker));
}

/**
 * Writes a complete unsharded annotation collection under `prefix` and returns its info. Everything is
 * encoded (and so checked) before the first write, and the info is written after the indexes it names.
 * Index files left by an earlier write to the same prefix (`by_id/`, `rel_*\/`, `spatial<n>/`) that this
 * write did not produce are deleted afterwards, so a rewrite never shows stale annotations. All files are
 * built in memory: meant for up to a few million annotations.
 */
export async function writeAnnotations(storage: Storage, prefix: string, input: WriteAnnotationsInput): Promise<AnnotationInfo> {
  const names = Object.keys(input.dimensions);
  const rank = names.length;
  const relationships = input.relationships ?? [];
  relationships.forEach((r, i) => {
    if (!KEY_SAFE.test(r)) throw new PrecomputedError("invalid_argument", "relationship ids must match /^[A-Za-z0-9_.-]+$/ (they name a folder)", `relationships[${i}]`);
  });
  if (new Set(relationships).size !== relationships.length) throw new PrecomputedError("invalid_argument", "duplicate relationship id", "relationships");
  const properties = validatePropertySpecs(input.propertySpecs ?? [], (m, p) => {
    throw new PrecomputedError("invalid_argument", m, `propertySpecs${p.slice("properties".length)}`);
  });
  if (!(input.type in TYPE_NAMES)) throw new PrecomputedError("invalid_argument", `unknown annotation type ${JSON.stringify(input.type)}`, "type");
  const spec: AnnotationEncodingSpec = { type: input.type, rank, properties, relationships };
  const layout = annotationLayout(spec);
  const ids = input.annotations.map((a, i) => toUint64(a.id, `annotations[${i}].id`));
  if (new Set(ids).size !== ids.length) throw new PrecomputedError("invalid_argument", "duplicate annotation id", "annotations");
  for (const [i, a] of input.annotations.entries()) {
    for (const r of Object.keys(a.relationships ?? {})) {
      if (!relationships.includes(r)) throw new PrecomputedError("invalid_argument", `relationship ${JSON.stringify(r)} is not declared`, `annotations[${i}]`);
    }
  }

  // Encode every record once up front: this checks all geometry and property values before anything is written.
  const chunkOf = (indices: number[]): Uint8Array => encodeAnnotationChunk(indices.map((i) => input.annotations[i]), layout);
  const single = input.annotations.map((a) => encodeSingleAnnotation(a, layout));

  const extents = input.annotations.map((a) => extentOf(a, input.type));
  const minOf = (d: number): number => extents.reduce((m, [lo]) => Math.min(m, lo[d]), Infinity);
  const maxOf = (d: number): number => extents.reduce((m, [, hi]) => Math.max(m, hi[d]), -Infinity);
  const lower = input.lowerBound ?? names.map((_, d) => (extents.length ? Math.floor(minOf(d)) : 0));
  let upper = input.upperBound ?? names.map((_, d) => (extents.length ? Math.floor(maxOf(d)) + 1 : 1));
  upper = upper.map((u, d) => lower[d] + float32Ceil(u - lower[d]));
  const draft = {
    "@type": "neuroglancer_annotations_v1",
    dimensions: input.dimensions,
    lower_bound: lower,
    upper_bound: upper,
    annotation_type: TYPE_NAMES[input.type],
    properties: spec.properties,
    relationships: relationships.map((r) => ({ id: r, key: `rel_${r}` })),
    by_id: { key: "by_id" },
    spatial: [],
  };
  validateAnnotationInfo(draft, "invalid_argument");

  const items = spatialItems(input, ids, extents, lower, upper);
  const levels = buildSpatialIndex(items, lower, upper, {
    limit: input.spatial?.limit ?? 1000,
    seed: input.spatial?.seed ?? 0,
    scales: names.map((n) => input.dimensions[n][0]),
    maxLevels: input.spatial?.maxLevels ?? 16,
  });
  const files: [string, Uint8Array][] = [];
  levels.forEach((level, l) => {
    for (const [cell, indices] of level.cells) files.push([joinKey(prefix, `spatial${l}`, cell), chunkOf(indices)]);
  });
  if (input.annotations.length === 0) files.push([joinKey(prefix, "spatial0", names.map(() => "0").join("_")), chunkOf([])]);
  ids.forEach((id, i) => files.push([joinKey(prefix, "by_id", id.toString()), single[i]]));
  for (const rel of relationships) {
    const bySegment = new Map<bigint, number[]>();
    input.annotations.forEach((a, i) => {
      for (const [j, s] of (a.relationships?.[rel] ?? []).entries()) {
        const seg = toUint64(s, `annotations[${i}].relationships.${rel}[${j}]`);
        let list = bySegment.get(seg);
        if (!list) bySegment.set(seg, (list = []));
        if (list[list.length - 1] !== i) list.push(i);
      }
    });
    for (const [seg, indices] of bySegment) files.push([joinKey(prefix, `rel_${rel}`, seg.toString()), chunkOf(indices)]);
  }
  await putAll(storage, files);
  const info: AnnotationInfo = {
    ...(draft as Omit<AnnotationInfo, "spatial">),
    spatial: levels.map((level, l) => ({ key: `spatial${l}`, grid_shape: level.grid_shape, chunk_size: level.chunk_size, limit: level.limit })),
  };
  await storage.put(joinKey(prefix, "info"), JSON.stringify(info));
  const written = new Set(files.map(([key]) => key));
  const base = joinKey(prefix, "");
  const ours = /^(by_id|rel_[^/]+|spatial[0-9]+)\//;
  for (const key of await storage.list(base)) {
    if (!written.has(key) && ours.test(key.slice(base.length))) await storage.delete(key);
  }
  return info;
}

/** Reads and validates `<prefix>/info`. */
export async function readAnnotationInfo(storage: Storage, prefix: string): Promise<AnnotationInfo> {
  const json = await readStoredJson(storage, joinKey(prefix, "info"), "annotation info");
  return validateAnnotationInfo(json);
}
