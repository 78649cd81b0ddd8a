import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Vec3 } from "../../../precomputed/array.js";
import { readLabels, readStack } from "../ingest.js";
import { CLASS_CODES, generatePhantom, writePhantom, type Phantom } from "./index.js";
import { rasterise } from "./rasterise.js";
import { buildScene } from "./scene.js";

const dir = mkdtempSync(join(tmpdir(), "vemscope-phantom-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** 26-connected flood fill of voxels equal to `value` from `seed`; returns the visited indices. */
function floodFill(labels: Uint8Array, shape: Vec3, seed: number, value: number, seen: Uint8Array): number[] {
  const [nx, ny, nz] = shape;
  const out: number[] = [];
  if (labels[seed] !== value || seen[seed]) return out;
  const stack = [seed];
  seen[seed] = 1;
  while (stack.length > 0) {
    const at = stack.pop() as number;
    out.push(at);
    const x = at % nx;
    const y = Math.floor(at / nx) % ny;
    const z = Math.floor(at / (nx * ny));
    for (let dz = -1; dz <= 1; dz++)
      for (let dy = -1; dy <= 1; dy++)
        for (let dx = -1; dx <= 1; dx++) {
          const X = x + dx;
          const Y = y + dy;
          const Z = z + dz;
          if (X < 0 || Y < 0 || Z < 0 || X >= nx || Y >= ny || Z >= nz) continue;
          const j = X + nx * (Y + ny * Z);
          if (seen[j] || labels[j] !== value) continue;
          seen[j] = 1;
          stack.push(j);
        }
  }
  return out;
}

function components(labels: Uint8Array, shape: Vec3, value: number): number {
  const seen = new Uint8Array(labels.length);
  let n = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i] === value && !seen[i] && floodFill(labels, shape, i, value, seen).length > 0) n++;
  return n;
}

/**
 * Brute-force face-to-face distance (nm) from a voxel set to the nearest ER voxel, up to `cap`:
 * min over ER voxels e of sqrt(sum_a (max(|u_a - e_a| - 1, 0) v_a)^2), computed as separable
 * min-plus passes over a window around the set (so it is exact below `cap`). With `inPlane`, only
 * ER voxels in the same section count.
 */
function faceDistanceToEr(labels: Uint8Array, shape: Vec3, voxel: Vec3, set: number[], cap: number, inPlane: boolean): number {
  const [nx, ny, nz] = shape;
  const lo: Vec3 = [nx, ny, nz];
  const hi: Vec3 = [-1, -1, -1];
  for (const at of set) {
    const c: Vec3 = [at % nx, Math.floor(at / nx) % ny, Math.floor(at / (nx * ny))];
    for (let a = 0; a < 3; a++) {
      lo[a] = Math.min(lo[a] as number, c[a] as number);
      hi[a] = Math.max(hi[a] as number, c[a] as number);
    }
  }
  const reach = voxel.map((v) => Math.ceil(cap / v) + 2);
  const w0 = lo.map((l, a) => Math.max(0, l - (reach[a] as number)));
  const w1 = hi.map((h, a) => Math.min((shape[a] as number) - 1, h + (reach[a] as number)));
  const W = w1.map((h, a) => h - (w0[a] as number) + 1) as Vec3;
  const INF = 1e30;
  let f = new Float64Array(W[0] * W[1] * W[2]);
  for (let z = 0; z < W[2]; z++)
    for (let y = 0; y < W[1]; y++)
      for (let x = 0; x < W[0]; x++) {
        const g = x + (w0[0] as number) + nx * (y + (w0[1] as number) + ny * (z + (w0[2] as number)));
        f[x + W[0] * (y + W[1] * z)] = labels[g] === CLASS_CODES.er ? 0 : INF;
      }
  const strides = [1, W[0], W[0] * W[1]];
  for (let a = 0; a < 3; a++) {
    const R = a === 2 && inPlane ? 0 : (reach[a] as number);
    if (R === 0) continue;
    const v = voxel[a] as number;
    const cost = Array.from({ length: 2 * R + 1 }, (_, q) => (Math.max(Math.abs(q - R) - 1, 0) * v) ** 2);
    const next = new Float64Array(f.length).fill(INF);
    const s = strides[a] as number;
    const n = W[a];
    const line = new Float64Array(n);
    // Every line along axis a: 1D min-plus convolution with the face-distance cost.
    const [b1, b2] = a === 0 ? [1, 2] : a === 1 ? [0, 2] : [0, 1];
    for (let u = 0; u < W[b2 as 0 | 1 | 2]; u++) {
      for (let t = 0; t < W[b1 as 0 | 1 | 2]; t++) {
        const start = u * (strides[b2] as number) + t * (strides[b1] as number);
        let hasEr = false;
        for (let q = 0; q < n; q++) {
          line[q] = f[start + q * s] as number;
          if ((line[q] as number) < INF) hasEr = true;
        }
        if (!hasEr) continue;
        for (let q = 0; q < n; q++) {
          let best = INF;
          const from = Math.max(0, q - R);
          const to = Math.min(n - 1, q + R);
          for (let e = from; e <= to; e++) {
            const val = (line[e] as number) + (cost[e - q + R] as number);
            if (val < best) best = val;
          }
          next[start + q * s] = best;
        }
      }
    }
    f = next;
  }
  let best = INF;
  for (const at of set) {
    const x = (at % nx) - (w0[0] as number);
    const y = (Math.floor(at / nx) % ny) - (w0[1] as number);
    const z = Math.floor(at / (nx * ny)) - (w0[2] as number);
    best = Math.min(best, f[x + W[0] * (y + W[1] * z)] as number);
  }
  return best >= cap * cap ? Infinity : Math.sqrt(best);
}

