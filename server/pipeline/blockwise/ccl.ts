/**
 * Blockwise 26-connected CCL as independent tasks (what label-blocks.ts does in one sequential sweep), so that
 * blocks can be labelled on any machine:
 * 1. `blockwise.ccl` per block: local CCL (labelBlock), writes a summary (class, voxel count and first voxel of
 *    each local component) and the block's six boundary planes (local ids + classes) to the work store;
 * 2. the coordinator reads the summaries in block order, appends them to ProvisionalComponents (provisional id
 *    = block offset + local id) and writes the offsets;
 * 3. `blockwise.stitch` per block: its three low faces against the neighbouring blocks' high faces (windows one
 *    voxel wider, so edge and corner neighbours join too: the same windows label-blocks.ts uses), writes the
 *    provisional id pairs to union;
 * 4. the coordinator unions every pair and finalizes: final ids numbered by first voxel in raster order, the
 *    whole-volume numbering, whatever order the tasks ran in; it writes provisional -> final (Uint32);
 * 5. `blockwise.relabel` per block: recomputes the local CCL (deterministic), maps local -> final with one range
 *    read of that table, writes the label block and the block's share of the instance statistics.
 */
import type { Vec3 } from "../../../precomputed/array.js";
import type { Storage } from "../../../precomputed/storage.js";
import { PipelineError } from "../errors.js";
import { blockFaceEquivalences, labelBlock, ProvisionalComponents, type BlockComponents, type FacePlane } from "../label-blocks.js";
import { arrayOf, packArrays, unpackArrays } from "./pack.js";
import type { BlockStats } from "./stats.js";
import { WorkVolume, type WorkVolumeSpec } from "./work-store.js";

export interface CclKeys {
  summary: (b: string) => string;
  faces: (b: string) => string;
  pairs: (b: string) => string;
  stats: (b: string) => string;
  offsets: string;
  final: string;
  classOf: string;
}

/** The work-store keys of one CCL run under `prefix`: several runs (segment/tasks.ts's cleanup passes) can share a store. */
export function cclKeys(prefix: string): CclKeys {
  return {
    summary: (b) => `${prefix}/summary/${b}`,
    faces: (b) => `${prefix}/faces/${b}`,
    pairs: (b) => `${prefix}/pairs/${b}`,
    stats: (b) => `${prefix}/stats/${b}`,
    offsets: `${prefix}/offsets`,
    final: `${prefix}/final`,
    classOf: `${prefix}/class-of`,
  };
}

export const CCL_KEYS: CclKeys = cclKeys("ccl");

export function gridOf(spec: Pick<WorkVolumeSpec, "shape" | "blockShape">): Vec3 {
  return [0, 1, 2].map((d) => Math.ceil(spec.shape[d] / spec.blockShape[d])) as Vec3;
}

/** Block grid position of a block origin. */
export function blockIndex(spec: Pick<WorkVolumeSpec, "blockShape">, origin: readonly number[]): Vec3 {
  return [0, 1, 2].map((d) => Math.floor(origin[d] / spec.blockShape[d])) as Vec3;
}

export const blockName = (ijk: readonly number[]): string => `${ijk[2]}_${ijk[1]}_${ijk[0]}`;

function rasterIndex(grid: Vec3, ijk: readonly number[]): number {
  return ijk[0] + grid[0] * (ijk[1] + grid[1] * ijk[2]);
}

async function need(storage: Storage, key: string): Promise<Uint8Array> {
  const bytes = await storage.get(key);
  if (!bytes) throw new PipelineError("stage_failed", "work object missing (did the previous stage finish?)", key);
  return bytes;
}

const FACES = ["z0", "z1", "y0", "y1", "x0", "x1"] as const;
type FaceName = (typeof FACES)[number];

