// Seeded PRNG for tests (mulberry32). Tests draw fresh inputs each run: the seed comes from
// SRK_TEST_SEED when set, else from the clock, and is part of every failure message via `seed`.
export interface Rng {
  seed: number;
  uniform(): number;                 // [0, 1)
  normal(): number;                  // standard normal (Box-Muller)
  int(n: number): number;            // integer in [0, n)
  array(n: number, scale?: number): Float64Array; // n normals times scale
}

export function makeRng(seed?: number): Rng {
  const s0 = seed ?? (process.env.SRK_TEST_SEED ? Number(process.env.SRK_TEST_SEED) : (Date.now() ^ (Math.random() * 0x7fffffff)) >>> 0);
  let a = s0 >>> 0;
  const uniform = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = (): number => {
    const u = Math.max(uniform(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * uniform());
  };
  return {
    seed: s0, uniform, normal,
    int: (n) => Math.floor(uniform() * n),
    array: (n, scale = 1) => Float64Array.from({ length: n }, () => normal() * scale),
  };
}
