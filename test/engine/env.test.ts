// The environment's SRK_* switches (engine/env.ts): checkEnvironment knows every name the project reads,
// refuses malformed values by name, and warns of names it does not read.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkEnvironment, keepLogitsMib, knownEnvironmentNames } from '../../src/engine/env.js';

const root = resolve(import.meta.dirname, '../..');
function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : /\.(ts|mjs|sh)$/.test(f) ? [p] : [];
  });
}

describe('SRK_* environment variables', () => {
  it('every name the sources, scripts and tests read is known to checkEnvironment (no warning for it)', () => {
    const read = new Set<string>();
    for (const f of ['src', 'bench', 'scripts', 'test'].flatMap((d) => files(join(root, d)))) {
      if (f.endsWith('env.test.ts') || f.endsWith('env.ts')) continue; // the names used as examples of typos
      for (const m of readFileSync(f, 'utf8').matchAll(/\bSRK_[A-Z0-9_]+\b/g)) read.add(m[0]);
    }
    expect(read.size).toBeGreaterThan(20);
    read.delete('SRK_TUNES'); // cli.test.ts's example of a typo
    expect([...read].filter((n) => !knownEnvironmentNames().includes(n))).toEqual([]);
    // Set but empty: each is unset, nothing refused, nothing warned.
    expect(checkEnvironment(Object.fromEntries([...read].map((n) => [n, ''])))).toEqual([]);
  });

  it('the README names every one of them (its warning for an unknown name points there)', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    expect(knownEnvironmentNames().filter((n) => !readme.includes(n))).toEqual([]);
  });

  it('malformed values are refused by name; empty is unset; unknown names warn', () => {
    expect(checkEnvironment({ SRK_TUNE: '1', SRK_ATTENTION: 'unfused', SRK_SUBMIT_EVERY: '16', SRK_KEEP_LOGITS_MIB: '0', SRK_MATMUL: '' })).toEqual([]);
    expect(() => checkEnvironment({ SRK_SMX_SAFE: 'on' })).toThrow(/^SRK_SMX_SAFE=on: expected 0 or 1$/);
    expect(() => checkEnvironment({ SRK_TOKENIZE_THREADS: '2.5' })).toThrow(/SRK_TOKENIZE_THREADS=2.5: expected a positive whole number of threads/);
    expect(checkEnvironment({ SRK_TUNES: '0', PATH: '/bin' })).toEqual(['SRK_TUNES is not a variable srk reads (the README lists them); ignored']);
    expect(keepLogitsMib(undefined)).toBeUndefined();
    expect(keepLogitsMib('256')).toBe(256);
    expect(keepLogitsMib('0.5')).toBe(0.5);
    for (const bad of [' ', '-1', '1e3', 'Infinity', '0x10']) expect(() => keepLogitsMib(bad), bad).toThrow(/SRK_KEEP_LOGITS_MIB/);
  });
});
