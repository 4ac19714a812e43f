// A reference pass saves its results so far (reference.ts, partialEveryMs) and a later request for the
// same log-probs takes them up: the same numbers as a pass never stopped. A damaged partial file is
// scored over. (test/train/resume.test.ts stops `srk train` with SIGTERM in that pass.)
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { getGpu } from '../helpers/gpu.js';
import { randomInts } from '../../bench/random.js';
import { referenceLogps, type ReferenceRequest } from '../../src/train/reference.js';
import type { TokenizedPair } from '../../src/data/tokenize-pairs.js';

const V = 384; // the fixture's vocabulary
function pairs(n: number): TokenizedPair[] {
  const refine = [...randomInts(9, V, 77)];
  return Array.from({ length: n }, (_, i) => {
    const promptIds = [...randomInts(3 + (i % 5), V, 10 * i + 1)];
    return { promptIds, augPromptIds: [...refine, ...promptIds], truncated: false,
      chosenIds: [...randomInts(2 + (i % 4), V, 10 * i + 2)], rejectedIds: [...randomInts(1 + (i % 3), V, 10 * i + 3)] };
  });
}

describe('reference log-probs taken up after a stop', () => {
  it('saved as they go; a stopped pass is taken up to the numbers of one never stopped; a damaged partial file is scored over', async () => {
    const gpu = await getGpu();
    const dirs = [mkdtempSync(join(tmpdir(), 'srk-ref-partial-')), mkdtempSync(join(tmpdir(), 'srk-ref-whole-'))];
    try {
      const logs: string[] = [];
      // One pair a micro-batch and a readback every 8: saves after 8, 16, 24 pairs of each pass.
      const req: ReferenceRequest = { refDir: resolve(import.meta.dirname, '../fixtures/hf/gpt-neox-tiny_ref'), pairs: pairs(24), augmented: true,
        microBatch: 1, cacheDir: dirs[0], settings: {}, label: 'train', log: (s) => logs.push(s), progress: () => {}, partialEveryMs: 0 };
      const stopAt = (label: string, at: number) => (l: string, done: number) => { if (l === label && done >= at) throw new Error('stopped'); };
      await expect(referenceLogps(gpu, { ...req, progress: stopAt('reference train (augmented)', 8) })).rejects.toThrow('stopped');
      const partial = readdirSync(dirs[0]).filter((f) => f.endsWith('.partial.json'));
      expect(partial).toHaveLength(1);
      // Taken up: no pair scored twice (the plain pass has none left; the augmented one goes on from 8).
      const firstReport = new Map<string, number>();
      // By another command (srk eval's label): the same log-probs, taken up all the same.
      const taken = await referenceLogps(gpu, { ...req, label: 'eval', progress: (l, done) => { if (!firstReport.has(l)) firstReport.set(l, done); } });
      expect(Object.fromEntries(firstReport)).toEqual({ 'reference eval': 24, 'reference eval (augmented)': 16 });
      expect(logs.join('\n')).toContain(`reference log-probs (eval): taking up ${join(dirs[0], partial[0])}: 24 of 24 pairs, 8 augmented scored before`);
      expect(existsSync(join(dirs[0], partial[0]))).toBe(false);
      const whole = await referenceLogps(gpu, { ...req, cacheDir: dirs[1] });
      for (const k of ['chosen', 'rejected', 'chosenTokens', 'rejectedTokens'] as const) {
        expect([...taken.plain[k]], k).toEqual([...whole.plain[k]]);
        expect([...taken.aug![k]], k).toEqual([...whole.aug![k]]);
      }
      // Stopped in the plain pass, then its partial file damaged: scored from the start, the same numbers.
      rmSync(dirs[0], { recursive: true, force: true });
      await expect(referenceLogps(gpu, { ...req, progress: stopAt('reference train', 16) })).rejects.toThrow('stopped');
      const file = join(dirs[0], readdirSync(dirs[0]).find((f) => f.endsWith('.partial.json'))!);
      writeFileSync(file, '{"n": 24, "plain": {"logps"');
      logs.length = 0;
      const over = await referenceLogps(gpu, req);
      expect(logs.join('\n')).not.toContain('taking up');
      expect([...over.aug!.chosen]).toEqual([...whole.aug!.chosen]);
    } finally {
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    }
  });

  // A cache file whose pair has a null log-prob (hand-edited, or written by something else) is no cache:
  // Float64Array.from would read null as 0, a log-prob of 0 for that pair. Whole and partial files alike.
  it('a cached or partial file with a pair that is not a finite log-prob is scored over, to the same numbers', async () => {
    const gpu = await getGpu();
    const dir = mkdtempSync(join(tmpdir(), 'srk-ref-null-'));
    try {
      const logs: string[] = [];
      const req: ReferenceRequest = { refDir: resolve(import.meta.dirname, '../fixtures/hf/gpt-neox-tiny_ref'), pairs: pairs(6), augmented: false,
        microBatch: 2, cacheDir: dir, settings: {}, label: 'train', log: (s) => logs.push(s), progress: () => {}, partialEveryMs: 0 };
      const first = await referenceLogps(gpu, req);
      const file = join(dir, readdirSync(dir).find((f) => f.startsWith('ref-logps-'))!);
      const j = JSON.parse(readFileSync(file, 'utf8'));
      j.plain.chosen[3] = null;
      writeFileSync(file, JSON.stringify(j));
      logs.length = 0;
      const again = await referenceLogps(gpu, req);
      expect(logs.join('\n')).toMatch(/reference log-probs \(train\): 6 pairs in/);
      expect([...again.plain.chosen]).toEqual([...first.plain.chosen]);
      // A partial file (one pair a micro-batch, saved every 8): the same, for a pair marked done.
      rmSync(dir, { recursive: true, force: true }); mkdirSync(dir);
      const long = { ...req, pairs: pairs(24), microBatch: 1 };
      await expect(referenceLogps(gpu, { ...long, progress: (_l, done) => { if (done >= 16) throw new Error('stopped'); } })).rejects.toThrow('stopped');
      const part = join(dir, readdirSync(dir).find((f) => f.endsWith('.partial.json'))!);
      const pj = JSON.parse(readFileSync(part, 'utf8'));
      const at = (pj.plain.done as number[]).indexOf(1);
      pj.plain.logps.rejected[at] = 'x';
      writeFileSync(part, JSON.stringify(pj));
      logs.length = 0;
      const over = await referenceLogps(gpu, long);
      expect(logs.join('\n')).not.toContain('taking up');
      const fresh = await referenceLogps(gpu, { ...long, cacheDir: mkdtempSync(join(tmpdir(), 'srk-ref-fresh-')) });
      expect([...over.plain.rejected]).toEqual([...fresh.plain.rejected]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // A run that trains on some of the pairs (reference.ts `needed`: --max-steps inside an epoch) scores those;
  // runs beside it sharing the cache directory keep each other's, and a later request takes them all up.
  it('a pass of some pairs: the rest NaN; runs beside it keep each other\'s; plain and augmented requests share the plain half', async () => {
    const gpu = await getGpu();
    const [dir, beside, wholeDir] = ['srk-ref-some-', 'srk-ref-beside-', 'srk-ref-all-'].map((p) => mkdtempSync(join(tmpdir(), p)));
    try {
      const logs: string[] = [];
      const mask = (...ks: number[]) => { const m = new Uint8Array(12); for (const k of ks) m[k] = 1; return m; };
      const req: ReferenceRequest = { refDir: resolve(import.meta.dirname, '../fixtures/hf/gpt-neox-tiny_ref'), pairs: pairs(12), augmented: true,
        microBatch: 2, cacheDir: dir, settings: {}, label: 'train', log: (s) => logs.push(s), progress: () => {} };
      const whole = await referenceLogps(gpu, { ...req, cacheDir: wholeDir });
      const partials = (d: string) => readdirSync(d).filter((f) => f.endsWith('.partial.json'));
      // Another run's pass of pairs 6-9, saved in the shared directory while this one scores 0-3.
      await referenceLogps(gpu, { ...req, cacheDir: beside, needed: mask(6, 7, 8, 9) });
      const [name] = partials(beside);
      let copied = false;
      const some = await referenceLogps(gpu, { ...req, needed: mask(0, 1, 2, 3), progress: () => {
        if (!copied) { writeFileSync(join(dir, name), readFileSync(join(beside, name))); copied = true; }
      } });
      expect(copied).toBe(true);
      for (const k of [0, 1, 2, 3]) {
        expect([some.plain.chosen[k], some.aug!.rejected[k]]).toEqual([whole.plain.chosen[k], whole.aug!.rejected[k]]);
      }
      for (const k of [4, 5, 10, 11]) expect([some.plain.chosen[k], some.aug!.chosen[k]].every(Number.isNaN), `pair ${k}`).toBe(true);
      expect(logs.join('\n')).toMatch(/reference log-probs \(train\): the 4 of 12 pairs this run's steps train on in [\d.]+ s, cached in .*\.partial\.json/);
      expect(readdirSync(dir)).toEqual([name]);
      const saved = JSON.parse(readFileSync(join(dir, name), 'utf8'));
      expect([saved.plain.done, saved.aug.done]).toEqual([[...mask(0, 1, 2, 3, 6, 7, 8, 9)], [...mask(0, 1, 2, 3, 6, 7, 8, 9)]]);
      // Those eight again: all there, the reference not even loaded.
      logs.length = 0;
      const loads: string[] = [];
      const again = await referenceLogps(gpu, { ...req, needed: mask(0, 3, 6, 9), progress: (l) => loads.push(l) });
      expect(logs.join('\n')).toMatch(/the 4 of 12 pairs this run's steps train on cached in .*\.partial\.json/);
      expect(loads.filter((l) => l.startsWith('load reference') || l.startsWith('reference '))).toEqual([]);
      expect(again.aug!.chosen[9]).toBe(whole.aug!.chosen[9]);
      // A plain request (DPO) for pairs 10 and 11 takes the plain half of the augmented partial file up.
      logs.length = 0;
      const plain = await referenceLogps(gpu, { ...req, augmented: false, needed: mask(0, 6, 10, 11) });
      expect(logs.join('\n')).toMatch(/taking up .*\.partial\.json: 8 of 12 pairs scored before/);
      expect([plain.plain.chosen[10], plain.plain.chosen[6]]).toEqual([whole.plain.chosen[10], whole.plain.chosen[6]]);
      expect(partials(dir)).toHaveLength(2);
      // Then a whole augmented pass: every partial taken up, the two files gone, the numbers of a pass never split.
      logs.length = 0;
      const all = await referenceLogps(gpu, req);
      expect(logs.join('\n')).toMatch(/taking up .*\.partial\.json, .*\.partial\.json: 10 of 12 pairs, 8 augmented scored before/);
      expect(partials(dir)).toEqual([]);
      for (const k of ['chosen', 'rejected', 'chosenTokens', 'rejectedTokens'] as const) {
        expect([...all.plain[k]], k).toEqual([...whole.plain[k]]);
        expect([...all.aug![k]], k).toEqual([...whole.aug![k]]);
      }
      // No steps left (a finished run resumed): nothing scored, nothing written.
      rmSync(dir, { recursive: true, force: true }); mkdirSync(dir);
      logs.length = 0;
      const none = await referenceLogps(gpu, { ...req, needed: mask() });
      expect(logs.join('\n')).toContain('reference log-probs (train): none to score (no steps left to train)');
      expect(readdirSync(dir)).toEqual([]);
      expect(Number.isNaN(none.plain.chosen[0])).toBe(true);
    } finally {
      for (const d of [dir, beside, wholeDir]) rmSync(d, { recursive: true, force: true });
    }
  });
});
