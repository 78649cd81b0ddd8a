import { mkdirSync } from "node:fs";
import * as path from "node:path";
import Database from "better-sqlite3";

/** Where the server keeps proofreading state inside a served folder (the file server never serves it). */
export const EDITS_DIR = ".vemscope";
export const EDITS_DB = "edits.sqlite";

export type OpKind = "merge" | "split" | "undo" | "redo";

/** One committed operation: the log is append-only, so replaying it from the original labels rebuilds any version. */
export interface OpRecord {
  id: number;
  kind: OpKind;
  user: string;
  time: string;
  base: number;
  version: number;
  /** What the client asked for (merge ids, split seeds, the target of an undo/redo): enough to replay. */
  params: unknown;
  /** Segments the op consumed and segments it left; together, what a later edit conflicts on. */
  inputs: number[];
  outputs: number[];
  maxId: number;
  /** Keys written into the version folder (`edit/...`) and keys that stop existing at this version. */
  files: string[];
  deleted: string[];
}

export interface MeasureRecord {
  /** Commit number: a version can get several measurements when edits keep interrupting one. */
  seq: number;
  version: number;
  segments: number[];
  files: string[];
  time: string;
}

export type ReviewStatus = "unreviewed" | "ok" | "needs-fix";

export interface ReviewRecord {
  segment: number;
  status: ReviewStatus;
  comment: string;
  user: string;
  time: string;
  version: number;
}

export type Role = "viewer" | "editor" | "admin";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS ops (
  id INTEGER PRIMARY KEY,
  kind TEXT NOT NULL,
  user TEXT NOT NULL,
  time TEXT NOT NULL,
  base INTEGER NOT NULL,
  version INTEGER NOT NULL UNIQUE,
  params TEXT NOT NULL,
  inputs TEXT NOT NULL,
  outputs TEXT NOT NULL,
  max_id INTEGER NOT NULL,
  files TEXT NOT NULL,
  deleted TEXT NOT NULL
) STRICT;
-- The log is the source of truth for replay: committed rows never change.
CREATE TRIGGER IF NOT EXISTS ops_no_update BEFORE UPDATE ON ops BEGIN SELECT RAISE(ABORT, 'the edit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS ops_no_delete BEFORE DELETE ON ops BEGIN SELECT RAISE(ABORT, 'the edit log is append-only'); END;
CREATE TABLE IF NOT EXISTS measures (
  seq INTEGER PRIMARY KEY,
  version INTEGER NOT NULL,
  segments TEXT NOT NULL,
  files TEXT NOT NULL,
  time TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS reviews (
  seq INTEGER PRIMARY KEY,
  segment INTEGER NOT NULL,
  status TEXT NOT NULL,
  comment TEXT NOT NULL,
  user TEXT NOT NULL,
  time TEXT NOT NULL,
  version INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS reviews_segment ON reviews (segment, seq);
CREATE TABLE IF NOT EXISTS tokens (
  hash TEXT PRIMARY KEY,
  user TEXT NOT NULL,
  role TEXT NOT NULL,
  created_at TEXT NOT NULL
) STRICT;
`;

interface OpRow {
  id: number;
  kind: string;
  user: string;
  time: string;
  base: number;
  version: number;
  params: string;
  inputs: string;
  outputs: string;
  max_id: number;
  files: string;
  deleted: string;
}

function toOp(r: OpRow): OpRecord {
  return {
    id: r.id,
    kind: r.kind as OpKind,
    user: r.user,
    time: r.time,
    base: r.base,
    version: r.version,
    params: JSON.parse(r.params) as unknown,
    inputs: JSON.parse(r.inputs) as number[],
    outputs: JSON.parse(r.outputs) as number[],
    maxId: r.max_id,
    files: JSON.parse(r.files) as string[],
    deleted: JSON.parse(r.deleted) as string[],
  };
}

/** The proofreading database of one served folder: edit log, measurement commits, reviews, tokens (WAL). */
export class EditDb {
  readonly db: Database.Database;

  constructor(readonly file: string) {
    mkdirSync(path.dirname(file), { recursive: true });
    this.db = new Database(file);
    // WAL: viewers reading the log never wait for the writer; a SIGKILL loses at most the uncommitted row.
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = FULL");
    this.db.pragma("busy_timeout = 5000");
    this.db.exec(SCHEMA);
  }

  static at(root: string): EditDb {
    return new EditDb(path.join(root, EDITS_DIR, EDITS_DB));
  }

  ops(sinceVersion = 0): OpRecord[] {
    return this.db.prepare<[number], OpRow>("SELECT * FROM ops WHERE version > ? ORDER BY version").all(sinceVersion).map(toOp);
  }

  op(id: number): OpRecord | undefined {
    const r = this.db.prepare<[number], OpRow>("SELECT * FROM ops WHERE id = ?").get(id);
    return r && toOp(r);
  }

  /** The commit point of an edit: until this row exists, the version folder is ignored (and removed on start). */
  commitOp(op: Omit<OpRecord, "id">): OpRecord {
    const info = this.db
      .prepare("INSERT INTO ops (kind, user, time, base, version, params, inputs, outputs, max_id, files, deleted) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
      .run(op.kind, op.user, op.time, op.base, op.version, JSON.stringify(op.params), JSON.stringify(op.inputs), JSON.stringify(op.outputs), op.maxId, JSON.stringify(op.files), JSON.stringify(op.deleted));
    return { ...op, id: Number(info.lastInsertRowid) };
  }

  measures(): MeasureRecord[] {
    return this.db
      .prepare<[], { seq: number; version: number; segments: string; files: string; time: string }>("SELECT seq, version, segments, files, time FROM measures ORDER BY seq")
      .all()
      .map((r) => ({ seq: r.seq, version: r.version, segments: JSON.parse(r.segments) as number[], files: JSON.parse(r.files) as string[], time: r.time }));
  }

  nextMeasureSeq(): number {
    return (this.db.prepare<[], { m: number | null }>("SELECT MAX(seq) AS m FROM measures").get()?.m ?? 0) + 1;
  }

  commitMeasure(m: MeasureRecord): void {
    this.db.prepare("INSERT INTO measures (seq, version, segments, files, time) VALUES (?, ?, ?, ?, ?)").run(m.seq, m.version, JSON.stringify(m.segments), JSON.stringify(m.files), m.time);
  }

  putReview(r: ReviewRecord): void {
    this.db.prepare("INSERT INTO reviews (segment, status, comment, user, time, version) VALUES (?, ?, ?, ?, ?, ?)").run(r.segment, r.status, r.comment, r.user, r.time, r.version);
  }

  /** The latest review of every segment that has one (the table keeps the history). */
  latestReviews(): Map<number, ReviewRecord> {
    const rows = this.db
      .prepare<[], ReviewRecord>(
        "SELECT segment, status, comment, user, time, version FROM reviews r WHERE seq = (SELECT MAX(seq) FROM reviews WHERE segment = r.segment)",
      )
      .all();
    return new Map(rows.map((r) => [r.segment, r]));
  }

  reviewHistory(segment: number): ReviewRecord[] {
    return this.db.prepare<[number], ReviewRecord>("SELECT segment, status, comment, user, time, version FROM reviews WHERE segment = ? ORDER BY seq").all(segment);
  }

  close(): void {
    this.db.close();
  }
}
