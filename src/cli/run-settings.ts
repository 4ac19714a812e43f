// The settings of the srk train run a checkpoint came from, for the scoring commands (srk eval, srk logprobs)
// to score its pairs as the run did where no flag says otherwise.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { readTrainerState, TRAINER_STATE } from '../train/checkpoint.js';
import { readRunConfig } from '../report/metrics-log.js';
import { typedFlags } from './run.js';

/** The scoring flags a training run pins, with the names its trainer_state.json options use. */
const RUN_SETTINGS = [
  { flag: 'max-length', key: 'maxLength' }, { flag: 'max-prompt-length', key: 'maxPromptLength' },
  { flag: 'beta', key: 'beta' }, { flag: 'refine-prompt', key: 'refinePrompt' },
  { flag: 'eos', key: 'noEos' }, { flag: 'completions-in-context', key: 'completionsInContext' },
] as const;

/**
 * The settings of the srk train run whose checkpoint --model is (its trainer_state.json), for the flags not
 * given: `srk eval --model runs/x/checkpoint` then scores the pairs as the run's own evaluations did (its
 * truncation, beta, refinement prompt, EOS), where the flags' defaults gave other numbers without a word.
 * Flags the command does not have (srk logprobs has no --beta) are left out. (An SFT run's beta too: its loss
 * has none, but its evaluations' margins do.) Returns the flag values to use and the note saying so.
 */
export function runSettings(modelDir: string, args: Record<string, unknown>, typed: readonly string[]): { values: Record<string, unknown>; note?: string } {
  const file = path.join(modelDir, TRAINER_STATE);
  if (!existsSync(file)) return { values: {} };
  let options: Record<string, unknown>;
  try { options = readTrainerState(modelDir).options; } catch { return { values: {} }; }
  const values: Record<string, unknown> = {};
  const said: string[] = [];
  for (const { flag, key } of RUN_SETTINGS) {
    if (!(flag in args) || typed.includes(flag)) continue; // (typedFlags reads --no-eos as eos)
    const run = key === 'noEos' ? (options.noEos === undefined ? undefined : options.noEos !== true)
      : key === 'completionsInContext' ? options.completionsInContext === true : options[key];
    if (run === undefined || run === args[flag]) continue;
    values[flag] = run;
    said.push(flag === 'eos' ? (run ? '--eos' : '--no-eos') : flag === 'completions-in-context' ? (run ? '--completions-in-context' : '--no-completions-in-context')
      : flag === 'refine-prompt' ? '--refine-prompt (the run\'s)' : `--${flag} ${String(run)}`);
  }
  if (said.length === 0) return { values };
  return { values, note: `${said.join(', ')}: as the run that trained ${modelDir} had them (its trainer_state.json); give the flags to score otherwise` };
}

/**
 * A scoring command's parsed flags with its checkpoint's run settings put in for the flags not typed
 * (runSettings), and the note saying which.
 */
export function withRunSettings(a: Record<string, unknown>): { args: Record<string, unknown>; note?: string } {
  if (typeof a.model !== 'string') return { args: a };
  const { values, note } = runSettings(a.model, a, typedFlags(process.argv.slice(2), new Set(Object.keys(a))));
  return { args: { ...a, ...values }, ...(note ? { note } : {}) };
}

/**
 * The reference the srk train run whose checkpoint `modelDir` is trained against (its --ref-model, else the
 * model it started from, as its train_config.json in OUT records them: OUT/checkpoint, or OUT/models/step-N of
 * --keep-models), where that directory still exists; undefined otherwise (not a run's checkpoint, or moved).
 * For `srk eval` without --ref-model, whose margins are then 0 by construction.
 */
export function runReference(modelDir: string): string | undefined {
  if (!existsSync(path.join(modelDir, TRAINER_STATE))) return undefined;
  for (const out of [path.dirname(path.resolve(modelDir)), path.dirname(path.dirname(path.resolve(modelDir)))]) {
    const cfg = readRunConfig(out);
    if (!cfg) continue;
    const ref = cfg.refModel ?? cfg.model;
    return typeof ref === 'string' && existsSync(ref) && path.resolve(ref) !== path.resolve(modelDir) ? ref : undefined;
  }
  return undefined;
}
