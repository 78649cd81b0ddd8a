import { readFileSync } from "node:fs";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Vec3 } from "../../precomputed/array.js";
import { writeLegacyMesh } from "../../precomputed/mesh-legacy.js";
import { fragmentMeshLod, readMultiresManifest, type QuantizationBits } from "../../precomputed/mesh-multires.js";
import { LocalStorage, type Storage } from "../../precomputed/storage.js";
import { loadNeuroglancer } from "../../precomputed/testing/neuroglancer-node.js";
import { PipelineError } from "./errors.js";
import { buildMeshLods, writeSegmentMultiresMesh } from "./mesh-lod.js";
import { meshSegments, type SegmentMesh } from "./mesh.js";
import { triangleArea as area } from "../../precomputed/testing/mesh-geometry.js";

// ---- Neuroglancer's multi-resolution mesh reader under Node (as in precomputed/mesh-multires.test.ts) ----------

interface NgManifestChunk {
  objectId: bigint;
  source: { parameters: { metadata: { lodScaleMultiplier: number; vertexQuantizationBits: number } }; format: { vertexPositionFormat: number } };
  manifest?: { octree: Uint32Array };
  offsets?: Float64Array;
}
interface NgFragmentChunk {
  manifestChunk: NgManifestChunk;
  chunkIndex: number;
  lod: number;
  meshData?: { vertexPositions: Uint16Array | Uint32Array; indices: Uint16Array | Uint32Array };
}
type NgMethod<C> = { call(self: object, chunk: C, signal: AbortSignal): Promise<void> };
interface NgStore {
  read(key: string, o?: { byteRange?: { offset: number; length: number } }): Promise<{ response: Response; offset?: number; length?: number } | undefined>;
}

let download: NgMethod<NgManifestChunk>;
let downloadFragment: NgMethod<NgFragmentChunk>;
let formats: Record<string, number>;

async function loadNgMultires(): Promise<void> {
  await loadNeuroglancer();
  // Neuroglancer fetches its Draco wasm by a file: URL under Node, which Node's fetch does not serve.
  const real = globalThis.fetch;
  globalThis.fetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = input instanceof Request ? input.url : String(input);
    if (url.startsWith("file:")) return new Response(readFileSync(new URL(url)), { headers: { "content-type": "application/wasm" } });
    return real(input, init);
  };
  const ng = "neuroglancer/unstable/";
  const backend = (await import(`${ng}datasource/precomputed/backend.js`)) as Record<string, { prototype: Record<string, unknown> }>;
  const proto = backend.PrecomputedMultiscaleMeshSource.prototype;
  download = proto.download as NgMethod<NgManifestChunk>;
  downloadFragment = proto.downloadFragment as NgMethod<NgFragmentChunk>;
  formats = ((await import(`${ng}mesh/base.js`)) as { VertexPositionFormat: Record<string, number> }).VertexPositionFormat;
}

interface Decoded {
  lod: number;
  position: Vec3;
  positions: Uint32Array;
  indices: Uint32Array;
}

async function ngReadSegment(storage: Storage, prefix: string, id: number, bits: QuantizationBits): Promise<Decoded[]> {
  const store: NgStore = {
    async read(key, o) {
      const bytes = await storage.get(key);
      const r = o?.byteRange;
      if (bytes === undefined) return undefined;
      return r === undefined
        ? { response: new Response(bytes.slice()) }
        : { response: new Response(bytes.slice(r.offset, r.offset + r.length)), offset: r.offset, length: r.length };
    },
  };
  const kvStore = { store, path: `${prefix}/` };
  const chunk: NgManifestChunk = {
    objectId: BigInt(id),
    source: {
      parameters: { metadata: { lodScaleMultiplier: 1, vertexQuantizationBits: bits } },
      format: { vertexPositionFormat: formats[bits === 10 ? "uint10" : "uint16"] },
    },
  };
  const signal = new AbortController().signal;
  await download.call({ kvStore, shardedKvStore: undefined }, chunk, signal);
  const { manifest, offsets } = chunk;
  if (manifest === undefined || offsets === undefined) throw new Error("Neuroglancer decoded no manifest");
  const ours = readMultiresManifest((await storage.get(`${prefix}/${id}.index`)) ?? new Uint8Array());
  const rowLod = ours.lods.flatMap((l, k) => l.fragmentPositions.map(() => k));
  const out: Decoded[] = [];
  for (let row = 0; row < rowLod.length; ++row) {
    if (offsets[row + 1] === offsets[row]) continue;
    const f: NgFragmentChunk = { manifestChunk: chunk, chunkIndex: row, lod: rowLod[row] };
    await downloadFragment.call({ kvStore }, f, signal);
    if (f.meshData === undefined) throw new Error("no fragment data");
    const vp = f.meshData.vertexPositions;
    const positions =
      bits === 16 ? Uint32Array.from(vp) : Uint32Array.from({ length: vp.length * 3 }, (_, i) => (vp[Math.floor(i / 3)] >>> (10 * (i % 3))) & 1023);
    const o = 5 * row;
    out.push({ lod: rowLod[row], position: [manifest.octree[o], manifest.octree[o + 1], manifest.octree[o + 2]], positions, indices: Uint32Array.from(f.meshData.indices) });
  }
  return out;
}

