// SFT's data: prompt + chosen truncated on their own (a long rejected response used to cut the chosen
// one), a run saved before that resumed with its old truncation (its data hash names those pairs), and
// a sequence past the model's positions refused by its data line before any step.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadPairsForModel } from '../../src/train/dataset.js';
import { pairsHash } from '../../src/train/reference.js';
import { PAPER_REFINE_PROMPT } from '../../src/train/options.js';
import { describeRun, fixture, readMetrics, srk, tempDir, train } from './helpers.js';

describe('srk train --loss sft: data', () => {
  const tmp = tempDir('srk-sft-data-');
  const data = join(tmp, 'pairs.jsonl');
  const long = ' ' + Array.from({ length: 40 }, (_, i) => `word${i}`).join(' ');
  writeFileSync(data, [
    { prompt: '\n\nHuman: Hi?\n\nAssistant:', chosen: ' Hello, how can I help?', rejected: long },
    { prompt: '\n\nHuman: Sort 3 1 2.\n\nAssistant:', chosen: ' 1 2 3', rejected: ' no' },
    { prompt: '\n\nHuman: Sky?\n\nAssistant:', chosen: ' Blue.', rejected: ' Green.' },
    { prompt: '\n\nHuman: Sea?\n\nAssistant:', chosen: ' Wide.', rejected: long },
  ].map((o) => JSON.stringify(o)).join('\n') + '\n');
  const limits = ['--max-length', '48', '--max-prompt-length', '24'];
  const data0 = data;
  const base = ['--model', fixture('gpt-neox-tiny'), '--data', data, '--no-eos', '--loss', 'sft', '--lr', '1e-4', '--batch-size', '2', ...limits];

  it('prompt + chosen are truncated alone; a run saved with the pair truncation resumes with it', async () => {
    const out = join(tmp, 'new');
    // (Held-out pairs too: their augmented sequences follow --refine-prompt, which may change on resume below.)
    const r = await train([...base, '--max-steps', '1', '--out', out, '--eval-data', data]);
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.stderr).toMatch(/4 rows tokenized \(maxLength 48, maxPromptLength 24\); 0 truncated/);
    expect(r.stderr).toMatch(/training sft on 4 rows: 1 steps of 2 rows \(micro-batches of 2\), rmsprop lr 0\.0001; /); // (no beta: SFT trains without it)
    expect(r.stderr.split('\n').find((l) => /rows tokenized/.test(l))).not.toMatch(/refine prompt/); // (the training data's line)
    const stateFile = join(out, 'checkpoint', 'trainer_state.json');
    expect(JSON.parse(readFileSync(stateFile, 'utf8')).options.sftPairTruncation).toBe(false);
    // beta, lambda and the refine prompt shape nothing SFT trains: another value resumes.
    const again = await train([...base, '--beta', '0.5', '--refine-prompt', 'Rate 100:', '--max-steps', '2', '--resume', '--out', out, '--eval-data', data]);
    expect(again.code, describeRun(again)).toBe(0);
    expect(readMetrics(out)).toHaveLength(2);

    // As an srk from before saved it: no sftPairTruncation, and the data hash of pairs truncated with
    // their rejected responses (the two long ones cut both sides).
    const old = join(tmp, 'old');
    expect((await train([...base, '--max-steps', '1', '--out', old])).code).toBe(0);
    const settings = { maxLength: 48, maxPromptLength: 24, noEos: true, refinePrompt: PAPER_REFINE_PROMPT, skipBadRows: false, inContext: false };
    const asPairs = await loadPairsForModel(fixture('gpt-neox-tiny'), data, settings, { augmented: false }, () => {});
    const state = JSON.parse(readFileSync(join(old, 'checkpoint', 'trainer_state.json'), 'utf8'));
    delete state.options.sftPairTruncation;
    state.dataHash = pairsHash(asPairs);
    writeFileSync(join(old, 'checkpoint', 'trainer_state.json'), JSON.stringify(state));
    // Its pairs carry the refine prompt (in their hash): another one is refused by name.
    const otherRefine = await train([...base, '--refine-prompt', 'Rate 100:', '--max-steps', '2', '--resume', '--out', old]);
    expect(otherRefine.code).toBe(1);
    expect(otherRefine.stderr).toMatch(/--resume: --refine-prompt is "Rate 100:" but the run in .* used/);
    const resumed = await train([...base, '--max-steps', '2', '--resume', '--out', old]);
    expect(resumed.code, describeRun(resumed)).toBe(0);
    expect(resumed.stderr).toMatch(/4 rows tokenized \(maxLength 48, maxPromptLength 24\); 2 truncated/);
    expect(readMetrics(old)).toHaveLength(2);
  });

  it('a row past max_position_embeddings is refused by its line before any step', async () => {
    const model = join(tmp, 'short-positions');
    cpSync(fixture('gpt-neox-tiny'), model, { recursive: true });
    const cfg = JSON.parse(readFileSync(join(model, 'config.json'), 'utf8'));
    writeFileSync(join(model, 'config.json'), JSON.stringify({ ...cfg, max_position_embeddings: 16 }));
    const out = join(tmp, 'refused');
    const r = await train([...base.map((a) => (a === fixture('gpt-neox-tiny') ? model : a)), '--max-steps', '1', '--out', out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/pairs\.jsonl:1: prompt \+ completion has \d+ tokens, more than the model's max_position_embeddings 16/);
    expect(existsSync(join(out, 'metrics.jsonl'))).toBe(false);
  });

  it('rows without a rejected response ({prompt, completion}, {messages}) train as the same rows with one; other losses refuse them by line', async () => {
    const rows = [
      { prompt: '\n\nHuman: Hi?\n\nAssistant:', completion: ' Hello, how can I help?' },
      { messages: [{ role: 'user', content: 'Sort 3 1 2.' }, { role: 'assistant', content: '1 2 3' }] },
      { prompt: '\n\nHuman: Sky?\n\nAssistant:', chosen: ' Blue.' },
      { chosen: '\n\nHuman: Sea?\n\nAssistant: Wide.' },
    ];
    const sftOnly = join(tmp, 'sft-only.jsonl');
    writeFileSync(sftOnly, rows.map((o) => JSON.stringify(o)).join('\n') + '\n');
    // The same rows as preference pairs (the fixture has no chat template: chat rows are "role: content" lines).
    const asPairs = join(tmp, 'as-pairs.jsonl');
    writeFileSync(asPairs, [
      { prompt: '\n\nHuman: Hi?\n\nAssistant:', chosen: ' Hello, how can I help?', rejected: ' x' },
      { prompt: 'user: Sort 3 1 2.\nassistant:', chosen: ' 1 2 3', rejected: ' y' },
      { prompt: '\n\nHuman: Sky?\n\nAssistant:', chosen: ' Blue.', rejected: ' z' },
      { chosen: '\n\nHuman: Sea?\n\nAssistant: Wide.', rejected: '\n\nHuman: Sea?\n\nAssistant: w' },
    ].map((o) => JSON.stringify(o)).join('\n') + '\n');
    // Two steps of two rows each (base's batch size).
    const args = (data: string, out: string) => [...base.map((a) => (a === data0 ? data : a)), '--max-steps', '2', '--out', out];
    // The same rows as held-out data: an SFT eval (their NLL per completion token, no reference).
    const a = await train([...args(sftOnly, join(tmp, 'sft-only')), '--eval-data', sftOnly, '--aug-precision', 'mixed']);
    expect(a.code, describeRun(a)).toBe(0);
    expect(a.stderr).toMatch(/4 SFT rows without a rejected response/);
    // Such an evaluation has no augmented pass either.
    expect(a.stderr).toMatch(/--aug-precision mixed: sft has no augmented pass and there is no --eval-data of pairs; it changes nothing here/);
    const b = await train(args(asPairs, join(tmp, 'as-pairs')));
    expect(b.code, describeRun(b)).toBe(0);
    const [ma, mb] = [readMetrics(join(tmp, 'sft-only')), readMetrics(join(tmp, 'as-pairs'))];
    expect(ma).toHaveLength(2);
    for (const k of ['loss', 'grad_norm', 'logp_chosen'] as const) expect(ma.map((m) => m[k])).toEqual(mb.map((m) => m[k]));

    // eval.jsonl: the NLL before and after training, as `srk eval` gives it for the initial and the saved
    // model, also as the loss (the report marks it on the loss chart); no margins without rejected responses.
    const evals = readFileSync(join(tmp, 'sft-only', 'eval.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(evals.map((e) => e.step)).toEqual([0, 2]);
    const srkEval = (model: string) => {
      const r = spawnSync(process.execPath, [srk, 'eval', '--model', model, '--data', sftOnly, '--no-eos', ...limits, '--json'], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      return JSON.parse(r.stdout).nll_chosen as number;
    };
    const [before, after] = [srkEval(fixture('gpt-neox-tiny')), srkEval(join(tmp, 'sft-only', 'checkpoint'))];
    for (const [e, want] of [[evals[0], before], [evals[1], after]] as const) {
      expect(e.nll_chosen).toBeCloseTo(want, 5);
      expect(e.loss).toBe(e.nll_chosen);
      expect([e.margin, e.accuracy, e.aug_accuracy, e.n]).toEqual([null, null, null, 4]);
    }
    expect(after).toBeLessThan(before); // lr 1e-4 on the rows themselves
    expect(readFileSync(join(tmp, 'sft-only', 'report-eval.csv'), 'utf8')).toMatch(/nll_chosen/);

    const dpo = await train(args(sftOnly, join(tmp, 'dpo')).map((a) => (a === 'sft' ? 'dpo' : a)));
    expect(dpo.code).toBe(1);
    expect(dpo.stderr).toMatch(/sft-only\.jsonl:1: missing fields "chosen" and "rejected": a row with "completion" is an SFT row/);
  });
});
