/**
 * Multiscale precomputed layers written by tasks. A layer's scales are built in stages; a stage takes scale s
 * from a lossless work volume and produces scales s+1 .. s+L (and scale 0 itself when s = 0) for one block per
 * task (`blockwise.pyramid`). Blocks are aligned to chunk x cumulative factor at every level they produce, so a
 * block downsamples alone to the same voxels as the whole volume would (mean and mode look only inside their
 * step-sized cells) and every output chunk belongs to exactly one task. The last level of a stage that feeds
 * another is kept in the work store (lossless, unlike JPEG chunks) for the next stage, whose tasks read it.
 * L is as large as keeps a block within a quarter of the budget.
 *
 * Sharded scales (large layers, see shardingFor): a pyramid task cannot own a shard (its chunks are spread by
 * Morton code), so it leaves its encoded chunks in the work store and one `blockwise.shard` task per shard
 * gathers them and writes the shard file once (one writer per shard, one atomic put).
 */
import type { Vec3, Volume } from "../../../precomputed/array.js";
import { encodeChunk } from "../../../precomputed/encodings/index.js";
import { boxesIn, chunkGrid, sub, type ScaleInfo, type VolumeInfo } from "../../../precomputed/info.js";
import { downsampleMean, downsampleMode } from "../../../precomputed/multiscale.js";
import { locateChunk, writeShards, type ShardingSpec } from "../../../precomputed/sharding.js";
import { volumeChunkId } from "../../../precomputed/sharding-volume.js";
import type { Storage } from "../../../precomputed/storage.js";
import { writeRegion } from "../../../precomputed/volume-io.js";
import { cropVolume } from "../edt.js";
import { PipelineError } from "../errors.js";
import type { StoreArray, StoreType } from "./store.js";
import { eachLimited, WorkVolume, type WorkVolumeSpec } from "./work-store.js";

