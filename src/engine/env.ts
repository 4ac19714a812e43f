// Switches read from the environment (measuring and checking: SRK_ATTENTION, SRK_F16_COPIES, ...).
import { userError } from '../errors.js';

/**
 * A switch: undefined when unset or empty, else one of `allowed`; anything else is a user-facing
 * error naming the variable (read when first needed, so the CLI reports it as a one-line error).
 */
export function envChoice<T extends string>(name: string, allowed: readonly T[], env: NodeJS.ProcessEnv = process.env): T | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  if (!(allowed as readonly string[]).includes(raw)) {
    const list = allowed.length > 1 ? `${allowed.slice(0, -1).join(', ')} or ${allowed.at(-1)}` : allowed[0];
    throw userError(`${name}=${raw}: expected ${list}`);
  }
  return raw as T;
}

/**
 * A whole-number setting: undefined when unset or empty, else a positive integer; anything else is a
 * user-facing error naming the variable and what it counts (`what`, e.g. "threads (1: none)").
 */
export function envPositiveInt(name: string, what: string, env: NodeJS.ProcessEnv = process.env): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!(Number.isInteger(n) && n > 0)) throw userError(`${name}=${raw}: expected a positive whole number of ${what}`);
  return n;
}

/**
 * Every SRK_* variable srk reads, and what it takes. Each is also checked where it is read; this
 * table lets checkEnvironment() refuse a malformed one before any device work, whatever path the run
 * takes (a switch read only on the tensor-core path was accepted silently on an f32 run).
 */
const SWITCHES = {
  SRK_TUNE: ['0', '1'], SRK_MATMUL: ['simple', 'reg'], SRK_SMX_SAFE: ['0', '1'], SRK_MIXED: ['emulate', 'emulate-tc'],
  SRK_ATTENTION: ['tc', 'simt', 'unfused'], SRK_SMX_RELOAD: ['0', '1'], SRK_SMX_SOFTMAX: ['row', 'shuffle'],
  SRK_F16_COPIES: ['0', '1'], SRK_FUSED_ACT: ['0', '1'], SRK_FUSED_ABSMAX: ['0', '1'], SRK_UNFUSED_CAUSAL: ['0', '1'],
  SRK_SMX_CHECK: ['0', '1'], SRK_LAST_BLOCK_TRIM: ['0', '1'], SRK_SHARED_PREFIX: ['0', '1'], SRK_DEBUG: ['0', '1'],
} as const;
const COUNTS = {
  SRK_SUBMIT_EVERY: 'dispatches', SRK_TOKENIZE_THREADS: 'threads (1: tokenize on the main thread)',
} as const;
export type SwitchName = keyof typeof SWITCHES;

/** A switch of the table above where it is read: undefined when unset or empty, else one of its values. */
export function envSwitch<K extends SwitchName>(name: K): (typeof SWITCHES)[K][number] | undefined {
  return envChoice(name, SWITCHES[name]);
}
/** A count of the table above where it is read: undefined when unset or empty, else a positive integer. */
export const envCount = (name: keyof typeof COUNTS): number | undefined => envPositiveInt(name, COUNTS[name]);
/** Read elsewhere with their own checks (free text, lists, a MiB count), or by scripts and tests. */
const OTHERS = new Set(['SRK_ADAPTER', 'SRK_DAWN_TOGGLES', 'SRK_KEEP_LOGITS_MIB', 'SRK_GPU_BUDGET', 'SRK_GPU_SECTIONS',
  'SRK_GPU_SWEEP', 'SRK_TC_BUDGET', 'SRK_KEEP_TMP', 'SRK_TEST_SEED', 'SRK_KEEP_REPORT', 'SRK_REPORT_SHOT_DIR']);

/** The SRK_* names srk, its scripts and its tests read. */
export const knownEnvironmentNames = (): string[] => [...Object.keys(SWITCHES), ...Object.keys(COUNTS), ...OTHERS].sort();

/**
 * Checks every SRK_* variable set: a malformed switch is a user-facing error naming it; a name srk
 * does not read (a typo, SRK_TUNES=0) gets a warning, since it changes nothing. Returns the warnings.
 */
export function checkEnvironment(env: NodeJS.ProcessEnv = process.env): string[] {
  const warnings: string[] = [];
  for (const name of Object.keys(env).filter((k) => k.startsWith('SRK_')).sort()) {
    if (Object.hasOwn(SWITCHES, name)) envChoice(name, SWITCHES[name as SwitchName], env);
    else if (Object.hasOwn(COUNTS, name)) envPositiveInt(name, COUNTS[name as keyof typeof COUNTS], env);
    else if (name === 'SRK_KEEP_LOGITS_MIB') keepLogitsMib(env[name]);
    else if (!OTHERS.has(name)) warnings.push(`${name} is not a variable srk reads (the README lists them); ignored`);
  }
  return warnings;
}

/** SRK_KEEP_LOGITS_MIB: a number of MiB >= 0 (0: never keep), or undefined when unset or empty. */
export function keepLogitsMib(raw: string | undefined): number | undefined {
  if (raw === undefined || raw === '') return undefined;
  const mib = Number(raw);
  // Number(' ') is 0 and Number('0x10') 16: only plain decimals.
  if (!/^\s*\d+(\.\d+)?\s*$/.test(raw) || !Number.isFinite(mib)) throw userError(`SRK_KEEP_LOGITS_MIB=${raw}: expected a number of MiB >= 0`);
  return mib;
}
