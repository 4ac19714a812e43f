// The built-in demo (`srk train` with no --model and --data): everything from scratch, offline.
//   1. `srk init`: a small random GPT-NeoX with the project's byte-level tokenizer
//   2. a synthetic preference task from a seed (sort, reverse, upper-case, add, count), where the
//      rejected answer has 1-4 errors, so the quality gap varies from pair to pair, and judge
//      scores (10 vs 10 - 2k) let the eval report correlations
//   3. SFT warm-up on prompt + chosen
//   4. Sr-DPO and DPO from the SFT model, side by side, evaluated on held-out pairs
//   5. one report with both runs (OUT/report.html)
// The demo's refine prompt is a short stand-in for the paper's: with a byte-level tokenizer the
// paper's text is 239 tokens (a byte each), almost four times the demo's 64-token sequences, and a model trained from scratch
// attaches no meaning to its words anyway. Real runs use the paper's prompt by default.
export const DEMO_REFINE_PROMPT = 'Usefulness 100/100. Query:';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Gpu } from '../engine/gpu.js';
import { initModel } from '../init/init-model.js';
import { writeSyntheticSplit } from '../init/synthetic-task.js';
import { readRunConfig } from '../report/metrics-log.js';
import { runsFromDirs, writeReport } from '../report/html.js';
import { formatEvalTable, evalTableFromRows } from '../report/eval-metrics.js';
import { TRAIN_DEFAULTS, type TrainOptions } from './options.js';
import type { Precision } from '../engine/precision.js';
import { train, TrainingError, type TrainResult } from './trainer.js';
import { Progress } from './progress.js';

export interface DemoOptions {
  out: string; seed: number; adapter?: string; plainProgress?: boolean;
  /** --precision of `srk train` (default f32). */
  precision?: Precision;
  /** Scale of the demo (steps); 1 = the default, smaller for tests. */
  scale?: number;
}

/** The file that marks a directory as the demo's own (written at the start of every demo run). */
const DEMO_MARK = 'demo.json';
/** The stages' run directories, which a new demo run replaces. */
const DEMO_STAGES = ['sft', 'sr-dpo', 'dpo'];

/**
 * Whether the demo may write into `out`: 'new' (absent or empty), 'earlier' (an earlier demo's: its
 * mark, or, from before the mark, an SFT stage trained from `out`/init with the demo's refine prompt;
 * the demo is deterministic, so it starts over there), or 'foreign' (anything else: left alone).
 */
export function demoDirState(out: string): 'new' | 'earlier' | 'foreign' {
  if (!existsSync(out) || readdirSync(out).length === 0) return 'new';
  if (existsSync(path.join(out, DEMO_MARK))) return 'earlier';
  const cfg = readRunConfig(path.join(out, 'sft'));
  if (cfg?.refinePrompt === DEMO_REFINE_PROMPT && typeof cfg.model === 'string' && path.resolve(cfg.model) === path.resolve(out, 'init')) return 'earlier';
  return 'foreign';
}

export async function runDemo(o: DemoOptions): Promise<{ report: string; interrupted?: TrainResult['interrupted'] }> {
  const state = demoDirState(o.out);
  if (state === 'foreign') {
    throw new TrainingError(`${o.out} holds files the demo did not write; choose another --out ` +
      '(the demo writes init/, data/, sft/, sr-dpo/, dpo/ and a report there)');
  }
  const log = new Progress(o.plainProgress);
  const scale = o.scale ?? 1;
  const t0 = performance.now();
  const gpu = await Gpu.create({ adapter: o.adapter });
  try {
    log.log(`demo: a small GPT-NeoX trained from scratch on a synthetic preference task, in ${o.out}`);
    if (state === 'earlier') {
      log.log(`demo: ${o.out} holds an earlier demo; starting over`);
      for (const d of DEMO_STAGES) rmSync(path.join(o.out, d), { recursive: true, force: true });
    }
    mkdirSync(o.out, { recursive: true });
    writeFileSync(path.join(o.out, DEMO_MARK), `${JSON.stringify({ written_by: 'srk train (the built-in demo)', seed: o.seed })}\n`);
    const init = await initModel({ arch: 'gpt-neox', preset: 'tiny', outDir: path.join(o.out, 'init'), seed: o.seed, force: true });
    log.log(`demo: initialized ${init.numParams.toLocaleString()} parameters in ${init.dir}`);
    const data = await writeSyntheticSplit(path.join(o.out, 'data'), { train: Math.round(512 * scale), eval: 64, seed: o.seed });
    const base: TrainOptions = {
      ...TRAIN_DEFAULTS, model: init.dir, data: data.train, out: '', resume: false, seed: o.seed,
      batchSize: 16, microBatchSize: 16, maxLength: 64, maxPromptLength: 32, refinePrompt: DEMO_REFINE_PROMPT, plainProgress: o.plainProgress, adapter: o.adapter,
      precision: o.precision ?? 'f32',
    };
    const sftOut = path.join(o.out, 'sft');
    // Ctrl-C / SIGTERM inside a stage: that stage saves its checkpoint, and the demo stops there (the
    // next stages would start from a half-trained model; a new demo starts over).
    const stopped = (r: TrainResult, stage: string) => {
      if (!r.interrupted) return false;
      log.log(`demo: interrupted during ${stage}; stopping (srk train --out ${o.out} starts the demo over)`);
      return true;
    };
    const sft = await train({ ...base, loss: 'sft', optimizer: 'adamw', lr: 2e-3, warmupSteps: 10, maxSteps: Math.round(150 * scale), out: sftOut, name: 'SFT' }, gpu);
    if (stopped(sft, 'SFT')) return { report: '', interrupted: sft.interrupted };
    const sftModel = path.join(sftOut, 'checkpoint');
    const runs: { name: string; dir: string }[] = [];
    for (const [name, loss] of [['Sr-DPO', 'sr-dpo'], ['DPO', 'dpo']] as const) {
      const dir = path.join(o.out, loss);
      const r = await train({
        ...base, model: sftModel, loss, name, optimizer: 'rmsprop', lr: 1e-4, warmupSteps: 5, beta: 0.1, lambda: 0.5,
        maxSteps: Math.round(60 * scale), evalData: data.eval, evalEvery: Math.max(1, Math.round(20 * scale)), out: dir,
        evalSamples: 4, evalSampleTokens: 16,
      }, gpu);
      if (stopped(r, name)) return { report: '', interrupted: r.interrupted };
      runs.push({ name, dir });
    }
    const reportRuns = runsFromDirs(runs);
    const rep = writeReport(o.out, { title: 'srk demo: Sr-DPO vs DPO on a synthetic preference task', runs: reportRuns });
    process.stdout.write(`\nHeld-out pairs (${path.basename(data.eval)}):\n${formatEvalTable(evalTableFromRows(reportRuns))}\n`);
    process.stdout.write(`\nsample the policy: npx srk generate --model ${path.join(o.out, 'sr-dpo', 'checkpoint')} --data ${data.eval} --max-new-tokens 16\n`);
    process.stdout.write(`\nreport: ${rep.html}\n(demo finished in ${((performance.now() - t0) / 1000).toFixed(0)} s)\n`);
    return { report: rep.html };
  } finally {
    await gpu.destroy();
  }
}
