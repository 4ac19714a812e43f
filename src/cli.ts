#!/usr/bin/env node
// The `srk` command line. Each subcommand lives in its own module; this file only wires flags.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { existsSync, statSync } from 'node:fs';
import { checkDirFlag, exitAfterFlush, fail, joinNegativeNumbers, refuseEmptyValues, refuseNonNumbers, refuseRepeatedTyped, typedFlags, usageMessage, withGpu, ADAPTER_FLAG } from './cli/run.js';
import { formatInfo, infoReport } from './cli/info.js';
import { benchCommand } from './cli/bench.js';
import { DEMO_FLAGS, checkTrainPaths, demoIgnoredFlags, trainFlags, trainOptionsFrom, unreadSettingNotes } from './cli/train.js';
import { signalExitCode, train } from './train/trainer.js';
import { runDemo } from './train/demo.js';
import type { Precision } from './engine/precision.js';
import { userError } from './errors.js';

/** The status main() ends with when nothing failed: 130 / 143 for a run stopped by a signal. */
let exitCode = 0;

/** yargs' parsed option table (not in its types): which flags are switches and which take numbers. */
type YargsOptions = { getOptions(): { boolean: string[]; number: string[]; alias: Record<string, string[]> } };
const NO_COMMAND = 'name a command: srk --help lists them';
const COMMANDS = ['info', 'bench', 'train', 'init', 'logprobs', 'eval', 'generate', 'report'];


async function main(): Promise<void> {
  const typed = joinNegativeNumbers(hideBin(process.argv)); // the command line as typed, negative exponents joined
  const cli = yargs(typed);
  await cli
    .scriptName('srk')
    .usage('$0 <command> [options]\n\nPreference alignment (DPO, IPO, Sr-DPO, Sr-IPO) on hand-written WebGPU kernels.')
    .command('info', 'show the WebGPU adapter, its features, subgroup-matrix configs and limits',
      (y) => y.options({ ...ADAPTER_FLAG, json: { type: 'boolean', default: false, describe: 'print JSON' } }),
      async (a) => {
        await withGpu({ adapter: a.adapter }, async (gpu) => {
          const r = infoReport(gpu);
          process.stdout.write(a.json ? `${JSON.stringify(r, null, 2)}\n` : `${formatInfo(r)}\n`);
        });
      })
    .command(benchCommand(typed.slice(1)))
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
        for (const n of unreadSettingNotes(o, typedFlags(typed, new Set(['eval-sample-tokens'])))) process.stderr.write(`note: ${n}\n`);
        const r = await train(o);
        if (r.interrupted) exitCode = signalExitCode(r.interrupted);
      })
    .command((await import('./cli/init.js')).initCommand)
    .command((await import('./cli/logprobs.js')).logprobsCommand)
    .command((await import('./cli/eval.js')).evalCommand)
    .command((await import('./cli/generate.js')).generateCommand)
    .command((await import('./cli/report.js')).reportCommand)
    .middleware((argv) => {
      const o = (cli as unknown as YargsOptions).getOptions();
      refuseRepeatedTyped(typed, argv as Record<string, unknown>, { booleans: new Set(o.boolean), numbers: new Set(o.number), aliases: o.alias });
    })
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
      else process.stderr.write(`srk: ${usageMessage(msg, command, new Set(['kind', 'runs']), unknownFileHint(msg) + dashValueHint(msg, typed) + listFlagHint(msg, typed))}\n`);
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

/**
 * `srk report --name A B RUN...`: the list flag took the runs too, leaving none. Said with the spellings
 * that pass.
 */
function listFlagHint(msg: string, typed: readonly string[]): string {
  if (typed[0] !== 'report' || !/^Not enough non-option arguments/.test(msg) || !typed.some((t) => t === '--name' || t.startsWith('--name='))) return '';
  return '\nsrk: --name takes every word after it up to the next flag: give the runs before it: srk report RUN1 RUN2 --name A B';
}

/**
 * Unknown one-letter arguments that spell a typed word starting with one dash (`--data -pairs.jsonl`): yargs
 * read the value as short flags (-p -a -i ...). Said with the two spellings that pass it.
 */
function dashValueHint(msg: string, typed: readonly string[]): string {
  const m = /^Unknown arguments?: (.+)$/.exec(msg);
  if (!m) return '';
  const letters = m[1].split(', ');
  // (yargs takes the letters up to the first other character, each once: -pairs.jsonl gives p, a, i, r, s;
  // -ssd/x gives s, d)
  const lettersOf = (t: string) => [...new Set(/^[A-Za-z]*/.exec(t.slice(1))![0])].join(', ');
  const word = letters.every((l) => l.length === 1) ? typed.find((t) => /^-[A-Za-z]/.test(t) && lettersOf(t) === letters.join(', ')) : undefined;
  if (!word) return '';
  // (only after a flag, whose value it was meant to be: a lone -x is a mistyped flag)
  const flag = typed[typed.indexOf(word) - 1];
  if (!flag?.startsWith('--') || flag.includes('=')) return '';
  return `\nsrk: ${JSON.stringify(word)} reads as short flags: a value starting with "-" is given as ${flag}=${word} (or a path as ./${word})`;
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
