// One `srk train` per run directory. Two runs given the same --out (a sweep started without one,
// both defaulting to runs/<loss>) would interleave their metrics lines and replace each other's
// checkpoints. OUT/.srk-train.lock holds the owner's pid and host; it is created atomically ('wx'),
// and a lock whose process is gone (killed with SIGKILL, a machine restarted) is taken over. A lock
// is also removed when the process exits without releasing it (process.exit on a signal before the
// first step); one naming this very process that it does not hold was left by an earlier process
// with the same pid (a container's pid 1) and is taken over too.
import { closeSync, openSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { fileWriteError, userError } from '../errors.js';

export const RUN_LOCK = '.srk-train.lock';

interface LockInfo { pid: number; host: string; started: string }

function mtimeMs(file: string): number {
  try { return statSync(file).mtimeMs; } catch { return 0; }
}

/** Lock files this process holds, removed on exit if still held (an 'exit' handler runs synchronously). */
const held = new Map<string, LockInfo>();
let exitHook = false;

function removeIfMine(file: string, mine: LockInfo): void {
  try {
    const h = JSON.parse(readFileSync(file, 'utf8')) as LockInfo;
    if (h.pid === mine.pid && h.started === mine.started) unlinkSync(file);
  } catch { /* gone already */ }
  held.delete(file);
}

/**
 * Whether `pid` runs. A zombie (killed, not yet reaped: a container without an init to reap orphans)
 * answers kill(pid, 0) but runs nothing: its state in /proc (Linux) is Z, or X while being reaped.
 */
export function alive(pid: number): boolean {
  try { process.kill(pid, 0); } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // pid (comm) state ...: comm may hold spaces and parentheses, so the state follows the last ')'.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return true; // no /proc (macOS), or gone between the two reads: as kill said
  }
}

/** Takes OUT's lock or throws a user-facing error naming its holder; returns the release. */
export function acquireRunLock(out: string): () => void {
  const file = path.join(out, RUN_LOCK);
  const mine: LockInfo = { pid: process.pid, host: hostname(), started: new Date().toISOString() };
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx');
      try { writeFileSync(fd, `${JSON.stringify(mine)}\n`); } // (whole: one writeSync may write part of it)
      catch (e) {
        // Not written (a full disk): an empty lock would hold the next run off as one being taken.
        closeSync(fd);
        try { unlinkSync(file); } catch { /* gone */ }
        throw fileWriteError(file, e, 'the run\'s lock');
      }
      closeSync(fd);
      held.set(file, mine);
      if (!exitHook) {
        exitHook = true;
        process.on('exit', () => { for (const [f, info] of [...held]) removeIfMine(f, info); });
      }
      return () => removeIfMine(file, mine);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let owner: LockInfo | undefined;
    try { owner = JSON.parse(readFileSync(file, 'utf8')) as LockInfo; } catch { owner = undefined; }
    // Unreadable: a crash between creating and writing it, or a run that is writing it right now.
    if (!owner && Date.now() - mtimeMs(file) < 10_000) {
      throw userError(`${out} is being taken by another srk train (${file} is being written); choose another --out`);
    }
    // Another host's pid cannot be checked from here (a shared file system): that lock stands.
    // This pid on this host: this process's own run in that directory (held), or an earlier process's.
    const ours = owner?.pid === mine.pid && owner.host === mine.host;
    if (owner && Number.isSafeInteger(owner.pid) && (ours ? held.has(file) : owner.host !== mine.host || alive(owner.pid))) {
      throw userError(`${out} is in use by another srk train (pid ${owner.pid} on ${owner.host}, since ${owner.started}); ` +
        `choose another --out, or remove ${file} if that run is gone`);
    }
    try { unlinkSync(file); } catch { /* taken by another process meanwhile: the next attempt says so */ }
  }
  throw userError(`${out}: could not take ${file}`);
}
