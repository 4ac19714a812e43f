#!/usr/bin/env node
// The `srk` command line. Each subcommand lives in its own module; this file only wires flags.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { existsSync, statSync } from 'node:fs';
import { checkDirFlag, exitAfterFlush, fail, joinNegativeNumbers, refuseEmptyValues, refuseNonNumbers, refuseRepeatedFlags, typedFlags, usageMessage, withGpu } from './cli/run.js';
import { formatInfo, infoReport } from './cli/info.js';
import { BENCH_KINDS, checkBenchFlagsRead, checkBenchOptions, runBench, type BenchKind } from '../bench/index.js';
import { STEP_LOSSES, STEP_SHAPES, type StepShape } from '../bench/step.js';
import type { LossName } from './train/options.js';
import { DEMO_FLAGS, checkTrainPaths, demoIgnoredFlags, trainFlags, trainOptionsFrom, unreadSettingNotes } from './cli/train.js';
import { signalExitCode, train } from './train/trainer.js';
import { runDemo } from './train/demo.js';
import type { Precision } from './engine/precision.js';
import { userError } from './errors.js';

/** The status main() ends with when nothing failed: 130 / 143 for a run stopped by a signal. */
let exitCode = 0;

/** yargs' parsed option table (not in its types): which flags are switches and which take numbers. */
type YargsOptions = { getOptions(): { boolean: string[]; number: string[] } };
const NO_COMMAND = 'name a command: srk --help lists them';
const COMMANDS = ['info', 'bench', 'train', 'init', 'logprobs', 'eval', 'generate', 'report'];

const adapterOpt = {
  adapter: { type: 'string', describe: 'substring of the WebGPU adapter name to use (also SRK_ADAPTER)' },
} as const;

