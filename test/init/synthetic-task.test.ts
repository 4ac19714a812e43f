import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadPreferenceRows } from '../../src/data/preference-rows.js';
import {
  SYNTHETIC_TASKS, judgeSynthetic, solveSynthetic, syntheticJsonl, syntheticPairs, syntheticSplit,
  writeSyntheticJsonl, writeSyntheticSplit,
} from '../../src/init/synthetic-task.js';

const root = mkdtempSync(path.join(os.tmpdir(), 'srk-synth-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('synthetic preference task', () => {
  const rows = syntheticPairs(2000, 11);

  it('is deterministic for a seed, prefix-stable, and differs between seeds', () => {
    expect(syntheticPairs(2000, 11)).toEqual(rows);
    expect(syntheticPairs(50, 11)).toEqual(rows.slice(0, 50));
    const other = syntheticPairs(50, 12);
    expect(other).not.toEqual(rows.slice(0, 50));
    expect(syntheticPairs(0, 11)).toEqual([]);
  });

  it('chosen != rejected, short ASCII strings, distinct prompts', () => {
    for (const r of rows) {
      expect(r.chosen).not.toBe(r.rejected);
      for (const s of [r.prompt, r.chosen, r.rejected]) {
        expect(Buffer.byteLength(s, 'utf8')).toBeLessThan(40);
        expect(s.length).toBeGreaterThan(0);
        expect(/^[\x20-\x7e]+$/.test(s)).toBe(true);
      }
      expect(r.chosen.startsWith(' ') && r.rejected.startsWith(' ')).toBe(true);
    }
    expect(new Set(rows.map((r) => r.prompt)).size).toBe(rows.length);
  });

  it('covers every task; score gaps vary over 2, 4, 6, 8 in roughly equal shares', () => {
    const tasks = new Map<string, number>();
    for (const r of rows) { const t = solveSynthetic(r.prompt)!.task; tasks.set(t, (tasks.get(t) ?? 0) + 1); }
    expect([...tasks.keys()].sort()).toEqual([...SYNTHETIC_TASKS].sort());
    for (const c of tasks.values()) expect(c).toBeGreaterThan(2000 / 5 * 0.8);
    const gaps = new Map<number, number>();
    for (const r of rows) {
      expect(r.score_chosen).toBe(10);
      const g = r.score_chosen - r.score_rejected;
      gaps.set(g, (gaps.get(g) ?? 0) + 1);
    }
    expect([...gaps.keys()].sort((a, b) => a - b)).toEqual([2, 4, 6, 8]);
    for (const c of gaps.values()) expect(c).toBeGreaterThan(2000 / 4 * 0.8);
  });

  it('the scores in the rows are the judge\'s: chosen correct, rejected with k errors', () => {
    for (const r of rows) {
      expect(r.chosen.trim()).toBe(solveSynthetic(r.prompt)!.answer);
      expect(judgeSynthetic(r.prompt, r.chosen)).toBe(r.score_chosen);
      expect(judgeSynthetic(r.prompt, r.rejected)).toBe(r.score_rejected);
    }
  });

  it('judge examples', () => {
    expect(judgeSynthetic('sort: 5 2 8 1 =', ' 1 2 5 8')).toBe(10);
    expect(judgeSynthetic('sort: 5 2 8 1 =', ' 1 2 5 8<|endoftext|>garbage')).toBe(10);
    expect(judgeSynthetic('sort: 5 2 8 1 =', ' 1 3 5 8')).toBe(8);
    expect(judgeSynthetic('sort: 5 2 8 1 =', ' 1 2 5')).toBe(6); // two characters missing
    expect(judgeSynthetic('reverse: abcd =', ' dcba\n')).toBe(10);
    expect(judgeSynthetic('upper: abcd =', ' ABcd')).toBe(6);
    expect(judgeSynthetic('add: 27+45 =', ' 72')).toBe(10);
    expect(judgeSynthetic('add: 27+45 =', ' 75')).toBe(4);
    expect(judgeSynthetic('add: 27+45 =', ' 99')).toBe(0);
    expect(judgeSynthetic('add: 27+45 =', ' seventy')).toBe(0);
    expect(judgeSynthetic('count b: abbcadb =', ' 3')).toBe(10);
    expect(judgeSynthetic('count b: abbcadb =', ' 1')).toBe(6);
    expect(() => judgeSynthetic('hello', 'x')).toThrow(/not a synthetic prompt/);
  });

  it('train and eval splits are disjoint and deterministic', () => {
    const s = syntheticSplit({ train: 500, eval: 100, seed: 3 });
    expect(s.train).toEqual(syntheticPairs(500, 3));
    expect(s.eval).toHaveLength(100);
    const trainPrompts = new Set(s.train.map((r) => r.prompt));
    expect(s.eval.some((r) => trainPrompts.has(r.prompt))).toBe(false);
    expect(syntheticSplit({ train: 500, eval: 100, seed: 3 })).toEqual(s);
  });

  it('a task subset draws only those tasks; bad arguments throw', () => {
    const only = syntheticPairs(100, 1, { tasks: ['add', 'upper'] });
    expect(new Set(only.map((r) => solveSynthetic(r.prompt)!.task))).toEqual(new Set(['add', 'upper']));
    expect(() => syntheticPairs(-1, 1)).toThrow(/n must be a non-negative integer \(got -1\)/);
    expect(() => syntheticPairs(1, 1, { tasks: [] })).toThrow(/tasks must be a non-empty list/);
    expect(() => syntheticPairs(1, 1.5)).toThrow(/seed/);
  });

  it('rows round-trip through JSONL and load as scored text preference rows', async () => {
    const file = path.join(root, 'sub', 'train.jsonl');
    const written = await writeSyntheticJsonl(file, 200, 5);
    const text = readFileSync(file, 'utf8');
    expect(text).toBe(syntheticJsonl(written));
    expect(text.trimEnd().split('\n').map((l) => JSON.parse(l))).toEqual(syntheticPairs(200, 5));
    const loaded = await loadPreferenceRows(file);
    expect(loaded.stats.byShape.text).toBe(200);
    expect(loaded.stats.withScores).toBe(200);
    expect(loaded.rows[0]).toEqual({
      prompt: written[0]!.prompt, chosen: written[0]!.chosen, rejected: written[0]!.rejected,
      scoreChosen: written[0]!.score_chosen, scoreRejected: written[0]!.score_rejected,
    });
    const files = await writeSyntheticSplit(path.join(root, 'split'), { train: 30, eval: 10, seed: 8 });
    expect(readFileSync(files.eval, 'utf8').trimEnd().split('\n')).toHaveLength(10);
  });
});
