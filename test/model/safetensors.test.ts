import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, readdirSync, copyFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  f32ToBf16Bits, f32ToF16Bits, openCheckpoint, openSafetensors, toFloat32, writeSafetensors,
} from '../../src/model/safetensors.js';
import { FIXTURES, MODELS } from './paths.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'srk-st-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let counter = 0;

/** Writes a safetensors file from a header given as text (or object) and a data section. */
function craft(header: string | object, data: Uint8Array | number = 0, lengthOverride?: bigint): string {
  const text = typeof header === 'string' ? header : JSON.stringify(header);
  const json = Buffer.from(text, 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(lengthOverride ?? BigInt(json.length));
  const body = typeof data === 'number' ? Buffer.alloc(data) : Buffer.from(data);
  const file = path.join(tmp, `bad-${counter++}.safetensors`);
  writeFileSync(file, Buffer.concat([prefix, json, body]));
  return file;
}

/** Expects opening `file` to fail with a message naming the file and matching `what`. */
async function expectBad(file: string, what: RegExp): Promise<void> {
  const err = await openSafetensors(file).then(() => null, (e: Error) => e);
  expect(err, `expected ${file} to be refused`).toBeInstanceOf(Error);
  expect(err!.message).toContain(file);
  expect(err!.message).toMatch(what);
}

const t = (dtype: string, shape: number[], begin: number, end: number) => ({ dtype, shape, data_offsets: [begin, end] });

describe('safetensors: reading the HF fixtures', () => {
  it('reads headers, metadata and tensors of each fixture model', async () => {
    const expectShapes: Record<string, Record<string, number[]>> = {
      'gpt-neox-tiny': {
        'gpt_neox.embed_in.weight': [384, 64],
        'gpt_neox.layers.0.attention.query_key_value.weight': [192, 64],
        'gpt_neox.layers.1.mlp.dense_4h_to_h.weight': [64, 256],
        'embed_out.weight': [384, 64],
      },
      'mistral-tiny': {
        'model.layers.0.self_attn.k_proj.weight': [32, 64], // 2 kv heads * 16
        'model.layers.1.mlp.gate_proj.weight': [160, 64],
        'lm_head.weight': [384, 64],
      },
      'llama-tiny-tied': {
        'model.embed_tokens.weight': [384, 48],
        'model.norm.weight': [48],
      },
    };
    for (const name of MODELS) {
      const f = await openSafetensors(path.join(FIXTURES, name, 'model.safetensors'));
      try {
        expect({ ...f.metadata }).toEqual({ format: 'pt' });
        for (const [tensor, shape] of Object.entries(expectShapes[name]!)) {
          expect(f.header[tensor]?.shape, `${name} ${tensor}`).toEqual(shape);
          expect(f.header[tensor]!.dtype).toBe('F32');
          const v = await f.readTensor(tensor);
          expect(v.length).toBe(shape.reduce((a, b) => a * b, 1));
          expect(v.every(Number.isFinite)).toBe(true);
        }
        // readTensor reads exactly the bytes at the tensor's absolute offset.
        const first = f.names[0]!;
        const info = f.header[first]!;
        const whole = readFileSync(f.path);
        expect(Buffer.from(await f.readRaw(first))).toEqual(whole.subarray(info.byteOffset, info.byteOffset + info.byteLength));
        expect(f.header['lm_head.weight'] === undefined).toBe(name !== 'mistral-tiny');
      } finally {
        await f.close();
      }
    }
  });

  it('unknown tensor names are a clear error', async () => {
    const f = await openSafetensors(path.join(FIXTURES, 'llama-tiny-tied', 'model.safetensors'));
    await expect(f.readTensor('lm_head.weight')).rejects.toThrow(/llama-tiny-tied.*no tensor named "lm_head.weight"/);
    await f.close();
  });
});

describe('safetensors: large files', () => {
  it('reads a tensor past 4 GiB of a sparse 5 GB file without reading the rest', async () => {
    const BIG = 5_000_000_000;
    const header = Buffer.from(JSON.stringify({ big: t('U8', [BIG], 0, BIG), small: t('F32', [2], BIG, BIG + 8) }));
    const file = path.join(tmp, 'sparse.safetensors');
    const prefix = Buffer.alloc(8); prefix.writeBigUInt64LE(BigInt(header.length));
    writeFileSync(file, Buffer.concat([prefix, header]));
    const { open } = await import('node:fs/promises');
    const fh = await open(file, 'r+');
    await fh.truncate(8 + header.length + BIG + 8); // sparse: no disk space used
    await fh.write(new Uint8Array(new Float32Array([1.5, -2]).buffer), 0, 8, 8 + header.length + BIG);
    await fh.close();
    const f = await openSafetensors(file);
    expect(f.header.small!.byteOffset).toBe(8 + header.length + BIG);
    expect(Array.from(await f.readTensor('small'))).toEqual([1.5, -2]);
    await f.close();
    rmSync(file);
  });
});

describe('safetensors: writing', () => {
  it('round-trips a fixture byte for byte (same order, metadata, padding)', async () => {
    const src = path.join(FIXTURES, 'gpt-neox-tiny', 'model.safetensors');
    const f = await openSafetensors(src);
    const tensors = [];
    for (const name of f.names) tensors.push({ name, dtype: 'F32' as const, shape: f.header[name]!.shape, data: await f.readTensor(name) });
    await f.close();
    const out = path.join(tmp, 'roundtrip.safetensors');
    await writeSafetensors(out, tensors);
    // Tensor data and all values identical; the header may differ only in key order / padding,
    // so compare the data section and re-read through the validator.
    const a = readFileSync(src); const b = readFileSync(out);
    const na = Number(a.readBigUInt64LE(0)); const nb = Number(b.readBigUInt64LE(0));
    expect(nb % 8).toBe(0);
    expect(b.subarray(8 + nb)).toEqual(a.subarray(8 + na));
    const g = await openSafetensors(out);
    expect(g.names).toEqual(tensors.map((x) => x.name));
    expect({ ...g.metadata }).toEqual({ format: 'pt' });
    for (const x of tensors) expect(await g.readTensor(x.name)).toEqual(x.data);
    await g.close();
    // Writing what was read gives the same file again (deterministic).
    const out2 = path.join(tmp, 'roundtrip2.safetensors');
    await writeSafetensors(out2, tensors);
    expect(readFileSync(out2)).toEqual(b);
    // No temp files left behind.
    expect(readdirSync(tmp).filter((n) => n.includes('.tmp-'))).toEqual([]);
  });

  it('writes F16/BF16 with round-to-nearest-even, raw bytes of any dtype, and empty/scalar tensors', async () => {
    const vals = new Float32Array([0, -0, 1, -2.5, 65504, 65520, 1e-8, 2 ** -24, 3 * 2 ** -25, 1 + 2 ** -11, 1 + 3 * 2 ** -11, Infinity, NaN, 1 + 2 ** -8, 1 + 3 * 2 ** -8]);
    const ids = new BigInt64Array([5n, -1n, 7n]);
    const out = path.join(tmp, 'mixed.safetensors');
    await writeSafetensors(out, [
      { name: 'h', dtype: 'F16', shape: [vals.length], data: vals },
      { name: 'b', dtype: 'BF16', shape: [vals.length], data: vals },
      { name: 'ids', dtype: 'I64', shape: [3], data: new Uint8Array(ids.buffer) },
      { name: 'empty', dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
      { name: 'scalar', dtype: 'F64', shape: [], data: new Float32Array([0.5]) },
    ], { format: 'pt', note: 'x' });
    const f = await openSafetensors(out);
    expect({ ...f.metadata }).toEqual({ format: 'pt', note: 'x' });
    const h = Array.from(await f.readTensor('h'));
    expect(h.slice(0, 13)).toEqual([0, -0, 1, -2.5, 65504, Infinity, 0, 2 ** -24, 2 ** -23, 1, 1 + 2 ** -9, Infinity, NaN]);
    const b = Array.from(await f.readTensor('b'));
    expect(b.slice(13)).toEqual([1, 1 + 2 ** -6]); // ties to even
    expect(Array.from(await f.readTensor('ids'))).toEqual([5, -1, 7]);
    expect((await f.readTensor('empty')).length).toBe(0);
    expect(Array.from(await f.readTensor('scalar'))).toEqual([0.5]);
    await f.close();
  });

  it('bit conversions agree with exact rounding on random values', () => {
    const half = (bits: number) => toFloat32(new Uint8Array(new Uint16Array([bits]).buffer), 'F16')[0]!;
    const bf = (bits: number) => toFloat32(new Uint8Array(new Uint16Array([bits]).buffer), 'BF16')[0]!;
    // Every finite half converts back to itself.
    for (let bits = 0; bits < 0x7c00; bits += 7) expect(f32ToF16Bits(half(bits))).toBe(bits);
    // Past the largest half (65504, and 65520 up, which rounds up): infinity of the sign, at every f32 exponent.
    for (const x of [65520, 65536, 70000, 131071, 131072, 1e5, 3e38, Infinity]) {
      expect(f32ToF16Bits(x), String(x)).toBe(0x7c00);
      expect(f32ToF16Bits(-x), String(-x)).toBe(0xfc00);
    }
    expect(f32ToF16Bits(65504)).toBe(0x7bff);
    expect(f32ToF16Bits(65519)).toBe(0x7bff);
    // Random values: the result is the nearest representable value (ties checked above).
    let s = 12345;
    const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5) * 2 ** ((s % 40) - 20);
    for (let i = 0; i < 2000; i++) {
      const x = Math.fround(rnd());
      // The result is at least as close as both neighbouring bit patterns (NaN neighbours skipped).
      const nearest = (bits: number, dec: (b: number) => number) => {
        const err = Math.abs(dec(bits) - x);
        for (const nb of [bits + 1, bits - 1]) {
          const e = Math.abs(dec(nb & 0xffff) - x);
          if (!Number.isNaN(e)) expect(err).toBeLessThanOrEqual(e);
        }
      };
      nearest(f32ToF16Bits(x), half);
      nearest(f32ToBf16Bits(x), bf);
    }
  });

  it('refuses inconsistent input before creating the file', async () => {
    const out = path.join(tmp, 'never.safetensors');
    await expect(writeSafetensors(out, [{ name: 'a', dtype: 'F32', shape: [3], data: new Float32Array(2) }])).rejects.toThrow(/never\.safetensors.*"a".*3 elements/);
    await expect(writeSafetensors(out, [{ name: 'a', dtype: 'F32', shape: [1], data: new Float32Array(1) }, { name: 'a', dtype: 'F32', shape: [1], data: new Float32Array(1) }])).rejects.toThrow(/never\.safetensors.*tensor name "a" is reserved or repeated/);
    expect(readdirSync(tmp).filter((n) => n.includes('never'))).toEqual([]);
  });
});

describe('safetensors: checkpoints', () => {
  it('openCheckpoint reads a single-file model', async () => {
    const c = await openCheckpoint(path.join(FIXTURES, 'mistral-tiny'));
    expect(c.names.length).toBe(21);
    expect(c.tensors['model.norm.weight']!.shape).toEqual([64]);
    await c.close();
  });

  it('what stands where the weights should be is named: a Git LFS pointer, a directory, PyTorch pickles, a dangling link', async () => {
    const dir = (name: string) => { const d = path.join(tmp, `where-${name}`); mkdirSync(d); return d; };
    const lfs = dir('lfs');
    writeFileSync(path.join(lfs, 'model.safetensors'), 'version https://git-lfs.github.com/spec/v1\noid sha256:0123\nsize 4096\n');
    await expect(openCheckpoint(lfs)).rejects.toThrow(/model\.safetensors: a Git LFS pointer, not the weights/);
    const sub = dir('dir');
    mkdirSync(path.join(sub, 'model.safetensors'));
    await expect(openCheckpoint(sub)).rejects.toThrow(/model\.safetensors: a directory, not a file/);
    const pickles = dir('bin');
    writeFileSync(path.join(pickles, 'pytorch_model.bin'), 'x');
    await expect(openCheckpoint(pickles)).rejects.toThrow(/neither model\.safetensors nor .*; it holds pytorch_model\.bin: PyTorch pickles, which srk does not read/);
    const link = dir('link');
    symlinkSync('../blobs/0123', path.join(link, 'model.safetensors'));
    await expect(openCheckpoint(link)).rejects.toThrow(/model\.safetensors is a link to \.\.\/blobs\/0123, which is missing/);
    await expect(openCheckpoint(dir('empty'))).rejects.toThrow(/neither model\.safetensors nor model\.safetensors\.index\.json found$/);
  });

  it('openCheckpoint joins shards of an index, and reports missing shards and names', async () => {
    const dir = mkdtempSync(path.join(tmp, 'sharded-'));
    const a = new Float32Array([1, 2, 3]); const b = new Float32Array([4, 5]);
    await writeSafetensors(path.join(dir, 'model-00001-of-00002.safetensors'), [{ name: 'x', dtype: 'F32', shape: [3], data: a }]);
    await writeSafetensors(path.join(dir, 'model-00002-of-00002.safetensors'), [{ name: 'y', dtype: 'F16', shape: [2], data: b }]);
    const index = (map: object) => writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 16 }, weight_map: map }));
    index({ x: 'model-00001-of-00002.safetensors', y: 'model-00002-of-00002.safetensors' });
    const c = await openCheckpoint(dir);
    expect(c.names).toEqual(['x', 'y']);
    expect(Array.from(await c.readTensor('y'))).toEqual([4, 5]);
    expect(Array.from(await c.readTensor('x'))).toEqual([1, 2, 3]);
    expect(c.metadata.total_size).toBe('16');
    await c.close();

    index({ x: 'model-00001-of-00002.safetensors', y: 'model-00003-of-00003.safetensors' });
    await expect(openCheckpoint(dir)).rejects.toThrow(/index\.json: shard model-00003-of-00003\.safetensors .*missing/);
    index({ x: 'model-00001-of-00002.safetensors', y: 'model-00001-of-00002.safetensors' });
    await expect(openCheckpoint(dir)).rejects.toThrow(/shard model-00001-of-00002\.safetensors lacks tensor\(s\) .*: y/);
    index({ x: '../model-00001-of-00002.safetensors' });
    await expect(openCheckpoint(dir)).rejects.toThrow(/invalid shard file name/);
    await writeSafetensors(path.join(dir, 'extra.safetensors'), [
      { name: 'z', dtype: 'F32', shape: [1], data: new Float32Array(1) }, { name: 'w', dtype: 'F32', shape: [1], data: new Float32Array(1) }]);
    index({ z: 'extra.safetensors' });
    await expect(openCheckpoint(dir)).rejects.toThrow(/shard extra\.safetensors holds tensor\(s\) the index does not map to it: w/);
    await expect(openCheckpoint(path.join(tmp, 'nowhere'))).rejects.toThrow(/neither model\.safetensors nor/);
    // A single model.safetensors takes precedence over an index.
    copyFileSync(path.join(dir, 'model-00001-of-00002.safetensors'), path.join(dir, 'model.safetensors'));
    const s = await openCheckpoint(dir);
    expect(s.names).toEqual(['x']);
    await s.close();
  });
});

