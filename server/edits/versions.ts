import { promises as fs } from "node:fs";
import * as path from "node:path";
import { promisify } from "node:util";
import { gzip } from "node:zlib";
import { PrecomputedError } from "../../precomputed/errors.js";
import { LocalStorage, type PutOptions, type Storage } from "../../precomputed/storage.js";
import { EDITS_DIR, type MeasureRecord, type OpRecord } from "./db.js";

const gzipAsync = promisify(gzip);

/**
 * Copy-on-write versions of a served folder. The pipeline's files are version 0; each committed edit v has a
 * folder `.vemscope/versions/<v>/edit/` holding only what it changed (segmentation chunks of every scale it
 * touched, segment properties, morphometrics.csv) and a later measurement `.vemscope/versions/<v>/measure/`
 * (meshes and re-measured rows; `measure-<seq>/`, as edits may interrupt a measurement, which then commits
 * in parts). A file of version v is the newest copy at or below v, the original
 * otherwise; keys an edit deleted (meshes of segments that no longer exist) read as missing from then on.
 * Only committed folders (a row in the log) are indexed, so a half-written folder is never visible.
 */
export const VERSIONS_DIR = path.join(EDITS_DIR, "versions");

export type Phase = "edit" | "measure";

export function versionDir(root: string, version: number, phase: Phase, seq = 0): string {
  return path.join(root, VERSIONS_DIR, String(version), phase === "edit" ? "edit" : `measure-${seq}`);
}

/** Edit before measure at the same version: the measurement is made on that edit's labels. */
const order = (version: number, phase: Phase) => 2 * version + (phase === "measure" ? 1 : 0);

export type Resolved = { dir: string } | { deleted: true } | undefined;

export class VersionIndex {
  private readonly entries = new Map<string, { order: number; dir: string | null }[]>();

  constructor(readonly root: string) {}

  /** Later additions at the same version and phase win (measurements in parts). */
  add(version: number, phase: Phase, files: readonly string[], deleted: readonly string[] = [], seq = 0): void {
    const at = order(version, phase);
    const dir = versionDir(this.root, version, phase, seq);
    const put = (key: string, d: string | null) => {
      const list = this.entries.get(key) ?? [];
      list.push({ order: at, dir: d });
      list.sort((a, b) => a.order - b.order);
      this.entries.set(key, list);
    };
    for (const k of deleted) put(k, null);
    for (const k of files) put(k, dir);
  }

  static fromLog(root: string, ops: readonly OpRecord[], measures: readonly MeasureRecord[]): VersionIndex {
    const index = new VersionIndex(root);
    for (const op of ops) index.add(op.version, "edit", op.files, op.deleted);
    for (const m of measures) index.add(m.version, "measure", m.files, [], m.seq);
    return index;
  }

  /** Every key some version folder holds under `prefix` (to clean a rewritten layer of keys it no longer has). */
  keysUnder(prefix: string): string[] {
    return [...this.entries.keys()].filter((k) => k.startsWith(prefix));
  }

  /** Where `key` of `version` lives: a version folder, deleted, or undefined for the original file. */
  resolve(version: number, key: string): Resolved {
    const list = this.entries.get(key);
    if (!list) return undefined;
    const limit = order(version, "measure");
    for (let k = list.length - 1; k >= 0; k--) {
      const e = list[k];
      if (e.order > limit) continue;
      return e.dir === null ? { deleted: true } : { dir: e.dir };
    }
    return undefined;
  }
}

/** A read-only view of one version through the index (readRegion, segment properties, meshes read it). */
export class VersionStorage implements Storage {
  private readonly original: LocalStorage;
  constructor(private readonly index: VersionIndex, private readonly version: number) {
    this.original = new LocalStorage(index.root);
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const r = this.index.resolve(this.version, key);
    if (r === undefined) return this.original.get(key);
    if ("deleted" in r) return undefined;
    return new LocalStorage(r.dir).get(key);
  }

