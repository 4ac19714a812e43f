// Runs a command body with a GPU and always tears the device down, so the process exits promptly
// (Dawn's event pump otherwise keeps Node alive and a core busy).
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { Gpu, GpuError, type GpuOptions } from '../engine/gpu.js';
import { isUserFacing, userError } from '../errors.js';
import type { DataFiles } from '../data/data-files.js';

/**
 * Refuses the path of a flag that is missing or of the wrong kind, before any work (train: before its
 * --out directory is made): a model is a Hugging Face checkpoint directory, data a file.
 */
export function checkPathFlag(flag: string, p: string, kind: 'model directory' | 'data file'): void {
  if (!existsSync(p)) throw userError(`--${flag} ${p}: no such file or directory`);
  const isDir = statSync(p).isDirectory();
  if (kind === 'model directory' && !isDir) throw userError(`--${flag} ${p}: not a directory (a Hugging Face checkpoint directory: config.json, *.safetensors, the tokenizer)`);
  if (kind === 'model directory' && !existsSync(path.join(p, 'config.json'))) {
    // An srk train run directory holds its model in checkpoint/ (and models/step-N with --keep-models).
    const inRun = existsSync(path.join(p, 'checkpoint', 'config.json')) ? `: an srk train run directory; its model is ${path.join(p, 'checkpoint')}` : '';
    throw userError(`--${flag} ${p}: no config.json, so not a Hugging Face checkpoint directory${inRun}`);
  }
  if (kind === 'data file' && isDir) {
    throw userError(`--${flag} ${p}: a directory, not a data file (JSON Lines, a JSON array, gzipped or not, or Parquet); ` +
      `give its files of one split, e.g. --${flag} "${p}/train-*.parquet" (quoted: srk expands the pattern)`);
  }
  // A pipe (/dev/stdin, a shell's <(...)) can be read once, and srk reads a data file more than once (its
  // format from its first bytes, its rows, a fingerprint for caches and resumes): refused, not ESPIPE.
  if (kind === 'data file' && !statSync(p).isFile()) {
    throw userError(`--${flag} ${p}: not a regular file (a pipe or a device): srk reads its data more than once; write it to a file and give that`);
  }
}

/**
 * A data flag's files (--data, --eval-data): the flag given again for each file (yargs then makes a list),
 * or a pattern with * or ? in its last part, quoted so that srk expands it (a split's shards:
 * "data/train-*.parquet", in name order). Several values after one flag are no list: the strict parser
 * refuses the second as an unknown argument, so a forgotten --eval-data cannot make held-out data training
 * data. One file as a string, several as a list (data-files.ts); undefined where the flag is absent. A file
 * named twice is refused; the paths are the caller's to check (checkPathFlag).
 */
export function dataFilesFlag(a: Record<string, unknown>, flag: string): DataFiles | undefined {
  const v = a[flag];
  if (v === undefined) return undefined;
  const given = (Array.isArray(v) ? v : [v]).map(String);
  if (given.length === 0 || given.some((f) => f.trim() === '')) throw userError(`--${flag} needs a data file after it`);
  const files = given.flatMap((f) => expandPattern(flag, f));
  const seen = new Map<string, string>();
  for (const f of files) {
    const key = path.resolve(f);
    if (seen.has(key)) throw userError(`--${flag}: ${f} is given twice${seen.get(key) !== f ? ` (also as ${seen.get(key)})` : ''}: its rows would count twice`);
    seen.set(key, f);
  }
  return files.length === 1 ? files[0] : files;
}

