/**
 * Coarse alignment: SIFT-like features per section, ratio-test matches against the last good section,
 * RANSAC affine refined by least squares on its inliers, composed back to slice 0. Blank sections and
 * sections without enough consistent matches keep the previous good section's transform and are flagged.
 */
import { IDENTITY, compose, decompose, ransacAffine, rescale, type Affine } from "./affine.js";
import { detectFeatures, matchFeatures, type Features } from "./features.js";
import { normalisedFloat, sectionStd, sectionView, type Section } from "./image.js";
import type { Progress } from "../progress.js";

export interface CoarseOptions {
  /** Features are found on a copy downsampled so its longer side is at most this. */
  featureMaxDim: number;
  maxFeatures: number;
  ratio: number;
  /** RANSAC inlier distance in full-resolution px. */
  ransacThreshold: number;
  minInliers: number;
  /** Matches are sought within this fraction of the longer side (translation + rotation reach). */
  searchFraction: number;
  seed: number;
}

export const DEFAULT_COARSE: CoarseOptions = {
  featureMaxDim: 1024,
  maxFeatures: 1500,
  ratio: 0.8,
  ransacThreshold: 3,
  minInliers: 12,
  searchFraction: 0.4,
  seed: 1,
};

export type SectionStatus = "reference" | "ok" | "blank" | "no_matches";

export interface CoarseSection {
  status: SectionStatus;
  /** Output (slice-0) coordinates -> this section's pixels. */
  affine: Affine;
  /** The section it was matched against (-1 for slice 0). */
  matchedTo: number;
  matches: number;
  inliers: number;
  rmsPx: number;
  message?: string;
}

/** A section with (almost) no grey-level variation carries nothing to register. */
export function isBlank(src: Section): boolean {
  return sectionStd(src) < (src instanceof Uint16Array ? 64 : 0.5);
}

function plausible(t: Affine): boolean {
  const d = decompose(t);
  return d.scale > 0.8 && d.scale < 1.25 && Math.abs(d.rotationDeg) < 30 && d.anisotropy > 0.8 && d.anisotropy < 1.25;
}

export async function coarseAlign(data: Section, w: number, h: number, depth: number, options: CoarseOptions, progress: Progress): Promise<CoarseSection[]> {
  const factor = Math.max(1, Math.ceil(Math.max(w, h) / options.featureMaxDim));
  const out: CoarseSection[] = [];
  let ref = -1;
  let refFeatures: Features | undefined;
  progress.start("align: coarse", depth, "sections");
  for (let z = 0; z < depth; z++) {
    const src = sectionView(data, w, h, z);
    const blank = isBlank(src);
    const features = blank ? undefined : detectFeatures(normalisedFloat(src, w, h, factor), { maxFeatures: options.maxFeatures });
    if (z === 0 || ref < 0) {
      out.push({ status: z === 0 ? (blank ? "blank" : "reference") : blank ? "blank" : "no_matches", affine: IDENTITY, matchedTo: -1, matches: 0, inliers: 0, rmsPx: 0 });
      if (!blank) {
        ref = z;
        refFeatures = features;
      }
    } else if (!features || blank) {
      const prev = out[ref] as CoarseSection;
      out.push({ status: "blank", affine: prev.affine, matchedTo: ref, matches: 0, inliers: 0, rmsPx: 0, message: "blank section: previous transform kept" });
    } else {
      const prev = out[ref] as CoarseSection;
      const m = matchFeatures(refFeatures as Features, features, options.ratio, (options.searchFraction * Math.max(w, h)) / factor);
      const r = m.src.length >= 3 ? ransacAffine(m.src, m.dst, { threshold: options.ransacThreshold / factor, seed: options.seed + z, plausible }) : undefined;
      const matches = m.src.length / 2;
      if (!r || r.count < options.minInliers || !plausible(r.affine)) {
        out.push({
          status: "no_matches",
          affine: prev.affine,
          matchedTo: ref,
          matches,
          inliers: r?.count ?? 0,
          rmsPx: 0,
          message: `only ${r?.count ?? 0} consistent feature matches with section ${ref} (need ${options.minInliers}): previous transform kept`,
        });
        // A section we could not register must not become the reference for the next one.
      } else {
        const pair = rescale(r.affine, 1 / factor);
        out.push({ status: "ok", affine: compose(pair, prev.affine), matchedTo: ref, matches, inliers: r.count, rmsPx: r.rms * factor });
        ref = z;
        refFeatures = features;
      }
    }
    progress.update(z + 1);
    await new Promise((resolve) => setImmediate(resolve));
  }
  progress.end();
  return out;
}
