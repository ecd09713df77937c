/**
 * A small seeded pseudo-random generator (mulberry32) so that every simulated device is
 * reproducible: the same seed and the same sequence of steps give the same messages.
 * Not for anything security-related.
 */
export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform in [min, max). */
  uniform(min: number, max: number): number;
  /** Integer uniform in [min, max] (both inclusive). */
  int(min: number, max: number): number;
  /** Normally distributed (Box–Muller). */
  normal(mean?: number, sd?: number): number;
  /** true with probability p. */
  chance(p: number): boolean;
  /**
   * true when an event of a Poisson process with `ratePerS` happens during `dtS` seconds
   * (probability 1 − e^(−rate·dt)), so behaviour does not depend on the step size.
   */
  happens(ratePerS: number, dtS: number): boolean;
  pick<T>(items: readonly T[]): T;
}

export function createRng(seed: number): Rng {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
  const rng: Rng = {
    next,
    uniform: (min, max) => min + (max - min) * next(),
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    normal: (mean = 0, sd = 1) => {
      const u = 1 - next(); // (0, 1]: log(0) would be −∞
      const v = next();
      return mean + sd * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    },
    chance: (p) => next() < p,
    happens: (ratePerS, dtS) => ratePerS > 0 && next() < 1 - Math.exp(-ratePerS * dtS),
    pick: (items) => {
      if (items.length === 0) throw new Error('pick from an empty list');
      return items[Math.floor(next() * items.length)]!;
    },
  };
  return rng;
}

/**
 * Derives a per-device seed from the simulator seed and names (FNV-1a), so a device behaves the
 * same whether the whole region or only its hub is simulated.
 */
export function seedFor(seed: number, ...names: string[]): number {
  let h = (0x811c9dc5 ^ (seed >>> 0)) >>> 0;
  for (const ch of names.join('/')) {
    h ^= ch.codePointAt(0)!;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}
