import { promises as fs, type Stats } from "node:fs";
import type { InstanceRow } from "../pipeline/report.js";
import { ApiError } from "./errors.js";
import type { ColumnType, ColumnValues } from "./proto.js";

/** report/morphometrics.csv held column by column, so filters, sorts and protobuf pages read typed arrays. */
export interface LoadedTable {
  rowCount: number;
  columns: ColumnValues[];
  byName: Map<string, ColumnValues>;
  ids: Uint32Array;
  /** Sorted row orders already computed for this version of the file, by sort expression. */
  sortCache: Map<string, Uint32Array>;
}

/**
 * What each column of report.ts' `instanceRows` holds. Typed against InstanceRow so a new column there
 * fails to compile until it is listed; used where the data cannot say (a column with every cell empty)
 * and to keep text columns text when every value happens to look numeric.
 */
const KNOWN_TYPES: Record<keyof InstanceRow, ColumnType> = {
  id: "number",
  class: "string",
  voxels: "number",
  volume_nm3: "number",
  surface_nm2: "number",
  vsa_nm: "number",
  sphericity: "number",
  length_nm: "number",
  width_nm: "number",
  feret_max_nm: "number",
  branched: "boolean",
  branch_count: "number",
  min_dist_er_nm: "number",
  in_contact: "boolean",
  contact_in_plane: "boolean",
  contact_area_nm2: "number",
  contact_sites: "number",
  centroid_x_nm: "number",
  centroid_y_nm: "number",
  centroid_z_nm: "number",
  bbox_voxels: "string",
};

/** A decimal literal; written without nested quantifiers so a long hostile string cannot backtrack. */
export const NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;
/** toCsv writes `String(NaN)` and `toPrecision` of an infinity; JSON cannot carry either, so they read as null. */
const NON_FINITE = new Set(["NaN", "nan", "Infinity", "+Infinity", "-Infinity", "inf", "-inf"]);
const BOOLEAN_WORDS = new Map([
  ["true", 1],
  ["false", 0],
  ["True", 1],
  ["False", 0],
  ["TRUE", 1],
  ["FALSE", 0],
]);
const KNOWN = new Map<string, ColumnType>(Object.entries(KNOWN_TYPES));

/** Re-reads the CSV only when the file changed (pipeline re-runs and proofreading rewrite it). */
export class SegmentTableCache {
  private loaded: { stamp: string; table: Promise<LoadedTable> } | undefined;
  constructor(private readonly file: string, private readonly displayName: string) {}

  async get(): Promise<LoadedTable> {
    let stat: Stats;
    try {
      stat = await fs.stat(this.file);
    } catch (e) {
      throw new ApiError(404, "not_found", `${this.displayName} is missing from the dataset`, { cause: e });
    }
    // ino catches a same-size rewrite within the mtime resolution when written by rename, as the pipeline does.
    const stamp = `${stat.ino}:${stat.size}:${stat.mtimeMs}:${stat.ctimeMs}`;
    if (this.loaded?.stamp !== stamp) {
      const table = this.load();
      this.loaded = { stamp, table };
      // A failed read must not stick: the next request retries once the file is fixed.
      table.catch(() => {
        if (this.loaded?.table === table) this.loaded = undefined;
      });
    }
    return this.loaded.table;
  }

  private async load(): Promise<LoadedTable> {
    let text: string;
    try {
      text = await fs.readFile(this.file, "utf8");
    } catch (e) {
      throw new ApiError(404, "not_found", `${this.displayName} is missing from the dataset`, { cause: e });
    }
    return tableFromCsv(text, this.displayName);
  }
}