/** The files a pattern names (* and ? in its last part, name order), or the value itself where it has none. */
function expandPattern(flag: string, value: string): string[] {
  const base = path.basename(value);
  if (!/[*?]/.test(base)) return [value];
  const dir = path.dirname(value);
  if (/[*?]/.test(dir)) throw userError(`--${flag} ${value}: a pattern may use * and ? in the file name only`);
  const re = new RegExp(`^${base.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
  // As a shell's pattern: hidden files only for a pattern that starts with a dot, and files only.
  const names = existsSync(dir) && statSync(dir).isDirectory()
    ? readdirSync(dir).filter((n) => re.test(n) && (base.startsWith('.') || !n.startsWith('.')) && statSync(path.join(dir, n)).isFile()).sort() : [];
  if (names.length === 0) throw userError(`--${flag} ${value}: no file matches`);
  return names.map((n) => path.join(dir, n));
}

/** Refuses --max-prompt-length at or past --max-length (train, eval, logprobs), both values named. */
export function checkPromptBelowMaxLength(a: Record<string, unknown>, defaultPrompt: number): void {
  const prompt = a['max-prompt-length'] as number; const max = a['max-length'] as number;
  if (prompt < max) return;
  throw userError(`--max-prompt-length (${prompt}${prompt === defaultPrompt ? ', the default' : ''}) must be below --max-length (${max})`);
}

/** A directory srk creates if need be (--cache-dir): refused by its flag where a file is in the way. */
export function checkDirFlag(flag: string, p: string): void {
  if (existsSync(p) && !statSync(p).isDirectory()) throw userError(`--${flag} ${p}: not a directory`);
}

export async function withGpu<T>(opts: GpuOptions, body: (gpu: Gpu) => Promise<T>): Promise<T> {
  const gpu = await Gpu.create(opts);
  try {
    return await body(gpu);
  } finally {
    await gpu.destroy();
  }
}

let exiting = false;

/**
 * Exits with `code` once what was written to stdout and stderr has gone out: through a pipe it
 * leaves at the reader's pace, and process.exit alone drops what is still queued (the end of a
 * `srk eval --json | jq`, say). The first call decides the code.
 */
export function exitAfterFlush(code: number): void {
  if (exiting) return;
  exiting = true;
  let left = 2;
  const done = () => { if (--left === 0) process.exit(code); };
  for (const s of [process.stdout, process.stderr]) {
    if (s.destroyed || s.writableEnded || s.writableLength === 0) done();
    else s.write('', () => done());
  }
}

/**
 * Prints an error and exits non-zero. Our errors name the file, line, tensor or flag, so the message
 * is what a user needs; the stack is shown for what looks like a bug in srk itself (TypeError,
 * ReferenceError) or with SRK_DEBUG=1.
 */
export function fail(e: unknown): void {
  const err = e instanceof Error ? e : new Error(String(e));
  const bug = (err instanceof TypeError || err instanceof ReferenceError) && !isUserFacing(err);
  const showStack = (bug || process.env.SRK_DEBUG === '1') && err.stack && !(err instanceof GpuError);
  process.stderr.write(`srk: ${showStack ? err.stack : err.message}\n`);
  exitAfterFlush(1);
}

/** --adapter, as every command that uses the GPU takes it. */
export const ADAPTER_FLAG = {
  adapter: { type: 'string', describe: 'substring of the WebGPU adapter name to use (also SRK_ADAPTER)' },
} as const;

/** Flags that take several values: bench --sizes, report's runs and --name (yargs arrays), and --data /
 *  --eval-data given once per file (dataFilesFlag). */
export const LIST_FLAGS = new Set(['_', '$0', 'sizes', 'runs', 'name', 'data', 'eval-data']);

/**
 * The command line with a negative number in exponent form joined to the flag before it (`--lr -1e-6`
 * -> `--lr=-1e-6`): yargs takes a negative number as a value only without an exponent, and read
 * `-1e-6` as the short flags -1 and -e ("Unknown arguments: 1, e"). srk has no short flag that is a
 * digit, so such a token is always a value; its flag's own check then judges it (--lr must be >= 0).
 */
export function joinNegativeNumbers(args: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const t = args[i];
    if (t === '--') { out.push(...args.slice(i)); break; }
    const prev = out[out.length - 1];
    if (/^-(\d+\.?\d*|\.\d+)e[+-]?\d+$/i.test(t) && prev !== undefined && /^--[^=]+$/.test(prev)) out[out.length - 1] = `${prev}=${t}`;
    else out.push(t);
  }
  return out;
}

/** A flag as typed: `--name` or `--name=value` at `index` of the command line. */
interface TypedFlag { index: number; name: string; dashed: string; inline?: string }

/**
 * The flags of a command line as typed, up to a `--` (what follows it is no flag): each `--name` or
 * `--name=value`, with its dashed spelling (yargs also takes a flag in camel case: --dropLast for
 * --drop-last). Shared by the checks below, which read the command line as typed where yargs' parse
 * has lost it (an empty value, a NaN, which flags were given).
 */
function* flagsTyped(args: readonly string[]): Generator<TypedFlag> {
  for (let i = 0; i < args.length; i++) {
    const t = args[i];
    if (t === '--') return;
    if (!t.startsWith('--') || t.length === 2) continue;
    const eq = t.indexOf('=');
    const name = t.slice(2, eq < 0 ? undefined : eq);
    yield { index: i, name, dashed: name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`), ...(eq < 0 ? {} : { inline: t.slice(eq + 1) }) };
  }
}

