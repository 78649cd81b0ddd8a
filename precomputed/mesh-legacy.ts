/**
 * Legacy single-resolution precomputed meshes (neuroglancer src/datasource/precomputed/meshes.md,
 * "Legacy single-resolution mesh format"; read by `decodeFragmentChunk` / `decodeManifestChunk` in
 * src/datasource/precomputed/backend.ts).
 *
 * Layout under the mesh directory: `info` = {"@type": "neuroglancer_legacy_mesh"}, one manifest `<id>:0`
 * = {"fragments": [names]}, and each fragment: uint32le vertex count, float32le xyz per vertex, then
 * uint32le triangle indices to the end of the file. Positions are in the segmentation's physical units (nm).
 */
import { PrecomputedError } from "./errors.js";
import type { Storage } from "./storage.js";
import { joinKey, segmentIdString } from "./keys.js";

export interface MeshFragment {
  /** xyz per vertex */
  positions: Float32Array;
  /** three vertex indices per triangle */
  indices: Uint32Array;
}

export interface LegacyMeshInfo {
  "@type": "neuroglancer_legacy_mesh";
  /** Relative path of a segment_properties directory. */
  segment_properties?: string;
}

function checkFragment(f: MeshFragment, path: string, code: "invalid_argument" | "invalid_chunk"): void {
  const { positions, indices } = f;
  if (!(positions instanceof Float32Array) || !(indices instanceof Uint32Array)) {
    throw new PrecomputedError(code, "positions must be a Float32Array and indices a Uint32Array", path);
  }
  if (positions.length % 3 !== 0) throw new PrecomputedError(code, `${positions.length} position values is not a multiple of 3`, path);
  if (indices.length % 3 !== 0) throw new PrecomputedError(code, `${indices.length} indices is not a multiple of 3`, path);
  const numVertices = positions.length / 3;
  for (let i = 0; i < indices.length; ++i) {
    if (indices[i] >= numVertices) throw new PrecomputedError(code, `index ${indices[i]} at ${i} is not below the ${numVertices} vertices`, path);
  }
  for (let i = 0; i < positions.length; ++i) {
    if (!Number.isFinite(positions[i])) throw new PrecomputedError(code, `position value ${i} is not finite`, path);
  }
}

export function encodeLegacyMeshFragment(f: MeshFragment): Uint8Array {
  checkFragment(f, "fragment", "invalid_argument");
  const numVertices = f.positions.length / 3;
  const bytes = new Uint8Array(4 + 4 * f.positions.length + 4 * f.indices.length);
  const dv = new DataView(bytes.buffer);
  dv.setUint32(0, numVertices, true);
  let o = 4;
  for (const v of f.positions) {
    dv.setFloat32(o, v, true);
    o += 4;
  }
  for (const i of f.indices) {
    dv.setUint32(o, i, true);
    o += 4;
  }
  return bytes;
}

