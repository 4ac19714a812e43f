// Online choice between equivalent kernels, timed on the real dispatches of the first steps.
//
// Some operations have several kernels that compute the same thing (the matmul's tilings): which is
// fastest depends on the adapter and the shape, and a fixed rule measured on one GPU is a guess on
// the next (bench/RESULTS.md: at one shape the best H100 tiling is twice as fast as the worst; at
// another the order flips). So, per problem key (operation + bucketed shape), the first steps
// dispatch the candidates in turn, each in a compute pass of its own with GPU timestamps; after each
// step `settle()` reads the times, and a key whose candidates all have enough samples keeps the one
// with the lowest median from then on. Nothing extra runs: every timed dispatch is a real one whose
// result the step uses (all candidates are exact alternatives), so tuning costs only the split
// passes of those steps and the candidates' pipeline compiles.
//
// Off on CPU adapters (lavapipe: one tiling is best, and compiles are slow) and without
// timestamp queries; SRK_TUNE=0 turns it off anywhere, SRK_TUNE=1 on anywhere (tests). A tuned run
// is deterministic within its process; two processes may choose differently when two candidates
// are within noise of each other (their results can differ in the last bits of f32 sums).
import './webgpu.js';
import type { Kernel, KernelCache, KernelCheck, KernelDef } from './kernel.js';
import { Profiler } from './profiler.js';
import { envSwitch } from './env.js';

/** One key's outcome, for reports (bench step --json). */
export interface TuneDecision {
  key: string;
  /** Candidate labels, the default first. */
  candidates: string[];
  /** Median GPU time per candidate in ms (null: not measured). */
  medianMs: (number | null)[];
  /** Index into candidates. */
  chosen: number;
}

