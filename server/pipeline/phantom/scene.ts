/** Builds the phantom's geometry: nucleus, organelles with contact partners, ER trunks and connectors. */
import { createRng } from "../random.js";
import { DEFAULT_PHANTOM_CONFIG, admissibleRadii, type PhantomConfig } from "./config.js";
import { connectAcrossPartners, placeAcrossSections } from "./across-sections.js";
import { connectNetwork, placeTrunks } from "./er-network.js";
import type { Vec3 } from "./geometry.js";
import { branchedMitoCandidate, curvedMitoCandidate, sphereCandidate, straightMitoCandidate } from "./candidates.js";
import { newLayout, placeNucleus, radiiFor, scaledCount, tryPlace, type Candidate, type Layout } from "./layout.js";
import type { ErElement, Organelle } from "./shapes.js";

export interface Scene {
  seed: number;
  size: Vec3;
  voxel: Vec3;
  extent: Vec3;
  organelles: Organelle[];
  er: ErElement[];
  /** ER element ids per connected network. */
  erComponents: number[][];
  /** Organelles the layout wanted but could not fit (crowded or small volumes). */
  skipped: string[];
}

const ATTEMPTS = 1500;

export function buildScene(seed: number, size: Vec3, voxel: Vec3, cfg: PhantomConfig = DEFAULT_PHANTOM_CONFIG): Scene {
  const rng = createRng(seed).fork("layout");
  const L: Layout = newLayout(rng, voxel, size, cfg);
  const tubeRadii = admissibleRadii(cfg.radii.erTube, voxel, "unchecked", Infinity);
  if (tubeRadii.length === 0) throw new RangeError(`no ER tube radius in [${cfg.radii.erTube.join(", ")}] nm fits ${voxel[0]} nm voxels`);
  const radii = {
    mito: radiiFor(L, cfg.radii.mito, "tube"),
    ld: radiiFor(L, cfg.radii.ld, "ball"),
    lyso: radiiFor(L, cfg.radii.lyso, "ball"),
    perox: radiiFor(L, cfg.radii.perox, "ball"),
  };

  const c = cfg.counts;
  const nMito = scaledCount(L, c.mito);
  const nBranched = Math.min(nMito, scaledCount(L, c.branchedMito));
  const nCurved = Math.min(nMito - nBranched, scaledCount(L, c.curvedMito));
  type Factory = { what: string; make: () => Candidate | undefined };
  const plan: Factory[] = [
    // Hardest to fit first: branched and curved mitochondria, then the large droplets.
    ...Array.from({ length: nBranched }, () => ({ what: "branched mito", make: () => branchedMitoCandidate(L, radii.mito) })),
    ...Array.from({ length: nCurved }, () => ({ what: "curved mito", make: () => curvedMitoCandidate(L, radii.mito) })),
    ...Array.from({ length: scaledCount(L, c.ld) }, () => ({ what: "ld", make: () => sphereCandidate(L, "ld", radii.ld) })),
    ...Array.from({ length: nMito - nBranched - nCurved }, () => ({ what: "mito", make: () => straightMitoCandidate(L, radii.mito) })),
    ...Array.from({ length: scaledCount(L, c.lyso) }, () => ({ what: "lyso", make: () => sphereCandidate(L, "lyso", radii.lyso) })),
    ...Array.from({ length: scaledCount(L, c.perox) }, () => ({ what: "perox", make: () => sphereCandidate(L, "perox", radii.perox) })),
  ];
  // Half of the non-nucleus organelles get a contact gap, the other half a clear non-contact gap.
  const contact = rng.shuffle(plan.map((_, i) => i < Math.ceil(plan.length / 2)));

  const skipped: string[] = [];
  if (!placeNucleus(L, rng.bool(), tubeRadii)) skipped.push("nucleus");
  plan.forEach((f, i) => {
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const cand = f.make();
      if (cand && tryPlace(L, cand, { inContact: contact[i] ?? false, tubeRadii })) return;
    }
    skipped.push(f.what);
  });
  placeTrunks(L, tubeRadii);
  const erComponents = connectNetwork(L, tubeRadii);
  // Last, from their own stream, so that everything above is the same with or without them.
  L.rng = rng.fork("across-sections");
  const across = placeAcrossSections(L, radii);
  skipped.push(...across.skipped);
  connectAcrossPartners(L, across, erComponents);
  return { seed, size, voxel, extent: L.extent, organelles: L.organelles, er: L.er, erComponents, skipped };
}
