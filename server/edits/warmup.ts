import type { Vec3 } from "../../precomputed/array.js";
import type { ScaleInfo, VolumeInfo } from "../../precomputed/info.js";
import type { Storage } from "../../precomputed/storage.js";
import type { InstanceRow } from "../pipeline/report.js";
import type { OpRecord } from "./db.js";
import { applyDiff, decodeDiff, encodeDiff, writeDiff } from "./diff.js";
import { rowFacts, SegmentSums } from "./measure.js";
import { parseBox, type Box6 } from "./ops.js";
import { planEdit, type EditRequest, type PlanState } from "./plan.js";
import { buildPyramid, knownBlocks, pyramidSteps, updatePyramid, writeChangedChunks } from "./pyramid.js";
import { writeTables } from "./table.js";

/**
 * Warming the edit kernels when the editor opens. The first edit used to run them cold (interpreted, then
 * optimized part way through): the commit path of a 10^8-voxel merge took 2.1 s CPU on the first edit and
 * 0.9-1.0 s on later ones. Here the same kernels (planning a merge, applying and checking a diff, the
 * pyramid and block index update, the rows from runs, the chunk encoder, the tables) run a few times on a small
 * private volume with the real layer's scales (same steps, chunk and block sizes, encoding), so V8 has
 * optimized them before the first real edit (splits commit through the same kernels). Nothing here reads or
 * writes the served folder: the labels are fresh arrays and the chunks go to a storage that keeps nothing.
 */

/** Scale 0 of the private volume: two slabs side by side with a blob across their gap, off the block grid. */
export const WARMUP_SHAPE: Vec3 = [128, 128, 32];
const ROUNDS = 4;

/** Accepts and drops every write: the encoder and the table writers run in full, nothing is kept. */
class NullStorage implements Storage {
  puts = 0;
  async get(): Promise<Uint8Array | undefined> {
    return undefined;
  }
  async put(): Promise<void> {
    this.puts++;
  }
  async list(): Promise<string[]> {
    return [];
  }
  async delete(): Promise<void> {}
}

/** The real layer's scales over a volume of `shape` (each scale's size from the steps, as the pyramid makes it). */
export function warmupInfo(info: VolumeInfo, shape: Vec3 = WARMUP_SHAPE): VolumeInfo {
  const steps = pyramidSteps(info);
  let size = shape;
  const scales: ScaleInfo[] = info.scales.map((s, i) => {
    if (i > 0) size = [0, 1, 2].map((d) => Math.ceil(size[d] / steps[i][d])) as Vec3;
    const { sharding: _sharding, ...rest } = s;
    return { ...rest, size, voxel_offset: [0, 0, 0] as Vec3, chunk_sizes: s.chunk_sizes.map((c) => [...c] as Vec3) };
  });
  return { ...info, scales };
}

function warmupLabels(shape: Vec3): Uint32Array {
  const [nx, ny, nz] = shape;
  const labels = new Uint32Array(nx * ny * nz);
  const half = nx >> 1;
  for (let z = 0; z < nz; z++)
    for (let y = 5; y < ny - 7; y++) {
      const row = nx * (y + ny * z);
      labels.fill(1, row + 5, row + half - 3);
      labels.fill(2, row + half + 3, row + nx - 9);
      // A blob of a third object across the gap: mixed blocks, ties in the modes, a label the edits leave.
      for (let x = half - 11; x < half + 11; x++) if ((x - half) ** 2 + (y - (ny >> 1)) ** 2 < 100 + 3 * ((z * 7) % 11)) labels[row + x] = 3;
    }
  return labels;
}

export interface WarmupResult {
  /** CPU ms the warm-up took. */
  cpuMs: number;
  /** Edits it ran (plan through chunks). */
  edits: number;
}

/**
 * Runs two merges and their undos ROUNDS times on the private volume, and checks that it ends where it began.
 * Throws only on a broken kernel.
 */
