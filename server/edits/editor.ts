import { EventEmitter } from "node:events";
import { promises as fs } from "node:fs";
import * as path from "node:path";
import type { Vec3 } from "../../precomputed/array.js";
import { validateInfo, type VolumeInfo } from "../../precomputed/info.js";
import { readRegion } from "../../precomputed/volume-io.js";
import type { InstanceRow } from "../pipeline/report.js";
import { ApiError } from "../api/errors.js";
import { EditDb, type OpRecord, type ReviewRecord, type ReviewStatus } from "./db.js";
import { applyDiff, decodeDiff, encodeDiffAsync, writeDiff } from "./diff.js";
import { CONTACTS_PREFIX, mergeSites, organelleSites, readSites, writeVersionContacts } from "./contacts.js";
import type { ContactSite } from "../pipeline/contacts.js";
import { LocalStorage } from "../../precomputed/storage.js";
import { measureRow, SegmentSums, segmentMesh, writeMesh, type VoxelSums } from "./measure.js";
import { parseBox, type Box6 } from "./ops.js";
import { planEdit, type EditRequest, type PlanState } from "./plan.js";
import { CHUNK_WORKER_MIN_VOXELS, ChunkEncoder } from "./chunk-encoder.js";
import { warmUp } from "./warm-up.js";
import type { EncodedChunks } from "./chunk-job.js";
import { writeChangedChunks } from "./changed-chunks.js";
import { buildPyramid, knownBlocks, rebuildPyramid, updateCoarser, updatePyramid, updateScale0, type Pyramid } from "./pyramid.js";
import { CSV_KEY, DEFAULT_CONTACT_NM, MESH_PREFIX, rowsFromCsv, writeSummary, writeTables } from "./table.js";
import { RecordingStorage, removeUncommitted, VersionIndex, VersionStorage, versionDir } from "./versions.js";

export const SEG_PREFIX = "segmentation";
const DIFF_FILE = "diff.bin.gz";
const MEASURE_QUIET_MS = 250;
/** How long opening waits for the chunk worker to come up (it is used from the first edit after that). */
const WORKER_WAIT_MS = 5000;

export interface EditorOptions {
  /** Called after an edit's files are written and before its log row commits (crash tests stop here). */
  beforeCommit?: (version: number) => Promise<void>;
  /** Re-measure and re-mesh after edits (default true); the bench turns it off to time edits alone. */
  measure?: boolean;
  /**
   * Worker threads encoding scale 0's chunks beside the pyramid update: 0 none, 1 one; default one for
   * segmentations of at least CHUNK_WORKER_MIN_VOXELS voxels when the process may use workers.
   */
  chunkWorkers?: number;
  /**
   * Run the edit kernels once on a small box of the real labels when opening (warm-up.ts); default on for
   * segmentations of at least CHUNK_WORKER_MIN_VOXELS voxels, where a cold first edit is slow.
   */
  warmUp?: boolean;
  /** CPU ms of each phase of a committed edit (the bench prints them). */
  onPhases?: (kind: OpRecord["kind"], phases: Record<string, number>) => void;
}

/** CPU milliseconds since the last call, per named phase. */
class PhaseClock {
  readonly phases: Record<string, number> = {};
  private last = process.cpuUsage();
  lap(name: string): void {
    const u = process.cpuUsage(this.last);
    this.last = process.cpuUsage();
    this.phases[name] = (this.phases[name] ?? 0) + (u.user + u.system) / 1000;
  }
}

export interface EditResult {
  operation_id: number;
  version: number;
  kind: OpRecord["kind"];
  user: string;
  time: string;
  base: number;
  inputs: number[];
  outputs: number[];
  /** graphene's name for the segments an edit leaves. */
  new_root_ids: number[];
}

export interface EditorEvents {
  version: [EditResult];
  measured: [{ version: number; segments: number[] }];
  review: [ReviewRecord];
}

/**
 * The one writer of a served folder's segmentation. Holds the current labels (every scale) in memory, runs
 * edits one at a time (a promise queue), and commits each as: version folder written (chunks, tables, diff)
 * -> log row inserted. Nothing in memory changes until the row is in; a failure rolls the labels back.
 * Measuring (surfaces, skeletons, ER contacts, meshes) of edited segments follows when no edit is waiting.
 */
