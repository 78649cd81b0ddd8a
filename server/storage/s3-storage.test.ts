import { promises as fs } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { PrecomputedError } from "../../precomputed/errors.js";
import { validateInfo } from "../../precomputed/info.js";
import { readShardedRegion, writeShardedRegion } from "../../precomputed/sharding-volume.js";
import { LocalStorage } from "../../precomputed/storage.js";
import { readRegion, writeVolume } from "../../precomputed/volume-io.js";
import { startS3rver, type RunningS3 } from "../../test/helpers/services.js";
import { S3Storage, parseS3Url, s3OptionsFromEnv, storageFor } from "./index.js";

// Against a real s3rver (HTTP, SigV4, list paging, ranges), not a mock.
let s3: RunningS3;
let storage: S3Storage;
const options = () => ({ endpoint: s3.endpoint, forcePathStyle: true, region: "us-east-1", credentials: s3.credentials });

beforeAll(async () => {
  s3 = await startS3rver(["vemscope-test"]);
  storage = new S3Storage("vemscope-test", "runs/a", options());
});
afterAll(async () => {
  storage?.close();
  await s3?.stop();
});

describe("S3Storage on s3rver", () => {
  it("puts, gets, lists, ranges and deletes objects under its prefix", async () => {
    expect(await storage.get("info")).toBeUndefined();
    await storage.put("info", JSON.stringify({ a: 1 }));
    await storage.put("img/0-8_0-8_0-1", Uint8Array.from({ length: 64 }, (_, i) => i));
    await storage.put("img/8-16_0-8_0-1", new Uint8Array(64).fill(3), { contentEncoding: "gzip" });
    await new S3Storage("vemscope-test", "runs/b", options()).put("info", "other run");
    expect(new TextDecoder().decode(await storage.get("info"))).toBe('{"a":1}');
    expect(await storage.get("img/8-16_0-8_0-1")).toEqual(new Uint8Array(64).fill(3));
    expect(await storage.list("")).toEqual(["img/0-8_0-8_0-1", "img/8-16_0-8_0-1", "info"]);
    expect(await storage.list("img/")).toEqual(["img/0-8_0-8_0-1", "img/8-16_0-8_0-1"]);
    expect(await storage.getRange("img/0-8_0-8_0-1", 10, 14)).toEqual(Uint8Array.of(10, 11, 12, 13));
    expect(await storage.getRange("img/0-8_0-8_0-1", 60, 100)).toEqual(Uint8Array.of(60, 61, 62, 63));
    expect(await storage.getRange("img/0-8_0-8_0-1", 64, 70)).toEqual(new Uint8Array(0));
    expect(await storage.getRange("img/8-16_0-8_0-1", 62, 66)).toEqual(Uint8Array.of(3, 3)); // over the plain bytes
    expect(await storage.getRange("nothing", 0, 4)).toBeUndefined();
    await storage.delete("info");
    await storage.delete("never-there");
    expect(await storage.get("info")).toBeUndefined();
    await expect(storage.put("../escape", "x")).rejects.toBeInstanceOf(PrecomputedError);
  });

  it("lists past one page (ListObjects markers)", async () => {
    const many = new S3Storage("vemscope-test", "many", { ...options(), listPageSize: 7 });
    const keys = Array.from({ length: 30 }, (_, i) => `k/${String(i).padStart(4, "0")}`);
    await Promise.all(keys.map((k) => many.put(k, new Uint8Array(1))));
    expect(await many.list("k/")).toEqual(keys);
  });

  it("holds a precomputed layer and a sharded scale byte-identical to a local folder", async () => {
    const info = validateInfo({
      type: "image",
      data_type: "uint8",
      num_channels: 1,
      scales: [{ key: "s0", size: [20, 12, 6], resolution: [4, 4, 40], chunk_sizes: [[8, 8, 4]], encoding: "raw" }],
    });
    const data = Uint8Array.from({ length: 20 * 12 * 6 }, (_, i) => (i * 7) % 251);
    const local = new LocalStorage(await fs.mkdtemp(path.join(os.tmpdir(), "vemscope-s3cmp-")));
    onTestFinished(() => fs.rm(local.root, { recursive: true, force: true }));
    const remote = new S3Storage("vemscope-test", "layers/img", options());
    await writeVolume(remote, "", info, { data, shape: [20, 12, 6] }, { gzip: true });
    await writeVolume(local, "", info, { data, shape: [20, 12, 6] }, { gzip: true });
    expect(await remote.list("")).toEqual(await local.list(""));
    for (const k of await local.list("s0/")) expect(await remote.get(k)).toEqual(await local.get(k));
    expect((await readRegion(remote, "", info, 0, [3, 2, 1], [19, 12, 5])).data).toEqual((await readRegion(local, "", info, 0, [3, 2, 1], [19, 12, 5])).data);

    const sharded = validateInfo({
      ...info,
      scales: [{ ...info.scales[0], sharding: { "@type": "neuroglancer_uint64_sharded_v1", preshift_bits: 0, hash: "murmurhash3_x86_128", minishard_bits: 1, shard_bits: 1, data_encoding: "gzip", minishard_index_encoding: "gzip" } }],
    });
    const keys = await writeShardedRegion(remote, "sharded", sharded, 0, [0, 0, 0], { data, shape: [20, 12, 6] });
    expect(keys.every((k) => k.endsWith(".shard"))).toBe(true);
    expect((await readShardedRegion(remote, "sharded", sharded, 0, [0, 0, 0], [20, 12, 6])).data).toEqual(data);
  });

  it("fails with a PrecomputedError naming the object when the bucket is missing", async () => {
    const bad = new S3Storage("no-such-bucket", "", options());
    await expect(bad.put("x", "y")).rejects.toThrow(/s3:\/\/no-such-bucket\/x/);
    bad.close();
  });
});

describe("storageFor and configuration", () => {
  it("maps URLs to storages and reads the endpoint from the environment", () => {
    expect(storageFor("s3://bucket-1/a/b/")).toBeInstanceOf(S3Storage);
    expect((storageFor("s3://bucket-1/a/b/") as S3Storage).prefix).toBe("a/b");
    expect(storageFor("/tmp/x")).toBeInstanceOf(LocalStorage);
    expect((storageFor("file:///tmp/y") as LocalStorage).root).toBe("/tmp/y");
    expect(() => storageFor("gs://b/x")).toThrow(PrecomputedError);
    expect(() => parseS3Url("s3://A/x")).toThrow(/bucket/);
    expect(s3OptionsFromEnv({ VEMSCOPE_S3_ENDPOINT: "http://127.0.0.1:9000" })).toEqual({ endpoint: "http://127.0.0.1:9000", forcePathStyle: true, region: "us-east-1" });
    expect(s3OptionsFromEnv({ AWS_REGION: "eu-west-1" }).forcePathStyle).toBe(false);
  });
});