describe('safetensors: malformed files are refused with the file and the problem named', () => {
  const ok = { a: t('F32', [2], 0, 8) };

  it('a valid hand-made file opens (control)', async () => {
    const f = await openSafetensors(craft(ok, 8));
    expect(f.names).toEqual(['a']);
    await f.close();
  });
  it('accepts leading and trailing whitespace padding in the header', async () => {
    const f = await openSafetensors(craft(`  ${JSON.stringify(ok)}   `, 8));
    await f.close();
  });
  it('truncated: shorter than 8 bytes', async () => {
    const file = path.join(tmp, 'short.safetensors');
    writeFileSync(file, Buffer.from([1, 2, 3]));
    await expectBad(file, /3 bytes, shorter than the 8-byte header length/);
  });
  it('truncated: data section shorter than the header says', async () => {
    await expectBad(craft(ok, 5), /tensor data ends at offset 8 but the file has 5 data bytes.*truncated/);
  });
  it('trailing bytes after the last tensor', async () => {
    await expectBad(craft(ok, 12), /trailing bytes/);
  });
  it('header length past the end of the file', async () => {
    await expectBad(craft(ok, 8, 1000n), /header length 1000 runs past the end of the file/);
  });
  it('header length above the 100 MB limit', async () => {
    await expectBad(craft(ok, 8, 2n ** 40n), /exceeds the 100000000-byte limit/);
  });
  it('header not JSON', async () => {
    await expectBad(craft('{"a": {"dtype": "F32",', 8), /header is not valid JSON/);
  });
  it('header not UTF-8', async () => {
    const file = craft('{"\u00e9":1}');
    const bytes = readFileSync(file); bytes[10] = 0xff; writeFileSync(file, bytes);
    await expectBad(file, /not valid UTF-8/);
  });
  it('header a JSON array', async () => {
    await expectBad(craft('[1,2]'), /header is not a JSON object/);
  });
  it('overlapping offsets', async () => {
    await expectBad(craft({ a: t('F32', [2], 0, 8), b: t('F32', [2], 4, 12) }, 12), /tensor "b".*overlap/);
  });
  it('gapped offsets', async () => {
    await expectBad(craft({ a: t('F32', [2], 0, 8), b: t('F32', [2], 12, 20) }, 20), /tensor "b".*gap after offset 8/);
  });
  it('first tensor not at offset 0', async () => {
    await expectBad(craft({ a: t('F32', [2], 4, 12) }, 12), /tensor "a".*gap after offset 0/);
  });
  it('byte size wrong for dtype and shape', async () => {
    await expectBad(craft({ a: t('F16', [3], 0, 8) }, 8), /tensor "a": byte size mismatch: shape \[3\] of F16 needs 6 bytes/);
  });
  it('unknown dtype', async () => {
    await expectBad(craft({ a: t('F8_E4M3', [8], 0, 8) }, 8), /tensor "a": unsupported dtype "F8_E4M3"/);
  });
  it('bad shape and offsets', async () => {
    await expectBad(craft({ a: t('F32', [-2], 0, 8) }, 8), /tensor "a": shape \[-2\]/);
    await expectBad(craft({ a: t('F32', [2.5], 0, 8) }, 8), /tensor "a": shape/);
    await expectBad(craft({ a: { dtype: 'F32', shape: [2], data_offsets: [8, 0] } }, 8), /tensor "a".*end before begin/);
    await expectBad(craft({ a: { dtype: 'F32', shape: [2] } }, 8), /tensor "a": data_offsets undefined/);
    await expectBad(craft({ a: { ...t('F32', [2], 0, 8), extra: 1 } }, 8), /tensor "a": unknown field\(s\) extra/);
    await expectBad(craft({ a: 5 }, 0), /tensor "a": entry is not an object/);
  });
  it('duplicate tensor names (JSON.parse would keep the last silently)', async () => {
    const text = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
    await expectBad(craft(text, 8), /duplicate tensor name "a"/);
    // The same name spelled with an escape is still the same name.
    const esc = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"\\u0061":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
    await expectBad(craft(esc, 8), /duplicate tensor name "a"/);
    // Duplicate fields inside an entry too.
    await expectBad(craft('{"a":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]}}', 8), /duplicate key "dtype"/);
    // Keys equal to names inside strings or nested objects are not duplicates.
    const f = await openSafetensors(craft('{"__metadata__":{"a":"\\"a\\": {"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', 8));
    expect(f.metadata.a).toBe('"a": {');
    await f.close();
  });
  it('non-string metadata', async () => {
    await expectBad(craft({ __metadata__: { format: 'pt', step: 5 }, ...ok }, 8), /__metadata__ value "step" is not a string/);
    await expectBad(craft({ __metadata__: ['pt'], ...ok }, 8), /__metadata__ must be an object/);
  });
});