export class Editor extends EventEmitter<EditorEvents> {
  private tail: Promise<unknown> = Promise.resolve();
  private waiting = 0;
  private measureScheduled = false;
  private readonly dirty = new Set<number>();
  private readonly touched = new Map<number, number>();
  private readonly undos = new Map<number, OpRecord>();
  private opsById = new Map<number, OpRecord>();
  /** The contacts/ layer's sites at the last measurement (loaded on the first); null: the run has no layer. */
  private sites: ContactSite[] | null | undefined;
  version = 0;
  measuredVersion = 0;
  maxId = 0;

  private constructor(
    readonly root: string,
    readonly db: EditDb,
    readonly info: VolumeInfo,
    readonly index: VersionIndex,
    readonly pyramid: Pyramid,
    public rows: Map<number, InstanceRow>,
    private readonly options: EditorOptions,
    /** Every segment's exact voxel sums, in step with the labels: an edit's rows come from its runs. */
    private readonly sums: SegmentSums,
    private readonly encoder: ChunkEncoder | undefined,
  ) {
    super();
  }

  /** Whether an edit's scale-0 chunks are encoded on a worker thread, once that worker is up (tests, bench). */
  chunkWorkerUp(): Promise<boolean> {
    return this.encoder?.up ?? Promise.resolve(false);
  }

  get shape(): Vec3 {
    return this.pyramid.levels[0].shape;
  }
  get labels(): Uint32Array {
    return this.pyramid.levels[0].data;
  }
  get voxelNm(): Vec3 {
    return this.info.scales[0].resolution;
  }

  static async open(root: string, db: EditDb, options: EditorOptions = {}): Promise<Editor> {
    const ops = db.ops();
    const measures = db.measures();
    await removeUncommitted(root, new Set(ops.map((o) => o.version)), new Set(measures.map((m) => path.relative(root, versionDir(root, m.version, "measure", m.seq)))));
    const index = VersionIndex.fromLog(root, ops, measures);
    const version = ops.at(-1)?.version ?? 0;
    const storage = new VersionStorage(index, version);
    const infoBytes = await storage.get(`${SEG_PREFIX}/info`);
    if (!infoBytes) throw new ApiError(404, "no_segmentation", "this dataset has no segmentation layer to edit");
    const info = validateInfo(JSON.parse(new TextDecoder().decode(infoBytes)));
    if (info.data_type !== "uint32") throw new ApiError(500, "bad_dataset", "only uint32 segmentations are editable");
    const s0 = info.scales[0];
    const scale0 = await readRegion(storage, SEG_PREFIX, info, 0, s0.voxel_offset, [0, 1, 2].map((d) => s0.voxel_offset[d] + s0.size[d]) as Vec3);
    const csv = await storage.get(CSV_KEY);
    const rows = csv ? rowsFromCsv(new TextDecoder().decode(csv)) : new Map<number, InstanceRow>();
    const pyramid = buildPyramid(info, scale0 as { data: Uint32Array; shape: Vec3 });
    const encoder = ChunkEncoder.start(info, pyramid, options.chunkWorkers);
    const editor = new Editor(root, db, info, index, pyramid, rows, options, SegmentSums.scan(pyramid.levels[0].data, pyramid.levels[0].shape), encoder);
    editor.version = version;
    editor.maxId = ops.at(-1)?.maxId ?? Math.max(0, ...rows.keys(), maxOf(editor.labels));
    for (const op of ops) editor.noteOp(op);
    // Edits committed but not yet measured when the server stopped are measured now.
    const measuredAt = new Map<number, number>();
    for (const m of measures) for (const id of m.segments) measuredAt.set(id, m.version);
    for (const op of ops) for (const id of op.outputs) if ((measuredAt.get(id) ?? 0) < op.version && editor.rows.has(id)) editor.dirty.add(id);
    editor.measuredVersion = editor.dirty.size === 0 ? version : (measures.at(-1)?.version ?? 0);
    if (options.warmUp ?? pyramid.levels[0].data.length >= CHUNK_WORKER_MIN_VOXELS) {
      warmUp({ info, pyramid, sums: editor.sums, rows: editor.rows });
    }
    // The chunk worker loads beside the warm-up (~1 s); the first edit waits for it only this long at most.
    if (encoder) await Promise.race([encoder.up, new Promise((r) => setTimeout(r, WORKER_WAIT_MS).unref())]);
    editor.scheduleMeasure();
    return editor;
  }

