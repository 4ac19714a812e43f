// Progress output: a live bar with ETA on a terminal, plain lines (at most one per few seconds,
// always the last) otherwise. Everything goes to stderr so stdout stays for results.
/**
 * One label's pace: the time spent on it and the units done since it started (start(), or its first
 * report). The time is what passed since its own last report, or since another label's last report
 * where one ran in between (an eval inside training): the step after an evaluation counts from the
 * evaluation's end, and the evaluation's own time is not the step's. A resumed run's training starts at
 * step 900 of 1000, and an eval every 100 steps pauses it: the ETA comes from this pass's own rate, not
 * from `done` over the time since the run began.
 */
interface Pace { first: number; active: number; lastAt: number; lastDone: number }

export class Progress {
  private lastPlain = -Infinity; // a label's first report is printed, even in a process's first 2 s
  private lastLen = 0;
  private label = '';
  /** The label that reported (or started) last, and when: the next report's time runs from then. */
  private timed = '';
  private timedAt = performance.now();
  private readonly paces = new Map<string, Pace>();
  readonly tty: boolean;

  constructor(plain = false) { this.tty = !plain && Boolean(process.stderr.isTTY); }

  /**
   * Marks where `label`'s work starts, at `done` units (a resumed pass's), printing nothing: its first
   * report then counts the time and the units since, where it would otherwise show 0 s (a pass that
   * reports only at its end, training's first step).
   */
  start(label: string, done = 0): void {
    const now = performance.now();
    this.paces.set(label, { first: done, active: 0, lastAt: now, lastDone: done });
    this.timed = label; this.timedAt = now;
  }

  /** scorePairs' callbacks for a pass reported here under `label`: its start marked (start()), its progress reported. */
  pass(label: string): { onStart: (done: number) => void; onProgress: (done: number, total: number) => void } {
    return { onStart: (done) => this.start(label, done), onProgress: (done, total) => this.update(label, done, total) };
  }

  /**
   * Reports `done` of `total` units of work for `label`, with an optional status text. `moreSeconds`: work
   * still due that the units' rate does not cover (training's evaluations and saves to come), added to the ETA.
   */
  update(label: string, done: number, total: number, status = '', moreSeconds = 0): void {
    const now = performance.now();
    let pace = this.paces.get(label);
    // A label seen for the first time, or counting from the start again (the next eval pass).
    if (!pace || done < pace.lastDone) {
      pace = { first: done, active: 0, lastAt: now, lastDone: done };
      this.paces.set(label, pace);
    } else {
      pace.active += now - (label === this.timed ? pace.lastAt : this.timedAt);
    }
    pace.lastAt = now; pace.lastDone = done;
    this.timed = label; this.timedAt = now;
    if (label !== this.label) { this.label = label; this.lastPlain = -Infinity; }
    const elapsed = pace.active / 1000;
    // The rate of the units done since the label's first report (none before a second report).
    const eta = done > pace.first ? (elapsed / (done - pace.first)) * (total - done) + moreSeconds : NaN;
    const timing = `${fmtTime(elapsed)} elapsed${done < total && Number.isFinite(eta) ? `, ETA ${fmtTime(eta)}` : ''}`;
    if (this.tty) {
      // Clamped: a total that was an estimate must not make the bar's repeat counts negative.
      const width = 24; const fill = total > 0 ? Math.max(0, Math.min(width, Math.round((width * done) / total))) : width;
      const line = `${label} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${done}/${total} ${status} (${timing})`;
      process.stderr.write(`\r${line}${' '.repeat(Math.max(0, this.lastLen - line.length))}`);
      this.lastLen = line.length;
      if (done >= total) { process.stderr.write('\n'); this.lastLen = 0; }
    } else {
      const now = performance.now();
      if (done < total && now - this.lastPlain < 2000) return;
      this.lastPlain = now;
      process.stderr.write(`${label}: ${done}/${total} ${status} (${timing})\n`);
    }
  }

  /** A (done, total) bytes callback reporting here under `label` (bytesProgress). */
  bytes(label: string): (done: number, total: number) => void { return bytesProgress(this.update.bind(this), label); }

  /** A message on its own line (clears the bar first). */
  log(s: string): void {
    if (this.tty && this.lastLen) { process.stderr.write(`\r${' '.repeat(this.lastLen)}\r`); this.lastLen = 0; }
    process.stderr.write(`${s}\n`);
  }
}

/**
 * How many times a training run still does what it does every `every` steps (0: never) and after its last
 * step, when step `step` (1 to totalSteps - 1) is done and reported but what follows it is not: the
 * multiples of `every` from `step` on before the last step (the trainer's evaluations and saves, the one
 * about to run at `step` included), and the last step's own. 0 from the last step on (no ETA is shown).
 */
export function dueFrom(step: number, totalSteps: number, every: number): number {
  if (step >= totalSteps) return 0;
  return (every > 0 ? Math.floor((totalSteps - 1) / every) - Math.floor((step - 1) / every) : 0) + 1;
}

export function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/** Below this, loading or saving a model is quick enough to need no progress bar (Pythia-70m in f32 is 280 MiB). */
export const BYTES_PROGRESS_MIN = 256 * 2 ** 20;

/**
 * A (done, total) bytes callback for reading or writing a model: `update` in MiB under `label`, only
 * where the whole is at least `minBytes`, so a tiny model's load adds no lines to the log.
 */
export function bytesProgress(update: (label: string, done: number, total: number, status?: string) => void, label: string,
  minBytes = BYTES_PROGRESS_MIN): (done: number, total: number) => void {
  const mib = (b: number) => Math.round(b / 2 ** 20);
  let last = -1; // a file hash reports every 64 KiB read: pass on each MiB once
  return (done, total) => {
    if (total < minBytes || mib(done) === last) return;
    last = mib(done);
    update(label, last, mib(total), 'MiB');
  };
}

/** Bytes as MiB below a GiB (as rounded: no "1024.0 MiB"), else GiB (two decimals). */
export function fmtBytes(b: number): string {
  const mib = (b / 2 ** 20).toFixed(1);
  return Number(mib) < 1024 ? `${mib} MiB` : `${(b / 2 ** 30).toFixed(2)} GiB`;
}

/**
 * What the run's GPU buffers take: the most in use at once (PyTorch's max_memory_allocated) and what srk's
 * pool holds (free buffers kept for reuse included: PyTorch's memory_reserved). The driver's and Dawn's own
 * memory comes on top; WebGPU reports no card's total, so this is what to compare with it.
 */
export function describeGpuMemory(pool: { peakInUseBytes: number; allocatedBytes: number }): string {
  return `${fmtBytes(pool.peakInUseBytes)} in use at most, ${fmtBytes(pool.allocatedBytes)} held in buffers`;
}
