// safetensors reading and writing (https://github.com/huggingface/safetensors, "Format").
//
// File layout: u64 little-endian N | N bytes of UTF-8 JSON header | tensor bytes.
// The header maps tensor names to {dtype, shape, data_offsets: [begin, end]} (offsets relative to
// the start of the tensor bytes) plus an optional "__metadata__" string->string map.
//
// Checkpoints can be many GB, so nothing here reads or builds a whole file in memory: the header
// is read first and validated as strictly as the Rust reference does (plus a duplicate-name check
// that JSON.parse cannot do), then each tensor is read on demand at its own file position, and
// writing streams tensor by tensor into a temporary file that is renamed into place at the end.
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

// Typed-array views below reinterpret bytes in host order; safetensors is little-endian.
if (os.endianness() !== 'LE') throw new Error('safetensors.ts assumes a little-endian host');

export type Dtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

/** Bytes per element of each supported dtype. */
export const DTYPE_SIZE: Readonly<Record<Dtype, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

/** The Rust reference refuses headers above this (safetensors MAX_HEADER_SIZE). */
export const MAX_HEADER_SIZE = 100_000_000;

export interface TensorInfo {
  dtype: Dtype;
  shape: number[];
  /** Absolute position of the first byte in the file (8 + N + begin). */
  byteOffset: number;
  byteLength: number;
}

export interface SafetensorsFile {
  path: string;
  /** name -> info (a null-prototype object, so any tensor name is a safe key). */
  header: Record<string, TensorInfo>;
  /** Tensor names in file (data offset) order. */
  names: string[];
  metadata: Record<string, string>;
  /** Reads one tensor and converts it to float32 (integers and bools by value). */
  readTensor(name: string): Promise<Float32Array>;
  /** Reads one tensor's bytes unchanged (little-endian, row-major). */
  readRaw(name: string): Promise<Uint8Array>;
  close(): Promise<void>;
}

const fail = (file: string, what: string): Error => new Error(`safetensors ${file}: ${what}`);

// ---------------------------------------------------------------------------------------------
// Header parsing and validation

/**
 * Finds the first key repeated within one JSON object of `text` (which JSON.parse has already
 * accepted, so the scan only needs to track strings and nesting). Returns the key and whether it
 * is at the top level (a tensor name) or inside an entry.
 */
export function findDuplicateKey(text: string): { key: string; topLevel: boolean } | null {
  const stack: (Set<string> | null)[] = []; // one Set per open object, null per open array
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string; // resolves escapes: "a" == "\u0061"
        const keys = stack[stack.length - 1]!;
        if (keys.has(key)) return { key, topLevel: stack.length === 1 };
        keys.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === '{') { stack.push(new Set()); expectKey = true; }
    else if (c === '[') { stack.push(null); expectKey = false; }
    else if (c === '}' || c === ']') { stack.pop(); expectKey = false; }
    else if (c === ',') { expectKey = stack[stack.length - 1] != null; }
  }
  return null;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

export interface ParsedHeader {
  header: Record<string, TensorInfo>;
  names: string[];
  metadata: Record<string, string>;
}

/**
 * Validates a header (the N bytes after the length prefix) against a file of `fileSize` bytes
 * and returns its entries. Every rule of the Rust reader is checked, and duplicates refused.
 */
