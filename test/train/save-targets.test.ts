// What a run would destroy or misread is refused before any work, by name: an OUT/checkpoint that srk
// train did not write (a save swaps that directory out and deletes it), a model inside the directories
// the run's saves replace, and a reference (--ref-model, config and weights alone) whose vocabulary or
// positions cannot score the policy's token ids.
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { fixture, root, srk, tempDir, train } from './helpers.js';

const run = (args: string[]) => spawnSync(process.execPath, [srk, ...args], { cwd: root, encoding: 'utf8', timeout: 120_000 });
const model = fixture('gpt-neox-tiny');
const data = join(model, 'pairs.jsonl');

/** A copy of `dir` (files only) with config.json changed by `edit`. */
function withConfig(dir: string, to: string, edit: (c: Record<string, unknown>) => void, files = readdirSync(dir)): string {
  mkdirSync(to, { recursive: true });
  for (const f of files) cpSync(join(dir, f), join(to, f));
  const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  edit(c);
  writeFileSync(join(to, 'config.json'), JSON.stringify(c));
  return to;
}

describe('directories a run\'s saves replace', () => {
  const tmp = tempDir('srk-save-targets-');

  it('an OUT/checkpoint srk did not write (a model copied there, given as --model) is refused and left whole', async () => {
    const out = join(tmp, 'a');
    cpSync(model, join(out, 'checkpoint'), { recursive: true });
    const before = readdirSync(join(out, 'checkpoint')).sort();
    const r = await train(['--model', join(out, 'checkpoint'), '--data', data, '--loss', 'dpo', '--max-steps', '1', '--out', out]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/a[/\\]checkpoint is there and is no checkpoint of srk train \(it has no trainer_state\.json\): the run saves by replacing that directory/);
    expect(readdirSync(join(out, 'checkpoint')).sort()).toEqual(before);
    expect(readFileSync(join(out, 'checkpoint', 'model.safetensors'))).toEqual(readFileSync(join(model, 'model.safetensors')));
  }, 60_000);

  it('a reference inside OUT/models is refused', async () => {
    const out = join(tmp, 'b');
    cpSync(fixture('gpt-neox-tiny_ref'), join(out, 'models', 'ref'), { recursive: true });
    const r = await train(['--model', model, '--ref-model', join(out, 'models', 'ref'), '--data', data, '--loss', 'dpo', '--max-steps', '1', '--out', out]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/--ref-model .*b[/\\]models[/\\]ref is inside .*b[/\\]models, which this run's saves replace/);
    expect(existsSync(join(out, 'metrics.jsonl'))).toBe(false);
  }, 60_000);
});

describe('a reference that cannot score the policy\'s token ids', () => {
  const tmp = tempDir('srk-ref-fits-');
  // Weights and config alone (it takes the policy's tokenizer); the fixture's ids reach past 200.
  const ref = fixture('gpt-neox-tiny_ref');
  const smallVocab = withConfig(ref, join(tmp, 'vocab'), (c) => { c.vocab_size = 200; }, ['config.json', 'model.safetensors']);
  const fewPositions = withConfig(ref, join(tmp, 'positions'), (c) => { c.max_position_embeddings = 8; }, ['config.json', 'model.safetensors']);

  it('srk eval: its vocab_size, named by the reference and the pair\'s line', () => {
    const r = run(['eval', '--model', model, '--ref-model', smallVocab, '--data', data]);
    expect(r.status, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/--ref-model .*vocab: .*pairs\.jsonl:1: token id \d+ is past the reference's vocab_size 200 \(the reference scores the policy's token ids\)/);
  });

  it('srk train: its max_position_embeddings, before any step', async () => {
    const out = join(tmp, 'run');
    const r = await train(['--model', model, '--ref-model', fewPositions, '--data', data, '--loss', 'sr-dpo', '--max-steps', '1', '--out', out]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/--ref-model .*positions: .*pairs\.jsonl:1: .* more than the reference's max_position_embeddings 8/);
    expect(existsSync(join(out, 'metrics.jsonl'))).toBe(false);
  }, 60_000);
});
