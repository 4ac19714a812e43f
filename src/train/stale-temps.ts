// Temp files of atomic writes that a killed process left behind. writeFileAtomic (report/metrics-log.ts)
// removes its temp file when a write fails, but SIGKILL, a crash or a power loss between its open and
// its rename leaves `NAME.tmp-PID-TAG` for good, holding the space that may have filled the disk.
// A run sweeps them from its own directory and from its reference cache. A temp file goes only when its
// writer is not running here and it is old enough that a writer elsewhere (another container, or a host
// sharing the file system, whose pids mean nothing here) would have renamed it long ago: ten minutes in
// the run's own directory, which its lock keeps other runs out of (an `srk report --out` or `srk eval
// --cache-dir` may still write there), an hour in a --cache-dir that a sweep's runs share.
import { readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { alive } from './run-lock.js';

/** NAME.tmp-PID-TAG (writeFileAtomic) and .NAME.tmp-PID-TIME (the safetensors and data writers). */
const TEMP = /^(.+)\.tmp-(\d+)-[0-9a-z]+$/;

/** How old a temp file of a process not running here must be to go: in a run's own directory, in a shared one. */
export const OWNED_TEMP_AGE_MS = 10 * 60 * 1000;
export const SHARED_TEMP_AGE_MS = 60 * 60 * 1000;

/**
 * Removes the stale temp files directly in `dir` (not below it) and returns their names. `owned`: the
 * directory is a run's own (under its lock), where OWNED_TEMP_AGE_MS is old enough; else SHARED_TEMP_AGE_MS.
 */
export function sweepStaleTemps(dir: string, owned: boolean, now = Date.now()): string[] {
  let names: string[];
  try { names = readdirSync(dir); } catch { return []; }
  const removed: string[] = [];
  for (const name of names) {
    const m = TEMP.exec(name);
    if (!m) continue;
    const pid = Number(m[2]);
    if (pid === process.pid || alive(pid)) continue;
    const file = path.join(dir, name);
    try {
      const st = statSync(file);
      if (!st.isFile()) continue; // a directory (a checkpoint being written) has its own sweep
      if (now - st.mtimeMs < (owned ? OWNED_TEMP_AGE_MS : SHARED_TEMP_AGE_MS)) continue;
      rmSync(file, { force: true });
      removed.push(name);
    } catch { /* gone meanwhile, or not ours to remove: left as it was */ }
  }
  return removed;
}
