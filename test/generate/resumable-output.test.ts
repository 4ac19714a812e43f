// OUT.partial and its companions (src/generate/resumable-output.ts) without a model: whole lines kept, a
// line cut or written without its row key dropped, settings compared by name, one writer at a time.
import { mkdtempSync, readFileSync, readdirSync, appendFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ResumableOutput } from '../../src/generate/resumable-output.js';

const line = (i: number) => `${JSON.stringify({ row: i })}\n`;

describe('resumable output', () => {
  it('keeps whole lines with their keys; a cut line, or a line without its key, is dropped', () => {
    const dir = mkdtempSync(join(tmpdir(), 'srk-partial-'));
    const out = join(dir, 'o.jsonl');
    const settings = { a: 1, files: { 'config.json': '10:5' } };
    let r = ResumableOutput.open(out, settings, 'test');
    r.write(line(0) + line(1), ['k0', 'k1']);
    r.close();
    expect(readdirSync(dir).sort()).toEqual(['o.jsonl.partial', 'o.jsonl.partial.json', 'o.jsonl.partial.rows']);
    appendFileSync(`${out}.partial`, line(2)); // its key never written (a kill between the two)
    appendFileSync(`${out}.partial`, '{"row": 3'); // cut
    r = ResumableOutput.open(out, settings, 'test');
    expect(r.done).toEqual([{ row: 0 }, { row: 1 }]);
    expect(r.doneKeys).toEqual(['k0', 'k1']);
    expect(readFileSync(`${out}.partial`, 'utf8')).toBe(line(0) + line(1));
    r.write(line(2), ['k2']);
    appendFileSync(`${out}.partial.rows`, 'k3\nk4'); // keys ahead of their lines, one cut
    r.close();
    r = ResumableOutput.open(out, settings, 'test');
    expect(r.doneKeys).toEqual(['k0', 'k1', 'k2']);
    r.commit();
    expect(readdirSync(dir)).toEqual(['o.jsonl']);
    expect(readFileSync(out, 'utf8')).toBe(line(0) + line(1) + line(2));
  });

  it('other settings are refused by name (changed files by file), releasing the lock; a partial without a line starts over', () => {
    const dir = mkdtempSync(join(tmpdir(), 'srk-partial-'));
    const out = join(dir, 'o.jsonl');
    const r = ResumableOutput.open(out, { seed: 1, files: { 'config.json': '1:1', 'model.safetensors': '9:9' } }, 'srk test');
    r.write(line(0));
    r.close();
    expect(() => ResumableOutput.open(out, { seed: 2, files: { 'config.json': '1:2', 'model.safetensors': '9:9' } }, 'srk test'))
      .toThrow(/other settings \(seed: 1 then, 2 now; model files changed since: config\.json\)/);
    expect(readdirSync(dir)).not.toContain('o.jsonl.partial.lock'); // (a refusal releases the lock)
    writeFileSync(`${out}.partial`, '');
    const fresh = ResumableOutput.open(out, { seed: 2 }, 'srk test');
    expect(fresh.done).toEqual([]);
    fresh.discard();
    expect(readdirSync(dir)).toEqual([]);
  });
});
