import { gunzipSync, gzipSync } from "node:zlib";
import { PrecomputedError } from "./errors.js";
import { isRecord } from "./json-checks.js";
import { joinKey } from "./keys.js";
import { murmurHashUint64 } from "./sharding-hash.js";
import type { Storage } from "./storage.js";

/**
 * Neuroglancer's `neuroglancer_uint64_sharded_v1` format (neuroglancer/src/datasource/precomputed/sharded.md).
 *
 * A shard file is: the shard index (2^minishard_bits pairs of uint64 [start, end) byte offsets of each
 * minishard index), then the chunk data, then the minishard indices. Every offset is relative to the end of
 * the shard index. A minishard index is three uint64 columns of n entries: chunk ids (delta-coded), data
 * offsets (the first from the end of the shard index, each next from the previous chunk's end) and sizes.
 * Integers are little-endian. Reading needs three small range reads per chunk and no listing, which is
 * what makes a billion chunks servable from a handful of files.
 */

export type ShardingEncoding = "raw" | "gzip";

export interface ShardingSpec {
  "@type": "neuroglancer_uint64_sharded_v1";
  preshift_bits: number;
  hash: "identity" | "murmurhash3_x86_128";
  minishard_bits: number;
  shard_bits: number;
  minishard_index_encoding?: ShardingEncoding;
  data_encoding?: ShardingEncoding;
}

const fail = (message: string, path: string): never => {
  throw new PrecomputedError("invalid_info", message, path);
};

function bitsAt(obj: Record<string, unknown>, name: string, path: string): number {
  const v = obj[name];
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 64) {
    return fail(`expected an integer 0..64, got ${JSON.stringify(v) ?? "nothing"}`, `${path}.${name}`);
  }
  return v;
}

function encodingAt(obj: Record<string, unknown>, name: string, path: string): ShardingEncoding | undefined {
  const v = obj[name];
  if (v === undefined) return undefined;
  if (v !== "raw" && v !== "gzip") return fail(`expected "raw" or "gzip", got ${JSON.stringify(v)}`, `${path}.${name}`);
  return v;
}

/** Checks a `sharding` object (of a scale, mesh, skeleton or annotation index); errors name the JSON path. */
export function validateSharding(raw: unknown, path = "sharding"): ShardingSpec {
  if (!isRecord(raw)) return fail("expected an object", path);
  if (raw["@type"] !== "neuroglancer_uint64_sharded_v1") {
    fail(`expected "neuroglancer_uint64_sharded_v1", got ${JSON.stringify(raw["@type"]) ?? "nothing"}`, `${path}.@type`);
  }
  const hash = raw.hash;
  if (hash !== "identity" && hash !== "murmurhash3_x86_128") {
    fail(`expected "identity" or "murmurhash3_x86_128", got ${JSON.stringify(hash) ?? "nothing"}`, `${path}.hash`);
  }
  const spec: ShardingSpec = {
    "@type": "neuroglancer_uint64_sharded_v1",
    preshift_bits: bitsAt(raw, "preshift_bits", path),
    hash: hash as ShardingSpec["hash"],
    minishard_bits: bitsAt(raw, "minishard_bits", path),
    shard_bits: bitsAt(raw, "shard_bits", path),
  };
  if (spec.minishard_bits + spec.shard_bits > 64) fail("minishard_bits + shard_bits must be <= 64", `${path}.shard_bits`);
  const mie = encodingAt(raw, "minishard_index_encoding", path);
  const de = encodingAt(raw, "data_encoding", path);
  if (mie !== undefined) spec.minishard_index_encoding = mie;
  if (de !== undefined) spec.data_encoding = de;
  return spec;
}

/** Bytes of the shard index. Above 2^32 minishards (64 GiB of index) a layout is valid but not one we handle. */
export function shardIndexBytes(spec: ShardingSpec): number {
  if (spec.minishard_bits > 32) throw new PrecomputedError("unsupported", `minishard_bits ${spec.minishard_bits} > 32`, "sharding.minishard_bits");
  return 16 * 2 ** spec.minishard_bits;
}

