/**
 * Test and bench helper: Neuroglancer's own sharded reader (ShardedKvStore) loaded under Node, reading shard
 * files from any Storage with range reads (a local folder or s3://). Used by sharding.test.ts and by the scale
 * bench to show that Neuroglancer reads what we wrote.
 */
import type { ShardingSpec } from "../sharding.js";
import type { Storage } from "../storage.js";
import { loadNeuroglancer } from "./neuroglancer-node.js";

export type RangeStorage = Storage & Required<Pick<Storage, "getRange">>;

type Mod = Record<string, unknown>;

/**
 * Neuroglancer's own sharded reader (ShardedKvStore: shard index, minishard index decoding, gzip handles)
 * over our files. Its minishard cache needs a chunk manager only for memory accounting, so the cache's
 * `get` is replaced by a direct call of the download function Neuroglancer passes it.
 */
export interface NgSharded {
  read(spec: ShardingSpec, storage: RangeStorage, prefix: string, id: bigint): Promise<Uint8Array | undefined>;
  hash64(x: bigint): bigint;
  zindex(bits: number[], pos: number[]): bigint;
}

export async function loadNgSharded(): Promise<NgSharded> {
  await loadNeuroglancer(); // installs the browser shims
  const ng = "neuroglancer/unstable/";
  const sharded = (await import(`${ng}datasource/precomputed/sharded.js`)) as Mod;
  const cacheMod = (await import(`${ng}chunk_manager/generic_file_source.js`)) as Mod;
  const base = (await import(`${ng}datasource/precomputed/base.js`)) as Mod;
  const hash = (await import(`${ng}util/hash.js`)) as Mod;
  const zorder = (await import(`${ng}util/zorder.js`)) as Mod;
  const cache = cacheMod.SimpleAsyncCache as { prototype: Record<string, unknown> };
  cache.prototype.get = async function (this: { downloadFunction(k: unknown, o: unknown): Promise<{ data: unknown }> }, key: unknown, options: unknown) {
    return (await this.downloadFunction(key, options)).data;
  };
  const ShardedKvStore = sharded.ShardedKvStore as new (cm: unknown, base: unknown, sharding: unknown) => {
    read(key: bigint, options: unknown): Promise<{ response: Response } | undefined>;
  };
  const enums = { hash: base.ShardingHashFunction as Record<string, number>, enc: base.DataEncoding as Record<string, number> };
  const chunkManager = { queueManager: { sources: new Set() }, addRef() { return this; } };
  return {
    async read(spec, storage, prefix, id) {
      const store = {
        getUrl: (k: string) => k,
        async read(key: string, options: { byteRange?: { offset: number; length: number } }) {
          const r = options.byteRange;
          const bytes = r ? await storage.getRange(key, r.offset, r.offset + r.length) : await storage.get(key);
          if (!bytes) return undefined;
          return { response: new Response(new Uint8Array(bytes)), offset: r?.offset ?? 0, length: bytes.length, totalSize: undefined };
        },
      };
      const params = {
        hash: enums.hash[spec.hash.toUpperCase()],
        preshiftBits: spec.preshift_bits,
        shardBits: spec.shard_bits,
        minishardBits: spec.minishard_bits,
        minishardIndexEncoding: enums.enc[(spec.minishard_index_encoding ?? "raw").toUpperCase()],
        dataEncoding: enums.enc[(spec.data_encoding ?? "raw").toUpperCase()],
      };
      const kv = new ShardedKvStore(chunkManager, { store, path: `${prefix}/` }, params);
      const res = await kv.read(id, {});
      return res ? new Uint8Array(await res.response.arrayBuffer()) : undefined;
    },
    hash64: (x) => (hash.murmurHash3_x86_128Hash64Bits_Bigint as (s: number, x: bigint) => bigint)(0, x),
    zindex: (bits, pos) => (zorder.encodeZIndexCompressed3d as (...a: number[]) => bigint)(bits[0], bits[1], bits[2], pos[0], pos[1], pos[2]),
  };
}

