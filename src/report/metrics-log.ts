// Append-only JSONL logs for training metrics (OUT/metrics.jsonl, one line per optimizer step) and
// evaluation results (OUT/eval.jsonl, one line per evaluation of one split).
//
// - Writing: `JsonlWriter.open(path)` appends one JSON object per line with a single write(2) each,
//   so a crash loses at most the line being written. `fsync: 'always'` makes each line durable at once;
//   the default fsyncs on `flush()` and `close()` only.
// - Opening a file that ends in a partial line (a run killed mid-write) first cuts that partial line
//   away, so the next line does not get glued onto it.
// - Resuming: `truncateAfterStep(path, step)` drops every line whose `step` is greater than `step`
//   (the trainer calls it for metrics.jsonl and eval.jsonl when it resumes from a checkpoint at `step`).
// - Reading: `readJsonl` ignores a truncated last line; a malformed line elsewhere is an error
//   (or is skipped and counted when `lenient` is set).
// Non-finite numbers are written as null (JSON has no NaN); readers treat null as "no value".

import { fileWriteError } from '../errors.js';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** One training step (metrics.jsonl). Fields may be null where the value was NaN/undefined. */
export interface MetricsRow {
  step: number;
  pairs_seen: number;
  loss: number | null;
  margin: number | null;          // mean beta*h over the batch
  accuracy: number | null;        // mean (h > 0)
  aug_accuracy: number | null;    // mean (Delta > 0); null for losses without augmentation
  reward_chosen: number | null;
  reward_rejected: number | null;
  logp_chosen: number | null;
  logp_rejected: number | null;
  grad_norm: number | null;
  lr: number | null;
  tokens_per_s: number | null;
  pairs_per_s: number | null;
  [extra: string]: unknown;
}

/** One evaluation of one split (eval.jsonl). */
export interface EvalRow {
  step: number;
  pairs_seen: number;
  split: string;
  margin: number | null;
  accuracy: number | null;
  aug_accuracy: number | null;
  reward_chosen?: number | null;
  reward_rejected?: number | null;
  /** The policy's negative log-likelihood per chosen token (eval-metrics.ts). */
  nll_chosen?: number | null;
  /** Standard errors of margin, accuracy and aug_accuracy over the pairs (eval-metrics.ts). */
  margin_se?: number | null;
  accuracy_se?: number | null;
  aug_accuracy_se?: number | null;
  /** Pairs with a margin (augmented margin) of exactly 0, which the accuracies count as wrong. */
  ties?: number;
  aug_ties?: number;
  /** Mean β·Δ on the prompt-augmented pairs (Sr losses' data; srk eval prints it too). */
  aug_margin?: number | null;
  pearson?: number | null;
  spearman?: number | null;
  kendall?: number | null;
  n: number;
  [extra: string]: unknown;
}

export const METRICS_FILE = 'metrics.jsonl';
export const EVAL_FILE = 'eval.jsonl';
/** The run's settings (`srk train` writes its TrainOptions there), shown in the report. */
export const RUN_CONFIG_FILE = 'train_config.json';

/** A run directory's train_config.json, or undefined where it is missing or not a JSON object. */
export function readRunConfig(outDir: string): Record<string, unknown> | undefined {
  const file = path.join(outDir, RUN_CONFIG_FILE);
  if (!fs.existsSync(file)) return undefined;
  try {
    const cfg: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
    return cfg !== null && typeof cfg === 'object' && !Array.isArray(cfg) ? cfg as Record<string, unknown> : undefined;
  } catch { return undefined; }
}

/** JSON text of one record on one line; non-finite numbers become null. */
export function toJsonLine(record: object): string {
  return JSON.stringify(record, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v));
}

export interface JsonlWriterOptions {
  /** 'always': fsync after every line; 'close' (default): fsync on flush() and close(). */
  fsync?: 'always' | 'close';
  /** Start a new file instead of appending (default false: append). */
  truncate?: boolean;
}

