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
});
