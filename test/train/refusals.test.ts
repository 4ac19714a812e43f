// `srk train` refuses what it must not do, with a clear message and a non-zero exit, and touches
// nothing while refusing: a run directory that already holds a checkpoint (without --resume), a
// --resume with different pinned settings, other pairs or another reference, malformed data. With --skip-bad-rows it goes on and
// reports the counts of what it read (shapes, scores, HH per-side splits, skipped lines).
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeRun, fixture, fixtureArgs, readMetrics, root, tempDir, train } from './helpers.js';
import { RUN_LOCK } from '../../src/train/run-lock.js';

const STACK = /\n\s+at /;

describe('srk train refuses to overwrite or mismatch an existing run', () => {
  const tmp = tempDir();

  it('a checkpoint in --out without --resume, and --resume with another --loss, are clear errors that change nothing', async () => {
    const out = join(tmp, 'run');
    const args = [...fixtureArgs('llama-tiny-tied'), '--batch-size', '6', '--lr', '0', '--max-steps', '1', '--out', out];
    // Per-pair numbers an earlier run left (its metrics removed, as the refusal of a new run there says):
    // a new run without --eval-data removes them, so no report draws them as its own.
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'eval-pairs.csv'), 'step,pair,margin,aug_margin,score_chosen,score_rejected\n6,0,0.5,0.4,9,2\n');
    const r0 = await train([...args, '--loss', 'dpo']);
    expect(r0.code, describeRun(r0)).toBe(0);
    expect(existsSync(join(out, 'eval-pairs.csv'))).toBe(false);
    const files = ['metrics.jsonl', 'train_config.json', 'checkpoint/model.safetensors', 'checkpoint/trainer_state.json'];
    const before = files.map((f) => readFileSync(join(out, f)));
    const unchanged = () => files.forEach((f, i) => expect(readFileSync(join(out, f)).equals(before[i]), `${f} unchanged`).toBe(true));

    const r1 = await train([...args, '--loss', 'dpo']);
    expect(r1.code).not.toBe(0);
    expect(r1.stderr).toMatch(/already holds a checkpoint/);
    expect(r1.stderr).toMatch(/--resume/);
    expect(r1.stderr).not.toMatch(STACK);
    unchanged();

    const r2 = await train([...args, '--loss', 'ipo', '--resume']);
    expect(r2.code).not.toBe(0);
    expect(r2.stderr).toMatch(/--resume: --loss is "ipo" but the run in .* used "dpo"/);
    expect(r2.stderr).not.toMatch(STACK);
    unchanged();

    const r3 = await train([...args, '--loss', 'dpo', '--label-smoothing', '0.1', '--resume']);
    expect(r3.code).not.toBe(0);
    expect(r3.stderr).toMatch(/--resume: --label-smoothing is 0.1 but the run in .* used 0/);
    unchanged();
  });

  it('--resume with other pairs in the same data file, another reference, or other --eval-data pairs is a clear error that changes nothing', async () => {
    const out = join(tmp, 'run2');
    const data = join(tmp, 'pairs.jsonl');
    const original = readFileSync(join(fixture('llama-tiny-tied'), 'pairs.jsonl'), 'utf8');
    writeFileSync(data, original);
    const heldOut = join(tmp, 'held-out.jsonl');
    writeFileSync(heldOut, original.split('\n').slice(0, 3).join('\n'));
    const otherHeldOut = join(tmp, 'other-held-out.jsonl');
    writeFileSync(otherHeldOut, original.split('\n').slice(2, 5).join('\n'));
    const args = ['--model', fixture('llama-tiny-tied'), '--data', data, '--no-eos', '--batch-size', '3', '--lr', '1e-4', '--loss', 'dpo', '--out', out];
    const withEval = [...args, '--eval-data', heldOut];
    const r0 = await train([...withEval, '--ref-model', fixture('llama-tiny-tied_ref'), '--max-steps', '1']);
    expect(r0.code, describeRun(r0)).toBe(0);
    const files = ['metrics.jsonl', 'eval.jsonl', 'train_config.json', 'checkpoint/model.safetensors', 'checkpoint/trainer_state.json'];
    const before = files.map((f) => readFileSync(join(out, f)));
    const unchanged = () => files.forEach((f, i) => expect(readFileSync(join(out, f)).equals(before[i]), `${f} unchanged`).toBe(true));
    writeFileSync(data, original.replace(/"chosen": ?"/, '"chosen": "Edited: '));
    const r1 = await train([...args, '--ref-model', fixture('llama-tiny-tied_ref'), '--max-steps', '2', '--resume']);
    expect(r1.code).toBe(1);
    expect(r1.stderr).toMatch(/--resume: the pairs read from .*pairs\.jsonl are not the ones the run in .* trained on/);
    unchanged();
    writeFileSync(data, original);
    const r2 = await train([...args, '--ref-model', fixture('llama-tiny-tied'), '--max-steps', '2', '--resume']);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toMatch(/--resume: the reference .*llama-tiny-tied is not the model the run in .* started with/);
    unchanged();
    // Other held-out pairs would continue eval.jsonl's curves as if they measured the same thing.
    const otherEval = ['--eval-data', otherHeldOut, '--ref-model', fixture('llama-tiny-tied_ref'), '--max-steps', '3', '--resume'];
    const r4 = await train([...args, ...otherEval]);
    expect(r4.code).toBe(1);
    expect(r4.stderr).toMatch(/--resume: the pairs read from --eval-data .*other-held-out\.jsonl are not the ones the run in .* evaluated on .* srk eval --model .*checkpoint/);
    unchanged();
    // The same file by another path (relative to the working directory here): the pairs' hash decides.
    // Without --eval-data the run goes on (its eval series stops there), and still knows its held-out pairs.
    const otherPath = args.map((a) => (a === data ? relative(root, data) : a));
    expect(otherPath).not.toEqual(args);
    const r3 = await train([...otherPath, '--ref-model', fixture('llama-tiny-tied_ref'), '--max-steps', '2', '--resume']);
    expect(r3.code, describeRun(r3)).toBe(0);
    expect(readMetrics(out)).toHaveLength(2);
    const r5 = await train([...args, ...otherEval]);
    expect(r5.code).toBe(1);
    expect(r5.stderr).toMatch(/are not the ones the run in .* evaluated on/);
  }, 120_000);

  it('one run per --out: a live run\'s lock refuses a second; a dead one\'s is taken over and released at the end', async () => {
    const out = join(tmp, 'locked');
    mkdirSync(out, { recursive: true });
    const lock = join(out, RUN_LOCK);
    // This test process stands for a run in progress on this host.
    writeFileSync(lock, `${JSON.stringify({ pid: process.pid, host: hostname(), started: '2026-11-28T00:00:00Z' })}\n`);
    const args = [...fixtureArgs('gpt-neox-tiny'), '--loss', 'dpo', '--batch-size', '3', '--max-steps', '1', '--out', out];
    const r1 = await train(args);
    expect(r1.code).toBe(1);
    expect(r1.stderr).toMatch(new RegExp(`is in use by another srk train \\(pid ${process.pid} on .*\\); choose another --out`));
    expect(r1.stderr).not.toMatch(STACK);
    expect(existsSync(join(out, 'metrics.jsonl'))).toBe(false);
    // A process that no longer exists (a run killed with SIGKILL) leaves a lock that does not hold.
    let dead = 4_000_000;
    while ((() => { try { process.kill(dead, 0); return true; } catch { return false; } })()) dead++;
    writeFileSync(lock, `${JSON.stringify({ pid: dead, host: hostname(), started: '2026-11-28T00:00:00Z' })}\n`);
    const r2 = await train(args);
    expect(r2.code, describeRun(r2)).toBe(0);
    expect(readMetrics(out)).toHaveLength(1);
    expect(existsSync(lock)).toBe(false);
  });

  it('an --out holding the metrics of a run that saved no checkpoint is refused, before any work', async () => {
    const out = join(tmp, 'crashed');
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'metrics.jsonl'), `${JSON.stringify({ step: 1, loss: 0.69 })}\n`);
    const r = await train([...fixtureArgs('gpt-neox-tiny'), '--loss', 'dpo', '--max-steps', '1', '--out', out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/holds metrics\.jsonl of an earlier run that saved no checkpoint; remove it/);
    expect(r.stderr).not.toMatch(STACK);
    expect(readFileSync(join(out, 'metrics.jsonl'), 'utf8')).toMatch(/"loss":0\.69/);
    // --resume (a job requeued after a kill before the first save): it starts over, the earlier lines kept aside.
    const again = join(tmp, 'crashed-resume');
    mkdirSync(again, { recursive: true });
    writeFileSync(join(again, 'metrics.jsonl'), `${JSON.stringify({ step: 1, loss: 0.69 })}\n`);
    const rr = await train([...fixtureArgs('gpt-neox-tiny'), '--loss', 'dpo', '--max-steps', '1', '--out', again, '--resume']);
    expect(rr.code, describeRun(rr)).toBe(0);
    expect(rr.stderr).toMatch(/--resume: the earlier run in .* saved no checkpoint; it starts over, its metrics\.jsonl kept as \*\.unsaved-/);
    const aside = readdirSync(again).filter((f) => f.startsWith('metrics.jsonl.unsaved-'));
    expect(aside).toHaveLength(1);
    expect(readFileSync(join(again, aside[0]), 'utf8')).toMatch(/"loss":0\.69/);
    expect(readMetrics(again).map((m) => m.step)).toEqual([1]);
    // Its evaluations past the start count as such a run's too; one stopped in its step-0 evaluation (a
    // signal while it sampled) left nothing trained, and the same command starts over there.
    writeFileSync(join(out, 'metrics.jsonl'), '');
    const evalRow = (step: number) => `${JSON.stringify({ step, pairs_seen: step * 6, split: 'eval', margin: 0, accuracy: 0, aug_accuracy: 0, n: 6 })}\n`;
    writeFileSync(join(out, 'eval.jsonl'), evalRow(0) + evalRow(2));
    const r2 = await train([...fixtureArgs('gpt-neox-tiny'), '--loss', 'dpo', '--max-steps', '1', '--out', out]);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toMatch(/holds eval\.jsonl of an earlier run that saved no checkpoint/);
    writeFileSync(join(out, 'eval.jsonl'), evalRow(0));
    const r3 = await train([...fixtureArgs('gpt-neox-tiny'), '--loss', 'dpo', '--max-steps', '1', '--out', out]);
    expect(r3.code, describeRun(r3)).toBe(0);
    expect(readFileSync(join(out, 'eval.jsonl'), 'utf8')).toBe(''); // (no --eval-data: the stale row is gone)
  });
});

