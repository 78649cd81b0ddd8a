import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Vec3 } from "./array.js";
import { PrecomputedError } from "./errors.js";
import type { MeshFragment } from "./mesh-legacy.js";
import {
  encodeMultiresManifest,
  encodeMultiresMesh,
  fragmentMeshLod,
  hypot3,
  multiresFragmentRanges,
  multiresMeshInfo,
  readMultiresManifest,
  readMultiresMeshManifest,
  validateMultiresMeshInfo,
  writeMultiresMesh,
  writeMultiresMeshInfo,
  zorderLess,
  type CellFragment,
  type MultiresManifest,
  type QuantizationBits,
} from "./mesh-multires.js";
import { LocalStorage, type Storage } from "./storage.js";
import { loadNeuroglancer } from "./testing/neuroglancer-node.js";
import { mulberry32 } from "./testing/random.js";
import { triangleArea as area } from "./testing/mesh-geometry.js";

// ---- Neuroglancer's own multi-resolution mesh reader, driven under Node ----------------------------------------

interface NgMultiscaleManifest {
  chunkShape: Float32Array;
  chunkGridSpatialOrigin: Float32Array;
  lodScales: Float32Array;
  vertexOffsets: Float32Array;
  /** 5 uint32 per node: x, y, z, childBegin, childEnd | (empty << 31) */
  octree: Uint32Array;
}
interface NgSource {
  parameters: { metadata: { lodScaleMultiplier: number; vertexQuantizationBits: number } };
  format: { vertexPositionFormat: number };
}
interface NgManifestChunk {
  objectId: bigint;
  source: NgSource;
  shardInfo?: undefined;
  manifest?: NgMultiscaleManifest;
  offsets?: Float64Array;
}
interface NgFragmentChunk {
  manifestChunk: NgManifestChunk;
  chunkIndex: number;
  lod: number;
  meshData?: { vertexPositions: Uint16Array | Uint32Array; indices: Uint16Array | Uint32Array; strips: boolean };
  subChunkOffsets?: Uint32Array;
}
interface NgReadOptions {
  byteRange?: { offset: number; length: number };
}
interface NgStore {
  read(key: string, options?: NgReadOptions): Promise<{ response: Response; offset?: number; length?: number } | undefined>;
}
interface NgMultires {
  download: { call(self: object, chunk: NgManifestChunk, signal: AbortSignal): Promise<void> };
  downloadFragment: { call(self: object, chunk: NgFragmentChunk, signal: AbortSignal): Promise<void> };
  validateOctree(octree: Uint32Array): void;
  zorder3LessThan(x0: number, y0: number, z0: number, x1: number, y1: number, z1: number): boolean;
  /** VertexPositionFormat.uint10 / uint16, as the frontend picks for 10 / 16 bits. */
  formatFor(bits: QuantizationBits): number;
}

let ngMultires: NgMultires;

/**
 * Neuroglancer fetches its Draco wasm with `fetch(new URL("./neuroglancer_draco.wasm", import.meta.url))`, and
 * Node's fetch has no file: scheme; answering file: URLs from disk is the only stand-in the decoder needs.
 */
function serveFileUrls(): void {
  const real = globalThis.fetch;
  globalThis.fetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = input instanceof Request ? input.url : String(input);
    if (url.startsWith("file:")) return new Response(readFileSync(new URL(url)), { headers: { "content-type": "application/wasm" } });
    return real(input, init);
  };
}

