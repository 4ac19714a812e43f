// `srk generate` as a user runs it (built CLI, real processes) on the fixture models: the prompt of
// each row shape, decoding settings from generation_config.json and from flags, completions that do
// not depend on the batch size, --samples lists, an atomic --out, and clear errors for bad input.
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, linkSync, mkdtempSync, readFileSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
const srk = resolve(root, 'bin/srk.js');
const fixtures = resolve(root, 'test/fixtures/hf');
const tmp = mkdtempSync(join(tmpdir(), 'srk-generate-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function run(args: string[]) {
  return spawnSync(process.execPath, [srk, 'generate', ...args], { cwd: root, encoding: 'utf8', timeout: 120_000 });
}
const lines = (text: string) => text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Record<string, unknown>);

/** A copy of a fixture model with other files beside (generation_config.json, a chat template). */
function modelCopy(name: string, files: Record<string, unknown> = {}): string {
  const dir = mkdtempSync(join(tmp, `${name}-`));
  cpSync(join(fixtures, name), dir, { recursive: true });
  for (const [f, v] of Object.entries(files)) writeFileSync(join(dir, f), typeof v === 'string' ? v : JSON.stringify(v));
  return dir;
}

function dataFile(name: string, rows: (Record<string, unknown> | string)[]): string {
  const f = join(tmp, name);
  writeFileSync(f, rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n');
  return f;
}

const TEMPLATE = '{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}';

describe('srk generate', () => {
  it('takes the prompt of every row shape (a chat template where rows are conversations), one line per row in order', () => {
    const model = modelCopy('gpt-neox-tiny', { 'tokenizer_config.json': { chat_template: TEMPLATE } });
    const data = dataFile('shapes.jsonl', [
      { prompt: 'text as written' },
      { messages: [{ role: 'user', content: 'hi' }] },
      { instruction: 'do it' },
      { chosen: '\n\nHuman: a question\n\nAssistant: good', rejected: '\n\nHuman: a question\n\nAssistant: bad' },
      '',
      { prompt: 'sft prompt', completion: ' sft answer' },
      { messages: [{ role: 'system', content: 's' }, { role: 'user', content: 'u' }, { role: 'assistant', content: 'old answer' }] },
      { prompt: [{ role: 'user', content: 'as a list' }], chosen: [{ role: 'assistant', content: 'x' }], rejected: [{ role: 'assistant', content: 'y' }] },
      { instruction: 'translate', input: 'the cat', output: 'le chat' }, // Alpaca: the input below the instruction
      { instruction: 'no input', input: '' },
    ]);
    const r = run(['--model', model, '--data', data, '--max-new-tokens', '4', '--batch-size', '3']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^model .*: gpt-neox, 2 layers, hidden 64, 4 heads of 16 \(4 rotary\)/m); // what was read, as srk train says it
    const out = lines(r.stdout);
    expect(out.map((o) => o.prompt)).toEqual([
      'text as written', '<user>hi\n<assistant>', '<user>do it\n<assistant>', '\n\nHuman: a question\n\nAssistant:',
      'sft prompt', '<system>s\n<user>u\n<assistant>', '<user>as a list\n<assistant>', '<user>translate\n\nthe cat\n<assistant>', '<user>no input\n<assistant>',
    ]);
    expect(out.map((o) => o.line)).toEqual([1, 2, 3, 4, 6, 7, 8, 9, 10]);
    for (const o of out) {
      expect(o.finish_reason === 'stop' || o.finish_reason === 'length').toBe(true);
      expect(o.completion_tokens).toBeLessThanOrEqual(4);
      expect(typeof o.completion).toBe('string');
    }
    expect(r.stderr).toMatch(/9 prompts: \d+ new tokens/);
    expect(r.stderr).toMatch(/decoding: greedy, at most 4 new tokens, stop ids 0/);
    expect(r.stderr).not.toMatch(/is not a stop id/);
  });

  it('says where the tokenizer\'s EOS is not a stop id (a chat EOS that generation_config.json does not name)', () => {
    const model = modelCopy('gpt-neox-tiny', { 'tokenizer_config.json': { eos_token: '<|padding|>' }, 'generation_config.json': { eos_token_id: [0, 2] } });
    const r = run(['--model', model, '--data', dataFile('eos.jsonl', [{ prompt: 'Hello' }]), '--max-new-tokens', '2']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/note: the tokenizer's EOS "<\|padding\|>" \(id 1\) is not a stop id \(those are 0 2, from generation_config\.json or config\.json\): add it to generation_config\.json's eos_token_id/);
    const fixed = modelCopy('gpt-neox-tiny', { 'tokenizer_config.json': { eos_token: '<|padding|>' }, 'generation_config.json': { eos_token_id: [0, 1] } });
    expect(run(['--model', fixed, '--data', dataFile('eos2.jsonl', [{ prompt: 'Hello' }]), '--max-new-tokens', '2']).stderr).not.toMatch(/is not a stop id/);
  });

  it('sampled completions do not depend on --batch-size; --samples gives lists; --out is written whole', () => {
    const model = join(fixtures, 'llama-tiny-tied');
    const data = dataFile('prompts.jsonl', ['first', 'a second prompt', 'third', 'fourth one', 'fifth'].map((prompt) => ({ prompt })));
    const flags = ['--model', model, '--data', data, '--max-new-tokens', '6', '--temperature', '1', '--top-k', '0', '--seed', '7'];
    const a = run([...flags, '--batch-size', '5']);
    const b = run([...flags, '--batch-size', '2']);
    expect(a.status, a.stderr).toBe(0);
    expect(b.stdout).toBe(a.stdout);
    expect(a.stderr).toMatch(/temperature 1, top-k off, top-p 1, seed 7/);
    const other = run([...flags.slice(0, -1), '8']);
    expect(other.stdout).not.toBe(a.stdout);
    const out = join(tmp, 'sub', 'samples.jsonl');
    const s = run([...flags, '--samples', '3', '--out', out]);
    expect(s.status, s.stderr).toBe(0);
    expect(s.stdout).toBe('');
    const rows = lines(readFileSync(out, 'utf8'));
    expect(rows.length).toBe(5);
    for (const r of rows) {
      expect((r.completions as string[]).length).toBe(3);
      expect((r.finish_reasons as string[]).length).toBe(3);
      expect((r.completion_tokens as number[]).length).toBe(3);
    }
    expect(readdirSync(join(tmp, 'sub'))).toEqual(['samples.jsonl']);
  });

  it('follows generation_config.json (sampling, max_new_tokens, eos_token_id lists); flags override it', () => {
    const data = dataFile('one.jsonl', [{ prompt: 'hello there' }]);
    const greedy = run(['--model', join(fixtures, 'gpt-neox-tiny'), '--data', data, '--max-new-tokens', '5']);
    expect(greedy.status, greedy.stderr).toBe(0);
    const g = lines(greedy.stdout)[0];
    expect(typeof g.completion).toBe('string');
    const cfgModel = modelCopy('gpt-neox-tiny', { 'generation_config.json': { do_sample: true, temperature: 0.5, top_k: 3, max_new_tokens: 2, eos_token_id: [999, 0] } });
    const s = run(['--model', cfgModel, '--data', data]);
    expect(s.status, s.stderr).toBe(0);
    expect(s.stderr).toMatch(/decoding: temperature 0.5, top-k 3, top-p 1, seed 0, at most 2 new tokens, stop ids 999 0/);
    expect(lines(s.stdout)[0].completion_tokens).toBeLessThanOrEqual(2);
    const f = run(['--model', cfgModel, '--data', data, '--temperature', '0', '--max-new-tokens', '5']);
    expect(f.status, f.stderr).toBe(0);
    expect(f.stderr).toMatch(/decoding: greedy, at most 5 new tokens/);
    expect(lines(f.stdout)[0].completion).toBe(g.completion);
  });

  it('a JSON array file; a long prompt keeps its end and says so; max_length and unapplied settings of generation_config.json', () => {
    const model = join(fixtures, 'gpt-neox-tiny');
    const arr = join(tmp, 'rows.json');
    const long = Array.from({ length: 40 }, (_, i) => `word${i}`).join(' ');
    writeFileSync(arr, JSON.stringify([{ prompt: 'short' }, { prompt: long }]));
    const r = run(['--model', model, '--data', arr, '--max-new-tokens', '3', '--max-prompt-length', '12']);
    expect(r.status, r.stderr).toBe(0);
    const [a, b] = lines(r.stdout);
    expect(a).toMatchObject({ prompt: 'short', line: 1 });
    expect(a.prompt_truncated).toBeUndefined();
    expect(b).toMatchObject({ line: 2, prompt_truncated: true });
    // What the model was given: the prompt's end, re-tokenized to at most the 12 tokens kept.
    expect(long.endsWith(b.prompt as string)).toBe(true);
    expect((b.prompt as string).length).toBeLessThan(long.length / 2);
    expect(r.stderr).toMatch(/1 prompts cut to their last 12 tokens/);
    // max_length counts the prompt: 'short' and its new tokens within 8.
    const capped = modelCopy('gpt-neox-tiny', { 'generation_config.json': { max_length: 8, repetition_penalty: 1.2, num_beams: 1, eos_token_id: null, num_return_sequences: 3 } });
    const c = run(['--model', capped, '--data', arr]);
    expect(c.status, c.stderr).toBe(0);
    expect(c.stderr).toMatch(/at most 8 tokens with the prompt \(max_length\)/);
    expect(c.stderr).toMatch(/generation_config\.json sets repetition_penalty=1\.2, num_return_sequences=3, which srk generate does not apply/);
    const [ca, cb] = lines(c.stdout);
    expect(ca.completion_tokens as number).toBeLessThanOrEqual(8 - 1); // 'short' is at least one token
    expect(cb).toMatchObject({ prompt_truncated: true, completion_tokens: 1 }); // cut to 7 tokens: room for one
    // The model's last position ends a completion short of --max-new-tokens: said, not read as that limit.
    const config = JSON.parse(readFileSync(join(model, 'config.json'), 'utf8'));
    const short = modelCopy('gpt-neox-tiny', { 'config.json': { ...config, max_position_embeddings: 24 }, 'generation_config.json': { eos_token_id: null } });
    const p = run(['--model', short, '--data', arr, '--max-new-tokens', '20', '--max-prompt-length', '12']);
    expect(p.status, p.stderr).toBe(0);
    const [, pb] = lines(p.stdout);
    expect(pb).toMatchObject({ finish_reason: 'length', completion_tokens: 12 }); // 12 prompt tokens + 12 new = 24 positions
    expect(p.stderr).toMatch(/2 at the token limit \(1 of them short of it, at the model's last position: max_position_embeddings 24\)/);
  });

  it('--augmented generates for p ⊕ x (the Sr losses\' augmented prompt) and says so; --refine-prompt alone is refused', () => {
    const model = join(fixtures, 'gpt-neox-tiny');
    const data = dataFile('aug.jsonl', [{ prompt: ' What is 2+2?' }]);
    const r = run(['--model', model, '--data', data, '--max-new-tokens', '3', '--augmented', '--refine-prompt', 'Answer at 100/100. Query:']);
    expect(r.status, r.stderr).toBe(0);
    expect(lines(r.stdout)[0]).toMatchObject({ prompt: 'Answer at 100/100. Query: What is 2+2?', augmented: true, line: 1 });
    const paper = run(['--model', model, '--data', data, '--max-new-tokens', '3', '--augmented']);
    expect(lines(paper.stdout)[0].prompt).toMatch(/^Please generate a response with a usefulness rating of 100 out of 100 .* Query: What is 2\+2\?$/);
    const alone = run(['--model', model, '--data', data, '--refine-prompt', 'x']);
    expect(alone.status).toBe(1);
    expect(alone.stderr).toMatch(/--refine-prompt applies with --augmented/);
    // An srk train checkpoint: its run's p where none is given, with a note; one given is the user's.
    const trained = modelCopy('gpt-neox-tiny', { 'trainer_state.json': { step: 1, options: { refinePrompt: 'Be great. Query:' } } });
    const own = run(['--model', trained, '--data', data, '--max-new-tokens', '3', '--augmented']);
    expect(own.status, own.stderr).toBe(0);
    expect(lines(own.stdout)[0].prompt).toBe('Be great. Query: What is 2+2?');
    expect(own.stderr).toMatch(/note: --refine-prompt \(the run's\): as the run that trained .* had them/);
    const given = run(['--model', trained, '--data', data, '--max-new-tokens', '3', '--augmented', '--refine-prompt', 'Answer at 100/100. Query:']);
    expect(lines(given.stdout)[0].prompt).toBe('Answer at 100/100. Query: What is 2+2?');
  });

  it('SIGTERM keeps the rows written in OUT.partial, and the same command takes up from there: the output of a run never stopped', async () => {
    const model = join(fixtures, 'gpt-neox-tiny');
    // Enough rows for the run to be stopped in (one a batch); few, for the suite's time.
    const rows = 12;
    const data = dataFile('many.jsonl', Array.from({ length: rows }, (_, i) => ({ prompt: `prompt number ${i}` })));
    const dir = mkdtempSync(join(tmp, 'sig-'));
    const out = join(dir, 'out.jsonl');
    const flags = ['--model', model, '--data', data, '--max-new-tokens', '40', '--batch-size', '1', '--temperature', '1', '--seed', '3'];
    const child = spawn(process.execPath, [srk, 'generate', ...flags, '--out', out], { cwd: root });
    let err = '';
    child.stderr.on('data', (d) => { err += String(d); });
    // Stopped once two rows are in OUT.partial.
    const poll = setInterval(() => {
      const p = `${out}.partial`;
      if (!child.killed && existsSync(p) && readFileSync(p, 'utf8').split('\n').length > 2) child.kill('SIGTERM');
    }, 20);
    const code = await new Promise<number | null>((resolveExit) => child.on('exit', (c) => resolveExit(c)));
    clearInterval(poll);
    expect(code, err).toBe(143);
    expect(err).toMatch(/stopped by SIGTERM; .*out\.jsonl\.partial keeps the \d+ rows done: run the same command to take up from there/);
    expect(readdirSync(dir).sort()).toEqual(['out.jsonl.partial', 'out.jsonl.partial.json']);
    const kept = readFileSync(`${out}.partial`, 'utf8').trim().split('\n').length;
    expect(kept).toBeLessThan(rows);
    // Other settings are refused, naming them; the data changed under a row done, too.
    const other = run([...flags.slice(0, -1), '4', '--out', out]);
    expect(other.status).toBe(1);
    expect(other.stderr).toMatch(/holds the rows of a run with other settings \(seed: 3 then, 4 now\)/);
    const changed = dataFile('changed.jsonl', [{ prompt: 'another first prompt' }, ...Array.from({ length: rows - 1 }, (_, i) => ({ prompt: `prompt number ${i + 1}` }))]);
    const c = run([...flags.map((f) => (f === data ? changed : f)), '--out', out]);
    expect(c.status).toBe(1);
    expect(c.stderr).toMatch(/its row 1 was made from line 1 of another prompt .*the data changed/);
    // Taken up: the whole file, as a run never stopped (and another --batch-size) writes it.
    const resumed = run([...flags, '--out', out]);
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(new RegExp(`taking up .*out\\.jsonl\\.partial: ${kept} of ${rows} rows done by an earlier run`));
    expect(readdirSync(dir)).toEqual(['out.jsonl']);
    const wholeFlags = [...flags];
    wholeFlags[flags.indexOf('--batch-size') + 1] = '5';
    const whole = run(wholeFlags);
    expect(whole.stderr).toMatch(/temperature 1, .* seed 3/);
    expect(readFileSync(out, 'utf8')).toBe(whole.stdout);
  }, 120_000);

  it('--out is one writer\'s: a live writer\'s lock refuses, a dead one\'s is taken over; a partial without rows starts over; changed model files are named', () => {
    const model = modelCopy('gpt-neox-tiny');
    const data = dataFile('few.jsonl', [{ prompt: 'one' }, { prompt: 'two' }]);
    const dir = mkdtempSync(join(tmp, 'lock-'));
    const out = join(dir, 'o.jsonl');
    const flags = ['--model', model, '--data', data, '--max-new-tokens', '2', '--out', out];
    writeFileSync(`${out}.partial.lock`, `${process.pid}\n`); // (this test's process: alive)
    const busy = run(flags);
    expect(busy.status).toBe(1);
    expect(busy.stderr).toMatch(new RegExp(`another srk generate \\(pid ${process.pid}\\) is writing`));
    writeFileSync(`${out}.partial.lock`, '2147483646\n'); // no such process
    writeFileSync(`${out}.partial`, ''); // killed before its first row: no settings kept it
    writeFileSync(`${out}.partial.json`, '{"seed": 99}');
    const r = run(flags);
    expect(r.status, r.stderr).toBe(0);
    expect(readdirSync(dir)).toEqual(['o.jsonl']);
    // A row, then a bad row: the row (in the batch the bad row cut short) is generated and kept, and the
    // message says to fix the data and run again.
    const bad = dataFile('then-bad.jsonl', [{ prompt: 'one' }, { nothing: 2 }]);
    const badFlags = ['--model', model, '--data', bad, '--max-new-tokens', '2', '--out', join(dir, 'b.jsonl')];
    const stopped = run(badFlags);
    expect(stopped.status).toBe(1);
    expect(stopped.stderr).toMatch(/b\.jsonl\.partial keeps the 1 rows done: fix what the error names and run the same command to take up from there/);
    // config.json rewritten since (the same bytes, a new time): refused, naming it; seed and top-k, which greedy decoding does not use, do not count.
    const cfg = join(model, 'config.json');
    utimesSync(cfg, new Date(), new Date(Date.now() + 5000));
    const changed = run([...badFlags, '--seed', '5', '--top-k', '3']);
    expect(changed.status).toBe(1);
    expect(changed.stderr).toMatch(/holds the rows of a run with other settings \(model files changed since: config\.json\)/);
  });

  it('--out naming the --data file (by another path, or a hard link) is refused, the file left as it was', () => {
    const data = dataFile('same.jsonl', [{ prompt: 'hello' }]);
    const before = readFileSync(data, 'utf8');
    const link = join(tmp, 'same-link.jsonl');
    linkSync(data, link);
    for (const out of [data, join(tmp, '.', 'sub', '..', 'same.jsonl'), link]) {
      const r = run(['--model', join(fixtures, 'gpt-neox-tiny'), '--data', data, '--max-new-tokens', '2', '--out', out]);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/--out .* is the input .*same\.jsonl: the output would overwrite it; give another file name/);
    }
    expect(readFileSync(data, 'utf8')).toBe(before);
  });

  it('a run that fails before writing a row leaves no files', () => {
    const dir = mkdtempSync(join(tmp, 'early-'));
    const data = dataFile('bad-first.jsonl', [{ nothing: 1 }]);
    const r = run(['--model', join(fixtures, 'gpt-neox-tiny'), '--data', data, '--out', join(dir, 'o.jsonl')]);
    expect(r.status).toBe(1);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('refuses bad input by name: a row without a prompt, a malformed generation_config.json, bad flags, no room for a prompt', () => {
    const model = join(fixtures, 'gpt-neox-tiny');
    const bad = dataFile('bad.jsonl', [{ prompt: 'fine' }, { question: 'where is the prompt?' }]);
    const r = run(['--model', model, '--data', bad]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2: .*no prompt`));
    const good = dataFile('good.jsonl', [{ prompt: 'fine' }]);
    const broken = modelCopy('gpt-neox-tiny', { 'generation_config.json': '{"do_sample": tru' });
    const b = run(['--model', broken, '--data', good]);
    expect(b.status).toBe(1);
    expect(b.stderr).toMatch(/generation_config\.json: not valid JSON/);
    for (const [cfg, msg] of [
      [{ do_sample: 'true' }, /"do_sample" must be true or false/],
      [{ do_sample: true, temperature: 0 }, /do_sample with temperature 0/],
      [{ max_new_tokens: 0 }, /"max_new_tokens" must be a positive whole number/],
      [{ max_new_tokens: 5000 }, /max_new_tokens 5000 \(.*generation_config\.json\) leaves no room for a prompt/],
      [{ top_p: 2 }, /"top_p" must be in \(0, 1\]/],
    ] as const) {
      const x = run(['--model', modelCopy('gpt-neox-tiny', { 'generation_config.json': cfg }), '--data', good]);
      expect(x.status, x.stderr).toBe(1);
      expect(x.stderr).toMatch(msg);
    }
    for (const [flags, msg] of [
      [['--temperature', '-1'], /temperature must be 0 \(greedy\) or positive.* \(from the flags or .*generation_config\.json\)$/m],
      [['--top-p', '0'], /top-p must be in/],
      [['--samples', '0'], /--samples must be a positive whole number/],
      [['--max-new-tokens', '2048'], /--max-new-tokens 2048 leaves no room for a prompt in the model's 2048 positions/],
    ] as const) {
      const x = run(['--model', model, '--data', good, ...flags]);
      expect(x.status, x.stderr).toBe(1);
      expect(x.stderr).toMatch(msg);
    }
    // Without a generation_config.json, the flags alone are named.
    const noConfig = modelCopy('gpt-neox-tiny');
    rmSync(join(noConfig, 'generation_config.json'));
    const t = run(['--model', noConfig, '--data', good, '--temperature', '-1']);
    expect(t.status).toBe(1);
    expect(t.stderr).toMatch(/temperature must be 0 \(greedy\) or positive.* \(from the flags\)$/m);
    // A message without its content says it is missing.
    const noContent = dataFile('no-content.jsonl', [{ messages: [{ role: 'user' }] }]);
    const m = run(['--model', model, '--data', noContent]);
    expect(m.status).toBe(1);
    expect(m.stderr).toMatch(/content must be a string, got nothing \(the field is missing\)/);
    const two = run(['--model', model, '--data', good, '--data', bad]);
    expect(two.status).toBe(1);
    expect(two.stderr).toMatch(/reads one --data file/);
  });
});