/** Append-only JSONL writer. */
export class JsonlWriter {
  private fd: number | null;
  private lines = 0;

  private constructor(readonly path: string, fd: number, private readonly fsyncMode: 'always' | 'close') {
    this.fd = fd;
  }

  /** Opens (creating directories and the file as needed) for appending. A partial last line is cut off first. */
  static open(file: string, opts: JsonlWriterOptions = {}): JsonlWriter {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    if (opts.truncate) fs.writeFileSync(file, '');
    else dropPartialLastLine(file);
    const fd = fs.openSync(file, 'a');
    return new JsonlWriter(file, fd, opts.fsync ?? 'close');
  }

  /** Lines appended through this writer. */
  get count(): number { return this.lines; }

  append(record: object): void {
    if (this.fd === null) throw new Error(`JsonlWriter(${this.path}): append after close`);
    const buf = Buffer.from(toJsonLine(record) + '\n', 'utf8');
    let off = 0;
    try {
      while (off < buf.length) off += fs.writeSync(this.fd, buf, off, buf.length - off);
      if (this.fsyncMode === 'always') fs.fsyncSync(this.fd);
    } catch (e) {
      // A line cut short (a full disk) is dropped when the file is next opened (dropPartialLastLine).
      throw fileWriteError(this.path, e, 'a line');
    }
    this.lines++;
  }

  /** Makes everything written so far durable (fsync). */
  flush(): void {
    if (this.fd !== null) fs.fsyncSync(this.fd);
  }

  close(): void {
    if (this.fd === null) return;
    try { fs.fsyncSync(this.fd); } finally { fs.closeSync(this.fd); this.fd = null; }
  }
}

/** Metrics log for one run: metrics.jsonl (+ eval.jsonl) in outDir. */
export class MetricsLog {
  readonly metrics: JsonlWriter;
  private evalWriter: JsonlWriter | null = null;

  private constructor(readonly outDir: string, private readonly opts: JsonlWriterOptions) {
    this.metrics = JsonlWriter.open(path.join(outDir, METRICS_FILE), opts);
  }

  /**
   * Opens the logs of a run. With `resumeStep` set, lines after that step are dropped first (both
   * files) and new lines are appended; without it, `fresh` (default true) starts empty files.
   */
  static open(outDir: string, opts: { resumeStep?: number; fresh?: boolean; fsync?: 'always' | 'close' } = {}): MetricsLog {
    fs.mkdirSync(outDir, { recursive: true });
    const resuming = opts.resumeStep !== undefined;
    if (resuming) {
      for (const f of [METRICS_FILE, EVAL_FILE]) {
        const p = path.join(outDir, f);
        if (fs.existsSync(p)) truncateAfterStep(p, opts.resumeStep!);
      }
    }
    const truncate = !resuming && (opts.fresh ?? true);
    if (truncate) {
      const evalPath = path.join(outDir, EVAL_FILE);
      if (fs.existsSync(evalPath)) fs.writeFileSync(evalPath, '');
    }
    return new MetricsLog(outDir, { fsync: opts.fsync, truncate });
  }

  step(row: MetricsRow): void { this.metrics.append(row); }

  eval(row: EvalRow): void {
    if (!this.evalWriter) this.evalWriter = JsonlWriter.open(path.join(this.outDir, EVAL_FILE), { fsync: this.opts.fsync });
    this.evalWriter.append(row);
  }

  flush(): void { this.metrics.flush(); this.evalWriter?.flush(); }

  close(): void { this.metrics.close(); this.evalWriter?.close(); }
}

/** Cuts a trailing partial line (no final newline) off `file`. Returns the bytes removed. */
export function dropPartialLastLine(file: string): number {
  if (!fs.existsSync(file)) return 0;
  const data = fs.readFileSync(file);
  if (data.length === 0 || data[data.length - 1] === 0x0a) return 0;
  const keep = data.lastIndexOf(0x0a) + 1;
  fs.truncateSync(file, keep);
  return data.length - keep;
}

