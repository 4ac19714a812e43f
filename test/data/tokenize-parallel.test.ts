// Tokenizing on worker threads (src/data/tokenize-parallel.ts, tokenize-worker.ts) gives what one
// thread gives: the same pairs in the same order, the same counts, the same bad rows named by the same
// lines, skipped or not. The worker module runs compiled, so this test loads the build (dist/, made by
// `npm test`'s pretest) where the TypeScript sources have no worker beside them.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { sharedFile } from '../model/paths.js';

const root = path.resolve(import.meta.dirname, '../..');
const dist = (p: string) => path.join(root, 'dist/src', p);
type TokenizePairsModule = typeof import('../../src/data/tokenize-pairs.js');
type TokenizerModule = typeof import('../../src/model/tokenizer.js');
type ParallelModule = typeof import('../../src/data/tokenize-parallel.js');
const built = existsSync(dist('data/tokenize-worker.js'));
const load = async () => ({
  pairs: await import(dist('data/tokenize-pairs.js')) as TokenizePairsModule,
  tokenizer: await import(dist('model/tokenizer.js')) as TokenizerModule,
  parallel: await import(dist('data/tokenize-parallel.js')) as ParallelModule,
});

const PYTHIA = sharedFile('data/pythia-20b-tokenizer.json');
const MISTRAL = sharedFile('data/mistral_v0.1_tokenizer.model');
const HH = sharedFile('data/hh-rlhf_helpful-base_test.jsonl.gz');
const REFINE = 'Please generate a response with a usefulness rating of 100 out of 100 for the following query. Query:';

describe('tokenizing on worker threads', () => {
  const tmp = mkdtempSync(path.join(tmpdir(), 'srk-tokpar-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const saved = process.env.SRK_TOKENIZE_THREADS;
  afterEach(() => { if (saved === undefined) delete process.env.SRK_TOKENIZE_THREADS; else process.env.SRK_TOKENIZE_THREADS = saved; });

  /** `n` HH rows with two rows whose chosen response is empty (with --no-eos, no tokens: a bad row), at
   *  line 5 and line n - 97 (in the last thread's chunk). */
  const dataFile = (n: number): string => {
    const lines = gunzipSync(readFileSync(HH!)).toString('utf8').split('\n').filter(Boolean).slice(0, n);
    const bad = JSON.stringify({ prompt: 'Q: hi', chosen: '', rejected: ' no' });
    lines.splice(4, 0, bad);
    lines.splice(n - 98, 0, bad);
    const f = path.join(tmp, 'pairs.jsonl');
    writeFileSync(f, lines.join('\n') + '\n');
    return f;
  };

  async function both(tokPath: string, opts: Record<string, unknown>, n = 700) {
    const m = await load();
    const tok = m.tokenizer.textTokenizer(await m.tokenizer.loadTokenizer(tokPath));
    const file = dataFile(n);
    const run = async (threads: string) => {
      process.env.SRK_TOKENIZE_THREADS = threads;
      const progress: number[] = [];
      try {
        const r = await m.pairs.loadTokenizedPairs(file, tok, { ...opts, onProgress: (done) => progress.push(done) });
        return { value: { pairs: r.pairs, rows: r.rows, read: r.read, tokenize: r.tokenize, report: r.report }, progress };
      } catch (e) {
        return { error: (e as Error).message, progress };
      }
    };
    process.env.SRK_TOKENIZE_THREADS = '3';
    expect(m.parallel.tokenizeThreads(700), 'the build\'s worker is found and 3 threads are taken').toBe(3);
    return { one: await run('1'), three: await run('3') };
  }

  it.skipIf(!built || !PYTHIA || !HH)('Pythia (tokenizer.json), refine prompt, bad rows skipped: pairs, rows, counts and report as on one thread', async () => {
    const { one, three } = await both(PYTHIA!, { noEos: true, refinePrompt: REFINE, maxLength: 256, maxPromptLength: 128, skipBadRows: true });
    expect(one.value).toBeDefined();
    expect(one.value!.pairs).toHaveLength(700);
    expect(one.value!.read.badRows).toBe(2);
    expect(one.value!.tokenize.truncated).toBeGreaterThan(0);
    expect(three.value).toEqual(one.value);
    // Progress counts rise to the total on both paths.
    for (const p of [one.progress, three.progress]) {
      expect(p.at(-1)).toBe(702);
      expect(p.every((d, i) => i === 0 || d > p[i - 1])).toBe(true);
    }
  });

  it.skipIf(!built || !PYTHIA || !HH)('a bad row not skipped: the same error, naming the first bad line', async () => {
    const { one, three } = await both(PYTHIA!, { noEos: true });
    expect(one.error).toMatch(/pairs\.jsonl:5\b/);
    expect(three.error).toBe(one.error);
  });

  it.skipIf(!built || !MISTRAL || !HH)('Mistral (SentencePiece tokenizer.model), completions in context, EOS: as on one thread', async () => {
    const dir = path.join(tmp, 'sp');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir);
    copyFileSync(MISTRAL!, path.join(dir, 'tokenizer.model'));
    // With EOS the empty responses are [EOS]: every row tokenizes.
    const { one, three } = await both(dir, { refinePrompt: REFINE, inContext: true }, 250);
    expect(one.value!.pairs).toHaveLength(252);
    expect(one.value!.pairs[0].chosenIds.at(-1)).toBe(2); // </s>
    expect(three.value).toEqual(one.value);
  });

  it.skipIf(!built)('SRK_TOKENIZE_THREADS must be a positive whole number', async () => {
    const m = await load();
    for (const bad of ['0', '-2', '1.5', 'many']) {
      process.env.SRK_TOKENIZE_THREADS = bad;
      expect(() => m.parallel.tokenizeThreads(10_000)).toThrow(/SRK_TOKENIZE_THREADS=.*positive whole number/);
    }
    process.env.SRK_TOKENIZE_THREADS = '4';
    expect(m.parallel.tokenizeThreads(3)).toBe(3); // at most one a row
  });
});
