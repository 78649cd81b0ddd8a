/**
 * Accuracy against analytic truth: the phantom's organelles (formulas of spheres, capsules, swept tubes; ER
 * gaps placed on voxel faces) measured by the same analysis `vemscope run` uses. Tolerances are one-sided
 * and those of the analysis issue: counts exact, min distance <= 6 nm for in-plane gaps, contact
 * classification >= 95%. Organelles whose only ER contact is across sections (ER in the section above or
 * below, none within the threshold in their own sections) and their negative controls one empty section
 * away must be classified exactly, and their contact sites flagged across-section-only.
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

  it("in-plane contacts: every contact site is flagged in-plane, the closest at the designed gap", () => {
    const { matched, analysis } = c();
    const inPlane = matched.filter((m) => m.truth.er_contact && m.truth.min_dist_in_plane && m.truth.class !== "nucleus");
    expect(inPlane.length).toBeGreaterThan(5);
    for (const { truth, row } of inPlane) {
      const sites = analysis.contacts.sites.filter((s) => s.organelle === row.id);
      const msg = JSON.stringify({ id: truth.id, cls: truth.class, gap: truth.min_dist_er_nm, sites: sites.map((s) => [s.min_gap_nm, s.in_plane]) });
      expect(sites.length, msg).toBeGreaterThan(0);
      for (const s of sites) expect(s.in_plane, msg).toBe(true);
      expect(Math.min(...sites.map((s) => s.min_gap_nm)), msg).toBeCloseTo(truth.min_dist_er_nm ?? NaN, 6);
    }
  });

  it("contacts only across sections: classified exactly, min distance exact, every site flagged across sections; controls one section away have none", () => {
    const { matched, analysis } = c();
    const across = matched.filter((m) => m.truth.min_dist_axis === "z");
    const inContact = across.filter((m) => m.truth.contact_across_sections_only);
    const controls = across.filter((m) => m.truth.er_contact === false);
    expect(inContact.length).toBeGreaterThanOrEqual(2);
    expect(new Set(inContact.map((m) => m.truth.class)).size).toBeGreaterThanOrEqual(2);
    expect(controls.length).toBeGreaterThanOrEqual(2);
    for (const { truth, row } of across) {
      const sites = analysis.contacts.sites.filter((s) => s.organelle === row.id);
      const msg = JSON.stringify({ id: truth.id, cls: truth.class, truth: [truth.min_dist_er_nm, truth.er_contact], got: [row.min_dist_er_nm, row.in_contact, row.contact_in_plane], sites: sites.map((s) => [s.min_gap_nm, s.in_plane]) });
      expect(row.in_contact, msg).toBe(truth.er_contact);
      expect(row.min_dist_er_nm, msg).not.toBeNull();
      expect(Math.abs((row.min_dist_er_nm as number) - (truth.min_dist_er_nm as number)), msg).toBeLessThanOrEqual(6);
      // The minimum is attained only across sections, for the controls as well.
      expect(row.contact_in_plane, msg).toBe(false);
      if (truth.er_contact) {
        expect(sites.length, msg).toBeGreaterThan(0);
        expect(row.contact_sites, msg).toBe(sites.length);
        for (const s of sites) expect(s.in_plane, msg).toBe(false);
        expect(Math.min(...sites.map((s) => s.min_gap_nm)), msg).toBe(truth.min_dist_er_nm);
        // The site's ER partner is the designed one: its point lies in the next section beyond the organelle.
        const closest = sites.reduce((a, b) => (b.min_gap_nm < a.min_gap_nm ? b : a));
        expect(Math.abs(closest.erPoint[2] - closest.organellePoint[2]), msg).toBe(1);
      } else {
        expect(sites.length, msg).toBe(0);
        expect(row.contact_area_nm2 ?? 0, msg).toBe(0);
      }
    }
  });
});
