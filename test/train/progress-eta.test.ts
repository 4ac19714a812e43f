// The progress line's elapsed time and ETA (src/train/progress.ts): from the pace of the units done since a
// label started, its time counted from its own last report or, where another label reported in between,
// from that one's last report. A resumed run starts at step 900 of 1000, and an eval between steps pauses
// training: neither may make the ETA a fraction of the real one, nor drop the step after the eval.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Progress, dueFrom, describeGpuMemory, fmtBytes } from '../../src/train/progress.js';

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

  it('an eval between steps is not training time, the step after it is, and training\'s pace goes on', () => {
    const { lines, at } = capture();
    const p = new Progress(true);
    at(0); p.start('train', 0);
    at(2_000); p.update('train', 1, 100); // the first step timed from the start
    expect(lines.at(-1)).toMatch(/^train: 1\/100 {2}\(2\.0s elapsed, ETA 3m18s\)$/);
    at(4_000); p.update('train', 2, 100); // 2 s a step
    at(4_000); p.start('eval', 0);
    at(5_000); p.update('eval', 4, 10);
    at(65_000); p.update('eval', 10, 10);
    at(67_000); p.update('train', 3, 100); // timed from the eval's end
    at(69_000); p.update('train', 4, 100);
    // 8 s over 4 steps: 2 s a step, 96 left.
    expect(lines.at(-1)).toMatch(/^train: 4\/100 {2}\(8\.0s elapsed, ETA 3m12s\)$/);
    // The next eval pass counts from its own start.
    at(70_000); p.start('eval', 0);
    at(74_000); p.update('eval', 4, 10);
    expect(lines.at(-1)).toMatch(/^eval: 4\/10 {2}\(4\.0s elapsed, ETA 6\.0s\)$/);
  });

  it('a pass that reports only at its end, started where it was taken up, shows its own time', () => {
    const { lines, at } = capture();
    const p = new Progress(true);
    at(1_000); p.pass('reference train').onStart(24);
    at(4_000); p.pass('reference train').onProgress(32, 32);
    expect(lines.at(-1)).toMatch(/^reference train: 32\/32 {2}\(3\.0s elapsed\)$/);
  });

  it('work still due (evaluations, saves) adds to the ETA, not to the pace', () => {
    const { lines, at } = capture();
    const p = new Progress(true);
    at(0); p.start('train', 0);
    at(2_000); p.update('train', 1, 100, '', 90); // 2 s a step, 99 left, and 90 s of evaluations due
    expect(lines.at(-1)).toMatch(/^train: 1\/100 {2}\(2\.0s elapsed, ETA 4m48s\)$/);
    at(4_000); p.update('train', 2, 100);
    expect(lines.at(-1)).toMatch(/^train: 2\/100 {2}\(4\.0s elapsed, ETA 3m16s\)$/);
  });
});

describe('dueFrom', () => {
  it('counts what the trainer still does once a step is reported: that step\'s evaluation or save, the later ones, the last step\'s', () => {
    // The trainer's loop, as trainer.ts runs it: step++, report (here: count what follows), then the
    // evaluation at a multiple of `every` while step < total; after the loop, one more.
    const brute = (step: number, total: number, every: number) => {
      if (step >= total) return 0;
      let n = 1;
      for (let s = step; s < total; s++) if (every > 0 && s % every === 0) n++;
      return n;
    };
    for (const total of [1, 2, 7, 10, 33]) {
      for (let step = 1; step <= total; step++) {
        for (const every of [0, 1, 2, 3, 5, 10, 40]) expect(dueFrom(step, total, every), `${step}/${total} every ${every}`).toBe(brute(step, total, every));
      }
    }
    expect(dueFrom(4, 10, 2)).toBe(4); // steps 4, 6 and 8, then the last
  });

  it('GPU memory: MiB below a GiB, else GiB', () => {
    expect(fmtBytes(3 * 2 ** 20 + 2 ** 19)).toBe('3.5 MiB');
    expect(fmtBytes(1023.9 * 2 ** 20)).toBe('1023.9 MiB');
    expect(fmtBytes(2 ** 30 - 1)).toBe('1.00 GiB'); // (1024.0 MiB as rounded)
    expect(fmtBytes(2 ** 30)).toBe('1.00 GiB');
    expect(fmtBytes(11.89 * 2 ** 30)).toBe('11.89 GiB');
    expect(describeGpuMemory({ peakInUseBytes: 2 ** 31, allocatedBytes: 2.5 * 2 ** 30 })).toBe('2.00 GiB in use at most, 2.50 GiB held in buffers');
  });
});