export interface PyramidStage {
  sourceScale: number;
  levels: number;
  /** Task block at the source scale. */
  block: Vec3;
  source: WorkVolumeSpec;
  /** Where the stage's last level goes for the next stage. */
  keep?: WorkVolumeSpec;
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
const lcm = (a: number, b: number): number => (a / gcd(a, b)) * b;

function stepBetween(info: VolumeInfo, i: number): Vec3 {
  const a = info.scales[i - 1];
  const b = info.scales[i];
  return [0, 1, 2].map((d) => Math.round(b.resolution[d] / a.resolution[d])) as Vec3;
}

function factorOf(info: VolumeInfo, from: number, to: number): Vec3 {
  let f: Vec3 = [1, 1, 1];
  for (let i = from + 1; i <= to; i++) {
    const s = stepBetween(info, i);
    f = f.map((v, d) => v * s[d]) as Vec3;
  }
  return f;
}

/** Block alignment at scale `from` for writing scales from..from+levels as whole chunks. */
function alignment(info: VolumeInfo, from: number, levels: number): Vec3 {
  const align: Vec3 = [...info.scales[from].chunk_sizes[0]];
  for (let i = from + 1; i <= from + levels; i++) {
    const f = factorOf(info, from, i);
    const chunk = info.scales[i].chunk_sizes[0];
    for (let d = 0; d < 3; d++) align[d] = lcm(align[d], chunk[d] * f[d]);
  }
  return align;
}

const vox = (v: readonly number[]): number => v[0] * v[1] * v[2];

/**
 * Stages for a layer whose scale 0 is the work volume `source`: a name (stored in the first stage's blocks) or an
 * existing volume's spec (its blocks and codec). Blocks hold at most a quarter of the budget
 * where the alignment allows (it needs at least one chunk x one step per axis).
 */
export function planPyramid(info: VolumeInfo, source: string | WorkVolumeSpec, layerName: string, budget: number): PyramidStage[] {
  const n = info.scales.length;
  const stages: PyramidStage[] = [];
  const limit = Math.max(1, Math.floor(budget / 4));
  let s = 0;
  const sourceName = typeof source === "string" ? source : source.name;
  let src: WorkVolumeSpec | undefined = typeof source === "string" ? undefined : { ...source };
  do {
    let levels = Math.min(1, n - 1 - s);
    while (s + levels + 1 <= n - 1 && vox(alignment(info, s, levels + 1)) <= limit) levels++;
    const align = alignment(info, s, levels);
    const size = info.scales[s].size;
    const block: Vec3 = [...align];
    // Grow in x and y (then z) by whole alignments while it fits and the volume is larger.
    for (let grew = true; grew; ) {
      grew = false;
      for (const d of [0, 1, 2]) {
        const next = [...block];
        next[d] += align[d];
        if (block[d] < size[d] && vox(next) <= limit) {
          block[d] = next[d];
          grew = true;
        }
      }
    }
    const last = s + levels;
    const f = factorOf(info, s, last);
    const keep: WorkVolumeSpec | undefined =
      last < n - 1 ? { name: `pyramid/${layerName}/${info.scales[last].key}`, shape: [...info.scales[last].size], blockShape: block.map((b, d) => b / f[d]) as Vec3, type: info.data_type as StoreType } : undefined;
    // Without a given source block shape, scale 0 is stored in the first stage's blocks (one read per task).
    src ??= { name: sourceName, shape: [...info.scales[0].size], blockShape: [...block], type: info.data_type as StoreType };
    stages.push({ sourceScale: s, levels, block, source: src, keep });
    if (!keep) break;
    src = keep;
    s = last;
  } while (s < n - 1);
  return stages;
}

/** Keys of the encoded chunks a pyramid task leaves for the shard tasks of a sharded scale. */
export const shardSourceKey = (layerName: string, scale: ScaleInfo, chunkId: bigint): string => `shard-src/${layerName}/${scale.key}/${chunkId.toString(16)}`;

async function writeScale(layer: Storage, work: Storage, layerName: string, info: VolumeInfo, scaleIndex: number, at: Vec3, volume: Volume, gzip: boolean): Promise<void> {
  const scale = info.scales[scaleIndex];
  if (!scale.sharding) {
    await writeRegion(layer, "", info, scaleIndex, at, volume, { gzip });
    return;
  }
  const chunk = scale.chunk_sizes[0];
  const end = at.map((a, d) => a + volume.shape[d]) as Vec3;
  const encodeOptions = { blockSize: scale.compressed_segmentation_block_size, jpegQuality: scale.jpeg_quality };
  // Chunks are encoded one at a time (CPU) while up to PUTS_IN_FLIGHT earlier ones are being stored.
  await eachLimited([...boxesIn(at, end, chunk, scale.voxel_offset)], PUTS_IN_FLIGHT, async (box) => {
    const ext = sub(box.end, box.start);
    const part: Volume = { data: cropVolume(volume.data as StoreArray, volume.shape, sub(box.start, at), ext), shape: ext };
    await work.put(shardSourceKey(layerName, scale, volumeChunkId(scale, box.start)), await encodeChunk(scale.encoding, part, encodeOptions));
  });
}

/** Work-store requests of one task in flight at once: overlaps S3 round trips, bounds the encoded bytes held. */
const PUTS_IN_FLIGHT = 8;

export interface PyramidTaskInput {
  layer: Storage;
  work: Storage;
  layerName: string;
  info: VolumeInfo;
  stage: PyramidStage;
  gzip: boolean;
  start: Vec3;
  end: Vec3;
}

/** `blockwise.pyramid`: one block of a stage. */
export async function pyramidTask(t: PyramidTaskInput): Promise<void> {
  const { info, stage } = t;
  const s = stage.sourceScale;
  const extent = sub(t.end, t.start);
  const source = new WorkVolume(t.work, stage.source);
  let volume: Volume = { data: await source.readBox(t.start, extent), shape: extent };
  let rel: Vec3 = [...t.start];
  if (s === 0) await writeScale(t.layer, t.work, t.layerName, info, 0, [...t.start], volume, t.gzip);
  const downsample = info.type === "segmentation" ? downsampleMode : downsampleMean;
  for (let i = s + 1; i <= s + stage.levels; i++) {
    const step = stepBetween(info, i);
    volume = downsample(volume, step);
    rel = rel.map((r, d) => r / step[d]) as Vec3;
    if (!rel.every(Number.isInteger)) throw new PipelineError("stage_failed", `pyramid block [${t.start}] is not aligned to scale ${i}`);
    await writeScale(t.layer, t.work, t.layerName, info, i, rel, volume, t.gzip);
  }
  if (stage.keep) await new WorkVolume(t.work, stage.keep).writeBlock(rel, volume.data as StoreArray);
}

/** Shard numbers of a sharded scale that hold at least one chunk. */
export function shardsOf(scale: ScaleInfo & { sharding: ShardingSpec }): bigint[] {
  const seen = new Set<bigint>();
  for (const box of chunkGrid(scale)) seen.add(locateChunk(scale.sharding, volumeChunkId(scale, box.start)).shard);
  return [...seen].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** `blockwise.shard`: gathers a shard's chunks from the work store and writes the shard file. */
export async function shardTask(layer: Storage, work: Storage, layerName: string, info: VolumeInfo, scaleIndex: number, shard: bigint): Promise<string[]> {
  const scale = info.scales[scaleIndex];
  const spec = scale.sharding;
  if (!spec) throw new PipelineError("stage_failed", `scale ${scale.key} of ${layerName} is not sharded`);
  const ids: bigint[] = [];
  for (const box of chunkGrid(scale)) {
    const id = volumeChunkId(scale, box.start);
    if (locateChunk(spec, id).shard === shard) ids.push(id);
  }
  // In grid order whatever order the reads finish in (writeShards' bytes do not depend on it either).
  const entries: [bigint, Uint8Array][] = new Array(ids.length);
  await eachLimited(ids, PUTS_IN_FLIGHT, async (id, i) => {
    const key = shardSourceKey(layerName, scale, id);
    const bytes = await work.get(key);
    if (!bytes) throw new PipelineError("stage_failed", "encoded chunk missing (did every pyramid task finish?)", key);
    entries[i] = [id, bytes];
  });
  return writeShards(layer, scale.key, spec, entries);
}

/**
 * A sharding spec for a scale with more than `minChunks` chunks (else undefined): identity hash on the
 * compressed Morton code, 2^6 consecutive codes (a 4 x 4 x 4 brick of chunks) per minishard run, 2^3
 * minishards per shard and enough shard bits for about `chunksPerShard` chunks each; gzip indices, and gzip
 * data unless the chunks are JPEG.
 */
export function shardingFor(scale: ScaleInfo, minChunks: number, chunksPerShard = 512): ShardingSpec | undefined {
  const chunk = scale.chunk_sizes[0];
  const n = scale.size.reduce((p, s, d) => p * Math.ceil(s / chunk[d]), 1);
  if (n <= minChunks) return undefined;
  const preshift = 6;
  const minishard = 3;
  const totalBits = Math.ceil(Math.log2(Math.max(2, n)));
  const perShardBits = Math.ceil(Math.log2(Math.max(2, chunksPerShard)));
  const shardBits = Math.max(0, totalBits - Math.max(perShardBits, preshift + minishard));
  return {
    "@type": "neuroglancer_uint64_sharded_v1",
    preshift_bits: Math.min(preshift, Math.max(0, totalBits - minishard - shardBits)),
    hash: "identity",
    minishard_bits: minishard,
    shard_bits: shardBits,
    minishard_index_encoding: "gzip",
    data_encoding: scale.encoding === "jpeg" ? "raw" : "gzip",
  };
}

/** The info with every scale above `minChunks` chunks sharded. */
export function withSharding(info: VolumeInfo, minChunks: number): VolumeInfo {
  return { ...info, scales: info.scales.map((s) => {
    const sharding = shardingFor(s, minChunks);
    return sharding ? { ...s, sharding } : s;
  }) };
}