describe('srk train on malformed data: file:line error, or --skip-bad-rows with counts in the report', () => {
  const tmp = tempDir();
  // Rows of every text shape the loader knows, two with top-level scores, two UltraFeedback-style
  // (scores under metadata), HH dialogues (one whose rejected has another prompt: split per side),
  // a chat row (message lists; the fixture tokenizer has no chat template), and two bad lines.
  const rows = [
    JSON.stringify({ prompt: 'Q: two plus two?\nA:', chosen: ' four', rejected: ' five', score_chosen: 9, score_rejected: 3 }),
    JSON.stringify({ prompt: 'Q: sky colour?\nA:', chosen: ' blue', rejected: ' green', score_chosen: 8, score_rejected: 2 }),
    '{"prompt": "Q: cut off", "chosen": ',
    JSON.stringify({ prompt: 'Name a fruit.', chosen: ' An apple.', rejected: ' A chair.', source_index: 7, metadata: { score_chosen: 9.0, score_rejected: 7.0 } }),
    JSON.stringify({ prompt: 'Name a colour.', chosen: ' Red.', rejected: ' Seven.', source_index: 8, metadata: { score_chosen: 8.5, score_rejected: 1.0 } }),
    JSON.stringify({ chosen: '\n\nHuman: Hi there\n\nAssistant: Hello, how can I help?', rejected: '\n\nHuman: Hi there\n\nAssistant: Go away.' }),
    JSON.stringify({ chosen: '\n\nHuman: Tell me a joke\n\nAssistant: Why did the chicken cross the road?', rejected: '\n\nHuman: Tell me a joke\n\nAssistant: No.' }),
    JSON.stringify({ prompt: 'only a prompt' }),
    JSON.stringify({ chosen: '\n\nHuman: Help me\n\nAssistant: Sure, with what?', rejected: '\n\nHuman: Help me please\n\nAssistant: No.' }),
    JSON.stringify({
      chosen: [{ role: 'user', content: 'Say hi' }, { role: 'assistant', content: 'Hi!' }],
      rejected: [{ role: 'user', content: 'Say hi' }, { role: 'assistant', content: 'Bye.' }],
      score_chosen: 7, score_rejected: 4,
    }),
  ];
  const data = join(tmp, 'mixed.jsonl');
  writeFileSync(data, `${rows.join('\n')}\n`);
  const args = (out: string) => ['--model', fixture('mistral-tiny'), '--data', data, '--loss', 'dpo', '--lr', '0', '--batch-size', '8',
    '--max-steps', '1', '--out', out];

  it('without --skip-bad-rows: exit 1 naming file:3, no stack trace, nothing trained', async () => {
    const out = join(tmp, 'strict');
    const r = await train(args(out));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${data}:3: invalid JSON`);
    expect(r.stderr).not.toMatch(STACK);
    expect(readMetrics(out)).toEqual([]);
  });

  it('--skip-bad-rows: trains on the 8 good rows and reports shapes, scores, per-side splits and the 2 skipped lines', async () => {
    const out = join(tmp, 'lenient');
    const r = await train([...args(out), '--skip-bad-rows']);
    expect(r.code, describeRun(r)).toBe(0);
    const e = r.stderr;
    expect(e).toContain(`${data}: 8 rows (text 4, hh 3, chat 1)`);
    expect(e).toContain('5 with scores');
    expect(e).toMatch(/1 HH rows split per side/);
    expect(e).toMatch(/1 chat rows as plain lines/);
    expect(e).toMatch(/2 bad lines skipped \(.*mixed\.jsonl:3: invalid JSON.*\|.*mixed\.jsonl:8: /);
    expect(e).toMatch(/8 rows tokenized/);
    const m = readMetrics(out);
    expect(m).toHaveLength(1);
    expect(m[0].pairs_seen).toBe(8);
    expect(Number.isFinite(m[0].loss)).toBe(true);
  });
});
