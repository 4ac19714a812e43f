// Rows of a Parquet file (what Hugging Face datasets and the hub's parquet exports hold), read with
// hyparquet one row group at a time, so a large file is never decoded whole. Nested columns arrive as
// JavaScript values (a chat column's list<struct<content, role>> as an array of objects), like a JSON
// line's; 64-bit integers become numbers where they fit exactly.
//
// Compression: uncompressed and snappy (hyparquet itself; pyarrow's and so the datasets library's
// default), gzip and brotli (node:zlib), zstd where this Node's zlib has it (22.15 and later). Other
// codecs (LZ4, LZO) are refused by name, with the way to re-save the file.
import { open } from 'node:fs/promises';
import zlib from 'node:zlib';
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } from 'hyparquet';
import type { JsonObject } from './read-jsonl.js';

type Decompressor = (input: Uint8Array, outputLength: number) => Uint8Array;

const viaZlib = (fn: (b: Buffer) => Buffer): Decompressor => (input) => new Uint8Array(fn(Buffer.from(input.buffer, input.byteOffset, input.byteLength)));
const zstd = (zlib as unknown as { zstdDecompressSync?: (b: Buffer) => Buffer }).zstdDecompressSync;
const COMPRESSORS: Record<string, Decompressor> = {
  GZIP: viaZlib(zlib.gunzipSync),
  BROTLI: viaZlib(zlib.brotliDecompressSync),
  ...(zstd ? { ZSTD: viaZlib(zstd) } : {}),
};

/** Whether `file` starts with Parquet's magic bytes "PAR1" (whatever its name). */
export async function isParquet(file: string): Promise<boolean> {
  const fh = await open(file, 'r');
  try {
    const b = Buffer.alloc(4);
    const { bytesRead } = await fh.read(b, 0, 4, 0);
    return bytesRead === 4 && b.toString('latin1') === 'PAR1';
  } finally {
    await fh.close();
  }
}

/** `file: message`, with the way out where the message is an unsupported codec. */
function parquetError(file: string, e: unknown): Error {
  const msg = e instanceof Error ? e.message : String(e);
  const codec = /unsupported compression codec: (\w+)/.exec(msg)?.[1];
  if (codec) {
    return new Error(`${file}: Parquet compressed with ${codec}, which srk does not read (it reads uncompressed, snappy, gzip, brotli` +
      `${zstd ? ', zstd' : ''}); re-save it, e.g. pyarrow.parquet.write_table(table, path, compression="snappy")`);
  }
  return new Error(`${file}: cannot read it as Parquet (${msg})`);
}

/** A string column's value that is not UTF-8: hyparquet's own decoder made it U+FFFD without a word, where
 *  a JSON Lines file with the same bytes is a bad line (read-jsonl.ts). */
const NOT_UTF8 = Symbol('not UTF-8');
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const PARSERS = {
  stringFromBytes: (bytes: Uint8Array | undefined): unknown => {
    if (!bytes) return bytes;
    try { return strictUtf8.decode(bytes); } catch { return NOT_UTF8; }
  },
};

/** The path of the first value of `v` that is not UTF-8 ("messages[1].content"), or undefined. */
function notUtf8At(v: unknown, at = ''): string | undefined {
  if (v === NOT_UTF8) return at;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) { const p = notUtf8At(v[i], `${at}[${i}]`); if (p !== undefined) return p; }
  } else if (v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    for (const [k, x] of Object.entries(v)) { const p = notUtf8At(x, at ? `${at}.${k}` : k); if (p !== undefined) return p; }
  }
  return undefined;
}

/** Plain JSON-like values: 64-bit integers as numbers where exact (else as decimal strings, which a
 *  field check then refuses by name); everything else as hyparquet decoded it. */
function plain(v: unknown): unknown {
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  if (Array.isArray(v)) return v.map(plain);
  if (v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    return Object.fromEntries(Object.entries(v as JsonObject).map(([k, x]) => [k, plain(x)]));
  }
  return v;
}

/** The rows of a Parquet file in order, each with its 1-based row number; a row with text that is not
 *  UTF-8 as its reason instead (a bad row, as such a JSON line is). */
export async function* parquetRows(file: string): AsyncGenerator<{ row: number; value: JsonObject } | { row: number; reason: string }> {
  let buffer; let metadata;
  try {
    buffer = await asyncBufferFromFile(file);
    metadata = await parquetMetadataAsync(buffer);
  } catch (e) { throw parquetError(file, e); }
  let start = 0;
  for (const group of metadata.row_groups) {
    const end = start + Number(group.num_rows);
    let rows: JsonObject[];
    try {
      rows = await parquetReadObjects({ file: buffer, metadata, rowStart: start, rowEnd: end, compressors: COMPRESSORS, parsers: PARSERS }) as JsonObject[];
    } catch (e) { throw parquetError(file, e); }
    for (let i = 0; i < rows.length; i++) {
      const bad = notUtf8At(rows[i]);
      if (bad !== undefined) yield { row: start + i + 1, reason: `field "${bad}" is not valid UTF-8` };
      else yield { row: start + i + 1, value: plain(rows[i]) as JsonObject };
    }
    start = end;
  }
}

/** The number of rows the file's footer records. */
export async function parquetRowCount(file: string): Promise<number> {
  try {
    return Number((await parquetMetadataAsync(await asyncBufferFromFile(file))).num_rows);
  } catch (e) { throw parquetError(file, e); }
}
