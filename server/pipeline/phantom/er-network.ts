/**
 * The rest of the ER once organelles and their contact partners are placed: free-standing vertical
 * trunks (full-height sheets and z-parallel tubes) and in-plane connector tubes (one to three
 * axis-parallel legs at a section centre) joining partners and trunks into networks.
 *
 * Components are known by construction: elements either overlap by design (a connector starts and ends
 * inside the elements it joins) or stay erSeparation apart, which no voxelisation can bridge. A
 * connector leaving a partner starts with a leg pointing away from the partner's organelle whose round
 * end reaches back exactly to the partner's near face, so it never comes closer to that organelle than
 * the designed gap.
 */
import type { Box, Vec3 } from "./geometry.js";
import { snapToCentre } from "./geometry.js";
import type { Layout } from "./layout.js";
import { erDistance, erElementFits, lowerBoundOrgEr, requiredClearance, scaledCount } from "./layout.js";
import type { ErElement } from "./shapes.js";

export function placeTrunks(L: Layout, tubeRadii: number[]): void {
  const n = scaledCount(L, L.cfg.counts.erTrunks);
  const [vx, vy, vz] = L.voxel;
  const v: Vec3 = [vx, vy, vz];
  for (let k = 0; k < n; k++) {
    for (let attempt = 0; attempt < 300; attempt++) {
      const lo: Vec3 = [0, 0, 0];
      const hi: Vec3 = [0, 0, 0];
      let r = 0;
      const tube = L.rng.bool(0.5);
      if (tube) {
        r = L.rng.pick(tubeRadii);
        for (const i of [0, 1]) lo[i] = hi[i] = snapToCentre(L.rng.uniform(r + 2 * (v[i] as number), (L.extent[i] as number) - r - 2 * (v[i] as number)), v[i] as number);
      } else {
        const thin = L.rng.int(0, 1);
        const long = 1 - thin;
        const vt = v[thin] as number;
        const vl = v[long] as number;
        const t = Math.round(L.rng.uniform(L.cfg.erSheetThickness[0], L.cfg.erSheetThickness[1]) / vt) * vt;
        const len = Math.round(L.rng.uniform(400, Math.min(1200, 0.5 * (L.extent[long] as number))) / vl) * vl;
        lo[thin] = Math.round(L.rng.uniform(vt, (L.extent[thin] as number) - t - vt) / vt) * vt;
        hi[thin] = (lo[thin] as number) + t;
        lo[long] = Math.round(L.rng.uniform(0, (L.extent[long] as number) - len) / vl) * vl;
        hi[long] = (lo[long] as number) + len;
      }
      lo[2] = 0;
      hi[2] = L.extent[2];
      const e: ErElement = { id: -1, kind: tube ? "tube" : "sheet", box: { lo, hi }, r };
      if (!erElementFits(L, e)) continue;
      e.id = L.nextErId++;
      L.er.push(e);
      break;
    }
  }
}

const isTubeLike = (e: ErElement) => e.box.lo[0] === e.box.hi[0] && e.box.lo[1] === e.box.hi[1];

/** A point inside `e` at height z, as near to `toward` as the element allows, on voxel centres. */
export function corePoint(L: Layout, e: ErElement, z: number, toward: Vec3, rc: number): Vec3 {
  if (isTubeLike(e)) return [e.box.lo[0], e.box.lo[1], z];
  const p: Vec3 = [0, 0, z];
  const spanX = e.box.hi[0] - e.box.lo[0];
  const spanY = e.box.hi[1] - e.box.lo[1];
  const thin = spanX <= spanY ? 0 : 1;
  const long = 1 - thin;
  const v = L.voxel[long] as number;
  p[thin] = snapToCentre(((e.box.lo[thin] as number) + (e.box.hi[thin] as number)) / 2 - (L.voxel[thin] as number) / 2, L.voxel[thin] as number);
  const lo = (e.box.lo[long] as number) + rc + v;
  const hi = (e.box.hi[long] as number) - rc - v;
  p[long] = snapToCentre(lo <= hi ? Math.min(hi, Math.max(lo, toward[long] as number)) : ((e.box.lo[long] as number) + (e.box.hi[long] as number)) / 2, v);
  return p;
}

