// `srk train` stops on a non-finite loss: non-zero exit, a message with the step and the last good
// checkpoint, and that checkpoint left whole (it loads).
import { cpSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadModel } from '../../src/model/load.js';
import { openSafetensors } from '../../src/model/safetensors.js';
import { getGpu } from '../helpers/gpu.js';
import { describeRun, editF32Tensor, fixture, fixtureArgs, readMetrics, safetensorsHeader, tempDir, train } from './helpers.js';

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
    expect(r.stderr).toContain(`checkpoint at step 1: ${ckpt}\n`); // (--save-every's saves are said)
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
    const fill = (v: number) => editF32Tensor(join(model, 'model.safetensors'), 'gpt_neox.final_layer_norm.weight', () => v);
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

  it('mixed precision: a weight past f16\'s range (finite in f32) ends the reference pass or the step with a message naming mixed precision and the flag', async () => {
    // query_key_value x 1e6: weights up to ~1e5, past f16's 65504 (the f32 path computes them, saturated softmax and all).
    const model = join(tmp, 'f16-overflow');
    cpSync(fixture('gpt-neox-tiny'), model, { recursive: true });
    for (const l of [0, 1]) editF32Tensor(join(model, 'model.safetensors'), `gpt_neox.layers.${l}.attention.query_key_value.weight`, (x) => x * 1e6);
    const common = ['--model', model, '--data', join(model, 'pairs.jsonl'), '--no-eos', '--batch-size', '6', '--max-steps', '1'];
    // The reference pass (the policy as its own reference), every pair NaN: the first named, the rest counted.
    const r = await train([...common, '--loss', 'dpo', '--precision', 'mixed', '--out', join(tmp, 'f16-mixed')], { SRK_MIXED: 'emulate' });
    expect(r.code, describeRun(r)).toBe(1);
    expect(r.stderr).toMatch(/pair \d: log-prob is not finite \(chosen NaN, rejected NaN\); so are 5 more of the 6 pairs read back with it \(mixed precision: a weight or an activation past f16's range, 65504, ends this way too; --precision f32 tells the two apart\)/);
    // Read back in micro-batches of 2: still every pair of the readback counted; and where only the augmented pass is
    // f16 (the policy its own reference), the reference's augmented pass names --aug-precision.
    const micro = await train([...common, '--micro-batch-size', '2', '--loss', 'dpo', '--precision', 'mixed', '--out', join(tmp, 'f16-micro')], { SRK_MIXED: 'emulate' });
    expect(micro.stderr).toMatch(/so are 5 more of the 6 pairs read back with it/);
    const refAug = await train([...common, '--loss', 'sr-dpo', '--precision', 'f32', '--aug-precision', 'mixed', '--out', join(tmp, 'f16-ref-aug')], { SRK_MIXED: 'emulate' });
    expect(refAug.code, describeRun(refAug)).toBe(1);
    expect(refAug.stderr).toMatch(/log-prob is not finite .*\(the augmented pass in mixed precision, --aug-precision mixed: .* --aug-precision f32 tells the two apart\)/);
    // In f32 the same model trains.
    const f32 = await train([...common, '--loss', 'dpo', '--precision', 'f32', '--out', join(tmp, 'f16-f32')], { SRK_MIXED: 'emulate' });
    expect(f32.code, describeRun(f32)).toBe(0);
    // Only the augmented pass in f16, against a sound reference: the step's loss is NaN, and the flag is --aug-precision.
    const aug = await train([...common, '--ref-model', fixture('gpt-neox-tiny_ref'), '--loss', 'sr-dpo', '--precision', 'f32', '--aug-precision', 'mixed',
      '--out', join(tmp, 'f16-aug')], { SRK_MIXED: 'emulate' });
    expect(aug.code, describeRun(aug)).toBe(1);
    expect(aug.stderr).toMatch(/step 1: the loss is NaN .*\(the augmented pass in mixed precision, --aug-precision mixed: a weight or an activation past f16's range, 65504, ends this way too; --aug-precision f32 tells the two apart\)/);
  });
});
