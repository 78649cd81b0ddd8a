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

/** Feature detection runs on a copy downsampled by this factor. */
export function featureFactor(w: number, h: number, options: CoarseOptions): number {
  return Math.max(1, Math.ceil(Math.max(w, h) / options.featureMaxDim));
}

/** A section's features; undefined for a blank section (nothing to register). Deterministic. */
export function sectionFeatures(src: Section, w: number, h: number, options: CoarseOptions): Features | undefined {
  return isBlank(src) ? undefined : detectFeatures(normalisedFloat(src, w, h, featureFactor(w, h, options)), { maxFeatures: options.maxFeatures });
}

/** The match of section z against its reference: plain JSON, so that a task can hand it to the coordinator. */
export interface PairMatch {
  /** Enough plausible inliers: z is registered to its reference by `pair`. */
  ok: boolean;
  /** Reference pixels -> z's pixels (full resolution); identity when no model was found. */
  pair: Affine;
  matches: number;
  inliers: number;
  rmsPx: number;
}

/** Ratio-test matches and RANSAC (seeded by z) of section z's features against its reference's. */
export function matchSections(ref: Features, features: Features, w: number, h: number, z: number, options: CoarseOptions): PairMatch {
  const factor = featureFactor(w, h, options);
  const m = matchFeatures(ref, features, options.ratio, (options.searchFraction * Math.max(w, h)) / factor);
  const r = m.src.length >= 3 ? ransacAffine(m.src, m.dst, { threshold: options.ransacThreshold / factor, seed: options.seed + z, plausible }) : undefined;
  const matches = m.src.length / 2;
  const ok = r !== undefined && r.count >= options.minInliers && plausible(r.affine);
  return { ok, pair: r ? rescale(r.affine, 1 / factor) : IDENTITY, matches, inliers: r?.count ?? 0, rmsPx: r ? r.rms * factor : 0 };
}

/**
 * The coarse chain, section by section: which section z is matched against (the last good one), and the
 * CoarseSection it becomes. Shared by coarseAlign and the task coordinator (tasks.ts), which feed it the
 * same matches computed elsewhere.
 */
export class CoarseChain {
  readonly sections: CoarseSection[] = [];
  /** The last good section (the reference of the next), -1 before the first non-blank one. */
  ref = -1;

  constructor(private readonly options: CoarseOptions) {}

  /** The section that z (the next one) must be matched against, or undefined when it needs no match. */
  referenceOf(z: number, blank: boolean): number | undefined {
    return z === 0 || this.ref < 0 || blank ? undefined : this.ref;
  }

  /** Appends section z (= sections.length); `match` is its match against referenceOf(z, blank) where that is defined. */
  add(z: number, blank: boolean, match: PairMatch | undefined): void {
    const out = this.sections;
    const ref = this.ref;
    if (z === 0 || ref < 0) {
      out.push({ status: z === 0 ? (blank ? "blank" : "reference") : blank ? "blank" : "no_matches", affine: IDENTITY, matchedTo: -1, matches: 0, inliers: 0, rmsPx: 0 });
      if (!blank) this.ref = z;
      return;
    }
    const prev = out[ref] as CoarseSection;
    if (blank) {
      out.push({ status: "blank", affine: prev.affine, matchedTo: ref, matches: 0, inliers: 0, rmsPx: 0, message: "blank section: previous transform kept" });
      return;
    }
    if (!match) throw new RangeError(`section ${z} needs its match against section ${ref}`);
    if (!match.ok) {
      out.push({
        status: "no_matches",
        affine: prev.affine,
        matchedTo: ref,
        matches: match.matches,
        inliers: match.inliers,
        rmsPx: 0,
        message: `only ${match.inliers} consistent feature matches with section ${ref} (need ${this.options.minInliers}): previous transform kept`,
      });
      // A section we could not register must not become the reference for the next one.
      return;
    }
    out.push({ status: "ok", affine: compose(match.pair, prev.affine), matchedTo: ref, matches: match.matches, inliers: match.inliers, rmsPx: match.rmsPx });
    this.ref = z;
  }
}

export async function coarseAlign(data: Section, w: number, h: number, depth: number, options: CoarseOptions, progress: Progress): Promise<CoarseSection[]> {
  const chain = new CoarseChain(options);
  let refFeatures: Features | undefined;
  progress.start("align: coarse", depth, "sections");
  for (let z = 0; z < depth; z++) {
    const src = sectionView(data, w, h, z);
    const features = sectionFeatures(src, w, h, options);
    const blank = features === undefined;
    const ref = chain.referenceOf(z, blank);
    chain.add(z, blank, ref === undefined ? undefined : matchSections(refFeatures as Features, features as Features, w, h, z, options));
    if (chain.ref === z) refFeatures = features;
    progress.update(z + 1);
    await new Promise((resolve) => setImmediate(resolve));
  }
  progress.end();
  return chain.sections;
}
