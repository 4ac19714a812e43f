// GPT-NeoX's output layer saved under transformers 5's in-memory name (lm_head.weight: a state_dict saved
// without save_pretrained) loads as embed_out.weight, as transformers 5 loads it; both names at once, or
// neither, stay errors.
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { getGpu } from '../helpers/gpu.js';
import { FIXTURES_HF } from '../helpers/models.js';
import { loadModel } from '../../src/model/load.js';
import { openCheckpoint, writeSafetensors, type TensorToWrite } from '../../src/model/safetensors.js';

const FIX = resolve(FIXTURES_HF, 'gpt-neox-tiny');

async function renamed(rename: (name: string) => string[]): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'srk-neox-head-'));
  copyFileSync(join(FIX, 'config.json'), join(dir, 'config.json'));
  const ckpt = await openCheckpoint(FIX);
  const out: TensorToWrite[] = [];
  for (const n of ckpt.names) for (const name of rename(n)) out.push({ name, dtype: 'F32', shape: ckpt.tensors[n].shape, data: await ckpt.readTensor(n) });
  await ckpt.close();
  await writeSafetensors(join(dir, 'model.safetensors'), out);
  return dir;
}

describe('GPT-NeoX output layer names', () => {
  it('lm_head.weight is read as embed_out.weight; the model computes what the fixture does', async () => {
    const gpu = await getGpu();
    const original = await loadModel(gpu, FIX);
    const dir = await renamed((n) => [n === 'embed_out.weight' ? 'lm_head.weight' : n]);
    const m = await loadModel(gpu, dir);
    expect(await gpu.readF32(m.params.get('embed_out.weight'))).toEqual(await gpu.readF32(original.params.get('embed_out.weight')));
    m.params.free(); original.params.free();
    const both = await renamed((n) => (n === 'embed_out.weight' ? [n, 'lm_head.weight'] : [n]));
    await expect(loadModel(gpu, both)).rejects.toThrow(/lm_head\.weight/);
  });

  it('a tied config with an f16 copy of the embedding under lm_head.weight: the copy is compared (read under its file name) and passed over', async () => {
    const gpu = await getGpu();
    const dir = mkdtempSync(join(tmpdir(), 'srk-neox-head-'));
    const cfg = JSON.parse(readFileSync(join(FIX, 'config.json'), 'utf8'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, tie_word_embeddings: true }));
    const ckpt = await openCheckpoint(FIX);
    const out: TensorToWrite[] = [];
    for (const n of ckpt.names) {
      if (n === 'embed_out.weight') continue;
      const data = await ckpt.readTensor(n);
      out.push({ name: n, dtype: 'F32', shape: ckpt.tensors[n].shape, data });
      // The embedding again, as f16, under GPT-NeoX's other output-layer name.
      if (n === 'gpt_neox.embed_in.weight') out.push({ name: 'lm_head.weight', dtype: 'F16', shape: ckpt.tensors[n].shape, data });
    }
    await ckpt.close();
    await writeSafetensors(join(dir, 'model.safetensors'), out);
    const m = await loadModel(gpu, dir);
    expect(m.cfg.tiedEmbeddings).toBe(true);
    expect(m.params.has('embed_out.weight')).toBe(false);
    m.params.free();
  });
});
