// A run directory's tuning.json: the tuner's kernel choices (engine/tuner.ts) with the adapter they
// were timed on. Written when choices are made; read when a run starts in the same directory, so a
// resumed run dispatches the same kernels as the interrupted one and its numbers continue exactly.
import { existsSync, readFileSync } from 'node:fs';
import type { TuneDecision, TuneTable } from '../engine/tuner.js';
import type { AdapterInfo } from '../engine/gpu.js';
import { writeFileAtomic } from '../report/metrics-log.js';

export const TUNING_FILE = 'tuning.json';

/** `dawn`: Gpu.dawnSettings of the run that timed the choices (absent in files written before it was kept). */
interface TuningFile { adapter: string; dawn?: string; decisions: TuneDecision[] }

/** One line naming the adapter (choices timed on one GPU say nothing about another). */
export function adapterName(info: AdapterInfo): string {
  // Its fields' text in order, as when they were all strings: tuning files written then still match.
  return Object.values(info).filter((v) => v !== undefined && v !== '').map(String).join(' ');
}

/**
 * Loads `file` into `table` if it exists and was written on `adapter` with the same Dawn settings
 * (`dawn`, Gpu.dawnSettings; a file without them is taken). Returns what happened, for the log: the
 * number of choices taken, or why none were (undefined: no file).
 */
export function loadTuning(table: TuneTable, file: string, adapter: string, dawn?: string): number | string | undefined {
  if (!existsSync(file)) return undefined;
  let saved: TuningFile;
  try {
    saved = JSON.parse(readFileSync(file, 'utf8')) as TuningFile;
  } catch (e) {
    return `${file} is unreadable (${(e as Error).message.split('\n')[0]}): tuning again`;
  }
  if (!saved || typeof saved.adapter !== 'string' || !Array.isArray(saved.decisions)) return `${file} is not a tuning file: tuning again`;
  if (saved.adapter !== adapter) return `${file} was timed on another adapter (${saved.adapter}): tuning again`;
  if (typeof saved.dawn === 'string' && dawn !== undefined && saved.dawn !== dawn) {
    return `${file} was timed with other Dawn settings (${saved.dawn}; now ${dawn}): tuning again`;
  }
  const valid = saved.decisions.filter((d) => d && typeof d.key === 'string' && Array.isArray(d.candidates) &&
    d.candidates.every((c) => typeof c === 'string') && Array.isArray(d.medianMs) &&
    d.medianMs.every((m) => m === null || typeof m === 'number') && Number.isInteger(d.chosen));
  // What the table kept (it drops a choice out of its range; a key listed twice is one choice): the
  // trainer counts saved choices from this, and saves again once there are more.
  const before = table.decisions().length;
  table.load(valid);
  return table.decisions().length - before;
}

/** Writes the table's decisions to `file` (atomically). Returns how many. */
export function saveTuning(table: TuneTable, file: string, adapter: string, dawn?: string): number {
  const decisions = table.decisions();
  writeFileAtomic(file, `${JSON.stringify({ adapter, ...(dawn !== undefined ? { dawn } : {}), decisions } satisfies TuningFile, null, 1)}\n`);
  return decisions.length;
}
