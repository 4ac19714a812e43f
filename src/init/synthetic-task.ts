// A built-in synthetic preference task for the demo, generated from a seed.
//
// Each row is a small exercise with one correct answer. chosen = the correct answer; rejected = an
// answer with k errors, k uniform in 1..4, so the quality gap varies from pair to pair:
//   score_chosen = 10, score_rejected = 10 - 2k   (gap 2, 4, 6 or 8)
// which gives Sr-DPO's quality-aware margin something to use and `srk eval` judge scores to
// correlate with. judgeSynthetic(prompt, completion) recomputes the same score for any completion
// (e.g. a model's generation), so the scores in the rows are exactly the judge's.
//
// Tasks (prompt -> chosen; what an error is):
//   sort     "sort: 5 2 8 1 =" -> " 1 2 5 8"     4..6 digits; an error = one digit replaced
//   reverse  "reverse: kdhe =" -> " ehdk"        4..8 letters; an error = one letter replaced
//   upper    "upper: kdhe ="   -> " KDHE"        4..8 letters; an error = one letter left lowercase
//   add      "add: 27+45 ="    -> " 72"          2-digit numbers; k errors = off by k
//   count    "count b: abbcadb =" -> " 3"        6..10 letters of abcd; k errors = off by k
// Every prompt and response is under 40 bytes (ASCII), so sequences stay short with the byte
// tokenizer. Completions start with a space, so prompt + completion reads naturally.
//
// Determinism: rows depend only on (n, seed), and the first k rows of syntheticPairs(n, seed) are
// syntheticPairs(k, seed). Prompts do not repeat within a set. syntheticSplit draws its eval rows
// from a different stream and skips every train prompt, so train and eval are disjoint.
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Rng, hashString } from './prng.js';

export interface SyntheticPair {
  prompt: string;
  chosen: string;
  rejected: string;
  score_chosen: number;
  score_rejected: number;
}

export const SYNTHETIC_TASKS = ['sort', 'reverse', 'upper', 'add', 'count'] as const;
export type SyntheticTask = (typeof SYNTHETIC_TASKS)[number];

export const MAX_SCORE = 10;
export const MAX_ERRORS = 4;
/** Score of an answer with `errors` errors: 10 - 2 * errors, at least 0. */
export const scoreForErrors = (errors: number): number => Math.max(0, MAX_SCORE - 2 * errors);

const LETTERS = 'abcdefghijklmnopqrstuvwxyz';
const COUNT_LETTERS = 'abcd';

interface Exercise { task: SyntheticTask; prompt: string; answer: string }

function makeExercise(rng: Rng, task: SyntheticTask): Exercise {
  const letters = (alphabet: string, n: number) => Array.from({ length: n }, () => rng.pick([...alphabet])).join('');
  switch (task) {
    case 'sort': {
      const ds = Array.from({ length: rng.int(4, 6) }, () => rng.int(0, 9));
      return { task, prompt: `sort: ${ds.join(' ')} =`, answer: [...ds].sort((a, b) => a - b).join(' ') };
    }
    case 'reverse': {
      const s = letters(LETTERS, rng.int(4, 8));
      return { task, prompt: `reverse: ${s} =`, answer: [...s].reverse().join('') };
    }
    case 'upper': {
      const s = letters(LETTERS, rng.int(4, 8));
      return { task, prompt: `upper: ${s} =`, answer: s.toUpperCase() };
    }
    case 'add': {
      const a = rng.int(10, 99); const b = rng.int(10, 99);
      return { task, prompt: `add: ${a}+${b} =`, answer: String(a + b) };
    }
    case 'count': {
      const s = letters(COUNT_LETTERS, rng.int(6, 10)); const c = rng.pick([...COUNT_LETTERS]);
      return { task, prompt: `count ${c}: ${s} =`, answer: String([...s].filter((x) => x === c).length) };
    }
  }
}

/** The answer with exactly k errors (k <= 4; every string answer has at least 4 characters to change). */
function corrupt(rng: Rng, ex: Exercise, k: number): string {
  if (ex.task === 'add' || ex.task === 'count') {
    const v = Number(ex.answer);
    return String(v - k >= 0 && rng.uniform() < 0.5 ? v - k : v + k);
  }
  const chars = [...ex.answer];
  // Positions that can hold an error: digits for sort (not the separating spaces), all otherwise.
  const slots = chars.flatMap((c, i) => (c === ' ' ? [] : [i]));
  rng.shuffle(slots);
  for (const i of slots.slice(0, k)) {
    const c = chars[i]!;
    if (ex.task === 'upper') { chars[i] = c.toLowerCase(); continue; }
    const alphabet = ex.task === 'sort' ? '0123456789' : LETTERS;
    let r: string;
    do r = rng.pick([...alphabet]); while (r === c);
    chars[i] = r;
  }
  return chars.join('');
}

export interface SyntheticOptions {
  /** Tasks to draw from (uniformly); default all. */
  tasks?: readonly SyntheticTask[];
  /** Prompts to skip (e.g. the train set's, for an eval set). */
  exclude?: ReadonlySet<string>;
  /** Separate stream under the same seed (default 0). */
  stream?: number;
}

