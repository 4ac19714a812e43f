// The progress line's ETA (src/train/progress.ts): from the pace of the units done since a label's first
// report, counting only the time between that label's own reports. A resumed run starts at step 900 of
// 1000, and an eval between steps pauses training: neither may make the ETA a fraction of the real one.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Progress } from '../../src/train/progress.js';

describe('Progress ETA', () => {
  afterEach(() => { vi.restoreAllMocks(); });

  function capture(): { lines: string[]; at: (ms: number) => void } {
    const lines: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => { lines.push(String(s).trim()); return true; });
    let now = 0;
    vi.spyOn(performance, 'now').mockImplementation(() => now);
    return { lines, at: (ms: number) => { now = ms; } };
  }

  it('a resumed run: the rate of this pass\'s steps, not the steps done since the start over this pass\'s time', () => {
    const { lines, at } = capture();
    const p = new Progress(true);
    at(10_000); p.update('train', 901, 1000);
    at(20_000); p.update('train', 902, 1000);
    at(30_000); p.update('train', 903, 1000); // 10 s a step: 97 steps left
    expect(lines.at(-1)).toMatch(/^train: 903\/1000 {2}\(20s elapsed, ETA 16m10s\)$/);
  });

  it('an eval between steps neither counts as training time nor restarts training\'s pace', () => {
    const { lines, at } = capture();
    const p = new Progress(true);
    at(0); p.update('train', 1, 100);
    at(2_000); p.update('train', 2, 100);
    at(4_000); p.update('train', 3, 100); // 2 s a step
    at(5_000); p.update('eval', 4, 10);
    at(65_000); p.update('eval', 10, 10);
    at(67_000); p.update('train', 4, 100);
    at(69_000); p.update('train', 5, 100);
    // 6 s over 4 steps (the step right after the eval is not timed): 1.5 s a step, 95 left.
    expect(lines.at(-1)).toMatch(/^train: 5\/100 {2}\(6\.0s elapsed, ETA 2m23s\)$/);
    // The next eval pass counts from its own start.
    at(70_000); p.update('eval', 2, 10);
    at(74_000); p.update('eval', 4, 10);
    expect(lines.at(-1)).toMatch(/^eval: 4\/10 {2}\(4\.0s elapsed, ETA 12s\)$/);
  });
});
