/**
 * Organelles whose only ER contact is across sections, and negative controls just beyond the threshold.
 *
 * At 5 x 5 x 45 nm an ER sheet or tubule lying on top of (or under) an organelle is resolved only across
 * sections: the ER occupies the section above the organelle's top section, and no ER comes within the
 * threshold inside the organelle's own sections. DESIGN.md measures min_dist_er face to face between voxel
 * boundaries, along z as well: voxels in adjacent sections touch (gap 0), one empty section between them is
 * a 45 nm gap. The analytic geometry is built so that the analytic surface-to-surface distance equals that
 * face-to-face distance exactly:
 * - the organelle is a sphere or an in-plane capsule (mitochondrion) whose centreline lies on voxel
 *   centres and whose radius is (m + 1/2) sections (and so also (n + 1/2) in-plane voxels), so its top and
 *   bottom points lie on section faces;
 * - its partner is a horizontal ER sheet (one section thick, box faces on section faces) or an in-plane
 *   tubule of radius (j + 1/2) sections whose axis lies at a section centre, passing over (or under) a
 *   centreline point at z gap g = k sections, with g <= threshold - exclusion (contact: 0 at 45 nm
 *   sections) or the smallest k with g >= threshold + exclusion (no contact: 45 nm, one empty section).
 *   The organelle lies below the plane through its top point and the partner above plane + g, and the
 *   partner passes over a point of the top line, so the analytic distance is g; the voxel columns at that
 *   point are adjacent across the face (or one section apart), so the face-to-face distance is g too.
 * - every other ER element stays max(g, threshold) + 30 nm away (layout.ts acrossClearance: enough that
 *   its voxels are more than the threshold away face to face, in any section), so nothing else is within the
 *   threshold and the partner alone sets min_dist_er.
 *
 * They are placed after the rest of the scene with their own random stream, so the other organelles and the
 * ER network of a seed are unchanged. A partner is joined to the nearest reachable ER trunk by in-plane
 * connector legs at the centre of its first section (radius (j + 1/2) sections, so they stay beyond the
 * organelle's face); if no trunk is reachable it stays a small network of its own.
 */
import type { Range } from "./config.js";
import { corePoint, leg, legFits } from "./er-network.js";
import type { Box, Centreline, Vec3 } from "./geometry.js";
import { dilate, distBoxBox, distSqPointBox, distSqPointCentreline, isOnGrid, snapToCentre, snapToFace } from "./geometry.js";
import type { Candidate, Layout } from "./layout.js";
import { acrossClearance, erElementFits, lowerBoundOrgEr, minInPlaneExtent, organellesTooClose, requiredClearance, scaledCount, snapPoint } from "./layout.js";
import type { ErElement, Organelle, OrganelleClass } from "./shapes.js";
import { organelleBounds, organelleSamples } from "./shapes.js";

const ATTEMPTS_PER_CLASS = 300;
/** Reach of a partner beyond its anchor point, each way (nm): small, to fit between the other ER. */
const PARTNER_HALF_NM: Range = [100, 300];

export interface AcrossRadii {
  mito: number[];
  ld: number[];
  lyso: number[];
  perox: number[];
}

/** Radii (m + 1/2) sections that are also (n + 1/2) in-plane voxels: top and bottom points on section faces. */
export function sectionAlignedRadii(radii: readonly number[], voxel: Vec3): number[] {
  return radii.filter((r) => isOnGrid(r, voxel[2], voxel[2] / 2) && isOnGrid(r, voxel[0], voxel[0] / 2) && isOnGrid(r, voxel[1], voxel[1] / 2));
}

/** z gaps on whole sections: contact ones up to threshold - exclusion, and the smallest clear non-contact one. */
export function acrossGapChoices(L: Layout): { contact: number[]; noContact: number[] } {
  const vz = L.voxel[2];
  const { contactThreshold: t, gapExclusion: ex } = L.cfg;
  const contact: number[] = [];
  for (let g = 0; g <= t - ex + 1e-9; g += vz) contact.push(g);
  return { contact, noContact: [Math.ceil((t + ex) / vz - 1e-9) * vz] };
}