  private noteOp(op: OpRecord): void {
    this.opsById.set(op.id, op);
    for (const id of [...op.inputs, ...op.outputs]) this.touched.set(id, op.version);
    if (op.kind === "undo") this.undos.set((op.params as { operation: number }).operation, op);
  }

  /** Runs `work` after everything queued before it: the single-writer discipline. */
  private enqueue<T>(work: () => Promise<T>): Promise<T> {
    const run = this.tail.then(work, work);
    this.tail = run.catch(() => undefined);
    return run;
  }

  edit(req: EditRequest, user: string): Promise<EditResult> {
    this.waiting++;
    return this.enqueue(async () => {
      this.waiting--;
      try {
        return await this.applyEdit(req, user);
      } finally {
        this.scheduleMeasure();
      }
    });
  }

  private planState(): PlanState {
    return {
      labels: this.labels,
      shape: this.shape,
      voxelNm: this.voxelNm,
      version: this.version,
      maxId: this.maxId,
      classOf: (id) => this.rows.get(id)?.class,
      boxOf: (id) => this.boxOf(id),
      lastTouched: (id) => this.touched.get(id) ?? 0,
      op: (id) => this.opsById.get(id),
      lastUndoOf: (id) => this.undos.get(id),
      diffOf: async (op) => decodeDiff(await fs.readFile(path.join(versionDir(this.root, op.version, "edit"), DIFF_FILE))),
      known: knownBlocks(this.pyramid),
    };
  }

  private boxOf(id: number): Box6 {
    const row = this.rows.get(id);
    const box = row && parseBox(row.bbox_voxels);
    if (!box) throw new ApiError(404, "unknown_segment", `no segment ${id} in version ${this.version}`);
    return box;
  }