describe("default phantom (512 x 512 x 64, 5 x 5 x 45 nm)", () => {
  let p: Phantom;
  const shape: Vec3 = [512, 512, 64];
  const voxel: Vec3 = [5, 5, 45];
  const index = (v: Vec3) => v[0] + shape[0] * (v[1] + shape[1] * v[2]);
  beforeAll(() => {
    p = generatePhantom({ seed: 1 });
  });

  it("has every class, the expected counts, and one connected object per organelle", () => {
    const { truth, labels } = p;
    expect(labels.shape).toEqual(shape);
    const present = new Set(labels.data);
    for (const code of [0, 1, 2, 3, 4, 5, 6]) expect(present.has(code)).toBe(true);
    expect(truth.counts.nucleus).toBe(1);
    expect(truth.counts.mito).toBeGreaterThanOrEqual(8);
    // The configured 8-12, plus those placed for across-section contacts.
    expect(truth.organelles.filter((o) => o.class === "mito" && o.min_dist_axis !== "z").length).toBeLessThanOrEqual(12);
    for (const cls of ["ld", "lyso"] as const) expect(truth.counts[cls]).toBeGreaterThanOrEqual(3);
    expect(truth.counts.perox).toBeGreaterThanOrEqual(3);
    const mitos = truth.organelles.filter((o) => o.class === "mito");
    expect(mitos.filter((o) => o.branched).length).toBeGreaterThanOrEqual(2);
    expect(mitos.filter((o) => o.shape === "arc_tube").length).toBeGreaterThanOrEqual(1);
    for (const cls of ["mito", "ld", "lyso", "perox", "nucleus"] as const) {
      expect(components(labels.data, shape, CLASS_CODES[cls]), cls).toBe(truth.counts[cls]);
    }
    const seen = new Uint8Array(labels.data.length);
    for (const o of truth.organelles) {
      const filled = floodFill(labels.data, shape, index(o.seed_voxel), o.class_code, seen);
      expect(filled.length, `organelle ${o.id} from its seed voxel`).toBe(o.voxel_count);
    }
  });

  it("never lets two objects claim a voxel, and only the nucleus touches the boundary", () => {
    const scene = buildScene(1, shape, voxel);
    expect(rasterise(scene.organelles, scene.er, shape, voxel).conflicts).toBe(0);
    for (const o of p.truth.organelles) {
      const { min, max } = o.bbox_voxels;
      const touches = min.some((m) => m === 0) || max.some((m, a) => m === (shape[a] as number) - 1);
      expect(touches, `organelle ${o.id} (${o.class})`).toBe(o.touches_boundary);
    }
  });

  it("voxel volumes agree with the analytic volumes within 3% (per-class worst reported in truth)", () => {
    const v = voxel[0] * voxel[1] * voxel[2];
    const worst: Record<string, number> = {};
    for (const o of p.truth.organelles) {
      const err = (o.voxel_count * v) / o.volume_nm3 - 1;
      expect(err).toBeCloseTo(o.voxel_volume_error, 12);
      expect(Math.abs(err), `organelle ${o.id} (${o.class}, ${o.shape})`).toBeLessThan(0.03);
      if (Math.abs(err) > Math.abs(worst[o.class] ?? 0)) worst[o.class] = err;
    }
    expect(p.truth.voxel_volume_error_worst).toEqual(worst);
  });

  it("min_dist_er equals the brute-force face-to-face gap on the label volume, in-plane or only across sections", () => {
    const seen = new Uint8Array(p.labels.data.length);
    const threshold = p.truth.contact_threshold_nm;
    let contacts = 0;
    let others = 0;
    for (const o of p.truth.organelles) {
      const gap = o.min_dist_er_nm;
      expect(gap).not.toBeNull();
      if (gap === null) continue;
      expect(Math.abs(gap - threshold)).toBeGreaterThanOrEqual(8);
      expect(o.min_dist_in_plane).toBe(o.min_dist_axis !== "z");
      expect(o.er_contact).toBe(gap <= threshold);
      expect(o.contact_across_sections_only).toBe(gap <= threshold && o.min_dist_axis === "z");
      if (o.class !== "nucleus" && o.min_dist_in_plane) {
        if (gap <= threshold) contacts++;
        else others++;
      }
      const set = floodFill(p.labels.data, shape, index(o.seed_voxel), o.class_code, seen);
      const cap = Math.max(gap, threshold) + 10;
      const measured3d = faceDistanceToEr(p.labels.data, shape, voxel, set, cap, false);
      const measuredPlane = faceDistanceToEr(p.labels.data, shape, voxel, set, cap, true);
      expect(measured3d, `organelle ${o.id} (${o.class}) 3D`).toBeCloseTo(gap, 9);
      if (o.min_dist_in_plane) expect(measuredPlane, `organelle ${o.id} (${o.class}) in-plane`).toBeCloseTo(gap, 9);
      // Across sections only: no ER within the threshold (nor within the gap) in the organelle's own sections.
      else expect(measuredPlane, `organelle ${o.id} (${o.class}) in-plane`).toBeGreaterThan(Math.max(gap, threshold));
    }
    expect(Math.abs(contacts - others)).toBeLessThanOrEqual(2);
  });

  it("has organelles of several classes in contact only across sections, and negative controls one section away", () => {
    const threshold = p.truth.contact_threshold_nm;
    const across = p.truth.organelles.filter((o) => o.min_dist_axis === "z");
    const inContact = across.filter((o) => o.er_contact);
    const controls = across.filter((o) => !o.er_contact);
    expect(inContact.length).toBeGreaterThanOrEqual(2);
    expect(new Set(inContact.map((o) => o.class)).size).toBeGreaterThanOrEqual(2);
    expect(controls.length).toBeGreaterThanOrEqual(2);
    for (const o of inContact) {
      // The ER fills the section next to the organelle's last one: touching across the section face.
      expect(o.min_dist_er_nm).toBe(0);
      expect(o.contact_across_sections_only).toBe(true);
    }
    // The smallest gap along z beyond the threshold: one empty 45 nm section.
    for (const o of controls) expect(o.min_dist_er_nm).toBe(voxel[2]);
    for (const o of across) {
      expect(o.touches_boundary).toBe(false);
      // Radius (m + 1/2) sections on a voxel-centre centreline: top and bottom points on section faces.
      expect((o.geometry.radius_nm / voxel[2]) % 1).toBeCloseTo(0.5, 9);
      const partner = p.truth.er.elements.find((e) => e.id === o.contact_er_element);
      expect(partner?.partner_of).toBe(o.id);
      if (!partner) continue;
      const first = o.geometry.centreline[0];
      const z = first?.kind === "point" ? first.centre_nm[2] : first?.kind === "segment" ? first.a_nm[2] : NaN;
      const top = z + o.geometry.radius_nm;
      const bottom = z - o.geometry.radius_nm;
      const lo = partner.box_nm.lo[2] - partner.radius_nm;
      const hi = partner.box_nm.hi[2] + partner.radius_nm;
      const gap = o.min_dist_er_nm ?? NaN;
      expect(Math.abs(lo - (top + gap)) < 1e-9 || Math.abs(hi - (bottom - gap)) < 1e-9, `organelle ${o.id} partner ${partner.id}`).toBe(true);
    }
    expect(threshold).toBeLessThan(voxel[2]);
  });

  it("has as many 26-connected ER networks as truth says, each reached from its seed voxel", () => {
    const { er } = p.truth;
    expect(components(p.labels.data, shape, CLASS_CODES.er)).toBe(er.component_count);
    const seen = new Uint8Array(p.labels.data.length);
    for (const c of er.components) {
      const filled = floodFill(p.labels.data, shape, index(c.seed_voxel), CLASS_CODES.er, seen);
      expect(filled.length, `ER component ${c.id} seed`).toBeGreaterThan(0);
    }
  });

  it("writes truth with the documented fields", () => {
    const json = JSON.parse(JSON.stringify(p.truth)) as typeof p.truth;
    expect(json.format).toBe("vemscope-phantom-truth");
    expect(json.voxel_nm).toEqual(voxel);
    for (const o of json.organelles) {
      expect(o.sphericity).toBeCloseTo((Math.cbrt(Math.PI) * (6 * o.volume_nm3) ** (2 / 3)) / o.surface_nm2, 9);
      if (o.class === "mito") {
        expect(o.length_nm).toBeGreaterThan(o.width_nm ?? Infinity);
        expect(o.branch_count).toBe(o.branched ? 1 : 0);
        const c = o.geometry.centreline[0];
        if (o.shape === "capsule" && c?.kind === "segment") {
          expect(o.length_nm).toBeCloseTo(Math.hypot(c.b_nm[0] - c.a_nm[0], c.b_nm[1] - c.a_nm[1], c.b_nm[2] - c.a_nm[2]) + 2 * o.geometry.radius_nm, 9);
        }
      } else {
        expect(o.length_nm).toBeNull();
      }
    }
  });
});

