// Bad input met before any work (a flag value, a path of the wrong kind) is refused by its flag and
// path, exit 1, no stack and nothing created; and a run whose progress reader goes away (stderr
// closed: `srk train 2>&1 | head`) trains on and saves instead of dying on EPIPE.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixture, fixtureArgs, readMetrics, tempDir } from '../train/helpers.js';

const root = resolve(import.meta.dirname, '../..');
const srk = resolve(root, 'bin/srk.js');
const run = (args: string[]) => spawnSync(process.execPath, [srk, ...args], { cwd: root, encoding: 'utf8', timeout: 120_000 });

describe('refused before any work, by flag and path', () => {
  const tmp = tempDir('srk-bad-input-');
  const model = fixture('gpt-neox-tiny');
  const data = join(model, 'pairs.jsonl');
  const cases: [string, string[], RegExp][] = [
    // Text that is no number is named as typed (yargs reads it as NaN, which the flag's check then showed).
    ['bench: a size that is not a number', ['bench', 'norm', '--tokens', 'abc'], /--tokens takes a number \(got "abc"\)/],
    ['bench: a square size that is not a number', ['bench', 'matmul', '--sizes', '256', '2x'], /--sizes takes a number \(got "2x"\)/],
    ['train: --lr abc', ['train', '--model', model, '--data', data, '--out', join(tmp, 'out12'), '--lr', 'abc'], /--lr takes a number \(got "abc"\)/],
    ['train: --batch-size=four', ['train', '--model', model, '--data', data, '--out', join(tmp, 'out13'), '--batch-size=four'], /--batch-size takes a number \(got "four"\)/],
    ['bench: a square size of 0', ['bench', 'matmul', '--sizes', '256', '0'], /bench: --sizes must be a positive integer, got 0/],
    // A flag its kind does not read (timed as without it, the report reading as if it were set).
    ['bench generate: --loss', ['bench', 'generate', '--loss', 'sr-dpo'], /bench generate: --loss is not read by this kind \(it reads --pairs, --seq, --prompt, --shape, --precision;/],
    ['bench norm: --no-packed and --vocab', ['bench', 'norm', '--no-packed', '--vocab=4'], /bench norm: --packed, --vocab are not read by this kind \(it reads --tokens;/],
    ['bench: --only not a regular expression', ['bench', 'matmul', '--only', '('], /bench: --only "\(" is not a regular expression/],
    ['train: --model missing', ['train', '--model', join(tmp, 'nope'), '--data', data, '--out', join(tmp, 'out1')], /--model .*nope: no such file or directory/],
    ['train: --model a file', ['train', '--model', data, '--data', data, '--out', join(tmp, 'out2')], /--model .*pairs\.jsonl: not a directory/],
    ['train: --out a file', ['train', '--model', model, '--data', data, '--out', data], /--out .*pairs\.jsonl: not a directory/],
    ['train (the demo): --out a file', ['train', '--out', data], /--out .*pairs\.jsonl: not a directory/],
    ['eval: --model a directory without config.json', ['eval', '--model', tmp, '--data', data], /--model .*: no config\.json, so not a Hugging Face checkpoint directory$/m],
    ['train: --data a directory', ['train', '--model', model, '--data', model, '--out', join(tmp, 'out3')], /--data .*gpt-neox-tiny: a directory, not a data file/],
    ['train: --eval-data missing', ['train', '--model', model, '--data', data, '--eval-data', join(tmp, 'x.jsonl'), '--out', join(tmp, 'out4')], /--eval-data .*x\.jsonl: no such file/],
    // A device or a pipe (/dev/stdin, <(...)) is read more than once: refused (it failed with ESPIPE).
    ['logprobs: --data a device', ['logprobs', '--model', model, '--data', '/dev/null'], /--data \/dev\/null: not a regular file \(a pipe or a device\): srk reads its data more than once/],
    ['train: --eval-data a device', ['train', '--model', model, '--data', data, '--eval-data', '/dev/null', '--out', join(tmp, 'out14')], /--eval-data \/dev\/null: not a regular file/],
    ['eval: --data a directory', ['eval', '--model', model, '--data', model], /--data .*gpt-neox-tiny: a directory, not a data file/],
    ['logprobs: --out a directory', ['logprobs', '--model', model, '--data', data, '--out', tmp], /--out .*: a directory \(give a file name\)/],
    // A flag without its value (a shell variable unset) is not its default: a seed sweep would train one run many times.
    ['train: --seed given no value', ['train', '--model', model, '--data', data, '--out', join(tmp, 'out5'), '--seed', '', '--lr', '1e-6'], /--seed needs a value \(an empty one was given\)/],
    ['train: --lr last, with no value', ['train', '--model', model, '--data', data, '--out', join(tmp, 'out6'), '--no-eos', '--lr'], /--lr needs a value$/m],
    ['train: --cache-dir followed by a flag', ['train', '--model', model, '--data', data, '--out', join(tmp, 'out7'), '--cache-dir', '--seed', '1'], /--cache-dir needs a value/],
    // A negative number in exponent form is a value, judged by its flag (yargs read -1e-6 as the short flags -1 and -e).
    ['train: --lr -1e-6', ['train', '--model', model, '--data', data, '--out', join(tmp, 'out8'), '--lr', '-1e-6'], /--lr must be a number >= 0 \(got -0\.000001\)/],
    ['train: --beta -1E+2', ['train', '--model', model, '--data', data, '--out', join(tmp, 'out9'), '--beta', '-1E+2'], /--beta must be > 0 \(got -100\)/],
    // A switch given a value (a negative number is joined to the flag before it: --json=-1e-6, once read as false).
    ['eval: --json -1e-6', ['eval', '--model', model, '--data', data, '--json', '-1e-6'], /--json is a switch: it takes no value \(got "-1e-6"\)/],
    ['eval: --json=yes', ['eval', '--model', model, '--data', data, '--json=yes'], /--json is a switch: it takes no value \(got "yes"\)/],
    // Values the GPU's float32 cannot hold (Inf there, or 0 where it flushes subnormals).
    ['train: --lr 1e39', ['train', '--model', model, '--data', data, '--out', join(tmp, 'out10'), '--lr', '1e39'], /--lr 1e\+39 is outside float32's range/],
    ['train: --beta 1e-40', ['train', '--model', model, '--data', data, '--out', join(tmp, 'out11'), '--beta', '1e-40'], /--beta 1e-40 is outside float32's range/],
    ['eval: --pairs-out= empty', ['eval', '--model', model, '--data', data, '--json', '--pairs-out='], /--pairs-out needs a value/],
  ];
  for (const [what, args, re] of cases) {
    it(what, () => {
      const r = run(args);
      expect(r.status, r.stderr).toBe(1);
      expect(r.stderr).toMatch(re);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    });
  }
  it('a refused train creates no --out directory', () => {
    for (const k of [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]) expect(existsSync(join(tmp, `out${k}`))).toBe(false);
  });
  // What yargs refuses (a value not among a flag's choices, an unknown flag): the reason and where the
  // flags are listed, exit 2, not the whole help page with the reason scrolled below it.
  const usage: [string, string[], RegExp][] = [
    ['train: --loss DPO', ['train', '--model', model, '--data', data, '--loss', 'DPO'],
      /^srk: --loss "DPO" is not one of sft, dpo, ipo, sr-dpo, sr-ipo \(did you mean dpo\?\)\nsrk train --help lists the flags\n$/],
    ['train: two values off their choices', ['train', '--model', model, '--data', data, '--loss', 'kto', '--precision', 'f16'],
      /^srk: --loss "kto" is not one of sft, dpo, ipo, sr-dpo, sr-ipo\nsrk: --precision "f16" is not one of f32, mixed\nsrk train --help/],
    ['bench: a kind not among them', ['bench', 'matmull'], /^srk: <kind> "matmull" is not one of matmul, copy, .*\nsrk bench --help lists the flags\n$/],
    ['eval: an unknown flag', ['eval', '--model', model, '--data', data, '--nope'], /^srk: Unknown argument: nope\nsrk eval --help lists the flags\n$/],
    ['a mistyped command', ['trian', '--model', model], /^srk: Did you mean train\?\nsrk --help lists the flags\n$/],
    ['a value starting with a dash', ['eval', '--model', model, '--data', '-pairs.jsonl'],
      /^srk: Unknown arguments: p, a, i, r, s\nsrk: "-pairs\.jsonl" reads as short flags: a value starting with "-" is given as --data=-pairs\.jsonl \(or a path as \.\/-pairs\.jsonl\)\nsrk eval --help lists the flags\n$/],
  ];
  for (const [what, args, re] of usage) {
    it(what, () => {
      const r = run(args);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr.replace(/^Warning: .*\n/gm, '')).toMatch(re);
    });
  }
  it('no command: the help page', () => {
    const r = run([]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/Commands:[\s\S]*srk: name a command/);
  });
  it('--model an srk train run directory: its model is named', () => {
    const runDir = join(tmp, 'a-run');
    mkdirSync(join(runDir, 'checkpoint'), { recursive: true });
    writeFileSync(join(runDir, 'checkpoint', 'config.json'), '{}');
    const r = run(['logprobs', '--model', runDir, '--data', data]);
    expect(r.status, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/--model .*a-run: no config\.json, so not a Hugging Face checkpoint directory: an srk train run directory; its model is .*a-run[/\\]checkpoint/);
  });
  it('bench matmul: --only that matches no case', () => {
    const r = run(['bench', 'matmul', '--only', 'no such case']);
    expect(r.status, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/bench matmul: no case matches --only "no such case" \(the cases: square/);
    expect(r.stderr).not.toMatch(/GB\/s/); // before the copy benchmark
  });
});

describe('srk train with its progress reader gone', () => {
  const tmp = tempDir('srk-epipe-');
  it('stderr closed after the first lines: the run trains on, saves and exits 0', async () => {
    const out = join(tmp, 'run');
    mkdirSync(tmp, { recursive: true });
    const child = spawn(process.execPath, [srk, 'train', '--plain-progress', ...fixtureArgs('gpt-neox-tiny'), '--loss', 'dpo', '--batch-size', '3',
      '--max-steps', '4', '--out', out], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
    // As `| head -1` does: read a little, then close the pipe; every later progress line meets EPIPE.
    child.stderr!.once('data', () => child.stderr!.destroy());
    const code = await new Promise<number | null>((res) => child.on('close', (c) => res(c)));
    expect(code).toBe(0);
    expect(readMetrics(out).map((m) => m.step)).toEqual([1, 2, 3, 4]);
    expect(existsSync(join(out, 'checkpoint', 'model.safetensors'))).toBe(true);
  }, 120_000);
});
