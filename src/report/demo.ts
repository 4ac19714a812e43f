// Built-in demo report: synthetic Sr-DPO and DPO runs (deterministic; no GPU, no model) written as
// metrics.jsonl / eval.jsonl run directories and rendered into one report. Useful to look at the
// report layout and as a test fixture.  Usage: node dist/src/report/demo.js OUT_DIR

import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { computeEvalMetrics, formatEvalTable, evalTableFromRows, toEvalRow } from './eval-metrics.js';
import { writeReport, type ReportOptions, type ReportRun, type WrittenReport } from './html.js';
import { MetricsLog, type EvalRow, type MetricsRow } from './metrics-log.js';

/** mulberry32 + Box-Muller, seeded. */
function rng(seed: number): { u: () => number; n: () => number } {
  let a = seed >>> 0;
  const u = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const n = () => Math.sqrt(-2 * Math.log(Math.max(u(), 1e-12))) * Math.cos(2 * Math.PI * u());
  return { u, n };
}

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

export interface DemoOptions {
  steps?: number;
  batch?: number;
  evalEvery?: number;
  evalPairs?: number;
  seed?: number;
}

/**
 * Synthetic runs that look like preference training: per step a batch of pairs whose implicit reward
 * margin drifts upward (faster for Sr-DPO), logged like the trainer does; eval on a fixed "test" set
 * with judge score differences every `evalEvery` steps.
 */
export function demoRuns(o: DemoOptions = {}): ReportRun[] {
  const steps = o.steps ?? 300, batch = o.batch ?? 64, evalEvery = o.evalEvery ?? 50, evalPairs = o.evalPairs ?? 256;
  const beta = 0.1;
  const variants = [
    { name: 'Sr-DPO', speed: 1.35, lambda: 0.5, aug: true, seed: (o.seed ?? 1) * 7919 },
    { name: 'DPO', speed: 1.0, lambda: 0, aug: true, seed: (o.seed ?? 1) * 104729 },
  ];
  // A shared eval set: latent quality gaps and judge score differences correlated with them.
  const er = rng(o.seed ?? 1);
  const gap = Array.from({ length: evalPairs }, () => er.n());
  const scoreChosen = gap.map((g) => Math.min(10, Math.max(1, Math.round(7 + 1.2 * g + er.n()))));
  const scoreRejected = gap.map(() => Math.min(10, Math.max(1, Math.round(6 + er.n()))));

  return variants.map((v) => {
    const r = rng(v.seed);
    const metrics: MetricsRow[] = [];
    const evals: EvalRow[] = [];
    const strengthAt = (step: number) => v.speed * 8 * (1 - Math.exp(-step / 120)); // grows, saturates
    for (let step = 1; step <= steps; step++) {
      const s = strengthAt(step);
      let loss = 0, margin = 0, acc = 0, aug = 0, rc = 0, rj = 0;
      for (let b = 0; b < batch; b++) {
        const h = s * (0.6 + 0.5 * r.n()) + 4 * r.n();
        const delta = beta * (h + 3 * r.n());
        const z = beta * h - v.lambda * delta;
        loss += Math.log1p(Math.exp(-z));
        margin += beta * h; acc += h > 0 ? 1 : 0; aug += delta > 0 ? 1 : 0;
        rc += beta * (0.3 * h - 0.5 * s * 0.1); rj += beta * (-0.7 * h - 0.5 * s * 0.1);
      }
      metrics.push({
        step, pairs_seen: step * batch,
        loss: loss / batch, margin: margin / batch, accuracy: acc / batch, aug_accuracy: v.aug ? aug / batch : null,
        reward_chosen: rc / batch, reward_rejected: rj / batch,
        logp_chosen: -180 - 0.2 * step + r.n(), logp_rejected: -190 - 0.35 * step + r.n(),
        grad_norm: 20 * Math.exp(-step / 200) + 2 + r.u(), lr: 5e-7 * Math.min(1, step / 150),
        tokens_per_s: 4200 + 150 * r.n(), pairs_per_s: 8.1 + 0.3 * r.n(),
      });
      if (step % evalEvery === 0 || step === steps) {
        const st = strengthAt(step) * 0.85;
        const hs = gap.map((g) => st * (0.5 + 0.35 * g) + 3 * r.n());
        const n = evalPairs;
        const zeros = new Float64Array(n);
        const m = computeEvalMetrics({
          beta,
          policyChosen: hs.map((h) => -150 + 0.5 * h), policyRejected: hs.map((h) => -150 - 0.5 * h),
          refChosen: zeros, refRejected: zeros,
          policyChosenAug: hs.map((h) => -170 + 0.5 * h + r.n()), policyRejectedAug: hs.map((h) => -170 - 0.5 * h),
          refChosenAug: zeros, refRejectedAug: zeros,
          scoreChosen, scoreRejected,
        });
        // Reference log-probs are 0 here, so rewards are policy log-probs: shift them back to margins.
        m.reward_chosen = m.margin / 2; m.reward_rejected = -m.margin / 2;
        evals.push(toEvalRow(m, { step, pairs_seen: step * batch, split: 'test' }));
      }
    }
    return {
      name: v.name, metrics, eval: evals,
      config: { loss: v.name === 'DPO' ? 'dpo' : 'sr-dpo', beta, lambda: v.lambda, lr: 5e-7, warmup_steps: 150, batch, optimizer: 'rmsprop', model: 'demo (synthetic)' },
    };
  });
}

export function demoReportOptions(o: DemoOptions = {}): ReportOptions {
  return {
    title: 'srk demo report: Sr-DPO vs DPO (synthetic data)',
    runs: demoRuns(o),
    smoothing: 0.9,
    config: { dataset: 'synthetic', note: 'generated by src/report/demo.ts; no model was trained' },
  };
}

/** Writes the demo runs as run directories (OUT/runs/<name>/metrics.jsonl, eval.jsonl) and the report. */
export function writeDemo(outDir: string, o: DemoOptions = {}): WrittenReport {
  const opts = demoReportOptions(o);
  for (const run of opts.runs) {
    const log = MetricsLog.open(path.join(outDir, 'runs', run.name));
    for (const m of run.metrics) log.step(m as MetricsRow);
    for (const e of run.eval ?? []) log.eval(e);
    log.close();
  }
  return writeReport(outDir, opts);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const out = process.argv[2] ?? 'out-demo-report';
  const files = writeDemo(out);
  const opts = demoReportOptions();
  process.stdout.write(formatEvalTable(evalTableFromRows(opts.runs)) + '\n');
  process.stdout.write(`wrote ${files.html}\n      ${files.csv}\n      ${files.evalCsv}\n`);
}
