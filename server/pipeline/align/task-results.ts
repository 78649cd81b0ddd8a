/**
 * The alignment tasks' results in the work store (server/pipeline/align/tasks.ts): a coarse match as JSON, every
 * section's map as fixed-size binary records (a task range-reads only its sections'), and a measure task's node
 * shifts. Hand-written because they are this pipeline's own intermediate records, read back by its own tasks.
 */
import type { Storage } from "../../../precomputed/storage.js";
import { isObject } from "../../jobs/params.js";
import type { Json } from "../../jobs/tasks.js";
import { PipelineError } from "../errors.js";
import type { Affine } from "./affine.js";
import type { PairMatch } from "./coarse.js";
import type { SectionMap } from "./map.js";
import type { PairShifts } from "./shift-field.js";

/** Affine entries as JSON: -0 survives (JSON.stringify writes it as 0). */
const affineJson = (t: Affine): Json => t.map((v) => (Object.is(v, -0) ? "-0" : v));

export function matchJson(m: PairMatch): Json {
  return { ok: m.ok, pair: affineJson(m.pair), matches: m.matches, inliers: m.inliers, rmsPx: m.rmsPx };
}

export function parseMatch(v: unknown): PairMatch | undefined {
  if (!isObject(v) || typeof v.ok !== "boolean" || !Array.isArray(v.pair) || v.pair.length !== 6) return undefined;
  const pair = v.pair.map((x) => (x === "-0" ? -0 : x));
  if (!pair.every((x) => typeof x === "number" && Number.isFinite(x))) return undefined;
  const { matches, inliers, rmsPx } = v;
  if (typeof matches !== "number" || typeof inliers !== "number" || typeof rmsPx !== "number") return undefined;
  return { ok: v.ok, pair: pair as number[] as Affine, matches, inliers, rmsPx };
}

const MAPS_MAGIC = 0x5350414d; // "MAPS"
const SHIFTS_MAGIC = 0x54464853; // "SHFT"

/**
 * Maps of all sections and the chain, fixed-size records so that a task reads only its sections' (range reads):
 * u32 magic, depth, nodes, chain length; chain (u32 each), padded to 8 bytes; per section: affine (6 f64),
 * u32 has-field, u32 0, field (2 f32 per node).
 */
export function packMaps(maps: readonly SectionMap[], chain: readonly number[], nodes: number): Uint8Array {
  const head = mapsHeaderBytes(chain.length);
  const rec = mapRecordBytes(nodes);
  const out = new Uint8Array(head + maps.length * rec);
  const dv = new DataView(out.buffer);
  [MAPS_MAGIC, maps.length, nodes, chain.length].forEach((v, i) => dv.setUint32(4 * i, v, true));
  chain.forEach((z, i) => dv.setUint32(16 + 4 * i, z, true));
  maps.forEach((m, z) => {
    const at = head + z * rec;
    m.affine.forEach((v, i) => dv.setFloat64(at + 8 * i, v, true));
    if (m.field) {
      if (m.field.length !== 2 * nodes) throw new RangeError(`section ${z}: field of ${m.field.length / 2} nodes, expected ${nodes}`);
      dv.setUint32(at + 48, 1, true);
      for (let k = 0; k < m.field.length; k++) dv.setFloat32(at + 56 + 4 * k, m.field[k] as number, true);
    }
  });
  return out;
}

const mapsHeaderBytes = (chainLength: number): number => 8 * Math.ceil((16 + 4 * chainLength) / 8);
const mapRecordBytes = (nodes: number): number => 56 + 8 * nodes;

export interface MapsHeader {
  depth: number;
  nodes: number;
  chain: number[];
}

