// --save-dtype: model.safetensors in float16 or bfloat16 holds the GPU's weights rounded to nearest even,
// config.json names the dtype the file holds, float16 that cannot hold a weight falls back to float32
// (named in a note) instead of writing inf, and a run resumed from a half checkpoint continues from the
// float32 weights in optimizer.safetensors, exactly as an uninterrupted float32 run.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { getGpu } from '../helpers/gpu.js';
import { loadModel } from '../../src/model/load.js';
import { f32ToBf16Bits, f32ToF16Bits, openSafetensors } from '../../src/model/safetensors.js';
import { configForDtype, saveModelDir, type SaveDtype } from '../../src/train/checkpoint.js';
import { describeRun, fixture, fixtureArgs, safetensorsHeader, tempDir, train } from './helpers.js';

const readJson = (f: string) => JSON.parse(readFileSync(f, 'utf8')) as Record<string, unknown>;

describe('--save-dtype', () => {
  it('configForDtype sets the key the source uses (dtype, torch_dtype, both), torch_dtype when neither', () => {
    expect(configForDtype({ torch_dtype: 'float16', a: 1 }, 'float32')).toEqual({ torch_dtype: 'float32', a: 1 });
    expect(configForDtype({ dtype: 'bfloat16' }, 'float16')).toEqual({ dtype: 'float16' });
    expect(configForDtype({ dtype: 'bfloat16', torch_dtype: 'bfloat16' }, 'float32')).toEqual({ dtype: 'float32', torch_dtype: 'float32' });
    expect(configForDtype({ a: 1 }, 'bfloat16')).toEqual({ a: 1, torch_dtype: 'bfloat16' });
  });

  for (const [dtype, stored, bits] of [['float16', 'F16', f32ToF16Bits], ['bfloat16', 'BF16', f32ToBf16Bits]] as const) {
    it(`${dtype}: every tensor ${stored}, the GPU's values rounded to nearest even, config.json says ${dtype}`, async () => {
      const gpu = await getGpu();
      const src = fixture('gpt-neox-tiny');
      const m = await loadModel(gpu, src);
      // Values that round differently from truncation, so a wrong rounding mode cannot pass.
      const name = m.params.specs[0]!.name;
      const t = m.params.get(name);
      const vals = await gpu.readF32(t);
      for (let i = 0; i < vals.length; i++) vals[i] = vals[i]! * (1 + 0.37 * Math.sin(i)) + 1e-3 * Math.cos(3 * i);
      gpu.upload(t, vals);
      const out = tempDir();
      const lines: string[] = [];
      expect(await saveModelDir(gpu, m.params, m.cfg.raw, src, out, { dtype, log: (l) => lines.push(l) })).toBe(dtype);
      expect(lines).toEqual([]);
      expect(readJson(path.join(out, 'config.json')).torch_dtype).toBe(dtype);
      const f = await openSafetensors(path.join(out, 'model.safetensors'));
      expect([...f.names].sort()).toEqual(m.params.specs.map((s) => s.name).sort());
      for (const s of m.params.specs) {
        expect(f.header[s.name]!.dtype, s.name).toBe(stored);
        const want = Uint16Array.from(await gpu.readF32(m.params.get(s.name)), (v) => bits(v));
        const raw = await f.readRaw(s.name);
        const got = new Uint16Array(raw.slice().buffer);
        expect(Buffer.from(got.buffer).equals(Buffer.from(want.buffer)), s.name).toBe(true);
      }
      await f.close();
      const again = await loadModel(gpu, out); // loads as a half checkpoint
      expect(again.cfg.dtype).toBe(dtype);
      m.params.free(); again.params.free();
    });
  }

  it('a weight past float16\'s range: float32 written instead, with a note naming the tensor; bfloat16 keeps it', async () => {
    const gpu = await getGpu();
    const src = fixture('llama-tiny-tied');
    const m = await loadModel(gpu, src);
    const name = m.params.specs[m.params.specs.length - 1]!.name;
    const t = m.params.get(name);
    const vals = await gpu.readF32(t);
    vals[vals.length - 2] = -70000;
    gpu.upload(t, vals);
    for (const [dtype, written, stored] of [['float16', 'float32', 'F32'], ['bfloat16', 'bfloat16', 'BF16']] as [SaveDtype, SaveDtype, string][]) {
      const out = tempDir();
      const lines: string[] = [];
      expect(await saveModelDir(gpu, m.params, m.cfg.raw, src, out, { dtype, log: (l) => lines.push(l) })).toBe(written);
      if (written === 'float32') {
        expect(lines).toHaveLength(1);
        expect(lines[0]).toContain(name);
        expect(lines[0]).toMatch(/70000.*float32 instead/);
      } else {
        expect(lines).toEqual([]);
      }
      expect(readJson(path.join(out, 'config.json')).torch_dtype).toBe(written);
      const { tensors } = safetensorsHeader(readFileSync(path.join(out, 'model.safetensors')));
      expect(new Set(Object.values(tensors).map((x) => x.dtype))).toEqual(new Set([stored]));
    }
    m.params.free();
  });

  it('a run saved in bfloat16 and resumed ends with the float32 weights of an uninterrupted run', async () => {
    const settings = [...fixtureArgs('gpt-neox-tiny'), '--batch-size', '3', '--loss', 'sr-dpo', '--optimizer', 'adamw',
      '--lr', '3e-3', '--warmup-steps', '0'];
    const a = tempDir();
    const ra = await train([...settings, '--max-steps', '3', '--out', a]);
    expect(ra.code, describeRun(ra)).toBe(0);
    const b = tempDir();
    const rb1 = await train([...settings, '--max-steps', '1', '--out', b, '--save-dtype', 'bfloat16']);
    expect(rb1.code, describeRun(rb1)).toBe(0);
    const half = path.join(b, 'checkpoint');
    expect(readJson(path.join(half, 'config.json')).torch_dtype).toBe('bfloat16');
    expect(new Set(Object.values(safetensorsHeader(readFileSync(path.join(half, 'model.safetensors'))).tensors).map((x) => x.dtype)))
      .toEqual(new Set(['BF16']));
    const opt = Object.keys(safetensorsHeader(readFileSync(path.join(half, 'optimizer.safetensors'))).tensors);
    expect(opt.filter((n) => n.endsWith('#master'))).toHaveLength(Object.keys(safetensorsHeader(readFileSync(path.join(half, 'model.safetensors'))).tensors).length);
    const rb2 = await train([...settings, '--max-steps', '3', '--out', b, '--resume']);
    expect(rb2.code, describeRun(rb2)).toBe(0);
    expect(readJson(path.join(b, 'checkpoint', 'config.json')).torch_dtype).toBe('float32');
    // Bit for bit: the resumed run continued from the float32 weights, not the bfloat16 file.
    expect(readFileSync(path.join(b, 'checkpoint', 'model.safetensors')).equals(readFileSync(path.join(a, 'checkpoint', 'model.safetensors')))).toBe(true);
    expect(readFileSync(path.join(b, 'metrics.jsonl'), 'utf8').split('\n').map((l) => l.replace(/"(tokens|pairs)_per_s":[^,}]*/g, '')))
      .toEqual(readFileSync(path.join(a, 'metrics.jsonl'), 'utf8').split('\n').map((l) => l.replace(/"(tokens|pairs)_per_s":[^,}]*/g, '')));
    // The finished run resumed with another --save-dtype, and --keep-models: nothing to train, but its
    // model is saved as asked, and kept.
    const rb3 = await train([...settings, '--max-steps', '3', '--out', b, '--resume', '--save-dtype', 'float16', '--keep-models']);
    expect(rb3.code, describeRun(rb3)).toBe(0);
    expect(readJson(path.join(b, 'checkpoint', 'config.json')).torch_dtype).toBe('float16');
    expect(readJson(path.join(b, 'models', 'step-3', 'config.json')).torch_dtype).toBe('float16');
    // A new run from that float16 model: saved as float32 by default, which doubles it on disk: a note says so.
    const fromHalf = ['--model', path.join(b, 'models', 'step-3'), '--data', path.join(fixture('gpt-neox-tiny'), 'pairs.jsonl'), '--loss', 'dpo', '--max-steps', '1'];
    const rc = await train([...fromHalf, '--out', tempDir()]);
    expect(rc.code, describeRun(rc)).toBe(0);
    expect(rc.stderr).toMatch(/note: checkpoints are saved as float32 \(--save-dtype's default, which keeps every update\), twice the size of the float16 model; --save-dtype float16 keeps its dtype/);
    const rd = await train([...fromHalf, '--out', tempDir(), '--save-dtype', 'float16']);
    expect(rd.code, describeRun(rd)).toBe(0);
    expect(rd.stderr).not.toMatch(/twice the size/);
  }, 240_000);
});
