import type { Vec3 } from "../../precomputed/array.js";
import type { Storage } from "../../precomputed/storage.js";
import { classByCode } from "./classes.js";
import type { RenderedFigure } from "./figures.js";
import { figureIndexHtml, renderFigureJob } from "./figures-job.js";
import { classSummaries } from "./summary.js";
import type { Components } from "./label.js";
import { instanceStats, type InstanceStats } from "./stats.js";
import { processPool, requestedWorkers } from "./workers/pool.js";

/**
 * One row per instance (DESIGN.md's columns). `null` = not measured or not applicable (e.g. length for a
 * lipid droplet, ER distance for the ER itself); the CSV leaves such cells empty.
 */
export interface InstanceRow {
  id: number;
  class: string;
  voxels: number;
  volume_nm3: number;
  surface_nm2: number | null;
  vsa_nm: number | null;
  sphericity: number | null;
  length_nm: number | null;
  width_nm: number | null;
  feret_max_nm: number | null;
  branched: boolean | null;
  branch_count: number | null;
  min_dist_er_nm: number | null;
  in_contact: boolean | null;
  /** Nearest ER approach lies within one section (true) or only across sections (false). */
  contact_in_plane: boolean | null;
  contact_area_nm2: number | null;
  contact_sites: number | null;
  centroid_x_nm: number;
  centroid_y_nm: number;
  centroid_z_nm: number;
  bbox_voxels: string;
}

type VoxelFacts = Pick<InstanceRow, "id" | "class" | "voxels" | "volume_nm3" | "centroid_x_nm" | "centroid_y_nm" | "centroid_z_nm" | "bbox_voxels">;

/** A row with its voxel facts and every measured column still null (to be filled by the analysis). */
export function measuredRow(facts: VoxelFacts & Partial<InstanceRow>): InstanceRow {
  // Key order is the CSV's column order (DESIGN.md's): facts, measures, then position.
  const { id, class: cls, voxels, volume_nm3, centroid_x_nm, centroid_y_nm, centroid_z_nm, bbox_voxels, ...measured } = facts;
  return {
    id,
    class: cls,
    voxels,
    volume_nm3,
    surface_nm2: null,
    vsa_nm: null,
    sphericity: null,
    length_nm: null,
    width_nm: null,
    feret_max_nm: null,
    branched: null,
    branch_count: null,
    min_dist_er_nm: null,
    in_contact: null,
    contact_in_plane: null,
    contact_area_nm2: null,
    contact_sites: null,
    centroid_x_nm,
    centroid_y_nm,
    centroid_z_nm,
    bbox_voxels,
    ...measured,
  };
}

export function instanceRows(components: Components, shape: Vec3, voxelNm: Vec3, stats: InstanceStats = instanceStats(components.labels, shape, components.count)): InstanceRow[] {
  const voxelVolume = voxelNm[0] * voxelNm[1] * voxelNm[2];
  const rows: InstanceRow[] = [];
  for (let id = 1; id <= components.count; id++) {
    const b = stats.bbox.subarray(6 * id, 6 * id + 6);
    rows.push(
      measuredRow({
        id,
        class: classByCode(components.classOf[id])?.name ?? `class${components.classOf[id]}`,
        voxels: stats.voxels[id],
        volume_nm3: stats.voxels[id] * voxelVolume,
        centroid_x_nm: stats.centroid[3 * id] * voxelNm[0],
        centroid_y_nm: stats.centroid[3 * id + 1] * voxelNm[1],
        centroid_z_nm: stats.centroid[3 * id + 2] * voxelNm[2],
        bbox_voxels: `${b[0]} ${b[1]} ${b[2]} ${b[3]} ${b[4]} ${b[5]}`,
      }),
    );
  }
  return rows;
}

export function toCsv(rows: readonly object[]): string {
  if (rows.length === 0) return "id,class\n";
  const columns = Object.keys(rows[0]);
  const cell = (v: unknown): string => {
    if (v === null || v === undefined) return "";
    const s = typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toPrecision(8)) : String(v);
    return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  const lines = rows.map((r) => columns.map((c) => cell((r as Record<string, unknown>)[c])).join(","));
  return `${columns.join(",")}\n${lines.join("\n")}\n`;
}

/** report/summary.json: the paper's per-class figures plus the volume fraction (of all analysed voxels). */
export function summarise(rows: readonly InstanceRow[], shape: Vec3, voxelNm: Vec3, contactNm: number) {
  const total = shape[0] * shape[1] * shape[2];
  const classes: Record<string, Record<string, unknown>> = {};
  for (const s of classSummaries(rows, contactNm)) {
    const voxels = rows.filter((r) => r.class === s.class).reduce((sum, r) => sum + r.voxels, 0);
    const { class: name, mito, ...rest } = s;
    classes[name] = {
      ...rest,
      volume_fraction: voxels / total,
      contact_fraction: s.contact_percent === null ? null : s.contact_percent / 100,
      [`contact_fraction_${contactNm}nm`]: s.contact_percent === null ? null : s.contact_percent / 100,
      ...(mito ?? {}),
    };
  }
  return {
    voxel_nm: voxelNm,
    size_voxels: shape,
    contact_threshold_nm: contactNm,
    volume_fraction_denominator: "all voxels of the analysed volume",
    classes,
  };
}

/** Figures being rendered (startFigures), for writeReport. */
export type FigureRun = () => Promise<RenderedFigure[]>;

/**
 * Starts rendering the report's figures from final rows: on a worker thread of the process pool when there is
 * one (Vega's ~1.3 s load and the rendering then overlap the layers written meanwhile), else on this thread when
 * writeReport asks. Same SVG text either way.
 */
export function startFigures(rows: readonly InstanceRow[], contactNm: number): FigureRun {
  const job = { rows, contactNm };
  if (requestedWorkers() === 0) return () => renderFigureJob(job);
  // Ahead of the display meshes queued since the instances: the report waits on the figures, while the mesh
  // writer's remaining jobs can as well run on the main thread.
  const rendered = processPool(1)
    .run("figures", job, [], undefined, true)
    .catch(() => renderFigureJob(job));
  rendered.catch(() => undefined); // awaited by writeReport; a failure there must not count as unhandled first
  return () => rendered;
}

/** `figures`: from startFigures on the same rows and threshold; rendered here when not given. */
export async function writeReport(storage: Storage, rows: readonly InstanceRow[], shape: Vec3, voxelNm: Vec3, contactNm: number, figureRun?: FigureRun): Promise<void> {
  await storage.put("report/morphometrics.csv", toCsv(rows));
  await storage.put("report/summary.json", JSON.stringify(summarise(rows, shape, voxelNm, contactNm), null, 2));
  const figures = await (figureRun ?? (() => renderFigureJob({ rows, contactNm })))();
  for (const f of figures) await storage.put(`report/figures/${f.name}.svg`, f.svg);
  await storage.put("report/figures/index.html", figureIndexHtml(figures));
}
