/**
 * Marching-cubes case tables, derived at load time instead of pasted in.
 *
 * For each of the 256 inside/outside corner patterns: on every cube face, join the face's iso crossings
 * into segments; the segments close into loops; each loop, oriented so its normal points from the inside
 * corners to the outside ones, is one polygon. A face's segments depend only on its own four corners, so
 * the two cubes sharing a face draw the same segments and the surface has no cracks. On a face whose
 * inside corners are diagonal (the ambiguous case) the inside corners are joined, matching the
 * 26-connected instances of label.ts.
 */

/** Corner c sits at (c & 1, (c >> 1) & 1, (c >> 2) & 1). */
export const CORNER_OFFSETS: readonly (readonly [number, number, number])[] = Array.from({ length: 8 }, (_, c) => [c & 1, (c >> 1) & 1, (c >> 2) & 1] as const);

/** The 12 edges as [corner a, corner b, axis], a the lower corner. */
export const EDGES: readonly (readonly [number, number, number])[] = (() => {
  const out: [number, number, number][] = [];
  for (let axis = 0; axis < 3; ++axis) {
    for (let c = 0; c < 8; ++c) if (!(c & (1 << axis))) out.push([c, c | (1 << axis), axis]);
  }
  return out;
})();

function edgeIndex(a: number, b: number): number {
  const lo = Math.min(a, b);
  const hi = Math.max(a, b);
  return EDGES.findIndex(([x, y]) => x === lo && y === hi);
}

/** The 6 faces as corner cycles (any consistent cyclic order). */
const FACES: number[][] = (() => {
  const out: number[][] = [];
  for (let axis = 0; axis < 3; ++axis) {
    const [u, v] = [0, 1, 2].filter((d) => d !== axis);
    for (const side of [0, 1]) {
      const base = side << axis;
      out.push([base, base | (1 << u), base | (1 << u) | (1 << v), base | (1 << v)]);
    }
  }
  return out;
})();

function polygonsFor(inside: (c: number) => boolean): number[][] {
  // adjacency between crossing edges, via face segments
  const links = new Map<number, number[]>();
  const link = (a: number, b: number): void => {
    for (const [x, y] of [[a, b], [b, a]]) {
      const list = links.get(x) ?? [];
      list.push(y);
      links.set(x, list);
    }
  };
  for (const face of FACES) {
    // crossings in cyclic order around the face, each tagged with whether the arc after it is inside
    const crossings: { edge: number; insideAfter: boolean }[] = [];
    for (let k = 0; k < 4; ++k) {
      const a = face[k];
      const b = face[(k + 1) % 4];
      if (inside(a) !== inside(b)) crossings.push({ edge: edgeIndex(a, b), insideAfter: inside(b) });
    }
    if (crossings.length === 0) continue;
    // Pair each crossing with the next one around the face so that segments enclose outside arcs: the
    // inside corners of an ambiguous face stay joined.
    const start = crossings.findIndex((c) => !c.insideAfter);
    for (let k = 0; k < crossings.length; k += 2) {
      const a = crossings[(start + k) % crossings.length];
      const b = crossings[(start + k + 1) % crossings.length];
      link(a.edge, b.edge);
    }
  }
  const polygons: number[][] = [];
  const used = new Set<number>();
  for (const first of links.keys()) {
    if (used.has(first)) continue;
    const loop = [first];
    used.add(first);
    let prev = -1;
    let cur = first;
    for (;;) {
      const [n0, n1] = links.get(cur) ?? [];
      const next = n0 !== prev ? n0 : n1;
      if (next === first || next === undefined) break;
      loop.push(next);
      used.add(next);
      prev = cur;
      cur = next;
    }
    polygons.push(orient(loop, inside));
  }
  return polygons;
}

function orient(loop: number[], inside: (c: number) => boolean): number[] {
  const mid = (e: number): number[] => {
    const [a, b] = EDGES[e];
    return [0, 1, 2].map((d) => (CORNER_OFFSETS[a][d] + CORNER_OFFSETS[b][d]) / 2);
  };
  // Newell normal of the loop through edge midpoints
  const n = [0, 0, 0];
  loop.forEach((e, i) => {
    const p = mid(e);
    const q = mid(loop[(i + 1) % loop.length]);
    n[0] += (p[1] - q[1]) * (p[2] + q[2]);
    n[1] += (p[2] - q[2]) * (p[0] + q[0]);
    n[2] += (p[0] - q[0]) * (p[1] + q[1]);
  });
  // outward = from each crossing edge's inside corner to its outside corner
  let dot = 0;
  for (const e of loop) {
    const [a, , axis] = EDGES[e];
    dot += n[axis] * (inside(a) ? 1 : -1);
  }
  return dot >= 0 ? loop : [...loop].reverse();
}

/** Fan from an apex whose diagonals never join two vertices on one cube face (those could be a neighbour's diagonal too). */
function triangulate(loop: number[]): number[] {
  const faceMask = (e: number): number => {
    const [a, b] = EDGES[e];
    return FACES.reduce((m, f, i) => (f.includes(a) && f.includes(b) ? m | (1 << i) : m), 0);
  };
  const n = loop.length;
  for (let s = 0; s < n; ++s) {
    const apex = loop[s];
    let ok = true;
    for (let k = 2; k < n - 1 && ok; ++k) ok = (faceMask(apex) & faceMask(loop[(s + k) % n])) === 0;
    if (!ok) continue;
    const tris: number[] = [];
    for (let k = 1; k < n - 1; ++k) tris.push(apex, loop[(s + k) % n], loop[(s + k + 1) % n]);
    return tris;
  }
  throw new Error(`no safe fan apex for loop ${loop.join(",")}`);
}

/** TRIANGLES[caseIndex] = edge indices, three per triangle, counter-clockwise seen from outside. */
export const TRIANGLES: readonly Int8Array[] = Array.from({ length: 256 }, (_, mask) => {
  const inside = (c: number): boolean => ((mask >> c) & 1) === 1;
  return Int8Array.from(polygonsFor(inside).flatMap(triangulate));
});
