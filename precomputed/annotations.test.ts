import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  annotationEncodingSpec,
  annotationLayout,
  decodeAnnotationChunk,
  decodeSingleAnnotation,
  encodeAnnotationChunk,
  encodeSingleAnnotation,
  readAnnotationInfo,
  writeAnnotations,
  type Annotation,
  type AnnotationEncodingSpec,
  type AnnotationInfo,
  type AnnotationPropertySpec,
  type WriteAnnotationsInput,
} from "./annotations.js";
import { PrecomputedError } from "./errors.js";
import { LocalStorage } from "./storage.js";
import {
  loadNeuroglancer,
  ngKvStore,
  type NeuroglancerModules,
  type NgAnnotation,
  type NgAnnotationGeometryData,
  type NgPropertySerializer,
} from "./testing/neuroglancer-node.js";
import { mulberry32 } from "./testing/random.js";

let ng: NeuroglancerModules;
beforeAll(async () => {
  ng = await loadNeuroglancer();
});

const dirs: string[] = [];
async function tempStorage(): Promise<LocalStorage> {
  const dir = await mkdtemp(path.join(tmpdir(), "annotations-"));
  dirs.push(dir);
  return new LocalStorage(dir);
}
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const DIMS = { x: [5e-9, "m"], y: [5e-9, "m"], z: [4.5e-8, "m"] } as WriteAnnotationsInput["dimensions"];

// Deliberately out of alignment order, to exercise the 4/2/1-byte grouping.
const PROPS: AnnotationPropertySpec[] = [
  { id: "kind", type: "uint8", enum_values: [1, 2], enum_labels: ["mito", "er"] },
  { id: "distance_nm", type: "float32", description: "surface distance" },
  { id: "color", type: "rgb" },
  { id: "delta", type: "int16" },
  { id: "organelle", type: "uint32" },
  { id: "tint", type: "rgba" },
  { id: "s8", type: "int8" },
];

function randomPoints(n: number, seed: number, extent = [1000, 800, 60]): Annotation[] {
  const rand = mulberry32(seed);
  return Array.from({ length: n }, (_, i) => ({
    id: 1000 + i * 7,
    point: extent.map((e) => Math.fround(rand() * e)),
    properties: {
      kind: 1 + (i % 2),
      distance_nm: Math.fround(rand() * 30),
      color: [i % 256, 255 - (i % 256), 7],
      delta: (i % 2 ? -1 : 1) * (i % 30000),
      organelle: 4_000_000_000 - i,
      tint: [1, 2, 3, i % 256],
      s8: (i % 256) - 128,
    },
    relationships: { organelle: [5000 + (i % 5)], er: i % 3 === 0 ? [] : [9, 2n ** 63n + BigInt(i % 2)] },
  }));
}

function ngParameters(info: AnnotationInfo) {
  return {
    type: ng.AnnotationType[info.annotation_type],
    rank: Object.keys(info.dimensions).length,
    relationships: info.relationships.map((r) => ({ name: r.id })),
    properties: ng.parseAnnotationPropertySpecs(info.properties),
  };
}

function ngSerializer(info: AnnotationInfo): NgPropertySerializer {
  const p = ngParameters(info);
  return new ng.AnnotationPropertySerializer(p.rank, ng.annotationTypeHandlers[p.type].serializedBytes(p.rank), p.properties);
}

/** Reads annotation i of a decoded Neuroglancer geometry chunk with Neuroglancer's own handlers. */
function ngAnnotationAt(info: AnnotationInfo, data: NgAnnotationGeometryData, i: number): NgAnnotation {
  const p = ngParameters(info);
  const ser = ngSerializer(info);
  const ids = data.typeToIds[p.type];
  const dv = new DataView(data.data.buffer, data.data.byteOffset, data.data.byteLength);
  const a = ng.annotationTypeHandlers[p.type].deserialize(dv, i * ser.serializedBytes, true, p.rank, ids[i]);
  a.properties = new Array<number>(p.properties.length);
  ser.deserialize(dv, 0, i, ids.length, true, a.properties);
  return a;
}

function packedColor(c: number[]): number {
  return c.reduce((acc, v, i) => acc + v * 2 ** (8 * i), 0);
}

