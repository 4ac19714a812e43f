// `srk train` interrupted and resumed: a run killed with SIGKILL (twice) and resumed from its
// checkpoints must reproduce the uninterrupted run exactly (metrics lines and final weights), and
// SIGINT (and SIGTERM) must finish the step, save a checkpoint and exit 130 (143): stopped, not finished.
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { describeRun, fixture, fixtureArgs, readMetrics, startTrain, tempDir, train, waitFor, type Metrics } from './helpers.js';
import { findCheckpoint, readTrainerState } from '../../src/train/checkpoint.js';

/** Fields that depend on wall-clock time; every other field must be reproduced exactly. */
const TIMING = new Set(['tokens_per_s', 'pairs_per_s']);
const withoutTiming = (m: Metrics) => Object.fromEntries(Object.entries(m).filter(([k]) => !TIMING.has(k)));

// 6 pairs in batches of 2: 3 steps per epoch, so 8 steps cross two epoch boundaries (reshuffles).
// AdamW with warm-up, so the optimizer state and the step counter both matter on resume.
const N = 8;
const settings = [...fixtureArgs('gpt-neox-tiny'), '--loss', 'dpo', '--optimizer', 'adamw', '--lr', '1e-3', '--warmup-steps', '3',
  '--batch-size', '2', '--max-steps', String(N), '--save-every', '1'];

describe('srk train: SIGKILL then --resume reproduces the uninterrupted run exactly', () => {
  const tmp = tempDir();

  it(`metrics.jsonl (all fields but throughput) and the final weights and optimizer state are identical (${N} steps)`, async () => {
    const a = join(tmp, 'A'); const b = join(tmp, 'B');
    const ra = await train([...settings, '--out', a]);
    expect(ra.code, describeRun(ra)).toBe(0);
    const rowsA = readMetrics(a);
    expect(rowsA.map((m) => m.step)).toEqual(Array.from({ length: N }, (_, i) => i + 1));

    // Kill B at k >= 3 lines, resume and kill again at k >= 6, then resume to the end.
    const kills: number[] = [];
    for (const [i, k] of [3, 6].entries()) {
      const run = startTrain([...settings, '--out', b, ...(i > 0 ? ['--resume'] : [])]);
      await waitFor(() => readMetrics(b).length >= k || run.child.exitCode !== null, 60_000, `${k} metrics lines in ${b}`, 10);
      run.child.kill('SIGKILL');
      const r = await run.done;
      expect(r.signal, `the run ended before it was killed:\n${describeRun(r)}`).toBe('SIGKILL');
      kills.push(readMetrics(b).length);
    }
    const rb = await train([...settings, '--out', b, '--resume']);
    expect(rb.code, describeRun(rb)).toBe(0);
    expect(rb.stderr).toMatch(/resuming from .*checkpoint.* at step \d+/);

    const rowsB = readMetrics(b);
    expect(rowsB.map((m) => m.step), `killed after ${kills.join(' and ')} lines`).toEqual(rowsA.map((m) => m.step));
    for (let i = 0; i < N; i++) expect(withoutTiming(rowsB[i]), `step ${i + 1}`).toEqual(withoutTiming(rowsA[i]));
    for (const f of ['model.safetensors', 'optimizer.safetensors']) {
      expect(readFileSync(join(b, 'checkpoint', f)).equals(readFileSync(join(a, 'checkpoint', f))), f).toBe(true);
    }
    const stA = JSON.parse(readFileSync(join(a, 'checkpoint', 'trainer_state.json'), 'utf8'));
    const stB = JSON.parse(readFileSync(join(b, 'checkpoint', 'trainer_state.json'), 'utf8'));
    for (const k of ['step', 'pairsSeen', 'epoch', 'position', 'options']) expect(stB[k], k).toEqual(stA[k]);
    expect(stB.step).toBe(N);
    // Temp directories of the saves the kills interrupted are cleaned up.
    expect(readdirSync(b).filter((e) => e.startsWith('.checkpoint'))).toEqual([]);
  }, 240_000);
});

