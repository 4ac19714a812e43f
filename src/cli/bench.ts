// `srk bench <kind>`: its flags and its handler. The flags live here, apart from cli.ts, so a test can
// parse every command line scripts/gpu-check.sh runs with the same definitions (a flag renamed or a kind
// that stops reading a flag would otherwise be found on a lent GPU, by a run that measured nothing).
import type { Argv, CommandModule } from 'yargs';
import { BENCH_KINDS, checkBenchFlagsRead, checkBenchOptions, runBench, type BenchKind } from '../../bench/index.js';
import { STEP_LOSSES, STEP_SHAPES, type StepShape } from '../../bench/step.js';
import type { LossName } from '../train/options.js';
import { typedFlags, withGpu, ADAPTER_FLAG } from './run.js';

/** bench's positional kind and its flags. */
export function benchFlags<T>(y: Argv<T>) {
  return y
    .positional('kind', { choices: BENCH_KINDS, describe: 'what to measure' })
    .options({
      ...ADAPTER_FLAG,
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
    });
}

type BenchArgs = ReturnType<typeof benchFlags>;
export type ParsedBenchArgs = BenchArgs extends Argv<infer U> ? U : never;

/**
 * What bench checks of its parsed flags before a device exists: the flags typed for a kind that does
 * not read them, and sizes that are not positive integers. `typed`: the command line after `bench`.
 */
export function checkBenchArgs(a: ParsedBenchArgs, typed: readonly string[]): void {
  checkBenchFlagsRead(a.kind as BenchKind, typedFlags(typed, new Set(Object.keys(a))));
  checkBenchOptions({ tokens: a.tokens, sizes: a.sizes as number[] | undefined, vocab: a.vocab, pairs: a.pairs, seq: a.seq, prompt: a.prompt,
    only: a.only, microBatch: a['micro-batch'] });
}

/** `srk bench <kind>`; `typed`: the command line as typed, after `bench`'s position (cli.ts). */
export function benchCommand(typed: readonly string[]): CommandModule<object, ParsedBenchArgs> {
  return {
    command: 'bench <kind>',
    describe: 'kernel microbenchmarks (median of repeats after warm-up; GPU timestamps where available)',
    builder: (y) => benchFlags(y),
    handler: async (a) => {
      checkBenchArgs(a, typed);
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
    },
  };
}