describe("determinism and files", () => {
  const small: Vec3 = [200, 200, 24];

  it("same seed gives identical bytes, another seed differs", () => {
    const a = generatePhantom({ seed: 5, size: small });
    const b = generatePhantom({ seed: 5, size: small });
    const c = generatePhantom({ seed: 6, size: small });
    expect(Buffer.from(a.image.data).equals(Buffer.from(b.image.data))).toBe(true);
    expect(Buffer.from(a.labels.data).equals(Buffer.from(b.labels.data))).toBe(true);
    expect(JSON.stringify(a.truth)).toBe(JSON.stringify(b.truth));
    expect(Buffer.from(a.image.data).equals(Buffer.from(c.image.data))).toBe(false);
    expect(Buffer.from(a.labels.data).equals(Buffer.from(c.labels.data))).toBe(false);
  });

  it("writes image.tif, labels.tif and truth.json atomically, readable by the ingest readers", async () => {
    const p = generatePhantom({ seed: 2, size: small });
    const out = join(dir, "ph");
    const steps: string[] = [];
    await writePhantom(out, p, { onProgress: (_d, _t, what) => steps.push(what) });
    expect(readdirSync(out).sort()).toEqual(["image.tif", "labels.tif", "truth.json"]);
    expect(steps).toEqual(["image.tif", "labels.tif", "truth.json", "done"]);
    const img = await readStack(join(out, "image.tif"));
    expect(img.bitDepth).toBe(8);
    expect(Buffer.from(img.volume.data).equals(Buffer.from(p.image.data))).toBe(true);
    const labels = await readLabels(join(out, "labels.tif"));
    expect(Buffer.from(labels.data).equals(Buffer.from(p.labels.data))).toBe(true);
    expect(JSON.parse(readFileSync(join(out, "truth.json"), "utf8"))).toEqual(JSON.parse(JSON.stringify(p.truth)));
    await writePhantom(out, p);
    expect(existsSync(join(out, "truth.json"))).toBe(true);
  });

  it("renders class-typical grey levels (droplets bright, lysosomes and mitochondria dark)", () => {
    const p = generatePhantom({ seed: 3, size: [256, 256, 16] });
    const sum = new Float64Array(7);
    const n = new Float64Array(7);
    p.labels.data.forEach((c, i) => {
      sum[c] = (sum[c] as number) + (p.image.data[i] as number);
      n[c] = (n[c] as number) + 1;
    });
    const mean = (c: number) => (sum[c] as number) / Math.max(1, n[c] as number);
    if ((n[CLASS_CODES.ld] as number) > 0) expect(mean(CLASS_CODES.ld)).toBeGreaterThan(mean(0));
    if ((n[CLASS_CODES.mito] as number) > 0) expect(mean(CLASS_CODES.mito)).toBeLessThan(mean(0));
    if ((n[CLASS_CODES.lyso] as number) > 0) expect(mean(CLASS_CODES.lyso)).toBeLessThan(mean(0));
  });

  it("handles tiny volumes without overlaps (classes may be missing)", () => {
    const p = generatePhantom({ seed: 9, size: [64, 64, 8] });
    expect(p.labels.data.length).toBe(64 * 64 * 8);
    expect(p.truth.organelles.every((o) => o.voxel_count > 0)).toBe(true);
  });
});
