/**
 * Accuracy against analytic truth: the phantom's organelles (formulas of spheres, capsules, swept tubes; ER
 * gaps placed on voxel faces) measured by the same analysis `vemscope run` uses. Tolerances are one-sided
 * and those of the analysis issue: counts exact, min distance <= 6 nm for in-plane gaps, contact
 * classification >= 95%.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { analyseClasses, type Analysis } from "../server/pipeline/analyse.js";
import { generatePhantom, type Phantom } from "../server/pipeline/phantom/index.js";
import type { OrganelleTruth } from "../server/pipeline/phantom/truth.js";
import type { InstanceRow } from "../server/pipeline/report.js";

const SEEDS = [1, 2];
const cases: { seed: number; phantom: Phantom; analysis: Analysis; matched: { truth: OrganelleTruth; row: InstanceRow }[] }[] = [];

beforeAll(() => {
  for (const seed of SEEDS) {
    const phantom = generatePhantom({ seed });
    const analysis = analyseClasses(phantom.labels, phantom.truth.voxel_nm);
    const [nx, ny] = phantom.labels.shape;
    const byId = new Map(analysis.rows.map((r) => [r.id, r]));
    const matched = phantom.truth.organelles.map((truth) => {
      const [x, y, z] = truth.seed_voxel;
      const id = analysis.components.labels[x + nx * (y + ny * z)];
      const row = byId.get(id);
      if (!row) throw new Error(`seed ${seed}: organelle ${truth.id} (${truth.class}) has no instance at its seed voxel`);
      return { truth, row };
    });
    cases.push({ seed, phantom, analysis, matched });
  }
}, 300_000);

describe.each(SEEDS.map((s, i) => [s, i]))("phantom seed %i", (_seed, index) => {
  const c = () => cases[index];

  it("instance counts per class are exact, ER networks included", () => {
    const { phantom, analysis, matched } = c();
    for (const [cls, n] of Object.entries(phantom.truth.counts)) {
      expect(analysis.rows.filter((r) => r.class === cls).length, cls).toBe(n);
    }
    expect(analysis.rows.filter((r) => r.class === "er").length).toBe(phantom.truth.er.component_count);
    // One instance per organelle: no two truth organelles share an instance.
    expect(new Set(matched.map((m) => m.row.id)).size).toBe(matched.length);
  });

  it("min distance to ER within 6 nm for in-plane gaps", () => {
    const errors = c()
      .matched.filter((m) => m.truth.min_dist_er_nm !== null && m.truth.min_dist_in_plane === true && m.truth.class !== "nucleus")
      .map((m) => ({ id: m.truth.id, truth: m.truth.min_dist_er_nm as number, got: m.row.min_dist_er_nm }));
    expect(errors.length).toBeGreaterThan(5);
    for (const e of errors) {
      expect(e.got, JSON.stringify(e)).not.toBeNull();
      expect(Math.abs((e.got as number) - e.truth), JSON.stringify(e)).toBeLessThanOrEqual(6);
    }
  });

  it("volume median error <= 3%, surface <= 6%, sphericity <= 0.04 absolute (organelles inside the volume)", () => {
    const inside = c().matched.filter((m) => !m.truth.touches_boundary);
    const rel = (a: number | null, b: number) => Math.abs((a ?? NaN) / b - 1);
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const vol = inside.map((m) => rel(m.row.volume_nm3, m.truth.volume_nm3));
    const area = inside.map((m) => rel(m.row.surface_nm2, m.truth.surface_nm2));
    expect(med(vol)).toBeLessThanOrEqual(0.03);
    expect(med(area)).toBeLessThanOrEqual(0.06);
    for (const m of inside) {
      const msg = JSON.stringify({ id: m.truth.id, cls: m.truth.class, shape: m.truth.shape, truth: [m.truth.surface_nm2, m.truth.sphericity], got: [m.row.surface_nm2, m.row.sphericity] });
      expect(Math.abs((m.row.sphericity ?? NaN) - m.truth.sphericity), msg).toBeLessThanOrEqual(0.04);
    }
  });

  it("mitochondria: length within 10%, width within 12%, branched classification exact", () => {
    const mitos = c().matched.filter((m) => m.truth.class === "mito");
    expect(mitos.length).toBeGreaterThanOrEqual(8);
    for (const { truth, row } of mitos) {
      const msg = JSON.stringify({ id: truth.id, shape: truth.shape, truth: [truth.length_nm, truth.width_nm, truth.branched], got: [row.length_nm, row.width_nm, row.branched] });
      expect(Math.abs((row.length_nm ?? 0) / (truth.length_nm ?? 1) - 1), msg).toBeLessThanOrEqual(0.1);
      expect(Math.abs((row.width_nm ?? 0) / (truth.width_nm ?? 1) - 1), msg).toBeLessThanOrEqual(0.12);
      expect(row.branched, msg).toBe(truth.branched);
    }
  });

  it("contact classification at 30 nm >= 95% correct, in-plane flag right for in-plane contacts", () => {
    const graded = c().matched.filter((m) => m.truth.er_contact !== null && m.truth.class !== "nucleus");
    const right = graded.filter((m) => m.row.in_contact === m.truth.er_contact).length;
    expect(right / graded.length).toBeGreaterThanOrEqual(0.95);
    for (const m of graded.filter((g) => g.truth.er_contact && g.truth.min_dist_in_plane)) expect(m.row.contact_in_plane).toBe(true);
  });
});
