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