async function loadNgMultires(): Promise<NgMultires> {
  await loadNeuroglancer(); // installs the loader hook and browser-global stand-ins
  serveFileUrls();
  const ng = "neuroglancer/unstable/";
  const backend = (await import(`${ng}datasource/precomputed/backend.js`)) as Record<string, { prototype: Record<string, unknown> }>;
  const multiscale = (await import(`${ng}mesh/multiscale.js`)) as { validateOctree: NgMultires["validateOctree"] };
  const zorder = (await import(`${ng}util/zorder.js`)) as { zorder3LessThan: NgMultires["zorder3LessThan"] };
  const base = (await import(`${ng}mesh/base.js`)) as { VertexPositionFormat: Record<string, number> };
  const proto = backend.PrecomputedMultiscaleMeshSource.prototype;
  return {
    download: proto.download as NgMultires["download"],
    downloadFragment: proto.downloadFragment as NgMultires["downloadFragment"],
    validateOctree: multiscale.validateOctree,
    zorder3LessThan: zorder.zorder3LessThan,
    formatFor: (bits) => base.VertexPositionFormat[bits === 10 ? "uint10" : "uint16"],
  };
}

/** A Neuroglancer kvstore over our Storage that honours byte ranges, as an HTTP server with Range support does. */
function rangedKvStore(storage: Storage, prefix: string): { store: NgStore; path: string } {
  return {
    path: `${prefix}/`,
    store: {
      async read(key, options) {
        const bytes = await storage.get(key);
        if (bytes === undefined) return undefined;
        const r = options?.byteRange;
        if (r === undefined) return { response: new Response(bytes.slice()) };
        return { response: new Response(bytes.slice(r.offset, r.offset + r.length)), offset: r.offset, length: r.length };
      },
    },
  };
}

interface NgDecodedFragment {
  lod: number;
  position: Vec3;
  /** xyz per vertex, integers in [0, M] */
  positions: Uint32Array;
  indices: Uint32Array;
  /** triangle-index offsets of the 8 eighths (lod > 0) or [0, n] */
  subChunkOffsets: Uint32Array;
}

/** Reads a segment the way the viewer does: manifest, then each non-empty octree node's byte range. */
async function ngReadSegment(
  storage: Storage,
  prefix: string,
  id: number,
  bits: QuantizationBits,
): Promise<{ manifest: NgMultiscaleManifest; fragments: NgDecodedFragment[] }> {
  const kv = rangedKvStore(storage, prefix);
  const source: NgSource = {
    parameters: { metadata: { lodScaleMultiplier: 1, vertexQuantizationBits: bits } },
    format: { vertexPositionFormat: ngMultires.formatFor(bits) },
  };
  const chunk: NgManifestChunk = { objectId: BigInt(id), source };
  const signal = new AbortController().signal;
  await ngMultires.download.call({ kvStore: kv, shardedKvStore: undefined }, chunk, signal);
  const { manifest, offsets } = chunk;
  if (manifest === undefined || offsets === undefined) throw new Error("Neuroglancer decoded no manifest");
  const ours = readMultiresManifest((await storage.get(`${prefix}/${id}.index`)) ?? new Uint8Array());
  const rowLod: number[] = ours.lods.flatMap((l, k) => l.fragmentPositions.map(() => k));
  const fragments: NgDecodedFragment[] = [];
  for (let row = 0; row < rowLod.length; ++row) {
    if (offsets[row + 1] === offsets[row]) continue;
    const f: NgFragmentChunk = { manifestChunk: chunk, chunkIndex: row, lod: rowLod[row] };
    await ngMultires.downloadFragment.call({ kvStore: kv }, f, signal);
    const { meshData, subChunkOffsets } = f;
    if (meshData === undefined || subChunkOffsets === undefined || meshData.strips) throw new Error("unexpected fragment data");
    const vp = meshData.vertexPositions;
    const positions =
      bits === 16
        ? Uint32Array.from(vp)
        : Uint32Array.from({ length: vp.length * 3 }, (_, i) => (vp[Math.floor(i / 3)] >>> (10 * (i % 3))) & 1023);
    const o = 5 * row;
    fragments.push({
      lod: rowLod[row],
      position: [manifest.octree[o], manifest.octree[o + 1], manifest.octree[o + 2]],
      positions,
      indices: Uint32Array.from(meshData.indices),
      subChunkOffsets,
    });
  }
  return { manifest, fragments };
}

// ---- geometry helpers -----------------------------------------------------------------------------------------