export async function warmEditKernels(info: VolumeInfo, voxelNm: Vec3 = info.scales[0].resolution, shape: Vec3 = WARMUP_SHAPE): Promise<WarmupResult> {
  const c0 = process.cpuUsage();
  const winfo = warmupInfo(info, shape);
  const original = warmupLabels(shape);
  const pyramid = buildPyramid(winfo, { data: original.slice(), shape });
  const labels = pyramid.levels[0].data;
  const sums = SegmentSums.scan(labels, shape);
  let rows = rowFacts(labels, shape, voxelNm, new Map([[1, "mito"], [2, "mito"], [3, "mito"]]), [0, 0, 0, shape[0], shape[1], shape[2]]);
  const storage = new NullStorage();
  const ops = new Map<number, OpRecord>();
  const diffs = new Map<number, Uint8Array>();
  const touched = new Map<number, number>();
  let version = 0;
  let maxId = 3;
  let edits = 0;
  const state = (): PlanState => ({
    labels,
    shape,
    voxelNm,
    version,
    maxId,
    classOf: (id) => rows.get(id)?.class,
    boxOf: (id) => parseBox(String(rows.get(id)?.bbox_voxels)) as Box6,
    lastTouched: (id) => touched.get(id) ?? 0,
    op: (id) => ops.get(id),
    lastUndoOf: () => undefined,
    diffOf: async (op) => decodeDiff(diffs.get(op.id) as Uint8Array),
  });
  // The editor's commit path (editor.ts applyEdit) without its files and log.
  const edit = async (req: EditRequest): Promise<OpRecord> => {
    const plan = await planEdit(state(), req);
    const affected = [...new Set([...plan.inputs, ...plan.outputs])];
    const classes = new Map(affected.map((id) => [id, rows.get(id)?.class ?? rows.get(plan.inputs[0])?.class ?? "unknown"]));
    if (plan.kind === "merge" || plan.kind === "split") writeDiff(labels, plan.diff.runs);
    else if (!applyDiff(labels, plan.diff.runs, "forward", knownBlocks(pyramid))) throw new Error(`warm-up: ${plan.kind} did not apply`);
    const changes = updatePyramid(pyramid, plan.diff.bbox, plan.diff.runs);
    const derived = sums.derive(labels, shape, voxelNm, classes, plan.diff.runs);
    sums.commit(derived.next);
    const next = new Map<number, InstanceRow>(rows);
    for (const id of affected) next.delete(id);
    for (const [id, row] of derived.rows) next.set(id, row);
    rows = next;
    await writeChangedChunks(storage, "segmentation", winfo, pyramid, changes, plan.diff.runs);
    await writeTables(storage, rows);
    version++;
    edits++;
    const op: OpRecord = { id: version, kind: plan.kind, user: "warm-up", time: "", base: req.base, version, params: plan.params, inputs: plan.inputs, outputs: plan.outputs.filter((id) => derived.rows.has(id)), maxId: plan.maxId, files: [], deleted: [] };
    ops.set(op.id, op);
    diffs.set(op.id, encodeDiff(plan.diff.runs));
    for (const id of [...op.inputs, ...op.outputs]) touched.set(id, version);
    maxId = plan.maxId;
    return op;
  };
  // Merges and their undos only: planning a split is bound by memory, not by the compiler, and a warmed split
  // planned slower (1.6-2.3 s vs 1.0-1.5 s CPU at 10^8 voxels: its flood optimized on small volumes), while
  // a split's commit path runs the same kernels as a merge's. The blob's merge gives mixed blocks and ties.
  for (let round = 0; round < ROUNDS; round++) {
    const slabs = await edit({ kind: "merge", base: version, segments: [1, 2] });
    await edit({ kind: "undo", base: version, operation: slabs.id });
    const blob = await edit({ kind: "merge", base: version, segments: [1, 3] });
    await edit({ kind: "undo", base: version, operation: blob.id });
  }
  for (let i = 0; i < original.length; i++) if (labels[i] !== original[i]) throw new Error("warm-up: the edits and their undos did not restore the volume");
  const used = process.cpuUsage(c0);
  return { cpuMs: (used.user + used.system) / 1000, edits };
}