// ---- helpers ----------------------------------------------------------------------------------------------------

function volumeOf(shape: Vec3, fill: (x: number, y: number, z: number) => number): Uint32Array {
  const labels = new Uint32Array(shape[0] * shape[1] * shape[2]);
  let i = 0;
  for (let z = 0; z < shape[2]; ++z) for (let y = 0; y < shape[1]; ++y) for (let x = 0; x < shape[0]; ++x) labels[i++] = fill(x, y, z);
  return labels;
}

/** Edges whose uses in one direction and the other differ in number (0 for a closed, consistently wound surface). */
function unbalancedEdges(tris: [string, string, string][]): number {
  const count = new Map<string, number>();
  for (const vs of tris) {
    for (let e = 0; e < 3; ++e) {
      const [a, b] = [vs[e], vs[(e + 1) % 3]];
      const key = a < b ? `${a}|${b}` : `${b}|${a}`;
      count.set(key, (count.get(key) ?? 0) + (a < b ? 1 : -1));
    }
  }
  return [...count.values()].filter((c) => c !== 0).length;
}

const meshTriangles = (m: SegmentMesh): [string, string, string][] =>
  Array.from({ length: m.indices.length / 3 }, (_, t) => [0, 1, 2].map((j) => String(m.indices[3 * t + j])) as [string, string, string]);

/** Triangles of decoded fragments with vertices as integers on the lod's global quantisation grid. */
function gridTriangles(frags: Decoded[], M: number): [string, string, string][] {
  return frags.flatMap((f) =>
    Array.from({ length: f.indices.length / 3 }, (_, t) =>
      [0, 1, 2].map((j) => [0, 1, 2].map((d) => f.position[d] * M + f.positions[3 * f.indices[3 * t + j] + d]).join(" ")) as [string, string, string],
    ),
  );
}

function decodedArea(frags: Decoded[], lod: number, chunk: Vec3, origin: Vec3, M: number): number {
  let s = 0;
  for (const f of frags) {
    const p = Array.from(f.positions, (q, i) => origin[i % 3] + chunk[i % 3] * 2 ** lod * (f.position[i % 3] + q / M));
    s += area(p, f.indices);
  }
  return s;
}

