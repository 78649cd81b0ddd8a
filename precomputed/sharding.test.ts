import { promises as fs } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Vec3 } from "./array.js";
import { validateInfo, type VolumeInfo } from "./info.js";
import { compressedMortonCode, murmurHash3X86_128, murmurHashUint64 } from "./sharding-hash.js";
import { readShardedRegion, volumeChunkId, writeShardedRegion } from "./sharding-volume.js";
import { decodeShard, encodeShard, locateChunk, ShardedReader, shardFileName, validateSharding, writeShards, type ShardingSpec } from "./sharding.js";
import { LocalStorage } from "./storage.js";
import { loadNgSharded, type NgSharded } from "./testing/neuroglancer-sharded.js";
import { mulberry32 } from "./testing/random.js";

const spec = (o: Partial<ShardingSpec> = {}): ShardingSpec => ({
  "@type": "neuroglancer_uint64_sharded_v1",
  preshift_bits: 0,
  hash: "murmurhash3_x86_128",
  minishard_bits: 3,
  shard_bits: 2,
  minishard_index_encoding: "gzip",
  data_encoding: "gzip",
  ...o,
});

function randomEntries(n: number, seed: number): Map<bigint, Uint8Array> {
  const rnd = mulberry32(seed);
  const out = new Map<bigint, Uint8Array>();
  while (out.size < n) {
    const id = (BigInt(Math.floor(rnd() * 2 ** 32)) << 32n) | BigInt(Math.floor(rnd() * 2 ** 32));
    out.set(id, Uint8Array.from({ length: Math.floor(rnd() * 300) }, () => Math.floor(rnd() * 256)));
  }
  return out;
}

let dir: string;
let ng: NgSharded;
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "vemscope-sharding-"));
  ng = await loadNgSharded();
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

describe("murmurhash3_x86_128", () => {
  it("passes SMHasher's verification value 0xB3ECE62A and hashes the empty key to zero", () => {
    // SMHasher VerificationTest: hash keys {0}, {0,1}, ..., {0..254} with seed 256 - i, then hash the digests.
    const digests = new Uint8Array(256 * 16);
    for (let i = 0; i < 256; i++) {
      const key = Uint8Array.from({ length: i }, (_, j) => j);
      const h = murmurHash3X86_128(key, 256 - i);
      const dv = new DataView(digests.buffer, i * 16, 16);
      h.forEach((w, k) => dv.setUint32(k * 4, w, true));
    }
    expect(murmurHash3X86_128(digests, 0)[0]).toBe(0xb3ece62a);
    expect(murmurHash3X86_128(new Uint8Array(0), 0)).toEqual([0, 0, 0, 0]);
  });

  it("agrees with Neuroglancer's uint64 hash on 2000 random keys", () => {
    const rnd = mulberry32(5);
    for (let i = 0; i < 2000; i++) {
      const x = (BigInt(Math.floor(rnd() * 2 ** 32)) << 32n) | BigInt(Math.floor(rnd() * 2 ** 32));
      expect(murmurHashUint64(x)).toBe(ng.hash64(x));
    }
  });
});

describe("compressed Morton code", () => {
  it("matches Neuroglancer's encodeZIndexCompressed3d, including axes that run out of bits", () => {
    for (const grid of [[5, 3, 1], [16, 2, 9], [1, 1, 1], [33, 7, 200]]) {
      const bits = grid.map((g) => Math.ceil(Math.log2(g)));
      for (let z = 0; z < grid[2]; z += 3) for (let y = 0; y < grid[1]; y++) for (let x = 0; x < grid[0]; x += 2) {
        expect(compressedMortonCode([x, y, z], grid)).toBe(ng.zindex(bits, [x, y, z]));
      }
    }
    expect(compressedMortonCode([1, 1, 1], [2, 2, 2])).toBe(7n);
    // Grid 4 x 1 x 2: x has 2 bits, y none, z one; bit order x0 z0 x1.
    expect(compressedMortonCode([2, 0, 1], [4, 1, 2])).toBe(0b110n);
  });
});

