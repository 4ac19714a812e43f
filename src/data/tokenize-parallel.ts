// Tokenizing a large data set on worker threads.
//
// Tokenizing is the library's BPE in JavaScript: about 1000 HH-RLHF rows a second on one core of this
// project's 2-core machine, so HH-RLHF's 160k training rows would keep a run (and every resume of it)
// from its first step for minutes while a GPU machine's other cores idle. The rows are cut into one
// contiguous chunk per thread; each worker builds the same tokenizer from its spec (model/tokenizer.ts
// TokenizerSpec) and the same PairTokenizer, and returns each row's pair or the message of its error.
// The caller takes them in row order, so pairs, counts and the first bad row are what one thread gives
// (PairTokenizer keeps nothing between rows but a cache of the last prompt tail's ids, which only saves
// time). tokenize-worker.ts is the other side.
import { Worker } from 'node:worker_threads';
import { existsSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import type { TokenizerSpec } from '../model/tokenizer.js';
import type { PreferenceRow } from './preference-rows.js';
import type { TokenizedPair, TokenizeOptions, TokenizeStats } from './tokenize-pairs.js';
import { envCount } from '../engine/env.js';

/** Rows each thread gets at least: below that a worker's start (building the tokenizer) costs more than it saves. */
export const MIN_ROWS_PER_THREAD = 2000;
/** Threads at most: each holds a tokenizer (tens of MB for a 50k vocabulary). */
const MAX_THREADS = 8;

/** The worker's module, beside this one once compiled (tests run the TypeScript sources, where it is absent). */
export const TOKENIZE_WORKER = new URL('./tokenize-worker.js', import.meta.url);

/** A row's outcome: its pair, or its error's message. */
export type RowOutcome = TokenizedPair | { error: string };

/** What a worker receives. */
export interface TokenizeJob { spec: TokenizerSpec; opts: TokenizeOptions; rows: PreferenceRow[] }
/** What a worker sends: progress (rows done since the last message), then its outcomes and counts. */
export type TokenizeReply = { progress: number } | { outcomes: RowOutcome[]; stats: TokenizeStats };

/**
 * Threads to tokenize `rows` rows with: SRK_TOKENIZE_THREADS when set (1: this thread; at most one a
 * row), else the cores (at most MAX_THREADS) but no more than give each MIN_ROWS_PER_THREAD rows; 1
 * where the worker module is absent (the TypeScript sources under vitest).
 */
export function tokenizeThreads(rows: number, worker: URL = TOKENIZE_WORKER): number {
  const env = envCount('SRK_TOKENIZE_THREADS');
  if (!existsSync(fileURLToPath(worker))) return 1;
  if (env !== undefined) return Math.max(1, Math.min(env, rows));
  return Math.max(1, Math.min(os.availableParallelism(), MAX_THREADS, Math.floor(rows / MIN_ROWS_PER_THREAD)));
}

/**
 * Every row's outcome, in order, and each thread's counts (to add up). `opts` must be plain data (no
 * callbacks); `onDone` gets the rows done so far.
 */
export async function tokenizeOnThreads(rows: readonly PreferenceRow[], spec: TokenizerSpec, opts: TokenizeOptions, threads: number,
  onDone?: (done: number) => void, worker: URL = TOKENIZE_WORKER): Promise<{ outcomes: RowOutcome[]; stats: TokenizeStats[] }> {
  const per = Math.ceil(rows.length / threads);
  const chunks = Array.from({ length: threads }, (_, i) => rows.slice(i * per, (i + 1) * per)).filter((c) => c.length > 0);
  let done = 0;
  const workers: Worker[] = [];
  try {
    const results = await Promise.all(chunks.map((chunk) => new Promise<{ outcomes: RowOutcome[]; stats: TokenizeStats }>((resolve, reject) => {
      const w = new Worker(worker);
      workers.push(w);
      w.on('message', (m: TokenizeReply) => {
        if ('progress' in m) { done += m.progress; onDone?.(done); } else resolve(m);
      });
      w.on('error', reject);
      w.on('exit', (code) => reject(new Error(`tokenizer worker exited (code ${code}) before it finished`)));
      w.postMessage({ spec, opts, rows: chunk } satisfies TokenizeJob);
    })));
    return { outcomes: results.flatMap((r) => r.outcomes), stats: results.map((r) => r.stats) };
  } finally {
    // Resolved workers are done; on an error the others stop too.
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