function expectNgPropertiesMatch(ngProps: number[], ours: Record<string, number | number[]>): void {
  PROPS.forEach((p, k) => {
    const v = ours[p.id];
    expect(ngProps[k], p.id).toBe(Array.isArray(v) ? packedColor(v) : p.type === "float32" ? Math.fround(v) : v);
  });
}

describe("record layout", () => {
  it("matches Neuroglancer's property offsets and size", () => {
    for (const type of ["point", "line"] as const) {
      const spec: AnnotationEncodingSpec = { type, rank: 3, properties: PROPS };
      const layout = annotationLayout(spec);
      const ser = new ng.AnnotationPropertySerializer(3, ng.annotationTypeHandlers[type === "point" ? 0 : 1].serializedBytes(3), ng.parseAnnotationPropertySpecs(PROPS));
      expect(layout.stride).toBe(ser.serializedBytes);
      expect(ser.propertyGroupBytes).toEqual([layout.stride]);
    }
    // 12 geometry bytes, then float32 + uint32, int16, then uint8, rgb, rgba, int8 = 31 -> padded to 32
    expect(annotationLayout({ type: "point", rank: 3, properties: PROPS }).offsets).toEqual([22, 12, 23, 20, 16, 26, 30]);
    expect(annotationLayout({ type: "point", rank: 3, properties: PROPS }).stride).toBe(32);
  });

  it("chunk and single encodings round-trip through our decoder", () => {
    const spec: AnnotationEncodingSpec = { type: "point", rank: 3, properties: PROPS, relationships: ["organelle", "er"] };
    const anns = randomPoints(20, 3);
    const decoded = decodeAnnotationChunk(encodeAnnotationChunk(anns, annotationLayout(spec)), spec);
    expect(decoded.map((d) => d.id)).toEqual(anns.map((a) => BigInt(a.id)));
    expect(decoded[5].point).toEqual(anns[5].point);
    expect(decoded[5].properties).toEqual({ ...anns[5].properties, distance_nm: Math.fround(anns[5].properties?.distance_nm as number) });
    const one = decodeSingleAnnotation(encodeSingleAnnotation(anns[4], annotationLayout(spec)), spec, anns[4].id);
    expect(one.relationships).toEqual({ organelle: [5004n], er: [9n, 2n ** 63n] });
    const none = decodeSingleAnnotation(encodeSingleAnnotation(anns[3], annotationLayout(spec)), spec, anns[3].id);
    expect(none.relationships).toEqual({ organelle: [5003n], er: [] });
  });
});

