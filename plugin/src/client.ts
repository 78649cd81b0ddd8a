/**
 * The plugin's one door to vemscope's server data. Panels depend on these types only, so moving
 * from the report files to the `/api/*` routes (or changing how they page) touches this file alone.
 * URLs are relative on purpose: the viewer may be mounted under any path prefix.
 */

import { PROTOBUF_MEDIA_TYPE, decodeSegmentTable } from "../../server/api/proto.js";

export type CellValue = number | string | boolean | null;
export type ColumnType = "number" | "string" | "boolean";

export interface Column {
  id: string;
  type: ColumnType;
}

/** One organelle instance: report.ts's InstanceRow columns, `null` where not measured. */
export interface SegmentRow {
  id: number;
  class: string;
  [column: string]: CellValue;
}

export interface SegmentTable {
  columns: Column[];
  rows: SegmentRow[];
}

export interface SharedState {
  id: string;
  /** As the server returned it (may be relative to the viewer's origin). */
  url: string;
}

const SEGMENTS_API = "api/segments";
const MORPHOMETRICS_CSV = "precomputed/report/morphometrics.csv";
/** The API's page-size ceiling; one page holds any realistic dataset, the loop covers the rest. */
const PAGE_LIMIT = 100_000;

/**
 * Every segment with every column. Prefers `GET /api/segments` as protobuf (DESIGN: bulk tables
 * travel as protobuf; about a third of the JSON's bytes and no per-cell JSON parse); a server that
 * predates that route answers 404, and then the report CSV carries the same rows.
 */
export async function fetchSegments(): Promise<SegmentTable> {
  const first = await fetchSegmentPage(0);
  if (first === "missing") return fetchSegmentsFromCsv();
  let page = first;
  const rows = [...page.rows];
  while (rows.length < page.total && page.rows.length > 0) {
    const next = await fetchSegmentPage(rows.length);
    if (next === "missing") throw new Error(`${SEGMENTS_API} disappeared while paging`);
    page = next;
    rows.push(...page.rows);
  }
  return { columns: page.columns, rows };
}

async function fetchSegmentPage(offset: number): Promise<SegmentPage | "missing"> {
  const response = await fetch(`${SEGMENTS_API}?offset=${offset}&limit=${PAGE_LIMIT}`, {
    // JSON stays acceptable, at lower priority, for servers (or proxies) that do not speak protobuf.
    headers: { accept: `${PROTOBUF_MEDIA_TYPE}, application/json;q=0.5` },
  });
  if (response.status === 404) return "missing";
  const type = response.headers.get("content-type") ?? "";
  if (response.ok && type.includes(PROTOBUF_MEDIA_TYPE)) {
    const decoded = decodeSegmentTable(new Uint8Array(await response.arrayBuffer()));
    // The decoder yields the JSON answer's shape, so one validator covers both encodings.
    return parseSegmentPage(decoded);
  }
  return parseSegmentPage(await jsonOrThrow(response, SEGMENTS_API));
}

export async function fetchSegmentsFromCsv(): Promise<SegmentTable> {
  const response = await fetch(MORPHOMETRICS_CSV);
  if (!response.ok) throw new Error(`GET ${MORPHOMETRICS_CSV} answered ${response.status} ${response.statusText}`);
  return parseMorphometricsCsv(await response.text());
}

/** Stores a viewer state on the server and returns its short link. */
export async function postState(state: unknown): Promise<SharedState> {
  const response = await fetch("api/states", {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json" },
    body: JSON.stringify(state),
  });
  const body = await jsonOrThrow(response, "api/states");
  if (!isRecord(body) || typeof body.url !== "string") throw new Error("api/states did not return {id, url}");
  return { id: typeof body.id === "string" ? body.id : String(body.id), url: body.url };
}

