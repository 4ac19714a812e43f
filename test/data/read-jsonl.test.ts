import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import {
  JsonlRowError, iterateJsonl, readJsonl, readLines, requireString, optionalNumber, type JsonObject,
} from '../../src/data/read-jsonl.js';

const dir = mkdtempSync(path.join(tmpdir(), 'srk-jsonl-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, text: string, gz = false): string {
  const f = path.join(dir, name);
  writeFileSync(f, gz ? gzipSync(Buffer.from(text, 'utf8')) : text);
  return f;
}

interface AB { a: string; b?: number }
const validateAB = (o: JsonObject): AB => ({ a: requireString(o, 'a'), b: optionalNumber(o, 'b') });

describe('readJsonl', () => {
  it('reads rows with line numbers, skipping blank lines, CRLF and a BOM', async () => {
    const f = write('ok.jsonl', '\ufeff{"a":"x"}\r\n\r\n{"a":"y","b":2}\n');
    const r = await readJsonl(f, validateAB);
    expect(r.values).toEqual([{ a: 'x', b: undefined }, { a: 'y', b: 2 }]);
    expect(r.lineNumbers).toEqual([1, 3]);
    expect(r.lines).toBe(2);
    expect(r.rows).toBe(2);
    expect(r.badRows).toBe(0);
  });

  it('bad JSON at line 3 is an error naming file.jsonl:3', async () => {
    const f = write('file.jsonl', '{"a":"1"}\n{"a":"2"}\n{"a": oops}\n{"a":"4"}\n');
    await expect(readJsonl(f, validateAB)).rejects.toThrow(/file\.jsonl:3: invalid JSON/);
    const err = await readJsonl(f).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JsonlRowError);
    expect((err as JsonlRowError).line).toBe(3);
    expect((err as JsonlRowError).message).toContain('file.jsonl:3');
  });

  it('a line that is not an object, a missing field and a mistyped field are errors with file:line', async () => {
    await expect(readJsonl(write('arr.jsonl', '{"a":"1"}\n[1,2]\n'))).rejects.toThrow(/arr\.jsonl:2: expected a JSON object, got an array/);
    await expect(readJsonl(write('miss.jsonl', '{"a":"1"}\n{"c":"2"}\n'), validateAB)).rejects.toThrow(/miss\.jsonl:2: missing field "a"/);
    await expect(readJsonl(write('type.jsonl', '{"a":1}\n'), validateAB)).rejects.toThrow(/type\.jsonl:1: field "a" must be a string, got a number/);
    await expect(readJsonl(write('num.jsonl', '{"a":"x","b":"7"}\n'), validateAB)).rejects.toThrow(/num\.jsonl:1: field "b" must be a finite number/);
  });

  it('skipBadRows: skips and counts bad lines, keeps the first few reasons', async () => {
    const lines = ['{"a":"ok1"}', 'not json', '{"b":1}', '"str"', '{"a":"ok2"}', '{', '{"a":3}', '{"a":"ok3"}'];
    const f = write('mixed.jsonl', lines.join('\n') + '\n');
    const r = await readJsonl(f, validateAB, { skipBadRows: true, maxReasons: 3 });
    expect(r.values.map((v) => v.a)).toEqual(['ok1', 'ok2', 'ok3']);
    expect(r.lineNumbers).toEqual([1, 5, 8]);
    expect(r.badRows).toBe(5);
    expect(r.lines).toBe(8);
    expect(r.badReasons).toHaveLength(3);
    expect(r.badReasons[0]).toMatch(/mixed\.jsonl:2: invalid JSON/);
    expect(r.badReasons[1]).toMatch(/mixed\.jsonl:3: missing field "a"/);
    expect(r.badReasons[2]).toMatch(/mixed\.jsonl:4: expected a JSON object, got a string/);
  });

  it('reads gzip files (detected by magic bytes, whatever the name) with the same line numbers', async () => {
    const text = '{"a":"x"}\n\n{"a":"y"}\n{"a": 5}\n';
    const gz = write('rows.jsonl.gz', text, true);
    const r = await readJsonl(gz, validateAB, { skipBadRows: true });
    expect(r.values.map((v) => v.a)).toEqual(['x', 'y']);
    expect(r.lineNumbers).toEqual([1, 3]);
    expect(r.badReasons[0]).toMatch(/rows\.jsonl\.gz:4: field "a" must be a string/);
    const odd = write('rows-gz-no-ext.jsonl', text, true);
    expect((await readJsonl(odd, validateAB, { skipBadRows: true })).values).toHaveLength(2);
  });

  it('streams a large gzip file line by line and can stop early', async () => {
    const n = 20000;
    const big = Array.from({ length: n }, (_, i) => JSON.stringify({ a: `row${i}`, b: i })).join('\n');
    const f = write('big.jsonl.gz', big, true);
    let count = 0;
    for await (const r of iterateJsonl(f, validateAB)) {
      expect(r.value.b).toBe(r.line - 1);
      if (++count === 100) break;
    }
    expect(count).toBe(100);
    const all = await readJsonl(f, validateAB);
    expect(all.rows).toBe(n);
    expect(all.values[n - 1]).toEqual({ a: `row${n - 1}`, b: n - 1 });
  });

  it('a JSON array of rows (pretty-printed or on one line, gzipped or not, after a BOM) reads as the same rows, numbered from 1', async () => {
    const rows = [{ a: 'x' }, { a: 'y', b: 2 }, { a: 'z\n[still text]' }];
    const jsonl = await readJsonl(write('same.jsonl', rows.map((r) => JSON.stringify(r)).join('\n')), validateAB);
    for (const [name, text, gz] of [['pretty.json', `\n  ${JSON.stringify(rows, null, 2)}\n`, false], ['one-line.json', `\ufeff${JSON.stringify(rows)}`, false],
      ['array.json.gz', JSON.stringify(rows, null, 1), true]] as const) {
      const r = await readJsonl(write(name, text, gz), validateAB);
      expect(r.values, name).toEqual(jsonl.values);
      expect([r.lineNumbers, r.rows, r.unit], name).toEqual([[1, 2, 3], 3, 'row']);
    }
    // A bad element is a bad row by its number, skippable like a bad line.
    const bad = write('bad.json', '[{"a": "x"},\n 5,\n {"b": 1}]');
    await expect(readJsonl(bad, validateAB)).rejects.toThrow(/bad\.json: row 2: expected a JSON object, got a number/);
    const skipped = await readJsonl(bad, validateAB, { skipBadRows: true });
    expect([skipped.rows, skipped.badRows]).toEqual([1, 2]);
    expect(skipped.badReasons[1]).toMatch(/bad\.json: row 3: .*"a"/);
    // Not an array after all: one error for the file, saying what srk reads.
    await expect(readJsonl(write('cut.json', '[{"a": "x"},\n {"a": '))).rejects.toThrow(/cut\.json: starts with "\[" but is not a JSON array \(.*: the text ends on line 2, inside it\); srk reads JSON Lines/);
    await expect(readJsonl(write('typo.json', '[{"a": "x"},\n {"a" "y"}]'))).rejects.toThrow(/typo\.json: starts with "\[" but is not a JSON array \(.*\(line 2, column 7\)\)/);
    // V8 quotes a snippet for some errors (a trailing comma): the message stays on one line.
    const comma = await readJsonl(write('comma.json', '[{"a": "x"},\n {"a": "y"},\n]')).catch((e: Error) => e);
    expect((comma as Error).message).toMatch(/comma\.json: starts with "\[" but is not a JSON array/);
    expect((comma as Error).message).not.toContain('\n');
    // A first line that is whole JSON with more lines after it: JSON Lines, that line a bad one.
    const meta = write('meta-first.jsonl', '["meta"]\n{"a": "x"}\n\n{"a": "y"}\n');
    await expect(readJsonl(meta, validateAB)).rejects.toThrow(/meta-first\.jsonl:1: expected a JSON object, got an array/);
    const rest = await readJsonl(meta, validateAB, { skipBadRows: true });
    expect([rest.values.map((v) => v.a), rest.lineNumbers, rest.badRows, rest.unit]).toEqual([['x', 'y'], [2, 4], 1, 'line']);
  });

  it('a reader that stops early leaves no file open (JSON Lines and arrays alike)', async () => {
    const fds = () => readdirSync('/proc/self/fd').length;
    const files = [write('open.jsonl', '{"a":"x"}\n{"a":"y"}\n'), write('open.json', '[{"a":"x"},\n{"a":"y"}]'), write('open-meta.jsonl', '[1]\n{"a":"x"}\n')];
    const before = fds();
    for (let i = 0; i < 20; i++) {
      for (const f of files) {
        for await (const r of iterateJsonl(f, undefined, { skipBadRows: true })) { void r; break; }
      }
    }
    await new Promise((r) => setTimeout(r, 50)); // closes land on the event loop
    expect(fds() - before).toBeLessThan(10);
  });

  it('a corrupt gzip file is an error naming the file', async () => {
    const good = gzipSync(Buffer.from('{"a":"x"}\n'.repeat(1000)));
    const f = path.join(dir, 'broken.jsonl.gz');
    writeFileSync(f, good.subarray(0, good.length - 20));
    await expect(readJsonl(f)).rejects.toThrow(/broken\.jsonl\.gz/);
  });

  it('readLines yields raw lines (\\n, \\r\\n and a lone \\r end one; a BOM only at the start is dropped)', async () => {
    const f = write('raw.txt', '\ufeffa\nb\r\n\nc\rd\n\ufeffe');
    const got: string[] = [];
    for await (const l of readLines(f)) got.push(`${l.line}:${l.text}${l.invalid ? '!' : ''}`);
    expect(got).toEqual(['1:a', '2:b', '3:', '4:c', '5:d', '6:\ufeffe']);
  });

  it('lines are strict UTF-8, whatever the chunks: a multi-byte character across a chunk boundary reads whole', async () => {
    // Lines of 2-byte and 4-byte characters over several 64 KiB stream chunks (plain and gzip).
    const lines = Array.from({ length: 3000 }, (_, i) => JSON.stringify({ i, s: 'é'.repeat(i % 50) + '😀'.repeat(i % 7) }));
    for (const gz of [false, true]) {
      const f = write(`utf8${gz ? '.jsonl.gz' : '.jsonl'}`, `${lines.join('\n')}\n`, gz);
      const got: string[] = [];
      for await (const l of readLines(f)) { expect(l.invalid).toBeUndefined(); got.push(l.text); }
      expect(got).toEqual(lines);
    }
  });

  it('a line that is not valid UTF-8 is a bad line by number (Latin-1 bytes, a cut character), skippable', async () => {
    const f = path.join(dir, 'latin1.jsonl');
    const good = Buffer.from('{"prompt":"caf\u00e9","chosen":"a","rejected":"b"}\n');
    writeFileSync(f, Buffer.concat([good, Buffer.from('{"prompt":"caf'), Buffer.from([0xe9]), Buffer.from('","chosen":"a","rejected":"b"}\n'),
      good, Buffer.from('{"prompt":"'), Buffer.from([0xf0, 0x9f, 0x98]), Buffer.from('"}\n')]));
    await expect(readJsonl(f)).rejects.toThrow(/latin1\.jsonl:2: not valid UTF-8/);
    const r = await readJsonl(f, undefined, { skipBadRows: true });
    expect(r.values.map((v) => v.prompt)).toEqual(['café', 'café']);
    expect(r.lineNumbers).toEqual([1, 3]);
    expect(r.badReasons).toEqual([expect.stringMatching(/:2: not valid UTF-8/), expect.stringMatching(/:4: not valid UTF-8/)]);
  });

  it('a byte order mark starting a later line (files joined with cat) is no part of the row; a UTF-16 file is named as such', async () => {
    const f = path.join(dir, 'joined.jsonl');
    const row = '{"prompt":"P","chosen":"a","rejected":"b"}\n';
    writeFileSync(f, `\uFEFF${row}\uFEFF${row}`);
    const r = await readJsonl(f);
    expect(r.values.map((v) => v.prompt)).toEqual(['P', 'P']);
    const u16 = path.join(dir, 'utf16.jsonl');
    writeFileSync(u16, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(`${row}\r\n${row}`, 'utf16le')]));
    await expect(readJsonl(u16, undefined, { skipBadRows: true })).rejects.toThrow(/utf16\.jsonl: UTF-16 text \(its byte order mark FF FE\): srk reads UTF-8; convert it/);
  });

  it('a JSON escape of half a surrogate pair (\\ud800 alone) is a bad line naming the field; a whole pair (an emoji) reads', async () => {
    const f = path.join(dir, 'surrogates.jsonl');
    writeFileSync(f, [
      String.raw`{"prompt":"Q: \ud83d\ude00 ok","chosen":"a","rejected":"b"}`,
      String.raw`{"prompt":"Q","chosen":"yes \udc00","rejected":"b"}`,
      String.raw`{"prompt":[{"role":"user","content":"x\ud800"}],"chosen":"a","rejected":"b"}`,
      String.raw`{"prompt":"Q","chosen":"\ude00\ud83d","rejected":"b"}`,
    ].join('\n') + '\n');
    await expect(readJsonl(f)).rejects.toThrow(/surrogates\.jsonl:2: field "chosen" holds a lone UTF-16 surrogate/);
    const r = await readJsonl(f, undefined, { skipBadRows: true });
    expect(r.values.map((v) => v.prompt)).toEqual(['Q: \u{1F600} ok']);
    expect(r.badReasons).toEqual([expect.stringMatching(/:2: field "chosen" holds/), expect.stringMatching(/:3: field "prompt\[0\]\.content" holds/),
      expect.stringMatching(/:4: field "chosen" holds/)]);
  });
});
