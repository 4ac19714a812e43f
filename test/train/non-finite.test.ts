// `srk train` stops on a non-finite loss: non-zero exit, a message with the step and the last good
// checkpoint, and that checkpoint left whole (it loads).
import { cpSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadModel } from '../../src/model/load.js';
import { openSafetensors } from '../../src/model/safetensors.js';
import { getGpu } from '../helpers/gpu.js';
import { describeRun, fixture, fixtureArgs, readMetrics, safetensorsHeader, tempDir, train } from './helpers.js';

describe('srk train stops on a non-finite loss, naming the step and the last good checkpoint', () => {
  const tmp = tempDir();

  it('lr 1e30 without clipping: step 2 is NaN; exit 1; the step-1 checkpoint is whole and loads', async () => {
    const out = join(tmp, 'blowup');
    const r = await train([...fixtureArgs('gpt-neox-tiny'), '--loss', 'dpo', '--optimizer', 'adamw', '--lr', '1e30', '--grad-clip', '0',
      '--warmup-steps', '0', '--batch-size', '3', '--max-steps', '5', '--save-every', '1', '--out', out]);
    expect(r.code, describeRun(r)).toBe(1);
    const ckpt = join(out, 'checkpoint');
    expect(r.stderr).toMatch(/step 2: the loss is (NaN|-?Infinity)/);
    expect(r.stderr).toContain(`the last good checkpoint is ${ckpt}`);
    expect(r.stderr).not.toMatch(/\n\s+at /); // a user-facing message, no stack trace
    // Only the good step is logged; the checkpoint is the one of step 1.
    expect(readMetrics(out).map((m) => m.step)).toEqual([1]);
    expect(readdirSync(out).filter((e) => e.startsWith('.checkpoint'))).toEqual([]);
    const state = JSON.parse(readFileSync(join(ckpt, 'trainer_state.json'), 'utf8'));
    expect(state.step).toBe(1);
    // Every tensor of the fixture, same shapes, finite values; and the model loads on the GPU.
    const src = safetensorsHeader(readFileSync(join(fixture('gpt-neox-tiny'), 'model.safetensors'))).tensors;
    const f = await openSafetensors(join(ckpt, 'model.safetensors'));
    const initial = await openSafetensors(join(fixture('gpt-neox-tiny'), 'model.safetensors'));
    try {
      expect(Object.keys(f.header).filter((k) => k !== '__metadata__').sort()).toEqual(Object.keys(src).sort());
      // Step 1's weights, not the initial ones saved again: lr 1e30 moved (nearly) every tensor.
      let changed = 0;
      for (const name of Object.keys(src)) {
        const x = await f.readTensor(name);
        expect(x.length, name).toBe(src[name].shape.reduce((a, b) => a * b, 1));
        expect(x.every((v) => Number.isFinite(v)), `${name} is finite`).toBe(true);
        const x0 = await initial.readTensor(name);
        if (x.some((v, i) => v !== x0[i])) changed++;
      }
      expect(changed, 'tensors that differ from the initial weights').toBeGreaterThan(Object.keys(src).length / 2);
    } finally {
      await f.close(); await initial.close();
    }
    const gpu = await getGpu();
    const m = await loadModel(gpu, ckpt);
    expect(m.params.count).toBeGreaterThan(0);
    m.model.destroy(); m.params.free();
  });

  it('initial weights that overflow: step 1 fails, and the message says no checkpoint was saved (NaN weights are refused at load)', async () => {
    const model = join(tmp, 'nan-model');
    cpSync(fixture('gpt-neox-tiny'), model, { recursive: true });
    const file = join(model, 'model.safetensors');
    const buf = readFileSync(file);
    const { dataStart, tensors } = safetensorsHeader(buf);
    const [a, b] = tensors['gpt_neox.final_layer_norm.weight'].data_offsets;
    const fill = (v: number) => { for (let o = dataStart + a; o < dataStart + b; o += 4) buf.writeFloatLE(v, o); writeFileSync(file, buf); };
    const out = join(tmp, 'nan');
    const args = ['--model', model, '--ref-model', fixture('gpt-neox-tiny_ref'), '--data', join(model, 'pairs.jsonl'), '--no-eos',
      '--loss', 'sr-ipo', '--batch-size', '6', '--max-steps', '2', '--save-every', '1', '--out', out];
    fill(NaN);
    const refused = await train(args);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/model\.safetensors: tensor gpt_neox\.final_layer_norm\.weight holds a non-finite value \(NaN or Inf\) at \[0\]/);
    // Finite weights whose products are not: the final norm scales every logit past f32's range.
    fill(3e38);
    const r = await train(args);
    expect(r.code, describeRun(r)).toBe(1);
    expect(r.stderr).toMatch(/step 1: the loss is (NaN|-?Infinity)/);
    expect(r.stderr).toMatch(/last good checkpoint is none/);
    expect(readMetrics(out)).toEqual([]);
    expect(readdirSync(out).filter((e) => e.startsWith('.checkpoint') || e === 'checkpoint')).toEqual([]);
  });
});
