/**
 * Fine numerical volume, centroid and surface of a union of capsules (equal radius), for branched
 * mitochondria whose union has no closed form. Independent of the 5 x 5 x 45 nm grid:
 * - volume and centroid: exact intervals along x-parallel lines (line/capsule intersection solved in
 *   closed form, intervals merged), midpoint rule over a fine (y, z) grid;
 * - surface: each capsule's own surface (cylinder + two hemispheres) parametrised with equal-area cells
 *   on a fine grid, counting only cells whose centre is not strictly inside another capsule.
 */
import type { Vec3 } from "./geometry.js";
import { distSqPointSegment } from "./geometry.js";

export interface Segment {
  a: Vec3;
  b: Vec3;
}

/** The x-interval where the line (., y, z) lies within r of segment a-b, or undefined. */
export function capsuleLineInterval(seg: Segment, r: number, y: number, z: number): [number, number] | undefined {
  const { a, b } = seg;
  let lo = Infinity;
  let hi = -Infinity;
  const r2 = r * r;
  const restA = r2 - (y - a[1]) ** 2 - (z - a[2]) ** 2;
  if (restA >= 0) {
    const d = Math.sqrt(restA);
    lo = a[0] - d;
    hi = a[0] + d;
  }
  const restB = r2 - (y - b[1]) ** 2 - (z - b[2]) ** 2;
  if (restB >= 0) {
    const d = Math.sqrt(restB);
    lo = Math.min(lo, b[0] - d);
    hi = Math.max(hi, b[0] + d);
  }
  const ux = b[0] - a[0];
  const uy = b[1] - a[1];
  const uz = b[2] - a[2];
  const L = Math.sqrt(ux * ux + uy * uy + uz * uz);
  if (L > 0) {
    const nx = ux / L;
    const ny = uy / L;
    const nz = uz / L;
    // Points (x, y, z) = a + w, w = w0 + x e_x. Distance to the axis: |w - (w.n) n| = |B + x A| with
    // A = e_x - nx n, B = w0 - (w0.n) n; A.A = 1 - nx^2, A.B = B_x (B is orthogonal to n).
    const w0x = -a[0];
    const w0y = y - a[1];
    const w0z = z - a[2];
    const w0n = w0x * nx + w0y * ny + w0z * nz;
    const aa = 1 - nx * nx;
    const ab = w0x - w0n * nx;
    const bb = w0x * w0x + w0y * w0y + w0z * w0z - w0n * w0n;
    let c0 = -Infinity;
    let c1 = Infinity;
    let ok = true;
    if (aa < 1e-12) ok = bb <= r2;
    else {
      const disc = ab * ab - aa * (bb - r2);
      if (disc < 0) ok = false;
      else {
        const s = Math.sqrt(disc);
        c0 = (-ab - s) / aa;
        c1 = (-ab + s) / aa;
      }
    }
    if (ok) {
      // Slab 0 <= (p - a).n <= L, with (p - a).n = w0n + x nx.
      if (Math.abs(nx) < 1e-12) ok = w0n >= 0 && w0n <= L;
      else {
        const t0 = -w0n / nx;
        const t1 = (L - w0n) / nx;
        c0 = Math.max(c0, Math.min(t0, t1));
        c1 = Math.min(c1, Math.max(t0, t1));
        ok = c0 <= c1;
      }
    }
    if (ok) {
      lo = Math.min(lo, c0);
      hi = Math.max(hi, c1);
    }
  }
  return lo <= hi ? [lo, hi] : undefined;
}

export interface UnionIntegral {
  volume: number;
  centroid: Vec3;
}

export function integrateCapsuleUnion(segs: readonly Segment[], r: number, step = 1): UnionIntegral {
  const y0 = Math.min(...segs.flatMap((s) => [s.a[1], s.b[1]])) - r;
  const y1 = Math.max(...segs.flatMap((s) => [s.a[1], s.b[1]])) + r;
  const z0 = Math.min(...segs.flatMap((s) => [s.a[2], s.b[2]])) - r;
  const z1 = Math.max(...segs.flatMap((s) => [s.a[2], s.b[2]])) + r;
  const ny = Math.ceil((y1 - y0) / step);
  const nz = Math.ceil((z1 - z0) / step);
  const n = segs.length;
  const lo = new Float64Array(n);
  const hi = new Float64Array(n);
  const order: number[] = [];
  let vol = 0;
  let mx = 0;
  let my = 0;
  let mz = 0;
  for (let k = 0; k < nz; k++) {
    const z = z0 + (k + 0.5) * step;
    for (let j = 0; j < ny; j++) {
      const y = y0 + (j + 0.5) * step;
      order.length = 0;
      for (let i = 0; i < n; i++) {
        const t = capsuleLineInterval(segs[i] as Segment, r, y, z);
        if (!t) continue;
        lo[i] = t[0];
        hi[i] = t[1];
        // Insertion by start: at most a handful of intervals per line.
        let p = order.length;
        order.push(i);
        while (p > 0 && (lo[order[p - 1] as number] as number) > t[0]) {
          order[p] = order[p - 1] as number;
          p--;
        }
        order[p] = i;
      }
      if (order.length === 0) continue;
      let cLo = lo[order[0] as number] as number;
      let cHi = hi[order[0] as number] as number;
      let len = 0;
      let xm = 0;
      for (let q = 1; q <= order.length; q++) {
        const idx = order[q];
        if (idx !== undefined && (lo[idx] as number) <= cHi) {
          cHi = Math.max(cHi, hi[idx] as number);
          continue;
        }
        len += cHi - cLo;
        xm += (cHi * cHi - cLo * cLo) / 2;
        if (idx !== undefined) {
          cLo = lo[idx] as number;
          cHi = hi[idx] as number;
        }
      }
      vol += len;
      mx += xm;
      my += len * y;
      mz += len * z;
    }
  }
  const cell = step * step;
  return { volume: vol * cell, centroid: [mx / vol, my / vol, mz / vol] };
}

