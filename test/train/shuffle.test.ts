// The data order: which pairs each step takes (the training loop's batchStart), and pairsUsed, the
// pairs a run's remaining steps take, which the reference pass scores alone when they are not all of them.
import { describe, expect, it } from 'vitest';
import { batchStart, epochOrder, mulberry32, pairsUsed, type DataPosition } from '../../src/train/shuffle.js';

/** The pairs of each step as the trainer takes them, written out step by step. */
function stepsFrom(P: number, B: number, dropLast: boolean, seed: number, at: DataPosition, steps: number): number[][] {
  let { epoch, position } = at;
  const out: number[][] = [];
  for (let s = 0; s < steps; s++) {
    if (position >= P || (dropLast && position + B > P)) { epoch++; position = 0; }
    const end = Math.min(position + B, P);
    out.push([...epochOrder(P, seed, epoch).slice(position, end)]);
    position = end;
  }
  return out;
}

describe('data order', () => {
  it('batchStart rolls over to a new epoch when the pairs, or with dropLast a whole batch, run out', () => {
    expect(batchStart(10, 4, false, { epoch: 0, position: 8 })).toEqual({ epoch: 0, position: 8 });
    expect(batchStart(10, 4, true, { epoch: 0, position: 8 })).toEqual({ epoch: 1, position: 0 });
    expect(batchStart(10, 4, false, { epoch: 2, position: 10 })).toEqual({ epoch: 3, position: 0 });
    expect(batchStart(8, 4, true, { epoch: 0, position: 4 })).toEqual({ epoch: 0, position: 4 });
  });

  it('pairsUsed marks exactly the pairs the remaining steps take, from any position, across epochs', () => {
    const rand = mulberry32(7);
    for (let trial = 0; trial < 300; trial++) {
      const P = 1 + Math.floor(rand() * 40);
      const B = 1 + Math.floor(rand() * Math.min(P, 9));
      const dropLast = rand() < 0.5;
      const seed = Math.floor(rand() * 1000);
      const epoch = Math.floor(rand() * 3);
      const position = Math.floor(rand() * (P + 1));
      const step = Math.floor(rand() * 5);
      const totalSteps = step + Math.floor(rand() * (2 * P / B + 2));
      const want = new Uint8Array(P);
      for (const batch of stepsFrom(P, B, dropLast, seed, { epoch, position }, totalSteps - step)) for (const k of batch) want[k] = 1;
      expect(pairsUsed(P, B, dropLast, seed, { epoch, position }, step, totalSteps), JSON.stringify({ P, B, dropLast, seed, epoch, position, step, totalSteps })).toEqual(want);
    }
  });

  it('each epoch has its own order, and every order is as likely (an unbiased Fisher-Yates)', () => {
    expect([...epochOrder(50, 0, 1)]).not.toEqual([...epochOrder(50, 0, 0)]);
    expect([...epochOrder(50, 1, 0)]).not.toEqual([...epochOrder(50, 0, 0)]);
    // The 6 orders of 3 items over 6000 (seed, epoch) draws: each about 1000 times (binomial sd ~29).
    const counts = new Map<string, number>();
    for (let seed = 0; seed < 60; seed++) for (let epoch = 0; epoch < 100; epoch++) {
      const k = epochOrder(3, seed, epoch).join(',');
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
    expect(counts.size).toBe(6);
    for (const [k, c] of counts) expect(Math.abs(c - 1000), k).toBeLessThan(150);
    // Each item stays in place with probability 1/n (a biased shuffle, as Sattolo's, never leaves one there).
    let fixed = 0;
    for (let seed = 0; seed < 2000; seed++) fixed += epochOrder(5, seed, 0).filter((v, i) => v === i).length;
    expect(fixed / (2000 * 5)).toBeCloseTo(0.2, 1);
  });

  it('a run shorter than an epoch uses only its batches; a run of an epoch or more uses every pair', () => {
    const used = pairsUsed(100, 8, false, 0, { epoch: 0, position: 0 }, 0, 3);
    expect(used.reduce((a, b) => a + b, 0)).toBe(24);
    expect([...epochOrder(100, 0, 0).slice(0, 24)].every((k) => used[k] === 1)).toBe(true);
    expect(pairsUsed(100, 8, false, 0, { epoch: 0, position: 0 }, 0, 13).every((x) => x === 1)).toBe(true);
    // With dropLast the 4 pairs past the 12th batch sit the first epoch out, and the second epoch's first batch may take them.
    const epochPlus = pairsUsed(100, 8, true, 0, { epoch: 0, position: 0 }, 0, 13);
    const sitOut = [...epochOrder(100, 0, 0).slice(96)];
    const second = new Set(epochOrder(100, 0, 1).slice(0, 8));
    expect(sitOut.map((k) => epochPlus[k])).toEqual(sitOut.map((k) => (second.has(k) ? 1 : 0)));
    // A finished run resumed: no steps left, no pairs.
    expect(pairsUsed(100, 8, false, 0, { epoch: 0, position: 96 }, 13, 13).every((x) => x === 0)).toBe(true);
  });
});
