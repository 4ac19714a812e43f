// A checkpoint never holds a non-finite weight or optimizer state: a save that meets one (weights past
// float32 after an absurd learning rate, say) is refused naming the tensor and element, with the run's
// previous checkpoint left whole and no temporary directory behind; a resume refuses an
// optimizer.safetensors that holds one (its float32 weights and moments would continue the run).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { getGpu } from '../helpers/gpu.js';
import { loadModel } from '../../src/model/load.js';
import { Optimizer } from '../../src/kernels/optimizer.js';
import { loadOptimizerState, saveCheckpoint } from '../../src/train/checkpoint.js';
import { openSafetensors, writeSafetensors, type TensorToWrite } from '../../src/model/safetensors.js';
import { fixture, tempDir } from './helpers.js';

describe('non-finite values never reach a checkpoint', () => {
  /** The tiny fixture's weights with an RMSprop optimizer, and a run directory. */
  const setup = async () => {
    const gpu = await getGpu();
    const dir = fixture('gpt-neox-tiny');
    const m = await loadModel(gpu, dir, { grads: true });
    const optimizer = new Optimizer(gpu, { type: 'rmsprop' }, m.params.specs.map((s) => m.params.get(s.name)), {});
    return { gpu, dir, m, optimizer, out: tempDir() };
  };

  it('a save meeting a NaN weight or optimizer state is refused by name; the previous checkpoint stays', async () => {
    const { gpu, dir, m, optimizer, out } = await setup();
    const state = (step: number) => ({ step, pairsSeen: 0, epoch: 0, position: 0, seed: 0, options: {}, savedAt: '' });
    const notes: string[] = [];
    const save = (step: number, dtype: 'float32' | 'bfloat16' | 'float16' = 'float32') =>
      saveCheckpoint(gpu, { out, params: m.params, optimizer, rawConfig: m.cfg.raw, sourceDir: dir, state: state(step), dtype, log: (l) => notes.push(l) });
    const ckpt = await save(1);
    const before = readFileSync(path.join(ckpt, 'model.safetensors'));
    const spec = m.params.specs[2]!;
    const t = m.params.get(spec.name);
    const good = await gpu.readF32(t);
    const bad = Float32Array.from(good); bad[5] = NaN; gpu.upload(t, bad);
    for (const dtype of ['float32', 'bfloat16', 'float16'] as const) {
      await expect(save(2, dtype)).rejects.toThrow(new RegExp(`${spec.name.replace(/\./g, '\\.')} holds NaN at \\[.*\\]: the model is not saved`));
    }
    expect(notes).toEqual([]); // (float16: no "float32 instead" note before the refusal)
    gpu.upload(t, good);
    const st = optimizer.state[4]![0]!;
    const sv = await gpu.readF32(st); sv[0] = Infinity; gpu.upload(st, sv);
    await expect(save(3)).rejects.toThrow(new RegExp(`the optimizer state ${m.params.specs[4]!.name.replace(/\./g, '\\.')}#0 holds Infinity at \\[0`));
    // The step-1 checkpoint as it was, and nothing else beside it.
    expect(readFileSync(path.join(out, 'checkpoint', 'model.safetensors')).equals(before)).toBe(true);
    expect(JSON.parse(readFileSync(path.join(out, 'checkpoint', 'trainer_state.json'), 'utf8')).step).toBe(1);
    expect(readdirSync(out).sort()).toEqual(['checkpoint']);
    optimizer.release(); m.params.free();
  });

  it('a resume refuses an optimizer.safetensors with a non-finite moment or float32 weight', async () => {
    const { gpu, dir, m, optimizer, out } = await setup();
    const ckpt = await saveCheckpoint(gpu, { out, params: m.params, optimizer, rawConfig: m.cfg.raw, sourceDir: dir,
      state: { step: 1, pairsSeen: 0, epoch: 0, position: 0, seed: 0, options: {}, savedAt: '' }, dtype: 'bfloat16', log: () => {} });
    await loadOptimizerState(gpu, ckpt, m.params, optimizer); // as saved: fine
    const file = path.join(ckpt, 'optimizer.safetensors');
    const f = await openSafetensors(file);
    const names = Object.keys(f.header).filter((n) => n !== '__metadata__');
    const tensors: TensorToWrite[] = [];
    for (const name of names) tensors.push({ name, dtype: 'F32', shape: f.header[name]!.shape, data: await f.readTensor(name) });
    await f.close();
    for (const target of [names.find((n) => n.endsWith('#0'))!, names.find((n) => n.endsWith('#master'))!]) {
      const edited = tensors.map((x) => x.name !== target ? x : { ...x, data: Float32Array.from(x.data as Float32Array, (v, i) => (i === 1 ? NaN : v)) });
      await writeSafetensors(file, edited, { format: 'srk-optimizer', optimizer: 'rmsprop' });
      await expect(loadOptimizerState(gpu, ckpt, m.params, optimizer)).rejects.toThrow(
        new RegExp(`optimizer\\.safetensors: tensor ${target.replace(/[.#]/g, '\\$&')} holds NaN at \\[(0, )*1\\]: not a state to resume from`));
    }
    expect(existsSync(file)).toBe(true);
    optimizer.release(); m.params.free();
  });
});
