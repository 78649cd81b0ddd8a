import { describe, expect, it } from "vitest";
import { PrecomputedError } from "./errors.js";
import { chunkGrid, chunkKey, parseChunkKey, validateInfo, type VolumeInfo } from "./info.js";
import { mulberry32 } from "./testing/random.js";

const imageInfo = () => ({
  "@type": "neuroglancer_multiscale_volume",
  type: "image",
  data_type: "uint8",
  num_channels: 1,
  scales: [
    { key: "5_5_45", size: [1000, 800, 45], resolution: [5, 5, 45], voxel_offset: [0, 0, 0], chunk_sizes: [[64, 64, 16]], encoding: "raw" },
    { key: "10_10_45", size: [500, 400, 45], resolution: [10, 10, 45], voxel_offset: [0, 0, 0], chunk_sizes: [[64, 64, 16]], encoding: "jpeg" },
  ],
});

const segInfo = () => ({
  "@type": "neuroglancer_multiscale_volume",
  type: "segmentation",
  data_type: "uint64",
  num_channels: 1,
  mesh: "mesh",
  segment_properties: "segment_properties",
  scales: [
    {
      key: "8_8_8",
      size: [37, 19, 5],
      resolution: [8, 8, 8],
      voxel_offset: [3, -2, 0],
      chunk_sizes: [[16, 16, 4], [8, 8, 8]],
      encoding: "compressed_segmentation",
      compressed_segmentation_block_size: [8, 8, 8],
    },
    { key: "s/16", size: [19, 10, 3], resolution: [16, 16, 16], voxel_offset: [1, -1, 0], chunk_sizes: [[16, 16, 4]], encoding: "raw" },
  ],
});

const rgbInfo = () => ({
  type: "image",
  data_type: "uint8",
  num_channels: 3,
  scales: [{ key: "a", size: [10, 10, 10], resolution: [1.5, 1.5, 4], chunk_sizes: [[10, 10, 10]], encoding: "jpeg", jpeg_quality: 90 }],
});

function errorOf(json: unknown): PrecomputedError {
  try {
    validateInfo(json);
  } catch (e) {
    if (e instanceof PrecomputedError) return e;
    throw new Error(`not a PrecomputedError: ${String(e)}`);
  }
  throw new Error("expected validateInfo to throw");
}

describe("validateInfo", () => {
  it("accepts valid infos and normalises them", () => {
    const seg = validateInfo(segInfo());
    expect(seg.scales[1].key).toBe("s/16");
    expect(seg.scales[0].compressed_segmentation_block_size).toEqual([8, 8, 8]);
    const rgb = validateInfo(rgbInfo());
    expect(rgb["@type"]).toBe("neuroglancer_multiscale_volume");
    expect(rgb.scales[0].voxel_offset).toEqual([0, 0, 0]);
    expect(rgb.scales[0].jpeg_quality).toBe(90);
    expect(validateInfo(imageInfo()).scales).toHaveLength(2);
  });

  it.each([
    ["$", () => 42],
    ["$", () => null],
    ["type", () => ({ ...imageInfo(), type: "mesh" })],
    ["@type", () => ({ ...imageInfo(), "@type": "neuroglancer_legacy_mesh" })],
    ["data_type", () => ({ ...imageInfo(), data_type: "int8" })],
    ["data_type", () => ({ ...segInfo(), data_type: "float32" })],
    ["num_channels", () => ({ ...imageInfo(), num_channels: 0 })],
    ["num_channels", () => ({ ...imageInfo(), num_channels: 1.5 })],
    ["scales", () => ({ ...imageInfo(), scales: [] })],
    ["scales", () => ({ ...imageInfo(), scales: {} })],
  ])("reports %s for a bad top-level field", (path, make) => {
    const e = errorOf(make());
    expect(e.code).toBe("invalid_info");
    expect(e.path).toBe(path);
  });

  const withScale = (i: number, patch: Record<string, unknown>, base: () => { scales: object[] } = imageInfo) => {
    const info = base();
    info.scales[i] = { ...info.scales[i], ...patch };
    return info;
  };

  it.each([
    ["scales[1].chunk_sizes[0][2]", () => withScale(1, { chunk_sizes: [[64, 64, -1]] })],
    ["scales[1].chunk_sizes[1][0]", () => withScale(1, { chunk_sizes: [[64, 64, 1], [2.5, 1, 1]] })],
    ["scales[1].chunk_sizes[0]", () => withScale(1, { chunk_sizes: [[64, 64]] })],
    ["scales[0].size[1]", () => withScale(0, { size: [1, "2", 3] })],
    ["scales[0].resolution[2]", () => withScale(0, { resolution: [1, 1, 0] })],
    ["scales[0].voxel_offset[0]", () => withScale(0, { voxel_offset: [0.5, 0, 0] })],
    ["scales[0].key", () => withScale(0, { key: "../escape" })],
    ["scales[0].key", () => withScale(0, { key: "/abs" })],
    ["scales[1].key", () => withScale(1, { key: "5_5_45" })],
    ["scales[0].encoding", () => withScale(0, { encoding: "png" })],
    ["scales[0].encoding", () => withScale(0, { encoding: "compressed_segmentation", compressed_segmentation_block_size: [8, 8, 8] })],
    ["scales[0].compressed_segmentation_block_size", () => withScale(0, { compressed_segmentation_block_size: undefined }, segInfo)],
    ["scales[0].compressed_segmentation_block_size[1]", () => withScale(0, { compressed_segmentation_block_size: [8, 0, 8] }, segInfo)],
    ["scales[1].encoding", () => withScale(1, { encoding: "jpeg" }, segInfo)],
    ["scales[1].chunk_sizes[0]", () => withScale(1, { chunk_sizes: [[64, 2048, 64]] })],
    ["scales[0].jpeg_quality", () => withScale(0, { jpeg_quality: 101 }, rgbInfo)],
  ])("reports %s", (path, make) => {
    expect(errorOf(make()).path).toBe(path);
  });

  it("rejects jpeg with 2 channels at the encoding", () => {
    expect(errorOf({ ...rgbInfo(), num_channels: 2 }).path).toBe("scales[0].encoding");
  });
});