describe('srk train: SIGINT or SIGTERM finishes the step, saves a checkpoint, exits 130 / 143; --resume completes', () => {
  const tmp = tempDir();

  it('Ctrl-C after the first step, then --resume (from a checkpoint left mid-swap) to two more steps', async () => {
    const out = join(tmp, 'int');
    const args = [...fixtureArgs('gpt-neox-tiny'), '--loss', 'ipo', '--optimizer', 'rmsprop', '--lr', '1e-4', '--batch-size', '3', '--out', out];
    const run = startTrain([...args, '--max-steps', '100000']);
    await waitFor(() => readMetrics(out).length >= 1 || run.child.exitCode !== null, 60_000, `the first metrics line in ${out}`, 10);
    run.child.kill('SIGINT');
    const r = await run.done;
    // 130 as a shell reports Ctrl-C: `srk train && srk eval` stops here, the run is not finished.
    expect(r.code, describeRun(r)).toBe(130);
    const m = /interrupted at step (\d+): checkpoint saved in (.+?); continue with --resume/.exec(r.stderr);
    expect(m, r.stderr).not.toBeNull();
    const state = JSON.parse(readFileSync(join(out, 'checkpoint', 'trainer_state.json'), 'utf8'));
    expect(state.step).toBeGreaterThanOrEqual(1);
    expect(state.step).toBe(Number(m![1]));
    expect(state.pairsSeen).toBe(3 * state.step);
    expect(readMetrics(out).map((x) => x.step)).toEqual(Array.from({ length: state.step }, (_, i) => i + 1));

    // As if a crash had hit the checkpoint swap: only OUT/.checkpoint-old is left. It must be found,
    // and kept until the new checkpoint is in place.
    renameSync(join(out, 'checkpoint'), join(out, '.checkpoint-old'));
    // As if a SIGKILL had hit writes of metrics.jsonl and of the reference cache: their temp files go.
    const dead = spawnSync('true').pid!;
    const temps = [join(out, `metrics.jsonl.tmp-${dead}-k1`), join(out, 'cache', `ref.json.tmp-${dead}-k2`)];
    const then = new Date(Date.now() - 11 * 60_000); // (ten minutes: a writer elsewhere would have renamed it)
    for (const f of temps) { writeFileSync(f, 'half'); utimesSync(f, then, then); }
    // --max-steps is not pinned: the resumed run may stop earlier than the original plan.
    const total = state.step + 2;
    const r2 = await train([...args, '--max-steps', String(total), '--resume']);
    expect(r2.code, describeRun(r2)).toBe(0);
    expect(temps.filter((f) => existsSync(f))).toEqual([]);
    expect(r2.stderr).toContain(`removed 2 temp file(s) a killed srk left: ${temps.join(', ')}`);
    expect(r2.stderr).toMatch(new RegExp(`resuming from .* at step ${state.step}`));
    expect(r2.stderr).toMatch(new RegExp(`done: ${total} steps`));
    expect(readMetrics(out).map((x) => x.step)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    expect(JSON.parse(readFileSync(join(out, 'checkpoint', 'trainer_state.json'), 'utf8')).step).toBe(total);
    expect(existsSync(join(out, '.checkpoint-old'))).toBe(false);
    // The same crash after the last save: the finished run resumed finishes the swap, its model in OUT/checkpoint.
    renameSync(join(out, 'checkpoint'), join(out, '.checkpoint-old'));
    const r3 = await train([...args, '--max-steps', String(total), '--resume']);
    expect(r3.code, describeRun(r3)).toBe(0);
    expect(r3.stderr).toMatch(new RegExp(`done: ${total} steps; model in ${join(out, 'checkpoint').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')};`));
    expect(existsSync(join(out, '.checkpoint-old'))).toBe(false);
  }, 180_000);

  it('SIGTERM (a scheduler ending the job) does the same: the step finishes, a checkpoint is saved (before an evaluation due), exit 143', async () => {
    const out = join(tmp, 'term');
    const args = [...fixtureArgs('gpt-neox-tiny'), '--loss', 'dpo', '--batch-size', '3', '--out', out,
      '--eval-data', join(fixture('gpt-neox-tiny'), 'pairs.jsonl'), '--eval-every', '2'];
    const run = startTrain([...args, '--max-steps', '100000']);
    // Step 1 has no evaluation after it: the signal comes during step 2, which is due one.
    await waitFor(() => readMetrics(out).length >= 1 || run.child.exitCode !== null, 60_000, `the first metrics line in ${out}`, 10);
    run.child.kill('SIGTERM');
    const r = await run.done;
    expect(r.code, describeRun(r)).toBe(143);
    expect(r.stderr).toMatch(/SIGTERM: finishing this step, then saving a checkpoint/);
    const m = /interrupted at step (\d+): checkpoint saved/.exec(r.stderr);
    expect(m, r.stderr).not.toBeNull();
    const saved = Number(m![1]);
    expect(JSON.parse(readFileSync(join(out, 'checkpoint', 'trainer_state.json'), 'utf8')).step).toBe(saved);
    // A scheduler's grace period is for the save: no evaluation ran after the signal.
    expect(r.stderr.split(/SIGTERM: finishing this step/)[1]).not.toMatch(/eval at step/);
    // The resumed run evaluates what the cadence owed at its checkpoint first: every due step once.
    const total = saved + 2;
    const r2 = await train([...args, '--max-steps', String(total), '--resume']);
    expect(r2.code, describeRun(r2)).toBe(0);
    const due = [...new Set([...Array.from({ length: total + 1 }, (_, s) => s).filter((s) => s % 2 === 0), total])];
    expect(readFileSync(join(out, 'eval.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step)).toEqual(due);
  }, 120_000);
});

describe('srk train: signals sent twice, and during an evaluation', () => {
  const tmp = tempDir();
  const lines = readFileSync(join(fixture('gpt-neox-tiny'), 'pairs.jsonl'), 'utf8').trim().split('\n');

  // Steps of 48 pairs one at a time: long enough for a second signal to come inside one (two signals sent
  // back to back may reach the process as one: the kernel keeps one pending signal of a kind).
  const slowRun = (out: string) => {
    const data = join(tmp, 'sixty.jsonl');
    writeFileSync(data, Array.from({ length: 60 }, (_, i) => lines[i % lines.length]).join('\n') + '\n');
    return startTrain(['--model', fixture('gpt-neox-tiny'), '--ref-model', fixture('gpt-neox-tiny_ref'), '--data', data, '--no-eos', '--loss', 'dpo',
      '--batch-size', '48', '--micro-batch-size', '1', '--save-every', '1', '--max-steps', '100000', '--out', out]);
  };

  /** A run with step 1 saved, the first signal taken during step 2, then the same signal again; its result. */
  const signalTwice = async (out: string, sig: 'SIGTERM' | 'SIGINT') => {
    const run = slowRun(out);
    // Step 1 saved (--save-every 1): the signals come during step 2.
    await waitFor(() => existsSync(join(out, 'checkpoint', 'trainer_state.json')) || run.child.exitCode !== null, 100_000, `step 1's checkpoint in ${out}`, 10);
    run.child.kill(sig);
    const taken = sig === 'SIGTERM' ? /SIGTERM: finishing this step/ : /interrupt: finishing this step/;
    await waitFor(() => taken.test(run.output()) || run.child.exitCode !== null, 30_000, `the first ${sig} taken`, 5);
    run.child.kill(sig);
    return run.done;
  };

  it('SIGTERM again at once (timeout(1): the process, then its group) is the same request: the step finishes and is saved', async () => {
    const out = join(tmp, 'twice');
    const r = await signalTwice(out, 'SIGTERM');
    expect(r.code, describeRun(r)).toBe(143);
    expect(r.stderr).not.toMatch(/quitting without saving/);
    const m = /interrupted at step (\d+): checkpoint saved in .*; continue with --resume; report .*report\.html/.exec(r.stderr);
    expect(m, r.stderr).not.toBeNull();
    expect(Number(m![1])).toBe(2);
    expect(JSON.parse(readFileSync(join(out, 'checkpoint', 'trainer_state.json'), 'utf8')).step).toBe(2);
    expect(existsSync(join(out, 'report.html'))).toBe(true);
  }, 200_000);

  it('Ctrl-C again during the step quits without saving, and says so, naming the checkpoint there is', async () => {
    const out = join(tmp, 'again');
    const q = await signalTwice(out, 'SIGINT');
    expect(q.code, describeRun(q)).toBe(130);
    expect(q.stderr).toMatch(new RegExp(`interrupt again: quitting without saving; the last checkpoint is ${join(out, 'checkpoint').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    expect(JSON.parse(readFileSync(join(out, 'checkpoint', 'trainer_state.json'), 'utf8')).step).toBe(1);
  }, 200_000);

  it('SIGTERM during an evaluation stops it and saves; the resumed run evaluates that step', async () => {
    const out = join(tmp, 'in-eval');
    // Enough pairs, one a micro-batch, for the evaluation to be stopped in; few, for the suite's time.
    const evalPairs = 36;
    const evalData = join(tmp, `eval-${evalPairs}.jsonl`);
    writeFileSync(evalData, Array.from({ length: evalPairs }, (_, i) => lines[i % lines.length]).join('\n') + '\n');
    const args = [...fixtureArgs('gpt-neox-tiny'), '--loss', 'dpo', '--batch-size', '3', '--out', out, '--eval-data', evalData, '--eval-every', '1',
      '--micro-batch-size', '1'];
    const run = startTrain([...args, '--max-steps', '100000']);
    // The evaluation after step 1 (one pair a micro-batch: long enough to be stopped in).
    await waitFor(() => new RegExp(`eval: \\d+/${evalPairs}`).test(run.output().split(/train dpo: 1\//)[1] ?? '') || run.child.exitCode !== null, 60_000, 'the evaluation after step 1', 10);
    run.child.kill('SIGTERM');
    const r = await run.done;
    expect(r.code, describeRun(r)).toBe(143);
    expect(r.stderr).toMatch(/SIGTERM: stopping the evaluation under way \(a resumed run does it\), then saving a checkpoint/);
    expect(r.stderr).toMatch(/the evaluation at step 1 stopped; a resumed run does it/);
    expect(r.stderr).toMatch(/interrupted at step 1: checkpoint saved/);
    const evals = () => readFileSync(join(out, 'eval.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step);
    expect(evals()).toEqual([0]);
    // Before its next step (the evaluation the cadence owed at the checkpoint).
    const r2 = await train([...args, '--max-steps', '2', '--resume']);
    expect(r2.code, describeRun(r2)).toBe(0);
    expect(r2.stderr).toMatch(/eval at step 1: [\s\S]*train dpo: 2\/2/);
    expect(evals()).toEqual([0, 1, 2]);
  }, 200_000);
});

describe('srk train: a signal before the first step stops at once, with nothing to save', () => {
  const tmp = tempDir();

  it('SIGINT while the data and the reference are being prepared: exit 130 at once, no checkpoint', async () => {
    const out = join(tmp, 'early');
    const run = startTrain([...fixtureArgs('gpt-neox-tiny'), '--loss', 'sr-dpo', '--batch-size', '3', '--out', out, '--max-steps', '5']);
    // The data is read and tokenized before the reference pass and the first step.
    await waitFor(() => /rows tokenized/.test(run.output()) || run.child.exitCode !== null, 60_000, 'the data summary', 10);
    run.child.kill('SIGINT');
    const r = await run.done;
    expect(r.code, describeRun(r)).toBe(130);
    expect(r.stderr).toMatch(/interrupt before this run's first step: nothing trained to save(; the reference log-probs scored so far are in \S+\.partial\.json, and the same command takes them up)?; stopping/);
    expect(existsSync(join(out, 'checkpoint'))).toBe(false);
    expect(readMetrics(out)).toEqual([]);
    // process.exit there skips the run's own release: the exit hook removes its lock.
    expect(existsSync(join(out, '.srk-train.lock'))).toBe(false);
  }, 120_000);
});

describe('srk train: a reference pass stopped part way is taken up where it was', () => {
  const tmp = tempDir();

  it('SIGTERM during the reference pass saves the pairs scored so far; the same command scores the rest', async () => {
    const lines = readFileSync(join(fixture('gpt-neox-tiny'), 'pairs.jsonl'), 'utf8').trim().split('\n');
    const pairs = 48; // enough for the pass to be stopped in (one a micro-batch); few, for the suite's time
    const data = join(tmp, 'many.jsonl');
    writeFileSync(data, Array.from({ length: pairs }, (_, i) => lines[i % lines.length]).join('\n') + '\n');
    // One pair a micro-batch: a pass long enough to be stopped in. One step of every pair, so that the
    // pass scores them all (a run of fewer scores only its own: reference.ts `needed`).
    const args = (out: string) => ['--model', fixture('gpt-neox-tiny'), '--ref-model', fixture('gpt-neox-tiny_ref'), '--data', data, '--no-eos',
      '--loss', 'sr-dpo', '--batch-size', String(pairs), '--micro-batch-size', '1', '--max-steps', '1', '--out', join(tmp, out)];
    const run = startTrain(args('cut'));
    await waitFor(() => new RegExp(`reference train: \\d+/${pairs}`).test(run.output()) || run.child.exitCode !== null, 100_000, 'the reference pass', 10);
    run.child.kill('SIGTERM');
    const r = await run.done;
    expect(r.code, describeRun(r)).toBe(143);
    const partial = /the reference log-probs scored so far are in (\S+\.partial\.json), and the same command takes them up/.exec(r.stderr);
    expect(partial, r.stderr).not.toBeNull();
    // Cut in the plain pass (or, on a slow signal, in the augmented one).
    const saved = JSON.parse(readFileSync(partial![1], 'utf8'));
    const sum = (x: { done: number[] } | null) => (x ? x.done.reduce((a, b) => a + b, 0) : 0);
    const [scored, scoredAug] = [sum(saved.plain), sum(saved.aug)];
    expect(scored).toBeGreaterThan(0);
    expect(scored + scoredAug).toBeLessThan(2 * pairs);

    const again = await train(args('cut'));
    expect(again.code, describeRun(again)).toBe(0);
    expect(again.stderr).toContain(`reference log-probs (train): taking up ${partial![1]}: ${scored} of ${pairs} pairs, ${scoredAug} augmented scored before`);
    expect(existsSync(partial![1])).toBe(false);
    // The numbers taken up are those of a pass never stopped: reference-partial.test.ts.
  }, 200_000);
});

describe('checkpoints on disk', () => {
  const tmp = tempDir();

  it('a checkpoint whose trainer_state.json is cut short gives way to the previous one, or is named', () => {
    const out = join(tmp, 'cut');
    for (const [d, text] of [['checkpoint', '{"step": 4, "opt'], ['.checkpoint-old', JSON.stringify({ step: 2, options: {} })]]) {
      mkdirSync(join(out, d), { recursive: true });
      writeFileSync(join(out, d, 'model.safetensors'), '');
      writeFileSync(join(out, d, 'trainer_state.json'), text);
    }
    expect(findCheckpoint(out)).toBe(join(out, '.checkpoint-old'));
    expect(readTrainerState(findCheckpoint(out)!).step).toBe(2);
    rmSync(join(out, '.checkpoint-old'), { recursive: true });
    expect(findCheckpoint(out)).toBe(join(out, 'checkpoint'));
    expect(() => readTrainerState(join(out, 'checkpoint'))).toThrow(/checkpoint[/\\]trainer_state\.json: .*an incomplete checkpoint/);
  });

  it('a checkpoint without its weights gives way to a whole previous one; with neither whole there is none', () => {
    const out = join(tmp, 'weightless');
    for (const d of ['checkpoint', '.checkpoint-old']) {
      mkdirSync(join(out, d), { recursive: true });
      writeFileSync(join(out, d, 'trainer_state.json'), JSON.stringify({ step: d === 'checkpoint' ? 4 : 2, options: {} }));
    }
    writeFileSync(join(out, '.checkpoint-old', 'model.safetensors'), '');
    expect(findCheckpoint(out)).toBe(join(out, '.checkpoint-old'));
    rmSync(join(out, '.checkpoint-old'), { recursive: true });
    expect(findCheckpoint(out)).toBeUndefined();
  });
});