async function jsonOrThrow(response: Response, what: string): Promise<unknown> {
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try {
      const body: unknown = await response.json();
      // The API's error bodies carry a human-readable `message` (server/api/errors.ts).
      if (isRecord(body) && typeof body.message === "string") detail += `: ${body.message}`;
      else if (isRecord(body) && isRecord(body.error) && typeof body.error.message === "string") detail += `: ${body.error.message}`;
    } catch {
      // Not JSON: the status line is all there is.
    }
    throw new Error(`${what} answered ${detail}`);
  }
  return response.json();
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

interface SegmentPage {
  total: number;
  columns: Column[];
  rows: SegmentRow[];
}

function parseSegmentPage(body: unknown): SegmentPage {
  if (!isRecord(body) || !Array.isArray(body.rows) || !Array.isArray(body.columns)) {
    throw new Error("api/segments did not return {total, columns, rows}");
  }
  const columns: Column[] = body.columns.map((c: unknown) => {
    if (!isRecord(c) || typeof c.id !== "string") throw new Error("api/segments: bad column entry");
    return { id: c.id, type: c.type === "number" || c.type === "boolean" ? c.type : "string" };
  });
  const rows = body.rows.map((r: unknown) => toRow(r));
  const total = typeof body.total === "number" ? body.total : rows.length;
  return { total, columns, rows };
}

function toRow(r: unknown): SegmentRow {
  if (!isRecord(r) || typeof r.id !== "number") throw new Error("api/segments: row without a numeric id");
  const row: SegmentRow = { id: r.id, class: typeof r.class === "string" ? r.class : "" };
  for (const [key, value] of Object.entries(r)) {
    if (key === "id" || key === "class") continue;
    row[key] = typeof value === "number" || typeof value === "string" || typeof value === "boolean" ? value : null;
  }
  return row;
}

/** RFC 4180 fields: quotes double inside quoted fields, which may hold commas and newlines. */
export function parseCsv(text: string): string[][] {
  const records: string[][] = [];
  let record: string[] = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i++;
        } else quoted = false;
      } else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ",") {
      record.push(field);
      field = "";
    } else if (ch === "\n" || ch === "\r") {
      if (ch === "\r" && text[i + 1] === "\n") i++;
      record.push(field);
      records.push(record);
      record = [];
      field = "";
    } else field += ch;
  }
  if (field !== "" || record.length > 0) {
    record.push(field);
    records.push(record);
  }
  return records;
}

/**
 * The CSV has no types, so each column gets the narrowest that fits all its non-empty cells:
 * the same `{id, type}` the API declares. Empty cells are `null` (report.ts writes nulls so).
 */
export function parseMorphometricsCsv(text: string): SegmentTable {
  const [header, ...records] = parseCsv(text).filter((r) => !(r.length === 1 && r[0] === ""));
  if (!header) return { columns: [], rows: [] };
  const columns: Column[] = header.map((id, c) => ({ id, type: inferType(records, c) }));
  const rows: SegmentRow[] = [];
  for (const record of records) {
    const row: SegmentRow = { id: Number(record[0]), class: "" };
    columns.forEach(({ id, type }, c) => {
      const raw = record[c] ?? "";
      row[id] = raw === "" ? null : type === "number" ? Number(raw) : type === "boolean" ? raw === "true" : raw;
    });
    if (typeof row.class !== "string") row.class = String(row.class ?? "");
    if (Number.isFinite(row.id)) rows.push(row);
  }
  return { columns, rows };
}

function inferType(records: readonly string[][], c: number): ColumnType {
  let sawValue = false;
  let allBoolean = true;
  let allNumber = true;
  for (const record of records) {
    const raw = record[c] ?? "";
    if (raw === "") continue;
    sawValue = true;
    if (raw !== "true" && raw !== "false") allBoolean = false;
    if (!Number.isFinite(Number(raw))) allNumber = false;
    if (!allBoolean && !allNumber) return "string";
  }
  // An all-empty column (e.g. nothing measured yet) is numeric in the report's schema.
  if (!sawValue) return "number";
  return allBoolean ? "boolean" : "number";
}