function frame(u: Vec3): [Vec3, Vec3] {
  const helper: Vec3 = Math.abs(u[2]) < 0.9 ? [0, 0, 1] : [1, 0, 0];
  const e1x = u[1] * helper[2] - u[2] * helper[1];
  const e1y = u[2] * helper[0] - u[0] * helper[2];
  const e1z = u[0] * helper[1] - u[1] * helper[0];
  const n1 = Math.hypot(e1x, e1y, e1z);
  const e1: Vec3 = [e1x / n1, e1y / n1, e1z / n1];
  const e2: Vec3 = [u[1] * e1[2] - u[2] * e1[1], u[2] * e1[0] - u[0] * e1[2], u[0] * e1[1] - u[1] * e1[0]];
  return [e1, e2];
}

export function capsuleUnionSurface(segs: readonly Segment[], r: number, step = 0.5): number {
  const r2 = r * r * (1 - 1e-12);
  let area = 0;
  segs.forEach((s, i) => {
    // Flat arrays: this predicate runs tens of millions of times.
    const others = segs.filter((_, j) => j !== i);
    const oa = others.map((o) => o.a);
    const ou = others.map((o): Vec3 => [o.b[0] - o.a[0], o.b[1] - o.a[1], o.b[2] - o.a[2]]);
    const ouu = ou.map((u) => u[0] * u[0] + u[1] * u[1] + u[2] * u[2]);
    const nO = others.length;
    const exposed = (x: number, y: number, z: number): boolean => {
      for (let k = 0; k < nO; k++) {
        const a = oa[k] as Vec3;
        const u = ou[k] as Vec3;
        const uu = ouu[k] as number;
        const wx = x - a[0];
        const wy = y - a[1];
        const wz = z - a[2];
        let t = uu > 0 ? (wx * u[0] + wy * u[1] + wz * u[2]) / uu : 0;
        t = t < 0 ? 0 : t > 1 ? 1 : t;
        const dx = wx - t * u[0];
        const dy = wy - t * u[1];
        const dz = wz - t * u[2];
        if (dx * dx + dy * dy + dz * dz < r2) return false;
      }
      return true;
    };
    // A ring (or cap) whose centre is 2r or more from every other capsule's axis is entirely exposed.
    const farFromOthers = (x: number, y: number, z: number): boolean => {
      for (let k = 0; k < nO; k++) {
        const o = others[k] as Segment;
        if (distSqPointSegment(x, y, z, o.a, o.b) < 4 * r * r * (1 + 1e-9)) return false;
      }
      return true;
    };
    const u: Vec3 = [s.b[0] - s.a[0], s.b[1] - s.a[1], s.b[2] - s.a[2]];
    const L = Math.hypot(u[0], u[1], u[2]);
    const n: Vec3 = L > 0 ? [u[0] / L, u[1] / L, u[2] / L] : [1, 0, 0];
    const [e1, e2] = frame(n);
    const nPsi = Math.ceil((2 * Math.PI * r) / step);
    const cos = new Float64Array(nPsi);
    const sin = new Float64Array(nPsi);
    for (let q = 0; q < nPsi; q++) {
      cos[q] = Math.cos(((q + 0.5) * 2 * Math.PI) / nPsi);
      sin[q] = Math.sin(((q + 0.5) * 2 * Math.PI) / nPsi);
    }
    // Cylinder: cells of r dpsi x dt.
    const nT = Math.ceil(L / step);
    let count = 0;
    for (let t = 0; t < nT; t++) {
      const tt = ((t + 0.5) * L) / nT;
      const cx = s.a[0] + n[0] * tt;
      const cy = s.a[1] + n[1] * tt;
      const cz = s.a[2] + n[2] * tt;
      if (farFromOthers(cx, cy, cz)) {
        count += nPsi;
        continue;
      }
      for (let q = 0; q < nPsi; q++) {
        const c = r * (cos[q] as number);
        const d = r * (sin[q] as number);
        if (exposed(cx + c * e1[0] + d * e2[0], cy + c * e1[1] + d * e2[1], cz + c * e1[2] + d * e2[2])) count++;
      }
    }
    area += nT > 0 ? (count * (2 * Math.PI * r) * L) / (nT * nPsi) : 0;
    // Hemispheres: Archimedes' equal-area map, height eta uniform in [0, 1].
    const nEta = Math.ceil(r / step);
    for (const [end, dir] of [
      [s.a, -1],
      [s.b, 1],
    ] as const) {
      let capCount = 0;
      if (farFromOthers(end[0], end[1], end[2])) {
        area += 2 * Math.PI * r * r;
        continue;
      }
      for (let e = 0; e < nEta; e++) {
        const eta = (e + 0.5) / nEta;
        const ring = Math.sqrt(1 - eta * eta);
        const ax = end[0] + dir * r * eta * n[0];
        const ay = end[1] + dir * r * eta * n[1];
        const az = end[2] + dir * r * eta * n[2];
        for (let q = 0; q < nPsi; q++) {
          const c = r * ring * (cos[q] as number);
          const d = r * ring * (sin[q] as number);
          if (exposed(ax + c * e1[0] + d * e2[0], ay + c * e1[1] + d * e2[1], az + c * e1[2] + d * e2[2])) capCount++;
        }
      }
      area += (capCount * 2 * Math.PI * r * r) / (nEta * nPsi);
    }
  });
  return area;
}
