/**
 * Neuroglancer precomputed segment properties (`neuroglancer_segment_properties`), inline form.
 * Spec: neuroglancer src/datasource/precomputed/segment_properties.md; the parser Neuroglancer runs is
 * `parseInlinePropertyMap` in src/datasource/precomputed/frontend.ts, and queries over these properties are
 * parsed in src/segmentation_display_state/property_map.ts.
 */
import { PrecomputedError } from "./errors.js";
import type { Storage } from "./storage.js";
import { joinKey, readStoredJson } from "./keys.js";
import { integerRange, isRecord } from "./json-checks.js";

export type SegmentId = number | bigint;
export type SegmentPropertyNumberType = "uint8" | "int8" | "uint16" | "int16" | "uint32" | "int32" | "float32";

export interface StringSegmentProperty {
  id: string;
  type: "label" | "description" | "string";
  description?: string;
  values: string[];
}
export interface TagsSegmentProperty {
  id: string;
  type: "tags";
  tags: string[];
  tag_descriptions?: string[];
  /** Per segment: increasing indices into `tags`. */
  values: number[][];
}
export interface NumberSegmentProperty {
  id: string;
  type: "number";
  data_type: SegmentPropertyNumberType;
  description?: string;
  values: number[];
}
export type SegmentProperty = StringSegmentProperty | TagsSegmentProperty | NumberSegmentProperty;

export interface SegmentPropertiesInfo {
  "@type": "neuroglancer_segment_properties";
  inline?: { ids: string[]; properties: SegmentProperty[] };
}

export interface SegmentPropertiesInput {
  ids: SegmentId[];
  label?: string[];
  description?: string[];
  strings?: { id: string; description?: string; values: string[] }[];
  tags?: { names: string[]; descriptions?: string[]; values: number[][] };
  numbers?: { id: string; type: SegmentPropertyNumberType; description?: string; values: number[] }[];
}

const UINT64_MAX = (1n << 64n) - 1n;
// Neuroglancer's numeric query syntax (`volume_nm3>100`) only recognises ids of this shape.
const QUERYABLE_ID = /^[a-zA-Z][a-zA-Z0-9_]*$/;

function fail(message: string, path: string): never {
  throw new PrecomputedError("invalid_info", message, path);
}

function segmentIdString(id: unknown, path: string): string {
  if (typeof id === "bigint") {
    if (id < 0n || id > UINT64_MAX) fail("segment id is outside uint64", path);
    return id.toString();
  }
  if (typeof id === "number") {
    if (!Number.isSafeInteger(id) || id < 0) fail("segment id must be a non-negative safe integer (use bigint above 2^53)", path);
    return String(id);
  }
  fail("segment id must be a number or bigint", path);
}

/**
 * Builds the info JSON. Ids are sorted ascending (values permuted with them): Neuroglancer's
 * `normalizeInlineSegmentPropertyMap` only checks each id against the first before skipping its own sort,
 * so an order like [1, 3, 2] would reach its binary search unsorted.
 */
export function buildSegmentProperties(input: SegmentPropertiesInput): SegmentPropertiesInfo {
  try {
    return validateSegmentProperties(build(input));
  } catch (e) {
    // The caller's input, not a stored file, is what is wrong.
    if (e instanceof PrecomputedError && e.code === "invalid_info") {
      throw new PrecomputedError("invalid_argument", e.message, undefined, { cause: e });
    }
    throw e;
  }
}

