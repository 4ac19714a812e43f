import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  JsonlWriter, MetricsLog, dropPartialLastLine, parseJsonl, readEval, readJsonl, readMetrics, readRunDir,
  toJsonLine, truncateAfterStep, writeFileAtomic, type EvalRow, type MetricsRow,
} from '../../src/report/metrics-log.js';

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'srk-metrics-log-'));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
let counter = 0;
const tmpDir = () => { const d = path.join(tmpRoot, String(counter++)); fs.mkdirSync(d); return d; };

function row(step: number, extra: Partial<MetricsRow> = {}): MetricsRow {
  return {
    step, pairs_seen: step * 8, loss: 0.69 - step * 0.01, margin: 0.01 * step, accuracy: 0.5 + step / 100,
    aug_accuracy: 0.5, reward_chosen: 0.1, reward_rejected: -0.1, logp_chosen: -120.5, logp_rejected: -130.25,
    grad_norm: 3.5, lr: 5e-7, tokens_per_s: 1234.5, pairs_per_s: 6.25, ...extra,
  };
}

describe('metrics JSONL log', () => {
  it('round-trips rows; NaN/Infinity become null', () => {
    const file = path.join(tmpDir(), 'sub', 'metrics.jsonl');
    const w = JsonlWriter.open(file);
    const rows = [row(1), row(2), row(3, { loss: NaN, grad_norm: Infinity })];
    for (const r of rows) w.append(r);
    expect(w.count).toBe(3);
    w.close();
    w.close(); // idempotent
    expect(() => w.append(row(4))).toThrow(/after close/);
    const text = fs.readFileSync(file, 'utf8');
    expect(text.split('\n')).toHaveLength(4); // 3 lines + final newline
    const back = readMetrics(file);
    expect(back.slice(0, 2)).toEqual(rows.slice(0, 2));
    expect(back[2].loss).toBeNull();
    expect(back[2].grad_norm).toBeNull();
    expect(back[2].margin).toBe(0.03);
  });

  it('ignores a truncated last line (run killed mid-write), but not a broken middle line', () => {
    const file = path.join(tmpDir(), 'metrics.jsonl');
    const full = [row(1), row(2), row(3)].map(toJsonLine).join('\n') + '\n';
    const cut = full + toJsonLine(row(4)).slice(0, 37);
    fs.writeFileSync(file, cut);
    const res = readJsonl<MetricsRow>(file);
    expect(res.rows.map((r) => r.step)).toEqual([1, 2, 3]);
    expect(res.truncatedTail).toBe(true);
    // Every prefix of the 4th line reads as exactly 3 rows.
    const line4 = toJsonLine(row(4));
    for (let k = 0; k < line4.length; k++) {
      expect(parseJsonl(full + line4.slice(0, k)).rows).toHaveLength(3);
    }
    expect(parseJsonl(full + line4).rows).toHaveLength(4); // complete but without the final newline
    const broken = full.replace('"step":2', '"step":2,,');
    expect(() => parseJsonl(broken)).toThrow(/:2: malformed/);
    expect(parseJsonl(broken, { lenient: true })).toMatchObject({ skipped: 1, truncatedTail: false });
    expect(readMetrics(path.join(tmpDir(), 'missing.jsonl'), { missingOk: true })).toEqual([]);
  });

  it('re-opening after a crash cuts the partial line before appending', () => {
    const file = path.join(tmpDir(), 'metrics.jsonl');
    fs.writeFileSync(file, toJsonLine(row(1)) + '\n' + toJsonLine(row(2)).slice(0, 20));
    const w = JsonlWriter.open(file, { fsync: 'always' });
    w.append(row(2));
    w.close();
    expect(readJsonl(file)).toMatchObject({ truncatedTail: false });
    expect(readMetrics(file).map((r) => r.step)).toEqual([1, 2]);
    expect(dropPartialLastLine(file)).toBe(0);
  });

  it('truncateAfterStep keeps steps <= step, drops later ones and a partial tail; resume appends', () => {
    const dir = tmpDir();
    let log = MetricsLog.open(dir);
    for (let s = 1; s <= 10; s++) log.step(row(s));
    const ev = (step: number): EvalRow => ({ step, pairs_seen: step * 8, split: 'test', margin: 0.1, accuracy: 0.6, aug_accuracy: 0.55, n: 100 });
    log.eval(ev(5)); log.eval(ev(10));
    log.close();
    fs.appendFileSync(path.join(dir, 'metrics.jsonl'), '{"step":11,"pairs_se'); // killed mid-write

    expect(truncateAfterStep(path.join(dir, 'metrics.jsonl'), 7)).toEqual({ kept: 7, dropped: 4 });
    expect(readMetrics(path.join(dir, 'metrics.jsonl')).map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6, 7]);

    // Resume at step 6 through MetricsLog: both files cut, then appended to.
    log = MetricsLog.open(dir, { resumeStep: 6 });
    log.step(row(7, { loss: 0.123 }));
    log.eval(ev(7));
    log.close();
    const { metrics, eval: evals } = readRunDir(dir);
    expect(metrics.map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(metrics[6].loss).toBe(0.123);
    expect(evals.map((e) => e.step)).toEqual([5, 7]);
    // No leftover temp files from the atomic rewrite.
    expect(fs.readdirSync(dir).sort()).toEqual(['eval.jsonl', 'metrics.jsonl']);

    // A fresh (non-resume) open starts empty files.
    MetricsLog.open(dir).close();
    expect(readMetrics(path.join(dir, 'metrics.jsonl'))).toEqual([]);
    expect(readEval(path.join(dir, 'eval.jsonl'))).toEqual([]);
    expect(truncateAfterStep(path.join(dir, 'nope.jsonl'), 3)).toEqual({ kept: 0, dropped: 0 });
  });

  it('writeFileAtomic replaces the file', () => {
    const file = path.join(tmpDir(), 'a', 'b.txt');
    writeFileAtomic(file, 'one');
    writeFileAtomic(file, 'two');
    expect(fs.readFileSync(file, 'utf8')).toBe('two');
    expect(fs.readdirSync(path.dirname(file))).toEqual(['b.txt']);
  });
});