/** Closed icosphere with outward counter-clockwise triangles. */
function icosphere(level: number, center: Vec3, r: number): MeshFragment {
  const t = (1 + Math.sqrt(5)) / 2;
  const v: number[][] = [
    [-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t],
    [0, -1, -t], [0, 1, -t], [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1],
  ].map((p) => p.map((x) => x / Math.hypot(...p)));
  let f = [
    [0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4], [11, 10, 2], [10, 7, 6], [7, 1, 8],
    [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9], [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1],
  ];
  for (let l = 0; l < level; ++l) {
    const mid = new Map<string, number>();
    const m = (a: number, b: number): number => {
      const key = a < b ? `${a},${b}` : `${b},${a}`;
      let i = mid.get(key);
      if (i === undefined) {
        const p = [0, 1, 2].map((d) => (v[a][d] + v[b][d]) / 2);
        v.push(p.map((x) => x / Math.hypot(...p)));
        mid.set(key, (i = v.length - 1));
      }
      return i;
    };
    f = f.flatMap(([a, b, c]) => [[a, m(a, b), m(c, a)], [b, m(b, c), m(a, b)], [c, m(c, a), m(b, c)], [m(a, b), m(b, c), m(c, a)]]);
  }
  return {
    positions: Float32Array.from(v.flatMap((p) => p.map((x, d) => center[d] + r * x))),
    indices: Uint32Array.from(f.flat()),
  };
}

/** Vertex `i` of a fragment as an integer on the lod's global quantisation grid (cell origin = position * M). */
function globalVertex(f: { position: Vec3; positions: ArrayLike<number> }, i: number, M: number): Vec3 {
  return [0, 1, 2].map((d) => f.position[d] * M + f.positions[3 * i + d]) as Vec3;
}

/** Triangles as orientation-preserving keys on the global grid (rotated so the smallest vertex leads). */
function triangleKeys(frags: { position: Vec3; positions: ArrayLike<number>; indices: ArrayLike<number> }[], M: number): string[] {
  const keys: string[] = [];
  for (const f of frags) {
    for (let t = 0; t < f.indices.length; t += 3) {
      const vs = [0, 1, 2].map((j) => globalVertex(f, f.indices[t + j], M).join(" "));
      const k = vs.indexOf([...vs].sort()[0]);
      keys.push([vs[k], vs[(k + 1) % 3], vs[(k + 2) % 3]].join("|"));
    }
  }
  return keys.sort();
}

/** Directed-edge balance: a closed oriented surface uses every edge once in each direction. */
function unbalancedEdges(frags: { position: Vec3; positions: ArrayLike<number>; indices: ArrayLike<number> }[], M: number): number {
  const count = new Map<string, number>();
  for (const f of frags) {
    for (let t = 0; t < f.indices.length; t += 3) {
      for (let e = 0; e < 3; ++e) {
        const a = globalVertex(f, f.indices[t + e], M).join(" ");
        const b = globalVertex(f, f.indices[t + ((e + 1) % 3)], M).join(" ");
        const key = a < b ? `${a}|${b}` : `${b}|${a}`;
        count.set(key, (count.get(key) ?? 0) + (a < b ? 1 : -1));
      }
    }
  }
  return [...count.values()].filter((c) => c !== 0).length;
}

/** Dequantised positions (stored-model units) of a fragment at `lod`. */
function dequantise(f: { position: Vec3; positions: ArrayLike<number> }, lod: number, chunk: Vec3, origin: Vec3, M: number): Float64Array {
  const out = new Float64Array(f.positions.length);
  for (let i = 0; i < out.length; ++i) {
    const d = i % 3;
    out[i] = origin[d] + chunk[d] * 2 ** lod * (f.position[d] + f.positions[i] / M);
  }
  return out;
}

// ---- tests ----------------------------------------------------------------------------------------------------