describe("writeAnnotations, read back by Neuroglancer's precomputed backend", () => {
  it("points: spatial cells, by_id entries and relationship indexes", async () => {
    const storage = await tempStorage();
    const anns = randomPoints(600, 11);
    const info = await writeAnnotations(storage, "contacts", {
      type: "point",
      dimensions: DIMS,
      annotations: anns,
      propertySpecs: PROPS,
      relationships: ["organelle", "er"],
      lowerBound: [0, 0, 0],
      upperBound: [1000, 800, 60],
      spatial: { limit: 50, seed: 1 },
    });
    expect(await readAnnotationInfo(storage, "contacts")).toEqual(info);

    // info as Neuroglancer's own parsers read it
    const space = ng.coordinateSpaceFromJson(info.dimensions);
    expect(space.names).toEqual(["x", "y", "z"]);
    expect([...space.scales]).toEqual([5e-9, 5e-9, 4.5e-8]);
    expect(ng.AnnotationType[info.annotation_type]).toBe(0);
    expect(info.spatial.length).toBeGreaterThan(1);
    for (const level of info.spatial) {
      level.grid_shape.forEach((g, d) => expect(g * level.chunk_size[d]).toBe(info.upper_bound[d] - info.lower_bound[d]));
      // Neuroglancer keeps chunk_size as float32
      level.chunk_size.forEach((c) => expect(Math.fround(c)).toBe(c));
    }
    // 5000 x 4000 x 2700 nm: every dimension is over half the largest, so all are halved
    expect(info.spatial[1].grid_shape).toEqual([2, 2, 2]);

    const parameters = ngParameters(info);
    const annotationPropertySerializer = ngSerializer(info);
    const seen = new Map<string, number>();
    const signal = new AbortController().signal;
    for (const [l, level] of info.spatial.entries()) {
      const keys = await storage.list(`contacts/${level.key}/`);
      for (const key of keys) {
        const cell = key.split("/").pop()?.split("_").map(Number) ?? [];
        const chunk: { chunkGridPosition: number[]; data?: NgAnnotationGeometryData } = { chunkGridPosition: cell };
        await ng.spatialDownload.call(
          { kvStore: ngKvStore(storage, `contacts/${level.key}`), shardedKvStore: undefined, parent: { parameters, annotationPropertySerializer } },
          chunk,
          signal,
        );
        const data = chunk.data;
        if (!data) throw new Error(`no data for ${key}`);
        const ids = data.typeToIds[0];
        expect(ids.length).toBeLessThanOrEqual(level.limit);
        // subsampling keeps coarse cells near the requested limit (50), not all 600 annotations
        if (l === 0) expect(ids.length).toBeGreaterThan(20);
        expect(ids.length).toBeLessThanOrEqual(100);
        ids.forEach((id, i) => {
          expect(seen.has(id), `annotation ${id} emitted twice`).toBe(false);
          seen.set(id, l);
          const ours = anns.find((a) => String(a.id) === id);
          if (!ours?.point || !ours.properties) throw new Error(`unknown id ${id}`);
          const a = ngAnnotationAt(info, data, i);
          expect([...(a.point ?? [])]).toEqual(ours.point);
          // the point lies in the cell it was filed under
          ours.point.forEach((x, d) => {
            expect(x).toBeGreaterThanOrEqual(cell[d] * level.chunk_size[d]);
            expect(x).toBeLessThanOrEqual((cell[d] + 1) * level.chunk_size[d]);
          });
          expectNgPropertiesMatch(a.properties, ours.properties);
        });
      }
    }
    expect(seen.size).toBe(anns.length);

    // by_id: Neuroglancer's parseSingleAnnotation, including the related segment lists
    for (const k of [0, 3, 599]) {
      const chunk: { key: string; annotation?: NgAnnotation | null } = { key: String(anns[k].id) };
      await ng.byIdDownload.call(
        { kvStore: ngKvStore(storage, "contacts/by_id"), shardedKvStore: undefined, parameters, annotationPropertySerializer },
        chunk,
        signal,
      );
      const a = chunk.annotation;
      if (!a) throw new Error("by_id entry missing");
      expect([...(a.point ?? [])]).toEqual(anns[k].point);
      expectNgPropertiesMatch(a.properties, anns[k].properties ?? {});
      const rel = anns[k].relationships ?? {};
      expect((a.relatedSegments ?? []).map((s) => [...s])).toEqual([rel.organelle.map(BigInt), rel.er.map(BigInt)]);
    }

    // relationship index: all annotations related to segment 5002, and to the big uint64 ER id
    const relSource = (rel: string) => ({ kvStore: ngKvStore(storage, `contacts/rel_${rel}`), shardedKvStore: undefined });
    const self = { relationshipIndexSource: [relSource("organelle"), relSource("er")], parameters, annotationPropertySerializer };
    for (const [relIndex, segment, expected] of [
      [0, 5002n, anns.filter((_, i) => i % 5 === 2)],
      [1, 2n ** 63n + 1n, anns.filter((_, i) => i % 3 !== 0 && i % 2 === 1)],
    ] as const) {
      const chunk: { objectId: bigint; data?: NgAnnotationGeometryData } = { objectId: segment };
      await ng.relationshipDownload.call(self, chunk, relIndex, signal);
      expect(chunk.data?.typeToIds[0]).toEqual(expected.map((a) => String(a.id)));
    }
  });

  it("lines: each line is filed in exactly the cells it crosses, at one level", async () => {
    const storage = await tempStorage();
    const rand = mulberry32(5);
    const anns: Annotation[] = Array.from({ length: 300 }, (_, i) => {
      const a = [rand() * 1024, rand() * 1024, rand() * 64];
      // mostly short contact-like segments, some long ones crossing many cells
      const len = i % 10 === 0 ? 600 : 20;
      const b = a.map((x, d) => Math.min([1024, 1024, 64][d] - 1e-3, Math.max(0, x + (rand() - 0.5) * len * (d === 2 ? 0.1 : 1))));
      return { id: i + 1, pointA: a.map(Math.fround), pointB: b.map(Math.fround), properties: { d: i } };
    });
    const info = await writeAnnotations(storage, "lines", {
      type: "line",
      dimensions: DIMS,
      annotations: anns,
      propertySpecs: [{ id: "d", type: "uint16" }],
      lowerBound: [0, 0, 0],
      upperBound: [1024, 1024, 64],
      spatial: { limit: 20, seed: 9 },
    });
    expect(info.annotation_type).toBe("LINE");
    const parameters = ngParameters(info);
    const annotationPropertySerializer = ngSerializer(info);
    const filed = new Map<number, { level: number; cells: Set<string> }>();
    for (const [l, level] of info.spatial.entries()) {
      for (const key of await storage.list(`lines/${level.key}/`)) {
        const cellName = key.split("/").pop() ?? "";
        const chunk: { chunkGridPosition: number[]; data?: NgAnnotationGeometryData } = { chunkGridPosition: cellName.split("_").map(Number) };
        await ng.spatialDownload.call(
          { kvStore: ngKvStore(storage, `lines/${level.key}`), shardedKvStore: undefined, parent: { parameters, annotationPropertySerializer } },
          chunk,
          new AbortController().signal,
        );
        const data = chunk.data;
        if (!data) throw new Error("missing chunk");
        data.typeToIds[1].forEach((id, i) => {
          const a = ngAnnotationAt(info, data, i);
          const ours = anns[Number(id) - 1];
          expect([...(a.pointA ?? [])]).toEqual(ours.pointA);
          expect([...(a.pointB ?? [])]).toEqual(ours.pointB);
          expect(a.properties).toEqual([Number(id) - 1]);
          const entry = filed.get(Number(id)) ?? { level: l, cells: new Set<string>() };
          expect(entry.level).toBe(l);
          entry.cells.add(cellName);
          filed.set(Number(id), entry);
        });
      }
    }
    expect(filed.size).toBe(anns.length);
    let multiCell = 0;
    for (const [id, { level, cells }] of filed) {
      const { chunk_size } = info.spatial[level];
      const a = anns[id - 1];
      const sampled = new Set<string>();
      for (let k = 0; k <= 4000; ++k) {
        const t = k / 4000;
        sampled.add(a.pointA?.map((x, d) => Math.floor((x + t * ((a.pointB?.[d] ?? x) - x)) / chunk_size[d])).join("_") ?? "");
      }
      // every cell the line passes through is present; extra cells may only be ones it grazes (neighbours)
      for (const c of sampled) expect(cells.has(c), `line ${id} misses cell ${c}`).toBe(true);
      for (const c of cells) {
        const xyz = c.split("_").map(Number);
        const near = [...sampled].some((s) => s.split("_").map(Number).every((v, d) => Math.abs(v - xyz[d]) <= 1));
        expect(near, `line ${id} filed in far cell ${c}`).toBe(true);
      }
      if (cells.size > 1) ++multiCell;
    }
    expect(multiCell).toBeGreaterThan(5);
  });

  it("is deterministic for a seed and differs across seeds", async () => {
    const anns = randomPoints(400, 2);
    const input: WriteAnnotationsInput = {
      type: "point",
      dimensions: DIMS,
      annotations: anns,
      propertySpecs: PROPS,
      relationships: ["organelle", "er"],
    };
    const snapshot = async (seed: number): Promise<Record<string, string>> => {
      const s = await tempStorage();
      await writeAnnotations(s, "", { ...input, spatial: { limit: 30, seed } });
      const out: Record<string, string> = {};
      for (const k of await s.list("spatial")) out[k] = Buffer.from((await s.get(k)) ?? []).toString("hex");
      return out;
    };
    const a = await snapshot(4);
    expect(await snapshot(4)).toEqual(a);
    expect(await snapshot(5)).not.toEqual(a);
  });

  it("refines chunks towards physical isotropy: thin z (45 nm sections) is halved later", async () => {
    const rand = mulberry32(8);
    const anns = Array.from({ length: 200 }, (_, i) => ({ id: i, point: [rand() * 1000, rand() * 1000, rand() * 20] }));
    const info = await writeAnnotations(await tempStorage(), "iso", {
      type: "point",
      dimensions: DIMS,
      annotations: anns,
      lowerBound: [0, 0, 0],
      upperBound: [1000, 1000, 20],
      spatial: { limit: 4 },
    });
    // 5000 x 5000 x 900 nm -> x, y halved first; at 1250 x 1250 x 900 all three are halved
    expect(info.spatial.slice(0, 4).map((l) => l.grid_shape)).toEqual([[1, 1, 1], [2, 2, 1], [4, 4, 1], [8, 8, 2]]);
    for (const level of info.spatial) level.grid_shape.forEach((g, d) => expect(g * level.chunk_size[d]).toBe([1000, 1000, 20][d]));
  });

  it("a rewrite to the same prefix leaves no stale index files, and nothing outside its own folders is touched", async () => {
    const storage = await tempStorage();
    await storage.put("other/info", "{}");
    const big = randomPoints(300, 6);
    const common = { type: "point" as const, dimensions: DIMS, propertySpecs: PROPS, lowerBound: [0, 0, 0], upperBound: [1000, 800, 60] };
    await writeAnnotations(storage, "", { ...common, annotations: big, relationships: ["organelle", "er"], spatial: { limit: 10 } });
    const small = big.slice(0, 3).map((a) => ({ ...a, relationships: { organelle: a.relationships?.organelle ?? [] } }));
    const info = await writeAnnotations(storage, "", { ...common, annotations: small, relationships: ["organelle"] });
    expect(info.spatial).toHaveLength(1);
    const keys = await storage.list("");
    expect(keys.filter((k) => k.startsWith("by_id/"))).toEqual(small.map((a) => `by_id/${a.id}`).sort());
    expect(keys.filter((k) => k.startsWith("rel_er/"))).toEqual([]);
    expect(keys.filter((k) => k.startsWith("spatial")).map((k) => k.split("/")[0])).toEqual(["spatial0"]);
    expect(keys).toContain("other/info");
  });

  it("an empty collection is valid and readable", async () => {
    const storage = await tempStorage();
    const info = await writeAnnotations(storage, "empty", { type: "point", dimensions: DIMS, annotations: [], lowerBound: [0, 0, 0], upperBound: [10, 10, 10] });
    expect(info.spatial).toHaveLength(1);
    const bytes = await storage.get("empty/spatial0/0_0_0");
    expect(bytes && decodeAnnotationChunk(bytes, annotationEncodingSpec(info))).toEqual([]);
  });

  it("rejects bad input with invalid_argument before writing anything", async () => {
    const base = (): WriteAnnotationsInput => ({
      type: "point",
      dimensions: DIMS,
      annotations: randomPoints(5, 1),
      propertySpecs: PROPS,
      relationships: ["organelle", "er"],
      lowerBound: [0, 0, 0],
      upperBound: [1000, 800, 60],
    });
    const mutations: ((i: WriteAnnotationsInput) => WriteAnnotationsInput)[] = [
      (i) => ({ ...i, annotations: [...i.annotations, { ...i.annotations[0] }] }),
      (i) => ({ ...i, annotations: [{ ...i.annotations[0], point: [2000, 0, 0] }] }),
      (i) => ({ ...i, annotations: [{ ...i.annotations[0], point: [1, Number.NaN, 0] }] }),
      (i) => ({ ...i, annotations: [{ ...i.annotations[0], point: [1, 2] }] }),
      (i) => ({ ...i, annotations: [{ ...i.annotations[0], id: -1 }] }),
      (i) => ({ ...i, annotations: [{ ...i.annotations[0], properties: { ...i.annotations[0].properties, kind: 256 } }] }),
      (i) => ({ ...i, annotations: [{ ...i.annotations[0], properties: { ...i.annotations[0].properties, color: [1, 2] } }] }),
      (i) => ({ ...i, annotations: [{ ...i.annotations[0], properties: {} }] }),
      (i) => ({ ...i, annotations: [{ ...i.annotations[0], relationships: { nope: [1] } }] }),
      (i) => ({ ...i, propertySpecs: [{ id: "Bad", type: "uint8" }] }),
      (i) => ({ ...i, propertySpecs: [{ id: "a", type: "uint8", enum_values: [1] }] }),
      (i) => ({ ...i, propertySpecs: [{ id: "a", type: "uint64" as "uint8" }] }),
      (i) => ({ ...i, propertySpecs: [...PROPS, PROPS[0]] }),
      (i) => ({ ...i, type: "polygon" as "point" }),
      (i) => ({ ...i, relationships: ["a/b"] }),
      (i) => ({ ...i, upperBound: [0, 800, 60] }),
    ];
    for (const mutate of mutations) {
      const storage = await tempStorage();
      await expect(writeAnnotations(storage, "x", mutate(base()))).rejects.toMatchObject({ name: "PrecomputedError", code: "invalid_argument" });
      expect(await storage.list("")).toEqual([]);
    }
  });
});