/** Radius of the thinnest tubule that fills whole sections: (j + 1/2) sections, at least 20 nm. */
const tubuleRadius = (vz: number): number => (Math.max(0, Math.ceil(20 / vz - 0.5)) + 0.5) * vz;

/**
 * Clearance of a coarse grid of points: distance to the nearest organelle surface and to the nearest ER
 * surface, capped. The phantom is crowded (every organelle has a partner beside it, mostly full height), so
 * random positions almost never fit; candidates are drawn among grid points with room, then checked exactly.
 */
interface FreeSpace {
  h: number;
  n: Vec3;
  org: Float32Array;
  er: Float32Array;
  cache: Map<string, number[]>;
}

const FREE_STEP_NM = 50;

/** Lowers `field` to dist(cell centre) within `box` dilated by the cap (beyond it the cap already holds). */
function stamp(F: FreeSpace, field: Float32Array, box: Box, cap: number, dist: (x: number, y: number, z: number) => number): void {
  const lo = [0, 1, 2].map((i) => Math.max(0, Math.floor(((box.lo[i] as number) - cap) / F.h)));
  const hi = [0, 1, 2].map((i) => Math.min((F.n[i] as number) - 1, Math.floor(((box.hi[i] as number) + cap) / F.h)));
  for (let k = lo[2] as number; k <= (hi[2] as number); k++) {
    const z = (k + 0.5) * F.h;
    for (let j = lo[1] as number; j <= (hi[1] as number); j++) {
      const y = (j + 0.5) * F.h;
      let at = (lo[0] as number) + F.n[0] * (j + F.n[1] * k);
      for (let i = lo[0] as number; i <= (hi[0] as number); i++, at++) {
        const d = dist((i + 0.5) * F.h, y, z);
        if (d < (field[at] as number)) field[at] = d;
      }
    }
  }
  F.cache.clear();
}

function addOrganelle(F: FreeSpace, o: Organelle, cap: number): void {
  stamp(F, F.org, organelleBounds(o), cap, (x, y, z) => {
    let best = Infinity;
    for (const p of o.prims) best = Math.min(best, distSqPointCentreline(x, y, z, p));
    return Math.sqrt(best) - o.r;
  });
}

function addEr(F: FreeSpace, e: ErElement, cap: number): void {
  stamp(F, F.er, dilate(e.box, e.r), cap, (x, y, z) => Math.sqrt(distSqPointBox(x, y, z, e.box)) - e.r);
}

function freeSpace(L: Layout, cap: number): FreeSpace {
  const h = FREE_STEP_NM;
  const n: Vec3 = [Math.ceil(L.extent[0] / h), Math.ceil(L.extent[1] / h), Math.ceil(L.extent[2] / h)];
  const F: FreeSpace = { h, n, org: new Float32Array(n[0] * n[1] * n[2]).fill(cap), er: new Float32Array(n[0] * n[1] * n[2]).fill(cap), cache: new Map() };
  for (const o of L.organelles) addOrganelle(F, o, cap);
  for (const e of L.er) addEr(F, e, cap);
  return F;
}

