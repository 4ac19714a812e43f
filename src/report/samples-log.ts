// OUT/samples.jsonl: a training run's eval samples (src/train/eval-samples.ts writes them at each
// evaluation, the report reads them): one JSON line per prompt and evaluation.
import fs from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from './metrics-log.js';
import { fileWriteError } from '../errors.js';

export const SAMPLES_FILE = 'samples.jsonl';

export interface SampleRow {
  step: number; pairs_seen: number; file: string | null; line: number | null;
  prompt: string; completion: string; finish_reason: 'stop' | 'length'; completion_tokens: number;
  /** The data's chosen response to the prompt, for comparison (absent in files written before it). */
  chosen?: string;
}

export function appendSamples(outDir: string, rows: readonly SampleRow[]): void {
  const file = path.join(outDir, SAMPLES_FILE);
  const fd = fs.openSync(file, 'a');
  // (Lines cut short, a full disk, are read as none and rewritten away by trimSamples.)
  try { fs.writeFileSync(fd, rows.map((r) => `${JSON.stringify(r)}\n`).join('')); }
  catch (e) { throw fileWriteError(file, e, 'the samples'); }
  finally { fs.closeSync(fd); }
}

/** A run's samples.jsonl (lines that do not parse are left out), or undefined where it has none. */
export function readSamples(outDir: string): SampleRow[] | undefined {
  let text: string;
  try { text = fs.readFileSync(path.join(outDir, SAMPLES_FILE), 'utf8'); } catch { return undefined; }
  const rows: SampleRow[] = [];
  for (const l of text.split('\n')) {
    if (l.trim() === '') continue;
    try {
      const r = JSON.parse(l) as SampleRow;
      if (typeof r.step === 'number' && typeof r.prompt === 'string' && typeof r.completion === 'string') rows.push(r);
    } catch { /* a line cut by a kill */ }
  }
  return rows.length ? rows : undefined;
}

/** A resumed run: the samples of evaluations past its checkpoint's step go, as their eval.jsonl lines do. */
export function trimSamples(outDir: string, resumeStep: number): void {
  const file = path.join(outDir, SAMPLES_FILE);
  let text: string;
  try { text = fs.readFileSync(file, 'utf8'); } catch { return; }
  const rows = readSamples(outDir) ?? [];
  const kept = rows.filter((r) => r.step <= resumeStep);
  // Rewritten also where a line was cut (a kill): the next lines must not be glued to it.
  const whole = text.endsWith('\n') && text.split('\n').filter((l) => l.trim() !== '').length === rows.length;
  if (kept.length === rows.length && whole) return;
  writeFileAtomic(file, kept.map((r) => `${JSON.stringify(r)}\n`).join(''));
}
