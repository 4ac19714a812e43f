// `srk eval` as a user runs it (built CLI, real processes): metrics of the fixture policies against
// their references match what expected.json's PyTorch log-probs give; judge-score correlations
// match src/losses/correlation.ts on those margins.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { kendallTauB, pearson, spearman } from '../../src/losses/correlation.js';
import { modelLabel } from '../../src/cli/eval.js';

const root = resolve(import.meta.dirname, '../..');
const srk = resolve(root, 'bin/srk.js');
const fixtures = resolve(root, 'test/fixtures/hf');
const tmp = mkdtempSync(join(tmpdir(), 'srk-eval-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function run(args: string[]) {
  return spawnSync(process.execPath, [srk, ...args], { cwd: root, encoding: 'utf8', timeout: 120_000 });
}

interface Expected {
  beta: number;
  logratio_diff: number[];
  delta: number[];
  logps: Record<string, number[]>;
  pairs: { chosen_ids: number[] }[];
}
const expected = (name: string): Expected => JSON.parse(readFileSync(join(fixtures, name, 'expected.json'), 'utf8'));
const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;
const close = (got: number, want: number, tol = 1e-4) => expect(Math.abs(got - want)).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(want)));

/** Metrics from expected.json's float64 log-probs. */
function reference(name: string) {
  const e = expected(name);
  const L = e.logps;
  const h = e.logratio_diff;
  const augH = h.map((_, i) => (L.policy_chosen_aug[i] - L.ref_chosen_aug[i]) - (L.policy_rejected_aug[i] - L.ref_rejected_aug[i]));
  return {
    e,
    margins: h.map((v) => e.beta * v),
    margin: mean(h.map((v) => e.beta * v)),
    accuracy: mean(h.map((v) => (v > 0 ? 1 : 0))),
    augAccuracy: mean(augH.map((v) => (v > 0 ? 1 : 0))),
    rewardChosen: mean(L.policy_chosen.map((v, i) => e.beta * (v - L.ref_chosen[i]))),
    rewardRejected: mean(L.policy_rejected.map((v, i) => e.beta * (v - L.ref_rejected[i]))),
    nllChosen: -L.policy_chosen.reduce((s, v) => s + v, 0) / e.pairs.reduce((s, p) => s + p.chosen_ids.length, 0),
  };
}

describe('srk eval\'s model name', () => {
  // Every training run's model is "checkpoint" (and a kept one "models/step-N"): the table names the run too.
  it('a run\'s checkpoint and kept models by their run; any other directory by its own name', () => {
    expect(modelLabel('runs/sr-dpo/checkpoint')).toBe('sr-dpo/checkpoint');
    expect(modelLabel('/x/runs/dpo/models/step-40')).toBe('dpo/step-40');
    expect(modelLabel('/x/EleutherAI/pythia-160m')).toBe('pythia-160m');
    expect(modelLabel('/x/step-40')).toBe('step-40');
  });
});