  async put(): Promise<void> {
    throw new Error("committed versions are read-only");
  }

  async list(prefix: string): Promise<string[]> {
    return this.original.list(prefix);
  }

  async delete(): Promise<void> {
    throw new Error("committed versions are read-only");
  }
}

/**
 * Writes into a version folder and remembers every key, which becomes the commit's file list. The folder is
 * private until its commit (the index knows only committed folders; start-up removes uncommitted ones, and
 * the writer empties a folder before it writes one), and the commit waits for every put to finish: so a file
 * is written in place, without LocalStorage's temp file and rename (a torn file can only lie in a folder that
 * is never published). The bytes and names are LocalStorage's (gzip: `<key>.gz`), so it reads them back.
 */
export class RecordingStorage implements Storage {
  readonly keys = new Set<string>();
  private readonly local: LocalStorage;
  /** How each key was last stored here: a rewrite in the other spelling removes this one (as LocalStorage does). */
  private readonly gzipped = new Map<string, boolean>();
  private readonly made = new Map<string, Promise<unknown>>();
  constructor(readonly dir: string) {
    this.local = new LocalStorage(dir);
  }
  get(key: string): Promise<Uint8Array | undefined> {
    return this.local.get(key);
  }
  async put(key: string, data: Uint8Array | string, options?: PutOptions): Promise<void> {
    const gzip = options?.contentEncoding === "gzip";
    // zlib's asynchronous gzip (same bytes as gzipSync) runs on libuv's threads, beside the editor's thread.
    const bytes = gzip ? await gzipAsync(typeof data === "string" ? Buffer.from(data) : data) : data;
    await this.write(key, bytes, gzip);
  }
  /** Bytes gzipped already (the chunk worker's): stored as put(key, plain, gzip) stores them. */
  putGzipped(key: string, gz: Uint8Array): Promise<void> {
    return this.write(key, gz, true);
  }
  private async write(key: string, bytes: Uint8Array | string, gzip: boolean): Promise<void> {
    const file = this.local.file(key);
    const folder = path.dirname(file);
    try {
      let made = this.made.get(folder);
      if (!made) {
        made = fs.mkdir(folder, { recursive: true });
        this.made.set(folder, made);
        made.catch(() => this.made.delete(folder));
      }
      await made;
      await fs.writeFile(gzip ? `${file}.gz` : file, bytes);
      const was = this.gzipped.get(key);
      this.gzipped.set(key, gzip);
      if (was !== undefined && was !== gzip) await fs.rm(gzip ? file : `${file}.gz`, { force: true });
    } catch (e) {
      throw new PrecomputedError("io", `cannot write: ${(e as Error).message}`, key, { cause: e });
    }
    this.keys.add(key);
  }
  list(prefix: string): Promise<string[]> {
    return this.local.list(prefix);
  }
  async delete(key: string): Promise<void> {
    await this.local.delete(key);
    this.gzipped.delete(key);
    this.keys.delete(key);
  }
}

/**
 * Start-up cleaning: version folders with no committed row were being written when the server died. They
 * are removed, so the next edit of that number starts from an empty folder.
 */
export async function removeUncommitted(root: string, committedEdits: ReadonlySet<number>, committedMeasures: ReadonlySet<string>): Promise<string[]> {
  const base = path.join(root, VERSIONS_DIR);
  let names: string[];
  try {
    names = await fs.readdir(base);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const v = /^\d+$/.test(name) ? Number(name) : NaN;
    const dir = path.join(base, name);
    if (!committedEdits.has(v)) {
      await fs.rm(dir, { recursive: true, force: true });
      removed.push(dir);
    } else {
      for (const sub of await fs.readdir(dir)) {
        if (sub.startsWith("measure-") && !committedMeasures.has(path.relative(root, path.join(dir, sub)))) await fs.rm(path.join(dir, sub), { recursive: true, force: true });
      }
    }
  }
  return removed;
}
