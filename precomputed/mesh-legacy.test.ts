import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PrecomputedError } from "./errors.js";
import {
  decodeLegacyMeshFragment,
  decodeLegacyMeshManifest,
  encodeLegacyMeshFragment,
  legacyMeshInfo,
  readLegacyMesh,
  validateLegacyMeshInfo,
  writeLegacyMesh,
  writeLegacyMeshInfo,
  type MeshFragment,
} from "./mesh-legacy.js";
import { LocalStorage } from "./storage.js";
import { loadNeuroglancer, ngKvStore, type NeuroglancerModules } from "./testing/neuroglancer-node.js";
import { mulberry32 } from "./testing/random.js";

let ng: NeuroglancerModules;
let dir: string;
beforeAll(async () => {
  ng = await loadNeuroglancer();
  dir = await mkdtemp(path.join(tmpdir(), "mesh-legacy-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A closed octahedron around `c` with radius r (nm). */
function octahedron(c: [number, number, number], r: number): MeshFragment {
  const [x, y, z] = c;
  const positions = Float32Array.of(x + r, y, z, x - r, y, z, x, y + r, z, x, y - r, z, x, y, z + r, x, y, z - r);
  const indices = Uint32Array.of(0, 2, 4, 2, 1, 4, 1, 3, 4, 3, 0, 4, 2, 0, 5, 1, 2, 5, 3, 1, 5, 0, 3, 5);
  return { positions, indices };
}

describe("legacy mesh fragments", () => {
  it("encode to the documented byte layout and decode back", () => {
    const f = octahedron([10, 20, 30], 5.5);
    const bytes = encodeLegacyMeshFragment(f);
    expect(bytes.byteLength).toBe(4 + 6 * 12 + 24 * 4);
    const dv = new DataView(bytes.buffer);
    expect(dv.getUint32(0, true)).toBe(6);
    expect(dv.getFloat32(4, true)).toBe(15.5);
    expect(dv.getUint32(4 + 72 + 4, true)).toBe(2);
    expect(decodeLegacyMeshFragment(bytes)).toEqual(f);
  });

  it("decode with Neuroglancer's decodeTriangleVertexPositionsAndIndices", () => {
    const f = octahedron([1, 2, 3], 100);
    const bytes = encodeLegacyMeshFragment(f);
    const numVertices = new DataView(bytes.buffer).getUint32(0, true);
    const { vertexPositions, indices } = ng.decodeTriangleVertexPositionsAndIndices(bytes.slice().buffer, 0, 4, numVertices);
    expect([...vertexPositions]).toEqual([...f.positions]);
    expect([...indices]).toEqual([...f.indices]);
  });

  it("rejects bad fragments on encode", () => {
    const ok = octahedron([0, 0, 0], 1);
    for (const bad of [
      { positions: ok.positions.subarray(0, 5), indices: new Uint32Array(0) },
      { positions: ok.positions, indices: ok.indices.subarray(0, 4) },
      { positions: ok.positions, indices: Uint32Array.of(0, 1, 6) },
      { positions: Float32Array.of(0, Number.NaN, 0), indices: new Uint32Array(0) },
      { positions: [0, 0, 0] as unknown as Float32Array, indices: new Uint32Array(0) },
    ]) {
      expect(() => encodeLegacyMeshFragment(bad)).toThrow(PrecomputedError);
    }
  });

  it("fuzz: 400 malformed fragments give PrecomputedError; Neuroglancer rejects the structurally broken ones too", () => {
    const rand = mulberry32(3);
    let count = 0;
    for (let trial = 0; trial < 400; ++trial) {
      const good = encodeLegacyMeshFragment(octahedron([rand(), rand(), rand()], 1 + rand()));
      let bad: Uint8Array;
      let structural = true;
      switch (trial % 5) {
        case 0: // truncated (not at a whole triangle boundary)
          bad = good.slice(0, Math.floor(rand() * good.length));
          if (bad.length >= 4 + 72 && (bad.length - 76) % 12 === 0) bad = bad.slice(0, bad.length - 1);
          break;
        case 1: // stray trailing bytes
          bad = Uint8Array.from([...good, ...Array.from({ length: 1 + Math.floor(rand() * 11) }, () => 7)]);
          break;
        case 2: // vertex count larger than the data
          bad = good.slice();
          new DataView(bad.buffer).setUint32(0, 7 + Math.floor(rand() * 2 ** 31), true);
          break;
        case 3: // an index beyond the vertices
          bad = good.slice();
          new DataView(bad.buffer).setUint32(76 + 4 * Math.floor(rand() * 24), 6 + Math.floor(rand() * 1000), true);
          structural = false;
          break;
        default: // a non-finite vertex
          bad = good.slice();
          new DataView(bad.buffer).setFloat32(4 + 4 * Math.floor(rand() * 18), rand() < 0.5 ? Number.NaN : Infinity, true);
          structural = false;
      }
      expect(() => decodeLegacyMeshFragment(bad), `trial ${trial}`).toThrow(PrecomputedError);
      ++count;
      if (structural && bad.length >= 4) {
        const n = new DataView(bad.buffer).getUint32(0, true);
        expect(() => ng.decodeTriangleVertexPositionsAndIndices(bad.slice().buffer, 0, 4, n)).toThrow();
      }
    }
    expect(count).toBeGreaterThanOrEqual(100);
    expect(() => decodeLegacyMeshFragment(null as unknown as Uint8Array)).toThrow(PrecomputedError);
  });
});

describe("writeLegacyMesh", () => {
  it("writes info, manifest and fragments that Neuroglancer's PrecomputedMeshSource reads", async () => {
    const storage = new LocalStorage(dir);
    const frags = [octahedron([100, 100, 100], 50), octahedron([300, 100, 100], 20)];
    const id = 2n ** 60n + 5n;
    await writeLegacyMeshInfo(storage, "seg/mesh", legacyMeshInfo({ segmentProperties: "../segment_properties" }));
    await writeLegacyMesh(storage, "seg/mesh", id, frags);
    const info = JSON.parse(new TextDecoder().decode((await storage.get("seg/mesh/info")) ?? new Uint8Array())) as unknown;
    expect(info).toEqual({ "@type": "neuroglancer_legacy_mesh", segment_properties: "../segment_properties" });
    expect(validateLegacyMeshInfo(info)).toEqual(info);

    const self = { kvStore: ngKvStore(storage, "seg/mesh"), parameters: { lod: 0 } };
    const signal = new AbortController().signal;
    const manifest: { objectId: bigint; fragmentIds?: string[] } = { objectId: id };
    await ng.meshManifestDownload.call(self, manifest, signal);
    expect(manifest.fragmentIds).toEqual([`${id}:0:0`, `${id}:0:1`]);
    for (const [i, fragmentId] of (manifest.fragmentIds ?? []).entries()) {
      const chunk: { fragmentId: string; meshData?: { vertexPositions: Float32Array; indices: Uint32Array } } = { fragmentId };
      await ng.meshFragmentDownload.call(self, chunk, signal);
      expect([...(chunk.meshData?.vertexPositions ?? [])]).toEqual([...frags[i].positions]);
      expect([...(chunk.meshData?.indices ?? [])]).toEqual([...frags[i].indices]);
    }
    expect(await readLegacyMesh(storage, "seg/mesh", id)).toEqual(frags);
    // fragments are stored compressed; the manifest is plain JSON
    expect(await storage.list("seg/mesh/")).toEqual(["seg/mesh/1152921504606846981:0", "seg/mesh/1152921504606846981:0:0", "seg/mesh/1152921504606846981:0:1", "seg/mesh/info"]);
    expect(existsSync(path.join(dir, "seg/mesh/1152921504606846981:0:0.gz"))).toBe(true);
    expect(existsSync(path.join(dir, "seg/mesh/1152921504606846981:0"))).toBe(true);
  });

  it("rejects bad ids and fragments, and malformed manifests", async () => {
    const storage = new LocalStorage(dir);
    await expect(writeLegacyMesh(storage, "m", -1, [])).rejects.toBeInstanceOf(PrecomputedError);
    await expect(writeLegacyMesh(storage, "m", 1, [{ positions: new Float32Array(3), indices: Uint32Array.of(0, 0, 1) }])).rejects.toMatchObject({
      code: "invalid_argument",
      path: "fragments[0]",
    });
    for (const m of ["", "{", "[]", "null", '{"fragments": 3}', '{"fragments": [1]}', "{}"]) {
      expect(() => decodeLegacyMeshManifest(m)).toThrow(PrecomputedError);
    }
    await expect(readLegacyMesh(storage, "m", 99)).rejects.toMatchObject({ code: "not_found" });
    expect(() => validateLegacyMeshInfo({ "@type": "neuroglancer_multilod_draco" })).toThrow(PrecomputedError);
  });
});