/** Grid points where a ball of radius r would keep `sep` from organelles and `need` from the ER, give or take a voxel. */
function roomFor(L: Layout, F: FreeSpace, r: number, sep: number, need: number): number[] {
  const key = `${r}:${sep}:${need}`;
  const hit = F.cache.get(key);
  if (hit) return hit;
  const slack = Math.hypot(L.voxel[0], L.voxel[1], L.voxel[2]) / 2;
  const m: Vec3 = [L.cfg.boundaryMargin, L.cfg.boundaryMargin, L.cfg.boundaryMarginSections * L.voxel[2]];
  const inside = [0, 1, 2].map((i) => {
    const ok = new Uint8Array(F.n[i] as number);
    for (let q = 0; q < ok.length; q++) {
      const c = (q + 0.5) * F.h;
      ok[q] = c >= (m[i] as number) + r + (L.voxel[i] as number) && c <= (L.extent[i] as number) - (m[i] as number) - r - (L.voxel[i] as number) ? 1 : 0;
    }
    return ok;
  });
  const [ix, iy, iz] = inside as [Uint8Array, Uint8Array, Uint8Array];
  const out: number[] = [];
  for (let k = 0, at = 0; k < F.n[2]; k++) {
    for (let j = 0; j < F.n[1]; j++) {
      for (let i = 0; i < F.n[0]; i++, at++) {
        if (!ix[i] || !iy[j] || !iz[k]) continue;
        // The candidate is the nearest voxel centre (within `slack`); the exact checks sample the centreline.
        if ((F.org[at] as number) >= r + sep + slack + L.cfg.sampleSpacing && (F.er[at] as number) >= r + need + slack + L.cfg.sampleSpacing) out.push(at);
      }
    }
  }
  F.cache.set(key, out);
  return out;
}

function roomAt(F: FreeSpace, p: Vec3, r: number, sep: number, need: number): boolean {
  const idx = [0, 1, 2].map((i) => Math.min((F.n[i] as number) - 1, Math.max(0, Math.floor((p[i] as number) / F.h))));
  const at = (idx[0] as number) + F.n[0] * ((idx[1] as number) + F.n[1] * (idx[2] as number));
  const slack = (F.h * Math.sqrt(3)) / 2;
  return (F.org[at] as number) >= r + sep - slack && (F.er[at] as number) >= r + need - slack;
}

/** The voxel centre nearest a random grid point that has room. */
function pointWithRoom(L: Layout, F: FreeSpace, cells: number[]): Vec3 | undefined {
  if (cells.length === 0) return undefined;
  const at = L.rng.pick(cells);
  const i = at % F.n[0];
  const j = Math.floor(at / F.n[0]) % F.n[1];
  const k = Math.floor(at / (F.n[0] * F.n[1]));
  return snapPoint(L, [(i + 0.5) * F.h, (j + 0.5) * F.h, (k + 0.5) * F.h]);
}

function ballCandidate(L: Layout, F: FreeSpace, cls: OrganelleClass, radii: number[], need: number): Candidate | undefined {
  if (radii.length === 0) return undefined;
  const r = L.rng.pick(radii);
  const c = pointWithRoom(L, F, roomFor(L, F, r, L.cfg.organelleSeparation, need));
  return c && { cls, shape: "sphere", r, prims: [{ kind: "point", c }], seedPoint: c };
}

/** A mitochondrion lying in one section plane (both ends on the same voxel-centre height). */
function flatMitoCandidate(L: Layout, F: FreeSpace, radii: number[], need: number): Candidate | undefined {
  if (radii.length === 0) return undefined;
  const r = L.rng.pick(radii);
  const sep = L.cfg.organelleSeparation;
  const c = pointWithRoom(L, F, roomFor(L, F, r, sep, need));
  if (!c) return undefined;
  // The shortest quarter of the straight-mitochondrion lengths: longer ones rarely find room this late.
  const [lo, hi] = L.cfg.straightMitoLength;
  const len = L.rng.uniform(lo, Math.min(lo + (hi - lo) / 4, 0.6 * minInPlaneExtent(L)));
  const az = L.rng.uniform(0, 2 * Math.PI);
  const a = snapPoint(L, [c[0] - (Math.cos(az) * len) / 2, c[1] - (Math.sin(az) * len) / 2, c[2]]);
  const b = snapPoint(L, [c[0] + (Math.cos(az) * len) / 2, c[1] + (Math.sin(az) * len) / 2, c[2]]);
  const span = Math.hypot(b[0] - a[0], b[1] - a[1]);
  if (span < 2 * r) return undefined;
  const steps = Math.ceil(span / (F.h / 2));
  for (let q = 0; q <= steps; q++) {
    const t = q / steps;
    if (!roomAt(F, [a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]), a[2]], r, sep, need)) return undefined;
  }
  return { cls: "mito", shape: "capsule", r, prims: [{ kind: "segment", a, b }], seedPoint: a };
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/** A centreline point on voxel centres, near the middle of the organelle (the partner passes over it). */
function anchorPoint(L: Layout, prim: Centreline): Vec3 | undefined {
  if (prim.kind === "point") return prim.c;
  if (prim.kind !== "segment") return undefined;
  const { a, b } = prim;
  const steps = [0, 1, 2].map((i) => Math.round((b[i] - a[i]) / (L.voxel[i] as number)));
  const g = gcd(gcd(Math.abs(steps[0] as number), Math.abs(steps[1] as number)), Math.abs(steps[2] as number));
  if (g === 0) return a;
  const k = Math.round(g / 2);
  return [0, 1, 2].map((i) => (a[i] as number) + ((steps[i] as number) / g) * k * (L.voxel[i] as number)) as Vec3;
}