/** `blockwise.ccl`: local labels of one block, summary and boundary planes into the work store. */
export async function cclBlockTask(work: Storage, classesSpec: WorkVolumeSpec, origin: Vec3, extent: Vec3, keys: CclKeys = CCL_KEYS): Promise<string[]> {
  const classes = await new WorkVolume<Uint8Array>(work, classesSpec).readBox(origin, extent);
  const block = labelBlock(classes, extent);
  const name = blockName(blockIndex(classesSpec, origin));
  const [sx, sy, sz] = extent;
  const sxy = sx * sy;
  const planes: Record<string, Uint32Array | Uint8Array> = {};
  const take = (face: FaceName, w: number, h: number, at: (u: number, v: number) => number): void => {
    const ids = new Uint32Array(w * h);
    const cls = new Uint8Array(w * h);
    for (let v = 0; v < h; v++) {
      for (let u = 0; u < w; u++) {
        const i = at(u, v);
        ids[u + w * v] = block.labels[i];
        cls[u + w * v] = block.labels[i] === 0 ? 0 : classes[i];
      }
    }
    planes[`${face}.ids`] = ids;
    planes[`${face}.cls`] = cls;
  };
  take("z0", sx, sy, (u, v) => u + sx * v);
  take("z1", sx, sy, (u, v) => u + sx * v + sxy * (sz - 1));
  take("y0", sx, sz, (u, v) => u + sxy * v);
  take("y1", sx, sz, (u, v) => u + sx * (sy - 1) + sxy * v);
  take("x0", sy, sz, (u, v) => sx * u + sxy * v);
  take("x1", sy, sz, (u, v) => sx - 1 + sx * u + sxy * v);
  const summary = packArrays({ classOf: block.classOf, voxels: block.voxels, first: block.firstVoxel }, { count: block.count });
  await work.put(keys.summary(name), summary);
  await work.put(keys.faces(name), packArrays(planes));
  return [keys.summary(name), keys.faces(name)];
}

/** Coordinator, after every ccl task: provisional parts in block order, offsets written for the stitch tasks. */
export async function gatherParts(work: Storage, spec: WorkVolumeSpec, keys: CclKeys = CCL_KEYS): Promise<{ parts: ProvisionalComponents; offsets: Float64Array }> {
  const grid = gridOf(spec);
  const parts = new ProvisionalComponents();
  const offsets = new Float64Array(grid[0] * grid[1] * grid[2] + 1);
  let b = 0;
  for (let k = 0; k < grid[2]; k++) {
    for (let j = 0; j < grid[1]; j++) {
      for (let i = 0; i < grid[0]; i++, b++) {
        const key = keys.summary(blockName([i, j, k]));
        const u = unpackArrays(await need(work, key), key);
        const count = u.meta.count;
        const origin: Vec3 = [i * spec.blockShape[0], j * spec.blockShape[1], k * spec.blockShape[2]];
        const extent = [0, 1, 2].map((d) => Math.min(spec.blockShape[d], spec.shape[d] - origin[d])) as Vec3;
        const block = {
          labels: new Uint32Array(0),
          count,
          classOf: arrayOf(u, "classOf", Uint8Array, key),
          voxels: arrayOf(u, "voxels", Float64Array, key),
          firstVoxel: arrayOf(u, "first", Uint32Array, key),
        };
        offsets[b] = parts.addBlock(block, origin, extent, spec.shape);
      }
    }
  }
  offsets[b] = parts.size;
  await work.put(keys.offsets, packArrays({ offsets }));
  return { parts, offsets };
}

async function readOffsets(work: Storage, keys: CclKeys): Promise<Float64Array> {
  return arrayOf(unpackArrays(await need(work, keys.offsets), keys.offsets), "offsets", Float64Array, keys.offsets);
}

interface Faces {
  get(face: FaceName): { ids: Uint32Array; cls: Uint8Array };
}

async function readFaces(work: Storage, name: string, keys: CclKeys): Promise<Faces> {
  const key = keys.faces(name);
  const u = unpackArrays(await need(work, key), key);
  return { get: (face) => ({ ids: arrayOf(u, `${face}.ids`, Uint32Array, key), cls: arrayOf(u, `${face}.cls`, Uint8Array, key) }) };
}

