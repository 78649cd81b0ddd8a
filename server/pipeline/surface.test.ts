import { describe, expect, it } from "vitest";
import type { Vec3 } from "../../precomputed/array.js";
import {
  measureMaskSurface,
  measureSurface,
  sectionSignedDistance,
  sphericity,
  volumeToSurface,
  voxelFaceArea,
  type SurfaceOptions,
} from "./surface.js";

/** The stack this project targets: 5 x 5 nm pixels, 45 nm sections. */
const SPACING: Vec3 = [5, 5, 45];

interface Phantom {
  mask: Uint8Array;
  shape: [number, number, number];
  area: number;
  volume: number;
}

/** Voxelises by the voxel-centre test (voxel i spans [i, i+1) * spacing), leaving >= 2 empty voxels around. */
function voxelise(inside: (x: number, y: number, z: number) => boolean, extentNm: Vec3, area: number, volume: number): Phantom {
  const shape: [number, number, number] = [0, 1, 2].map((a) => Math.ceil(extentNm[a] / SPACING[a]) + 4) as [number, number, number];
  const mask = new Uint8Array(shape[0] * shape[1] * shape[2]);
  let i = 0;
  for (let z = 0; z < shape[2]; z++) {
    const Z = (z + 0.5) * SPACING[2];
    for (let y = 0; y < shape[1]; y++) {
      const Y = (y + 0.5) * SPACING[1];
      for (let x = 0; x < shape[0]; x++, i++) mask[i] = inside((x + 0.5) * SPACING[0], Y, Z) ? 1 : 0;
    }
  }
  return { mask, shape, area, volume };
}

