// OUT/.srk-train.lock (src/train/run-lock.ts): one srk train per run directory. The end-to-end refusal
// and take-over are in refusals.test.ts; these are the lock's own cases.
import { existsSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RUN_LOCK, acquireRunLock, alive } from '../../src/train/run-lock.js';
import { spawn, spawnSync } from 'node:child_process';
import { tempDir } from './helpers.js';

describe('the run directory lock', () => {
  const dir = tempDir('srk-lock-');
  const lock = join(dir, RUN_LOCK);

  // A run killed with SIGKILL where nothing reaps it (a container without an init) stays a zombie, which
  // answers kill(pid, 0): its lock is taken over all the same.
  it.skipIf(!existsSync('/proc/self/stat'))('a zombie holds no lock', async () => {
    // The short sleep ends after its parent shell became the long one, which never waits for it: a zombie.
    const parent = spawn('bash', ['-c', 'sleep 0.3 & echo $!; exec sleep 20'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const pid = Number(await new Promise<string>((res) => parent.stdout!.once('data', (d: Buffer) => res(d.toString().trim()))));
      const state = () => { const st = readFileSync(`/proc/${pid}/stat`, 'utf8'); return st[st.lastIndexOf(')') + 2]; };
      for (let i = 0; i < 500 && state() !== 'Z'; i++) await new Promise((r) => setTimeout(r, 10));
      expect(state()).toBe('Z');
      expect(() => process.kill(pid, 0)).not.toThrow();
      expect(alive(pid)).toBe(false);
      expect(alive(process.pid)).toBe(true);
      writeFileSync(lock, JSON.stringify({ pid, host: hostname(), started: 'then' }));
      const release = acquireRunLock(dir);
      expect(JSON.parse(readFileSync(lock, 'utf8')).pid).toBe(process.pid);
      release();
    } finally {
      parent.kill('SIGKILL');
    }
  });

  it('taken and released; a second taker is refused while it is held', () => {
    const release = acquireRunLock(dir);
    expect(JSON.parse(readFileSync(lock, 'utf8')).pid).toBe(process.pid);
    expect(() => acquireRunLock(dir)).toThrow(/is in use by another srk train \(pid \d+ on /);
    release();
    expect(existsSync(lock)).toBe(false);
    acquireRunLock(dir)();
  });

  it('an unreadable lock: one being written (new) refuses, one a crash left (old) is taken over', () => {
    writeFileSync(lock, '');
    expect(() => acquireRunLock(dir)).toThrow(/is being taken by another srk train/);
    const old = new Date(Date.now() - 60_000);
    utimesSync(lock, old, old);
    const release = acquireRunLock(dir);
    expect(JSON.parse(readFileSync(lock, 'utf8')).pid).toBe(process.pid);
    release();
  });

  it('another host\'s lock stands (its pid cannot be checked from here); a release leaves a lock it does not own', () => {
    writeFileSync(lock, JSON.stringify({ pid: 1, host: 'elsewhere', started: 'then' }));
    expect(() => acquireRunLock(dir)).toThrow(/pid 1 on elsewhere/);
    // Also where that pid is no process here (its number means nothing on this host).
    const gone = spawnSync('true').pid!;
    expect(alive(gone)).toBe(false);
    writeFileSync(lock, JSON.stringify({ pid: gone, host: 'elsewhere', started: 'then' }));
    expect(() => acquireRunLock(dir)).toThrow(new RegExp(`pid ${gone} on elsewhere`));
    writeFileSync(lock, '');
    const old = new Date(Date.now() - 60_000);
    utimesSync(lock, old, old);
    const release = acquireRunLock(dir);
    writeFileSync(lock, JSON.stringify({ pid: 1, host: 'elsewhere', started: 'later' })); // taken over meanwhile
    release();
    expect(existsSync(lock)).toBe(true);
  });

  it('a lock naming this process that it does not hold (an earlier process with the same pid: a container\'s pid 1) is taken over', () => {
    rmSync(lock, { force: true });
    writeFileSync(lock, JSON.stringify({ pid: process.pid, host: hostname(), started: 'before a restart' }));
    const release = acquireRunLock(dir);
    expect(JSON.parse(readFileSync(lock, 'utf8')).started).not.toBe('before a restart');
    // Held by this process now: a second taker in it is still refused.
    expect(() => acquireRunLock(dir)).toThrow(/is in use by another srk train/);
    release();
    expect(existsSync(lock)).toBe(false);
  });
});