describe('srk eval', () => {
  for (const name of ['gpt-neox-tiny', 'mistral-tiny']) {
    it(`${name} vs ${name}_ref: --json margin, accuracies and rewards match expected.json`, () => {
      const dir = join(fixtures, name);
      const r = run(['eval', '--model', dir, '--ref-model', `${dir}_ref`, '--data', join(dir, 'pairs.jsonl'), '--no-eos', '--json', '--micro-batch-size', '4']);
      expect(r.status, r.stderr).toBe(0);
      const j = JSON.parse(r.stdout);
      const x = reference(name);
      expect(j.n).toBe(6);
      expect(j.beta).toBe(0.1);
      close(j.margin, x.margin);
      expect(j.accuracy).toBeCloseTo(x.accuracy, 12);
      expect(j.aug_accuracy).toBeCloseTo(x.augAccuracy, 12);
      close(j.reward_chosen, x.rewardChosen);
      close(j.reward_rejected, x.rewardRejected);
      close(j.nll_chosen, x.nllChosen);
      expect(j.reference_is_policy).toBe(false);
      expect(j.pearson).toBeUndefined(); // no judge scores in the fixture data
      expect(j.scored_pairs).toBe(0);
    });
  }

  it('judge scores: Pearson, Spearman and Kendall tau-b between margins and score differences', () => {
    const name = 'gpt-neox-tiny';
    const dir = join(fixtures, name);
    const rows = readFileSync(join(dir, 'pairs.jsonl'), 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l));
    // Made-up UltraFeedback-style scores, with a tie in the differences to exercise tie handling.
    const sc = [8, 6.5, 9, 7, 5, 9];
    const sr = [3, 6, 2, 4, 2, 5];
    const data = join(tmp, 'scored.jsonl');
    writeFileSync(data, rows.map((r, i) => JSON.stringify({ ...r, score_chosen: sc[i], score_rejected: sr[i] })).join('\n') + '\n');
    const pairsOut = join(tmp, 'pairs.csv');
    const r = run(['eval', '--model', dir, '--ref-model', `${dir}_ref`, '--data', data, '--no-eos', '--json', '--pairs-out', pairsOut]);
    expect(r.status, r.stderr).toBe(0);
    // What was read of each model, in the log (as srk train says it).
    expect(r.stderr).toMatch(/^reference .*gpt-neox-tiny_ref: gpt-neox, 2 layers, hidden 64, 4 heads of 16 \(4 rotary\).*\n[\s\S]*^policy .*gpt-neox-tiny: gpt-neox, 2 layers/m);
    const j = JSON.parse(r.stdout);
    const x = reference(name);
    const diff = sc.map((v, i) => v - sr[i]);
    // --pairs-out: each pair's margin (as expected.json's log-probs give it) and scores.
    const csv = readFileSync(pairsOut, 'utf8').trim().split('\n').map((l) => l.split(','));
    expect(csv[0]).toEqual(['step', 'pair', 'margin', 'aug_margin', 'score_chosen', 'score_rejected', 'file', 'line']);
    expect(csv.slice(1).map((c) => [c[0], Number(c[1]), Number(c[4]), Number(c[5]), c[6], Number(c[7])])).toEqual(sc.map((v, i) => ['', i, v, sr[i], data, i + 1]));
    csv.slice(1).forEach((c, i) => close(Number(c[2]), x.margins[i]));
    expect(j.scored_pairs).toBe(6);
    close(j.margin, x.margin);
    const sd = Math.sqrt(x.margins.reduce((a, v) => a + (v - x.margin) ** 2, 0) / (x.margins.length - 1));
    close(j.margin_se, sd / Math.sqrt(6));
    close(j.accuracy_se, Math.sqrt(x.accuracy * (1 - x.accuracy) / 6));
    close(j.pearson, pearson(x.margins, diff), 1e-3);
    expect(j.spearman).toBeCloseTo(spearman(x.margins, diff), 9); // ranks: exact unless margins nearly tie
    expect(j.kendall).toBeCloseTo(kendallTauB(x.margins, diff), 9);
    for (const k of ['pearson', 'spearman', 'kendall']) expect(Math.abs(j[k])).toBeLessThanOrEqual(1);

    // The table form shows the same numbers.
    const t = run(['eval', '--model', dir, '--ref-model', `${dir}_ref`, '--data', data, '--no-eos']);
    expect(t.status, t.stderr).toBe(0);
    const [header, , row] = t.stdout.split('\n');
    expect(header).toMatch(/margin\s+accuracy\s+aug acc\s+chosen NLL\s+Pearson\s+Spearman\s+Kendall\s+n\s+ties/);
    expect(row).toContain(name);
    // The means with their standard errors over the 6 pairs, as srk report's table; the ties last.
    expect(row).toContain(`${j.margin.toFixed(4)} ±${j.margin_se.toFixed(4)}`);
    expect(row).toContain(`${j.accuracy.toFixed(4)} ±${j.accuracy_se.toFixed(4)}`);
    expect(row).toContain(j.kendall.toFixed(4));
    expect(row).toMatch(new RegExp(`\\s${j.ties}$`));
    expect(t.stdout).toMatch(/6 of 6 pairs with judge scores/);
  });

  it('null correlations say why: every judge score difference alike, one pair, or a model its own reference', () => {
    const dir = join(fixtures, 'gpt-neox-tiny');
    const rows = readFileSync(join(dir, 'pairs.jsonl'), 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l));
    const data = join(tmp, 'flat-scores.jsonl');
    writeFileSync(data, rows.map((r, i) => JSON.stringify({ ...r, score_chosen: 5 + i, score_rejected: 4 + i })).join('\n') + '\n');
    const cases: [string[], RegExp][] = [
      [['--ref-model', `${dir}_ref`], /correlations are undefined \(null\): the judge score differences are all equal/],
      [['--ref-model', `${dir}_ref`, '--max-pairs', '1'], /correlations are undefined \(null\): 1 pair: it takes 2 or more/],
      [[], /correlations are undefined \(null\): the margins \(each 0: the model is its own reference\) are all equal/],
    ];
    for (const [flags, why] of cases) {
      const r = run(['eval', '--model', dir, '--data', data, '--no-eos', '--json', ...flags]);
      expect(r.status, r.stderr).toBe(0);
      const j = JSON.parse(r.stdout);
      expect([j.pearson, j.spearman, j.kendall]).toEqual([null, null, null]);
      expect(j.notes.join('\n')).toMatch(why);
    }
  });

  it('SFT rows (no rejected response): the NLL per completion token alone, as expected.json\'s log-probs give; in a file of pairs, such a row is a bad row', () => {
    const name = 'mistral-tiny';
    const dir = join(fixtures, name);
    const rows = readFileSync(join(dir, 'pairs.jsonl'), 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l));
    const data = join(tmp, 'sft-rows.jsonl');
    writeFileSync(data, rows.map((r) => JSON.stringify({ prompt: r.prompt, completion: r.chosen })).join('\n') + '\n');
    // A reference given is not loaded (SFT rows have no margins): this one has no weights and would fail to.
    const ref = join(tmp, 'ref-without-weights');
    mkdirSync(ref);
    writeFileSync(join(ref, 'config.json'), '{}');
    const r = run(['eval', '--model', dir, '--ref-model', ref, '--data', data, '--no-eos', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.sft_rows).toBe(true);
    expect([j.ties, j.aug_ties]).toEqual([null, null]); // no margins: no ties either (the table shows "-")
    expect(j.n).toBe(6);
    close(j.nll_chosen, reference(name).nllChosen);
    for (const k of ['margin', 'accuracy', 'aug_accuracy', 'reward_chosen', 'reward_rejected']) expect(j[k], k).toBeNull();
    expect(j.notes.join(' ')).toMatch(/--ref-model .*ref-without-weights unused: SFT rows have no margins/);

    const t = run(['eval', '--model', dir, '--data', data, '--no-eos']);
    expect(t.status, t.stderr).toBe(0);
    expect(t.stdout).toContain(`policy NLL ${j.nll_chosen.toFixed(4)} per completion token over 6 SFT rows`);

    // A file with any pair is a file of pairs: a row without a rejected response (misspelt, null) is a bad
    // row by its line, skippable, not a reason to score the file as SFT rows.
    const mixed = join(tmp, 'mixed.jsonl');
    writeFileSync(mixed, [JSON.stringify(rows[0]), JSON.stringify({ prompt: rows[1].prompt, chosen: rows[1].chosen, rejeted: rows[1].rejected }),
      JSON.stringify({ ...rows[2], rejected: null })].join('\n') + '\n');
    const m = run(['eval', '--model', dir, '--data', mixed, '--no-eos']);
    expect(m.status).toBe(1);
    expect(m.stderr).toMatch(/mixed\.jsonl:2: missing field "rejected"/);
    const skip = run(['eval', '--model', dir, '--data', mixed, '--no-eos', '--skip-bad-rows', '--json']);
    expect(skip.status, skip.stderr).toBe(0);
    const js = JSON.parse(skip.stdout);
    expect([js.sft_rows, js.n, js.skipped_rows, js.margin]).toEqual([false, 1, 2, 0]);
  });

  it('without --ref-model the reference is the policy: zero margins and a note', () => {
    const dir = join(fixtures, 'llama-tiny-tied');
    const r = run(['eval', '--model', dir, '--data', join(dir, 'pairs.jsonl'), '--json', '--cache-dir', join(tmp, 'unused-cache')]);
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.notes.join(' ')).toMatch(/--cache-dir .*unused-cache unused: there is no separate reference/);
    expect(j.reference_is_policy).toBe(true);
    expect(j.margin).toBe(0);
    expect(j.accuracy).toBe(0);
    expect(j.notes.join(' ')).toMatch(/reference is the policy/);
    expect(r.stderr).toMatch(/note: the reference is the policy/);
  });

  it('--cache-dir reuses the reference log-probs', () => {
    const dir = join(fixtures, 'gpt-neox-tiny');
    const cache = join(tmp, 'cache');
    const args = ['eval', '--model', dir, '--ref-model', `${dir}_ref`, '--data', join(dir, 'pairs.jsonl'), '--no-eos', '--json', '--cache-dir', cache];
    const a = run(args);
    expect(a.status, a.stderr).toBe(0);
    expect(readdirSync(cache).length).toBe(1);
    const b = run(args);
    expect(b.status, b.stderr).toBe(0);
    expect(b.stderr).toMatch(/cached in/);
    expect(JSON.parse(b.stdout).margin).toBe(JSON.parse(a.stdout).margin);
  });

  it('--max-pairs: the first N usable pairs alone, as a file of those would give', () => {
    const name = 'gpt-neox-tiny';
    const dir = join(fixtures, name);
    const pairsOut = join(tmp, 'first4.csv');
    const r = run(['eval', '--model', dir, '--ref-model', `${dir}_ref`, '--data', join(dir, 'pairs.jsonl'), '--no-eos', '--json', '--max-pairs', '4', '--pairs-out', pairsOut]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/pairs\.jsonl: its first 4 usable pairs \(--max-pairs; any rows after them not read\)/);
    expect(r.stderr).toMatch(/\b4 rows tokenized/); // (not the whole file: a large one takes minutes)
    const j = JSON.parse(r.stdout);
    const x = reference(name);
    expect(j.n).toBe(4);
    const first = x.margins.slice(0, 4);
    close(j.margin, first.reduce((a, v) => a + v, 0) / 4);
    expect(j.accuracy).toBeCloseTo(first.filter((v) => v > 0).length / 4, 12);
    expect(readFileSync(pairsOut, 'utf8').trim().split('\n').slice(1).map((l) => Number(l.split(',')[7]))).toEqual([1, 2, 3, 4]);
    // More than the file has: all of them, without a note.
    const all = run(['eval', '--model', dir, '--ref-model', `${dir}_ref`, '--data', join(dir, 'pairs.jsonl'), '--no-eos', '--json', '--max-pairs', '60']);
    expect(all.status, all.stderr).toBe(0);
    expect(JSON.parse(all.stdout).n).toBe(6);
    expect(all.stderr).not.toMatch(/--max-pairs/);
    // A bad row among the first (skipped): the next usable ones are tokenized in its place.
    const lines = readFileSync(join(dir, 'pairs.jsonl'), 'utf8').trim().split('\n');
    const withBad = join(tmp, 'with-bad.jsonl');
    writeFileSync(withBad, Array.from({ length: 40 }, (_, i) => (i === 1 ? JSON.stringify({ ...JSON.parse(lines[1]), chosen: '' }) : lines[i % 6])).join('\n') + '\n');
    const badOut = join(tmp, 'with-bad.csv');
    const skip = run(['eval', '--model', dir, '--ref-model', `${dir}_ref`, '--data', withBad, '--no-eos', '--json', '--max-pairs', '4', '--skip-bad-rows', '--pairs-out', badOut]);
    expect(skip.status, skip.stderr).toBe(0);
    expect(JSON.parse(skip.stdout).n).toBe(4);
    const csv = readFileSync(badOut, 'utf8').trim().split('\n').slice(1).map((l) => l.split(','));
    expect(csv.map((c) => Number(c[7]))).toEqual([1, 3, 4, 5]);
    csv.forEach((c, k) => close(Number(c[2]), x.margins[[0, 2, 3, 4][k]]));
    // Rows after the first N are neither read nor checked (a bad one there stops nothing), and the counts are
    // of the rows read; a line that does not read among the first is skipped and one more row read in its place.
    const lateBad = join(tmp, 'late-bad.jsonl');
    writeFileSync(lateBad, [lines[0], '{"prompt": oops', ...lines.slice(1), '{"prompt":"q","chosen":" a","rejected":5}'].join('\n') + '\n');
    const late = run(['eval', '--model', dir, '--ref-model', `${dir}_ref`, '--data', lateBad, '--no-eos', '--json', '--max-pairs', '3', '--skip-bad-rows']);
    expect(late.status, late.stderr).toBe(0);
    const jl = JSON.parse(late.stdout);
    expect([jl.n, jl.skipped_rows]).toEqual([3, 1]);
    close(jl.margin, x.margins.slice(0, 3).reduce((a, v) => a + v, 0) / 3);
    expect(late.stderr).toMatch(/late-bad\.jsonl: 3 rows \(text 3, hh 0, chat 0\); 0 with scores; 1 bad lines skipped \(.*late-bad\.jsonl:2: invalid JSON/);
    expect(late.stderr).not.toMatch(/late-bad\.jsonl:8/);
    // A row without a rejected response met in a later pass (the first was all pairs) is a bad row of the
    // file of pairs, as without the limit, not a pair with an empty rejected response.
    const mixed = join(tmp, 'mixed-late.jsonl');
    writeFileSync(mixed, [lines[0], JSON.stringify({ ...JSON.parse(lines[1]), prompt: '' }), lines[2], JSON.stringify({ ...JSON.parse(lines[3]), rejected: null }),
      lines[4]].join('\n') + '\n');
    const mixedOut = join(tmp, 'mixed-late.csv');
    const mx = run(['eval', '--model', dir, '--ref-model', `${dir}_ref`, '--data', mixed, '--no-eos', '--json', '--max-pairs', '3', '--skip-bad-rows', '--pairs-out', mixedOut]);
    expect(mx.status, mx.stderr).toBe(0);
    expect([JSON.parse(mx.stdout).n, JSON.parse(mx.stdout).skipped_rows, JSON.parse(mx.stdout).sft_rows]).toEqual([3, 2, false]);
    expect(readFileSync(mixedOut, 'utf8').trim().split('\n').slice(1).map((l) => Number(l.split(',')[7]))).toEqual([1, 3, 5]);
    const strict = run(['eval', '--model', dir, '--ref-model', `${dir}_ref`, '--data', lateBad, '--no-eos', '--json', '--max-pairs', '1']);
    expect(strict.status, strict.stderr).toBe(0);
    expect(JSON.parse(strict.stdout).n).toBe(1);
    for (const v of ['0', '2.5', 'x']) {
      const b = run(['eval', '--model', dir, '--data', join(dir, 'pairs.jsonl'), '--max-pairs', v]);
      expect(b.status).not.toBe(0);
      expect(b.stderr).toMatch(v === 'x' ? /--max-pairs takes a number \(got "x"\)/ : /--max-pairs must be a positive integer/);
    }
  });

  it('bad input: a malformed line names file:line; bad flags are clear errors', () => {
    const dir = join(fixtures, 'gpt-neox-tiny');
    const data = join(tmp, 'bad.jsonl');
    writeFileSync(data, '{"prompt": "a", "chosen": " b", "rejected": " c"}\nnot json\n');
    const r = run(['eval', '--model', dir, '--data', data]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(`${data}:2:`);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    const over = run(['eval', '--model', dir, '--data', data, '--pairs-out', data]);
    expect(over.status).not.toBe(0);
    expect(over.stderr).toMatch(/--pairs-out .*bad\.jsonl is the input .*bad\.jsonl: the output would overwrite it/);
    const short = run(['eval', '--model', dir, '--data', data, '--max-length', '64']);
    expect(short.status).not.toBe(0);
    expect(short.stderr).toMatch(/--max-prompt-length \(256, the default\) must be below --max-length \(64\)/);
    const b = run(['eval', '--model', dir, '--data', data, '--beta', '0']);
    expect(b.status).not.toBe(0);
    expect(b.stderr).toMatch(/--beta must be > 0/);
    const m = run(['eval', '--model', dir, '--ref-model', join(tmp, 'no-ref'), '--data', data]);
    expect(m.status).not.toBe(0);
    expect(m.stderr).toMatch(/--ref-model .*no-ref: no such file/);
    // --skip-bad-rows: the JSON says how many lines it left out, and n counts the rest.
    const s = run(['eval', '--model', dir, '--data', data, '--skip-bad-rows', '--json']);
    expect(s.status, s.stderr).toBe(0);
    const j = JSON.parse(s.stdout);
    expect([j.n, j.skipped_rows]).toEqual([1, 1]);
    expect(j.notes.join(' ')).toMatch(/1 bad lines of .*bad\.jsonl skipped \(--skip-bad-rows\); the metrics are over the other 1 pairs/);
  });

  it('--help documents the command', () => {
    expect(run(['--help']).stdout).toMatch(/srk eval/);
    const r = run(['eval', '--help']);
    expect(r.status).toBe(0);
    for (const f of ['--model', '--ref-model', '--data', '--json', '--beta', '--refine-prompt', '--eos', '--cache-dir', '--skip-bad-rows']) {
      expect(r.stdout).toContain(f);
    }
    expect(r.stdout).toMatch(/Spearman/);
  });
});
