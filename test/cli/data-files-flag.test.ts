// dataFilesFlag (src/cli/run.ts): --data / --eval-data given once per file, or as a quoted pattern that
// srk expands as a shell would (name order, no hidden files unless asked, files only).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dataFilesFlag } from '../../src/cli/run.js';

const dir = mkdtempSync(join(tmpdir(), 'srk-data-flag-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
for (const f of ['train-2.jsonl', 'train-10.jsonl', 'train-1.jsonl', '.train-3.jsonl', 'test-1.jsonl', 'c(1)+.jsonl']) writeFileSync(join(dir, f), '');
mkdirSync(join(dir, 'train-dir.jsonl'));

describe('dataFilesFlag', () => {
  it('a pattern: the files it names in name order, hidden ones only when it starts with a dot, no directories', () => {
    expect(dataFilesFlag({ data: join(dir, 'train-*.jsonl') }, 'data')).toEqual(['train-1.jsonl', 'train-10.jsonl', 'train-2.jsonl'].map((f) => join(dir, f)));
    expect(dataFilesFlag({ data: join(dir, '.train-?.jsonl') }, 'data')).toBe(join(dir, '.train-3.jsonl'));
    // As a shell's: a pattern not starting with a dot leaves hidden files out (macOS's ._x.jsonl are no data).
    expect(() => dataFilesFlag({ data: join(dir, '*-3.jsonl') }, 'data')).toThrow(/no file matches/);
    expect(dataFilesFlag({ data: join(dir, 'c(*)+.jsonl') }, 'data')).toBe(join(dir, 'c(1)+.jsonl')); // regex characters are literal
    expect(() => dataFilesFlag({ data: join(dir, 'nothing-*.jsonl') }, 'data')).toThrow(/--data .*nothing-\*\.jsonl: no file matches/);
    expect(() => dataFilesFlag({ data: join(dir, '*', 'x-*.jsonl') }, 'data')).toThrow(/a pattern may use \* and \? in the file name only/);
  });

  it('one file as a string, several as a list in the order given; a file twice, or a flag without a value, is refused', () => {
    expect(dataFilesFlag({}, 'data')).toBeUndefined();
    expect(dataFilesFlag({ data: 'a.jsonl' }, 'data')).toBe('a.jsonl');
    expect(dataFilesFlag({ 'eval-data': ['b.jsonl', 'a.jsonl'] }, 'eval-data')).toEqual(['b.jsonl', 'a.jsonl']);
    expect(() => dataFilesFlag({ data: [join(dir, 'test-1.jsonl'), join(dir, 'test-*.jsonl')] }, 'data')).toThrow(/test-1\.jsonl is given twice: its rows would count twice/);
    for (const v of ['', ['a.jsonl', ''], []]) expect(() => dataFilesFlag({ data: v }, 'data')).toThrow(/--data needs a data file after it/);
  });
});