let dir: string;
beforeAll(async () => {
  ngMultires = await loadNgMultires();
  dir = await mkdtemp(path.join(tmpdir(), "mesh-multires-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("multi-resolution mesh info", () => {
  it("defaults, validates and round-trips through storage", async () => {
    const info = multiresMeshInfo({ vertexQuantizationBits: 10, segmentProperties: "props" });
    expect(info).toEqual({
      "@type": "neuroglancer_multilod_draco",
      vertex_quantization_bits: 10,
      transform: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0],
      lod_scale_multiplier: 1,
      segment_properties: "props",
    });
    const storage = new LocalStorage(path.join(dir, "info"));
    await writeMultiresMeshInfo(storage, "mesh", info);
    const stored = await storage.get("mesh/info");
    expect(validateMultiresMeshInfo(JSON.parse(new TextDecoder().decode(stored)))).toEqual(info);
    const bad: unknown[] = [
      null,
      { ...info, "@type": "neuroglancer_legacy_mesh" },
      { ...info, vertex_quantization_bits: 12 },
      { ...info, transform: [1, 0, 0] },
      { ...info, transform: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, "0"] },
      { ...info, lod_scale_multiplier: 0 },
      { ...info, segment_properties: 3 },
    ];
    for (const b of bad) expect(() => validateMultiresMeshInfo(b)).toThrow(PrecomputedError);
    expect(() => validateMultiresMeshInfo({ ...info, sharding: {} })).toThrow(expect.objectContaining({ code: "unsupported" }));
  });
});

function randomManifest(seed: number): MultiresManifest {
  const rnd = mulberry32(seed);
  const numLods = 1 + Math.floor(rnd() * 4);
  const lods = Array.from({ length: numLods }, () => {
    const seen = new Set<string>();
    const pos: Vec3[] = [];
    for (let i = Math.floor(rnd() * 12); i > 0; --i) {
      const p: Vec3 = [Math.floor(rnd() * 9), Math.floor(rnd() * 9), Math.floor(rnd() * 9)];
      if (!seen.has(p.join())) pos.push(p), seen.add(p.join());
    }
    pos.sort((a, b) => (zorderLess(a, b) ? -1 : 1));
    return { fragmentPositions: pos, fragmentSizes: pos.map(() => Math.floor(rnd() * 5000)) };
  });
  return {
    chunkShape: [64, 48, 90],
    gridOrigin: [-10.5, 20, 1000],
    lodScales: lods.map((_, k) => 2 ** k * 3.5),
    vertexOffsets: lods.map((): Vec3 => [0, 0, 0]),
    lods,
  };
}

