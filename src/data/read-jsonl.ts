// Streaming JSON-lines reader for .jsonl and .jsonl.gz files, and Parquet files' rows (read-parquet.ts)
// through the same checks; a file that is one JSON array of rows (it starts with "[") is read whole and
// its elements numbered as rows.
//
// Lines are read one at a time (split from a file stream, through a gunzip stream when the file
// starts with the gzip magic bytes 1f 8b, whatever its name), so a large file is never held whole in
// memory as text; each is strict UTF-8 (a line that is not is a bad line). Blank lines are ignored. Each other line must be a JSON object; an optional
// `validate` callback checks its fields and turns it into the caller's row type (it throws on a
// missing or mistyped field).
//
// A bad line (invalid JSON, not an object, or rejected by `validate`) is a JsonlRowError whose
// message starts with `file:line:` and says what is wrong. With `skipBadRows` such lines are skipped
// instead and counted in the stats: `badRows` and the first `maxReasons` messages.

import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { createGunzip } from 'node:zlib';
import type { Readable } from 'node:stream';
import { isParquet, parquetRowCount, parquetRows } from './read-parquet.js';

/** A malformed line: `file:line: reason` (a Parquet file's row: `file: row N: reason`). */
export class JsonlRowError extends Error {
  constructor(readonly file: string, readonly line: number, readonly reason: string, unit: 'line' | 'row' = 'line') {
    super(unit === 'line' ? `${file}:${line}: ${reason}` : `${file}: row ${line}: ${reason}`);
    this.name = 'JsonlRowError';
  }
}

/** Thrown by validators for a missing or mistyped field; the reader adds `file:line`. */
export class RowShapeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RowShapeError';
  }
}

export type JsonObject = Record<string, unknown>;

/** Checks one parsed line and converts it; throw (any Error) to reject the line. */
export type RowValidator<T> = (obj: JsonObject, line: number) => T;

export interface JsonlOptions {
  /** Skip and count bad lines instead of throwing (default false). */
  skipBadRows?: boolean;
  /** How many skip reasons to keep (default 5). */
  maxReasons?: number;
  /** Stop once this many rows are read (readJsonl): a held-out subset (--max-pairs) reads no further, and
   *  checks no row past it. */
  maxRows?: number;
}

export interface JsonlStats {
  /** Non-blank lines seen. */
  lines: number;
  /** Rows yielded. */
  rows: number;
  /** Lines skipped as bad (only with skipBadRows). */
  badRows: number;
  /** The first few skip messages, each `file:line: reason`. */
  badReasons: string[];
  /** What a row's number counts: lines of JSONL, rows of a Parquet file (set when reading starts). */
  unit: 'line' | 'row';
}

export interface JsonlRow<T> {
  value: T;
  /** 1-based line number in the (decompressed) file. */
  line: number;
}

export function newJsonlStats(): JsonlStats {
  return { lines: 0, rows: 0, badRows: 0, badReasons: [], unit: 'line' };
}

