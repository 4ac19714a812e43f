// Reference log-probs, computed once before training and cached on disk.
//
// The cache key hashes everything the numbers depend on: the reference weights (the bytes of its
// safetensors files), the tokenized pairs (which already reflect the data, the tokenizer, the
// truncation settings, EOS handling and the refine prompt) and those settings by name (the plain
// log-probs' key leaves the refine prompt and the augmented prompts out). A run that changes any of
// them recomputes; a resumed run reuses the file, and so does any run given the same
// --cache-dir. A pass stopped part way leaves what it has scored in ref-logps-KEY.partial.json, which
// the next request for the same log-probs takes up (savePartialReference); so does a pass of the pairs a
// run trains on, where that is not all of them (`needed`: --max-steps inside the first epoch).
import { isUserFacing } from '../errors.js';
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync, readdirSync, mkdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Gpu } from '../engine/gpu.js';
import { sameCompletions, type TokenizedPair } from '../data/tokenize-pairs.js';
import { bytesProgress } from './progress.js';
import { loadModel } from '../model/load.js';
import { writeFileAtomic } from '../report/metrics-log.js';
import { emptyLogps, scorePairs, type PairLogps } from './score.js';

export interface ReferenceLogps { plain: PairLogps; aug?: PairLogps }

async function hashFile(h: ReturnType<typeof createHash>, file: string, onBytes: (n: number) => void): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    createReadStream(file).on('data', (c) => { h.update(c); onBytes(c.length); }).on('end', () => resolve()).on('error', reject);
  });
}

/** Hashes already computed in this process, by directory and its files' sizes and times (train and eval
 *  data both key their caches by the same reference: a 7B model's 14 GB is read once). */
const hashed = new Map<string, string>();

/** sha256 of the safetensors files and config.json of `dir`; `onProgress` gets the bytes read of the total. */
export async function weightsHash(dir: string, onProgress?: (done: number, total: number) => void): Promise<string> {
  const files = readdirSync(dir).filter((f) => f.endsWith('.safetensors') || f === 'config.json').sort();
  const stats = files.map((f) => statSync(path.join(dir, f)));
  const memo = JSON.stringify([path.resolve(dir), files, stats.map((st) => [st.size, st.mtimeMs])]);
  const known = hashed.get(memo);
  if (known) return known;
  const total = stats.reduce((n, st) => n + st.size, 0);
  let done = 0;
  const h = createHash('sha256');
  for (const f of files) {
    h.update(f);
    await hashFile(h, path.join(dir, f), (n) => { done += n; onProgress?.(done, total); });
  }
  const hex = h.digest('hex');
  hashed.set(memo, hex);
  return hex;
}

/** pairsHash's and plainPairsHash's results by the pairs array (the trainer's resume check and the reference cache's keys hash the same ones). */
const pairsHashes = new WeakMap<readonly TokenizedPair[], string>();
const plainPairsHashes = new WeakMap<readonly TokenizedPair[], string>();

export function pairsHash(pairs: readonly TokenizedPair[]): string {
  let hex = pairsHashes.get(pairs);
  if (hex === undefined) pairsHashes.set(pairs, (hex = hashIds(pairs, true)));
  return hex;
}

/** sha256 of the pairs' plain sequences alone (held-out pairs, whose augmented ones an SFT run's --refine-prompt may change). */
export function plainPairsHash(pairs: readonly TokenizedPair[]): string {
  let hex = plainPairsHashes.get(pairs);
  if (hex === undefined) plainPairsHashes.set(pairs, (hex = hashIds(pairs, false)));
  return hex;
}

function hashIds(pairs: readonly TokenizedPair[], augmented: boolean): string {
  const h = createHash('sha256');
  for (const p of pairs) h.update(JSON.stringify(augmented ? [p.promptIds, p.chosenIds, p.rejectedIds, p.augPromptIds ?? null] : [p.promptIds, p.chosenIds, p.rejectedIds]));
  return h.digest('hex');
}