/** Section-centre heights inside both elements, two sections away from their ends and the volume's. */
function sharedHeights(L: Layout, a: ErElement, b: ErElement): number[] {
  const vz = L.voxel[2];
  const lo = Math.max(a.box.lo[2], b.box.lo[2], 0) + 2 * vz;
  const hi = Math.min(a.box.hi[2], b.box.hi[2], L.extent[2]) - 2 * vz;
  const out: number[] = [];
  for (let z = snapToCentre(lo, vz); z <= hi; z += vz) out.push(z);
  return out;
}

export function leg(p: Vec3, q: Vec3, r: number): ErElement {
  const box: Box = {
    lo: [Math.min(p[0], q[0]), Math.min(p[1], q[1]), Math.min(p[2], q[2])],
    hi: [Math.max(p[0], q[0]), Math.max(p[1], q[1]), Math.max(p[2], q[2])],
  };
  return { id: -1, kind: "connector", box, r };
}

interface Connector {
  legs: ErElement[];
  crossed: number[];
}

function tryConnector(L: Layout, a: ErElement, b: ErElement, rc: number): Connector | undefined {
  const heights = sharedHeights(L, a, b);
  if (heights.length === 0) return undefined;
  const owner = a.ownerId === undefined ? undefined : L.organelles.find((o) => o.id === a.ownerId);
  const c = owner?.contact;
  // Across-section partners are placed after the network (across-sections.ts) and connect themselves.
  const design = c && c.axis !== 2 ? { ...c, axis: c.axis } : undefined;
  for (let attempt = 0; attempt < 30; attempt++) {
    const z = design && attempt === 0 && heights.includes(design.extremePoint[2]) ? design.extremePoint[2] : L.rng.pick(heights);
    const tb = corePoint(L, b, z, [(a.box.lo[0] + a.box.hi[0]) / 2, (a.box.lo[1] + a.box.hi[1]) / 2, z], rc);
    let s: Vec3;
    let axes: (0 | 1)[];
    let sign = 0;
    if (design) {
      // Start where the round end just reaches the partner's near face, then move away from the owner.
      s = [...design.extremePoint];
      s[design.axis] = (s[design.axis] as number) + design.sign * (design.gapNm + rc);
      s[2] = z;
      axes = [design.axis];
      sign = design.sign;
    } else {
      s = corePoint(L, a, z, tb, rc);
      axes = L.rng.shuffle([0, 1] as (0 | 1)[]);
    }
    for (const a1 of axes) {
      const a2 = a1 === 0 ? 1 : 0;
      const v = L.voxel[a1] as number;
      const ext = L.extent[a1] as number;
      const ms = [tb[a1] as number, ...[0, 1, 2, 3, 4].map(() => snapToCentre(L.rng.uniform(rc + v, ext - rc - v), v))];
      for (const m of ms) {
        if (sign !== 0 && sign * (m - (s[a1] as number)) < 2 * rc) continue;
        const m1: Vec3 = [...s];
        m1[a1] = m;
        const m2: Vec3 = [...m1];
        m2[a2] = tb[a2] as number;
        const legs = [leg(s, m1, rc), leg(m1, m2, rc), leg(m2, tb, rc)].filter((l) => l.box.lo.some((x, i) => x !== l.box.hi[i]));
        if (legs.length === 0) continue;
        const crossed: number[] = [];
        const fits = legs.every((l, i) => {
          const c = legFits(L, l, a, b, i === 0 && design ? owner?.id : undefined);
          if (c) crossed.push(...c);
          return c !== undefined;
        });
        if (fits) return { legs, crossed };
      }
    }
  }
  return undefined;
}