/** All paths of a JSON value in validateInfo's notation, with a getter/setter for each. */
function paths(value: unknown, path = "$"): string[] {
  const out = [path];
  if (Array.isArray(value)) value.forEach((v, i) => out.push(...paths(v, `${path}[${i}]`)));
  else if (typeof value === "object" && value !== null) {
    for (const [k, v] of Object.entries(value)) out.push(...paths(v, path === "$" ? k : `${path}.${k}`));
  }
  return out;
}

function parsePath(path: string): (string | number)[] {
  if (path === "$") return [];
  return [...path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)].map((m) => (m[2] !== undefined ? Number(m[2]) : m[1]));
}

type Json = Record<string | number, unknown>;

function mutate(root: Json, path: string, rand: () => number): Json | unknown {
  const steps = parsePath(path);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const replacement = pick<unknown>([
    "x", "", null, true, [], {}, -1, 0, 0.5, 1e300, Number.NaN, Number.POSITIVE_INFINITY, [1, 2], [1, 2, 3, 4], "raw",
    "../up", "jpeg", "compressed_segmentation", "uint64", "float32", 2, 3, "DELETE", "DELETE",
  ]);
  if (steps.length === 0) return replacement === "DELETE" ? undefined : replacement;
  let parent: Json = root;
  for (const s of steps.slice(0, -1)) parent = parent[s] as Json;
  const last = steps[steps.length - 1];
  if (replacement === "DELETE") {
    if (Array.isArray(parent) && typeof last === "number") parent.splice(last, 1);
    else delete parent[last];
  } else parent[last] = replacement;
  return root;
}

/**
 * Whether an error at `errPath` is a fair report of a change at `mutPath`: the same place, an enclosing or
 * enclosed one, or one of the cross-field rules (encoding vs data_type / channels, duplicate keys).
 */
function related(errPath: string, mutPath: string): boolean {
  const within = (a: string, b: string) => a === b || a.startsWith(`${b}.`) || a.startsWith(`${b}[`) || b === "$";
  if (within(errPath, mutPath) || within(mutPath, errPath)) return true;
  const crossField = ["data_type", "num_channels", "type"].includes(mutPath) || /^scales\[\d+\]/.test(mutPath);
  return crossField && /^scales\[\d+\]\.(encoding|key|chunk_sizes(\[\d+\])?|compressed_segmentation_block_size)$/.test(errPath);
}

