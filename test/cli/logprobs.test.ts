// `srk logprobs` as a user runs it (built CLI, real processes): per-pair log-probs of the fixture
// models reproduce the PyTorch references in expected.json, plain and augmented, with and without EOS.
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
const srk = resolve(root, 'bin/srk.js');
const fixtures = resolve(root, 'test/fixtures/hf');
const MODELS = ['gpt-neox-tiny', 'llama-tiny-tied', 'mistral-tiny'];
const tmp = mkdtempSync(join(tmpdir(), 'srk-logprobs-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function run(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [srk, ...args], { cwd: root, encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env } });
}

interface Expected {
  pairs: { prompt_ids: number[]; chosen_ids: number[]; rejected_ids: number[] }[];
  logps: Record<'policy_chosen' | 'policy_rejected' | 'policy_chosen_aug' | 'policy_rejected_aug', number[]>;
}
const expected = (name: string): Expected => JSON.parse(readFileSync(join(fixtures, name, 'expected.json'), 'utf8'));
const lines = (text: string) => text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Record<string, number>);
const relClose = (got: number, want: number) => expect(Math.abs(got - want)).toBeLessThanOrEqual(1e-4 * Math.abs(want));

describe('srk logprobs', () => {
  for (const name of MODELS) {
    it(`${name}: --no-eos --augmented reproduces expected.json`, () => {
      const dir = join(fixtures, name);
      const r = run(['logprobs', '--model', dir, '--data', join(dir, 'pairs.jsonl'), '--no-eos', '--augmented']);
      expect(r.status, r.stderr).toBe(0);
      const e = expected(name);
      const out = lines(r.stdout);
      expect(out.length).toBe(e.pairs.length);
      out.forEach((o, i) => {
        expect(Object.keys(o).sort()).toEqual(['chosen_logp', 'chosen_logp_aug', 'chosen_tokens', 'rejected_logp', 'rejected_logp_aug', 'rejected_tokens']);
        relClose(o.chosen_logp, e.logps.policy_chosen[i]);
        relClose(o.rejected_logp, e.logps.policy_rejected[i]);
        relClose(o.chosen_logp_aug, e.logps.policy_chosen_aug[i]);
        relClose(o.rejected_logp_aug, e.logps.policy_rejected_aug[i]);
        expect(o.chosen_tokens).toBe(e.pairs[i].chosen_ids.length);
        expect(o.rejected_tokens).toBe(e.pairs[i].rejected_ids.length);
      });
      expect(r.stderr).toMatch(/6 pairs scored/);
    });
  }

  it('appends EOS by default (one more token per completion unless it already ends with EOS), plain fields only', () => {
    const dir = join(fixtures, 'llama-tiny-tied');
    const r = run(['logprobs', '--model', dir, '--data', join(dir, 'pairs.jsonl'), '--micro-batch-size', '4']);
    expect(r.status, r.stderr).toBe(0);
    const e = expected('llama-tiny-tied');
    // In this fixture's small vocabulary '!' is the EOS id (2), so a completion ending in '!'
    // already ends with EOS and gets none appended (the training convention).
    const eos = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).eos_token_id as number;
    const withEos = (ids: number[]) => (ids[ids.length - 1] === eos ? ids.length : ids.length + 1);
    const out = lines(r.stdout);
    expect(out.length).toBe(e.pairs.length);
    let appended = 0;
    out.forEach((o, i) => {
      expect(Object.keys(o).sort()).toEqual(['chosen_logp', 'chosen_tokens', 'rejected_logp', 'rejected_tokens']);
      expect(o.chosen_tokens).toBe(withEos(e.pairs[i].chosen_ids));
      expect(o.rejected_tokens).toBe(withEos(e.pairs[i].rejected_ids));
      for (const [got, ids, plain] of [[o.chosen_logp, e.pairs[i].chosen_ids, e.logps.policy_chosen[i]], [o.rejected_logp, e.pairs[i].rejected_ids, e.logps.policy_rejected[i]]] as const) {
        if (withEos(ids) === ids.length) { relClose(got, plain); continue; }
        appended++;
        expect(got).toBeLessThan(plain); // the EOS term is a log-prob: the sum only goes down
      }
    });
    expect(appended).toBeGreaterThanOrEqual(10);
  });

  it('--out writes the same lines to a file and nothing to stdout', () => {
    const dir = join(fixtures, 'gpt-neox-tiny');
    const args = ['logprobs', '--model', dir, '--data', join(dir, 'pairs.jsonl'), '--no-eos', '--augmented', '--micro-batch-size', '5'];
    const toStdout = run(args);
    const file = join(tmp, 'sub', 'out.jsonl');
    const toFile = run([...args, '--out', file]);
    expect(toFile.status, toFile.stderr).toBe(0);
    expect(toFile.stdout).toBe('');
    expect(readFileSync(file, 'utf8')).toBe(toStdout.stdout);
    expect(readdirSync(join(tmp, 'sub'))).toEqual(['out.jsonl']); // no temp file left behind
    // --out naming the --data file would overwrite it: refused.
    const data = join(tmp, 'mine.jsonl');
    writeFileSync(data, readFileSync(join(dir, 'pairs.jsonl')));
    const same = run(['logprobs', '--model', dir, '--data', data, '--out', data]);
    expect(same.status).toBe(1);
    expect(same.stderr).toMatch(/--out .*mine\.jsonl is the input .*mine\.jsonl: the output would overwrite it/);
    expect(readFileSync(data, 'utf8')).toBe(readFileSync(join(dir, 'pairs.jsonl'), 'utf8'));
  });

  it('--out: SIGTERM keeps the rows scored in OUT.partial; the same command takes up from there and writes what a run never stopped writes', async () => {
    const dir = join(fixtures, 'gpt-neox-tiny');
    const pairs = readFileSync(join(dir, 'pairs.jsonl'), 'utf8').trim().split('\n');
    const data = join(tmp, 'many-pairs.jsonl');
    // Enough rows for the run to be stopped in (two a micro-batch); few, for the suite's time.
    const copies = 6; const total = copies * pairs.length;
    writeFileSync(data, Array.from({ length: copies }, () => pairs).flat().join('\n') + '\n');
    const args = ['logprobs', '--model', dir, '--data', data, '--augmented', '--micro-batch-size', '2'];
    const whole = run(args);
    expect(whole.status, whole.stderr).toBe(0);
    const out = join(mkdtempSync(join(tmp, 'sig-')), 'lp.jsonl');
    const child = spawn(process.execPath, [srk, ...args, '--out', out], { cwd: root });
    let err = '';
    child.stderr.on('data', (d) => { err += String(d); });
    const poll = setInterval(() => {
      if (!child.killed && existsSync(`${out}.partial`) && readFileSync(`${out}.partial`, 'utf8').split('\n').length > 5) child.kill('SIGTERM');
    }, 20);
    const code = await new Promise<number | null>((done) => child.on('exit', (c) => done(c)));
    clearInterval(poll);
    expect(code, err).toBe(143);
    expect(err).toMatch(/stopped by SIGTERM; .*lp\.jsonl\.partial keeps the \d+ rows done: run the same command to take up from there/);
    const kept = readFileSync(`${out}.partial`, 'utf8').trim().split('\n').length;
    expect(kept).toBeLessThan(total); // stopped part way: the row changed below is one not yet scored
    expect(readFileSync(`${out}.partial.rows`, 'utf8').trim().split('\n').length).toBe(kept); // a key per row scored
    // A row after those scored may change (a fixed row, say): the run is taken up on the data as it is now.
    const rows = readFileSync(data, 'utf8').trim().split('\n');
    rows[total - 1] = JSON.stringify({ ...JSON.parse(rows[total - 1]), chosen: ' a fixed answer' });
    writeFileSync(data, rows.join('\n') + '\n');
    const resumed = run([...args, '--out', out]);
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(new RegExp(`taking up .*lp\\.jsonl\\.partial: ${kept} of ${total} rows done by an earlier run`));
    const now = run(args);
    expect(readFileSync(out, 'utf8')).toBe(now.stdout);
    expect(now.stdout).not.toBe(whole.stdout);
    expect(readdirSync(join(out, '..'))).toEqual(['lp.jsonl']);
    // A row among those scored changed: refused, naming it.
    const child2 = spawn(process.execPath, [srk, ...args, '--out', out], { cwd: root });
    const poll2 = setInterval(() => {
      if (!child2.killed && existsSync(`${out}.partial`) && readFileSync(`${out}.partial`, 'utf8').split('\n').length > 5) child2.kill('SIGTERM');
    }, 20);
    await new Promise((done) => child2.on('exit', done));
    clearInterval(poll2);
    rows[1] = JSON.stringify({ ...JSON.parse(rows[1]), prompt: 'another prompt' });
    writeFileSync(data, rows.join('\n') + '\n');
    const changed = run([...args, '--out', out]);
    expect(changed.status).toBe(1);
    expect(changed.stderr).toMatch(/many-pairs\.jsonl:2 is not the row .*lp\.jsonl\.partial scored as its row 2 \(the data changed before the rows left\)/);
  }, 120_000);

  it('a JSON array file on one line: the same lines, its rows counted as rows; several files are refused', () => {
    const dir = join(fixtures, 'gpt-neox-tiny');
    const rows = readFileSync(join(dir, 'pairs.jsonl'), 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l));
    const data = join(tmp, 'one-line.json');
    writeFileSync(data, JSON.stringify(rows));
    const args = ['--model', dir, '--no-eos'];
    const a = run(['logprobs', ...args, '--data', data]);
    expect(a.status, a.stderr).toBe(0);
    expect(a.stdout).toBe(run(['logprobs', ...args, '--data', join(dir, 'pairs.jsonl')]).stdout);
    expect(a.stderr).toMatch(/logprobs: 6\/6/); // the total counts rows, not the file's one line
    const two = run(['logprobs', ...args, '--data', data, '--data', join(dir, 'pairs.jsonl')]);
    expect(two.status).toBe(1);
    expect(two.stderr).toMatch(/srk logprobs reads one --data file .*not 2: run it once per file/);
  });

  it('a malformed line is an error naming file:line; --out keeps the rows before it, and the fixed file is taken up from there', () => {
    const dir = join(fixtures, 'gpt-neox-tiny');
    const good = readFileSync(join(dir, 'pairs.jsonl'), 'utf8').split('\n').filter((l) => l.trim() !== '');
    const data = join(tmp, 'bad.jsonl');
    writeFileSync(data, `${good[0]}\n${good[1]}\n{"prompt": "x", "chosen": "y"\n${good[2]}\n`);
    const out = join(tmp, 'bad-out.jsonl');
    const r = run(['logprobs', '--model', dir, '--data', data, '--out', out]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(`${data}:3:`);
    expect(r.stderr).not.toMatch(/\n\s+at /); // a message, not a stack trace
    // The two rows before it were scored (less than a micro-batch) and kept.
    expect(r.stderr).toMatch(/bad-out\.jsonl\.partial keeps the 2 rows done: fix what the error names and run the same command/);
    expect(lines(readFileSync(`${out}.partial`, 'utf8'))).toHaveLength(2);
    writeFileSync(data, `${good[0]}\n${good[1]}\n${good[3]}\n${good[2]}\n`);
    const fixed = run(['logprobs', '--model', dir, '--data', data, '--out', out]);
    expect(fixed.status, fixed.stderr).toBe(0);
    expect(fixed.stderr).toMatch(/taking up .*bad-out\.jsonl\.partial: 2 of 4 rows done by an earlier run/);
    const whole = run(['logprobs', '--model', dir, '--data', data]);
    expect(readFileSync(out, 'utf8')).toBe(whole.stdout);
    rmSync(out);
    // A row that reads but does not tokenize (an empty prompt) after a scored one: that one is kept too.
    writeFileSync(data, `${good[0]}\n{"prompt": "", "chosen": " a", "rejected": " b"}\n`);
    const empty = run(['logprobs', '--model', dir, '--data', data, '--out', out]);
    expect(empty.status).toBe(1);
    expect(empty.stderr).toContain(`${data}:2:`);
    expect(lines(readFileSync(`${out}.partial`, 'utf8'))).toHaveLength(1);
    rmSync(`${out}.partial`); rmSync(`${out}.partial.json`); rmSync(`${out}.partial.rows`);
    // A bad first row: nothing scored, nothing left behind.
    writeFileSync(data, `{"prompt": "x", "chosen": "y"}\n${good[0]}\n`);
    expect(run(['logprobs', '--model', dir, '--data', data, '--out', out]).status).toBe(1);
    expect(readdirSync(tmp).filter((f) => f.startsWith('bad-out'))).toEqual([]);

    writeFileSync(data, `${good[0]}\n{"prompt": "x", "chosen": "y"}\n`);
    const r2 = run(['logprobs', '--model', dir, '--data', data]);
    expect(r2.status).not.toBe(0);
    expect(r2.stderr).toContain(`${data}:2:`);
    expect(r2.stderr).toMatch(/rejected/);
  });

  it('tokenizing on worker threads gives the same lines, counts and first bad row as one thread', () => {
    const dir = join(fixtures, 'mistral-tiny'); // SentencePiece: the worker rebuilds it from tokenizer.model's spec
    const good = readFileSync(join(dir, 'pairs.jsonl'), 'utf8').split('\n').filter((l) => l.trim() !== '');
    const data = join(tmp, 'threads.jsonl');
    writeFileSync(data, `${[...good, ...good, ...good, ...good].join('\n')}\n`);
    const args = ['logprobs', '--model', dir, '--data', data, '--augmented', '--micro-batch-size', '5'];
    const one = run(args, { SRK_TOKENIZE_THREADS: '1' });
    const three = run(args, { SRK_TOKENIZE_THREADS: '3' });
    expect(one.status, one.stderr).toBe(0);
    expect(three.status, three.stderr).toBe(0);
    expect(lines(three.stdout)).toHaveLength(24);
    expect(three.stdout).toBe(one.stdout);
    const counts = (r: { stderr: string }) => r.stderr.split('\n').filter((l) => /rows tokenized|rows \(text/.test(l));
    expect(counts(three)).toEqual(counts(one));
    expect(counts(one).join('\n')).toMatch(/24 rows tokenized/);
    // A row that reads but does not tokenize (an empty prompt), named by its line either way.
    writeFileSync(data, `${[...good, ...good, ...good].join('\n')}\n{"prompt": "", "chosen": " a", "rejected": " b"}\n${good[0]}\n`);
    for (const threads of ['1', '3']) {
      const r = run(args, { SRK_TOKENIZE_THREADS: threads });
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(`${data}:19:`);
    }
  });

  it('a pair past the model\'s max_position_embeddings is an error naming its line (the augmented sequence with --augmented)', () => {
    const model = join(tmp, 'short-positions');
    cpSync(join(fixtures, 'gpt-neox-tiny'), model, { recursive: true });
    const cfg = JSON.parse(readFileSync(join(model, 'config.json'), 'utf8'));
    const data = join(tmp, 'long.jsonl');
    const rows = readFileSync(join(model, 'pairs.jsonl'), 'utf8').split('\n').filter((l) => l.trim() !== '');
    const plainLens = expected('gpt-neox-tiny').pairs.map((p) => p.prompt_ids.length + Math.max(p.chosen_ids.length, p.rejected_ids.length));
    const longest = plainLens.indexOf(Math.max(...plainLens));
    writeFileSync(data, `${rows[(longest + 1) % rows.length]}\n${rows[longest]}\n`); // line 2: the longest
    // Room for every plain sequence with its EOS, not for the longest with the refine prompt.
    writeFileSync(join(model, 'config.json'), JSON.stringify({ ...cfg, max_position_embeddings: plainLens[longest] + 1 }));
    expect(run(['logprobs', '--model', model, '--data', data]).status).toBe(0);
    const r = run(['logprobs', '--model', model, '--data', data, '--augmented']);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`${data}:1: its augmented sequence (refine prompt + prompt + completion) has`);
    // Plain sequences one position too many: the longest pair, by its line.
    writeFileSync(join(model, 'config.json'), JSON.stringify({ ...cfg, max_position_embeddings: plainLens[longest] }));
    const r2 = run(['logprobs', '--model', model, '--data', data]);
    expect(r2.status).toBe(1);
    expect(r2.stderr).toContain(`${data}:2: prompt + completion has ${plainLens[longest] + 1} tokens, more than the model's max_position_embeddings ${plainLens[longest]}`);
    expect(r.stderr).toContain(`max_position_embeddings ${plainLens[longest] + 1}`);
  });

  it('a missing data file is a clear error', () => {
    const dir = join(fixtures, 'gpt-neox-tiny');
    const r = run(['logprobs', '--model', dir, '--data', join(tmp, 'nope.jsonl')]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/nope\.jsonl: no such file/);
  });

  it('--help documents the command', () => {
    const top = run(['--help']);
    expect(top.stdout).toMatch(/srk logprobs/);
    const r = run(['logprobs', '--help']);
    expect(r.status).toBe(0);
    for (const f of ['--model', '--data', '--augmented', '--refine-prompt', '--eos', '--out', '--max-length', '--max-prompt-length', '--micro-batch-size', '--adapter']) {
      expect(r.stdout).toContain(f);
    }
  });
});