describe("multi-resolution manifest", () => {
  it("round-trips and matches what Neuroglancer's decodeMultiscaleManifestChunk reads", async () => {
    const storage = new LocalStorage(path.join(dir, "manifest"));
    for (let seed = 1; seed <= 20; ++seed) {
      const m = randomManifest(seed);
      if (m.lods.every((l) => l.fragmentPositions.length === 0)) continue;
      const bytes = encodeMultiresManifest(m);
      expect(readMultiresManifest(bytes)).toEqual(m);
      await storage.put(`m/${seed}.index`, bytes);
      const chunk: NgManifestChunk = {
        objectId: BigInt(seed),
        source: { parameters: { metadata: { lodScaleMultiplier: 2, vertexQuantizationBits: 16 } }, format: { vertexPositionFormat: 2 } },
      };
      await ngMultires.download.call({ kvStore: rangedKvStore(storage, "m"), shardedKvStore: undefined }, chunk, new AbortController().signal);
      const ng = chunk.manifest;
      if (ng === undefined || chunk.offsets === undefined) throw new Error("no manifest");
      expect([...ng.chunkShape]).toEqual(m.chunkShape);
      expect([...ng.chunkGridSpatialOrigin]).toEqual(m.gridOrigin);
      expect([...ng.lodScales].slice(0, m.lods.length)).toEqual(m.lodScales.map((s) => 2 * s));
      const stored = m.lods.flatMap((l) => l.fragmentPositions);
      const rows = Array.from({ length: stored.length }, (_, r) => [...ng.octree.subarray(5 * r, 5 * r + 3)]);
      expect(rows).toEqual(stored);
      const ranges = multiresFragmentRanges(m).flat();
      expect(ranges.map((r) => chunk.offsets?.[ranges.indexOf(r)])).toEqual(ranges.map((r) => r.offset));
    }
  });

  it("refuses to encode positions out of z-curve order or bad numbers", () => {
    const m: MultiresManifest = {
      chunkShape: [1, 1, 1],
      gridOrigin: [0, 0, 0],
      lodScales: [1],
      vertexOffsets: [[0, 0, 0]],
      lods: [{ fragmentPositions: [[1, 0, 0], [0, 1, 0]], fragmentSizes: [1, 1] }],
    };
    expect(encodeMultiresManifest(m).byteLength).toBe(28 + 20 + 32);
    m.lods[0].fragmentPositions.reverse();
    expect(() => encodeMultiresManifest(m)).toThrow(PrecomputedError);
    m.lods[0].fragmentPositions = [[1, 0, 0], [1, 0, 0]];
    expect(() => encodeMultiresManifest(m)).toThrow(PrecomputedError);
    expect(() => encodeMultiresManifest({ ...randomManifest(3), chunkShape: [0, 1, 1] })).toThrow(PrecomputedError);
    expect(() => encodeMultiresManifest({ ...randomManifest(3), lods: [], lodScales: [], vertexOffsets: [] })).toThrow(PrecomputedError);
  });

  it("fuzz: corrupted manifests give PrecomputedError or a manifest that re-encodes to the same bytes", () => {
    const rnd = mulberry32(99);
    let errors = 0;
    let trials = 0;
    for (let seed = 1; seed <= 30; ++seed) {
      const good = encodeMultiresManifest(randomManifest(seed));
      const dv = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);
      const variants: Uint8Array[] = [
        good.slice(0, Math.floor(rnd() * good.length)),
        good.slice(0, good.length - 4),
        Uint8Array.from([...good, 0, 0, 0, 0]),
        Uint8Array.from({ length: good.length }, () => Math.floor(rnd() * 256)),
      ];
      for (let k = 0; k < 4; ++k) {
        const b = good.slice();
        b[Math.floor(rnd() * b.length)] ^= 1 << Math.floor(rnd() * 8);
        variants.push(b);
      }
      const big = good.slice();
      dv(big).setUint32(24, 0xffffffff, true); // num_lods
      const nan = good.slice();
      dv(nan).setFloat32(4 * Math.floor(rnd() * 6), NaN, true);
      const count = good.slice();
      dv(count).setUint32(28 + 16 * dv(good).getUint32(24, true), 0x7fffffff, true); // num_fragments_per_lod[0]
      variants.push(big, nan, count);
      for (const v of variants) {
        ++trials;
        try {
          const m = readMultiresManifest(v);
          expect(encodeMultiresManifest(m)).toEqual(v);
        } catch (e) {
          expect(e).toBeInstanceOf(PrecomputedError);
          ++errors;
        }
      }
    }
    expect(trials).toBeGreaterThanOrEqual(300);
    expect(errors).toBeGreaterThanOrEqual(100);
  });
});

