/**
 * The skeleton as a tree: cross-section radii, built from TEASAR's paths, pruned of spurs, branch points
 * counted, leaf-to-leaf paths.
 */
import { position, type Grid } from "./skeleton-grid.js";
import { column, type Column, type Teasar } from "./skeleton-teasar.js";

/**
 * Inscribed radius (nm) of the cross-section through a voxel: min(in-plane, half the z-extent). A tube
 * lying flat is limited by whichever is smaller; a tilted or upright one has a long column and is limited
 * in-plane, where 5-nm pixels resolve it. Measured about the column's own centre rather than the voxel's,
 * whose section can sit up to half a section off the tube axis.
 */
export function inscribedRadius(c: Column): number {
  return Math.min(c.inPlane, 0.5 * (c.up + c.down));
}

/** The skeleton as an undirected tree over compact node ids; pruning clears `alive`. */
export interface Tree {
  n: number;
  pos: Float64Array;
  /** Inscribed radius of the cross-section (nm). */
  rho: Float64Array;
  /** Pruning scale: rho, or the in-plane half-width where that is over 2 rho (see prune). */
  size: Float64Array;
  adj: number[][];
  alive: Uint8Array;
}

/** `t` was grown on a binned grid whose cells stand for the full-resolution voxels `rep`. */
export function buildTree(g: Grid, rep: Int32Array, t: Teasar): Tree {
  const n = t.nodes.length;
  const id = new Map<number, number>();
  t.nodes.forEach((v, k) => id.set(v, k));
  const pos = new Float64Array(3 * n);
  const rho = new Float64Array(n);
  const size = new Float64Array(n);
  const adj: number[][] = Array.from({ length: n }, () => []);
  t.nodes.forEach((v, k) => {
    pos.set(position(g, rep[v]), 3 * k);
    const c = column(g, rep[v]);
    rho[k] = inscribedRadius(c);
    size[k] = c.inPlane >= 2 * rho[k] ? c.inPlane : rho[k];
    const p = id.get(t.parent[v]);
    if (p !== undefined) {
      adj[k].push(p);
      adj[p].push(k);
    }
  });
  return { n, pos, rho, size, adj, alive: new Uint8Array(n).fill(1) };
}

export function degree(tr: Tree, v: number): number {
  let d = 0;
  for (const u of tr.adj[v]) d += tr.alive[u];
  return d;
}

export function dist(tr: Tree, a: number, b: number): number {
  const p = tr.pos;
  return Math.hypot(p[3 * a] - p[3 * b], p[3 * a + 1] - p[3 * b + 1], p[3 * a + 2] - p[3 * b + 2]);
}

/** Walks from `from` through `first` along degree-2 nodes; returns the nodes passed and the stop node. */
export function walk(tr: Tree, from: number, first: number): { chain: number[]; end: number } {
  const chain: number[] = [];
  let prev = from;
  let cur = first;
  while (degree(tr, cur) === 2) {
    chain.push(cur);
    let next = -1;
    for (const u of tr.adj[cur]) if (tr.alive[u] === 1 && u !== prev) next = u;
    if (next < 0) break;
    prev = cur;
    cur = next;
  }
  return { chain, end: cur };
}

/**
 * Removes spurs, shortest first. A TEASAR branch runs from its junction out to the surface, so a bump
 * of height h yields a branch about (radius + h) long. Its reach = |tip - junction| - (largest radius
 * along it) is h for a bump but about the arm length for a real arm; it is pruned when
 * reach < k x radius at the junction. k = 1.5: a bumpy or z-stepped tube (reach <= 0.3 r) loses its
 * spurs, a stub of 1.25 r is pruned and an arm of 1.75 r or more survives (measured on T and Y shapes,
 * r = 120-200 nm). "Radius" here is `size`: the in-plane half-width where that exceeds twice the
 * inscribed radius, so that a sheet a few sections thick is not read as a bush of branches. Shortest
 * first, one at a time, so that at a junction near a tip the longer of two short ends stays on.
 */
export function prune(tr: Tree, k: number): void {
  for (;;) {
    let best: number[] | null = null;
    let bestReach = Infinity;
    for (let v = 0; v < tr.n; v++) {
      if (tr.alive[v] === 0 || degree(tr, v) !== 1) continue;
      let first = -1;
      for (const u of tr.adj[v]) if (tr.alive[u] === 1) first = u;
      const { chain, end } = walk(tr, v, first);
      if (degree(tr, end) < 3) return; // the whole tree is one unbranched path
      let sizeMax = Math.max(tr.size[v], tr.size[end]);
      for (const c of chain) sizeMax = Math.max(sizeMax, tr.size[c]);
      const reach = dist(tr, v, end) - sizeMax;
      if (reach < k * tr.size[end] && reach < bestReach) {
        bestReach = reach;
        best = [v, ...chain];
      }
    }
    if (best === null) return;
    for (const c of best) tr.alive[c] = 0;
  }
}

/** Junction nodes joined by a stretch shorter than their radius are one branch point (e.g. a "+"). */
export function countBranchPoints(tr: Tree): number {
  const junctions: number[] = [];
  for (let v = 0; v < tr.n; v++) if (tr.alive[v] === 1 && degree(tr, v) >= 3) junctions.push(v);
  const root = new Map<number, number>(junctions.map((j) => [j, j]));
  const find = (a: number): number => {
    let r = a;
    for (let up = root.get(r); up !== undefined && up !== r; up = root.get(r)) r = up;
    return r;
  };
  for (const j of junctions)
    for (const u of tr.adj[j]) {
      if (tr.alive[u] === 0) continue;
      const { end } = walk(tr, j, u);
      if (end !== j && degree(tr, end) >= 3 && dist(tr, j, end) < Math.max(tr.size[j], tr.size[end]))
        root.set(find(j), find(end));
    }
  return new Set(junctions.map(find)).size;
}

/** Tree path between every pair of leaves, via one BFS per leaf. */
export function leafPaths(tr: Tree, leaves: number[]): number[][] {
  const out: number[][] = [];
  const parent = new Int32Array(tr.n);
  for (let a = 0; a < leaves.length; a++) {
    parent.fill(-2);
    const queue = [leaves[a]];
    parent[leaves[a]] = -1;
    for (let h = 0; h < queue.length; h++) {
      const v = queue[h];
      for (const u of tr.adj[v])
        if (tr.alive[u] === 1 && parent[u] === -2) {
          parent[u] = v;
          queue.push(u);
        }
    }
    for (let b = a + 1; b < leaves.length; b++) {
      const path: number[] = [];
      for (let v = leaves[b]; v >= 0; v = parent[v]) path.push(v);
      out.push(path);
    }
  }
  return out;
}