export function parseHeader(file: string, headerBytes: Uint8Array, fileSize: number): ParsedHeader {
  const N = headerBytes.length;
  let text: string;
  try { text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBytes); }
  catch { throw fail(file, 'header is not valid UTF-8'); }
  let json: unknown;
  try { json = JSON.parse(text); } // JSON.parse accepts the leading/trailing whitespace padding
  catch (e) { throw fail(file, `header is not valid JSON (${(e as Error).message})`); }
  if (!isPlainObject(json)) throw fail(file, 'header is not a JSON object');
  const dup = findDuplicateKey(text);
  if (dup) {
    throw fail(file, dup.topLevel ? `duplicate tensor name "${dup.key}" in header`
      : `duplicate key "${dup.key}" inside a header entry`);
  }

  const metadata: Record<string, string> = Object.create(null);
  const header: Record<string, TensorInfo> = Object.create(null);
  const spans: { name: string; begin: number; end: number }[] = [];
  for (const [name, entry] of Object.entries(json)) {
    if (name === '__metadata__') {
      if (!isPlainObject(entry)) throw fail(file, '__metadata__ must be an object of strings');
      for (const [k, v] of Object.entries(entry)) {
        if (typeof v !== 'string') throw fail(file, `__metadata__ value "${k}" is not a string (got ${JSON.stringify(v)})`);
        metadata[k] = v;
      }
      continue;
    }
    const bad = (what: string) => fail(file, `tensor "${name}": ${what}`);
    if (!isPlainObject(entry)) throw bad('entry is not an object');
    const extra = Object.keys(entry).filter((k) => k !== 'dtype' && k !== 'shape' && k !== 'data_offsets');
    if (extra.length) throw bad(`unknown field(s) ${extra.join(', ')}`);
    const { dtype, shape, data_offsets: offs } = entry;
    if (typeof dtype !== 'string' || !Object.hasOwn(DTYPE_SIZE, dtype)) {
      throw bad(`unsupported dtype ${JSON.stringify(dtype)} (supported: ${Object.keys(DTYPE_SIZE).join(', ')})`);
    }
    if (!Array.isArray(shape) || !shape.every(isCount)) throw bad(`shape ${JSON.stringify(shape)} is not an array of non-negative integers`);
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every(isCount)) throw bad(`data_offsets ${JSON.stringify(offs)} is not [begin, end]`);
    const [begin, end] = offs as [number, number];
    if (end < begin) throw bad(`data_offsets [${begin}, ${end}] end before begin`);
    let numel = 1;
    for (const d of shape as number[]) numel *= d;
    const bytes = numel * DTYPE_SIZE[dtype as Dtype];
    if (!Number.isSafeInteger(bytes)) throw bad(`shape [${shape}] is too large`);
    if (bytes !== end - begin) {
      throw bad(`byte size mismatch: shape [${shape}] of ${dtype} needs ${bytes} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`);
    }
    header[name] = { dtype: dtype as Dtype, shape: shape as number[], byteOffset: 8 + N + begin, byteLength: bytes };
    spans.push({ name, begin, end });
  }

  // Offsets, in order, must tile the data section exactly: no holes, no overlaps, no trailing bytes.
  spans.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  for (const s of spans) {
    if (s.begin < at) throw fail(file, `tensor "${s.name}": data_offsets [${s.begin}, ${s.end}] overlap the previous tensor (which ends at ${at})`);
    if (s.begin > at) throw fail(file, `tensor "${s.name}": data_offsets [${s.begin}, ${s.end}] leave a gap after offset ${at}`);
    at = s.end;
  }
  const dataSize = fileSize - 8 - N;
  if (at !== dataSize) {
    throw fail(file, `tensor data ends at offset ${at} but the file has ${dataSize} data bytes after the header` +
      (at > dataSize ? ' (file truncated?)' : ' (trailing bytes)'));
  }
  return { header, names: spans.map((s) => s.name), metadata };
}

// ---------------------------------------------------------------------------------------------
// Reading

/** Reads exactly `length` bytes at `position` (in chunks: one read() is limited to 2 GiB). */
async function readExactly(fh: FileHandle, file: string, position: number, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length); // fresh ArrayBuffer: offset 0, so any typed view is aligned
  const CHUNK = 1 << 30;
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(out, done, Math.min(CHUNK, length - done), position + done);
    if (bytesRead === 0) throw fail(file, `unexpected end of file at byte ${position + done}`);
    done += bytesRead;
  }
  return out;
}