const mask = (bits: number): bigint => (1n << BigInt(bits)) - 1n;

/** Which shard and minishard hold `chunkId`. */
export function locateChunk(spec: ShardingSpec, chunkId: bigint): { shard: bigint; minishard: bigint } {
  const shifted = BigInt.asUintN(64, chunkId) >> BigInt(spec.preshift_bits);
  const hashed = spec.hash === "identity" ? shifted : murmurHashUint64(shifted);
  const minishard = hashed & mask(spec.minishard_bits);
  const shard = (hashed >> BigInt(spec.minishard_bits)) & mask(spec.shard_bits);
  return { shard, minishard };
}

/** A shard's file name: the shard number in lowercase hex, zero-padded to ceil(shard_bits / 4) digits. */
export function shardFileName(spec: ShardingSpec, shard: bigint): string {
  return `${shard.toString(16).padStart(Math.ceil(spec.shard_bits / 4), "0")}.shard`;
}

const gzipIf = (bytes: Uint8Array, enc: ShardingEncoding | undefined): Uint8Array =>
  enc === "gzip" ? new Uint8Array(gzipSync(bytes)) : bytes;

function gunzipIf(bytes: Uint8Array, enc: ShardingEncoding | undefined, key: string): Uint8Array {
  if (enc !== "gzip") return bytes;
  try {
    return new Uint8Array(gunzipSync(bytes));
  } catch (e) {
    throw new PrecomputedError("invalid_chunk", "sharded entry is not valid gzip", key, { cause: e });
  }
}

/**
 * Encodes one shard from its entries (all must map to this shard). Entries are ordered by minishard, then
 * chunk id, so the same entries always give the same bytes whatever order they arrive in: a re-run of a
 * task writes an identical file.
 */