interface Design {
  /** z of the organelle's top (sign 1) or bottom (sign -1) surface: a section face. */
  face: number;
  sign: 1 | -1;
  gap: number;
  anchor: Vec3;
}

/** A horizontal sheet (one section or more) or in-plane tubule over/under the anchor, `gap` beyond the face. */
function makePartner(L: Layout, d: Design): { partner: ErElement; legZ: number } | undefined {
  const [vx, vy, vz] = L.voxel;
  const near = d.face + d.sign * d.gap;
  const tube = L.rng.bool(0.5);
  if (tube) {
    const r = tubuleRadius(vz);
    const z = near + d.sign * r;
    if (z - r < 0 || z + r > L.extent[2]) return undefined;
    const along = L.voxel[0] === L.voxel[1] ? L.rng.int(0, 1) : 0;
    const v = along === 0 ? vx : vy;
    const lo: Vec3 = [...d.anchor];
    const hi: Vec3 = [...d.anchor];
    lo[along] = Math.max(r, snapToCentre((d.anchor[along] as number) - L.rng.uniform(...PARTNER_HALF_NM), v));
    hi[along] = Math.min((L.extent[along] as number) - r, snapToCentre((d.anchor[along] as number) + L.rng.uniform(...PARTNER_HALF_NM), v));
    lo[2] = hi[2] = z;
    return { partner: { id: -1, kind: "tube", box: { lo, hi }, r }, legZ: z };
  }
  const t = Math.max(1, Math.round(L.rng.uniform(L.cfg.erSheetThickness[0], L.cfg.erSheetThickness[1]) / vz)) * vz;
  const lo: Vec3 = [0, 0, Math.min(near, near + d.sign * t)];
  const hi: Vec3 = [0, 0, Math.max(near, near + d.sign * t)];
  if (lo[2] < 0 || hi[2] > L.extent[2]) return undefined;
  for (const i of [0, 1]) {
    const v = L.voxel[i] as number;
    const c = d.anchor[i] as number;
    lo[i] = Math.max(0, snapToFace(c - L.rng.uniform(...PARTNER_HALF_NM), v));
    hi[i] = Math.min(L.extent[i] as number, snapToFace(c + L.rng.uniform(...PARTNER_HALF_NM), v));
  }
  // Legs run at the centre of the section next to the organelle, inside the sheet.
  return { partner: { id: -1, kind: "sheet", box: { lo, hi }, r: 0 }, legZ: near + (d.sign * vz) / 2 };
}

interface Connection {
  legs: ErElement[];
  trunk: number;
  crossed: number[];
}

