import { describe, expect, it } from 'vitest';
import { makeRng } from '../helpers/random.js';
import { relErr1 } from './losses-fd.js';
import { averageRanks, kendallTauB, pearson, spearman } from '../../src/losses/correlation.js';

describe('correlation statistics', () => {
  it('match the scipy 1.17.1 values in ../shared/notes/losses.md §5.2', () => {
    expect(relErr1(pearson([1, 2, 3, 4, 5, 6], [2, 2, 3, 4, 5, 60]), 0.6906626864601291)).toBeLessThan(1e-13);
    const a = [3, 1, 4, 1, 5, 9, 2, 6], b = [2, 7, 1, 8, 2, 8, 1, 8];
    expect(relErr1(pearson(a, b), 0.2096553190730121)).toBeLessThan(1e-13);
    expect(relErr1(spearman(a, b), 0.19885368120992467)).toBeLessThan(1e-13);
    expect(relErr1(kendallTauB(a, b), 0.16051447078102563)).toBeLessThan(1e-13);
  });

  it('average ranks for ties', () => {
    expect(Array.from(averageRanks([10, 20, 10, 30]))).toEqual([1.5, 3, 1.5, 4]);
    expect(Array.from(averageRanks([5, 5, 5]))).toEqual([2, 2, 2]);
    expect(Array.from(averageRanks([3, 1, 2]))).toEqual([3, 1, 2]);
  });

  it('hand cases: perfect, reversed, small Kendall, Spearman formula without ties', () => {
    expect(pearson([1, 2, 3], [2, 4, 6])).toBe(1);
    // Proportional data whose rounding gives 1 + 2.2e-16 unclamped (atanh of it would be NaN): kept in [-1, 1].
    expect(pearson([0.3, 0.6, 1.2], [0.12857142857142856, 0.2571428571428571, 0.5142857142857142])).toBeLessThanOrEqual(1);
    expect(pearson([0.3, 0.6, 1.2], [-0.12857142857142856, -0.2571428571428571, -0.5142857142857142])).toBeGreaterThanOrEqual(-1);
    expect(spearman([1, 2, 3, 4], [1, 8, 27, 64])).toBe(1);
    expect(kendallTauB([1, 2, 3, 4], [4, 3, 2, 1])).toBe(-1);
    expect(kendallTauB([1, 2, 3], [1, 3, 2])).toBeCloseTo(1 / 3, 15);
    // Tau-b with ties by hand: x=[1,1,2], y=[1,2,3]: pairs (0,1) tied in x; (0,2) +; (1,2) +.
    // C - D = 2, n0 = 3, n1 = 1, n2 = 0 -> 2 / sqrt(2 * 3).
    expect(kendallTauB([1, 1, 2], [1, 2, 3])).toBeCloseTo(2 / Math.sqrt(6), 15);
    const rng = makeRng();
    const n = 15;
    const x = rng.array(n), y = rng.array(n);
    const rx = averageRanks(x), ry = averageRanks(y);
    let d2 = 0;
    for (let i = 0; i < n; i++) d2 += (rx[i] - ry[i]) ** 2;
    expect(Math.abs(spearman(x, y) - (1 - (6 * d2) / (n * (n * n - 1)))), `seed ${rng.seed}`).toBeLessThan(1e-13);
  });

  it('undefined cases give NaN; length mismatch throws', () => {
    expect(Number.isNaN(pearson([1, 1, 1], [1, 2, 3]))).toBe(true);
    expect(Number.isNaN(spearman([1], [2]))).toBe(true);
    expect(Number.isNaN(kendallTauB([2, 2], [1, 3]))).toBe(true);
    // Constant by value though its float mean is not exact (scipy: NaN); NaN has no rank.
    expect(Number.isNaN(pearson([0.1, 0.1, 0.1], [1, 2, 4]))).toBe(true);
    expect(Number.isNaN(pearson([1, 2, 4], [0.7, 0.7, 0.7]))).toBe(true);
    expect(Number.isNaN(spearman([1, NaN, 3, 0], [1, 2, 3, 4]))).toBe(true);
    expect(Number.isNaN(spearman([1, 2, 3, 0], [1, 2, NaN, 4]))).toBe(true);
    expect(() => pearson([1, 2], [1])).toThrow();
  });
});
