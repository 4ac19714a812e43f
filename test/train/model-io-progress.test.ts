// Progress of reading and writing a model (what a 7B checkpoint needs, minutes of it): loadModel reports
// the checkpoint's bytes after each tensor and saveCheckpoint the bytes it reads back from the GPU, each
// ending at its total; weightsHash (the reference cache's key) the bytes it hashes; bytesProgress passes them on in MiB only for a model big enough to need it.
import { cpSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { getGpu } from '../helpers/gpu.js';
import { loadModel } from '../../src/model/load.js';
import { Optimizer } from '../../src/kernels/optimizer.js';
import { saveCheckpoint, type SaveDtype } from '../../src/train/checkpoint.js';
import { bytesProgress } from '../../src/train/progress.js';
import { weightsHash } from '../../src/train/reference.js';
import { fixture, safetensorsHeader, tempDir } from './helpers.js';

/** The calls of a (done, total) callback, checked to rise to their one total. */
function recorder() {
  const calls: [number, number][] = [];
  const fn = (done: number, total: number) => { calls.push([done, total]); };
  const check = (total: number) => {
    expect(calls.length).toBeGreaterThan(1);
    for (let i = 0; i < calls.length; i++) {
      expect(calls[i]![1]).toBe(total);
      expect(calls[i]![0]).toBeGreaterThan(i > 0 ? calls[i - 1]![0] : 0);
    }
    expect(calls.at(-1)![0]).toBe(total);
  };
  return { calls, fn, check };
}

describe('progress of loading and saving a model', () => {
  it('loadModel: the checkpoint\'s bytes, tensor by tensor, to the sum of its tensors', async () => {
    const gpu = await getGpu();
    const dir = fixture('mistral-tiny');
    const { tensors } = safetensorsHeader(readFileSync(path.join(dir, 'model.safetensors')));
    const r = recorder();
    const m = await loadModel(gpu, dir, { onProgress: r.fn });
    r.check(Object.values(tensors).reduce((n, t) => n + t.data_offsets[1] - t.data_offsets[0], 0));
    expect(r.calls).toHaveLength(m.params.specs.length);
    m.params.free();
  });

  for (const [dtype, huge] of [['float32', false], ['bfloat16', false], ['float16', true]] as [SaveDtype, boolean][]) {
    it(`saveCheckpoint ${dtype}${huge ? ' past float16\'s range (float32 written)' : ''}: weights, optimizer state${dtype === 'bfloat16' ? ', float32 weights' : ''}`, async () => {
      const gpu = await getGpu();
      const dir = fixture('gpt-neox-tiny');
      const m = await loadModel(gpu, dir, { grads: true });
      if (huge) {
        const t = m.params.get(m.params.specs[0]!.name);
        const v = await gpu.readF32(t); v[3] = 1e6; gpu.upload(t, v);
      }
      const optimizer = new Optimizer(gpu, { type: 'adamw' }, m.params.specs.map((s) => m.params.get(s.name)), {});
      const r = recorder();
      const state = { step: 0, pairsSeen: 0, epoch: 0, position: 0, seed: 0, options: {}, savedAt: '' };
      await saveCheckpoint(gpu, { out: tempDir(), params: m.params, optimizer, rawConfig: m.cfg.raw, sourceDir: dir, state, dtype,
        log: () => {}, onProgress: r.fn });
      const copies = 1 + optimizer.state[0]!.length + (dtype === 'bfloat16' ? 1 : 0);
      expect(optimizer.state[0]!.length).toBe(2); // AdamW: two moments
      r.check(m.params.count * 4 * copies);
      optimizer.release(); m.params.free();
    });
  }

  it('weightsHash: the bytes of the safetensors files and config.json read; known in this process afterwards; a changed file hashes anew', async () => {
    const dir = tempDir();
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json']) cpSync(path.join(fixture('llama-tiny-tied'), f), path.join(dir, f));
    const r = recorder();
    const first = await weightsHash(dir, r.fn);
    r.check(statSync(path.join(dir, 'config.json')).size + statSync(path.join(dir, 'model.safetensors')).size);
    const again = recorder();
    expect(await weightsHash(dir, again.fn)).toBe(first);
    expect(again.calls).toEqual([]);
    const cfg = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, rms_norm_eps: 1e-5 }));
    expect(await weightsHash(dir)).not.toBe(first);
  });

  it('bytesProgress: MiB under the label, nothing for a whole below the threshold', () => {
    const seen: unknown[][] = [];
    const p = bytesProgress((...a) => { seen.push(a); }, 'load x', 2 ** 21);
    p(10, 2 ** 21 - 1);
    expect(seen).toEqual([]);
    p(2 ** 20, 3 * 2 ** 20);
    p(2 ** 20 + 1000, 3 * 2 ** 20); // the same MiB: not again
    p(3 * 2 ** 20, 3 * 2 ** 20);
    expect(seen).toEqual([['load x', 1, 3, 'MiB'], ['load x', 3, 3, 'MiB']]);
  });
});