describe("validateSharding", () => {
  it("accepts the spec and names the JSON path of a bad field", () => {
    expect(validateSharding(spec())).toEqual(spec());
    expect(() => validateSharding({ ...spec(), hash: "md5" }, "scales[0].sharding")).toThrow(/scales\[0\]\.sharding\.hash/);
    expect(() => validateSharding({ ...spec(), "@type": "x" })).toThrow(/sharding\.@type/);
    expect(() => validateSharding({ ...spec(), shard_bits: -1 })).toThrow(/sharding\.shard_bits/);
    expect(() => validateSharding({ ...spec(), shard_bits: 40, minishard_bits: 30 })).toThrow(/<= 64/);
    expect(() => validateSharding({ ...spec(), data_encoding: "zstd" })).toThrow(/data_encoding/);
    const info = { type: "image", data_type: "uint8", num_channels: 1, scales: [{ key: "s0", size: [8, 8, 8], resolution: [1, 1, 1], chunk_sizes: [[4, 4, 4]], encoding: "raw", sharding: { ...spec(), preshift_bits: 1.5 } }] };
    expect(() => validateInfo(info)).toThrow(/scales\[0\]\.sharding\.preshift_bits/);
  });
});

describe("shard files", () => {
  const variants: ShardingSpec[] = [
    spec(),
    spec({ hash: "identity", minishard_index_encoding: "raw", data_encoding: "raw", preshift_bits: 2 }),
    spec({ shard_bits: 0, minishard_bits: 0, data_encoding: "raw" }),
    spec({ shard_bits: 5, minishard_bits: 6, preshift_bits: 1, minishard_index_encoding: "raw" }),
  ];
  for (const [i, s] of variants.entries()) {
    it(`Neuroglancer's ShardedKvStore reads every entry we wrote (${s.hash}, bits ${s.shard_bits}/${s.minishard_bits}, preshift ${s.preshift_bits})`, async () => {
      const storage = new LocalStorage(path.join(dir, `v${i}`));
      const entries = randomEntries(300, 10 + i);
      entries.set(0n, new Uint8Array(0)); // an empty chunk is a valid entry
      const keys = await writeShards(storage, "layer", s, entries);
      expect(keys.length).toBeLessThanOrEqual(2 ** s.shard_bits);
      const ours = new ShardedReader(storage, "layer", s);
      for (const [id, bytes] of entries) {
        expect(await ng.read(s, storage, "layer", id)).toEqual(bytes);
        expect(await ours.get(id)).toEqual(bytes);
      }
      for (const missing of [1n, 0xffffffffffffffffn]) {
        if (entries.has(missing)) continue;
        expect(await ng.read(s, storage, "layer", missing)).toBeUndefined();
        expect(await ours.get(missing)).toBeUndefined();
      }
      // Whole-shard decode sees the same entries.
      let total = 0;
      for (const key of keys) total += decodeShard(s, (await storage.get(key)) ?? new Uint8Array(0), key).size;
      expect(total).toBe(entries.size);
    });
  }

  it("is deterministic whatever order the entries come in, and follows the byte layout of the spec", () => {
    const s = spec({ hash: "identity", shard_bits: 0, minishard_bits: 1, minishard_index_encoding: "raw", data_encoding: "raw" });
    const a = new Map<bigint, Uint8Array>([[5n, Uint8Array.of(1, 2, 3)], [2n, Uint8Array.of(9)], [3n, Uint8Array.of(7, 7)]]);
    const b = new Map([...a].reverse());
    const bytes = encodeShard(s, a);
    expect(encodeShard(s, b)).toEqual(bytes);
    const u = (i: number) => new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(i, true);
    // Minishard 0 holds id 2; minishard 1 holds ids 3 and 5. Data: [9][7 7][1 2 3] from byte 32.
    expect([...bytes.subarray(32, 38)]).toEqual([9, 7, 7, 1, 2, 3]);
    expect([u(0), u(8)]).toEqual([6n, 30n]); // minishard 0 index: 1 entry x 24 B after the data
    expect([u(16), u(24)]).toEqual([30n, 78n]);
    expect([u(32 + 6), u(32 + 14), u(32 + 22)]).toEqual([2n, 0n, 1n]); // id, offset, size
    // ids delta-coded (3, 5 -> 3, 2); offsets from the previous chunk's end (1, 3 -> 1, 0); sizes.
    expect([30, 38, 46, 54, 62, 70].map((o) => u(32 + o))).toEqual([3n, 2n, 1n, 0n, 2n, 3n]);
    expect(shardFileName(spec({ shard_bits: 9 }), 5n)).toBe("005.shard");
    expect(locateChunk(s, 5n)).toEqual({ shard: 0n, minishard: 1n });
  });
});

