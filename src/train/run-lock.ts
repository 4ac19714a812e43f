// One `srk train` per run directory. Two runs given the same --out (a sweep started without one,
// both defaulting to runs/<loss>) would interleave their metrics lines and replace each other's
// checkpoints. OUT/.srk-train.lock holds the owner's pid and host; it is created atomically ('wx'),
// and a lock whose process is gone (killed with SIGKILL, a machine restarted) is taken over.
import { closeSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';

export const RUN_LOCK = '.srk-train.lock';

interface LockInfo { pid: number; host: string; started: string }

function mtimeMs(file: string): number {
  try { return statSync(file).mtimeMs; } catch { return 0; }
}

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

/** Takes OUT's lock or throws a user-facing error naming its holder; returns the release. */
export function acquireRunLock(out: string): () => void {
  const file = path.join(out, RUN_LOCK);
  const mine: LockInfo = { pid: process.pid, host: hostname(), started: new Date().toISOString() };
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx');
      try { writeSync(fd, `${JSON.stringify(mine)}\n`); } finally { closeSync(fd); }
      return () => {
        try {
          const held = JSON.parse(readFileSync(file, 'utf8')) as LockInfo;
          if (held.pid === mine.pid && held.started === mine.started) unlinkSync(file);
        } catch { /* gone already */ }
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let held: LockInfo | undefined;
    try { held = JSON.parse(readFileSync(file, 'utf8')) as LockInfo; } catch { held = undefined; }
    // Unreadable: a crash between creating and writing it, or a run that is writing it right now.
    if (!held && Date.now() - mtimeMs(file) < 10_000) {
      throw Object.assign(new Error(`${out} is being taken by another srk train (${file} is being written); choose another --out`), { userFacing: true });
    }
    // Another host's pid cannot be checked from here (a shared file system): that lock stands.
    if (held && Number.isSafeInteger(held.pid) && (held.host !== mine.host || alive(held.pid))) {
      throw Object.assign(new Error(`${out} is in use by another srk train (pid ${held.pid} on ${held.host}, since ${held.started}); ` +
        `choose another --out, or remove ${file} if that run is gone`), { userFacing: true });
    }
    try { unlinkSync(file); } catch { /* taken by another process meanwhile: the next attempt says so */ }
  }
  throw Object.assign(new Error(`${out}: could not take ${file}`), { userFacing: true });
}