describe("cutting a lod into cell fragments", () => {
  it("keeps quantised vertices inside their cell and, above lod 0, every triangle inside one eighth", () => {
    const mesh = icosphere(3, [130, 170, 210], 95);
    for (const bits of [10, 16] as const) {
      const M = 2 ** bits - 1;
      const P = 2 ** (bits - 1);
      for (const lod of [0, 1, 2]) {
        const frags = fragmentMeshLod(mesh, lod, { chunkShape: [40, 40, 60], gridOrigin: [20, 50, 90], quantizationBits: bits });
        expect(frags.length).toBeGreaterThan(1);
        for (const f of frags) {
          expect(f.positions.every((v) => v <= M)).toBe(true);
          if (lod === 0) continue;
          for (let t = 0; t < f.indices.length; t += 3) {
            for (let d = 0; d < 3; ++d) {
              const vs = [0, 1, 2].map((j) => f.positions[3 * f.indices[t + j] + d]);
              expect(vs.every((v) => v <= P) || vs.every((v) => v >= P)).toBe(true);
            }
          }
        }
        expect(unbalancedEdges(frags, M)).toBe(0);
        const a = frags.reduce((s, f) => s + area(dequantise(f, lod, [40, 40, 60], [20, 50, 90], M), f.indices), 0);
        expect(Math.abs(a / area(mesh.positions, mesh.indices) - 1)).toBeLessThan(1e-3);
      }
    }
  });

  it("stays closed when faces and vertices lie exactly on cell and half-cell planes", () => {
    // A box [40, 200]^3 on a 40-unit grid: its faces sit on cell planes at lod 0 and on half-cell planes at lod 1.
    const c = [40, 200];
    const positions = Float32Array.from([0, 1, 2, 3, 4, 5, 6, 7].flatMap((i) => [c[i & 1], c[(i >> 1) & 1], c[(i >> 2) & 1]]));
    const indices = Uint32Array.of(0, 2, 1, 1, 2, 3, 4, 5, 6, 5, 7, 6, 0, 1, 4, 1, 5, 4, 2, 6, 3, 3, 6, 7, 0, 4, 2, 2, 4, 6, 1, 3, 5, 3, 7, 5);
    const box = { positions, indices };
    expect(area(positions, indices)).toBeCloseTo(6 * 160 * 160, 6);
    for (const lod of [0, 1]) {
      const frags = fragmentMeshLod(box, lod, { chunkShape: [40, 40, 40], gridOrigin: [0, 0, 0], quantizationBits: 10 });
      expect(unbalancedEdges(frags, 1023)).toBe(0);
      const a = frags.reduce((s, f) => s + area(dequantise(f, lod, [40, 40, 40], [0, 0, 0], 1023), f.indices), 0);
      expect(a).toBeCloseTo(6 * 160 * 160, 0);
    }
  });

  it("rejects vertices below the grid origin", () => {
    const mesh = icosphere(1, [0, 0, 0], 10);
    expect(() => fragmentMeshLod(mesh, 0, { chunkShape: [8, 8, 8], gridOrigin: [0, 0, 0] })).toThrow(PrecomputedError);
    expect(() => fragmentMeshLod(mesh, 0, { chunkShape: [8, -8, 8], gridOrigin: [-20, -20, -20] })).toThrow(PrecomputedError);
  });
});

