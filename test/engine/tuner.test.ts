// The tuner's decision logic (src/engine/tuner.ts) without a GPU. Its use by the kernels, with every
// candidate dispatched and checked, is tested at the end of test/engine/matmul.test.ts and
// test/kernels/attention.test.ts (where most candidates' pipelines are already compiled).
import { describe, expect, it } from 'vitest';
import { TuneTable, tuningWanted } from '../../src/engine/tuner.js';

describe('TuneTable (the tuner without a GPU)', () => {
  it('takes the candidates in turn, minSamples each, then the default untimed until the step settles', () => {
    const t = new TuneTable(2, 2);
    const labels = ['rule', 'b', 'c'];
    const picks = Array.from({ length: 8 }, () => t.pick('k', labels));
    expect(picks.map((p) => p.index)).toEqual([0, 1, 2, 0, 1, 2, 0, 0]);
    expect(picks.map((p) => p.timed)).toEqual([true, true, true, true, true, true, false, false]);
  });

  it('keeps the candidate with the lowest median once every candidate is measured', () => {
    const t = new TuneTable(5, 3);
    const labels = ['rule', 'fast', 'slow'];
    const times = [[2, 2.1, 9], [1.5, 1.4, 50], [3, 3, 3]]; // 'fast' has one outlier: the median ignores it
    for (let r = 0; r < 3; r++) for (let i = 0; i < 3; i++) {
      const p = t.pick('k', labels);
      t.add(p.id, p.index, times[p.index][r]);
    }
    expect(t.open).toBe(true);
    t.endStep();
    expect(t.open).toBe(false);
    expect(t.pick('k', labels)).toMatchObject({ index: 1, timed: false });
    expect(t.decisions()).toEqual([{ key: 'k', candidates: labels, chosen: 1, medianMs: [2.1, 1.5, 3] }]);
  });

  it('stays open while samples are missing, and after maxSteps chooses among the measured', () => {
    const t = new TuneTable(2, 2);
    const labels = ['rule', 'x', 'y'];
    let p = t.pick('k', labels); t.add(p.id, p.index, 5); // rule: 5
    p = t.pick('k', labels); t.add(p.id, p.index, 4); // x: 4
    t.endStep();
    expect(t.open).toBe(true);
    p = t.pick('k', labels);
    expect(p).toMatchObject({ index: 2, timed: true }); // the turn goes on where it stopped
    // y's time never comes back (say, a lost timestamp): after maxSteps the measured x wins.
    t.endStep();
    expect(t.open).toBe(false);
    expect(t.pick('k', labels).index).toBe(1);
  });

  it('a key with fewer calls a step than candidates stays open past maxSteps until each had a turn, at most 3 maxSteps', () => {
    const labels = ['rule', 'a', 'b', 'c', 'd'];
    const t = new TuneTable(2, 3);
    const step = (times: number[]) => { for (const ms of times) { const p = t.pick('k', labels); t.add(p.id, p.index, ms); } t.endStep(); };
    step([5, 4]); // rule, a
    step([6, 3]); // b, c: maxSteps, but d has not had a turn
    expect(t.open).toBe(true);
    step([1]); // d
    expect(t.open).toBe(false);
    expect(t.decisions()[0]).toMatchObject({ chosen: 4, medianMs: [5, 4, 6, 3, 1] });
    // At most 3 maxSteps: one call a step never reaches the last candidates.
    const u = new TuneTable(1, 3);
    for (let i = 0; i < 3; i++) { const p = u.pick('k', labels); u.add(p.id, p.index, 10 - i); u.endStep(); }
    expect(u.open).toBe(false);
    expect(u.decisions()[0]).toMatchObject({ chosen: 2, medianMs: [10, 9, 8, null, null] });
  });

  it('keeps the default where it was never measured; a key first seen late gets its own steps', () => {
    const t = new TuneTable(1, 1);
    t.pick('a', ['rule', 'x']); t.pick('a', ['rule', 'x']); // both issued, neither measured
    t.endStep();
    expect(t.pick('a', ['rule', 'x'])).toMatchObject({ index: 0, timed: false });
    expect(t.chosen('a', ['rule', 'x'])).toBe(0);
    expect(t.pick('single', ['rule'])).toMatchObject({ index: 0, timed: false });
    const late = t.pick('late', ['rule', 'x']);
    expect(late).toMatchObject({ index: 0, timed: true });
    expect(t.chosen('late', ['rule', 'x'])).toBeUndefined();
    t.add(late.id, 0, 3);
    const x = t.pick('late', ['rule', 'x']);
    t.add(x.id, x.index, 2);
    t.endStep();
    expect(t.chosen('late', ['rule', 'x'])).toBe(1);
  });

  it('one key with two candidate lists (sizes inside one bucket on both sides of a rule) is two choices', () => {
    const t = new TuneTable(1, 1);
    const ab = t.pick('k', ['a', 'b']); t.add(ab.id, ab.index, 2);
    const ab2 = t.pick('k', ['a', 'b']); t.add(ab2.id, ab2.index, 1);
    const ac = t.pick('k', ['a', 'c']); t.add(ac.id, ac.index, 1);
    const ac2 = t.pick('k', ['a', 'c']); t.add(ac2.id, ac2.index, 2);
    expect(ab.id).not.toBe(ac.id);
    t.endStep();
    expect(t.chosen('k', ['a', 'b'])).toBe(1);
    expect(t.chosen('k', ['a', 'c'])).toBe(0);
    expect(t.decisions().map((d) => [d.key, d.candidates[d.chosen]])).toEqual([['k', 'b'], ['k', 'a']]);
  });

  it('progress grows when a key is first seen and when it closes (a choice can open other keys)', () => {
    const t = new TuneTable(2, 1);
    const p0 = t.progress;
    const { id } = t.pick('mode', ['flash', 'unfused']);
    expect(t.progress).toBe(p0 + 1);
    t.add(id, 0, 2);
    const { id: id2, index } = t.pick('mode', ['flash', 'unfused']);
    t.add(id2, index, 1);
    t.endStep();
    expect(t.chosen('mode', ['flash', 'unfused'])).toBe(1);
    expect(t.progress).toBe(p0 + 2);
    t.endStep(); // nothing new: no progress
    expect(t.progress).toBe(p0 + 2);
  });

  it('a candidate still compiling is taken back, and the steps spent waiting (two at most) do not count', () => {
    const t = new TuneTable(1, 1);
    const labels = ['rule', 'x'];
    const r = t.pick('k', labels); t.add(r.id, r.index, 3);
    const x = t.pick('k', labels);
    expect(x.index).toBe(1);
    t.withdraw(x.id, 1, false); // the caller ran the rule instead, untimed
    expect(t.pick('k', labels)).toMatchObject({ index: 1, timed: true }); // asked again in this step
    t.withdraw(x.id, 1, false);
    t.endStep(); // maxSteps 1, but this step waited: still open
    expect(t.chosen('k', labels)).toBeUndefined();
    t.withdraw(t.pick('k', labels).id, 1, false);
    t.endStep(); // a second wait
    expect(t.chosen('k', labels)).toBeUndefined();
    t.withdraw(t.pick('k', labels).id, 1, false);
    t.endStep(); // a third: the key closes with what it measured
    expect(t.chosen('k', labels)).toBe(0);
    // Once compiled, the candidate is timed like any other.
    const u = new TuneTable(1, 1);
    const a = u.pick('k', labels); u.add(a.id, 0, 3);
    u.withdraw(u.pick('k', labels).id, 1, false);
    u.endStep();
    const b = u.pick('k', labels);
    expect(b).toMatchObject({ index: 1, timed: true });
    u.add(b.id, 1, 2);
    u.endStep();
    expect(u.chosen('k', labels)).toBe(1);
  });

  it('a candidate the adapter refused is never picked or chosen', () => {
    const t = new TuneTable(3, 2);
    const labels = ['rule', 'broken', 'ok'];
    const picks = [];
    for (let i = 0; i < 6; i++) {
      const p = t.pick('k', labels);
      picks.push(p.index);
      if (p.index === 1) t.withdraw(p.id, 1, true);
      else t.add(p.id, p.index, p.index === 0 ? 2 : 3);
    }
    expect(picks).toEqual([0, 1, 2, 0, 2, 0]); // the last: every live candidate measured, the default untimed
    t.endStep(); // closes without samples of the refused one
    expect(t.chosen('k', labels)).toBe(0);
    expect(t.decisions()[0].medianMs).toEqual([2, null, 3]);
  });

  it('SRK_TUNE: 0 off, 1 on, otherwise real GPUs with timestamps; anything else is an error', () => {
    const saved = process.env.SRK_TUNE;
    try {
      delete process.env.SRK_TUNE;
      expect(tuningWanted(false, true)).toBe(true);
      expect(tuningWanted(true, true)).toBe(false);
      expect(tuningWanted(false, false)).toBe(false);
      process.env.SRK_TUNE = '1';
      expect(tuningWanted(true, true)).toBe(true);
      expect(tuningWanted(true, false)).toBe(false); // nothing to time with
      process.env.SRK_TUNE = '0';
      expect(tuningWanted(false, true)).toBe(false);
      process.env.SRK_TUNE = 'yes';
      expect(() => tuningWanted(false, true)).toThrow(/SRK_TUNE=yes: expected 0 or 1/);
    } finally {
      if (saved === undefined) delete process.env.SRK_TUNE; else process.env.SRK_TUNE = saved;
    }
  });
});