export function decodeLegacyMeshFragment(bytes: Uint8Array): MeshFragment {
  if (!(bytes instanceof Uint8Array)) throw new PrecomputedError("invalid_argument", "expected a Uint8Array");
  if (bytes.byteLength < 4) throw new PrecomputedError("invalid_chunk", `mesh fragment of ${bytes.byteLength} bytes lacks the vertex count`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const numVertices = dv.getUint32(0, true);
  const indexBytes = bytes.byteLength - 4 - 12 * numVertices;
  if (indexBytes < 0) {
    throw new PrecomputedError("invalid_chunk", `mesh fragment claims ${numVertices} vertices but holds ${bytes.byteLength} bytes`);
  }
  if (indexBytes % 12 !== 0) {
    throw new PrecomputedError("invalid_chunk", `mesh fragment has ${indexBytes} index bytes, not a whole number of triangles`);
  }
  const positions = new Float32Array(3 * numVertices);
  for (let i = 0; i < positions.length; ++i) positions[i] = dv.getFloat32(4 + 4 * i, true);
  const indices = new Uint32Array(indexBytes / 4);
  const base = 4 + 12 * numVertices;
  for (let i = 0; i < indices.length; ++i) indices[i] = dv.getUint32(base + 4 * i, true);
  const f = { positions, indices };
  checkFragment(f, "fragment", "invalid_chunk");
  return f;
}

/** The manifest `<id>:0`. */
export function encodeLegacyMeshManifest(fragments: string[]): string {
  fragments.forEach((name, i) => checkFragmentName(name, `fragments[${i}]`));
  return JSON.stringify({ fragments });
}

export function decodeLegacyMeshManifest(bytes: Uint8Array | string): string[] {
  let json: unknown;
  try {
    json = JSON.parse(typeof bytes === "string" ? bytes : new TextDecoder().decode(bytes));
  } catch (e) {
    throw new PrecomputedError("invalid_chunk", "mesh manifest is not valid JSON", undefined, { cause: e });
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new PrecomputedError("invalid_chunk", "mesh manifest must be a JSON object");
  const fragments = (json as Record<string, unknown>).fragments;
  if (!Array.isArray(fragments) || fragments.some((f) => typeof f !== "string")) {
    throw new PrecomputedError("invalid_chunk", "expected an array of strings", "fragments");
  }
  return fragments as string[];
}

function checkFragmentName(name: string, path: string): void {
  // A fragment name is a file name next to the manifest; Neuroglancer appends it to the mesh URL unescaped.
  if (!/^[A-Za-z0-9_.:-]+$/.test(name) || name === "." || name === "..") {
    throw new PrecomputedError("invalid_argument", "fragment names may only contain letters, digits and _ . : -", path);
  }
}

export function legacyMeshInfo(options: { segmentProperties?: string } = {}): LegacyMeshInfo {
  return options.segmentProperties === undefined
    ? { "@type": "neuroglancer_legacy_mesh" }
    : { "@type": "neuroglancer_legacy_mesh", segment_properties: options.segmentProperties };
}

export function validateLegacyMeshInfo(json: unknown): LegacyMeshInfo {
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new PrecomputedError("invalid_info", "expected a JSON object");
  const j = json as Record<string, unknown>;
  if (j["@type"] !== "neuroglancer_legacy_mesh") throw new PrecomputedError("invalid_info", 'must be "neuroglancer_legacy_mesh"', "@type");
  if (j.segment_properties !== undefined && typeof j.segment_properties !== "string") {
    throw new PrecomputedError("invalid_info", "expected a string", "segment_properties");
  }
  return legacyMeshInfo({ segmentProperties: j.segment_properties as string | undefined });
}



/**
 * Writes one segment's fragments (`<id>:0:<i>`) and then its manifest `<id>:0`, so the manifest never names
 * a fragment that is not there yet. Fragments are stored gzip-compressed unless `gzip: false` (float vertex
 * data roughly halves). The mesh `info` is written by `writeLegacyMeshInfo`.
 */
export async function writeLegacyMesh(
  storage: Storage,
  meshPrefix: string,
  id: number | bigint,
  fragments: MeshFragment[],
  options: { gzip?: boolean } = {},
): Promise<void> {
  const sid = segmentIdString(id);
  const encoded = fragments.map((f, i) => {
    try {
      return encodeLegacyMeshFragment(f);
    } catch (e) {
      if (e instanceof PrecomputedError) throw new PrecomputedError(e.code, e.message, `fragments[${i}]`, { cause: e });
      throw e;
    }
  });
  const names = encoded.map((_, i) => `${sid}:0:${i}`);
  await Promise.all(encoded.map((bytes, i) => storage.put(joinKey(meshPrefix, names[i]), bytes, options.gzip === false ? {} : { contentEncoding: "gzip" })));
  await storage.put(joinKey(meshPrefix, `${sid}:0`), encodeLegacyMeshManifest(names));
}

export async function writeLegacyMeshInfo(storage: Storage, meshPrefix: string, info: LegacyMeshInfo = legacyMeshInfo()): Promise<void> {
  await storage.put(joinKey(meshPrefix, "info"), JSON.stringify(validateLegacyMeshInfo(info)));
}

/** Reads all fragments of a segment through its manifest. */
export async function readLegacyMesh(storage: Storage, meshPrefix: string, id: number | bigint): Promise<MeshFragment[]> {
  const key = joinKey(meshPrefix, `${segmentIdString(id)}:0`);
  const manifest = await storage.get(key);
  if (manifest === undefined) throw new PrecomputedError("not_found", "no mesh manifest", key);
  const names = decodeLegacyMeshManifest(manifest);
  return Promise.all(
    names.map(async (name) => {
      const fkey = joinKey(meshPrefix, name);
      const bytes = await storage.get(fkey);
      if (bytes === undefined) throw new PrecomputedError("not_found", "manifest names a missing fragment", fkey);
      try {
        return decodeLegacyMeshFragment(bytes);
      } catch (e) {
        if (e instanceof PrecomputedError) throw new PrecomputedError(e.code, e.message, fkey, { cause: e });
        throw e;
      }
    }),
  );
}
