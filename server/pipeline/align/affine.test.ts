import { describe, expect, it } from "vitest";
import { createRng } from "../random.js";
import { apply, compose, fitAffine, invert, ransacAffine, type Affine } from "./affine.js";

describe("affine", () => {
  it("compose and invert are consistent", () => {
    const t: Affine = [0.98, -0.17, 40, 0.19, 1.03, -25];
    const id = compose(invert(t), t);
    [1, 0, 0, 0, 1, 0].forEach((v, i) => expect(id[i]).toBeCloseTo(v, 10));
  });

  it("least squares recovers an exact affine", () => {
    const t: Affine = [1.02, 0.05, 12.5, -0.08, 0.97, -7];
    const src: number[] = [];
    const dst: number[] = [];
    for (let i = 0; i < 10; i++) {
      const x = (i * 37) % 500;
      const y = (i * 91) % 400;
      src.push(x, y);
      dst.push(...apply(t, x, y));
    }
    const f = fitAffine(src, dst);
    expect(f).toBeDefined();
    (f as Affine).forEach((v, i) => expect(v).toBeCloseTo(t[i] as number, 8));
  });

  it("RANSAC finds a rotation + scale + shear + translation among 40% outliers", () => {
    const rng = createRng(7);
    const th = (8 * Math.PI) / 180;
    const t: Affine = compose([Math.cos(th) * 1.04, -Math.sin(th) * 1.04, 120, Math.sin(th) * 1.04, Math.cos(th) * 1.04, -80], [1, 0.03, 0, 0, 1, 0]);
    const src: number[] = [];
    const dst: number[] = [];
    for (let i = 0; i < 300; i++) {
      const x = rng.uniform(0, 1000);
      const y = rng.uniform(0, 800);
      src.push(x, y);
      if (i % 5 < 2) dst.push(rng.uniform(0, 1000), rng.uniform(0, 800));
      else {
        const [u, v] = apply(t, x, y);
        dst.push(u + 0.3 * rng.normal(), v + 0.3 * rng.normal());
      }
    }
    const r = ransacAffine(src, dst, { threshold: 2, seed: 3 });
    expect(r).toBeDefined();
    if (!r) return;
    expect(r.count).toBeGreaterThanOrEqual(170);
    expect(r.count).toBeLessThanOrEqual(185);
    // Error of the recovered map over the whole field, not just the coefficients.
    let worst = 0;
    for (const [x, y] of [[0, 0], [1000, 0], [0, 800], [1000, 800], [500, 400]] as const) {
      const [a, b] = apply(r.affine, x, y);
      const [c, d] = apply(t, x, y);
      worst = Math.max(worst, Math.hypot(a - c, b - d));
    }
    expect(worst).toBeLessThan(0.25);
    expect(r.rms).toBeLessThan(0.6);
  });

  it("RANSAC gives up on pure noise rather than inventing a transform", () => {
    const rng = createRng(2);
    const src = Array.from({ length: 200 }, () => rng.uniform(0, 500));
    const dst = Array.from({ length: 200 }, () => rng.uniform(0, 500));
    const r = ransacAffine(src, dst, { threshold: 1, seed: 1 });
    expect(r === undefined || r.count < 12).toBe(true);
  });
});