/** In-plane legs in the partner's section from the anchor to the nearest reachable trunk, or undefined. */
function connect(L: Layout, partner: ErElement, owner: Organelle, anchor: Vec3, z: number, components: number[][]): Connection | undefined {
  const rc = tubuleRadius(L.voxel[2]);
  const componentOf = (id: number) => components.findIndex((ids) => ids.includes(id));
  const trunks = L.er
    .filter((e) => e.ownerId === undefined && e.kind !== "connector" && e.box.lo[2] <= z - rc && e.box.hi[2] >= z + rc)
    .map((e) => ({ e, d: distBoxBox(e.box, { lo: [anchor[0], anchor[1], z], hi: [anchor[0], anchor[1], z] }) }))
    .sort((p, q) => p.d - q.d)
    .slice(0, 6);
  const s: Vec3 = [anchor[0], anchor[1], z];
  for (const { e: trunk } of trunks) {
    const tb = corePoint(L, trunk, z, s, rc);
    for (const a1 of L.rng.shuffle([0, 1] as (0 | 1)[])) {
      const a2 = a1 === 0 ? 1 : 0;
      const m1: Vec3 = [...s];
      m1[a1] = tb[a1] as number;
      const m2: Vec3 = [...m1];
      m2[a2] = tb[a2] as number;
      const legs = [leg(s, m1, rc), leg(m1, m2, rc)].filter((l) => l.box.lo.some((x, i) => x !== l.box.hi[i]));
      if (legs.length === 0) continue;
      const crossed: number[] = [];
      const fits = legs.every((l) => {
        const c = legFits(L, l, partner, trunk, owner.id);
        if (c) crossed.push(...c);
        return c !== undefined;
      });
      // Joining two networks would renumber the existing ones: only join the trunk's own network.
      const home = componentOf(trunk.id);
      if (fits && home >= 0 && crossed.every((id) => componentOf(id) === home)) return { legs, trunk: trunk.id, crossed };
    }
  }
  return undefined;
}

function tryPlaceAcross(L: Layout, c: Candidate, inContact: boolean, legHeights: Map<number, number>): Organelle | undefined {
  const o: Organelle = { id: L.nextOrganelleId, cls: c.cls, shape: c.shape, r: c.r, prims: c.prims, seedPoint: c.seedPoint };
  const first = c.prims[0];
  const anchor = first && anchorPoint(L, first);
  if (!anchor) return undefined;
  const bounds = organelleBounds(o);
  const m: Vec3 = [L.cfg.boundaryMargin, L.cfg.boundaryMargin, L.cfg.boundaryMarginSections * L.voxel[2]];
  for (let i = 0; i < 3; i++) if ((bounds.lo[i] as number) < (m[i] as number) || (bounds.hi[i] as number) > (L.extent[i] as number) - (m[i] as number)) return undefined;
  const samples = organelleSamples(o, L.cfg.sampleSpacing);
  for (const other of L.organelles) if (organellesTooClose(L, o, samples, bounds, other, L.cfg.organelleSeparation)) return undefined;
  const choices = acrossGapChoices(L);
  const gap = L.rng.pick(inContact ? choices.contact : choices.noContact);
  const sign: 1 | -1 = L.rng.bool() ? 1 : -1;
  const face = anchor[2] + sign * c.r;
  const extreme: Vec3 = [anchor[0], anchor[1], face];
  if (!isOnGrid(face, L.voxel[2], 0)) return undefined;
  o.contact = { erElementId: -1, axis: 2, sign, gapNm: gap, extremePoint: extreme };
  L.bounds.set(o.id, bounds);
  L.samples.set(o.id, samples);
  const fail = () => {
    L.bounds.delete(o.id);
    L.samples.delete(o.id);
    return undefined;
  };
  const need = requiredClearance(L, o);
  for (const e of L.er) if (lowerBoundOrgEr(L, o, e) < need) return fail();
  for (let attempt = 0; attempt < 3; attempt++) {
    const made = makePartner(L, { face, sign, gap, anchor });
    if (!made || !erElementFits(L, made.partner, o.id)) continue;
    const partner = made.partner;
    partner.id = L.nextErId++;
    partner.ownerId = o.id;
    o.contact.erElementId = partner.id;
    L.nextOrganelleId++;
    L.organelles.push(o);
    L.er.push(partner);
    legHeights.set(partner.id, made.legZ);
    return o;
  }
  return fail();
}

export interface AcrossPlacement {
  /** What could not be placed. */
  skipped: string[];
  /** Partner element id -> height (nm, a section centre) of the connector legs that may join it to a trunk. */
  legHeights: Map<number, number>;
}