async function main(): Promise<void> {
  const typed = joinNegativeNumbers(hideBin(process.argv)); // the command line as typed, negative exponents joined
  const cli = yargs(typed);
  await cli
    .scriptName('srk')
    .usage('$0 <command> [options]\n\nPreference alignment (DPO, IPO, Sr-DPO, Sr-IPO) on hand-written WebGPU kernels.')
    .command('info', 'show the WebGPU adapter, its features, subgroup-matrix configs and limits',
      (y) => y.options({ ...adapterOpt, json: { type: 'boolean', default: false, describe: 'print JSON' } }),
      async (a) => {
        await withGpu({ adapter: a.adapter }, async (gpu) => {
          const r = infoReport(gpu);
          process.stdout.write(a.json ? `${JSON.stringify(r, null, 2)}\n` : `${formatInfo(r)}\n`);
        });
      })
    .command('bench <kind>', 'kernel microbenchmarks (median of repeats after warm-up; GPU timestamps where available)',
      (y) => y
        .positional('kind', { choices: BENCH_KINDS, describe: 'what to measure' })
        .options({
          ...adapterOpt,
          json: { type: 'boolean', default: false, describe: 'print one JSON report on stdout (progress goes to stderr)' },
          full: { type: 'boolean', default: false, describe: 'every kind: real sizes even on a CPU adapter (slow on lavapipe)' },
          tokens: { type: 'number', describe: 'matmul, classifier, norm: tokens (rows) (default 8192; CPU adapter: 64, 32, 256)' },
          sizes: { type: 'array', number: true, describe: 'matmul: square sizes (default 1024 4096; 256 on a CPU adapter)' },
          tiles: { type: 'boolean', default: false, describe: 'matmul: also sweep tile shapes on the square sizes' },
          only: { type: 'string', describe: 'matmul: only the cases whose name matches this regular expression' },
          reverse: { type: 'boolean', default: false, describe: 'matmul: run the cases in reverse order' },
          fast: { type: 'boolean', default: false, describe: 'every kind: Dawn toggles disable_robustness, disable_workgroup_init, skip_validation' },
          timestamps: { type: 'boolean', default: true, describe: 'every kind: time with GPU timestamp queries when available (--no-timestamps: wall clock)' },
          pairs: { type: 'number', describe: 'attention, step: preference pairs (default 8; attention on a CPU adapter 1); generate: rows (prompts) together (default 8; CPU adapter 2)' },
          seq: { type: 'number', describe: 'attention, step: tokens of prompt + completion (default 512; attention on a CPU adapter 128); generate: prompt + new tokens (default 512; CPU adapter 32)' },
          prompt: { type: 'number', describe: 'attention, step: prompt tokens (default 256; attention on a CPU adapter 64); generate: prompt tokens (default 256; CPU adapter 16)' },
          vocab: { type: 'number', describe: 'classifier: vocabulary rows (default 50304; 4096 on a CPU adapter)' },
          shape: { type: 'string', choices: STEP_SHAPES, describe: 'step, generate: model shapes, random init (default pythia-160m; tiny on a CPU adapter)' },
          loss: { type: 'string', choices: STEP_LOSSES, default: 'dpo', describe: 'step: loss' },
          'micro-batch': { type: 'number', default: 8, alias: 'micro-batch-size', describe: 'step: pairs per micro-batch (srk train\'s --micro-batch-size)' },
          precision: { type: 'string', choices: ['f32', 'mixed'], default: 'f32', describe: 'step, matmul, attention (generate: f32 only): f32, or mixed (f16 operands on tensor cores, f32 accumulation and weights; falls back to f32 without f16 subgroup-matrix support); matmul times both' },
          'aug-precision': { type: 'string', choices: ['f32', 'mixed'], describe: 'step, sr-dpo/sr-ipo: precision of the augmented no-gradient pass (default: as --precision); mixed with --precision f32 puts only that pass on tensor cores' },
          varied: { type: 'boolean', default: false, describe: 'step: pair lengths vary (prompt and completions from a quarter to all of theirs), as in real data' },
          'length-order': { type: 'boolean', default: true, describe: 'step: micro-batches of similar lengths, longest first (--no-length-order: in data order)' },
          profile: { type: 'boolean', default: false, describe: 'step: after the timed steps, one more step with a GPU timestamp per kernel: time per kernel family (inflated by one pass per dispatch)' },
          packed: { type: 'boolean', default: true, describe: 'step: pack each pair into one row, prompt once (--no-packed: one row per sequence)' },
          'host-only': { type: 'boolean', default: false, describe: 'step: submit nothing, measure the host\'s recording alone (any shape, a CPU adapter included; no tuning)' },
        }),
      async (a) => {
        checkBenchFlagsRead(a.kind as BenchKind, typedFlags(typed.slice(1), new Set(Object.keys(a))));
        checkBenchOptions({ tokens: a.tokens, sizes: a.sizes as number[] | undefined, vocab: a.vocab, pairs: a.pairs, seq: a.seq, prompt: a.prompt,
          only: a.only, microBatch: a['micro-batch'] });
        // A whole training step, and generation, are timed by the wall clock: per-dispatch timestamp passes
        // would slow them. (generate: without kernel tuning, as srk generate runs.)
        const wallClock = a.kind === 'step' || a.kind === 'generate';
        await withGpu({ adapter: a.adapter, profile: a.timestamps && (!wallClock || a.profile), fast: a.fast, ...(a['host-only'] || a.kind === 'generate' ? { tune: false } : {}) }, async (gpu) => {
          const log = (s: string) => (a.json ? process.stderr : process.stdout).write(`${s}\n`);
          const report = await runBench(gpu, {
            kind: a.kind as BenchKind, full: a.full, tokens: a.tokens, tileSweep: a.tiles, only: a.only, reverse: a.reverse, sizes: a.sizes as number[] | undefined, log,
            precision: a.precision as 'f32' | 'mixed',
            pairs: a.pairs, seq: a.seq, prompt: a.prompt, vocab: a.vocab,
            step: { shape: a.shape as StepShape | undefined, loss: a.loss as LossName, microBatch: a['micro-batch'],
              precision: a.precision as 'f32' | 'mixed', packed: a.packed, profile: a.profile,
              varied: a.varied, lengthOrder: a['length-order'], augPrecision: a['aug-precision'] as 'f32' | 'mixed' | undefined,
              hostOnly: a['host-only'] },
          });
          if (a.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        });
      })
    .command('train', 'align a model: SFT, DPO, IPO, Sr-DPO or Sr-IPO (no --model/--data: the built-in demo)',
      (y) => trainFlags(y),
      async (a) => {
        if (!a.model && !a.data) {
          const ignored = demoIgnoredFlags(typed);
          if (ignored.length > 0) {
            throw userError(`${ignored.map((f) => `--${f}`).join(', ')}: the built-in demo (srk train without --model and --data) ` +
              `runs SFT, Sr-DPO and DPO with its own settings and reads only ${DEMO_FLAGS.map((f) => `--${f}`).join(', ')}; ` +
              'give --model and --data to train with these flags');
          }
          if (a.out !== undefined) checkDirFlag('out', a.out as string);
          const demo = await runDemo({ out: (a.out as string | undefined) ?? 'runs/demo', seed: a.seed as number, adapter: a.adapter as string | undefined,
            plainProgress: a['plain-progress'] as boolean, precision: a.precision as Precision });
          if (demo.interrupted) exitCode = signalExitCode(demo.interrupted);
          return;
        }
        if (!a.model || !a.data) throw userError('pass both --model and --data (or neither, for the demo)');
        // Stopped by Ctrl-C / SIGTERM (its checkpoint saved): 130 / 143, so `srk train && srk eval` and
        // a job scheduler do not take the run for finished.
        const o = trainOptionsFrom(a as Record<string, unknown>);
        checkTrainPaths(o);
        for (const n of unreadSettingNotes(o)) process.stderr.write(`note: ${n}\n`);
        const r = await train(o);
        if (r.interrupted) exitCode = signalExitCode(r.interrupted);
      })
    .command((await import('./cli/init.js')).initCommand)
    .command((await import('./cli/logprobs.js')).logprobsCommand)
    .command((await import('./cli/eval.js')).evalCommand)
    .command((await import('./cli/generate.js')).generateCommand)
    .command((await import('./cli/report.js')).reportCommand)
    .middleware((argv) => refuseRepeatedFlags(argv as Record<string, unknown>))
    .middleware(() => refuseEmptyValues(typed, new Set([...(cli as unknown as YargsOptions).getOptions().boolean, 'help', 'version'])))
    .middleware(() => refuseNonNumbers(typed, new Set((cli as unknown as YargsOptions).getOptions().number)))
    .demandCommand(1, NO_COMMAND)
    .recommendCommands()
    .strict()
    .help()
    .fail((msg, err, y) => {
      if (err) { fail(err); return; }
      // No command: the help page is the answer. Otherwise the reason, and where the flags are listed.
      const command = COMMANDS.includes(typed[0] ?? '') ? typed[0] : undefined; // (a mistyped one is named by yargs)
      if (msg === NO_COMMAND) process.stderr.write(`${y.help()}\n\nsrk: ${msg}\n`);
      else process.stderr.write(`srk: ${usageMessage(msg, command, new Set(['kind', 'runs']), unknownFileHint(msg))}\n`);
      exitAfterFlush(2);
    })
    .parseAsync();
}

/**
 * An unknown argument that is a file: most likely a second data file after one --data (a shell's
 * unquoted pattern gives several), which takes one file per flag.
 */
function unknownFileHint(msg: string): string {
  const m = /^Unknown arguments?: (.+)$/.exec(msg);
  if (!m || !m[1].split(', ').some((f) => existsSync(f) && statSync(f).isFile())) return '';
  return '\nsrk: several data files: give --data (or --eval-data) again for each, or quote a pattern for srk to expand: --data "data/train-*.parquet"';
}

// `srk logprobs ... | head`: the reader has what it wanted; stop quietly rather than on an EPIPE stack.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  fail(e);
});
// `srk train 2>&1 | head`: progress has nowhere to go once the reader is gone; the run goes on (and
// saves) rather than dying on an unhandled EPIPE.
process.stderr.on('error', () => { /* nothing to report it on */ });
main().then(() => exitAfterFlush(exitCode), fail);
