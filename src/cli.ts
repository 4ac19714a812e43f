#!/usr/bin/env node
// The `srk` command line. Each subcommand lives in its own module; this file only wires flags.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { fail, withGpu } from './cli/run.js';
import { formatInfo, infoReport } from './cli/info.js';
import { BENCH_KINDS, runBench, type BenchKind } from '../bench/index.js';
import { trainFlags, trainOptionsFrom } from './cli/train.js';
import { train } from './train/trainer.js';

const adapterOpt = {
  adapter: { type: 'string', describe: 'substring of the WebGPU adapter name to use (also SRK_ADAPTER)' },
} as const;

async function main(): Promise<void> {
  await yargs(hideBin(process.argv))
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
          full: { type: 'boolean', default: false, describe: 'real sizes even on a CPU adapter (slow on lavapipe)' },
          tokens: { type: 'number', describe: 'tokens per step for the model-shaped cases (default 8192; 256 on a CPU adapter)' },
          sizes: { type: 'array', number: true, describe: 'square matmul sizes (default 1024 4096; 256 512 on a CPU adapter)' },
          tiles: { type: 'boolean', default: false, describe: 'matmul: also sweep tile shapes on the square sizes' },
          fast: { type: 'boolean', default: false, describe: 'Dawn toggles disable_robustness, disable_workgroup_init, skip_validation' },
          timestamps: { type: 'boolean', default: true, describe: 'time with GPU timestamp queries when available (--no-timestamps: wall clock)' },
        }),
      async (a) => {
        await withGpu({ adapter: a.adapter, profile: a.timestamps, fast: a.fast }, async (gpu) => {
          const log = (s: string) => (a.json ? process.stderr : process.stdout).write(`${s}\n`);
          const report = await runBench(gpu, {
            kind: a.kind as BenchKind, full: a.full, tokens: a.tokens, tileSweep: a.tiles, sizes: a.sizes as number[] | undefined, log,
          });
          if (a.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        });
      })
    .command('train', 'align a model: SFT, DPO, IPO, Sr-DPO or Sr-IPO (no --model/--data: the built-in demo)',
      (y) => trainFlags(y),
      async (a) => {
        if (!a.model && !a.data) throw Object.assign(new Error('the built-in demo is not available yet: pass --model and --data'), { userFacing: true });
        if (!a.model || !a.data) throw Object.assign(new Error('pass both --model and --data (or neither, for the demo)'), { userFacing: true });
        await train(trainOptionsFrom(a as Record<string, unknown>));
      })
    .command((await import('./cli/logprobs.js')).logprobsCommand)
    .command((await import('./cli/eval.js')).evalCommand)
    .demandCommand(1, 'name a command: srk --help lists them')
    .strict()
    .help()
    .fail((msg, err, y) => {
      if (err) fail(err);
      process.stderr.write(`${y.help()}\n\nsrk: ${msg}\n`);
      process.exit(2);
    })
    .parseAsync();
}

main().then(() => process.exit(0), fail);