/** n preference pairs from `seed` (see the top of the file). */
export function syntheticPairs(n: number, seed: number, opts: SyntheticOptions = {}): SyntheticPair[] {
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`syntheticPairs: n must be a non-negative integer (got ${n})`);
  const tasks = opts.tasks ?? SYNTHETIC_TASKS;
  if (!tasks.length || tasks.some((t) => !SYNTHETIC_TASKS.includes(t))) {
    throw new Error(`syntheticPairs: tasks must be a non-empty list of ${SYNTHETIC_TASKS.join(', ')}`);
  }
  const rng = new Rng(seed, opts.stream ?? 0);
  const seen = new Set<string>();
  const out: SyntheticPair[] = [];
  let tries = 0;
  while (out.length < n) {
    if (++tries > 100 * n + 1000) throw new Error(`syntheticPairs: could not find ${n} distinct prompts`);
    const ex = makeExercise(rng, rng.pick(tasks));
    const k = rng.int(1, MAX_ERRORS);
    const rejected = corrupt(rng, ex, k);
    if (seen.has(ex.prompt) || opts.exclude?.has(ex.prompt)) continue;
    seen.add(ex.prompt);
    out.push({ prompt: ex.prompt, chosen: ' ' + ex.answer, rejected: ' ' + rejected, score_chosen: MAX_SCORE, score_rejected: scoreForErrors(k) });
  }
  return out;
}

/** Disjoint train and eval sets from one seed (eval from its own stream, train prompts excluded). */
export function syntheticSplit(o: { train: number; eval: number; seed: number; tasks?: readonly SyntheticTask[] }): { train: SyntheticPair[]; eval: SyntheticPair[] } {
  const train = syntheticPairs(o.train, o.seed, { tasks: o.tasks });
  const evalRows = syntheticPairs(o.eval, o.seed, { tasks: o.tasks, stream: hashString('eval'), exclude: new Set(train.map((r) => r.prompt)) });
  return { train, eval: evalRows };
}

/** The task and correct answer of a synthetic prompt, or null if it is not one. */
export function solveSynthetic(prompt: string): { task: SyntheticTask; answer: string } | null {
  let m: RegExpMatchArray | null;
  if ((m = /^sort: ([0-9](?: [0-9])*) =$/.exec(prompt))) return { task: 'sort', answer: m[1]!.split(' ').sort().join(' ') };
  if ((m = /^reverse: ([a-z]+) =$/.exec(prompt))) return { task: 'reverse', answer: [...m[1]!].reverse().join('') };
  if ((m = /^upper: ([a-z]+) =$/.exec(prompt))) return { task: 'upper', answer: m[1]!.toUpperCase() };
  if ((m = /^add: ([0-9]+)\+([0-9]+) =$/.exec(prompt))) return { task: 'add', answer: String(Number(m[1]) + Number(m[2])) };
  if ((m = /^count ([a-z]): ([a-z]+) =$/.exec(prompt))) return { task: 'count', answer: String([...m[2]!].filter((x) => x === m![1]).length) };
  return null;
}

/**
 * Judge score (0..10) of a completion for a synthetic prompt: 10 - 2 * errors, where errors are
 * differing characters (plus the length difference) for sort / reverse / upper and the absolute
 * difference for add / count (a non-number: 0). The completion is trimmed (a leading space, a
 * trailing newline or "<|endoftext|>" do not count). Throws for a prompt that is not synthetic.
 */
export function judgeSynthetic(prompt: string, completion: string): number {
  const sol = solveSynthetic(prompt);
  if (!sol) throw new Error(`judgeSynthetic: not a synthetic prompt: ${JSON.stringify(prompt)}`);
  const got = completion.replace(/<\|endoftext\|>[\s\S]*$/, '').trim();
  if (sol.task === 'add' || sol.task === 'count') {
    return /^[0-9]+$/.test(got) ? scoreForErrors(Math.abs(Number(got) - Number(sol.answer))) : 0;
  }
  const a = [...sol.answer]; const b = [...got];
  let errors = Math.abs(a.length - b.length);
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) errors++;
  return scoreForErrors(errors);
}

/** The rows as JSONL text (one JSON object per line, newline-terminated). */
export function syntheticJsonl(rows: readonly SyntheticPair[]): string {
  return rows.map((r) => JSON.stringify(r) + '\n').join('');
}

/** Writes syntheticPairs(n, seed) as JSONL (atomically: temp file beside it, then rename). */
export async function writeSyntheticJsonl(file: string, n: number, seed: number, opts: SyntheticOptions = {}): Promise<SyntheticPair[]> {
  const rows = syntheticPairs(n, seed, opts);
  await writeJsonlAtomic(file, syntheticJsonl(rows));
  return rows;
}

/** Writes train.jsonl and eval.jsonl of syntheticSplit into `dir`. Returns the two paths. */
export async function writeSyntheticSplit(dir: string, o: { train: number; eval: number; seed: number; tasks?: readonly SyntheticTask[] }): Promise<{ train: string; eval: string }> {
  const s = syntheticSplit(o);
  const files = { train: path.join(dir, 'train.jsonl'), eval: path.join(dir, 'eval.jsonl') };
  await writeJsonlAtomic(files.train, syntheticJsonl(s.train));
  await writeJsonlAtomic(files.eval, syntheticJsonl(s.eval));
  return files;
}

async function writeJsonlAtomic(file: string, text: string): Promise<void> {
  await fsp.mkdir(path.dirname(path.resolve(file)), { recursive: true });
  const tmp = path.join(path.dirname(path.resolve(file)), `.${path.basename(file)}.tmp-${process.pid}-${Date.now()}`);
  try {
    await fsp.writeFile(tmp, text, { flag: 'wx' });
    await fsp.rename(tmp, file);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw e;
  }
}