interface Entry {
  key: string; labels: string[]; samples: number[][]; issued: number[]; next: number; steps: number; chosen?: number;
  /** Candidates that cannot run on this adapter (withdraw()): never picked, never chosen. */
  failed: boolean[];
  /** Steps in which a candidate was withdrawn while its kernels compiled (see withdraw()). */
  waits: number; waiting: boolean;
  /** Turns each candidate was offered (timed picks, whether it ran, was withdrawn, or its time got lost). */
  turns: number[];
  /** Median times of a decision loaded from an earlier run (load()), for reports. */
  loadedMs?: (number | null)[];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * An entry is a key with one candidate list: a caller's list can change inside one key's shape
 * bucket (the rule's tiling, or split-K, depends on exact sizes), and an earlier run's list can
 * differ from this version's; either way it is another choice, tuned on its own.
 */
function entryId(key: string, labels: readonly string[]): string {
  return `${key}\u0002${labels.join('\u0003')}`;
}

/**
 * The decision logic, without the GPU (unit-tested on its own): candidates in turn while a key is
 * open; a key closes when every candidate has `minSamples` times, or when `maxSteps` steps have
 * settled since it was first seen and every candidate has had a turn (at most 3 maxSteps; then
 * among the measured ones; the default, candidate 0, is always measured first). A key first seen
 * late (a longer micro-batch) is tuned in its own first steps.
 */
export class TuneTable {
  private entries = new Map<string, Entry>();
  /** Steps settled so far. */
  steps = 0;

  constructor(readonly maxSteps = 2, readonly minSamples = 3) {}

  /**
   * Candidate index for this dispatch of `key` among `labels` (the default first), whether it is
   * timed (key still open), and the entry's id for add().
   */
  pick(key: string, labels: string[]): { index: number; timed: boolean; id: string } {
    const id = entryId(key, labels);
    let e = this.entries.get(id);
    if (!e) {
      e = newEntry(key, labels);
      if (labels.length < 2) e.chosen = 0; // nothing to choose between
      this.entries.set(id, e);
    }
    if (e.chosen !== undefined) return { index: e.chosen, timed: false, id };
    // Enough timed dispatches issued for this step: the default, untimed, until settled (so a long
    // pass between two steps, such as the reference log-probs, times only its first dispatches).
    const measured = (i: number) => e.failed[i] || e.issued[i] >= this.minSamples;
    if (e.issued.every((_, i) => measured(i))) return { index: 0, timed: false, id };
    while (measured(e.next)) e.next = (e.next + 1) % labels.length;
    const index = e.next;
    e.issued[index]++;
    e.turns[index]++;
    e.next = (e.next + 1) % labels.length;
    return { index, timed: true, id };
  }

  /**
   * Takes an earlier run's decisions (decisions() of that run, e.g. from a run directory's
   * tuning.json) as made, so a resumed run dispatches the same kernels; keys not among them, or
   * asked for with other candidates, are tuned as usual.
   */
  load(decisions: readonly TuneDecision[]): void {
    for (const d of decisions) {
      if (!Number.isInteger(d.chosen) || d.chosen < 0 || d.chosen >= d.candidates.length) continue;
      this.entries.set(entryId(d.key, d.candidates), { ...newEntry(d.key, d.candidates), chosen: d.chosen, loadedMs: d.medianMs });
    }
  }

  /** The chosen candidate of a closed key, else undefined (no side effects: dry runs, reports). */
  chosen(key: string, labels: readonly string[]): number | undefined { return this.entries.get(entryId(key, labels))?.chosen; }

  /** Adds one measured time (ms) of candidate `index` of entry `id` (from pick()). */
  add(id: string, index: number, ms: number): void {
    const e = this.entries.get(id);
    if (!e || e.chosen !== undefined || !(index >= 0 && index < e.samples.length)) return;
    e.samples[index].push(ms);
  }

  /**
   * Takes back a timed pick of candidate `index` (not 0, the default, which always runs) that
   * could not run: its kernels are still compiling (`failed` false: the caller ran the default
   * instead, untimed, and a step spent waiting does not count towards maxSteps, up to two such
   * steps), or the adapter refused them (`failed` true: never picked again).
   */
  withdraw(id: string, index: number, failed: boolean): void {
    const e = this.entries.get(id);
    if (!e || e.chosen !== undefined || !(index > 0 && index < e.labels.length)) return;
    if (failed) e.failed[index] = true;
    else e.waiting = true;
    if (e.issued[index] > 0) e.issued[index]--;
  }

  /** Ends a step: closes the keys that are measured enough (or all, after maxSteps). */
  endStep(): void {
    this.steps++;
    for (const e of this.entries.values()) {
      if (e.chosen !== undefined) continue;
      e.issued = e.samples.map((s) => s.length); // times that never came back are issued again
      if (e.waiting && e.waits < 2) e.waits++;
      else e.steps++;
      e.waiting = false;
      const done = e.samples.every((s, i) => e.failed[i] || s.length >= this.minSamples);
      // A key with fewer calls a step than candidates (the output layer's chunks) stays open past
      // maxSteps until every candidate has had a turn, for at most 3 maxSteps.
      const untried = e.turns.some((n, i) => n === 0 && !e.failed[i]);
      if (!done && (e.steps < this.maxSteps || (untried && e.steps < 3 * this.maxSteps))) continue;
      if (e.samples[0].length === 0) { e.chosen = 0; continue; }
      let best = 0;
      e.samples.forEach((s, i) => { if (!e.failed[i] && s.length && median(s) < median(e.samples[best])) best = i; });
      e.chosen = best;
    }
  }

  /**
   * A count that grows when an entry (a key with its candidate list) is first seen or closes: a step
   * that changes it may lead the next step to new keys (a choice can open others).
   */
  get progress(): number {
    let closed = 0;
    for (const e of this.entries.values()) if (e.chosen !== undefined) closed++;
    return this.entries.size + closed;
  }

  /** True while some key is still being measured. */
  get open(): boolean {
    for (const e of this.entries.values()) if (e.chosen === undefined) return true;
    return false;
  }

  decisions(): TuneDecision[] {
    return [...this.entries.values()].filter((e) => e.labels.length > 1 && e.chosen !== undefined).map((e) => ({
      key: e.key, candidates: e.labels, chosen: e.chosen!,
      medianMs: e.loadedMs ?? e.samples.map((s) => (s.length ? median(s) : null)),
    }));
  }
}

function newEntry(key: string, labels: readonly string[]): Entry {
  return {
    key, labels: [...labels], samples: labels.map(() => []), issued: labels.map(() => 0), next: 0, steps: 0,
    failed: labels.map(() => false), waits: 0, waiting: false, turns: labels.map(() => 0),
  };
}

const SEP = '\u0001';

/** A size in half-octave buckets for tuner keys: 6152 and 6504 tokens share "12.5". */
export function halfOctave(x: number): string {
  return (Math.round(2 * Math.log2(Math.max(1, x))) / 2).toString();
}

/** TuneTable plus the timestamp queries that feed it (one per Gpu, see Gpu.tuner). */
export class Tuner {
  readonly table: TuneTable;
  readonly profiler: Profiler;

  constructor(device: GPUDevice, maxSteps?: number, minSamples?: number) {
    this.table = new TuneTable(maxSteps, minSamples);
    this.profiler = new Profiler(device);
  }

  private picks = 0;
  /** Work that reads results back once the step's work has finished (defer()). */
  private deferred: (() => Promise<void>)[] = [];

  /**
   * Runs `fn` at the next settle(), after the step's readback: a check recorded beside the step's
   * work (attention-selfcheck.ts) reads its results there.
   */
  defer(fn: () => Promise<void>): void { this.deferred.push(fn); }

  /** Candidate kernels being compiled (built()), each awaited once at the next settle(). */
  private compiling = new Set<Promise<void>>();
  /** Kernels the adapter refused, reported once each. */
  private refused = new Set<string>();

  /**
   * The kernel `def` of candidate `index` of `key`, just picked and timed, once the adapter has
   * built it (KernelCache.checked); else undefined, and the caller dispatches the default instead.
   * Still compiling: the pick is taken back and the next settle() waits for the compile, so the next
   * step can time it. Refused by the adapter: left out of this key for good (TuneTable.withdraw),
   * with a warning once per kernel.
   */
  built(kernels: KernelCache, key: string, labels: string[], index: number, def: KernelDef): Kernel | undefined {
    const k = kernels.checked(def);
    if ('pipeline' in k) return k;
    this.withdraw(key, labels, index, def.name, k);
    return undefined;
  }

  private withdraw(key: string, labels: string[], index: number, kernel: string, check: KernelCheck): void {
    const id = entryId(key, labels);
    if ('pending' in check) {
      this.table.withdraw(id, index, false);
      if (!this.compiling.has(check.pending)) {
        this.compiling.add(check.pending);
        this.defer(() => check.pending);
      }
      return;
    }
    this.table.withdraw(id, index, true);
    if (this.refused.has(kernel)) return;
    this.refused.add(kernel);
    console.warn(`srk: the tuner leaves out ${labels[index]} for ${key}: this adapter refused its kernel ${kernel} ` +
      `(${check.failed.split('\n')[0]})`);
  }

  /** True while some key is being measured or deferred work waits (more steps will change choices). */
  get open(): boolean { return this.table.open || this.deferred.length > 0; }

  /**
   * See TuneTable.pick; `timing` is the name the recorder times the candidate's dispatches under, if
   * timed: one name per pick, so a candidate of several dispatches (split-K) is timed as their sum.
   */
  pick(key: string, labels: string[]): { index: number; timing?: string } {
    const { index, timed, id } = this.table.pick(key, labels);
    return timed ? { index, timing: `${id}${SEP}${index}${SEP}${this.picks++}` } : { index };
  }

  /** After a step whose work has finished (the caller read a result back): reads times, decides. */
  async settle(): Promise<void> {
    const work = this.deferred.splice(0);
    for (const fn of work) await fn();
    this.compiling.clear();
    if (!this.table.open) return;
    await this.profiler.collect();
    for (const [name, ns] of this.profiler.samples) {
      const [id, index] = name.split(SEP);
      this.table.add(id, Number(index), ns.reduce((a, b) => a + b, 0) / 1e6);
    }
    this.profiler.reset();
    this.table.endStep();
  }
}

/** SRK_TUNE: '0' (off), '1' (on) or undefined (unset); anything else is a user-facing error (env.ts). */
const tuneEnv = (): '0' | '1' | undefined => envSwitch('SRK_TUNE');

/** Whether a Gpu tunes: SRK_TUNE=0/1 forces it; otherwise real GPUs with timestamp queries. */
export function tuningWanted(isCpuAdapter: boolean, timestampQuery: boolean): boolean {
  const env = tuneEnv();
  if (!timestampQuery || env === '0') return false;
  return env === '1' || !isCpuAdapter;
}