/** `shift` moves the centre by that fraction of a voxel along each axis. */
function sphere(r: number, shift: Vec3 = [0, 0, 0]): Phantom {
  const c = [0, 1, 2].map((a) => r + 2 * SPACING[a] + shift[a] * SPACING[a]);
  const ext: Vec3 = [2 * r + 5 * SPACING[0], 2 * r + 5 * SPACING[1], 2 * r + 5 * SPACING[2]];
  const inside = (x: number, y: number, z: number): boolean => (x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 <= r * r;
  return voxelise(inside, ext, 4 * Math.PI * r * r, (4 / 3) * Math.PI * r ** 3);
}

/** Cylinder of length L and radius r with hemispherical ends; axis at `azimuth` in x-y, `elevation` above it. */
function capsule(r: number, L: number, azimuthDeg: number, elevationDeg: number): Phantom {
  const az = (azimuthDeg * Math.PI) / 180;
  const el = (elevationDeg * Math.PI) / 180;
  const d = [Math.cos(el) * Math.cos(az), Math.cos(el) * Math.sin(az), Math.sin(el)];
  const ext = [0, 1, 2].map((a) => Math.abs(d[a]) * L + 2 * r) as Vec3;
  const c = [0, 1, 2].map((a) => ext[a] / 2 + 2 * SPACING[a] + 0.37 * SPACING[a]);
  const inside = (x: number, y: number, z: number): boolean => {
    const p = [x - c[0], y - c[1], z - c[2]];
    const t = Math.max(-L / 2, Math.min(L / 2, p[0] * d[0] + p[1] * d[1] + p[2] * d[2]));
    return (p[0] - t * d[0]) ** 2 + (p[1] - t * d[1]) ** 2 + (p[2] - t * d[2]) ** 2 <= r * r;
  };
  return voxelise(inside, ext, 2 * Math.PI * r * L + 4 * Math.PI * r * r, Math.PI * r * r * L + (4 / 3) * Math.PI * r ** 3);
}

/** Oblate spheroid, semi-axes a (in x and y) > c (in z): flat and only a few sections tall. */
function oblate(a: number, c: number): Phantom {
  const e = Math.sqrt(1 - (c * c) / (a * a));
  const area = 2 * Math.PI * a * a * (1 + ((1 - e * e) / e) * Math.atanh(e));
  const o = [a + 2.3 * SPACING[0], a + 2.6 * SPACING[1], c + 2.2 * SPACING[2]];
  const ext: Vec3 = [2 * a + 5 * SPACING[0], 2 * a + 5 * SPACING[1], 2 * c + 5 * SPACING[2]];
  const inside = (x: number, y: number, z: number): boolean =>
    ((x - o[0]) ** 2 + (y - o[1]) ** 2) / (a * a) + (z - o[2]) ** 2 / (c * c) <= 1;
  return voxelise(inside, ext, area, (4 / 3) * Math.PI * a * a * c);
}

const rel = (measured: number, truth: number): number => measured / truth - 1;

/** Asserts truth * (1 - below) <= measured <= truth * (1 + above). */
function expectWithin(measured: number, truth: number, below: number, above: number): void {
  expect(rel(measured, truth)).toBeGreaterThanOrEqual(-below);
  expect(rel(measured, truth)).toBeLessThanOrEqual(above);
}

function measure(p: Phantom, options?: SurfaceOptions) {
  return measureMaskSurface(p.mask, p.shape, SPACING, options);
}

describe("sphericity and V/SA", () => {
  it("are 1 and r/3 for an analytic ball, lower for a cube", () => {
    const r = 300;
    expect(sphericity((4 / 3) * Math.PI * r ** 3, 4 * Math.PI * r * r)).toBeCloseTo(1, 12);
    expect(volumeToSurface((4 / 3) * Math.PI * r ** 3, 4 * Math.PI * r * r)).toBeCloseTo(r / 3, 9);
    expect(sphericity(1, 6)).toBeCloseTo(Math.cbrt(Math.PI / 6), 12); // unit cube: 0.806
    expect(sphericity(0, 0)).toBeNaN();
  });
});

describe("measureMaskSurface on analytic spheres at 5 x 5 x 45 nm", () => {
  // Area within 5% either way, volume within 3%, sphericity within 0.04 of 1 (the brief's budget).
  for (const r of [150, 250, 500, 1000]) {
    it(`r = ${r} nm`, () => {
      const p = sphere(r);
      expectWithin(p.mask.reduce((s, v) => s + v, 0) * 5 * 5 * 45, p.volume, 0.02, 0.02); // the phantom itself
      const m = measure(p);
      expectWithin(m.surface_nm2, p.area, 0.05, 0.05);
      expectWithin(m.volume_nm3, p.volume, 0.03, 0.03);
      expect(Math.abs(sphericity(m.volume_nm3, m.surface_nm2) - 1)).toBeLessThanOrEqual(0.04);
      expectWithin(volumeToSurface(m.volume_nm3, m.surface_nm2), r / 3, 0.05, 0.05);
    });
  }

  it("is why the method exists: voxel faces are >= 20% high on r = 500 nm, ours within 5%", () => {
    const p = sphere(500);
    expect(rel(voxelFaceArea(p.mask, p.shape, SPACING), p.area)).toBeGreaterThanOrEqual(0.2);
    expectWithin(measure(p).surface_nm2, p.area, 0.05, 0.05);
  });

  it("does not depend on where the sphere sits within a voxel", () => {
    // Sub-voxel shifts move the sections through the sphere (the caps change most); each stays in budget
    // and the spread between positions stays small.
    for (const r of [150, 250]) {
      const areas: number[] = [];
      for (const s of [0, 0.25, 0.5, 0.75]) {
        const p = sphere(r, [s, 1 - s, s]);
        const m = measure(p);
        expectWithin(m.surface_nm2, p.area, 0.05, 0.05);
        expectWithin(m.volume_nm3, p.volume, 0.03, 0.03);
        areas.push(rel(m.surface_nm2, p.area));
      }
      expect(Math.max(...areas) - Math.min(...areas)).toBeLessThanOrEqual(0.03);
    }
  });
});

describe("measureMaskSurface on capsules and a flat ellipsoid", () => {
  const cases: [string, () => Phantom][] = [
    ["r 150 L 1000 along x", () => capsule(150, 1000, 0, 0)],
    ["r 200 L 2000 along x", () => capsule(200, 2000, 0, 0)],
    ["r 175 L 1200 at 30 deg in x-y", () => capsule(175, 1200, 30, 0)],
    ["r 200 L 800 tilted 30 deg out of plane", () => capsule(200, 800, 20, 30)],
    ["r 150 L 500 tilted 30 deg out of plane", () => capsule(150, 500, 0, 30)],
  ];
  for (const [name, make] of cases) {
    it(name, () => {
      const p = make();
      const m = measure(p);
      expectWithin(m.surface_nm2, p.area, 0.06, 0.06);
      expectWithin(m.volume_nm3, p.volume, 0.04, 0.04);
    });
  }

  it("oblate spheroid 600 x 600 x 150 nm (under 7 sections tall)", () => {
    const p = oblate(600, 150);
    const m = measure(p);
    expectWithin(m.surface_nm2, p.area, 0.06, 0.06);
    expectWithin(m.volume_nm3, p.volume, 0.05, 0.05);
  });
});

describe("measureSurface on a label volume", () => {
  it("measures one id among touching neighbours, with or without its bbox", () => {
    const a = sphere(250);
    const [nx, ny, nz] = a.shape;
    // Id 7 is the sphere, id 3 fills everything on one side of it, touching: it must count as outside.
    const labels = new Uint32Array(a.mask.length);
    const bbox = [nx, ny, nz, 0, 0, 0];
    for (let z = 0, i = 0; z < nz; z++)
      for (let y = 0; y < ny; y++)
        for (let x = 0; x < nx; x++, i++) {
          if (a.mask[i]) {
            labels[i] = 7;
            bbox[0] = Math.min(bbox[0], x);
            bbox[1] = Math.min(bbox[1], y);
            bbox[2] = Math.min(bbox[2], z);
            bbox[3] = Math.max(bbox[3], x + 1);
            bbox[4] = Math.max(bbox[4], y + 1);
            bbox[5] = Math.max(bbox[5], z + 1);
          } else if (x < nx / 2) labels[i] = 3;
        }
    const alone = measure(a);
    const withBox = measureSurface(labels, a.shape, SPACING, 7, bbox);
    const scanned = measureSurface(labels, a.shape, SPACING, 7);
    expect(withBox.surface_nm2).toBeCloseTo(alone.surface_nm2, 6);
    expect(withBox.volume_nm3).toBeCloseTo(alone.volume_nm3, 3);
    expect(scanned).toEqual(withBox);
    expect(withBox.voxels).toBe(a.mask.reduce((s, v) => s + v, 0));
  });

  it("closes objects that touch the volume's edge", () => {
    const shape: [number, number, number] = [8, 8, 3];
    const labels = new Uint32Array(8 * 8 * 3).fill(1); // a 40 x 40 x 135 nm block filling the volume
    const m = measureSurface(labels, shape, SPACING, 1);
    expect(m.voxelVolume_nm3).toBe(40 * 40 * 135);
    // Closed, and no larger than the block. Lids are domes rising to the outer voxel faces (the method
    // assumes rounded organelles), so a flat-topped block comes out rounded: about 3/4 of its area.
    expect(m.volume_nm3).toBeGreaterThan(0.7 * 40 * 40 * 135);
    expect(m.volume_nm3).toBeLessThanOrEqual(40 * 40 * 135);
    expect(m.surface_nm2).toBeGreaterThan(0.7 * (2 * 40 * 40 + 4 * 40 * 135));
    expect(m.surface_nm2).toBeLessThanOrEqual(2 * 40 * 40 + 4 * 40 * 135);
  });

  it("handles a single voxel, a missing id and a label split into two parts", () => {
    const shape: [number, number, number] = [5, 5, 7];
    const labels = new Uint32Array(5 * 5 * 7);
    labels[2 + 5 * (2 + 5 * 1)] = 4;
    const one = measureSurface(labels, shape, SPACING, 4);
    expect(one.voxels).toBe(1);
    expect(one.surface_nm2).toBeGreaterThan(0);
    expect(one.volume_nm3).toBeGreaterThan(0);
    expect(one.volume_nm3).toBeLessThan(5 * 5 * 45);
    expect(measureSurface(labels, shape, SPACING, 9)).toEqual({ surface_nm2: 0, volume_nm3: 0, voxelVolume_nm3: 0, voxels: 0 });
    // The same voxel again three sections up, with empty sections between: two separate closed pieces.
    labels[2 + 5 * (2 + 5 * 5)] = 4;
    const two = measureSurface(labels, shape, SPACING, 4);
    expect(two.surface_nm2).toBeCloseTo(2 * one.surface_nm2, 6);
    expect(two.volume_nm3).toBeCloseTo(2 * one.volume_nm3, 6);
  });

  it("rejects a bbox outside the volume and a shape that does not match", () => {
    const labels = new Uint32Array(4 * 4 * 4);
    expect(() => measureSurface(labels, [4, 4, 4], SPACING, 1, [0, 0, 0, 5, 4, 4])).toThrow(RangeError);
    expect(() => measureSurface(labels, [4, 4, 5], SPACING, 1)).toThrow(RangeError);
    expect(() => measureSurface(labels, [4, 4, 4], [5, 0, 45], 1, [0, 0, 0, 4, 4, 4])).toThrow(RangeError);
  });
});

describe("options", () => {
  it("linear interpolation and fewer sub-steps stay near the cubic default on r = 250 nm", () => {
    const p = sphere(250, [0.3, 0.6, 0.4]);
    const base = measure(p);
    for (const o of [{ zSubsteps: 3 }, { zSubsteps: 18 }, { zInterpolation: "linear" as const }, { smoothSigma: 0 }]) {
      const m = measure(p, o);
      expectWithin(m.surface_nm2, base.surface_nm2, 0.05, 0.05);
      expectWithin(m.volume_nm3, base.volume_nm3, 0.05, 0.05);
    }
  });
});

describe("sectionSignedDistance", () => {
  it("matches brute force on random masks with unequal pixel sides", () => {
    let seed = 12345;
    const rand = (): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed / 2 ** 32;
    };
    for (const [w, h, sx, sy, p] of [
      [23, 17, 5, 5, 0.5],
      [31, 29, 4, 7, 0.15],
      [16, 40, 5, 5, 0.85],
    ]) {
      const mask = new Uint8Array(w * h);
      for (let i = 0; i < mask.length; i++) mask[i] = rand() < p ? (rand() < 0.5 ? 1 : 3) : 0;
      const sdf = sectionSignedDistance(mask, w, h, [sx, sy]);
      const half = 0.5 * Math.min(sx, sy);
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++) {
          const inside = mask[y * w + x] !== 0;
          let best = Infinity;
          for (let v = 0; v < h; v++)
            for (let u = 0; u < w; u++)
              if ((mask[v * w + u] !== 0) !== inside) best = Math.min(best, Math.hypot((u - x) * sx, (v - y) * sy));
          if (best === Infinity) continue; // no pixel of the other class at all
          const expected = inside ? half - best : best - half;
          expect(Math.abs(sdf[y * w + x] - expected)).toBeLessThan(1e-3);
        }
    }
  });

  it("keeps every pixel centre on its side when blurred, so one-pixel objects survive", () => {
    const w = 9, h = 9;
    const mask = new Uint8Array(w * h);
    mask[4 * w + 4] = 1;
    const sdf = sectionSignedDistance(mask, w, h, [5, 5], 1);
    for (let i = 0; i < w * h; i++) expect(sdf[i] < 0).toBe(mask[i] !== 0);
  });
});
