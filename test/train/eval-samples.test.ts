// --eval-samples: at each evaluation the policy's greedy completions of the first eval prompts go to
// OUT/samples.jsonl; they are what `srk generate` writes for the same prompts with the model of that
// step (the initial one at step 0, the saved checkpoint at the end), and the report shows them.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeRun, fixture, root, srk, tempDir, train } from './helpers.js';

describe('srk train --eval-samples', () => {
  const tmp = tempDir('srk-eval-samples-');
  const lines = readFileSync(join(fixture('gpt-neox-tiny'), 'pairs.jsonl'), 'utf8').trim().split('\n');
  const evalFile = join(tmp, 'eval.jsonl');
  const evalLines = [...lines, ...lines]; // 12 rows: samples of 10 run as 8 + 2
  writeFileSync(evalFile, evalLines.join('\n') + '\n');
  const generate = (model: string, k: number, tokens: number) => {
    const prompts = join(tmp, `prompts-${k}.jsonl`);
    writeFileSync(prompts, evalLines.slice(0, k).join('\n') + '\n');
    const r = spawnSync(process.execPath, [srk, 'generate', '--model', model, '--data', prompts, '--max-new-tokens', String(tokens)], { cwd: root, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    return r.stdout.trim().split('\n').map((l) => JSON.parse(l));
  };

  it('writes each evaluation\'s greedy completions, those srk generate gives with that step\'s model; the report shows them', async () => {
    const out = join(tmp, 'run');
    const r = await train(['--model', fixture('gpt-neox-tiny'), '--ref-model', fixture('gpt-neox-tiny_ref'), '--data', join(fixture('gpt-neox-tiny'), 'pairs.jsonl'), '--eval-data', evalFile,
      '--loss', 'dpo', '--batch-size', '3', '--lr', '1e-2', '--warmup-steps', '0', '--max-steps', '2', '--eval-every', '1', '--eval-samples', '10',
      '--eval-sample-tokens', '6', '--out', out]);
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.stderr).toMatch(/samples at step 0: 10 greedy completions in .*samples\.jsonl/);
    const rows = readFileSync(join(out, 'samples.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(rows.map((x) => [x.step, x.line, x.file])).toEqual([0, 1, 2].flatMap((step) => Array.from({ length: 10 }, (_, i) => [step, i + 1, evalFile])));
    // Beside each, the data's chosen response (EOS left out).
    expect(rows.slice(0, 10).map((x) => x.chosen)).toEqual(evalLines.slice(0, 10).map((l) => JSON.parse(l).chosen));
    const atStart = generate(fixture('gpt-neox-tiny'), 10, 6);
    const atEnd = generate(join(out, 'checkpoint'), 10, 6);
    for (const [step, want] of [[0, atStart], [2, atEnd]] as const) {
      const got = rows.filter((x) => x.step === step);
      expect(got.map((x) => [x.prompt, x.completion, x.finish_reason, x.completion_tokens])).toEqual(
        want.map((w) => [w.prompt, w.completion, w.finish_reason, w.completion_tokens]));
    }
    // The training moved the policy (lr 1e-2): its samples changed somewhere, and the report shows both ends.
    expect(atEnd.map((w) => w.completion)).not.toEqual(atStart.map((w) => w.completion));
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    expect(html).toContain('<h2>Samples</h2>');
    expect(html).toContain('latest, step 2');
  });

  it('a finished run resumed with --eval-samples samples its last step once', async () => {
    const out = join(tmp, 'later');
    const base = ['--model', fixture('gpt-neox-tiny'), '--ref-model', fixture('gpt-neox-tiny_ref'), '--data', join(fixture('gpt-neox-tiny'), 'pairs.jsonl'),
      '--eval-data', evalFile, '--loss', 'dpo', '--batch-size', '3', '--max-steps', '1', '--out', out];
    expect((await train(base)).code).toBe(0);
    for (let i = 0; i < 2; i++) {
      const r = await train([...base, '--resume', '--eval-samples', '2', '--eval-sample-tokens', '3']);
      expect(r.code, describeRun(r)).toBe(0);
    }
    const rows = readFileSync(join(out, 'samples.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(rows.map((x) => [x.step, x.line])).toEqual([[1, 1], [1, 2]]);
  });

  it('needs --eval-data', async () => {
    const r = await train(['--model', fixture('gpt-neox-tiny'), '--data', evalFile, '--eval-samples', '2', '--out', join(tmp, 'none')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--eval-samples samples the prompts of --eval-data: give --eval-data too/);
  });
});