export interface ReadResult<T> {
  rows: T[];
  /** True when the last line was incomplete or unparsable and was ignored. */
  truncatedTail: boolean;
  /** Malformed lines before the last one that were skipped (lenient mode only). */
  skipped: number;
}

/** Parses JSONL text. A broken last line is ignored; a broken earlier line throws unless `lenient`. */
export function parseJsonl<T = Record<string, unknown>>(text: string, opts: { lenient?: boolean; source?: string } = {}): ReadResult<T> {
  const lines = text.split('\n');
  const rows: T[] = [];
  let truncatedTail = false, skipped = 0;
  let lastNonEmpty = lines.length - 1;
  while (lastNonEmpty >= 0 && lines[lastNonEmpty].trim() === '') lastNonEmpty--;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '') continue;
    const isLast = i === lastNonEmpty;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      value = undefined;
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      if (isLast) { truncatedTail = true; continue; }
      if (opts.lenient) { skipped++; continue; }
      throw new Error(`${opts.source ?? 'jsonl'}:${i + 1}: malformed line: ${line.slice(0, 80)}`);
    }
    rows.push(value as T);
  }
  return { rows, truncatedTail, skipped };
}

/** Reads a JSONL file (see parseJsonl). A missing file reads as empty when `missingOk`. */
export function readJsonl<T = Record<string, unknown>>(file: string, opts: { lenient?: boolean; missingOk?: boolean } = {}): ReadResult<T> {
  if (opts.missingOk && !fs.existsSync(file)) return { rows: [], truncatedTail: false, skipped: 0 };
  return parseJsonl<T>(fs.readFileSync(file, 'utf8'), { lenient: opts.lenient, source: file });
}

export function readMetrics(file: string, opts: { lenient?: boolean; missingOk?: boolean } = {}): MetricsRow[] {
  return readJsonl<MetricsRow>(file, opts).rows;
}

export function readEval(file: string, opts: { lenient?: boolean; missingOk?: boolean } = {}): EvalRow[] {
  return readJsonl<EvalRow>(file, { missingOk: true, ...opts }).rows;
}

/** Reads OUT/metrics.jsonl and OUT/eval.jsonl (each may be missing) of a run directory. */
export function readRunDir(outDir: string): { metrics: MetricsRow[]; eval: EvalRow[] } {
  return {
    metrics: readMetrics(path.join(outDir, METRICS_FILE), { missingOk: true }),
    eval: readEval(path.join(outDir, EVAL_FILE), { missingOk: true }),
  };
}

/**
 * Writes `data` to `file` atomically: a temp file in the same directory, fsync, rename. A failure (a full
 * disk) removes the temp file and names `file` (and `what`, where given) in its error.
 */
export function writeFileAtomic(file: string, data: string | Uint8Array, what?: string): void {
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const fd = fs.openSync(tmp, 'w');
    try {
      fs.writeFileSync(fd, data);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw fileWriteError(file, e, what);
  }
}

/**
 * Drops every line of `file` whose `step` is greater than `step`, and a partial last line; lines
 * without a numeric `step` are kept. The file is rewritten atomically. Returns lines kept and dropped.
 */
export function truncateAfterStep(file: string, step: number): { kept: number; dropped: number } {
  if (!fs.existsSync(file)) return { kept: 0, dropped: 0 };
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const out: string[] = [];
  let dropped = 0;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.trim() === '') continue;
    let value: unknown;
    try { value = JSON.parse(line); } catch { value = undefined; }
    if (value === null || typeof value !== 'object') {
      // A partial last line (or any unreadable line) cannot be trusted after a resume.
      dropped++;
      continue;
    }
    const s = (value as { step?: unknown }).step;
    if (typeof s === 'number' && s > step) { dropped++; continue; }
    out.push(line);
  }
  writeFileAtomic(file, out.length ? out.join('\n') + '\n' : '');
  return { kept: out.length, dropped };
}