export interface ReferenceRequest {
  refDir: string; pairs: readonly TokenizedPair[]; augmented: boolean; microBatch: number;
  cacheDir: string; settings: Record<string, unknown>; label: string;
  /** Matmul operand precision of the augmented pass (precision.ts setAugPrecision); default gpu.matmulPrecision. */
  augMatmulPrecision?: 'f32' | 'f16';
  log: (s: string) => void; progress: (label: string, done: number, total: number) => void;
  /** Where a pass starts (Progress.start), so its first report counts the time since. */
  progressStart?: (label: string, done: number) => void;
  /** Milliseconds between partial saves of the pass under way (default PARTIAL_EVERY_MS; 0: after every readback). */
  partialEveryMs?: number;
  /**
   * The pairs to score (1 each) where a run trains on only some (shuffle.ts pairsUsed: --max-steps inside the
   * first epoch); default all. The others' log-probs come back NaN, and what was scored stays in the partial
   * file, which a run that needs more of the pairs takes up.
   */
  needed?: Uint8Array;
}

/**
 * A long reference pass (every training pair scored twice, plain and augmented, before the first step) saves what it has
 * every this often, in `<cache file>.partial.json`, so a run killed or stopped during it (a scheduler's
 * SIGTERM) takes it up where it was, whatever command asks for the same log-probs next.
 */
const PARTIAL_EVERY_MS = 30_000;

/** One pass's results so far: the log-probs of the pairs marked in `done`. */
interface PassSoFar { logps: PairLogps; done: Uint8Array }
interface Partial { plain?: PassSoFar; aug?: PassSoFar }

/** Saves the pass under way now (savePartialReference); undefined while none runs. */
let saveNow: (() => string | undefined) | undefined;

/**
 * Writes the results so far of the reference pass under way, for a process about to exit on a signal
 * (srk train before its first step, srk eval); returns what to tell the user, or '' when no pass has
 * results to save.
 */
export function savePartialReference(): string {
  try {
    const file = saveNow?.();
    return file ? `the reference log-probs scored so far are in ${file}, and the same command takes them up` : '';
  } catch (e) {
    return `the reference log-probs scored so far could not be saved (${e instanceof Error ? e.message : String(e)})`;
  }
}

function readPartial(file: string, n: number): Partial | undefined {
  try {
    const j = JSON.parse(readFileSync(file, 'utf8'));
    if (j.n !== n) return undefined;
    const pass = (x: { logps: ReturnType<typeof toArrays>; done: number[] } | null): PassSoFar | undefined => {
      if (!x || x.done.length !== n || Object.values(x.logps).some((a) => a.length !== n)) return undefined;
      return { logps: fromArrays(x.logps, n, x.done), done: Uint8Array.from(x.done) };
    };
    return { plain: pass(j.plain), aug: pass(j.aug) };
  } catch {
    return undefined; // none, or damaged: the pass starts over
  }
}

const count = (done: Uint8Array): number => done.reduce((a, b) => a + b, 0);

/** Whether every pair marked in `needed` is marked in `done`. */
const covers = (done: Uint8Array | undefined, needed: Uint8Array): boolean => done !== undefined && needed.every((x, i) => !x || done[i] === 1);

/** `into` with the pairs `from` has scored and it has not (another pass's results: a partial file). */
function mergePass(into: PassSoFar | undefined, from: PassSoFar | undefined): PassSoFar | undefined {
  if (!from) return into;
  if (!into) return from;
  from.done.forEach((d, i) => {
    if (!d || into.done[i]) return;
    into.logps.chosen[i] = from.logps.chosen[i]; into.logps.rejected[i] = from.logps.rejected[i];
    into.logps.chosenTokens[i] = from.logps.chosenTokens[i]; into.logps.rejectedTokens[i] = from.logps.rejectedTokens[i];
    into.done[i] = 1;
  });
  return into;
}

/** The pairs not in `done` read NaN (a partial file's unscored pairs hold 0): a step that took one would fail, not train on 0. */
function unscoredNaN(x: PassSoFar): PairLogps {
  x.done.forEach((d, i) => { if (!d) { x.logps.chosen[i] = NaN; x.logps.rejected[i] = NaN; } });
  return x.logps;
}