let dir: string;
let sphere: SegmentMesh;
beforeAll(async () => {
  await loadNgMultires();
  dir = await mkdtemp(path.join(tmpdir(), "mesh-lod-"));
  const n = 64;
  const got = meshSegments(volumeOf([n, n, n], (x, y, z) => ((x - 31.5) ** 2 + (y - 30) ** 2 + (z - 33) ** 2 < 25 ** 2 ? 3 : 0)), [n, n, n], [8, 8, 8]).get(3);
  if (got === undefined) throw new Error("no sphere mesh");
  sphere = got;
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("buildMeshLods", () => {
  it("keeps lod 0 and simplifies the others to about 1/4 and 1/16 of the triangles within 5 % of the area", async () => {
    const { lods, errorsNm, chunkShape, gridOrigin } = await buildMeshLods(sphere);
    expect(lods).toHaveLength(3);
    expect(lods[0]).toEqual(sphere);
    const n = sphere.indices.length / 3;
    const a0 = area(sphere.positions, sphere.indices);
    expect(lods[1].indices.length / 3).toBeLessThanOrEqual(n / 4 + 1);
    expect(lods[2].indices.length / 3).toBeLessThan(lods[1].indices.length / 3);
    expect(lods[2].indices.length / 3).toBeGreaterThan(n / 64);
    for (let k = 1; k < 3; ++k) {
      expect(Math.abs(area(lods[k].positions, lods[k].indices) / a0 - 1)).toBeLessThan(0.05);
      // the documented bound: 1 % of the largest side of a lod-k cell
      expect(errorsNm[k]).toBeLessThanOrEqual(0.01 * chunkShape[0] * 2 ** k + 1e-6);
      expect(unbalancedEdges(meshTriangles(lods[k]))).toBe(0);
    }
    // Cubic cells; the coarsest lod is a single cell around the whole object.
    expect(chunkShape[0]).toBe(chunkShape[1]);
    expect(chunkShape[1]).toBe(chunkShape[2]);
    expect(fragmentMeshLod(lods[2], 2, { chunkShape, gridOrigin })).toHaveLength(1);
    expect(fragmentMeshLod(lods[0], 0, { chunkShape, gridOrigin }).length).toBeGreaterThan(8);
  });

  it("adds lods (a quarter of the triangles each) until lod 0 cells fit maxChunkNm", async () => {
    const { lods, chunkShape } = await buildMeshLods(sphere, { maxChunkNm: 60 });
    expect(lods.length).toBeGreaterThan(3);
    expect(chunkShape[0]).toBeLessThanOrEqual(60);
    for (let k = 1; k < lods.length; ++k) expect(lods[k].indices.length).toBeLessThanOrEqual(lods[k - 1].indices.length);
    const given = await buildMeshLods(sphere, { chunkShape: [100, 120, 140], ratios: [1, 0.5], errors: [0, 0.02] });
    expect(given.lods).toHaveLength(2);
    expect(given.chunkShape).toEqual([100, 120, 140]);
  });

  it("rejects malformed options with PipelineError", async () => {
    const bad = [{ ratios: [] }, { ratios: [1, 0.5, 0.7], errors: [0, 0, 0] }, { ratios: [1, 0.5], errors: [0] }, { errors: [0, -1, 0] }, { ratios: [1, 0] }, { chunkShape: [1, 0, 1] as Vec3 }, { maxChunkNm: 0 }];
    for (const o of bad) await expect(buildMeshLods(sphere, o)).rejects.toThrow(PipelineError);
    await expect(buildMeshLods({ positions: new Float32Array(0), indices: new Uint32Array(0) })).rejects.toThrow(PipelineError);
  });
});

describe("writeSegmentMultiresMesh read back by Neuroglancer", () => {
  for (const bits of [10, 16] as const) {
    it(`${bits}-bit: lod 0 within 1 % of the input's area, coarser lods fewer triangles within 5 %, each lod closed across cells`, async () => {
      const M = 2 ** bits - 1;
      const storage = new LocalStorage(path.join(dir, `w${bits}`));
      const { manifest, lods } = await writeSegmentMultiresMesh(storage, "mesh", 3, sphere, { quantizationBits: bits });
      expect(manifest.lods.map((l) => l.fragmentPositions.length).at(-1)).toBe(1);
      const decoded = await ngReadSegment(storage, "mesh", 3, bits);
      const a0 = area(sphere.positions, sphere.indices);
      const triangles: number[] = [];
      for (let lod = 0; lod < 3; ++lod) {
        const frags = decoded.filter((f) => f.lod === lod);
        const tris = gridTriangles(frags, M);
        triangles.push(tris.length);
        // Cutting adds triangles where the surface crosses a cell plane, never removes any.
        expect(tris.length).toBeGreaterThanOrEqual(lods.lods[lod].indices.length / 3 - 2);
        expect(unbalancedEdges(tris)).toBe(0);
        const a = decodedArea(frags, lod, lods.chunkShape, lods.gridOrigin, M);
        expect(Math.abs(a / a0 - 1)).toBeLessThan(lod === 0 ? 0.01 : 0.05);
      }
      expect(triangles[1]).toBeLessThan(triangles[0]);
      expect(triangles[2]).toBeLessThan(triangles[1]);
    });
  }

  it("a typical mitochondrion (1.4 um capsule at 5 x 5 x 45 nm) takes a fraction of the legacy format's bytes", async () => {
    const shape: Vec3 = [300, 140, 24];
    const voxel: Vec3 = [5, 5, 45];
    const labels = volumeOf(shape, (x, y, z) => {
      const [px, py, pz] = [(x + 0.5) * 5, (y + 0.5) * 5, (z + 0.5) * 45];
      const cx = Math.min(1250, Math.max(250, px));
      return (px - cx) ** 2 + (py - 350) ** 2 + (pz - 540) ** 2 < 200 ** 2 ? 7 : 0;
    });
    const mito = meshSegments(labels, shape, voxel).get(7);
    if (mito === undefined) throw new Error("no mito mesh");
    const storage = new LocalStorage(path.join(dir, "mito"));
    await writeLegacyMesh(storage, "legacy", 7, [mito]);
    const { manifest } = await writeSegmentMultiresMesh(storage, "multires", 7, mito, { quantizationBits: 10 });
    // Bytes on disk, i.e. compressed where the store compresses (the legacy fragment is stored gzipped).
    const size = async (key: string): Promise<number> => (await stat(storage.file(key))).size;
    const legacy = await size("legacy/7:0:0.gz");
    const multires = (await size("multires/7")) + (await size("multires/7.index"));
    const lod0 = manifest.lods[0].fragmentSizes.reduce((s, b) => s + b, 0);
    // Measured: ~89 kB for all three lods (lod 0 ~50 kB) against ~450 kB of gzipped legacy fragment.
    expect(multires).toBeLessThan(legacy / 3);
    expect(lod0).toBeLessThan(legacy / 5);
  });
});
