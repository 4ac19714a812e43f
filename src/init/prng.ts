// Small seeded PRNG for deterministic initialization and synthetic data: xoshiro128** seeded by
// splitmix32, normals by Box-Muller. Same seed -> same stream on every platform (integer math
// with Math.imul; Math.log/sin/cos come from V8's own fdlibm port rather than the C library,
// so Node gives the same normals on every machine).

/** 32-bit FNV-1a of a string's UTF-16 units (to derive per-name streams). */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 0x01000193) >>> 0; }
  return h >>> 0;
}

export class Rng {
  private s0: number; private s1: number; private s2: number; private s3: number;
  private spare: number | null = null;

  /**
   * `seed`: any safe integer (negative allowed); `stream` separates independent sequences under one
   * seed (e.g. hashString(tensorName)).
   */
  constructor(seed: number, stream = 0) {
    if (!Number.isSafeInteger(seed)) throw new Error(`Rng: seed must be a safe integer (got ${seed})`);
    const lo = seed >>> 0; const hi = Math.floor(seed / 2 ** 32) >>> 0;
    let x = (lo ^ Math.imul(hi, 0x9e3779b1) ^ Math.imul(stream >>> 0, 0x85ebca6b)) >>> 0;
    const splitmix = () => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = splitmix(); this.s1 = splitmix(); this.s2 = splitmix(); this.s3 = splitmix();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** Uniform 32-bit unsigned integer. */
  nextU32(): number {
    const r = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0; this.s3 ^= this.s1; this.s1 ^= this.s2; this.s0 ^= this.s3;
    this.s2 ^= t; this.s3 = rotl(this.s3, 11);
    return r;
  }

  /** Uniform in [0, 1) with 32 random bits. */
  uniform(): number { return this.nextU32() / 4294967296; }

  /** Uniform integer in [lo, hi] (inclusive); bias below 2^-20 for ranges up to 2^12. */
  int(lo: number, hi: number): number {
    if (!(Number.isSafeInteger(lo) && Number.isSafeInteger(hi) && hi >= lo)) throw new Error(`Rng.int: bad range [${lo}, ${hi}]`);
    return lo + Math.floor(this.uniform() * (hi - lo + 1));
  }

  /** One element of a non-empty array. */
  pick<T>(xs: readonly T[]): T { return xs[this.int(0, xs.length - 1)]!; }

  /** Fisher-Yates shuffle in place. */
  shuffle<T>(xs: T[]): T[] {
    for (let i = xs.length - 1; i > 0; i--) { const j = this.int(0, i); [xs[i], xs[j]] = [xs[j]!, xs[i]!]; }
    return xs;
  }

  /** Standard normal (Box-Muller; the second value of each pair is kept for the next call). */
  normal(): number {
    if (this.spare !== null) { const v = this.spare; this.spare = null; return v; }
    const u1 = (this.nextU32() + 1) / 4294967297; // (0, 1]: log is finite
    const u2 = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u1)); const a = 2 * Math.PI * u2;
    this.spare = r * Math.sin(a);
    return r * Math.cos(a);
  }

  /** Fills `out` with normal(0, std) values. */
  fillNormal(out: Float32Array, std: number): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = std * this.normal();
    return out;
  }
}

function rotl(x: number, k: number): number { return ((x << k) | (x >>> (32 - k))) >>> 0; }