async function readRange(store: Storage, key: string, start: number, end: number): Promise<DataView> {
  const bytes = store.getRange ? await store.getRange(key, start, end) : (await store.get(key))?.slice(start, end);
  if (!bytes || bytes.length !== end - start) {
    throw new PipelineError("stage_failed", `alignment key ${key} is missing or short (${bytes?.length ?? "no"} of ${end - start} bytes at ${start})`);
  }
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export async function readMapsHeader(store: Storage, key: string): Promise<MapsHeader> {
  const dv = await readRange(store, key, 0, 16);
  const [magic, depth, nodes, length] = [0, 1, 2, 3].map((i) => dv.getUint32(4 * i, true)) as [number, number, number, number];
  if (magic !== MAPS_MAGIC) throw new PipelineError("stage_failed", `alignment key ${key} is not a maps record`);
  const cv = await readRange(store, key, 16, 16 + 4 * length);
  return { depth, nodes, chain: Array.from({ length }, (_, i) => cv.getUint32(4 * i, true)) };
}

/** Maps of sections [z0, z1) (a sparse array indexed by section). */
export async function readMaps(store: Storage, key: string, header: MapsHeader, z0: number, z1: number): Promise<SectionMap[]> {
  const head = mapsHeaderBytes(header.chain.length);
  const rec = mapRecordBytes(header.nodes);
  const dv = await readRange(store, key, head + z0 * rec, head + z1 * rec);
  const maps: SectionMap[] = [];
  for (let z = z0; z < z1; z++) {
    const at = (z - z0) * rec;
    const affine = [0, 1, 2, 3, 4, 5].map((i) => dv.getFloat64(at + 8 * i, true)) as number[] as Affine;
    const map: SectionMap = { affine };
    if (dv.getUint32(at + 48, true) === 1) {
      const field = new Float32Array(2 * header.nodes);
      for (let k = 0; k < field.length; k++) field[k] = dv.getFloat32(at + 56 + 4 * k, true);
      map.field = field;
    }
    maps[z] = map;
  }
  return maps;
}

/** One measure task's PairShifts: u32 magic, gaps, nodes, then per gap its count; per pair u32 valid, dx, dy, support (f32), ok (u8, padded to 4). */
export function packShifts(lists: PairShifts[][], nodes: number): Uint8Array {
  const rec = shiftRecordBytes(nodes);
  const head = 12 + 4 * lists.length;
  const count = lists.reduce((s, l) => s + l.length, 0);
  const out = new Uint8Array(head + count * rec);
  const dv = new DataView(out.buffer);
  [SHIFTS_MAGIC, lists.length, nodes].forEach((v, i) => dv.setUint32(4 * i, v, true));
  lists.forEach((l, g) => dv.setUint32(12 + 4 * g, l.length, true));
  let at = head;
  for (const list of lists) {
    for (const s of list) {
      dv.setUint32(at, s.valid, true);
      for (let k = 0; k < nodes; k++) {
        dv.setFloat32(at + 4 + 4 * k, s.dx[k] as number, true);
        dv.setFloat32(at + 4 + 4 * (nodes + k), s.dy[k] as number, true);
        dv.setFloat32(at + 4 + 4 * (2 * nodes + k), s.support[k] as number, true);
      }
      out.set(s.ok, at + 4 + 12 * nodes);
      at += rec;
    }
  }
  return out;
}

const shiftRecordBytes = (nodes: number): number => 4 + 12 * nodes + 4 * Math.ceil(nodes / 4);

export function unpackShifts(bytes: Uint8Array, key: string, gaps: number, nodes: number, counts: number[], file?: string): PairShifts[][] {
  const corrupt = (why: string): never => {
    throw new PipelineError("stage_failed", `alignment result ${key} is corrupt (${why})`, file);
  };
  if (bytes.length < 12) corrupt("too short");
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dv.getUint32(0, true) !== SHIFTS_MAGIC) corrupt("not a shifts record");
  if (dv.getUint32(4, true) !== gaps || dv.getUint32(8, true) !== nodes) corrupt(`expected ${gaps} gaps of ${nodes} nodes`);
  const rec = shiftRecordBytes(nodes);
  const head = 12 + 4 * gaps;
  if (bytes.length !== head + counts.reduce((s, c) => s + c, 0) * rec) corrupt(`${bytes.length} bytes`);
  let at = head;
  return counts.map((count, g) => {
    if (dv.getUint32(12 + 4 * g, true) !== count) corrupt(`gap ${g + 1}: expected ${count} pairs`);
    return Array.from({ length: count }, () => {
      const s: PairShifts = { dx: new Float32Array(nodes), dy: new Float32Array(nodes), ok: new Uint8Array(nodes), support: new Float32Array(nodes), valid: dv.getUint32(at, true) };
      for (let k = 0; k < nodes; k++) {
        s.dx[k] = dv.getFloat32(at + 4 + 4 * k, true);
        s.dy[k] = dv.getFloat32(at + 4 + 4 * (nodes + k), true);
        s.support[k] = dv.getFloat32(at + 4 + 4 * (2 * nodes + k), true);
      }
      s.ok.set(bytes.subarray(at + 4 + 12 * nodes, at + 4 + 13 * nodes));
      at += rec;
      return s;
    });
  });
}