describe("writeMultiresMesh read back by Neuroglancer", () => {
  for (const bits of [10, 16] as const) {
    it(`${bits}-bit: Neuroglancer decodes the same triangles, closed per lod, in a valid octree`, async () => {
      const M = 2 ** bits - 1;
      const P = 2 ** (bits - 1);
      const storage = new LocalStorage(path.join(dir, `seg${bits}`));
      // Three lods of a sphere, off the grid's symmetry; lod 1 shrunk and lod 2 swollen so that some cells hold
      // geometry at one lod only and need empty parents or children.
      const lods = [icosphere(4, [260, 240, 300], 180), icosphere(3, [260, 240, 300], 160), icosphere(2, [260, 240, 300], 205)];
      const options = { chunkShape: [60, 70, 80] as Vec3, gridOrigin: [30, 20, 60] as Vec3, quantizationBits: bits };
      const manifest = await writeMultiresMesh(storage, "mesh", 42, lods, options);
      const ours = await encodeMultiresMesh(lods, options);
      expect(await readMultiresMeshManifest(storage, "mesh", 42)).toEqual(manifest);
      expect(ours.manifest).toEqual(manifest);

      const { manifest: ng, fragments } = await ngReadSegment(storage, "mesh", 42, bits);
      // validateOctree (a debugging aid) predates the empty-node flag in bit 31 of childEnd; clear it first.
      const octree = ng.octree.map((v, i) => (i % 5 === 4 ? v & 0x7fffffff : v));
      expect(() => ngMultires.validateOctree(octree)).not.toThrow();
      for (const l of manifest.lods) {
        for (let i = 1; i < l.fragmentPositions.length; ++i) {
          expect(ngMultires.zorder3LessThan(...l.fragmentPositions[i - 1], ...l.fragmentPositions[i])).toBe(true);
        }
      }
      // Several top cells make Neuroglancer add placeholder levels above them (lod scale 0), and the octree rules
      // leave some cells empty: both paths of the reader are exercised.
      expect(manifest.lods[2].fragmentPositions.length).toBeGreaterThan(1);
      expect(ng.lodScales.length).toBeGreaterThan(3);
      expect(manifest.lods.flatMap((l) => l.fragmentSizes).filter((s) => s === 0).length).toBeGreaterThan(0);

      const input = lods.map((m) => area(m.positions, m.indices));
      for (let lod = 0; lod < lods.length; ++lod) {
        const decoded = fragments.filter((f) => f.lod === lod);
        const written = ours.fragments[lod].filter((f): f is CellFragment => f !== undefined);
        expect(decoded.length).toBe(written.length);
        // Same triangles with the same winding, vertex for vertex on the quantisation grid.
        expect(triangleKeys(decoded, M)).toEqual(triangleKeys(written, M));
        expect(unbalancedEdges(decoded, M)).toBe(0);
        const a = decoded.reduce((s, f) => s + area(dequantise(f, lod, options.chunkShape, options.gridOrigin, M), f.indices), 0);
        expect(Math.abs(a / input[lod] - 1)).toBeLessThan(bits === 16 ? 1e-4 : 2e-3);
        // Every input vertex survives, within half a quantisation step per axis.
        const pts = decoded.flatMap((f) => [...dequantise(f, lod, options.chunkShape, options.gridOrigin, M)]);
        const step = Math.max(...options.chunkShape) * 2 ** lod / M;
        const src = lods[lod].positions;
        for (let i = 0; i < src.length; i += 3 * 7) {
          let best = Infinity;
          for (let j = 0; j < pts.length; j += 3) best = Math.min(best, Math.hypot(pts[j] - src[i], pts[j + 1] - src[i + 1], pts[j + 2] - src[i + 2]));
          expect(best).toBeLessThanOrEqual(step * 0.87 + 1e-3);
        }
        if (lod === 0) continue;
        // Neuroglancer's partition put each triangle in the eighth it lies in, and each eighth with triangles has a
        // child node, so the coarse eighth is never drawn beside finer cells.
        for (const f of decoded) {
          expect(f.subChunkOffsets.length).toBe(9);
          const row = rowOf(ng, f.position, lod, manifest);
          const childBegin = ng.octree[5 * row + 3];
          const childEnd = ng.octree[5 * row + 4] & 0x7fffffff;
          const children = new Set<string>();
          for (let c = childBegin; c < childEnd; ++c) children.add([...ng.octree.subarray(5 * c, 5 * c + 3)].join());
          for (let s = 0; s < 8; ++s) {
            const [begin, end] = [f.subChunkOffsets[s], f.subChunkOffsets[s + 1]];
            if (begin === end) continue;
            const side = [s & 1, (s >> 1) & 1, (s >> 2) & 1];
            for (let i = begin; i < end; ++i) {
              for (let d = 0; d < 3; ++d) {
                const v = f.positions[3 * f.indices[i] + d];
                expect(side[d] === 0 ? v <= P : v >= P).toBe(true);
              }
            }
            expect(children.has([0, 1, 2].map((d) => 2 * f.position[d] + side[d]).join())).toBe(true);
          }
        }
      }
    });
  }

  it("refuses meshes without triangles and bad options", async () => {
    const empty = { positions: new Float32Array(0), indices: new Uint32Array(0) };
    const grid = { chunkShape: [10, 10, 10] as Vec3, gridOrigin: [0, 0, 0] as Vec3 };
    await expect(encodeMultiresMesh([empty], grid)).rejects.toThrow(PrecomputedError);
    await expect(encodeMultiresMesh([], grid)).rejects.toThrow(PrecomputedError);
    const s = icosphere(1, [20, 20, 20], 10);
    await expect(encodeMultiresMesh([s], { ...grid, lodScales: [0] })).rejects.toThrow(PrecomputedError);
    await expect(encodeMultiresMesh([s], { ...grid, quantizationBits: 12 as QuantizationBits })).rejects.toThrow(PrecomputedError);
    await expect(encodeMultiresMesh([{ positions: s.positions, indices: Uint32Array.of(0, 1, 999) }], grid)).rejects.toThrow(PrecomputedError);
    const storage = new LocalStorage(path.join(dir, "bad"));
    await expect(writeMultiresMesh(storage, "mesh", -1, [s], grid)).rejects.toThrow(PrecomputedError);
    await expect(readMultiresMeshManifest(storage, "mesh", 5)).rejects.toThrow(expect.objectContaining({ code: "not_found" }));
  });
});

