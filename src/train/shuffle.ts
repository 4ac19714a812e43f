// Deterministic data order: a seeded permutation per epoch, so the data position of a run is
// just (epoch, index) and a resumed run sees exactly the pairs the uninterrupted run would.
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The order of n items in `epoch` for `seed` (Fisher-Yates). */
export function epochOrder(n: number, seed: number, epoch: number): Uint32Array {
  const rand = mulberry32((seed * 1000003 + epoch * 7919 + 12345) >>> 0);
  const order = Uint32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = order[i]; order[i] = order[j]; order[j] = t;
  }
  return order;
}