/** The file's first two bytes (fewer in a shorter file). */
async function firstBytes(file: string): Promise<Buffer> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(2);
    const { bytesRead } = await fh.read(buf, 0, 2, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/**
 * Raw lines (without line terminators: \n, \r\n or a lone \r) with 1-based line numbers; gzip is
 * detected by magic bytes. Each line is decoded as strict UTF-8: a line that is not valid UTF-8 has
 * `invalid` set (its text decoded with replacement characters), so the reader can name it rather
 * than read U+FFFD into the data where Python's json and datasets would stop.
 */
export async function* readLines(file: string): AsyncGenerator<{ line: number; text: string; invalid?: string }> {
  const magic = await firstBytes(file);
  const gz = magic.length === 2 && magic[0] === 0x1f && magic[1] === 0x8b;
  // UTF-16 (what Windows PowerShell's > writes) read as UTF-8 is a bad line per NUL-split fragment: said once.
  if (magic.length === 2 && ((magic[0] === 0xff && magic[1] === 0xfe) || (magic[0] === 0xfe && magic[1] === 0xff))) {
    throw new Error(`${file}: UTF-16 text (its byte order mark ${magic[0].toString(16).toUpperCase()} ${magic[1].toString(16).toUpperCase()}): ` +
      'srk reads UTF-8; convert it (iconv -f UTF-16 -t UTF-8, or PowerShell\'s Out-File -Encoding utf8)');
  }
  const raw = createReadStream(file);
  let input: Readable = raw;
  if (gz) {
    const gunzip = createGunzip();
    // A read error on the file must reach the consumer through the gunzip stream.
    raw.on('error', (e) => gunzip.destroy(e));
    input = raw.pipe(gunzip);
  }
  const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  const lenient = new TextDecoder('utf-8', { ignoreBOM: true });
  let line = 0;
  // One line's bytes (\n-delimited) as text lines: a lone \r also ends a line, as readline has it.
  const decode = (bytes: Uint8Array): { text: string; invalid?: string }[] => {
    let text: string; let invalid: string | undefined;
    try { text = strict.decode(bytes); } catch { text = lenient.decode(bytes); invalid = 'not valid UTF-8'; }
    if (text.endsWith('\r')) text = text.slice(0, -1);
    return text.split('\r').map((t) => (invalid ? { text: t, invalid } : { text: t }));
  };
  const emit = function* (bytes: Uint8Array): Generator<{ line: number; text: string; invalid?: string }> {
    for (const l of decode(bytes)) {
      line++;
      yield line === 1 && l.text.charCodeAt(0) === 0xfeff ? { line, ...l, text: l.text.slice(1) } : { line, ...l };
    }
  };
  // Bytes of the line being read, across chunks (joined once its end is found).
  let pending: Buffer[] = [];
  try {
    for await (const chunk of input as AsyncIterable<Buffer>) {
      let start = 0;
      for (let nl = chunk.indexOf(0x0a); nl >= 0; nl = chunk.indexOf(0x0a, start)) {
        const part = chunk.subarray(start, nl);
        yield* emit(pending.length ? Buffer.concat([...pending, part]) : part);
        pending = [];
        start = nl + 1;
      }
      if (start < chunk.length) pending.push(chunk.subarray(start));
    }
    if (pending.length) yield* emit(Buffer.concat(pending));
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw new Error(`${file}: read failed after line ${line}${gz ? ' (gzip)' : ''}: ${msg}`);
  } finally {
    raw.destroy();
    if (input !== raw) input.destroy();
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'nothing (the field is missing)';
  if (Array.isArray(v)) return 'an array';
  return `${typeof v === 'object' ? 'an' : 'a'} ${typeof v}`;
}

/** The most text a JSON array file may hold: V8's longest string is 2^29 - 24 UTF-16 units. */
const MAX_JSON_ARRAY_CHARS = 2 ** 29 - 64;

type RawLine = { line: number; text: string; invalid?: string };
type ObjectItem = { line: number; obj?: JsonObject; reason?: string };

/** One JSON line as a row, or the reason it is none. */
function lineObject({ line, text, invalid }: RawLine): ObjectItem {
  if (invalid) return { line, reason: invalid };
  let obj: unknown;
  try {
    // A byte order mark starting a later line (files joined with cat, each with its own) is no part of the row.
    obj = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (e) {
    return { line, reason: `invalid JSON (${e instanceof Error ? e.message : String(e)})` };
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) return { line, reason: `expected a JSON object, got ${describe(obj)}` };
  return { line, obj: obj as JsonObject };
}

/** JSON.parse's "at position N" as a line and column of `text` (1-based), where the message has one. */
function jsonErrorAt(message: string, text: string): string {
  const m = /position (\d+)/.exec(message);
  if (!m) {
    // V8 quotes a snippet instead (a trailing comma, an unquoted value): on one line, newlines escaped.
    const oneLine = message.replace(/\r?\n/g, '\\n');
    return /end of JSON/.test(message) ? `${oneLine}: the text ends on line ${text.split('\n').length}, inside it` : oneLine;
  }
  const pos = Number(m[1]);
  const before = text.slice(0, pos);
  const line = before.split('\n').length;
  return `${message.replace(/\s*\(line \d+ column \d+\)/, '')} (line ${line}, column ${pos - before.lastIndexOf('\n')})`;
}

/**
 * A file that is one JSON array of rows (what `datasets`' `to_json(lines=False)` and many repositories
 * write; `load_dataset("json")` reads both forms), from its first line, which starts with `[`, on: parsed
 * whole, its elements numbered as rows from 1.
 */
async function* arrayObjects(file: string, lines: RawLine[], rest: AsyncIterator<RawLine>, stats: JsonlStats): AsyncGenerator<ObjectItem> {
  stats.unit = 'row';
  const parts = lines.map((l) => l.text);
  let chars = parts.reduce((n, t) => n + t.length + 1, 0);
  for (let r = await rest.next(); !r.done; r = await rest.next()) {
    const { line, text, invalid } = r.value;
    if (invalid) throw new Error(`${file}:${line}: ${invalid} (a JSON array file is read whole)`);
    chars += text.length + 1;
    if (chars > MAX_JSON_ARRAY_CHARS) {
      throw new Error(`${file}: a JSON array of over 512 MiB of text, more than one string can hold; write it as JSON Lines ` +
        "(one row per line: jq -c '.[]' or datasets' to_json) and give that");
    }
    parts.push(text);
  }
  const text = parts.join('\n');
  let rows: unknown;
  try {
    rows = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: starts with "[" but is not a JSON array (${jsonErrorAt(e instanceof Error ? e.message : String(e), text)}); ` +
      'srk reads JSON Lines (one object per line), a JSON array of objects, or Parquet');
  }
  if (!Array.isArray(rows)) throw new Error(`${file}: starts with "[" but holds ${describe(rows)}`);
  for (const [i, obj] of rows.entries()) {
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) yield { line: i + 1, reason: `expected a JSON object, got ${describe(obj)}` };
    else yield { line: i + 1, obj: obj as JsonObject };
  }
}

/** A file's objects in order: JSON lines (a line that is not a JSON object as its reason), a JSON array's
 *  elements (arrayObjects), or a Parquet file's rows (read-parquet.ts), each with its 1-based line or row
 *  number; `stats.unit` says which. */
async function* objectsOf(file: string, parquet: boolean, stats: JsonlStats): AsyncGenerator<ObjectItem> {
  if (parquet) {
    for await (const r of parquetRows(file)) yield 'reason' in r ? { line: r.row, reason: r.reason } : { line: r.row, obj: r.value };
    return;
  }
  const lines = readLines(file)[Symbol.asyncIterator]();
  // Stepped by hand (to look one line ahead), so closed by hand: a reader that stops early (a bad row
  // thrown, a caller's break) must not leave the file open.
  try {
    yield* objectLines(file, lines, stats);
  } finally {
    await lines.return?.(undefined);
  }
}

async function* objectLines(file: string, lines: AsyncIterator<RawLine>, stats: JsonlStats): AsyncGenerator<ObjectItem> {
  let first = true;
  for (let r = await lines.next(); !r.done; r = await lines.next()) {
    const l = r.value;
    if (!l.invalid && l.text.trim() === '') continue;
    if (first && !l.invalid && l.text.trimStart().startsWith('[')) {
      // A first line that is whole JSON on its own is a one-line array file, or, with more lines after it,
      // a JSON Lines file whose first line is no row (a bad line, skippable, as any other).
      let alone = true;
      try { JSON.parse(l.text); } catch { alone = false; }
      if (!alone) { yield* arrayObjects(file, [l], lines, stats); return; }
      let next = await lines.next();
      while (!next.done && !next.value.invalid && next.value.text.trim() === '') next = await lines.next();
      if (next.done) { yield* arrayObjects(file, [l], lines, stats); return; }
      yield lineObject(l);
      yield lineObject(next.value);
      first = false;
      continue;
    }
    first = false;
    yield lineObject(l);
  }
}

/** Half a surrogate pair: a high surrogate without the low one after it, or a low one without the high one before it. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Where a parsed row holds a string that is not well-formed UTF-16 (a JSON escape of half a surrogate pair,
 * "\ud800", which JSON.parse accepts and a tokenizer would read as U+FFFD): the field's path, or undefined.
 * Python's json reads it too, and Hugging Face's tokenizers then refuse the text; raw bytes that are not
 * UTF-8 are refused by the reader (readLines) the same way.
 */
function loneSurrogateAt(v: unknown): string | undefined {
  const keys = surrogatePath(v);
  if (keys === undefined) return undefined;
  const at = keys.reduce((a, k) => (typeof k === 'number' ? `${a}[${k}]` : a === '' ? k : `${a}.${k}`), '');
  return `field ${JSON.stringify(at)}`;
}

/** The keys down to the first string with a lone surrogate (built only where one is found: every row is walked). */
function surrogatePath(v: unknown): (string | number)[] | undefined {
  if (typeof v === 'string') return LONE_SURROGATE.test(v) ? [] : undefined;
  if (v === null || typeof v !== 'object') return undefined;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) { const p = surrogatePath(v[i]); if (p) return [i, ...p]; }
    return undefined;
  }
  for (const k in v) { const p = surrogatePath((v as Record<string, unknown>)[k]); if (p) return [k, ...p]; }
  return undefined;
}

/**
 * Rows of a data file as the readers below number them (a progress total): non-blank lines of JSON Lines,
 * a JSON array's elements, a Parquet file's rows. Only an array file is parsed for it.
 */
export async function countDataRows(file: string): Promise<number> {
  if (await isParquet(file)) return parquetRowCount(file);
  let n = 0;
  for await (const { text, invalid } of readLines(file)) {
    if (!invalid && text.trim() === '') continue;
    if (n === 0 && !invalid && text.trimStart().startsWith('[')) {
      const stats = newJsonlStats();
      let rows = 0;
      for await (const item of objectsOf(file, false, stats)) { void item; rows++; }
      return rows;
    }
    n++;
  }
  return n;
}

/**
 * A bad row: thrown, or with `skipBadRows` counted in `stats` with the first `maxReasons` messages. Also
 * for what a caller finds wrong with a row after reading it (tokenize-pairs.ts: a row with no tokens).
 */
export function recordBadRow(stats: JsonlStats, err: JsonlRowError, opts: JsonlOptions): void {
  if (!opts.skipBadRows) throw err;
  stats.badRows++;
  if (stats.badReasons.length < (opts.maxReasons ?? 5)) stats.badReasons.push(err.message);
}

/**
 * Streams the rows of a .jsonl / .jsonl.gz file, or of a Parquet file (told by its magic bytes, as
 * gzip is). `stats` (if given) is updated as rows go by. Without `validate` each row is the object itself.
 */
export async function* iterateJsonl<T = JsonObject>(
  file: string,
  validate?: RowValidator<T>,
  opts: JsonlOptions = {},
  stats: JsonlStats = newJsonlStats(),
): AsyncGenerator<JsonlRow<T>> {
  // Opening a directory fails with an EISDIR that does not name it.
  if ((await stat(file)).isDirectory()) {
    throw Object.assign(new Error(`${file}: a directory, not a data file (JSON Lines, a JSON array, gzipped or not, or Parquet)`), { code: 'EISDIR' });
  }
  const parquet = await isParquet(file);
  stats.unit = parquet ? 'row' : 'line';
  const bad = (line: number, reason: string): void => recordBadRow(stats, new JsonlRowError(file, line, reason, stats.unit), opts);
  for await (const { line, obj, reason } of objectsOf(file, parquet, stats)) {
    stats.lines++;
    if (!obj) { bad(line, reason!); continue; }
    const unpaired = loneSurrogateAt(obj);
    if (unpaired !== undefined) { bad(line, `${unpaired} holds a lone UTF-16 surrogate (an escape such as \\ud800 without its pair): no character, not valid Unicode`); continue; }
    let value: T;
    if (validate) {
      try {
        value = validate(obj, line);
      } catch (e) {
        bad(line, e instanceof Error ? e.message : String(e));
        continue;
      }
    } else {
      value = obj as T;
    }
    stats.rows++;
    yield { value, line };
  }
}

export interface JsonlResult<T> extends JsonlStats {
  values: T[];
  /** Line number of each value. */
  lineNumbers: number[];
  /** Stopped at JsonlOptions.maxRows: the file may hold more rows, not read. */
  stopped: boolean;
}

/** Reads a whole .jsonl / .jsonl.gz file into an array of (validated) rows. */
export async function readJsonl<T = JsonObject>(
  file: string,
  validate?: RowValidator<T>,
  opts: JsonlOptions = {},
): Promise<JsonlResult<T>> {
  const stats = newJsonlStats();
  const values: T[] = [];
  const lineNumbers: number[] = [];
  let stopped = false;
  for await (const r of iterateJsonl(file, validate, opts, stats)) {
    values.push(r.value);
    lineNumbers.push(r.line);
    if (opts.maxRows !== undefined && values.length >= opts.maxRows) { stopped = true; break; } // (the file is closed by the iterator's return)
  }
  return { ...stats, values, lineNumbers, stopped };
}

// ---- small field checkers for validators ----

export function requireString(obj: JsonObject, key: string): string {
  const v = obj[key];
  if (v === undefined) throw new RowShapeError(`missing field "${key}"`);
  if (typeof v !== 'string') throw new RowShapeError(`field "${key}" must be a string, got ${describe(v)}`);
  return v;
}

export function optionalNumber(obj: JsonObject, key: string): number | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    // (A Parquet int64 past 2^53 comes as its decimal text: read-parquet.ts.)
    const bigInteger = typeof v === 'string' && /^-?\d{16,}$/.test(v);
    throw new RowShapeError(`field "${key}" must be a finite number, got ${bigInteger ? `the integer ${v}, past what a number holds exactly (2^53)` : describe(v)}` +
      `${typeof v === 'number' ? ` (${v})` : ''}`);
  }
  return v;
}

export { describe as describeJsonValue };
