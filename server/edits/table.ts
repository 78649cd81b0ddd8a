import { writeSegmentProperties } from "../../precomputed/segment-properties.js";
import type { Storage } from "../../precomputed/storage.js";
import { segmentProperties } from "../pipeline/layers.js";
import type { Vec3 } from "../../precomputed/array.js";
import { summarise, toCsv, type InstanceRow } from "../pipeline/report.js";
import { parseCsv } from "../api/segment-table.js";

export const CSV_KEY = "report/morphometrics.csv";
/** The ER contact threshold (nm) edited versions are measured and summarised with. */
export const DEFAULT_CONTACT_NM = 30;
export const SUMMARY_KEY = "report/summary.json";
export const PROPERTIES_PREFIX = "segmentation/segment_properties";
export const MESH_PREFIX = "segmentation/mesh";

const TEXT = new Set(["class", "bbox_voxels"]);

/** report/morphometrics.csv back into rows (empty cells null, true/false booleans), in the file's column order. */
export function rowsFromCsv(text: string): Map<number, InstanceRow> {
  const records = parseCsv(text).filter((r) => !(r.length === 1 && r[0] === ""));
  const header = records.shift() ?? [];
  const rows = new Map<number, InstanceRow>();
  for (const rec of records) {
    const row: Record<string, unknown> = {};
    header.forEach((col, c) => {
      const s = rec[c] ?? "";
      row[col] = TEXT.has(col) ? s : s === "" ? null : s === "true" ? true : s === "false" ? false : Number(s);
    });
    rows.set(Number(row.id), row as unknown as InstanceRow);
  }
  return rows;
}

export function sortedRows(rows: ReadonlyMap<number, InstanceRow>): InstanceRow[] {
  return [...rows.values()].sort((a, b) => a.id - b.id);
}

/** The per-version copies of the table: the CSV (also what /api/segments reads) and Neuroglancer's segment properties. */
export async function writeTables(storage: Storage, rows: ReadonlyMap<number, InstanceRow>): Promise<void> {
  const list = sortedRows(rows);
  await storage.put(CSV_KEY, toCsv(list));
  await writeSegmentProperties(storage, PROPERTIES_PREFIX, segmentProperties(list));
}

/**
 * report/summary.json of a version, from its rows, as the pipeline writes it (report.ts summarise), so the
 * per-class counts, volume fractions and contact fractions follow the edits. Written after measuring: before
 * that, edited rows have no measured columns and the class means would drop them.
 */
export async function writeSummary(storage: Storage, rows: ReadonlyMap<number, InstanceRow>, shape: Vec3, voxelNm: Vec3, contactNm: number): Promise<void> {
  await storage.put(SUMMARY_KEY, JSON.stringify(summarise(sortedRows(rows), shape, voxelNm, contactNm), null, 2));
}