/** yargs' option table where the middleware reads it: switches, number flags, and each flag's aliases. */
export interface TypedOptions { booleans: ReadonlySet<string>; numbers: ReadonlySet<string>; aliases: Record<string, readonly string[]> }

/**
 * yargs middleware: a single-value flag typed more than once is read from the command line as typed, by
 * any of its spellings and aliases (--micro-batch, --micro-batch-size): different values are refused by
 * name; the same value is that value. yargs' parse cannot be trusted with it: it lists the values ("--batch-size
 * 2 --batch-size 2" read as [2, 2], a puzzling "must be a positive integer (got 2,2)"), and takes a number
 * value of exactly 1 as a count step (`--epochs 1 --epochs 1` read as 2, `--max-steps 2 --max-steps 1` as 3).
 * `argv`: the parse, set right here for such a flag and all its spellings.
 */
export function refuseRepeatedTyped(args: readonly string[], argv: Record<string, unknown>, o: TypedOptions): void {
  const canonical = new Map<string, string>();
  for (const [key, names] of Object.entries(o.aliases)) for (const n of names) canonical.set(n, key);
  const seen = new Map<string, string[]>();
  for (const { index, dashed, inline } of flagsTyped(args)) {
    const negated = !o.booleans.has(dashed) && dashed.startsWith('no-') && o.booleans.has(dashed.slice(3));
    const name = negated ? dashed.slice(3) : dashed;
    const flag = canonical.get(name) ?? name;
    if (LIST_FLAGS.has(flag)) continue;
    const value = o.booleans.has(flag) ? String(negated ? inline === 'false' : inline !== 'false') : inline ?? args[index + 1] ?? '';
    seen.set(flag, [...(seen.get(flag) ?? []), value]);
  }
  const camel = (n: string) => n.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
  for (const [flag, values] of seen) {
    if (new Set(values).size > 1) throw userError(`--${flag} is given ${values.length} times (${values.join(', ')}); give it once`);
    if (values.length < 2) continue;
    // A list's first value keeps yargs' typing (a coerce, a choice); a count-stepped number is the typed one.
    const listed = argv[flag];
    const value = Array.isArray(listed) ? listed[0] : o.numbers.has(flag) && values[0].trim() !== '' && !Number.isNaN(Number(values[0])) ? Number(values[0]) : listed;
    for (const n of [flag, ...(o.aliases[flag] ?? [])]) { argv[n] = value; argv[camel(n)] = value; }
  }
}

/**
 * yargs middleware: a flag that takes a value but is given none (`--lr` last, `--seed "$SEED"` with the
 * variable unset, `--out=`) is refused by name. yargs would otherwise take the default (a seed sweep with a
 * typo'd variable would train identical runs) or an empty path. Read from the command line as typed;
 * `booleans` are the flags that take no value.
 */
