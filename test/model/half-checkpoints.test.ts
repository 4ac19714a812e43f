// Checkpoints stored in F16, BF16 and F64 load through the GPU conversion kernels to the same f32
// values the CPU decoder gives, and a checkpoint we write reads back identical.
import { cpSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { getGpu } from '../helpers/gpu.js';
import { loadModel } from '../../src/model/load.js';
import { openSafetensors, writeSafetensors, type Dtype } from '../../src/model/safetensors.js';
import { saveModelDir } from '../../src/train/checkpoint.js';
import { elementIndex, firstNonFinite } from '../../src/model/finite-check.js';

const FIX = path.resolve(import.meta.dirname, '../fixtures/hf');

describe('checkpoint dtypes and round trip', () => {
  for (const dtype of ['F16', 'BF16', 'F64'] as Dtype[]) {
    it(`a ${dtype} llama checkpoint loads to the values the file holds`, async () => {
      const gpu = await getGpu();
      const dir = mkdtempSync(path.join(tmpdir(), `srk-${dtype}-`));
      for (const f of ['config.json', 'tokenizer.json']) cpSync(path.join(FIX, 'llama-tiny-tied', f), path.join(dir, f));
      const src = await openSafetensors(path.join(FIX, 'llama-tiny-tied', 'model.safetensors'));
      const tensors = [];
      for (const name of src.names) tensors.push({ name, dtype, shape: src.header[name].shape, data: await src.readTensor(name) });
      await src.close();
      await writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
      const m = await loadModel(gpu, dir);
      const file = await openSafetensors(path.join(dir, 'model.safetensors'));
      for (const name of file.names) {
        const want = await file.readTensor(name); // CPU decoding of the stored dtype
        const got = await gpu.readF32(m.params.get(name));
        for (let i = 0; i < want.length; i++) expect(got[i], `${name}[${i}]`).toBe(want[i]);
      }
      await file.close();
      m.params.free();
    });
  }

  it('a NaN or Inf weight is refused at load, naming the file, tensor and element, in each stored dtype', async () => {
    const gpu = await getGpu();
    const src = await openSafetensors(path.join(FIX, 'llama-tiny-tied', 'model.safetensors'));
    const target = src.names.find((n) => n.endsWith('self_attn.k_proj.weight'))!;
    const shape = src.header[target].shape;
    const flat = 3 * shape[1] + 5; // element [3, 5]
    for (const [dtype, bad] of [['F32', NaN], ['F16', Infinity], ['BF16', -Infinity], ['F64', NaN]] as [Dtype, number][]) {
      const dir = mkdtempSync(path.join(tmpdir(), `srk-nan-${dtype}-`));
      for (const f of ['config.json', 'tokenizer.json']) cpSync(path.join(FIX, 'llama-tiny-tied', f), path.join(dir, f));
      const tensors = [];
      for (const name of src.names) {
        const data = Float32Array.from(await src.readTensor(name));
        if (name === target) data[flat] = bad;
        tensors.push({ name, dtype, shape: src.header[name].shape, data });
      }
      await writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
      await expect(loadModel(gpu, dir), dtype).rejects.toThrow(
        new RegExp(`model\\.safetensors: tensor ${target.replace(/\./g, '\\.')} holds a non-finite value \\(NaN or Inf[^)]*\\) at \\[3, 5\\]`));
    }
    await src.close();
  });

  it('a tied config with the output layer saved too: a copy of the embedding loads (passed over), another tensor is refused', async () => {
    const gpu = await getGpu();
    const src = await openSafetensors(path.join(FIX, 'llama-tiny-tied', 'model.safetensors'));
    const embed = await src.readTensor('model.embed_tokens.weight');
    const shape = src.header['model.embed_tokens.weight'].shape;
    const base = [];
    for (const name of src.names) base.push({ name, dtype: 'F32' as Dtype, shape: src.header[name].shape, data: await src.readTensor(name) });
    await src.close();
    const original = await loadModel(gpu, path.join(FIX, 'llama-tiny-tied'));
    const want = await gpu.readF32(original.params.get('model.embed_tokens.weight'));
    original.params.free();
    for (const [label, head, dtype] of [['copy', embed, 'F32'], ['f16 copy', embed, 'F16'], ['other', embed.map((v, i) => (i === 7 ? v + 1 : v)), 'F32']] as const) {
      const dir = mkdtempSync(path.join(tmpdir(), `srk-tied-${label.replace(' ', '-')}-`));
      for (const f of ['config.json', 'tokenizer.json']) cpSync(path.join(FIX, 'llama-tiny-tied', f), path.join(dir, f));
      await writeSafetensors(path.join(dir, 'model.safetensors'), [...base, { name: 'lm_head.weight', dtype, shape, data: head }]);
      if (label !== 'other') {
        const m = await loadModel(gpu, dir);
        expect(m.params.specs.map((p) => p.name)).not.toContain('lm_head.weight');
        expect(await gpu.readF32(m.params.get('model.embed_tokens.weight'))).toEqual(want);
        m.params.free();
      } else {
        await expect(loadModel(gpu, dir)).rejects.toThrow(/ties the output layer to the embedding \(tie_word_embeddings\), but lm_head\.weight differs from model\.embed_tokens\.weight/);
      }
    }
  });

  it('firstNonFinite: the exponent field of each format (its largest finite values pass)', () => {
    const u16 = (...v: number[]) => new Uint8Array(Uint16Array.from(v).buffer);
    expect(firstNonFinite(u16(0x7bff, 0xfbff, 0x0001, 0x7c00), 'F16')).toBe(3); // max, -max, subnormal, Inf
    expect(firstNonFinite(u16(0x7bff, 0x7e00), 'F16')).toBe(1); // NaN
    expect(firstNonFinite(u16(0x7f7f, 0xff7f, 0x7f80), 'BF16')).toBe(2);
    expect(firstNonFinite(u16(0x7f7f, 0x0001), 'BF16')).toBe(-1);
    expect(firstNonFinite(new Uint8Array(Float32Array.of(3.4e38, -1e-45, NaN).buffer), 'F32')).toBe(2);
    expect(firstNonFinite(new Uint8Array(Float64Array.of(3.4e38, -Infinity).buffer), 'F64')).toBe(1);
    expect(firstNonFinite(new Uint8Array(Float64Array.of(-3.4e38, 1e39).buffer), 'F64')).toBe(1); // Inf once it is float32
    expect(elementIndex(3 * 7 + 5, [4, 7])).toEqual([3, 5]);
  });

  it('a model directory we save reads back byte-identical weights with a valid header', async () => {
    const gpu = await getGpu();
    const m = await loadModel(gpu, path.join(FIX, 'gpt-neox-tiny'));
    const out = mkdtempSync(path.join(tmpdir(), 'srk-save-'));
    await saveModelDir(gpu, m.params, m.cfg.raw, path.join(FIX, 'gpt-neox-tiny'), out);
    const a = await openSafetensors(path.join(FIX, 'gpt-neox-tiny', 'model.safetensors'));
    const b = await openSafetensors(path.join(out, 'model.safetensors'));
    expect(b.metadata).toEqual({ format: 'pt' });
    expect([...b.names].sort()).toEqual([...a.names].sort());
    for (const n of a.names) expect(Buffer.from(await b.readRaw(n)).equals(Buffer.from(await a.readRaw(n))), n).toBe(true);
    await a.close(); await b.close();
    const again = await loadModel(gpu, out);
    expect(again.cfg).toEqual(m.cfg);
    expect(readFileSync(path.join(out, 'tokenizer.json'), 'utf8')).toBe(readFileSync(path.join(FIX, 'gpt-neox-tiny', 'tokenizer.json'), 'utf8'));
    m.params.free(); again.params.free();
  });
});