  private async applyEdit(req: EditRequest, user: string): Promise<EditResult> {
    const clock = new PhaseClock();
    const plan = await planEdit(this.planState(), req);
    clock.lap("plan");
    if (plan.diff.runs.length === 0) throw new ApiError(400, "no_change", "the edit would change no voxel");
    const version = this.version + 1;
    const dir = versionDir(this.root, version, "edit");
    const affected = [...new Set([...plan.inputs, ...plan.outputs])];
    const classes = new Map(affected.map((id) => [id, this.rows.get(id)?.class ?? this.rows.get(plan.inputs[0])?.class ?? "unknown"]));
    // A merge or split was just planned from these labels (nothing runs between plan and apply in the
    // writer queue), so its old labels hold; undo and redo diffs come from the log and are checked.
    const fresh = plan.kind === "merge" || plan.kind === "split";
    const applied = fresh ? (writeDiff(this.labels, plan.diff.runs), true) : applyDiff(this.labels, plan.diff.runs, "forward", knownBlocks(this.pyramid));
    clock.lap("apply");
    if (!applied) {
      const what = plan.kind === "undo" || plan.kind === "redo" ? `voxels operation ${(plan.params as { operation: number }).operation} changed were changed since (already ${plan.kind === "undo" ? "undone" : "redone"}, or later operations to ${plan.kind} first)` : "the segmentation changed under this edit";
      throw new ApiError(409, "conflict", `${what}; the current version is ${this.version}`);
    }
    let op: OpRecord;
    let rows: Map<number, InstanceRow>;
    let gone: number[];
    let sums: Map<number, VoxelSums>;
    let pyramidDone = false;
    let early: Promise<EncodedChunks> | undefined;
    // The diff file gzips on libuv's threads from now on (awaited below; a rejection is handled there).
    const diffBytes = encodeDiffAsync(plan.diff.runs);
    diffBytes.catch(() => undefined);
    try {
      const segs0 = updateScale0(this.pyramid, plan.diff.runs);
      // Scale 0 is final now: its chunks encode on the worker while this thread does the coarser scales.
      early = this.encoder?.encodeScale0(segs0);
      const changes = updateCoarser(this.pyramid, plan.diff.bbox, segs0);
      pyramidDone = true;
      clock.lap("pyramid");
      const derived = this.sums.derive(this.labels, this.shape, this.voxelNm, classes, plan.diff.runs);
      const facts = derived.rows;
      sums = derived.next;
      clock.lap("rows");
      rows = new Map(this.rows);
      for (const id of affected) rows.delete(id);
      for (const [id, row] of facts) rows.set(id, row);
      gone = affected.filter((id) => !facts.has(id) && this.rows.has(id));
      await fs.rm(path.dirname(dir), { recursive: true, force: true });
      const storage = new RecordingStorage(dir);
      await writeChangedChunks(storage, SEG_PREFIX, this.info, this.pyramid, changes, plan.diff.runs, early && new Map([[0, early]]));
      clock.lap("chunks");
      await writeTables(storage, rows);
      await fs.writeFile(path.join(dir, DIFF_FILE), await diffBytes);
      clock.lap("tables+diff");
      await this.options.beforeCommit?.(version);
      op = this.db.commitOp({
        kind: plan.kind,
        user,
        time: new Date().toISOString(),
        base: req.base,
        version,
        params: plan.params,
        inputs: plan.inputs,
        outputs: plan.outputs.filter((id) => facts.has(id)),
        maxId: plan.maxId,
        files: [...storage.keys],
        deleted: gone.flatMap((id) => [`${MESH_PREFIX}/${id}`, `${MESH_PREFIX}/${id}.index`]),
      });
      clock.lap("commit");
    } catch (e) {
      // The worker reads scale 0 until its answer is in: roll back only after that.
      await early?.catch(() => undefined);
      applyDiff(this.labels, plan.diff.runs, "backward");
      // The pyramid's block indexes follow each update by counting: one cut short is rebuilt instead.
      if (pyramidDone) updatePyramid(this.pyramid, plan.diff.bbox, plan.diff.runs);
      else rebuildPyramid(this.pyramid);
      await fs.rm(path.dirname(dir), { recursive: true, force: true }).catch(() => undefined);
      throw e;
    }
    // Committed: only now does the rest of the server see the new version.
    this.sums.commit(sums);
    this.version = version;
    this.maxId = plan.maxId;
    this.rows = rows;
    this.index.add(version, "edit", op.files, op.deleted);
    this.noteOp(op);
    for (const id of op.outputs) this.dirty.add(id);
    for (const id of gone) this.dirty.delete(id);
    const result: EditResult = {
      operation_id: op.id,
      version,
      kind: op.kind,
      user,
      time: op.time,
      base: op.base,
      inputs: op.inputs,
      outputs: op.outputs,
      new_root_ids: op.outputs,
    };
    this.emit("version", result);
    this.options.onPhases?.(op.kind, clock.phases);
    return result;
  }

  /**
   * Measuring waits for a quiet moment (no edit queued, none for MEASURE_QUIET_MS), so a burst of edits is
   * not slowed by it and the viewer's reads of a new version (same thread) are answered first.
   */
  private scheduleMeasure(): void {
    if (this.options.measure === false || this.measureScheduled || this.dirty.size === 0) return;
    this.measureScheduled = true;
    setTimeout(() => {
      if (this.waiting > 0) {
        this.measureScheduled = false;
        return;
      }
      void this.enqueue(() => this.measureDirty())
        // A failed measurement leaves the segments dirty; the next edit (or restart) tries again.
        .catch((e: unknown) => console.error("vemscope: re-measuring edited segments failed:", e))
        .finally(() => {
          this.measureScheduled = false;
          this.scheduleMeasure();
        });
    }, MEASURE_QUIET_MS).unref();
  }