export function encodeShard(spec: ShardingSpec, entries: ReadonlyMap<bigint, Uint8Array>): Uint8Array {
  const nMini = shardIndexBytes(spec) / 16;
  const byMini = new Map<number, bigint[]>();
  for (const id of entries.keys()) {
    const m = Number(locateChunk(spec, id).minishard);
    let list = byMini.get(m);
    if (!list) byMini.set(m, (list = []));
    list.push(id);
  }
  const parts: Uint8Array[] = [];
  let pos = 0n;
  const push = (b: Uint8Array): void => {
    parts.push(b);
    pos += BigInt(b.length);
  };
  const indices: { mini: number; ids: bigint[]; starts: bigint[]; sizes: bigint[] }[] = [];
  for (const mini of [...byMini.keys()].sort((a, b) => a - b)) {
    const ids = (byMini.get(mini) ?? []).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const starts: bigint[] = [];
    const sizes: bigint[] = [];
    for (const id of ids) {
      const data = gzipIf(entries.get(id) ?? new Uint8Array(0), spec.data_encoding);
      starts.push(pos);
      sizes.push(BigInt(data.length));
      push(data);
    }
    indices.push({ mini, ids, starts, sizes });
  }
  const shardIndex = new BigUint64Array(nMini * 2);
  for (const { mini, ids, starts, sizes } of indices) {
    const n = ids.length;
    const cols = new BigUint64Array(3 * n);
    let prevId = 0n;
    let prevEnd = 0n;
    for (let i = 0; i < n; i++) {
      cols[i] = ids[i] - prevId;
      cols[n + i] = starts[i] - prevEnd;
      cols[2 * n + i] = sizes[i];
      prevId = ids[i];
      prevEnd = starts[i] + sizes[i];
    }
    const start = pos;
    push(gzipIf(littleEndian(cols), spec.minishard_index_encoding));
    shardIndex[2 * mini] = start;
    shardIndex[2 * mini + 1] = pos;
  }
  // Empty minishards keep [0, 0): start == end is all a reader checks.
  const out = new Uint8Array(nMini * 16 + Number(pos));
  out.set(littleEndian(shardIndex), 0);
  let at = nMini * 16;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function littleEndian(a: BigUint64Array): Uint8Array {
  const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  if (HOST_LE) return bytes;
  const out = new Uint8Array(a.length * 8);
  const dv = new DataView(out.buffer);
  a.forEach((v, i) => dv.setBigUint64(i * 8, v, true));
  return out;
}

function readUint64s(bytes: Uint8Array, key: string): BigUint64Array {
  if (bytes.length % 8 !== 0) throw new PrecomputedError("invalid_chunk", `${bytes.length} bytes is not a whole number of uint64`, key);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new BigUint64Array(bytes.length / 8);
  for (let i = 0; i < out.length; i++) out[i] = dv.getBigUint64(i * 8, true);
  return out;
}

/** Groups entries by shard: file name -> (chunk id -> bytes). */
export function groupByShard(spec: ShardingSpec, entries: Iterable<[bigint, Uint8Array]>): Map<string, Map<bigint, Uint8Array>> {
  const out = new Map<string, Map<bigint, Uint8Array>>();
  for (const [id, bytes] of entries) {
    const name = shardFileName(spec, locateChunk(spec, id).shard);
    let m = out.get(name);
    if (!m) out.set(name, (m = new Map()));
    m.set(BigInt.asUintN(64, id), bytes);
  }
  return out;
}

/**
 * Writes a batch of entries as shard files under `prefix`, each shard in one atomic put. A shard's previous
 * content is replaced, not merged: pass every entry of each shard touched (see mergeIntoShards otherwise).
 */
export async function writeShards(storage: Storage, prefix: string, spec: ShardingSpec, entries: Iterable<[bigint, Uint8Array]>): Promise<string[]> {
  const written: string[] = [];
  for (const [name, shard] of groupByShard(spec, entries)) {
    const key = joinKey(prefix, name);
    await storage.put(key, encodeShard(spec, shard));
    written.push(key);
  }
  return written;
}

/**
 * Like writeShards, but keeps the other entries already stored in each shard touched (read, overlay,
 * rewrite). Not safe against a concurrent writer of the same shard: plan work so one writer owns a shard.
 */
export async function mergeIntoShards(storage: Storage, prefix: string, spec: ShardingSpec, entries: Iterable<[bigint, Uint8Array]>): Promise<string[]> {
  const written: string[] = [];
  for (const [name, fresh] of groupByShard(spec, entries)) {
    const key = joinKey(prefix, name);
    const old = await storage.get(key);
    const merged = old ? decodeShard(spec, old, key) : new Map<bigint, Uint8Array>();
    for (const [id, bytes] of fresh) merged.set(id, bytes);
    await storage.put(key, encodeShard(spec, merged));
    written.push(key);
  }
  return written;
}

/** Every entry of a whole shard file (chunk id -> decoded bytes). */
export function decodeShard(spec: ShardingSpec, bytes: Uint8Array, key = "shard"): Map<bigint, Uint8Array> {
  const indexSize = shardIndexBytes(spec);
  if (bytes.length < indexSize) throw new PrecomputedError("invalid_chunk", `shorter (${bytes.length} B) than its shard index (${indexSize} B)`, key);
  const index = readUint64s(bytes.subarray(0, indexSize), key);
  const out = new Map<bigint, Uint8Array>();
  for (let m = 0; m < index.length / 2; m++) {
    const [s, e] = [index[2 * m], index[2 * m + 1]];
    if (s === e) continue;
    const mini = parseMinishardIndex(slice(bytes, indexSize, s, e, key), spec, key);
    for (const { id, start, end } of mini) out.set(id, gunzipIf(slice(bytes, indexSize, start, end, key), spec.data_encoding, key));
  }
  return out;
}

function slice(bytes: Uint8Array, base: number, start: bigint, end: bigint, key: string): Uint8Array {
  const s = base + Number(start);
  const e = base + Number(end);
  if (start > end || e > bytes.length) throw new PrecomputedError("invalid_chunk", `offsets [${start}, ${end}) lie outside the shard`, key);
  return bytes.subarray(s, e);
}

interface MinishardEntry {
  id: bigint;
  /** Relative to the end of the shard index. */
  start: bigint;
  end: bigint;
}

function parseMinishardIndex(stored: Uint8Array, spec: ShardingSpec, key: string): MinishardEntry[] {
  const bytes = gunzipIf(stored, spec.minishard_index_encoding, key);
  if (bytes.length % 24 !== 0) throw new PrecomputedError("invalid_chunk", `minishard index of ${bytes.length} B is not n x 24 B`, key);
  const cols = readUint64s(bytes, key);
  const n = cols.length / 3;
  const out: MinishardEntry[] = [];
  let id = 0n;
  let end = 0n;
  for (let i = 0; i < n; i++) {
    id += cols[i];
    const start = end + cols[n + i];
    end = start + cols[2 * n + i];
    out.push({ id, start, end });
  }
  return out;
}

/** `storage.getRange` where the storage has it; otherwise a whole read, sliced. */
export async function readRange(storage: Storage, key: string, start: number, end: number): Promise<Uint8Array | undefined> {
  if (storage.getRange) return storage.getRange(key, start, end);
  const all = await storage.get(key);
  return all?.subarray(start, end);
}

/**
 * Reads single chunks of a sharded layer with range reads (shard index entry, minishard index, data),
 * remembering decoded minishard indices: neighbouring chunks usually share one.
 */
export class ShardedReader {
  private readonly minishards = new Map<string, Promise<MinishardEntry[] | undefined>>();
  constructor(
    readonly storage: Storage,
    readonly prefix: string,
    readonly spec: ShardingSpec,
    private readonly cacheLimit = 4096,
  ) {}

  async get(chunkId: bigint): Promise<Uint8Array | undefined> {
    const id = BigInt.asUintN(64, chunkId);
    const { shard, minishard } = locateChunk(this.spec, id);
    const key = joinKey(this.prefix, shardFileName(this.spec, shard));
    const entries = await this.minishard(key, minishard);
    const hit = entries?.find((e) => e.id === id);
    if (!hit) return undefined;
    const base = shardIndexBytes(this.spec);
    const data = await readRange(this.storage, key, base + Number(hit.start), base + Number(hit.end));
    if (!data || data.length !== Number(hit.end - hit.start)) throw new PrecomputedError("invalid_chunk", "shard is shorter than its minishard index says", key);
    return gunzipIf(data, this.spec.data_encoding, key);
  }

  private minishard(key: string, minishard: bigint): Promise<MinishardEntry[] | undefined> {
    const cacheKey = `${key}#${minishard}`;
    let p = this.minishards.get(cacheKey);
    if (!p) {
      if (this.minishards.size >= this.cacheLimit) this.minishards.clear();
      p = this.loadMinishard(key, minishard);
      // A failed read must not stick: the next call retries.
      p.catch(() => this.minishards.delete(cacheKey));
      this.minishards.set(cacheKey, p);
    }
    return p;
  }

  private async loadMinishard(key: string, minishard: bigint): Promise<MinishardEntry[] | undefined> {
    const at = Number(minishard) * 16;
    const entry = await readRange(this.storage, key, at, at + 16);
    if (!entry) return undefined;
    if (entry.length !== 16) throw new PrecomputedError("invalid_chunk", "shard is shorter than its shard index", key);
    const [s, e] = readUint64s(entry, key);
    if (s === e) return [];
    const base = shardIndexBytes(this.spec);
    const stored = await readRange(this.storage, key, base + Number(s), base + Number(e));
    if (!stored || stored.length !== Number(e - s)) throw new PrecomputedError("invalid_chunk", "shard is shorter than its shard index says", key);
    return parseMinishardIndex(stored, this.spec, key);
  }
}
