// Temp files of atomic writes a killed process left (src/train/stale-temps.ts): a run removes them from
// its own directory, and from a shared cache only once they are old; a live writer's are kept.
import { mkdirSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { OWNED_TEMP_AGE_MS, SHARED_TEMP_AGE_MS, sweepStaleTemps } from '../../src/train/stale-temps.js';
import { tempDir } from './helpers.js';

/** The pid of a process that has exited (and been reaped). */
const deadPid = () => spawnSync('true').pid!;

describe('sweepStaleTemps', () => {
  const tmp = tempDir('srk-stale-');

  it('a run directory: every temp file of a process that is gone goes once ten minutes old; this process\'s, a live one\'s, other files and directories stay', async () => {
    const dir = join(tmp, 'owned');
    mkdirSync(dir);
    const dead = deadPid();
    const live = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      const files = [`metrics.jsonl.tmp-${dead}-k3x9a`, `.model.safetensors.tmp-${dead}-1764400000000`, `metrics.jsonl.tmp-${process.pid}-abc`,
        `eval.jsonl.tmp-${live.pid}-q1`, 'metrics.jsonl', 'notes.tmp-x', `a.tmp-${dead}`];
      const then = new Date(Date.now() - OWNED_TEMP_AGE_MS - 60_000);
      for (const f of files) { writeFileSync(join(dir, f), 'x'); utimesSync(join(dir, f), then, then); }
      mkdirSync(join(dir, `d.tmp-${dead}-z`));
      // A writer elsewhere (another container, another host) may still be writing a young one.
      writeFileSync(join(dir, `report.html.tmp-${dead}-young`), 'x');
      expect(sweepStaleTemps(dir, true).sort()).toEqual([`.model.safetensors.tmp-${dead}-1764400000000`, `metrics.jsonl.tmp-${dead}-k3x9a`]);
      expect(readdirSync(dir).sort()).toEqual([`a.tmp-${dead}`, `d.tmp-${dead}-z`, `eval.jsonl.tmp-${live.pid}-q1`,
        'metrics.jsonl', `metrics.jsonl.tmp-${process.pid}-abc`, 'notes.tmp-x', `report.html.tmp-${dead}-young`].sort());
    } finally {
      live.kill('SIGKILL');
    }
  });

  it('a shared cache: a dead pid\'s temp file goes only once it is older than a writer on another host could be', () => {
    const dir = join(tmp, 'shared');
    mkdirSync(dir);
    const dead = deadPid();
    const young = `ref.json.tmp-${dead}-young`; const old = `ref.json.tmp-${dead}-old`;
    writeFileSync(join(dir, young), 'x'); writeFileSync(join(dir, old), 'x');
    const then = new Date(Date.now() - SHARED_TEMP_AGE_MS - 60_000);
    utimesSync(join(dir, old), then, then);
    expect(sweepStaleTemps(dir, false)).toEqual([old]);
    expect(readdirSync(dir)).toEqual([young]);
    expect(sweepStaleTemps(join(tmp, 'absent'), true)).toEqual([]);
  });
});