let f16Table: Float32Array | undefined;
/** float16 bit pattern -> float32 value, all 65536 patterns (256 KB, built on first use). */
function halfTable(): Float32Array {
  if (f16Table) return f16Table;
  f16Table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const mant = h & 0x3ff;
    f16Table[h] = exp === 0 ? sign * mant * 2 ** -24                       // zero, subnormal
      : exp === 31 ? (mant ? NaN : sign * Infinity)
      : sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  return f16Table;
}

/** Converts raw little-endian bytes of `dtype` to float32. */
export function toFloat32(bytes: Uint8Array, dtype: Dtype): Float32Array {
  const buf = bytes.buffer; const off = bytes.byteOffset;
  const n = bytes.byteLength / DTYPE_SIZE[dtype];
  const aligned = off % DTYPE_SIZE[dtype] === 0;
  if (!aligned) return toFloat32(bytes.slice(), dtype); // copy to offset 0 for typed views
  switch (dtype) {
    case 'F32': return new Float32Array(buf.slice(off, off + bytes.byteLength));
    case 'F16': {
      const t = halfTable(); const src = new Uint16Array(buf, off, n); const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = t[src[i]!]!;
      return out;
    }
    case 'BF16': { // bf16 is the top half of a float32
      const src = new Uint16Array(buf, off, n); const out = new Float32Array(n); const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = src[i]! << 16;
      return out;
    }
    case 'F64': return Float32Array.from(new Float64Array(buf, off, n));
    case 'I64': { const s = new BigInt64Array(buf, off, n); const o = new Float32Array(n); for (let i = 0; i < n; i++) o[i] = Number(s[i]!); return o; }
    case 'I32': return Float32Array.from(new Int32Array(buf, off, n));
    case 'I16': return Float32Array.from(new Int16Array(buf, off, n));
    case 'I8': return Float32Array.from(new Int8Array(buf, off, n));
    case 'U8': return Float32Array.from(new Uint8Array(buf, off, n));
    case 'BOOL': return Float32Array.from(new Uint8Array(buf, off, n), (b) => (b ? 1 : 0));
  }
}

