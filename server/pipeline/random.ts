/**
 * Seeded pseudo-random numbers. Everything random in the pipeline (phantoms, augmentation, sampling)
 * draws from here so that a seed reproduces the same bytes on every machine; Math.random is never used.
 *
 * Generator: xoshiro128** (Blackman & Vigna), seeded through splitmix32 so that nearby seeds give
 * unrelated streams. 32-bit integer arithmetic only, hence identical results across JS engines.
 */

export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number;
  /** Uniform integer in [lo, hi], both inclusive. */
  int(lo: number, hi: number): number;
  /** Standard normal (Box-Muller). */
  normal(): number;
  bool(pTrue?: number): boolean;
  pick<T>(items: readonly T[]): T;
  /** Fisher-Yates, in place; returns the same array. */
  shuffle<T>(items: T[]): T[];
  /**
   * An independent stream derived from this generator's seed and a label, not from its current state:
   * adding draws to one stage never changes what another stage sees.
   */
  fork(label: string): Rng;
}

function splitmix32(state: number): () => number {
  let s = state >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** FNV-1a over a string, for turning labels and non-integer seeds into 32-bit seeds. */
export function hashString(text: string, basis = 0x811c9dc5): number {
  let h = basis >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

function seedToUint32(seed: number | string): number {
  if (typeof seed === "string") return hashString(seed);
  if (Number.isInteger(seed) && seed >= 0 && seed <= 0xffffffff) return seed >>> 0;
  // Negative, fractional or huge seeds: hash their decimal text so that distinct numbers stay distinct.
  return hashString(String(seed));
}

export function createRng(seed: number | string): Rng {
  const base = seedToUint32(seed);
  const sm = splitmix32(base);
  let a = sm();
  let b = sm();
  let c = sm();
  let d = sm();
  if ((a | b | c | d) === 0) a = 1; // the all-zero state is a fixed point of xoshiro

  const nextU32 = (): number => {
    const result = Math.imul(rotl(Math.imul(b, 5), 7), 9) >>> 0;
    const t = b << 9;
    c ^= a;
    d ^= b;
    b ^= c;
    a ^= d;
    c ^= t;
    d = rotl(d, 11);
    return result;
  };
  let spareNormal: number | undefined;

  const rng: Rng = {
    next: () => nextU32() / 4294967296,
    uniform: (lo, hi) => lo + (hi - lo) * rng.next(),
    int: (lo, hi) => {
      if (hi < lo) throw new RangeError(`int(${lo}, ${hi}): empty range`);
      return lo + Math.floor(rng.next() * (hi - lo + 1));
    },
    normal: () => {
      if (spareNormal !== undefined) {
        const s = spareNormal;
        spareNormal = undefined;
        return s;
      }
      let u = rng.next();
      while (u === 0) u = rng.next();
      const v = rng.next();
      const m = Math.sqrt(-2 * Math.log(u));
      spareNormal = m * Math.sin(2 * Math.PI * v);
      return m * Math.cos(2 * Math.PI * v);
    },
    bool: (pTrue = 0.5) => rng.next() < pTrue,
    pick: (items) => {
      if (items.length === 0) throw new RangeError("pick from an empty list");
      return items[Math.floor(rng.next() * items.length)] as (typeof items)[number];
    },
    shuffle: (items) => {
      for (let i = items.length - 1; i > 0; i--) {
        const j = Math.floor(rng.next() * (i + 1));
        const tmp = items[i] as (typeof items)[number];
        items[i] = items[j] as (typeof items)[number];
        items[j] = tmp;
      }
      return items;
    },
    fork: (label) => createRng(hashString(label, base ^ 0x5bd1e995)),
  };
  return rng;
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
