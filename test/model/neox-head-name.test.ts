// GPT-NeoX's output layer saved under transformers 5's in-memory name (lm_head.weight: a state_dict saved
// without save_pretrained) loads as embed_out.weight, as transformers 5 loads it; both names at once, or
// neither, stay errors.
import { copyFileSync, mkdtempSync } from 'node:fs';
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
});