export function tableFromCsv(text: string, name = "table"): LoadedTable {
  const bad = (message: string) => new ApiError(500, "bad_dataset", `${name}: ${message}`);
  // Blank lines (a trailing one above all) are not rows.
  const records = parseCsv(text).filter((r) => !(r.length === 1 && r[0] === ""));
  const header = records.shift();
  if (header === undefined) throw bad("no header line");
  if (new Set(header).size !== header.length) throw bad("duplicate column names");
  if (!header.includes("id")) throw bad("no id column");
  records.forEach((r, i) => {
    if (r.length > header.length) throw bad(`line ${i + 2} has ${r.length} cells for ${header.length} columns`);
  });
  const rowCount = records.length;
  const columns = header.map((id, c): ColumnValues => {
    const cells = records.map((r) => r[c] ?? "");
    const type = columnType(id, cells);
    switch (type) {
      case "number":
        return { id, type, values: Float64Array.from(cells, (s) => parseNumber(s)) };
      case "boolean":
        return { id, type, values: Int8Array.from(cells, (s) => (s === "" ? -1 : (BOOLEAN_WORDS.get(s) ?? Number(s)))) };
      case "string":
        return { id, type, values: cells.map((s) => (s === "" ? null : s)) };
    }
  });
  const idColumn = columns[header.indexOf("id")];
  if (idColumn?.type !== "number") throw bad("ids must be integers");
  const ids = new Uint32Array(rowCount);
  const seen = new Set<number>();
  for (let r = 0; r < rowCount; r++) {
    const v = idColumn.values[r];
    if (v === undefined || !Number.isInteger(v) || v < 0 || v > 0xffffffff) throw bad(`line ${r + 2}: id must be an integer in 0..2^32-1`);
    if (seen.has(v)) throw bad(`line ${r + 2}: duplicate id ${v}`);
    seen.add(v);
    ids[r] = v;
  }
  return { rowCount, columns, byName: new Map(columns.map((c) => [c.id, c])), ids, sortCache: new Map() };
}

function columnType(id: string, cells: readonly string[]): ColumnType {
  const known = KNOWN.get(id);
  if (known === "string") return "string";
  let numeric = true;
  let boolean = true;
  let empty = true;
  for (const s of cells) {
    if (s === "") continue;
    empty = false;
    const isNumber = NUMBER.test(s) || NON_FINITE.has(s);
    numeric &&= isNumber;
    // A known boolean column written as 0/1 stays boolean; elsewhere 0/1 is just a number.
    boolean &&= BOOLEAN_WORDS.has(s) || (known === "boolean" && (s === "0" || s === "1"));
    if (!numeric && !boolean) return "string";
  }
  if (empty) return known ?? "number";
  if (boolean) return "boolean";
  return numeric ? "number" : "string";
}

function parseNumber(s: string): number {
  if (s === "" || NON_FINITE.has(s)) return NaN;
  return Number(s);
}

/** RFC 4180: quoted cells may hold commas, doubled quotes and newlines; CRLF or LF line ends; a leading BOM is dropped. */
export function parseCsv(text: string): string[][] {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  // Tables of numbers have no quotes at all; splitting is several times faster than the general scanner.
  if (!body.includes('"')) {
    const lines = body.split(/\r\n|\n|\r/);
    if (lines[lines.length - 1] === "") lines.pop();
    return lines.map((line) => line.split(","));
  }
  return scanCsv(body);
}

function scanCsv(text: string): string[][] {
  const records: string[][] = [];
  let record: string[] = [];
  let cell = "";
  let quoted = false;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"') {
        if (text[i + 1] === '"') {
          cell += '"';
          i++;
        } else {
          quoted = false;
        }
      } else {
        cell += ch;
      }
    } else if (ch === '"') {
      quoted = true;
    } else if (ch === ",") {
      record.push(cell);
      cell = "";
    } else if (ch === "\n" || ch === "\r") {
      if (ch === "\r" && text[i + 1] === "\n") i++;
      record.push(cell);
      records.push(record);
      record = [];
      cell = "";
    } else {
      cell += ch;
    }
  }
  if (cell !== "" || record.length > 0) {
    record.push(cell);
    records.push(record);
  }
  return records;
}