/** `blockwise.stitch`: provisional id pairs joining this block to the blocks before it in raster order. */
export async function stitchBlockTask(work: Storage, spec: WorkVolumeSpec, origin: Vec3, extent: Vec3, keys: CclKeys = CCL_KEYS): Promise<string[]> {
  const grid = gridOf(spec);
  const offsets = await readOffsets(work, keys);
  const ijk = blockIndex(spec, origin);
  const own = await readFaces(work, blockName(ijk), keys);
  const offsetOf = (b: readonly number[]): number => offsets[rasterIndex(grid, b)];
  const [nx, ny] = spec.shape;
  const [ox, oy, oz] = origin;
  const [sx, sy, sz] = extent;
  const [bx, by] = spec.blockShape;
  const near = (face: FaceName, w: number, h: number): FacePlane => {
    const { ids, cls } = own.get(face);
    const off = offsetOf(ijk);
    return { labels: ids.map((l) => (l === 0 ? 0 : l + off)), classes: cls, width: w, height: h };
  };
  /** Far window [u0, u1) x [v0, v1) pasted from neighbour faces; u is x for the z and y faces. */
  const far = async (w: number, h: number, sources: { b: Vec3; face: FaceName; uAt: number; vAt: number; fw: number; fh: number }[]): Promise<FacePlane> => {
    const labels = new Uint32Array(w * h);
    const classes = new Uint8Array(w * h);
    for (const s of sources) {
      const f = (await readFaces(work, blockName(s.b), keys)).get(s.face);
      const off = offsetOf(s.b);
      // (uAt, vAt): where the neighbour face's (0, 0) lies in the window.
      for (let v = Math.max(0, -s.vAt); v < s.fh && v + s.vAt < h; v++) {
        for (let u = Math.max(0, -s.uAt); u < s.fw && u + s.uAt < w; u++) {
          const l = f.ids[u + s.fw * v];
          if (l === 0) continue;
          labels[u + s.uAt + w * (v + s.vAt)] = l + off;
          classes[u + s.uAt + w * (v + s.vAt)] = f.cls[u + s.fw * v];
        }
      }
    }
    return { labels, classes, width: w, height: h };
  };
  const extentOf = (b: readonly number[]): Vec3 => [0, 1, 2].map((d) => Math.min(spec.blockShape[d], spec.shape[d] - b[d] * spec.blockShape[d])) as Vec3;
  const pairs: Uint32Array[] = [];
  const x0 = Math.max(0, ox - 1);
  const x1 = Math.min(nx, ox + sx + 1);
  const iRange = [Math.floor(x0 / bx), Math.floor((x1 - 1) / bx)];
  if (ijk[2] > 0) {
    const y0 = Math.max(0, oy - 1);
    const y1 = Math.min(ny, oy + sy + 1);
    const sources = [];
    for (let j = Math.floor(y0 / by); j <= Math.floor((y1 - 1) / by); j++) {
      for (let i = iRange[0]; i <= iRange[1]; i++) {
        const b: Vec3 = [i, j, ijk[2] - 1];
        const e = extentOf(b);
        sources.push({ b, face: "z1" as const, uAt: i * bx - x0, vAt: j * by - y0, fw: e[0], fh: e[1] });
      }
    }
    pairs.push(blockFaceEquivalences(near("z0", sx, sy), await far(x1 - x0, y1 - y0, sources), [x0 - ox, y0 - oy]));
  }
  if (ijk[1] > 0) {
    const sources = [];
    for (let i = iRange[0]; i <= iRange[1]; i++) {
      const b: Vec3 = [i, ijk[1] - 1, ijk[2]];
      const e = extentOf(b);
      sources.push({ b, face: "y1" as const, uAt: i * bx - x0, vAt: 0, fw: e[0], fh: e[2] });
    }
    pairs.push(blockFaceEquivalences(near("y0", sx, sz), await far(x1 - x0, sz, sources), [x0 - ox, 0]));
  }
  if (ijk[0] > 0) {
    const b: Vec3 = [ijk[0] - 1, ijk[1], ijk[2]];
    pairs.push(blockFaceEquivalences(near("x0", sy, sz), await far(sy, sz, [{ b, face: "x1", uAt: 0, vAt: 0, fw: sy, fh: sz }]), [0, 0]));
  }
  const all = new Uint32Array(pairs.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of pairs) {
    all.set(p, at);
    at += p.length;
  }
  const key = keys.pairs(blockName(ijk));
  await work.put(key, packArrays({ pairs: all }));
  return [key];
}

/** Coordinator, after every stitch task: unions, final ids, provisional -> final and class-of written. */
export async function finishLabels(
  work: Storage,
  spec: WorkVolumeSpec,
  parts: ProvisionalComponents,
  keys: CclKeys = CCL_KEYS,
): Promise<{ count: number; classOf: Uint8Array; voxels: Float64Array }> {
  const grid = gridOf(spec);
  for (let k = 0; k < grid[2]; k++) {
    for (let j = 0; j < grid[1]; j++) {
      for (let i = 0; i < grid[0]; i++) {
        const key = keys.pairs(blockName([i, j, k]));
        parts.unionPairs(arrayOf(unpackArrays(await need(work, key), key), "pairs", Uint32Array, key));
      }
    }
  }
  const { finalOf, count, classOf, voxels } = parts.finalize();
  await work.put(keys.final, new Uint8Array(finalOf.buffer, finalOf.byteOffset, finalOf.byteLength));
  await work.put(keys.classOf, classOf);
  return { count, classOf, voxels };
}

/**
 * A block's components with final ids: recomputes the local CCL of `classes` (the block at `origin`, deterministic,
 * so the same local ids as its ccl task) and reads its slice of the provisional -> final table. finalOf[l - 1] is
 * local id l's final id.
 */