/** Opens and validates a .safetensors file; tensors are read later, one at a time. */
export async function openSafetensors(file: string): Promise<SafetensorsFile> {
  const fh = await fsp.open(file, 'r');
  try {
    const st = await fh.stat();
    if (st.isDirectory()) throw fail(file, 'a directory, not a file');
    const size = st.size;
    if (size < 8) throw fail(file, `file is ${size} bytes, shorter than the 8-byte header length`);
    const prefix = await readExactly(fh, file, 0, 8);
    // A Git LFS pointer (a clone without `git lfs pull`) is a small text file where the weights should be.
    if (new TextDecoder().decode(prefix) === 'version ') {
      throw fail(file, 'a Git LFS pointer, not the weights: fetch them (git lfs pull) or download the file itself');
    }
    const n64 = new DataView(prefix.buffer).getBigUint64(0, true);
    if (n64 > BigInt(MAX_HEADER_SIZE)) throw fail(file, `header length ${n64} exceeds the ${MAX_HEADER_SIZE}-byte limit`);
    const N = Number(n64);
    if (8 + N > size) throw fail(file, `header length ${N} runs past the end of the file (${size} bytes)`);
    const parsed = parseHeader(file, await readExactly(fh, file, 8, N), size);
    const info = (name: string): TensorInfo => {
      const t = Object.hasOwn(parsed.header, name) ? parsed.header[name] : undefined;
      if (!t) throw fail(file, `no tensor named "${name}"`);
      return t;
    };
    const readRaw = (name: string) => { const t = info(name); return readExactly(fh, file, t.byteOffset, t.byteLength); };
    return {
      path: file,
      ...parsed,
      readRaw,
      readTensor: async (name) => toFloat32(await readRaw(name), info(name).dtype),
      close: () => fh.close(),
    };
  } catch (e) {
    await fh.close();
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Sharded checkpoints

export interface CheckpointTensor extends TensorInfo { file: string }

/** One name -> tensor view over model.safetensors or the shards of model.safetensors.index.json. */
export interface Checkpoint {
  dir: string;
  /** Tensor names: shard order, then data order within each shard. */
  names: string[];
  tensors: Record<string, CheckpointTensor>;
  /** The single file's __metadata__, or the index's "metadata" (values stringified). */
  metadata: Record<string, string>;
  readTensor(name: string): Promise<Float32Array>;
  readRaw(name: string): Promise<Uint8Array>;
  close(): Promise<void>;
}

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

const exists = (p: string) => fsp.access(p).then(() => true, () => false);

/** What a directory without safetensors weights holds instead, said in the error: a link whose target is
 *  gone (a Hugging Face cache without the blob), or PyTorch pickles, which srk does not read. */
async function whyNoWeights(dir: string): Promise<string> {
  for (const f of [SINGLE_FILE, INDEX_FILE]) {
    const link = await fsp.readlink(path.join(dir, f)).catch(() => undefined);
    if (link !== undefined) return `; ${f} is a link to ${link}, which is missing (a cache whose files were not all downloaded?)`;
  }
  const names = await fsp.readdir(dir).catch(() => [] as string[]);
  const pickles = names.filter((n) => /^pytorch_model.*\.bin$/.test(n) || n.endsWith('.pt') || n.endsWith('.pth'));
  if (pickles.length) return `; it holds ${pickles.slice(0, 2).join(', ')}${pickles.length > 2 ? ', ...' : ''}: PyTorch pickles, which srk does not read; ` +
    'save the model as safetensors first (transformers: model.save_pretrained(dir, safe_serialization=True))';
  return '';
}

export async function openCheckpoint(dir: string): Promise<Checkpoint> {
  const single = path.join(dir, SINGLE_FILE);
  const indexPath = path.join(dir, INDEX_FILE);
  // Like transformers, a single model.safetensors wins over an index.
  if (await exists(single)) {
    const f = await openSafetensors(single);
    const tensors: Record<string, CheckpointTensor> = Object.create(null);
    for (const n of f.names) tensors[n] = { ...f.header[n]!, file: single };
    return { dir, names: f.names, tensors, metadata: f.metadata, readTensor: f.readTensor, readRaw: f.readRaw, close: f.close };
  }
  if (!(await exists(indexPath))) throw new Error(`checkpoint ${dir}: neither ${SINGLE_FILE} nor ${INDEX_FILE} found${await whyNoWeights(dir)}`);

  const bad = (what: string) => new Error(`checkpoint index ${indexPath}: ${what}`);
  let index: unknown;
  try { index = JSON.parse(await fsp.readFile(indexPath, 'utf8')); }
  catch (e) { throw bad(`not valid JSON (${(e as Error).message})`); }
  if (!isPlainObject(index) || !isPlainObject(index.weight_map)) throw bad('missing "weight_map" object');
  const weightMap = index.weight_map;
  const byShard = new Map<string, string[]>(); // shard file -> names the index puts there
  for (const [name, shard] of Object.entries(weightMap)) {
    // Shard names are plain file names next to the index; anything else could escape the directory.
    if (typeof shard !== 'string' || shard !== path.basename(shard) || shard === '..' || shard === '.') {
      throw bad(`tensor "${name}" maps to invalid shard file name ${JSON.stringify(shard)}`);
    }
    byShard.set(shard, [...(byShard.get(shard) ?? []), name]);
  }
  const files: SafetensorsFile[] = [];
  try {
    const tensors: Record<string, CheckpointTensor> = Object.create(null);
    const names: string[] = [];
    const byName = new Map<string, SafetensorsFile>();
    for (const [shard, listed] of byShard) {
      const p = path.join(dir, shard);
      if (!(await exists(p))) throw bad(`shard ${shard} (holding "${listed[0]}" and ${listed.length - 1} more) is missing`);
      const f = await openSafetensors(p);
      files.push(f);
      const missing = listed.filter((n) => !Object.hasOwn(f.header, n));
      if (missing.length) throw bad(`shard ${shard} lacks tensor(s) the index maps to it: ${missing.join(', ')}`);
      const listedSet = new Set(listed);
      const unlisted = f.names.filter((n) => !listedSet.has(n));
      if (unlisted.length) throw bad(`shard ${shard} holds tensor(s) the index does not map to it: ${unlisted.join(', ')}`);
      for (const n of f.names) { tensors[n] = { ...f.header[n]!, file: p }; names.push(n); byName.set(n, f); }
    }
    const metadata: Record<string, string> = Object.create(null);
    if (isPlainObject(index.metadata)) {
      for (const [k, v] of Object.entries(index.metadata)) metadata[k] = typeof v === 'string' ? v : JSON.stringify(v);
    }
    const fileOf = (name: string) => {
      const f = byName.get(name);
      if (!f) throw new Error(`checkpoint ${dir}: no tensor named "${name}"`);
      return f;
    };
    return {
      dir, names, tensors, metadata,
      readTensor: (n) => fileOf(n).readTensor(n),
      readRaw: (n) => fileOf(n).readRaw(n),
      close: async () => { await Promise.all(files.map((f) => f.close())); },
    };
  } catch (e) {
    await Promise.all(files.map((f) => f.close()));
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Writing

export interface TensorToWrite {
  name: string;
  dtype: Dtype;
  shape: number[];
  /**
   * Float32Array: values, converted to dtype (F32, F16, BF16, F64; F16/BF16 round to nearest
   * even). Uint8Array: the tensor's raw little-endian bytes for any dtype, written unchanged.
   */
  data: Float32Array | Uint8Array | (() => Promise<Float32Array | Uint8Array>);
}
// A function as `data` is called when that tensor's turn comes, so a writer holds one tensor at a
// time (saving a model from the GPU, or generating a random init) however large the file.

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** float32 -> float16 bits, round to nearest even; overflow -> inf, underflow -> (signed) zero. */
export function f32ToF16Bits(x: number): number {
  f32Scratch[0] = x;
  const b = u32Scratch[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0); // inf, NaN stays NaN
  const e = exp - 127 + 15; // half-precision biased exponent
  if (e >= 31) return sign | 0x7c00;
  if (e >= 1) {
    // Normal: keep 10 of 23 mantissa bits. A carry out of the mantissa correctly bumps the exponent
    // (up to inf).
    let h = (e << 10) | (mant >>> 13);
    const rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h++;
    return sign | h;
  }
  // Subnormal half: value = m * 2^-24 with m = (1.mant) * 2^(exp-126) = full >> (14 - e).
  const shift = 14 - e;
  if (shift > 24) return sign; // below half the smallest subnormal
  const full = mant | 0x800000;
  let m = full >>> shift;
  const rest = full & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rest > half || (rest === half && (m & 1))) m++; // m may become 0x400: the smallest normal
  return sign | m;
}

/** float32 -> bfloat16 bits, round to nearest even; NaN stays NaN. */
export function f32ToBf16Bits(x: number): number {
  f32Scratch[0] = x;
  const b = u32Scratch[0]!;
  if ((b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff)) return (b >>> 16) | 0x40;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff; // no wrap: max finite b + 0x8000 < 2^32
}

/** Encodes elements [start, end) of a Float32Array tensor as `dtype` bytes. */
function encodeChunk(data: Float32Array, dtype: Dtype, start: number, end: number): Uint8Array {
  const n = end - start;
  switch (dtype) {
    case 'F32': return new Uint8Array(data.buffer, data.byteOffset + start * 4, n * 4);
    case 'F64': return new Uint8Array(Float64Array.from(data.subarray(start, end)).buffer);
    case 'F16': case 'BF16': {
      const out = new Uint16Array(n); const conv = dtype === 'F16' ? f32ToF16Bits : f32ToBf16Bits;
      for (let i = 0; i < n; i++) out[i] = conv(data[start + i]!);
      return new Uint8Array(out.buffer);
    }
    default: throw new Error(`cannot write ${dtype} from a Float32Array; pass raw bytes (Uint8Array)`);
  }
}

/**
 * Writes a .safetensors file atomically (temp file in the same directory, then rename).
 * Tensors are stored in the order given (not sorted); the header is space-padded so the data
 * section starts 8-byte aligned, as the Python/Rust writer does. Memory use is one chunk at a
 * time, never the whole file.
 */
function checkData(t: TensorToWrite, data: Float32Array | Uint8Array, numel: number, bytes: number, bad: (w: string) => Error): void {
  if (data instanceof Float32Array) {
    if (data.length !== numel) throw bad(`tensor "${t.name}": shape [${t.shape}] has ${numel} elements but data has ${data.length}`);
    if (!['F32', 'F16', 'BF16', 'F64'].includes(t.dtype)) throw bad(`tensor "${t.name}": ${t.dtype} must be given as raw bytes`);
  } else if (data.byteLength !== bytes) {
    throw bad(`tensor "${t.name}": shape [${t.shape}] of ${t.dtype} needs ${bytes} bytes but data has ${data.byteLength}`);
  }
}

export async function writeSafetensors(
  file: string, tensors: TensorToWrite[], metadata: Record<string, string> = { format: 'pt' },
): Promise<void> {
  const bad = (what: string) => fail(file, `cannot write: ${what}`);
  const head: Record<string, unknown> = {};
  if (Object.keys(metadata).length) {
    for (const [k, v] of Object.entries(metadata)) if (typeof v !== 'string') throw bad(`metadata "${k}" is not a string`);
    head.__metadata__ = metadata;
  }
  const seen = new Set<string>();
  let offset = 0;
  for (const t of tensors) {
    if (t.name === '__metadata__' || seen.has(t.name)) throw bad(`tensor name "${t.name}" is reserved or repeated`);
    seen.add(t.name);
    if (!Object.hasOwn(DTYPE_SIZE, t.dtype)) throw bad(`tensor "${t.name}": unknown dtype ${t.dtype}`);
    if (!t.shape.every(isCount)) throw bad(`tensor "${t.name}": bad shape [${t.shape}]`);
    const numel = t.shape.reduce((a, b) => a * b, 1);
    const bytes = numel * DTYPE_SIZE[t.dtype];
    if (typeof t.data !== 'function') checkData(t, t.data, numel, bytes, bad);
    head[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = Buffer.from(JSON.stringify(head), 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));

  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}-${Date.now()}`);
  const fh = await fsp.open(tmp, 'wx');
  try {
    let pos = 0;
    const write = async (b: Uint8Array) => {
      let done = 0;
      while (done < b.byteLength) {
        const { bytesWritten } = await fh.write(b, done, b.byteLength - done, pos + done);
        done += bytesWritten;
      }
      pos += b.byteLength;
    };
    await write(prefix);
    await write(json);
    const CHUNK = 1 << 22; // elements per converted chunk (16 MB of f32)
    for (const t of tensors) {
      let data = t.data;
      if (typeof data === 'function') {
        data = await data();
        const numel = t.shape.reduce((a, b) => a * b, 1);
        checkData(t, data, numel, numel * DTYPE_SIZE[t.dtype], bad);
      }
      if (data instanceof Uint8Array) { await write(data); continue; }
      for (let s = 0; s < data.length; s += CHUNK) await write(encodeChunk(data, t.dtype, s, Math.min(data.length, s + CHUNK)));
    }
    await fh.sync();
    await fh.close();
    await fsp.rename(tmp, file);
  } catch (e) {
    await fh.close().catch(() => {});
    await fsp.rm(tmp, { force: true });
    throw e;
  }
}
