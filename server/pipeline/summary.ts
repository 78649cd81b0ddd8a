/**
 * Per-class figures of the paper (counts, sizes, % in contact, branched vs unbranched mitochondria), from the
 * instance rows. report/summary.json and the figure panels both read them from here.
 */
import { CLASSES } from "./classes.js";
import type { InstanceRow } from "./report.js";

export interface MitoSummary {
  /** Mitochondria with a branched/unbranched verdict: the denominator of branched_percent. */
  branch_measured: number;
  branched_count: number;
  branched_percent: number | null;
  unbranched_count: number;
  unbranched_mean_length_nm: number | null;
  /** Mean over unbranched mitochondria of each one's length/width (not mean length / mean width). */
  unbranched_mean_length_width: number | null;
  contact_percent_branched: number | null;
  contact_percent_unbranched: number | null;
}

export interface ClassSummary {
  class: string;
  label: string;
  count: number;
  mean_volume_nm3: number | null;
  median_volume_nm3: number | null;
  mean_surface_nm2: number | null;
  median_surface_nm2: number | null;
  mean_sphericity: number | null;
  median_sphericity: number | null;
  mean_min_dist_er_nm: number | null;
  /** Rows with a measured ER distance: the denominator of contact_percent. */
  contact_measured: number;
  contact_count: number;
  contact_percent: number | null;
  /** Only for mitochondria. */
  mito?: MitoSummary;
}

/** Paper values at 30 nm (Jiang et al. 2021), drawn as reference ticks only at that threshold. */
export const PAPER_CONTACT_PERCENT: Readonly<Record<string, number>> = { mito: 53.7, ld: 29.5, lyso: 35.6, perox: 43.8 };
export const PAPER_CONTACT_NM = 30;
export const PAPER_UNBRANCHED_LENGTH_NM = 1761.8;
export const PAPER_UNBRANCHED_LW = 2.07;

export type NumericKey = {
  [K in keyof InstanceRow]-?: NonNullable<InstanceRow[K]> extends number ? K : never;
}[keyof InstanceRow];

/** A column's value when it is a measured, finite number; NaN/Infinity count as unmeasured. */
export function num(row: InstanceRow, key: NumericKey): number | undefined {
  const v = row[key];
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

export function column(rows: readonly InstanceRow[], key: NumericKey): number[] {
  const out: number[] = [];
  for (const r of rows) {
    const v = num(r, key);
    if (v !== undefined) out.push(v);
  }
  return out;
}

export function mean(values: readonly number[]): number | null {
  return values.length ? values.reduce((s, v) => s + v, 0) / values.length : null;
}

export function median(values: readonly number[]): number | null {
  if (!values.length) return null;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export interface ContactTally {
  measured: number;
  inContact: number;
  percent: number | null;
}

/**
 * Contact is re-derived from min_dist_er_nm and the threshold rather than read from `in_contact`, so the
 * figures and summary agree with whatever threshold the caller asks for.
 */
export function contactTally(rows: readonly InstanceRow[], contactNm: number): ContactTally {
  const d = column(rows, "min_dist_er_nm");
  const inContact = d.filter((v) => v <= contactNm).length;
  return { measured: d.length, inContact, percent: d.length ? (100 * inContact) / d.length : null };
}

export function mitoSummary(rows: readonly InstanceRow[], contactNm: number): MitoSummary {
  const branched = rows.filter((r) => r.branched === true);
  const unbranched = rows.filter((r) => r.branched === false);
  const measured = branched.length + unbranched.length;
  const ratios: number[] = [];
  for (const r of unbranched) {
    const l = num(r, "length_nm");
    const w = num(r, "width_nm");
    if (l !== undefined && w !== undefined && w > 0) ratios.push(l / w);
  }
  return {
    branch_measured: measured,
    branched_count: branched.length,
    branched_percent: measured ? (100 * branched.length) / measured : null,
    unbranched_count: unbranched.length,
    unbranched_mean_length_nm: mean(column(unbranched, "length_nm")),
    unbranched_mean_length_width: mean(ratios),
    contact_percent_branched: contactTally(branched, contactNm).percent,
    contact_percent_unbranched: contactTally(unbranched, contactNm).percent,
  };
}

/** One entry per registry class, in registry order (classes without rows have count 0 and nulls). */
export function classSummaries(rows: readonly InstanceRow[], contactNm: number): ClassSummary[] {
  if (!Number.isFinite(contactNm) || contactNm < 0) throw new RangeError(`contact threshold must be >= 0 nm, got ${contactNm}`);
  return CLASSES.map((cls) => {
    const mine = rows.filter((r) => r.class === cls.name);
    const volume = column(mine, "volume_nm3");
    const surface = column(mine, "surface_nm2");
    const sphericity = column(mine, "sphericity");
    const contact = contactTally(mine, contactNm);
    const summary: ClassSummary = {
      class: cls.name,
      label: cls.label,
      count: mine.length,
      mean_volume_nm3: mean(volume),
      median_volume_nm3: median(volume),
      mean_surface_nm2: mean(surface),
      median_surface_nm2: median(surface),
      mean_sphericity: mean(sphericity),
      median_sphericity: median(sphericity),
      mean_min_dist_er_nm: mean(column(mine, "min_dist_er_nm")),
      contact_measured: contact.measured,
      contact_count: contact.inContact,
      contact_percent: contact.percent,
    };
    if (cls.name === "mito") summary.mito = mitoSummary(mine, contactNm);
    return summary;
  });
}

// ---------------------------------------------------------------------------------------------------
// Shared look