export async function finalIdsOfBlock(
  work: Storage,
  classesSpec: WorkVolumeSpec,
  classes: Uint8Array,
  origin: Vec3,
  extent: Vec3,
  keys: CclKeys = CCL_KEYS,
): Promise<{ block: BlockComponents; finalOf: Uint32Array }> {
  const grid = gridOf(classesSpec);
  const offsets = await readOffsets(work, keys);
  const b = rasterIndex(grid, blockIndex(classesSpec, origin));
  const block = labelBlock(classes, extent);
  const offset = offsets[b];
  if (block.count !== offsets[b + 1] - offset) {
    throw new PipelineError("stage_failed", `block at [${origin}] changed between passes: ${block.count} components, first pass found ${offsets[b + 1] - offset}`);
  }
  let finalOf = new Uint32Array(0);
  if (block.count > 0) {
    const start = (offset + 1) * 4;
    const end = (offset + block.count + 1) * 4;
    const bytes = work.getRange ? await work.getRange(keys.final, start, end) : (await work.get(keys.final))?.slice(start, end);
    if (!bytes || bytes.length !== end - start) throw new PipelineError("stage_failed", "provisional -> final table is missing or short", keys.final);
    finalOf = new Uint32Array(bytes.length / 4);
    new Uint8Array(finalOf.buffer).set(bytes);
  }
  return { block, finalOf };
}

/** `blockwise.relabel`: the block's final labels into the label volume, and its share of the statistics. */
export async function relabelBlockTask(work: Storage, classesSpec: WorkVolumeSpec, labelsSpec: WorkVolumeSpec, origin: Vec3, extent: Vec3): Promise<string[]> {
  const ijk = blockIndex(classesSpec, origin);
  const classes = await new WorkVolume<Uint8Array>(work, classesSpec).readBox(origin, extent);
  const { block, finalOf } = await finalIdsOfBlock(work, classesSpec, classes, origin, extent);
  // Per local component: final id, voxels, box, coordinate sums (integers: exact in float64 in any order).
  const n = block.count + 1;
  const voxels = new Float64Array(n);
  const bbox = new Int32Array(6 * n);
  const sums = new Float64Array(3 * n);
  for (let l = 1; l < n; l++) bbox.set([2 ** 31 - 1, 2 ** 31 - 1, 2 ** 31 - 1, 0, 0, 0], 6 * l);
  const labels = block.labels;
  let i = 0;
  for (let z = origin[2]; z < origin[2] + extent[2]; z++) {
    for (let y = origin[1]; y < origin[1] + extent[1]; y++) {
      for (let x = origin[0]; x < origin[0] + extent[0]; x++, i++) {
        const l = labels[i];
        if (l === 0) continue;
        labels[i] = finalOf[l - 1];
        voxels[l]++;
        const o = 6 * l;
        if (x < bbox[o]) bbox[o] = x;
        if (y < bbox[o + 1]) bbox[o + 1] = y;
        if (z < bbox[o + 2]) bbox[o + 2] = z;
        if (x >= bbox[o + 3]) bbox[o + 3] = x + 1;
        if (y >= bbox[o + 4]) bbox[o + 4] = y + 1;
        if (z >= bbox[o + 5]) bbox[o + 5] = z + 1;
        sums[3 * l] += x;
        sums[3 * l + 1] += y;
        sums[3 * l + 2] += z;
      }
    }
  }
  await new WorkVolume<Uint32Array>(work, labelsSpec).writeBlock(origin, labels);
  const ids = new Uint32Array(n);
  ids.set(finalOf, 1);
  const key = CCL_KEYS.stats(blockName(ijk));
  await work.put(key, packArrays({ ids, voxels, bbox, sums }));
  return [key];
}

/** Coordinator, after every relabel task: the blocks' statistics summed in block order. */
export async function gatherStats(work: Storage, spec: WorkVolumeSpec, stats: BlockStats): Promise<void> {
  const grid = gridOf(spec);
  for (let k = 0; k < grid[2]; k++) {
    for (let j = 0; j < grid[1]; j++) {
      for (let i = 0; i < grid[0]; i++) {
        const key = CCL_KEYS.stats(blockName([i, j, k]));
        const u = unpackArrays(await need(work, key), key);
        stats.addPartial(arrayOf(u, "ids", Uint32Array, key), arrayOf(u, "voxels", Float64Array, key), arrayOf(u, "bbox", Int32Array, key), arrayOf(u, "sums", Float64Array, key));
      }
    }
  }
}