describe("sharded scale regions", () => {
  const info = (encoding: "raw" | "compressed_segmentation"): VolumeInfo =>
    validateInfo({
      type: encoding === "raw" ? "image" : "segmentation",
      data_type: encoding === "raw" ? "uint16" : "uint32",
      num_channels: 1,
      scales: [
        {
          key: "s0",
          size: [37, 21, 10],
          voxel_offset: [3, 0, -4],
          resolution: [4, 4, 40],
          chunk_sizes: [[8, 8, 4]],
          encoding,
          ...(encoding === "compressed_segmentation" ? { compressed_segmentation_block_size: [8, 8, 8] } : {}),
          sharding: spec({ shard_bits: 1, minishard_bits: 2 }),
        },
      ],
    });

  for (const encoding of ["raw", "compressed_segmentation"] as const) {
    it(`${encoding}: whole-scale write, region merge and region read agree with the source volume`, async () => {
      const inf = info(encoding);
      const storage = new LocalStorage(path.join(dir, `region-${encoding}`));
      const size = inf.scales[0].size;
      const rnd = mulberry32(3);
      const n = size[0] * size[1] * size[2];
      const data = encoding === "raw" ? Uint16Array.from({ length: n }, () => Math.floor(rnd() * 65536)) : Uint32Array.from({ length: n }, () => Math.floor(rnd() * 5));
      const offset = inf.scales[0].voxel_offset;
      await writeShardedRegion(storage, "L", inf, 0, offset, { data, shape: size });
      const whole = await readShardedRegion(storage, "L", inf, 0, offset, [offset[0] + size[0], offset[1] + size[1], offset[2] + size[2]]);
      expect(whole.data).toEqual(data);
      // Overwrite one chunk-aligned block; the rest of its shard must survive the merge.
      const blockStart: Vec3 = [offset[0] + 8, offset[1] + 8, offset[2] + 4];
      const block = encoding === "raw" ? new Uint16Array(16 * 8 * 4).fill(7) : new Uint32Array(16 * 8 * 4).fill(7);
      await writeShardedRegion(storage, "L", inf, 0, blockStart, { data: block, shape: [16, 8, 4] });
      const sub = await readShardedRegion(storage, "L", inf, 0, [blockStart[0] - 1, blockStart[1], blockStart[2]], [blockStart[0] + 17, blockStart[1] + 8, blockStart[2] + 4]);
      const at = (x: number, y: number, z: number) => sub.data[x + 18 * (y + 8 * z)];
      expect(at(1, 0, 0)).toBe(encoding === "raw" ? 7 : 7);
      expect(at(0, 3, 2)).toBe(data[blockStart[0] - 1 - offset[0] + size[0] * (blockStart[1] + 3 - offset[1] + size[1] * (blockStart[2] + 2 - offset[2]))]);
      expect(at(17, 5, 1)).toBe(data[blockStart[0] + 16 - offset[0] + size[0] * (blockStart[1] + 5 - offset[1] + size[1] * (blockStart[2] + 1 - offset[2]))]);
      // Chunk ids are Neuroglancer's: the chunk at grid (4, 2, 2) of a 5 x 3 x 3 grid.
      const grid = [5, 3, 3];
      expect(volumeChunkId(inf.scales[0], [offset[0] + 32, offset[1] + 16, offset[2] + 8])).toBe(ng.zindex(grid.map((g) => Math.ceil(Math.log2(g))), [4, 2, 2]));
    });
  }
});
