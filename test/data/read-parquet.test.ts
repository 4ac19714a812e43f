// Parquet data (src/data/read-parquet.ts through read-jsonl.ts): files written here with hyparquet-writer in
// the shapes the hub serves (flat strings with a metadata struct and an int64 column; chat columns as
// list<struct<content, role>> with top-level scores) read to exactly the rows the same objects give as
// JSON lines, across row groups and codecs; a bad row is `file: row N`, skipped and counted when asked;
// a codec srk does not read is named; `srk logprobs` scores a Parquet file as its JSON-lines twin.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { loadPreferenceRows } from '../../src/data/preference-rows.js';
import { iterateJsonl, newJsonlStats } from '../../src/data/read-jsonl.js';
import { parquetRowCount } from '../../src/data/read-parquet.js';
import { repoRoot, sharedFile } from '../model/paths.js';

const dir = mkdtempSync(path.join(tmpdir(), 'srk-parquet-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Row = Record<string, unknown>;
const str = (name: string) => ({ name, type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' });
const dbl = (name: string) => ({ name, type: 'DOUBLE', repetition_type: 'OPTIONAL' });
/** list<struct<content: string, role: string>>, as pyarrow writes a chat column. */
const messages = (name: string) => [
  { name, repetition_type: 'OPTIONAL', converted_type: 'LIST', num_children: 1 },
  { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
  { name: 'element', repetition_type: 'OPTIONAL', num_children: 2 },
  str('content'), str('role'),
];

function writeParquet(name: string, schema: Row[], rows: Row[], o: { rowGroupSize?: number; codec?: string } = {}): string {
  const columns = Object.keys(rows[0]!); // in the schema's order of its top-level fields
  const compressors = { GZIP: (b: Uint8Array) => new Uint8Array(zlib.gzipSync(b)), BROTLI: (b: Uint8Array) => new Uint8Array(zlib.brotliCompressSync(b)) };
  const buf = parquetWriteBuffer({
    schema: [{ name: 'root', num_children: columns.length }, ...schema.slice(1)] as never,
    columnData: columns.map((c) => ({ name: c, data: rows.map((r) => r[c] ?? null) })) as never,
    rowGroupSize: o.rowGroupSize ?? 1000, ...(o.codec ? { codec: o.codec as never, compressors: compressors as never } : {}),
  });
  const f = path.join(dir, name);
  writeFileSync(f, new Uint8Array(buf));
  return f;
}

const writeJsonl = (name: string, rows: Row[]) => {
  const f = path.join(dir, name);
  writeFileSync(f, rows.map((r) => JSON.stringify(r, (_, v) => (typeof v === 'bigint' ? Number(v) : v))).join('\n') + '\n');
  return f;
};

const UF = sharedFile('data/ultrafeedback_binarized_trl-lib_sample200_eval.jsonl');
const ufRows = (n: number): Row[] => readFileSync(UF!, 'utf8').trim().split('\n').slice(0, n).map((l) => JSON.parse(l) as Row);

describe.skipIf(!UF)('Parquet preference data', () => {
  it('flat rows with a metadata struct and an int64 column: the rows JSON lines give, across row groups and codecs', async () => {
    const rows = ufRows(23).map((r) => ({ ...r, source_index: BigInt(r.source_index as number) }));
    const schema = [{ name: 'root' }, str('prompt'), str('chosen'), str('rejected'), { name: 'source_index', type: 'INT64', repetition_type: 'OPTIONAL' },
      { name: 'metadata', repetition_type: 'OPTIONAL', num_children: 2 }, dbl('score_chosen'), dbl('score_rejected')];
    const want = await loadPreferenceRows(writeJsonl('flat.jsonl', rows));
    expect(want.rows).toHaveLength(23);
    expect(want.stats.withScores).toBe(23);
    for (const codec of ['SNAPPY', 'UNCOMPRESSED', 'GZIP', 'BROTLI']) {
      const f = writeParquet(`flat-${codec}.parquet`, schema, rows, { rowGroupSize: 5, codec });
      const got = await loadPreferenceRows(f);
      expect(got.rows, codec).toEqual(want.rows);
      expect(got.lineNumbers).toEqual(Array.from({ length: 23 }, (_, i) => i + 1));
      expect(await parquetRowCount(f)).toBe(23);
    }
  });

  it('chat columns (list<struct<content, role>>) with top-level int64 scores, as trl-lib/ultrafeedback_binarized', async () => {
    const rows = ufRows(9).map((r) => {
      const meta = r.metadata as Row;
      return {
        chosen: [{ content: r.prompt, role: 'user' }, { content: r.chosen, role: 'assistant' }],
        rejected: [{ content: r.prompt, role: 'user' }, { content: r.rejected, role: 'assistant' }],
        // Integer judge scores, as some data sets store them: int64 columns.
        score_chosen: BigInt(Math.round(meta.score_chosen as number)), score_rejected: BigInt(Math.round(meta.score_rejected as number)),
      };
    });
    const int64 = (name: string) => ({ name, type: 'INT64', repetition_type: 'OPTIONAL' });
    const schema = [{ name: 'root' }, ...messages('chosen'), ...messages('rejected'), int64('score_chosen'), int64('score_rejected')];
    const f = writeParquet('chat.parquet', schema, rows);
    const got = await loadPreferenceRows(f);
    const want = await loadPreferenceRows(writeJsonl('chat.jsonl', rows));
    expect(got.stats.byShape.chat).toBe(9);
    expect(got.stats.withScores).toBe(9);
    expect(got.rows).toEqual(want.rows);
    expect(got.rows[0].prompt).toContain(ufRows(1)[0].prompt as string);
  });

  it('a bad row is `file: row N`, or skipped and counted; a codec srk does not read is named', async () => {
    const rows: Row[] = [{ prompt: 'p', chosen: 'a', rejected: 'b' }, { prompt: 'p', chosen: null, rejected: 'b' }, { prompt: 'q', chosen: 'c', rejected: 'd' }];
    const f = writeParquet('bad.parquet', [{ name: 'root' }, str('prompt'), str('chosen'), str('rejected')], rows, { rowGroupSize: 2 });
    await expect(loadPreferenceRows(f)).rejects.toThrow(`${f}: row 2: `);
    const skipped = await loadPreferenceRows(f, { skipBadRows: true });
    expect(skipped.rows.map((r) => r.prompt)).toEqual(['p', 'q']);
    expect(skipped.lineNumbers).toEqual([1, 3]);
    expect(skipped.read.badRows).toBe(1);
    expect(skipped.read.badReasons[0]).toMatch(new RegExp(`^${f.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: row 2: `));
    // LZ4 (written with a stand-in compressor: the reader refuses it before it decodes anything).
    const lz4 = path.join(dir, 'lz4.parquet');
    writeFileSync(lz4, new Uint8Array(parquetWriteBuffer({
      columnData: [{ name: 'prompt', data: ['x'], type: 'STRING' }], codec: 'LZ4' as never, compressors: { LZ4: (b: Uint8Array) => b } as never,
    })));
    const stats = newJsonlStats();
    await expect((async () => { for await (const _ of iterateJsonl(lz4, undefined, {}, stats)) { /* */ } })())
      .rejects.toThrow(new RegExp(`lz4\\.parquet: Parquet compressed with LZ4, which srk does not read .*compression="snappy"`));
    const cut = path.join(dir, 'cut.parquet');
    writeFileSync(cut, readFileSync(f).subarray(0, 40));
    await expect(loadPreferenceRows(cut)).rejects.toThrow(/cut\.parquet: cannot read it as Parquet/);
  });

  it('text that is not UTF-8 is a bad row naming its field, as in JSON lines (it was read as U+FFFD)', async () => {
    const bytes = (...b: number[]) => new Uint8Array(b);
    const rows: Row[] = [
      { prompt: 'p', chosen: 'a', rejected: 'b' },
      { prompt: 'q', chosen: bytes(0x61, 0xed, 0xa0, 0x80), rejected: 'b' }, // a CESU-8 lone surrogate
      { prompt: 'r', chosen: 'c', rejected: bytes(0xff, 0xfe) },
    ];
    const f = writeParquet('not-utf8.parquet', [{ name: 'root' }, str('prompt'), str('chosen'), str('rejected')], rows);
    await expect(loadPreferenceRows(f)).rejects.toThrow(`${f}: row 2: field "chosen" is not valid UTF-8`);
    const skipped = await loadPreferenceRows(f, { skipBadRows: true });
    expect(skipped.rows.map((r) => r.prompt)).toEqual(['p']);
    expect(skipped.read.badReasons[1]).toBe(`${f}: row 3: field "rejected" is not valid UTF-8`);
    // An int64 judge score past 2^53 (its decimal text) is said as the integer it is, not as "a string".
    const big = writeParquet('big-score.parquet', [{ name: 'root' }, str('prompt'), str('chosen'), str('rejected'), { name: 'score_chosen', type: 'INT64', repetition_type: 'OPTIONAL' },
      { name: 'score_rejected', type: 'INT64', repetition_type: 'OPTIONAL' }], [{ prompt: 'p', chosen: 'a', rejected: 'b', score_chosen: 2n ** 53n + 1n, score_rejected: 1n }]);
    await expect(loadPreferenceRows(big)).rejects.toThrow(/row 1: field "score_chosen" must be a finite number, got the integer 9007199254740993, past what a number holds exactly/);
  });

  it('srk logprobs scores a Parquet file as its JSON-lines twin', () => {
    const rows = ufRows(3).map((r) => ({ prompt: (r.prompt as string).slice(0, 60), chosen: (r.chosen as string).slice(0, 40), rejected: (r.rejected as string).slice(0, 40) }));
    const pq = writeParquet('score.parquet', [{ name: 'root' }, str('prompt'), str('chosen'), str('rejected')], rows);
    const jl = writeJsonl('score.jsonl', rows);
    const model = path.join(repoRoot, 'test/fixtures/hf/gpt-neox-tiny');
    const run = (data: string) => spawnSync(process.execPath, [path.join(repoRoot, 'bin/srk.js'), 'logprobs', '--model', model, '--data', data],
      { cwd: repoRoot, encoding: 'utf8', timeout: 120_000 });
    const a = run(pq); const b = run(jl);
    expect(a.status, a.stderr).toBe(0);
    expect(a.stdout.trim().split('\n')).toHaveLength(3);
    expect(a.stdout).toBe(b.stdout);
  }, 120_000);
});