/**
 * A leg may cross another vertical ER element (penetrating at least `MERGE_DEPTH`, inside its height)
 * and so join its network; near misses, which the grid might or might not bridge, are refused.
 * Returns the ids crossed, or undefined if the leg does not fit.
 */
export function legFits(L: Layout, l: ErElement, a: ErElement, b: ErElement, slabOwner: number | undefined): number[] | undefined {
  for (let i = 0; i < 2; i++) {
    if ((l.box.lo[i] as number) - l.r < 0 || (l.box.hi[i] as number) + l.r > (L.extent[i] as number)) return undefined;
  }
  for (const o of L.organelles) {
    if (o.id === slabOwner) continue;
    if (lowerBoundOrgEr(L, o, l) < requiredClearance(L, o)) return undefined;
  }
  const crossed: number[] = [];
  const z = l.box.lo[2];
  const vz = L.voxel[2];
  for (const e of L.er) {
    if (e.id === a.id || e.id === b.id) continue;
    const d = erDistance(l, e);
    if (d >= L.cfg.erSeparation) continue;
    const vertical = e.box.hi[2] - e.box.lo[2] > 0;
    const within = vertical ? z >= e.box.lo[2] + vz && z <= e.box.hi[2] - vz : e.box.lo[2] === z;
    if (d <= -MERGE_DEPTH && within) crossed.push(e.id);
    else return undefined;
  }
  return crossed;
}

const MERGE_DEPTH = 20;

class UnionFind {
  private parent = new Map<number, number>();
  find(x: number): number {
    let p = this.parent.get(x) ?? x;
    if (p !== x) {
      p = this.find(p);
      this.parent.set(x, p);
    }
    return p;
  }
  union(a: number, b: number): void {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra !== rb) this.parent.set(Math.max(ra, rb), Math.min(ra, rb));
  }
}

/** Adds connectors and returns the ER components as lists of element ids. */
export function connectNetwork(L: Layout, tubeRadii: number[]): number[][] {
  const uf = new UnionFind();
  const trunks = L.er.filter((e) => e.ownerId === undefined);
  const starts = L.rng.shuffle([...L.er]);
  for (const a of starts) {
    if (!L.rng.bool(L.cfg.connectProbability)) continue;
    const centre = (e: ErElement): [number, number] => [(e.box.lo[0] + e.box.hi[0]) / 2, (e.box.lo[1] + e.box.hi[1]) / 2];
    const [ax, ay] = centre(a);
    const targets = trunks
      .filter((b) => b.id !== a.id && uf.find(b.id) !== uf.find(a.id))
      .sort((p, q) => Math.hypot(centre(p)[0] - ax, centre(p)[1] - ay) - Math.hypot(centre(q)[0] - ax, centre(q)[1] - ay))
      .slice(0, 5);
    for (const b of targets) {
      const conn = tryConnector(L, a, b, L.rng.pick(tubeRadii));
      if (!conn) continue;
      for (const l of conn.legs) {
        l.id = L.nextErId++;
        L.er.push(l);
        uf.union(l.id, a.id);
      }
      uf.union(a.id, b.id);
      for (const id of conn.crossed) uf.union(a.id, id);
      break;
    }
  }
  // Overlaps not made by a connector cannot occur (placement keeps erSeparation), but join them anyway.
  for (let i = 0; i < L.er.length; i++) {
    for (let j = i + 1; j < L.er.length; j++) {
      const p = L.er[i] as ErElement;
      const q = L.er[j] as ErElement;
      if (erDistance(p, q) <= 0) uf.union(p.id, q.id);
    }
  }
  const groups = new Map<number, number[]>();
  for (const e of L.er) {
    const root = uf.find(e.id);
    const g = groups.get(root) ?? [];
    g.push(e.id);
    groups.set(root, g);
  }
  return [...groups.values()].sort((p, q) => (p[0] as number) - (q[0] as number));
}