function build(input: SegmentPropertiesInput): SegmentPropertiesInfo {
  const arg = (message: string, path: string): never => {
    throw new PrecomputedError("invalid_argument", message, path);
  };
  const n = input.ids.length;
  const ids = input.ids.map((id, i) => BigInt(segmentIdString(id, `ids[${i}]`)));
  const order = ids.map((_, i) => i).sort((a, b) => (ids[a] < ids[b] ? -1 : ids[a] > ids[b] ? 1 : 0));
  for (let k = 1; k < n; ++k) {
    if (ids[order[k]] === ids[order[k - 1]]) arg(`duplicate segment id ${ids[order[k]]}`, `ids[${order[k]}]`);
  }
  const permute = <T>(values: T[], path: string): T[] => {
    if (values.length !== n) arg(`expected ${n} values, got ${values.length}`, path);
    return order.map((i) => values[i]);
  };
  const properties: SegmentProperty[] = [];
  if (input.label) properties.push({ id: "label", type: "label", values: permute(input.label, "label") });
  if (input.description) {
    properties.push({ id: "description", type: "description", values: permute(input.description, "description") });
  }
  for (const [k, s] of (input.strings ?? []).entries()) {
    properties.push({ id: s.id, type: "string", ...optional("description", s.description), values: permute(s.values, `strings[${k}].values`) });
  }
  if (input.tags) {
    const { names, descriptions, values } = input.tags;
    const sortedValues = permute(values, "tags.values").map((v) => [...v].sort((a, b) => a - b));
    properties.push({
      id: "tags",
      type: "tags",
      tags: names,
      ...optional("tag_descriptions", descriptions),
      values: sortedValues,
    });
  }
  for (const [k, p] of (input.numbers ?? []).entries()) {
    if (!QUERYABLE_ID.test(p.id) || p.id.toLowerCase() === "id" || p.id.toLowerCase() === "label") {
      arg("number property id must match /^[a-zA-Z][a-zA-Z0-9_]*$/ and not be 'id' or 'label'", `numbers[${k}].id`);
    }
    properties.push({
      id: p.id,
      type: "number",
      data_type: p.type,
      ...optional("description", p.description),
      values: permute(p.values, `numbers[${k}].values`),
    });
  }
  return {
    "@type": "neuroglancer_segment_properties",
    inline: { ids: order.map((i) => ids[i].toString()), properties },
  };
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

function stringArray(x: unknown, path: string): string[] {
  if (!Array.isArray(x)) fail("expected an array of strings", path);
  x.forEach((s, i) => {
    if (typeof s !== "string") fail("expected a string", `${path}[${i}]`);
  });
  return x as string[];
}

function valuesOfLength(p: Record<string, unknown>, n: number, path: string): unknown[] {
  const v = p.values;
  if (!Array.isArray(v)) fail("expected an array", `${path}.values`);
  if (v.length !== n) fail(`expected ${n} values (one per id), got ${v.length}`, `${path}.values`);
  return v;
}

const ALLOWED_KEYS: Record<SegmentProperty["type"], string[]> = {
  label: ["id", "type", "description", "values"],
  description: ["id", "type", "description", "values"],
  string: ["id", "type", "description", "values"],
  tags: ["id", "type", "tags", "tag_descriptions", "values"],
  number: ["id", "type", "data_type", "description", "values"],
};

function validateProperty(p: unknown, n: number, path: string): SegmentProperty {
  if (!isRecord(p)) fail("expected an object", path);
  if (typeof p.id !== "string" || p.id.length === 0 || /\s/.test(p.id)) fail("id must be a non-empty string without spaces", `${path}.id`);
  const type = p.type;
  if (type !== "label" && type !== "description" && type !== "string" && type !== "tags" && type !== "number") {
    fail(`type must be label, description, string, tags or number, got ${JSON.stringify(type)}`, `${path}.type`);
  }
  for (const key of Object.keys(p)) {
    if (!ALLOWED_KEYS[type].includes(key)) fail(`member not allowed for type ${type}`, `${path}.${key}`);
  }
  if (p.description !== undefined && typeof p.description !== "string") fail("expected a string", `${path}.description`);
  const values = valuesOfLength(p, n, path);
  const id = p.id;
  if (type === "tags") {
    const tags = stringArray(p.tags, `${path}.tags`);
    const seen = new Set<string>();
    tags.forEach((t, i) => {
      // Tags are typed as `#tag` in Neuroglancer's query box and matched case-insensitively.
      if (t.length === 0 || t.startsWith("#") || /\s/.test(t)) fail("tag must be non-empty, without '#' prefix or spaces", `${path}.tags[${i}]`);
      if (seen.has(t.toLowerCase())) fail("duplicate tag (tags match case-insensitively)", `${path}.tags[${i}]`);
      seen.add(t.toLowerCase());
    });
    let tagDescriptions: string[] | undefined;
    if (p.tag_descriptions !== undefined) {
      tagDescriptions = stringArray(p.tag_descriptions, `${path}.tag_descriptions`);
      if (tagDescriptions.length !== tags.length) fail(`expected ${tags.length} tag descriptions`, `${path}.tag_descriptions`);
    }
    values.forEach((v, i) => {
      const vp = `${path}.values[${i}]`;
      if (!Array.isArray(v)) fail("expected an array of tag indices", vp);
      v.forEach((t: unknown, j) => {
        if (typeof t !== "number" || !Number.isInteger(t) || t < 0 || t >= tags.length) fail("tag index out of range", `${vp}[${j}]`);
        if (j > 0 && t <= (v[j - 1] as number)) fail("tag indices must be strictly increasing", `${vp}[${j}]`);
      });
    });
    return { id, type, tags, ...optional("tag_descriptions", tagDescriptions), values: values as number[][] };
  }
  const description = p.description as string | undefined;
  if (type === "number") {
    const dt = p.data_type;
    if (typeof dt !== "string" || (dt !== "float32" && integerRange(dt) === undefined)) fail("data_type must be one of uint8, int8, uint16, int16, uint32, int32, float32", `${path}.data_type`);
    const dataType = dt as SegmentPropertyNumberType;
    const range = integerRange(dataType);
    values.forEach((v, i) => {
      const vp = `${path}.values[${i}]`;
      if (typeof v !== "number" || !Number.isFinite(v)) fail("expected a finite number", vp);
      if (range && (!Number.isInteger(v) || v < range[0] || v > range[1])) fail(`not a ${dataType} value`, vp);
      if (!range && Math.abs(v) > 3.4028234663852886e38) fail("outside float32 range", vp);
    });
    return { id, type, data_type: dataType, ...optional("description", description), values: values as number[] };
  }
  return { id, type, ...optional("description", description), values: stringArray(values, `${path}.values`) };
}

/** Checks a parsed info JSON against the spec (and Neuroglancer's parser); returns it typed. */
export function validateSegmentProperties(json: unknown): SegmentPropertiesInfo {
  if (!isRecord(json)) fail("expected a JSON object", "");
  if (json["@type"] !== "neuroglancer_segment_properties") fail('must be "neuroglancer_segment_properties"', "@type");
  for (const key of Object.keys(json)) {
    if (key !== "@type" && key !== "inline") fail("unknown member", key);
  }
  if (json.inline === undefined) return { "@type": "neuroglancer_segment_properties" };
  const inline = json.inline;
  if (!isRecord(inline)) fail("expected an object", "inline");
  const ids = stringArray(inline.ids, "inline.ids");
  const seenIds = new Set<string>();
  ids.forEach((s, i) => {
    if (!/^[0-9]+$/.test(s) || BigInt(s) > UINT64_MAX) fail("expected a base-10 uint64", `inline.ids[${i}]`);
    const canonical = BigInt(s).toString();
    if (seenIds.has(canonical)) fail("duplicate id", `inline.ids[${i}]`);
    seenIds.add(canonical);
  });
  if (!Array.isArray(inline.properties)) fail("expected an array", "inline.properties");
  const properties = inline.properties.map((p, i) => validateProperty(p, ids.length, `inline.properties[${i}]`));
  const seenPropIds = new Set<string>();
  const singletons = new Set<string>();
  properties.forEach((p, i) => {
    // Neuroglancer's query parser looks properties up by lower-cased id.
    const key = p.id.toLowerCase();
    if (seenPropIds.has(key)) fail("duplicate property id (ids match case-insensitively)", `inline.properties[${i}].id`);
    seenPropIds.add(key);
    if (p.type === "label" || p.type === "description" || p.type === "tags") {
      if (singletons.has(p.type)) fail(`at most one property may have type ${p.type}`, `inline.properties[${i}].type`);
      singletons.add(p.type);
    }
  });
  return { "@type": "neuroglancer_segment_properties", inline: { ids, properties } };
}


/** Validates and writes `<prefix>/info`. */
export async function writeSegmentProperties(storage: Storage, prefix: string, props: SegmentPropertiesInfo): Promise<void> {
  const info = validateSegmentProperties(props);
  await storage.put(joinKey(prefix, "info"), JSON.stringify(info));
}

/** Reads and validates `<prefix>/info`. */
export async function readSegmentProperties(storage: Storage, prefix: string): Promise<SegmentPropertiesInfo> {
  const json = await readStoredJson(storage, joinKey(prefix, "info"), "segment properties info");
  return validateSegmentProperties(json);
}
