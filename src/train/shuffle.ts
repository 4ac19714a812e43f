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

/** Where the training loop stands in the data: the epoch, and the next pair's index in that epoch's order. */
export interface DataPosition { epoch: number; position: number }

/**
 * Where the next step's batch starts: a new epoch once this one's pairs are used up, or, with dropLast,
 * once fewer than a whole batch are left (those sit this epoch out). The training loop and pairsUsed
 * both step through the data with it, so they agree on which pairs a step takes.
 */
export function batchStart(P: number, B: number, dropLast: boolean | undefined, at: DataPosition): DataPosition {
  return at.position >= P || (dropLast && at.position + B > P) ? { epoch: at.epoch + 1, position: 0 } : at;
}

/**
 * The pairs that steps `step` + 1 .. `totalSteps` train on, from data position `at` (1 for each used).
 * A run of --max-steps shorter than an epoch uses only some of the data: the reference pass scores
 * those alone (reference.ts), not every pair before a run of a few steps.
 */
export function pairsUsed(P: number, B: number, dropLast: boolean | undefined, seed: number, at: DataPosition, step: number, totalSteps: number): Uint8Array {
  const used = new Uint8Array(P);
  let count = 0;
  let pos = at;
  let order: Uint32Array | undefined;
  for (let s = step; s < totalSteps && count < P; s++) {
    const next = batchStart(P, B, dropLast, pos);
    if (!order || next.epoch !== pos.epoch) order = epochOrder(P, seed, next.epoch);
    const end = Math.min(next.position + B, P);
    for (let i = next.position; i < end; i++) { count += 1 - used[order[i]]; used[order[i]] = 1; }
    pos = { epoch: next.epoch, position: end };
  }
  return used;
}