/**
 * Adds the across-section organelles (classes drawn without repetition where possible) with their partners.
 * Runs after the other organelles and before the ER trunks, which keep clear of them.
 */
export function placeAcrossSections(L: Layout, radii: AcrossRadii): AcrossPlacement {
  const legHeights = new Map<number, number>();
  const aligned: AcrossRadii = {
    mito: sectionAlignedRadii(radii.mito, L.voxel),
    ld: sectionAlignedRadii(radii.ld, L.voxel),
    lyso: sectionAlignedRadii(radii.lyso, L.voxel),
    perox: sectionAlignedRadii(radii.perox, L.voxel),
  };
  const classes = (Object.keys(aligned) as (keyof AcrossRadii)[]).filter((k) => aligned[k].length > 0);
  const skipped: string[] = [];
  const gaps = acrossGapChoices(L);
  const rMax = Math.max(0, ...aligned.mito, ...aligned.ld, ...aligned.lyso, ...aligned.perox);
  const cap = rMax + Math.max(L.cfg.organelleSeparation, acrossClearance(L, Math.max(...gaps.noContact))) + 2 * FREE_STEP_NM;
  const F = freeSpace(L, cap);
  for (const [range, inContact] of [
    [L.cfg.counts.acrossContact, true],
    [L.cfg.counts.acrossNoContact, false],
  ] as const) {
    const n = scaledCount(L, range);
    const need = acrossClearance(L, Math.max(...(inContact ? gaps.contact : gaps.noContact)));
    // Mitochondria first where they fit (their ER contacts are the paper's main subject), then a shuffled order.
    const order = [...classes.filter((c) => c === "mito"), ...L.rng.shuffle(classes.filter((c) => c !== "mito"))];
    const used = new Set<keyof AcrossRadii>();
    for (let i = 0; i < n; i++) {
      // The i-th class of a shuffled order; if it finds no room, the classes this group lacks, then any.
      const rotated = order.map((_, q) => order[(i + q) % order.length] as keyof AcrossRadii);
      const tries = [...rotated.filter((c) => !used.has(c)), ...rotated.filter((c) => used.has(c))];
      let placed: Organelle | undefined;
      for (const cls of tries) {
        for (let attempt = 0; attempt < ATTEMPTS_PER_CLASS && !placed; attempt++) {
          const cand = cls === "mito" ? flatMitoCandidate(L, F, aligned.mito, need) : ballCandidate(L, F, cls, aligned[cls], need);
          placed = cand && tryPlaceAcross(L, cand, inContact, legHeights);
        }
        if (!placed) continue;
        used.add(cls);
        addOrganelle(F, placed, cap);
        const partner = L.er.find((e) => e.id === placed?.contact?.erElementId);
        if (partner) addEr(F, partner, cap);
        break;
      }
      if (!placed) skipped.push(`organelle across sections${inContact ? "" : " (no contact)"}`);
    }
  }
  return { skipped, legHeights };
}

/**
 * After the network is built: joins each across-section partner to the nearest reachable trunk by connector
 * legs in its section, adding it (and the legs) to that trunk's network in `components`; a partner that
 * reaches no trunk becomes a network of its own, appended.
 */
export function connectAcrossPartners(L: Layout, placement: AcrossPlacement, components: number[][]): void {
  for (const [id, z] of placement.legHeights) {
    const partner = L.er.find((e) => e.id === id);
    const owner = partner && L.organelles.find((o) => o.id === partner.ownerId);
    const first = owner?.prims[0];
    const anchor = first && anchorPoint(L, first);
    const conn = partner && owner && anchor ? connect(L, partner, owner, anchor, z, components) : undefined;
    const home = conn && components.find((ids) => ids.includes(conn.trunk));
    if (!conn || !home) {
      components.push([id]);
      continue;
    }
    for (const l of conn.legs) {
      l.id = L.nextErId++;
      L.er.push(l);
    }
    home.push(id, ...conn.legs.map((l) => l.id));
  }
}
