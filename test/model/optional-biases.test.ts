// Optional biases. GPT-NeoX with attention_bias false (Hugging Face: no bias on query_key_value and dense; the MLP keeps
// its biases): a config srk accepts (tensor-names.ts leaves those tensors out) must also run. Checked
// against the same model with those biases present and zero, which computes the same function: equal
// log-probs and equal gradients of every shared parameter (to f32 rounding), in both residual styles.
// And Llama with attention_bias and mlp_bias true, against the tied fixture without them.
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { getGpu, relErr } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import { FIXTURES_HF as FIX, logpAndGrads } from '../helpers/models.js';
import { loadModel } from '../../src/model/load.js';
import { buildBatch } from '../../src/model/batch.js';
import { CausalLM } from '../../src/model/causal-lm.js';
import { Params } from '../../src/model/params.js';
import { expectedParameters } from '../../src/model/tensor-names.js';
import { copy } from '../../src/kernels/elementwise.js';
import type { ModelConfig } from '../../src/model/config.js';

const rng = makeRng();

describe(`GPT-NeoX without attention biases (seed ${rng.seed})`, () => {
  for (const parallelResidual of [true, false]) {
    it(`${parallelResidual ? 'parallel' : 'sequential'} residual: as the model with zero attention biases`, async () => {
      const gpu = await getGpu();
      const m = await loadModel(gpu, resolve(FIX, 'gpt-neox-tiny'), { grads: true });
      const cfg = { ...m.cfg, parallelResidual };
      const withBias = new CausalLM(gpu, cfg, m.params);
      const noBiasCfg = { ...cfg, attentionBias: false };
      const specs = expectedParameters(noBiasCfg);
      const params = new Params(gpu, specs).allocate();
      params.allocateGrads();
      for (const s of specs) copy(gpu, m.params.get(s.name), params.get(s.name));
      for (const s of m.params.specs) {
        if (/attention\.(query_key_value|dense)\.bias$/.test(s.name)) gpu.upload(m.params.get(s.name), new Float32Array(m.params.get(s.name).numel));
      }
      expect(specs.length).toBe(m.params.specs.length - 2 * cfg.numLayers);
      const noBias = new CausalLM(gpu, noBiasCfg, params);
      const V = cfg.vocabSize;
      const ids = (n: number) => Array.from({ length: n }, () => rng.int(V));
      const layout = buildBatch([{ prompt: ids(9), completions: [ids(7), ids(5)] }, { prompt: ids(4), completions: [ids(11), ids(6)] }], { packed: true });
      const a = await logpAndGrads(gpu, withBias, layout);
      const b = await logpAndGrads(gpu, noBias, layout);
      expect(relErr(b.logp, a.logp)).toBeLessThan(1e-6);
      for (const s of specs) expect(relErr(b.grads.get(s.name)!, a.grads.get(s.name)!), s.name).toBeLessThan(1e-5);
      params.free(); m.params.free();
    });
  }

  // [name, config change, biases per layer]: Llama's attention_bias puts one on all four projections;
  // Qwen2 has them on q/k/v_proj only.
  for (const [name, change, perLayer] of [
    ['Llama with attention and MLP biases', { attentionBias: true, mlpBias: true }, ['q', 'k', 'v', 'o', 'gate', 'up', 'down']],
    ['Qwen2 (q/k/v biases)', { arch: 'qwen2', attentionBias: true }, ['q', 'k', 'v']],
  ] as [string, Partial<ModelConfig>, string[]][]) {
    it(`${name} (zero) computes what the Llama fixture without them does`, async () => {
      const gpu = await getGpu();
      const m = await loadModel(gpu, resolve(FIX, 'llama-tiny-tied'), { grads: true });
      expect([m.cfg.attentionBias, m.cfg.mlpBias]).toEqual([false, false]);
      const biasCfg = { ...m.cfg, ...change };
      const specs = expectedParameters(biasCfg);
      const params = new Params(gpu, specs).allocate();
      params.allocateGrads();
      for (const s of specs) {
        if (m.params.has(s.name)) copy(gpu, m.params.get(s.name), params.get(s.name));
        else gpu.upload(params.get(s.name), new Float32Array(params.get(s.name).numel));
      }
      const added = specs.filter((s) => !m.params.has(s.name)).map((s) => s.name);
      expect(added).toEqual(Array.from({ length: m.cfg.numLayers }, (_, l) => perLayer.map((p) =>
        `model.layers.${l}.${['gate', 'up', 'down'].includes(p) ? 'mlp' : 'self_attn'}.${p}_proj.bias`)).flat());
      const withBias = new CausalLM(gpu, biasCfg, params);
      const V = m.cfg.vocabSize;
      const ids = (n: number) => Array.from({ length: n }, () => rng.int(V));
      const layout = buildBatch([{ prompt: ids(8), completions: [ids(6), ids(9)] }, { prompt: ids(5), completions: [ids(4), ids(7)] }], { packed: true });
      const a = await logpAndGrads(gpu, m.model, layout);
      const b = await logpAndGrads(gpu, withBias, layout);
      expect(relErr(b.logp, a.logp)).toBeLessThan(1e-6);
      for (const s of m.params.specs) expect(relErr(b.grads.get(s.name)!, a.grads.get(s.name)!), s.name).toBeLessThan(1e-5);
      // The biases' own gradients: the column sums of their layers' output gradients, so not zero.
      const qBias = b.grads.get('model.layers.0.self_attn.q_proj.bias')!;
      expect(qBias.some((v) => v !== 0)).toBe(true);
      params.free(); m.params.free();
    });
  }
});