const toArrays = (p: PairLogps) => ({
  chosen: [...p.chosen], rejected: [...p.rejected], chosenTokens: [...p.chosenTokens], rejectedTokens: [...p.rejectedTokens],
});
/**
 * A cache file's arrays as log-probs, each pair's (those marked in `done`, of a partial file) checked:
 * finite log-probs and whole token counts. A damaged or hand-edited file throws (it is then scored
 * again): Float64Array.from would take a null as 0, a log-prob of 0 for the pair.
 */
const fromArrays = (a: ReturnType<typeof toArrays>, n: number, done?: ArrayLike<number>): PairLogps => {
  if (Object.values(a).some((x) => !Array.isArray(x) || x.length !== n)) throw new Error(`not ${n} pairs`);
  for (let i = 0; i < n; i++) {
    if (done && !done[i]) continue;
    const ok = [a.chosen[i], a.rejected[i]].every((v) => typeof v === 'number' && Number.isFinite(v)) &&
      [a.chosenTokens[i], a.rejectedTokens[i]].every((v) => Number.isSafeInteger(v) && v >= 0);
    if (!ok) throw new Error(`pair ${i}: not a scored pair`);
  }
  return {
    chosen: Float64Array.from(a.chosen), rejected: Float64Array.from(a.rejected),
    chosenTokens: Int32Array.from(a.chosenTokens), rejectedTokens: Int32Array.from(a.rejectedTokens),
  };
};

/** The cache files in `dir` of `key`, whatever run (label) wrote them. */
function cachedFiles(dir: string, key: string): string[] {
  return readdirSync(dir).filter((name) => name.startsWith('ref-logps-') && name.endsWith(`-${key}.json`)).sort().map((f) => path.join(dir, f));
}

/** The first readable cache file of `key` with `n` pairs, and its log-probs. */
function findCached(dir: string, key: string, n: number): { file: string; logps: ReferenceLogps } | undefined {
  for (const file of cachedFiles(dir, key)) {
    const logps = readCached(file, n);
    if (logps) return { file, logps };
  }
  return undefined;
}

/** A cache file's log-probs, if it holds `n` pairs (a damaged or foreign file is recomputed). */
function readCached(file: string, n: number): ReferenceLogps | undefined {
  try {
    const j = JSON.parse(readFileSync(file, 'utf8'));
    if (j.n === n) return { plain: fromArrays(j.plain, n), aug: j.aug ? fromArrays(j.aug, n) : undefined };
  } catch { /* recomputed */ }
  return undefined;
}

/**
 * Loads the reference, scores the pairs (plain and, if asked, augmented), frees the reference. The
 * cache is keyed by content alone, so runs that share a directory (srk train --cache-dir: DPO and Sr-DPO,
 * or a sweep over lambda) share the numbers: a plain request takes the plain half of an augmented
 * file, and an augmented request with only the plain file scores the augmented pass alone.
 */
export async function referenceLogps(gpu: Gpu, r: ReferenceRequest): Promise<ReferenceLogps> {
  const got = await scoredOrCached(gpu, r);
  // Pairs of the same tokens twice: one sum for both, as scorePairs gives them now, also where a cache or a
  // partial pass written before it holds two (whose rounding apart made a tie a counted pair).
  for (const pass of [got.plain, got.aug]) {
    if (!pass) continue;
    r.pairs.forEach((p, k) => { if (sameCompletions(p)) pass.rejected[k] = pass.chosen[k]; });
  }
  return got;
}

