/**
 * Sizes and counts of the phantom (nm unless named otherwise), and the choice of radii that a
 * 5 x 5 x 45 nm grid represents well. Counts are for the default 512 x 512 x 64 volume and scale with
 * the volume; sizes stay biological and are clamped to fit smaller volumes.
 */
import type { Vec3 } from "./geometry.js";

export type Range = readonly [number, number];

export interface PhantomConfig {
  counts: {
    mito: Range;
    /** Of the mitochondria: Y/T unions and in-plane arcs; the rest are straight capsules. */
    branchedMito: Range;
    curvedMito: Range;
    ld: Range;
    lyso: Range;
    perox: Range;
    erTrunks: Range;
    /**
     * Organelles whose only ER contact is across sections (partner just above or below, z gap 0) and
     * negative controls one empty section away (the smallest z gap beyond the threshold); see across-sections.ts.
     */
    acrossContact: Range;
    acrossNoContact: Range;
  };
  radii: { mito: Range; ld: Range; lyso: Range; perox: Range; erTube: Range };
  erSheetThickness: Range;
  erSheetHalfLength: Range;
  straightMitoLength: Range;
  arcRadius: Range;
  arcSpanDeg: Range;
  armLength: Range;
  /** Contact gaps (<= threshold) and non-contact gaps, both kept `gapExclusion` away from the threshold. */
  contactThreshold: number;
  gapExclusion: number;
  maxGap: number;
  organelleSeparation: number;
  /** Any ER element other than an organelle's designed partner stays this much further than its gap. */
  erClearance: number;
  /** ER elements of different components stay this far apart, so they never touch in the voxel grid. */
  erSeparation: number;
  /** Across-section designs: other ER stays max(gap, threshold) + this away (see layout.ts acrossClearance). */
  acrossClearance: number;
  boundaryMargin: number;
  boundaryMarginSections: number;
  /** Radii whose voxelised cross-section at zero phase deviates more than this are not used. */
  maxRepresentationError: number;
  connectProbability: number;
  /** Nucleus: depth of the cap into the volume as a fraction of the extent along its cut axis. */
  nucleusDepthFraction: number;
  sampleSpacing: number;
}

export const DEFAULT_PHANTOM_CONFIG: PhantomConfig = {
  counts: {
    mito: [8, 12],
    branchedMito: [2, 3],
    curvedMito: [2, 3],
    ld: [3, 5],
    lyso: [3, 5],
    perox: [3, 6],
    erTrunks: [5, 8],
    acrossContact: [2, 3],
    acrossNoContact: [2, 3],
  },
  radii: { mito: [120, 220], ld: [200, 420], lyso: [150, 300], perox: [100, 200], erTube: [40, 60] },
  erSheetThickness: [40, 60],
  erSheetHalfLength: [150, 500],
  straightMitoLength: [300, 1100],
  arcRadius: [350, 900],
  arcSpanDeg: [70, 150],
  armLength: [250, 550],
  contactThreshold: 30,
  gapExclusion: 8,
  maxGap: 150,
  organelleSeparation: 150,
  erClearance: 60,
  erSeparation: 100,
  acrossClearance: 30,
  boundaryMargin: 60,
  boundaryMarginSections: 2,
  maxRepresentationError: 0.02,
  connectProbability: 0.9,
  nucleusDepthFraction: 0.14,
  sampleSpacing: 4,
};

/** The default volume the counts are given for: 512 x 512 x 64 voxels of 5 x 5 x 45 nm. */
export const REFERENCE_EXTENT_NM: Vec3 = [2560, 2560, 2880];

/**
 * Voxel-count / analytic area of a disc of radius r centred on a voxel centre in a plane sampled at
 * (vIn, vZ): the cross-section of an in-plane tube, whose whole length shares one z phase.
 */
export function tubeCrossSectionError(r: number, vIn: number, vZ: number): number {
  let count = 0;
  for (let k = -Math.floor(r / vZ); k <= Math.floor(r / vZ); k++) {
    const rest = r * r - (k * vZ) ** 2;
    if (rest >= 0) count += 2 * Math.floor(Math.sqrt(rest) / vIn) + 1;
  }
  return (count * vIn * vZ) / (Math.PI * r * r) - 1;
}

/** Voxel-count / analytic volume of a ball centred on a voxel centre. */
export function ballError(r: number, voxel: Vec3): number {
  const [vx, vy, vz] = voxel;
  let count = 0;
  for (let k = -Math.floor(r / vz); k <= Math.floor(r / vz); k++) {
    const rz = r * r - (k * vz) ** 2;
    for (let i = -Math.floor(Math.sqrt(Math.max(rz, 0)) / vx); i * i * vx * vx <= rz; i++) {
      const rest = rz - (i * vx) ** 2;
      if (rest >= 0) count += 2 * Math.floor(Math.sqrt(rest) / vy) + 1;
    }
  }
  return (count * vx * vy * vz) / ((4 / 3) * Math.PI * r ** 3) - 1;
}

/**
 * Radii in [lo, hi] of the form (m + 1/2) * vIn, so that a surface point of a shape centred on a voxel
 * centre lies on a voxel face (gaps to the ER are then whole voxels), and that the grid represents
 * within `maxError` (tubes: the in-plane cross-section; balls: the volume; unchecked: any).
 */
export function admissibleRadii(range: Range, voxel: Vec3, kind: "tube" | "ball" | "unchecked", maxError: number): number[] {
  const vIn = voxel[0];
  const out: number[] = [];
  for (let m = Math.ceil(range[0] / vIn - 0.5); (m + 0.5) * vIn <= range[1]; m++) {
    const r = (m + 0.5) * vIn;
    if (r <= 0) continue;
    const err = kind === "tube" ? tubeCrossSectionError(r, vIn, voxel[2]) : kind === "ball" ? ballError(r, voxel) : 0;
    if (Math.abs(err) <= maxError) out.push(r);
  }
  return out;
}

/** Gaps on whole in-plane voxels: contact ones at or below threshold - exclusion, the others from threshold + exclusion up. */
export function gapChoices(cfg: PhantomConfig, vIn: number): { contact: number[]; noContact: number[] } {
  const contact: number[] = [];
  const noContact: number[] = [];
  for (let g = 0; g <= cfg.maxGap + 1e-9; g += vIn) {
    if (g <= cfg.contactThreshold - cfg.gapExclusion) contact.push(g);
    else if (g >= Math.max(40, cfg.contactThreshold + cfg.gapExclusion)) noContact.push(g);
  }
  return { contact, noContact };
}