  /**
   * Measures dirty segments at the current version, one at a time, and commits what it has as a measurement
   * of that version. It stops early when an edit is waiting, so an edit waits for at most one segment's
   * measurement; the rest stay dirty for the next pass.
   */
  async measureDirty(): Promise<void> {
    const version = this.version;
    const ids = [...this.dirty].filter((id) => this.rows.has(id)).sort((a, b) => a - b);
    for (const id of this.dirty) if (!this.rows.has(id)) this.dirty.delete(id);
    if (ids.length === 0) {
      this.measuredVersion = version;
      return;
    }
    const seq = this.db.nextMeasureSeq();
    const dir = versionDir(this.root, version, "measure", seq);
    await fs.rm(dir, { recursive: true, force: true });
    const storage = new RecordingStorage(dir);
    const rows = new Map(this.rows);
    const classOf = (id: number) => this.rows.get(id)?.class;
    const done: number[] = [];
    const fresh = new Map<number, ContactSite[]>();
    for (const id of ids) {
      // Each segment is measured in one synchronous stretch; between them, pending reads get the thread.
      if (done.length > 0) await new Promise((r) => setImmediate(r));
      if (done.length > 0 && this.waiting > 0) break;
      const row = { ...(rows.get(id) as InstanceRow) };
      const box = this.boxOf(id);
      measureRow(row, box, this.labels, this.shape, this.voxelNm, classOf, DEFAULT_CONTACT_NM);
      rows.set(id, row);
      fresh.set(id, organelleSites(this.labels, this.shape, this.voxelNm, id, row.class, box, classOf, DEFAULT_CONTACT_NM));
      await writeMesh(storage, MESH_PREFIX, id, segmentMesh(this.labels, this.shape, this.voxelNm, id, box));
      done.push(id);
    }
    await writeTables(storage, rows);
    await writeSummary(storage, rows, this.shape, this.voxelNm, DEFAULT_CONTACT_NM);
    const sites = await this.contactSites(version, fresh, rows, storage);
    const files = [...storage.keys];
    this.db.commitMeasure({ seq, version, segments: done, files, time: new Date().toISOString() });
    this.index.add(version, "measure", files, [], seq);
    this.rows = rows;
    if (sites) this.sites = sites;
    for (const id of done) this.dirty.delete(id);
    if (this.dirty.size === 0) this.measuredVersion = version;
    this.emit("measured", { version, segments: done });
  }

  /**
   * Writes the version's contacts/ layer into the measurement's folder `target` (fresh sites of the measured
   * segments, the rest carried: see contacts.ts) and returns its sites; undefined when the run has no layer.
   */
  private async contactSites(version: number, fresh: ReadonlyMap<number, ContactSite[]>, rows: ReadonlyMap<number, InstanceRow>, target: RecordingStorage): Promise<ContactSite[] | undefined> {
    const current = this.storageAt(version);
    if (this.sites === undefined) this.sites = (await readSites(current, [...rows.keys()].sort((a, b) => a - b), this.labels, this.shape)) ?? null;
    if (this.sites === null) return undefined;
    const sites = mergeSites(this.sites, fresh, (id) => rows.has(id), this.labels, this.shape);
    const earlier = [...new Set([...(await new LocalStorage(this.root).list(`${CONTACTS_PREFIX}/`)), ...this.index.keysUnder(`${CONTACTS_PREFIX}/`)])];
    await writeVersionContacts(target, current, earlier, sites, this.voxelNm, this.shape);
    return sites;
  }

  /** Resolves once every queued edit and measurement is done (tests, shutdown). */
  async idle(): Promise<void> {
    for (;;) {
      const t = this.tail;
      await t;
      await new Promise((r) => setTimeout(r, 10));
      if (t === this.tail && !this.measureScheduled) return;
    }
  }

  review(segment: number, status: ReviewStatus, comment: string, user: string): Promise<ReviewRecord> {
    return this.enqueue(async () => {
      if (!this.rows.has(segment)) throw new ApiError(404, "unknown_segment", `no segment ${segment} in version ${this.version}`);
      const record: ReviewRecord = { segment, status, comment, user, time: new Date().toISOString(), version: this.version };
      this.db.putReview(record);
      this.emit("review", record);
      return record;
    });
  }

  ops(since = 0): OpRecord[] {
    return [...this.opsById.values()].filter((o) => o.version > since).sort((a, b) => a.version - b.version);
  }

  storageAt(version: number): VersionStorage {
    return new VersionStorage(this.index, version);
  }
}

function maxOf(a: Uint32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) if (a[i] > m) m = a[i];
  return m;
}