describe("malformed chunks", () => {
  it("fuzz: 300 corrupted chunks and by_id entries give PrecomputedError, as Neuroglancer also rejects them", async () => {
    const rand = mulberry32(99);
    const spec: AnnotationEncodingSpec = { type: "point", rank: 3, properties: PROPS, relationships: ["organelle", "er"] };
    const layout = annotationLayout(spec);
    const info = {
      annotation_type: "POINT",
      dimensions: DIMS,
      relationships: [{ id: "organelle", key: "a" }, { id: "er", key: "b" }],
      properties: PROPS,
    } as AnnotationInfo;
    const parameters = ngParameters(info);
    const annotationPropertySerializer = ngSerializer(info);
    let failures = 0;
    for (let trial = 0; trial < 300; ++trial) {
      const anns = randomPoints(Math.floor(rand() * 6), trial);
      const good = encodeAnnotationChunk(anns, layout);
      let bad: Uint8Array;
      const kind = trial % 4;
      if (kind === 0) bad = good.slice(0, Math.floor(rand() * good.length)); // truncated
      else if (kind === 1) bad = Uint8Array.from([...good, ...Array.from({ length: 1 + Math.floor(rand() * 40) }, () => 0)]); // trailing bytes
      else if (kind === 2) {
        bad = good.slice();
        const dv = new DataView(bad.buffer);
        // a different count: small, huge, or with the high word set
        const choice = rand();
        if (choice < 0.4) dv.setUint32(0, anns.length + 1 + Math.floor(rand() * 5), true);
        else if (choice < 0.7) dv.setUint32(0, 0xffffffff, true);
        else dv.setUint32(4, 1 + Math.floor(rand() * 1000), true);
      } else bad = Uint8Array.from({ length: 9 + Math.floor(rand() * 200) }, () => Math.floor(rand() * 256)); // noise
      expect(() => decodeAnnotationChunk(bad, spec)).toThrow(PrecomputedError);
      // Neuroglancer's own parser rejects the same bytes
      const store = { read: async () => ({ response: new Response(new Uint8Array(bad)) }) };
      await expect(
        ng.spatialDownload.call(
          { kvStore: { store, path: "" }, shardedKvStore: undefined, parent: { parameters, annotationPropertySerializer } },
          { chunkGridPosition: [0, 0, 0] },
          new AbortController().signal,
        ),
      ).rejects.toThrow();
      ++failures;

      // a corrupted by_id entry
      const single = encodeSingleAnnotation(randomPoints(1, trial)[0], layout);
      const s = single.slice(0, Math.max(0, single.length - 1 - Math.floor(rand() * single.length)));
      const variants = [s, Uint8Array.from([...single, 0]), (() => {
        const c = single.slice();
        new DataView(c.buffer).setUint32(layout.stride, 1000, true); // claims more related ids than present
        return c;
      })()];
      for (const v of variants) {
        expect(() => decodeSingleAnnotation(v, spec, 1)).toThrow(PrecomputedError);
        ++failures;
      }
    }
    expect(failures).toBeGreaterThanOrEqual(100);
    // wrong argument types are PrecomputedError too, not TypeError
    expect(() => decodeAnnotationChunk(undefined as unknown as Uint8Array, spec)).toThrow(PrecomputedError);
    expect(() => decodeAnnotationChunk(new Uint8Array(8), { ...spec, type: "polygon" as "point" })).toThrow(PrecomputedError);
    expect(() => decodeAnnotationChunk(new Uint8Array(8), null as unknown as AnnotationEncodingSpec)).toThrow(PrecomputedError);
    expect(() => decodeAnnotationChunk(new Uint8Array(8), {} as AnnotationEncodingSpec)).toThrow(PrecomputedError);
  });
});
