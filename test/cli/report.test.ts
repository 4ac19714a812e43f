// `srk report RUN...`: several run directories in one report, their curves overlaid, their settings (each
// run's train_config.json) side by side with the differing keys marked, every row in report.csv, the eval
// table on stdout; bad run directories are errors naming them.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MetricsLog, RUN_CONFIG_FILE, type MetricsRow } from '../../src/report/metrics-log.js';
import { runNames } from '../../src/cli/report.js';

const root = resolve(import.meta.dirname, '../..');
const srk = resolve(root, 'bin/srk.js');
const run = (args: string[]) => spawnSync(process.execPath, [srk, ...args], { cwd: root, encoding: 'utf8', timeout: 60_000 });

/** A run directory as srk train leaves it: `steps` metrics lines, an evaluation at the last, its settings. */
function fakeRun(dir: string, steps: number, config: Record<string, unknown>, accuracy: number): void {
  const log = MetricsLog.open(dir, { fresh: true });
  for (let s = 1; s <= steps; s++) {
    log.step({ step: s, pairs_seen: 4 * s, loss: 0.7 - 0.01 * s, margin: 0.02 * s, accuracy, aug_accuracy: null, reward_chosen: 0, reward_rejected: 0,
      logp_chosen: -10, logp_rejected: -11, grad_norm: 1, lr: 1e-4, tokens_per_s: 100, pairs_per_s: 1 } as MetricsRow);
  }
  log.eval({ step: steps, pairs_seen: 4 * steps, split: 'eval', n: 16, margin: 0.1, accuracy, aug_accuracy: 0.5, reward_chosen: 0, reward_rejected: 0 } as never);
  log.close();
  writeFileSync(join(dir, RUN_CONFIG_FILE), JSON.stringify(config));
}

describe('srk report', () => {
  it('two runs: curves, settings side by side, every row in the CSV, the eval table', () => {
    const base = mkdtempSync(join(tmpdir(), 'srk-report-'));
    fakeRun(join(base, 'a'), 5, { loss: 'sr-dpo', beta: 0.1, lambda: 0.5, name: 'Sr-DPO' }, 0.75);
    fakeRun(join(base, 'b'), 3, { loss: 'dpo', beta: 0.1, lambda: 0.3, name: 'DPO' }, 0.625);
    const out = join(base, 'out');
    const r = run(['report', join(base, 'a'), join(base, 'b'), '--out', out, '--smoothing', '0.5']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^Sr-DPO +eval .*0\.7500/m);
    expect(r.stdout).toMatch(/^DPO +eval .*0\.6250/m);
    expect(r.stdout).toContain(`report: ${join(out, 'report.html')}`);
    expect(r.stderr).toMatch(/Sr-DPO: 5 steps, 1 evaluations/);
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    expect(html).toContain('<title>srk report: Sr-DPO, DPO</title>');
    const settings = html.match(/<table class="config runs">[\s\S]*?<\/table>/)?.[0] ?? '';
    expect(settings).toMatch(/<th>Sr-DPO<\/th><th>DPO<\/th>/);
    expect(settings).toMatch(/<tr class="differs"><th scope="row">loss<\/th><td class="text">sr-dpo<\/td><td class="text">dpo<\/td><\/tr>/);
    expect(settings).toMatch(/<tr><th scope="row">beta<\/th>/);
    // DPO does not read lambda: said in its cell, and no difference from Sr-DPO's.
    expect(settings).toContain('<tr><th scope="row">lambda</th><td class="text">0.5</td><td class="text unread">0.3 (dpo does not read it)</td></tr>');
    expect(readFileSync(join(out, 'report.csv'), 'utf8').trimEnd().split('\n').length).toBeGreaterThanOrEqual(1 + 5 + 3);
  }, 60_000);

  it('--name, and directories that are not runs', () => {
    const base = mkdtempSync(join(tmpdir(), 'srk-report-'));
    fakeRun(join(base, 'x'), 2, { loss: 'dpo' }, 0.5);
    mkdirSync(join(base, 'empty'));
    const named = run(['report', join(base, 'x'), '--name', 'mine', '--out', join(base, 'o')]);
    expect(named.status, named.stderr).toBe(0);
    expect(readFileSync(join(base, 'o', 'report.html'), 'utf8')).toContain('<title>srk report: mine</title>');
    const empty = run(['report', join(base, 'x'), join(base, 'empty'), '--out', join(base, 'o2')]);
    expect(empty.status).toBe(1);
    expect(empty.stderr).toContain(`${join(base, 'empty')}: no metrics.jsonl`);
    mkdirSync(join(base, 'other'));
    writeFileSync(join(base, 'other', 'metrics.jsonl'), '{"hello": 1}\n');
    const other = run(['report', join(base, 'other'), '--out', join(base, 'o4')]);
    expect(other.status).toBe(1);
    expect(other.stderr).toContain(`${join(base, 'other', 'metrics.jsonl')}: its record 1 has no "step"`);
    const missing = run(['report', join(base, 'nope')]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain(`${join(base, 'nope')}: not a directory`);
    const tooMany = run(['report', join(base, 'x'), '--name', 'a', 'b', '--out', join(base, 'o3')]);
    expect(tooMany.status).toBe(1);
    expect(tooMany.stderr).toContain(`--name: 2 names (a, b) for 1 run (${join(base, 'x')}): --name takes every word after it up to the next flag`);
    // --name before the runs takes them as names: no runs left, said with the order that passes.
    const first = run(['report', '--name', 'a', 'b', join(base, 'x'), '--out', join(base, 'o6')]);
    expect(first.status).toBe(2);
    expect(first.stderr).toContain('--name takes every word after it up to the next flag: give the runs before it: srk report RUN1 RUN2 --name A B');
    const twice = run(['report', join(base, 'x'), `${join(base, 'x')}/.`, '--out', join(base, 'o5')]);
    expect(twice.status).toBe(1);
    expect(twice.stderr).toMatch(/x\/\.: given twice \(one run, drawn over itself\)/);
  }, 60_000);

  it('runNames: --name, then the recorded name, then the directory; repeats told apart by directory', () => {
    expect(runNames(['r/a', 'r/b', 'r/c'], ['first'], [undefined, 'DPO', undefined])).toEqual(['first', 'DPO', 'c']);
    expect(runNames(['x/dpo', 'y/dpo'])).toEqual(['dpo (x/dpo)', 'dpo (y/dpo)']);
    expect(runNames(['x/a', 'y/b'], [], ['DPO', 'DPO'])).toEqual(['DPO (x/a)', 'DPO (y/b)']);
  });
});
