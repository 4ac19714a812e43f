// A tokenizing thread (tokenize-parallel.ts): one job, its rows' outcomes in order, then it is done.
import { parentPort } from 'node:worker_threads';
import { SrkTokenizer, textTokenizer } from '../model/tokenizer.js';
import { PairTokenizer } from './tokenize-pairs.js';
import type { RowOutcome, TokenizeJob, TokenizeReply } from './tokenize-parallel.js';

/** Rows between progress messages. */
const PROGRESS_EVERY = 256;

const port = parentPort!;
port.once('message', (job: TokenizeJob) => {
  const t = new PairTokenizer(textTokenizer(SrkTokenizer.fromSpec(job.spec)), job.opts);
  const outcomes: RowOutcome[] = [];
  let since = 0;
  for (const row of job.rows) {
    // As loadTokenizedPairs on one thread: any error of a row is that row's (its message kept).
    try { outcomes.push(t.pair(row)); } catch (e) { outcomes.push({ error: e instanceof Error ? e.message : String(e) }); }
    if (++since === PROGRESS_EVERY) { port.postMessage({ progress: since } satisfies TokenizeReply); since = 0; }
  }
  if (since) port.postMessage({ progress: since } satisfies TokenizeReply);
  port.postMessage({ outcomes, stats: t.stats } satisfies TokenizeReply);
});