function rowOf(ng: NgMultiscaleManifest, p: Vec3, lod: number, m: MultiresManifest): number {
  let base = 0;
  for (let k = 0; k < lod; ++k) base += m.lods[k].fragmentPositions.length;
  const i = m.lods[lod].fragmentPositions.findIndex((q) => q.join() === p.join());
  if (i < 0 || ng.octree[5 * (base + i)] !== p[0]) throw new Error(`no node ${p.join()} at lod ${lod}`);
  return base + i;
}

describe("default lod scales", () => {
  it("hypot3 is Math.hypot bit for bit (random magnitudes, zeros, ties, subnormals, infinities, NaN)", () => {
    const rand = mulberry32(7);
    const special = [0, -0, 1, -1, 5e-324, 1e-310, 1e308, Number.MAX_VALUE, Infinity, -Infinity, NaN, 0.1, 3];
    const cases: [number, number, number][] = [];
    for (const a of special) for (const b of special) for (const c of special) cases.push([a, b, c]);
    for (let i = 0; i < 200_000; i++) {
      const scale = 10 ** Math.floor(rand() * 16 - 8);
      const v = (): number => Math.fround((rand() - 0.5) * scale) - Math.fround((rand() - 0.5) * scale);
      const t: [number, number, number] = [v(), v(), v()];
      if (i % 5 === 0) t[i % 3] = 0;
      if (i % 7 === 0) t[(i + 1) % 3] = t[i % 3];
      cases.push(t);
    }
    for (const [a, b, c] of cases) {
      if (!Object.is(hypot3(a, b, c), Math.hypot(a, b, c))) expect([a, b, c, hypot3(a, b, c)]).toEqual([a, b, c, Math.hypot(a, b, c)]);
    }
  });

  it("are the float32 mean edge lengths summed with Math.hypot, edge (a, b), (b, c), (c, a) per triangle", async () => {
    const rand = mulberry32(11);
    const n = 300;
    const positions = Float32Array.from({ length: 3 * n }, () => 10 + rand() * 500);
    const indices = Uint32Array.from({ length: 3 * 400 }, () => Math.floor(rand() * n));
    const mesh = { positions, indices };
    const { manifest } = await encodeMultiresMesh([mesh], { chunkShape: [600, 600, 600], gridOrigin: [0, 0, 0], quantizationBits: 10 });
    let sum = 0;
    for (let t = 0; t < indices.length; t += 3) {
      for (let e = 0; e < 3; ++e) {
        const a = 3 * indices[t + e];
        const b = 3 * indices[t + ((e + 1) % 3)];
        sum += Math.hypot(positions[a] - positions[b], positions[a + 1] - positions[b + 1], positions[a + 2] - positions[b + 2]);
      }
    }
    expect(manifest.lodScales[0]).toBe(Math.fround(sum / indices.length));
  });
});