async function scoredOrCached(gpu: Gpu, r: ReferenceRequest): Promise<ReferenceLogps> {
  const weights = await weightsHash(r.refDir, bytesProgress(r.progress, `hash reference ${r.refDir}`));
  // The plain log-probs do not depend on the refinement prompt: their key leaves it (and the augmented
  // prompts) out, so DPO runs of a sweep whose Sr runs set --refine-prompt share them.
  const { refinePrompt: _refine, ...plainSettings } = r.settings;
  const keyOf = (augmented: boolean, augMatmulPrecision: 'f32' | 'f16' | undefined) => createHash('sha256').update(JSON.stringify({
    weights, pairs: augmented ? pairsHash(r.pairs) : plainPairsHash(r.pairs), augmented, settings: augmented ? r.settings : plainSettings,
    matmulPrecision: gpu.matmulPrecision,
    // Only where it differs, so the caches of runs without it keep their keys.
    ...(augmented && augMatmulPrecision && augMatmulPrecision !== gpu.matmulPrecision ? { augMatmulPrecision } : {}),
  })).digest('hex').slice(0, 24);
  const key = keyOf(r.augmented, r.augMatmulPrecision);
  mkdirSync(r.cacheDir, { recursive: true });
  const file = path.join(r.cacheDir, `ref-logps-${r.label}-${key}.json`);
  // This request's own file, or (plain) an augmented one of either augmented precision.
  const usable = [key, ...(r.augmented ? [] : [keyOf(true, 'f32'), keyOf(true, 'f16')])];
  for (const k of usable) {
    const got = findCached(r.cacheDir, k, r.pairs.length);
    if (got) {
      r.log(`reference log-probs (${r.label}): cached in ${got.file}`);
      return r.augmented ? got.logps : { plain: got.logps.plain };
    }
  }
  const n = r.pairs.length;
  const partialOf = (k: string) => path.join(r.cacheDir, `ref-logps-${k}.partial.json`);
  // A run that trains on only some of the pairs scores those (and finds them where an earlier pass scored them).
  const needed = r.needed && count(r.needed) < n ? r.needed : undefined;
  const wanted = needed ? count(needed) : n;
  if (wanted === 0) {
    r.log(`reference log-probs (${r.label}): none to score (no steps left to train)`);
    const none = () => unscoredNaN({ logps: emptyLogps(n), done: new Uint8Array(n) });
    return { plain: none(), aug: r.augmented ? none() : undefined };
  }
  const plainOnly = r.augmented ? findCached(r.cacheDir, keyOf(false, undefined), n) : undefined;
  const cachedPlain = plainOnly?.logps.plain;
  const plainFile = plainOnly?.file;
  // Earlier passes of these log-probs that stopped (interrupted, or a run that trained on only some pairs):
  // their results so far. Named by the key alone: whatever command asked for these log-probs first, the
  // next takes them up. The plain half is the same under every key of these pairs (a DPO run's partial
  // pass, an Sr run's): taken from each.
  const partialFile = partialOf(key);
  const sofar: Partial = readPartial(partialFile, n) ?? {};
  const takenUp = sofar.plain || sofar.aug ? [partialFile] : [];
  if (cachedPlain) sofar.plain = { logps: cachedPlain, done: new Uint8Array(n).fill(1) };
  else {
    for (const k of [keyOf(false, undefined), keyOf(true, 'f32'), keyOf(true, 'f16')].filter((k) => k !== key)) {
      const other = readPartial(partialOf(k), n)?.plain;
      if (other && count(other.done) > 0) { sofar.plain = mergePass(sofar.plain, other); takenUp.push(partialOf(k)); }
    }
  }
  if (takenUp.length) {
    r.log(`reference log-probs (${r.label}): taking up ${takenUp.join(', ')}: ${sofar.plain ? count(sofar.plain.done) : 0} of ${n} pairs` +
      `${r.augmented ? `, ${sofar.aug ? count(sofar.aug.done) : 0} augmented` : ''} scored before`);
  }
  if (needed && covers(sofar.plain?.done, needed) && (!r.augmented || covers(sofar.aug?.done, needed))) {
    r.log(`reference log-probs (${r.label}): the ${wanted} of ${n} pairs this run's steps train on cached in ${takenUp.join(', ')}`);
    return { plain: unscoredNaN(sofar.plain!), aug: r.augmented ? unscoredNaN(sofar.aug!) : undefined };
  }
  const every = r.partialEveryMs ?? PARTIAL_EVERY_MS;
  let saved = performance.now();
  let warned = false;
  const warnUncached = (e: unknown) => {
    if (!isUserFacing(e)) throw e; // (a bug, not the file system)
    if (warned) return;
    warned = true;
    r.log(`warning: ${(e as Error).message}: the reference log-probs are not cached (the run goes on; a later one scores them again)`);
  };
  const save = (): string | undefined => {
    // A run beside this one (a sweep sharing --cache-dir) may have saved pairs of its own there meanwhile: kept.
    const disk = readPartial(partialFile, n);
    sofar.plain = mergePass(sofar.plain, disk?.plain);
    sofar.aug = mergePass(sofar.aug, disk?.aug);
    if (!sofar.plain && !sofar.aug) return undefined;
    const pass = (x?: PassSoFar) => (x ? { logps: toArrays(x.logps), done: [...x.done] } : null);
    saved = performance.now();
    // The cache is for later runs: one that cannot be written (a full disk) is said, and the pass goes on.
    try { writeFileAtomic(partialFile, JSON.stringify({ n, plain: pass(sofar.plain), aug: pass(sofar.aug) }), 'the reference pass so far'); }
    catch (e) { warnUncached(e); return undefined; }
    return partialFile;
  };
  const onResults = (stage: 'plain' | 'aug') => (logps: PairLogps, done: Uint8Array) => {
    sofar[stage] = { logps, done };
    if (performance.now() - saved >= every && count(done) < n) save();
  };
  const t0 = performance.now();
  saveNow = save;
  const ref = await loadModel(gpu, r.refDir, { onProgress: bytesProgress(r.progress, `load reference ${r.refDir}`) });
  try {
    await scorePairs(gpu, ref.model, r.pairs, {
      microBatch: r.microBatch, onProgress: (d, t) => r.progress(`reference ${r.label}`, d, t), onStart: (d) => r.progressStart?.(`reference ${r.label}`, d),
      resume: sofar.plain, onResults: onResults('plain'), only: needed,
    });
    if (r.augmented) await scorePairs(gpu, ref.model, r.pairs, {
      microBatch: r.microBatch, augmented: true, matmulPrecision: r.augMatmulPrecision, onProgress: (d, t) => r.progress(`reference ${r.label} (augmented)`, d, t),
      onStart: (d) => r.progressStart?.(`reference ${r.label} (augmented)`, d),
      resume: sofar.aug, onResults: onResults('aug'), only: needed,
    });
    const whole = () => count(sofar.plain!.done) === n && (!r.augmented || count(sofar.aug!.done) === n);
    // Some pairs not scored (this run does not train on them): kept as a partial pass, for a run that needs
    // more, with what runs beside it saved there meanwhile (which may complete it).
    const kept = whole() ? undefined : save();
    if (!whole()) {
      r.log(`reference log-probs (${r.label}): the ${wanted} of ${n} pairs this run's steps train on in ` +
        `${((performance.now() - t0) / 1000).toFixed(1)} s` +
        (kept ? `, cached in ${kept}; a run that trains on more of them scores those there` : ' (not cached)'));
      return { plain: unscoredNaN(sofar.plain!), aug: r.augmented ? unscoredNaN(sofar.aug!) : undefined };
    }
    try { writeFileAtomic(file, JSON.stringify({ n, plain: toArrays(sofar.plain!.logps), aug: r.augmented ? toArrays(sofar.aug!.logps) : null }), 'the reference log-probs'); }
    catch (e) {
      warnUncached(e);
      return { plain: sofar.plain!.logps, aug: r.augmented ? sofar.aug!.logps : undefined };
    }
    rmSync(partialFile, { force: true });
    // A plain request takes the plain half of this file: a partial plain pass of these pairs has nothing more.
    if (r.augmented) rmSync(partialOf(keyOf(false, undefined)), { force: true });
    r.log(`reference log-probs (${r.label}): ${n} pairs in ${((performance.now() - t0) / 1000).toFixed(1)} s` +
      `${cachedPlain ? ` (the plain ones from ${plainFile}; the augmented pass alone scored)` : ''}, cached in ${file}`);
    return { plain: sofar.plain!.logps, aug: r.augmented ? sofar.aug!.logps : undefined };
  } finally {
    saveNow = undefined;
    ref.model.destroy(); ref.params.free();
    gpu.pool.trim(); // the reference leaves GPU memory
  }
}