export function refuseEmptyValues(args: readonly string[], booleans: ReadonlySet<string>): void {
  for (const { index, name, dashed, inline } of flagsTyped(args)) {
    if ([name, dashed].some((n) => booleans.has(n) || (n.startsWith('no-') && booleans.has(n.slice(3))))) {
      // A switch takes no value but true or false (yargs read `--json=-1e-6`, joinNegativeNumbers' form of
      // `--json -1e-6`, as false).
      if (inline !== undefined && inline !== 'true' && inline !== 'false') throw userError(`--${name} is a switch: it takes no value (got ${JSON.stringify(inline)})`);
      continue;
    }
    const value = inline ?? args[index + 1];
    if (value === undefined || value === '' || (inline === undefined && value.startsWith('--') && value.length > 2)) {
      throw userError(`--${name} needs a value${value === undefined || value.startsWith('--') ? '' : ' (an empty one was given)'}`);
    }
  }
}

/**
 * yargs middleware: a number flag given text that is no number (`--lr abc`, `--seed $((`) is refused with
 * the text as typed. yargs reads it as NaN, and each flag's own check then said "got NaN", which hides
 * what was typed. `numbers` are the flags of type number; a list flag (bench --sizes) takes every value up
 * to the next flag.
 */
export function refuseNonNumbers(args: readonly string[], numbers: ReadonlySet<string>): void {
  for (const { index, name, dashed, inline } of flagsTyped(args)) {
    if (!numbers.has(name) && !numbers.has(dashed)) continue;
    const values = inline !== undefined ? [inline] : [];
    if (inline === undefined) {
      for (let j = index + 1; j < args.length && !args[j].startsWith('--') && (j === index + 1 || LIST_FLAGS.has(dashed)); j++) values.push(args[j]);
    }
    const bad = values.find((v) => v.trim() !== '' && Number.isNaN(Number(v)));
    if (bad !== undefined) throw userError(`--${dashed} takes a number (got ${JSON.stringify(bad)})`);
  }
}

/**
 * What srk prints for a command line yargs refuses (an unknown flag, a value not among a flag's choices):
 * the reason, said as srk says its own refusals, and where the flags are listed, rather than the whole
 * help page with the reason under it, where it scrolled out of sight. A choice given in other letter case
 * (`--loss DPO`) is answered with the one meant.
 */
export function usageMessage(msg: string, command: string | undefined, positionals: ReadonlySet<string> = new Set(), hint = ''): string {
  let said = msg.trim();
  if (/^Invalid values?:/.test(said)) {
    const lines = [...said.matchAll(/Argument: ([\w-]+), Given: (".*?"|\S+), Choices: (.*)$/gm)].map(([, flag, givenText, choicesText]) => {
      const choices = [...choicesText.matchAll(/"([^"]*)"|([^\s,]+)/g)].map((m) => m[1] ?? m[2]);
      let given = givenText;
      try { given = String(JSON.parse(givenText)); } catch { /* as printed */ }
      const meant = choices.find((c) => c.toLowerCase() === given.toLowerCase());
      const what = positionals.has(flag) ? `<${flag}>` : `--${flag}`;
      return `${what} ${JSON.stringify(given)} is not one of ${choices.join(', ')}${meant !== undefined ? ` (did you mean ${meant}?)` : ''}`;
    });
    if (lines.length > 0) said = lines.join('\nsrk: ');
  }
  return `${said}${hint}\nsrk${command ? ` ${command}` : ''} --help lists the flags`;
}

/**
 * The flags typed on a command line (`args` after the command), by their dashed names, once each, in
 * any of yargs' spellings: --max-steps 3, --max-steps=3, --maxSteps, --no-packed (read as packed where
 * `known` has packed). What follows `--` is no flag.
 */
export function typedFlags(args: readonly string[], known: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (const { dashed } of flagsTyped(args)) {
    const name = !known.has(dashed) && dashed.startsWith('no-') && known.has(dashed.slice(3)) ? dashed.slice(3) : dashed;
    if (!out.includes(name)) out.push(name);
  }
  return out;
}
