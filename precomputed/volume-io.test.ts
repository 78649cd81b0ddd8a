import { promises as fs } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Vec3, Volume } from "./array.js";
import { PrecomputedError } from "./errors.js";
import { chunkGrid, chunkKey, validateInfo } from "./info.js";
import { downsampleMean, downsampleMode } from "./multiscale.js";
import { LocalStorage } from "./storage.js";
import { mulberry32 } from "./testing/random.js";
import { makeInfo, readRegion, writeRegion, writeVolume } from "./volume-io.js";

let root: string;
beforeAll(async () => {
  root = await fs.mkdtemp(path.join(tmpdir(), "vemscope-volume-io-"));
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

const SIZE: Vec3 = [150, 90, 11];

/** Elements of box [start, end) of v, all channels, in Volume order. */
function cropOf(v: Volume, start: Vec3, end: Vec3): (number | bigint)[] {
  const [sx, sy] = v.shape;
  const out: (number | bigint)[] = [];
  const channels = v.channels ?? 1;
  for (let c = 0; c < channels; c++)
    for (let z = start[2]; z < end[2]; z++)
      for (let y = start[1]; y < end[1]; y++)
        for (let x = start[0]; x < end[0]; x++) out.push(v.data[x + sx * (y + sy * (z + v.shape[2] * c))]);
  return out;
}

/** Organelle-like labels: a few boxes of uint64 ids above 2^32 on background 0. */
function labelVolume(): Volume<BigUint64Array> {
  const [sx, sy, sz] = SIZE;
  const data = new BigUint64Array(sx * sy * sz);
  const boxes: [Vec3, Vec3, bigint][] = [[[10, 10, 0], [70, 50, 6], 2n ** 40n + 7n], [[60, 30, 3], [149, 89, 11], 5n], [[0, 70, 8], [30, 90, 11], 9n]];
  for (const [a, b, id] of boxes)
    for (let z = a[2]; z < b[2]; z++) for (let y = a[1]; y < b[1]; y++) for (let x = a[0]; x < b[0]; x++) data[x + sx * (y + sy * z)] = id;
  return { data, shape: [...SIZE], channels: 1 };
}

function imageVolume(channels = 1): Volume<Uint8Array> {
  const rand = mulberry32(17);
  const n = SIZE[0] * SIZE[1] * SIZE[2];
  const data = new Uint8Array(n * channels);
  for (let i = 0; i < data.length; i++) data[i] = (i % SIZE[0]) + Math.floor(rand() * 40);
  return { data, shape: [...SIZE], channels };
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(path.relative(dir, path.join(e.parentPath, e.name)));
  }
  return out.sort();
}

describe("writeVolume / readRegion through LocalStorage", () => {
  it("segmentation, compressed_segmentation + gzip: every scale reads back exactly", async () => {
    const storage = new LocalStorage(path.join(root, "seg"));
    const info = makeInfo({ type: "segmentation", dataType: "uint64", size: SIZE, resolution: [5, 5, 45], chunkSize: [64, 64, 8], encoding: "compressed_segmentation", segmentProperties: "segment_properties" });
    expect(info.scales.map((s) => s.key)).toEqual(["5_5_45", "10_10_45", "20_20_45"]);
    const v = labelVolume();
    const progress: [number, number][] = [];
    await writeVolume(storage, "layer", info, v, { gzip: true, onProgress: (d, t) => progress.push([d, t]) });

    const stored = JSON.parse(new TextDecoder().decode(await storage.get("layer/info"))) as unknown;
    expect(validateInfo(stored)).toEqual(info);
    const total = info.scales.reduce((n, s) => n + [...chunkGrid(s)].length, 0);
    expect(progress.map((p) => p[0])).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    expect(progress.every((p) => p[1] === total)).toBe(true);
    const files = await filesUnder(path.join(root, "seg", "layer"));
    expect(files.filter((f) => f.endsWith(".gz"))).toHaveLength(total);
    expect(files).toContain(path.join("5_5_45", "128-150_64-90_8-11.gz"));

    expect((await readRegion(storage, "layer", info, 0, [0, 0, 0], SIZE)).data).toEqual(v.data);
    const start: Vec3 = [17, 33, 2];
    const end: Vec3 = [131, 90, 10];
    const part = await readRegion(storage, "layer", info, 0, start, end);
    expect(part.shape).toEqual([114, 57, 8]);
    expect(Array.from(part.data as ArrayLike<number | bigint>)).toEqual(cropOf(v, start, end));
    let expected: Volume = v;
    for (let i = 1; i < info.scales.length; i++) {
      expected = downsampleMode(expected, [2, 2, 1]);
      expect((await readRegion(storage, "layer", info, i, [0, 0, 0], info.scales[i].size)).data).toEqual(expected.data);
    }
  });

  it("image, raw and jpeg (3 channels): exact for raw, within JPEG tolerance for jpeg; jpeg never gzipped", async () => {
    for (const [encoding, channels] of [["raw", 1], ["jpeg", 3]] as const) {
      const storage = new LocalStorage(path.join(root, `img-${encoding}`));
      const info = makeInfo({ type: "image", dataType: "uint8", numChannels: channels, size: SIZE, resolution: [5, 5, 45], chunkSize: [64, 64, 8], encoding, maxLevels: 2 });
      const v = imageVolume(channels);
      await writeVolume(storage, "", info, v, { gzip: true });
      const files = await filesUnder(path.join(root, `img-${encoding}`));
      expect(files.some((f) => f.endsWith(".gz"))).toBe(encoding === "raw");
      const back = await readRegion(storage, "", info, 0, [0, 0, 0], SIZE);
      const down = await readRegion(storage, "", info, 1, [0, 0, 0], info.scales[1].size);
      const mean = downsampleMean(v, [2, 2, 1]);
      if (encoding === "raw") {
        expect(back.data).toEqual(v.data);
        expect(down.data).toEqual(mean.data);
      } else {
        let err = 0;
        for (let i = 0; i < v.data.length; i++) err += Math.abs(Number(back.data[i]) - v.data[i]);
        expect(err / v.data.length).toBeLessThan(12);
        expect(back.channels).toBe(3);
      }
    }
  });

  it("a missing chunk reads as zeros; a corrupt one fails with invalid_chunk naming its key", async () => {
    const storage = new LocalStorage(path.join(root, "holes"));
    const info = makeInfo({ type: "segmentation", dataType: "uint64", size: SIZE, resolution: [5, 5, 45], chunkSize: [64, 64, 8], encoding: "compressed_segmentation", maxLevels: 1 });
    const v = labelVolume();
    await writeVolume(storage, "s", info, v);
    const scale = info.scales[0];
    await storage.delete(`s/${chunkKey(scale, [64, 0, 0], [128, 64, 8])}`);
    const back = await readRegion(storage, "s", info, 0, [0, 0, 0], SIZE);
    const hole = cropOf(back, [64, 0, 0], [128, 64, 8]);
    expect(hole.every((x) => x === 0n)).toBe(true);
    expect(cropOf(back, [0, 0, 0], [64, 64, 8])).toEqual(cropOf(v, [0, 0, 0], [64, 64, 8]));

    const key = `s/${chunkKey(scale, [0, 64, 8], [64, 90, 11])}`;
    await storage.put(key, new Uint8Array([1, 0, 0, 0, 9, 9]));
    const err = await readRegion(storage, "s", info, 0, [0, 64, 8], [10, 70, 11]).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(PrecomputedError);
    expect(err).toMatchObject({ code: "invalid_chunk", path: key });
  });
});

describe("writeRegion", () => {
  const info = makeInfo({ type: "image", dataType: "uint16", size: SIZE, resolution: [4, 4, 40], chunkSize: [64, 64, 8], encoding: "raw", voxelOffset: [100, 0, -8], maxLevels: 1 });

  it("writes chunk-aligned regions, including ones ending at the volume edge, in absolute coordinates", async () => {
    const storage = new LocalStorage(path.join(root, "region"));
    const shape: Vec3 = [86, 26, 3]; // from [164, 64, -8+8] to the volume's far edge
    const data = Uint16Array.from({ length: shape[0] * shape[1] * shape[2] }, (_, i) => 1000 + i);
    const vol = { data, shape };
    await writeRegion(storage, "r", info, 0, [164, 64, 0], vol);
    const keys = await storage.list("r/");
    // x: the grid runs from voxel_offset 100 in steps of 64, so [164, 250) is chunks [164, 228) and [228, 250).
    expect(keys).toEqual([
      `r/${chunkKey(info.scales[0], [164, 64, 0], [228, 90, 3])}`,
      `r/${chunkKey(info.scales[0], [228, 64, 0], [250, 90, 3])}`,
    ]);
    const back = await readRegion(storage, "r", info, 0, [164, 64, 0], [250, 90, 3]);
    expect(back.data).toEqual(data);
    // Unwritten parts of the layer read as zeros.
    const all = await readRegion(storage, "r", info, 0, [100, 0, -8], [250, 90, 3]);
    expect(Array.from(all.data, Number).filter((x) => x > 0)).toHaveLength(data.length);
  });

  it.each([
    ["an offset off the chunk grid", [101, 0, -8] as Vec3, [64, 64, 8] as Vec3],
    ["an offset before voxel_offset", [36, 0, -8] as Vec3, [64, 64, 8] as Vec3],
    ["an end off the grid and not at the edge", [100, 0, -8] as Vec3, [60, 64, 8] as Vec3],
    ["an end past the volume", [164, 64, 0] as Vec3, [128, 26, 3] as Vec3],
  ])("rejects %s", async (_what, offset, shape) => {
    const storage = new LocalStorage(path.join(root, "bad-region"));
    const vol = { data: new Uint16Array(shape[0] * shape[1] * shape[2]), shape };
    await expect(writeRegion(storage, "r", info, 0, offset, vol)).rejects.toMatchObject({ code: "invalid_argument" });
  });

  it("rejects a volume of the wrong type or channel count, and unknown scales", async () => {
    const storage = new LocalStorage(path.join(root, "bad-region"));
    await expect(writeRegion(storage, "r", info, 0, [100, 0, -8], { data: new Uint8Array(64 * 64 * 8), shape: [64, 64, 8] })).rejects.toMatchObject({ code: "invalid_argument" });
    await expect(writeRegion(storage, "r", info, 0, [100, 0, -8], { data: new Uint16Array(64 * 64 * 8 * 2), shape: [64, 64, 8], channels: 2 })).rejects.toMatchObject({ code: "invalid_argument" });
    await expect(readRegion(storage, "r", info, 3, [100, 0, -8], [101, 1, -7])).rejects.toMatchObject({ code: "invalid_argument" });
    await expect(readRegion(storage, "r", info, 0, [99, 0, -8], [101, 1, -7])).rejects.toMatchObject({ code: "invalid_argument" });
  });

  it("writeVolume refuses a volume whose shape is not scales[0].size", async () => {
    const storage = new LocalStorage(path.join(root, "bad-volume"));
    await expect(writeVolume(storage, "", info, { data: new Uint16Array(8), shape: [2, 2, 2] })).rejects.toMatchObject({ code: "invalid_argument" });
  });
});