describe("validateInfo on seeded mutations", () => {
  it("throws only PrecomputedError('invalid_info') with a well-formed path, on >= 100 invalid mutants", () => {
    const rand = mulberry32(20240611);
    const bases = [imageInfo, segInfo, rgbInfo];
    const pathFormat = /^(\$|@type|[a-z_]+)((\[\d+\])+|\.[a-z_]+)*$/;
    let invalid = 0;
    let trials = 0;
    while (invalid < 150 && trials < 2000) {
      trials++;
      const base = bases[trials % bases.length]();
      const all = paths(base);
      const target = all[Math.floor(rand() * all.length)];
      let mutant = mutate(base as unknown as Json, target, rand);
      const single = rand() >= 0.3;
      if (!single) mutant = mutate(mutant as Json, paths(mutant)[Math.floor(rand() * paths(mutant).length)], rand);
      let outcome: VolumeInfo | PrecomputedError;
      try {
        outcome = validateInfo(mutant);
      } catch (e) {
        expect(e, `mutating ${target}`).toBeInstanceOf(PrecomputedError);
        outcome = e as PrecomputedError;
      }
      if (outcome instanceof PrecomputedError) {
        invalid++;
        expect(outcome.code).toBe("invalid_info");
        expect(outcome.path, `mutating ${target}: ${outcome.message}`).toMatch(pathFormat);
        expect(outcome.message.startsWith(`${outcome.path}: `)).toBe(true);
        if (single) expect(related(outcome.path ?? "", target), `mutating ${target}: ${outcome.message}`).toBe(true);
      } else {
        // A mutant that passes must still satisfy the invariants validation promises.
        for (const s of outcome.scales) {
          expect([...s.size, ...s.resolution, ...s.chunk_sizes.flat()].every((n) => n > 0)).toBe(true);
          expect(s.key.split("/").includes("..")).toBe(false);
        }
      }
    }
    expect(invalid).toBeGreaterThanOrEqual(100);
  });

  it("a single mutated number inside a scale is reported at exactly that path", () => {
    const rand = mulberry32(7);
    for (let i = 0; i < 120; i++) {
      const info = segInfo();
      const s = Math.floor(rand() * 2);
      const field = (["size", "resolution", "chunk_sizes"] as const)[i % 3];
      const axis = Math.floor(rand() * 3);
      const bad = [-1, 0, "7", null, Number.NaN][i % 5];
      let path: string;
      if (field === "chunk_sizes") {
        (info.scales[s].chunk_sizes[0] as unknown[])[axis] = bad;
        path = `scales[${s}].chunk_sizes[0][${axis}]`;
      } else {
        (info.scales[s][field] as unknown[])[axis] = bad;
        path = `scales[${s}].${field}[${axis}]`;
      }
      expect(errorOf(info).path).toBe(path);
    }
  });
});

describe("chunk keys and grid", () => {
  const scale = { key: "8_8_40", size: [100, 50, 7] as [number, number, number], voxel_offset: [10, 0, -3] as [number, number, number], chunk_sizes: [[64, 64, 4] as [number, number, number]] };

  it("formats and parses keys", () => {
    const key = chunkKey(scale, [10, 0, -3], [74, 50, 1]);
    expect(key).toBe("8_8_40/10-74_0-50_-3-1");
    expect(parseChunkKey(key)).toEqual({ scaleKey: "8_8_40", start: [10, 0, -3], end: [74, 50, 1] });
    expect(parseChunkKey("a/b/0-1_2-3_4-5").scaleKey).toBe("a/b");
  });

  it.each(["0-1_2-3_4-5", "s/0-1_2-3", "s/1-0_2-3_4-5", "s/0-1_2-3_4-5x", "s/a-b_c-d_e-f"])("rejects %s", (k) => {
    expect(() => parseChunkKey(k)).toThrow(expect.objectContaining({ code: "invalid_key" }) as unknown as Error);
  });

  it("tiles the volume exactly, clipping at the upper edge", () => {
    const boxes = [...chunkGrid(scale)];
    expect(boxes).toHaveLength(2 * 1 * 2);
    expect(boxes[0]).toEqual({ start: [10, 0, -3], end: [74, 50, 1] });
    expect(boxes[3]).toEqual({ start: [74, 0, 1], end: [110, 50, 4] });
    const seen = new Set<string>();
    for (const b of boxes) {
      for (let z = b.start[2]; z < b.end[2]; z++)
        for (let y = b.start[1]; y < b.end[1]; y++)
          for (let x = b.start[0]; x < b.end[0]; x++) {
            const k = `${x},${y},${z}`;
            expect(seen.has(k)).toBe(false);
            seen.add(k);
          }
    }
    expect(seen.size).toBe(100 * 50 * 7);
  });
});
