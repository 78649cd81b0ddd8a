/** Pure table logic for the morphometrics panel: filter, sort, CSV. No DOM, no Neuroglancer. */
import type { CellValue, Column, SegmentRow } from "./client.js";

export interface SortSpec {
  column: string;
  descending: boolean;
}

export interface RangeFilter {
  column: string;
  min: number | null;
  max: number | null;
}

export interface TableQuery {
  sort: SortSpec | null;
  /** Classes to leave out; listing the excluded ones keeps classes added later visible. */
  hiddenClasses: readonly string[];
  range: RangeFilter | null;
  /** The range brushed on the histogram; applies on top of `range` (both must hold). */
  brush?: RangeFilter | null;
  /** Only rows with this review status (proofreading's review queue); null/absent = any. */
  review?: string | null;
}

function isActive(range: RangeFilter | null | undefined): range is RangeFilter {
  return range !== null && range !== undefined && (range.min !== null || range.max !== null);
}

export function inRange(row: SegmentRow, range: RangeFilter | null | undefined): boolean {
  if (!isActive(range)) return true;
  const v = row[range.column];
  // A range asks about a measured value; unmeasured rows cannot satisfy it.
  if (typeof v !== "number") return false;
  if (range.min !== null && v < range.min) return false;
  if (range.max !== null && v > range.max) return false;
  return true;
}

export function filterRows(rows: readonly SegmentRow[], query: TableQuery): SegmentRow[] {
  const hidden = new Set(query.hiddenClasses);
  const review = query.review ?? null;
  return rows.filter((row) => !hidden.has(row.class) && inRange(row, query.range) && inRange(row, query.brush) && (review === null || row.review_status === review));
}

export interface Histogram {
  /** The binned domain; bin `i` covers [min + i·width, min + (i+1)·width), the last one closed. */
  min: number;
  max: number;
  counts: number[];
}

/**
 * Counts of `column` over `rows` in `bins` equal bins of `domain`. The domain is passed in (from
 * all rows) so that filtering the table changes the bars, never the axis under a brush.
 */
export function histogram(rows: readonly SegmentRow[], column: string, bins: number, domain: { min: number; max: number }): Histogram {
  const counts = new Array<number>(bins).fill(0);
  const span = domain.max - domain.min;
  for (const row of rows) {
    const v = row[column];
    if (typeof v !== "number" || !Number.isFinite(v) || v < domain.min || v > domain.max) continue;
    // A zero span (one distinct value) puts everything in the first bin.
    const i = span > 0 ? Math.min(bins - 1, Math.floor(((v - domain.min) / span) * bins)) : 0;
    counts[i] = (counts[i] ?? 0) + 1;
  }
  return { min: domain.min, max: domain.max, counts };
}

/** Finite extent of a numeric column, or null when nothing in it is measured. */
export function extent(rows: readonly SegmentRow[], column: string): { min: number; max: number } | null {
  let min = Infinity;
  let max = -Infinity;
  for (const row of rows) {
    const v = row[column];
    if (typeof v !== "number" || !Number.isFinite(v)) continue;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return min <= max ? { min, max } : null;
}

function compareCells(a: CellValue, b: CellValue): number {
  if (typeof a === "number" && typeof b === "number") return a - b;
  if (typeof a === "boolean" && typeof b === "boolean") return Number(a) - Number(b);
  return String(a).localeCompare(String(b));
}

/** Stable; nulls go last in both directions, since "unmeasured" is never the interesting end. */
export function sortRows(rows: SegmentRow[], sort: SortSpec | null): SegmentRow[] {
  if (sort === null) return rows;
  const sign = sort.descending ? -1 : 1;
  const indexed = rows.map((row, i) => ({ row, i }));
  indexed.sort((x, y) => {
    const a = x.row[sort.column] ?? null;
    const b = y.row[sort.column] ?? null;
    if (a === null || b === null) return a === b ? x.i - y.i : a === null ? 1 : -1;
    return sign * compareCells(a, b) || x.i - y.i;
  });
  return indexed.map((e) => e.row);
}

export function queryRows(rows: readonly SegmentRow[], query: TableQuery): SegmentRow[] {
  return sortRows(filterRows(rows, query), query.sort);
}

/** Same cell rules as the server's report CSV (report.ts toCsv), so exports diff cleanly against it. */
export function rowsToCsv(columns: readonly Column[], rows: readonly SegmentRow[]): string {
  const cell = (v: CellValue | undefined): string => {
    if (v === null || v === undefined) return "";
    const s = typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toPrecision(8)) : String(v);
    return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  const ids = columns.map((c) => c.id);
  const lines = rows.map((r) => ids.map((id) => cell(r[id])).join(","));
  return `${ids.join(",")}\n${lines.length ? `${lines.join("\n")}\n` : ""}`;
}

export function formatCell(v: CellValue | undefined): string {
  if (v === null || v === undefined) return "";
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (typeof v === "string") return v;
  if (Number.isInteger(v) && Math.abs(v) < 1e7) return String(v);
  if (Math.abs(v) >= 1e7) return v.toExponential(3);
  return String(Number(v.toPrecision(4)));
}

export interface ContactCounts {
  class: string;
  /** Instances whose ER distance was measured. */
  measured: number;
  inContact: number;
  /** In contact, but the nearest approach is only across sections (contact_in_plane = false). */
  acrossSections: number;
}

/** Per-class contact counts at a distance threshold (the paper's Fig 5G), from min_dist_er_nm. */
export function contactCounts(rows: readonly SegmentRow[], thresholdNm: number): ContactCounts[] {
  const byClass = new Map<string, ContactCounts>();
  for (const row of rows) {
    const d = row.min_dist_er_nm;
    if (typeof d !== "number") continue;
    let c = byClass.get(row.class);
    if (!c) byClass.set(row.class, (c = { class: row.class, measured: 0, inContact: 0, acrossSections: 0 }));
    c.measured++;
    if (d <= thresholdNm) {
      c.inContact++;
      if (row.contact_in_plane === false) c.acrossSections++;
    }
  }
  return [...byClass.values()];
}

export function inContact(row: SegmentRow, thresholdNm: number): boolean {
  const d = row.min_dist_er_nm;
  return typeof d === "number" && d <= thresholdNm;
}
