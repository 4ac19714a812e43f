// The fixture models a model-level test runs on: each HF fixture architecture, GPT-NeoX also with the
// sequential residual (Pythia's is parallel), and the Mistral with a sliding window shorter than the
// tests' sequences (the fixture's own config has none), as [name, fixture directory, config change].
import { resolve } from 'node:path';
import type { ModelConfig } from '../../src/model/config.js';
import type { Gpu } from '../../src/engine/gpu.js';
import type { BatchLayout } from '../../src/model/batch.js';
import type { CausalLM } from '../../src/model/causal-lm.js';
import { releaseBatch, uploadBatch } from '../../src/model/gpu-batch.js';

export const FIXTURES_HF = resolve(import.meta.dirname, '../fixtures/hf');
/** Qwen3, the Gemmas and Phi-3 with LongRoPE, which the HF fixtures lack: the same layout, from a float64 JAX reference of transformers' code (its README). */
export const FIXTURES_JAX = resolve(import.meta.dirname, '../fixtures/jax');

/** The golden fixtures (float64 log-probs, losses and gradients) as [name, the directory holding it]. */
export const GOLDEN_FIXTURES: readonly (readonly [string, string])[] = [
  ['gpt-neox-tiny', FIXTURES_HF], ['mistral-tiny', FIXTURES_HF], ['llama-tiny-tied', FIXTURES_HF], ['qwen3-tiny', FIXTURES_JAX],
  // The same weights with a sliding window on the second layer alone (Qwen's max_window_layers).
  ['qwen3-tiny-window', FIXTURES_JAX],
  // Gemma 3: sliding, full, sliding layers (a window of 5, rope bases 1e4 / 1e6 with linear scaling), query_pre_attn_scalar 24.
  ['gemma3-tiny', FIXTURES_JAX],
  // Gemma: embeddings times sqrt(hidden), RMSNorm gains 1 + w, a tanh-GELU gate, GQA 4:2 with heads of 16 over hidden 48.
  ['gemma-tiny', FIXTURES_JAX],
  // Gemma 2: sliding, full, sliding layers by its default rule (a window of 5), query_pre_attn_scalar 24, the scores and
  // the logits soft-capped with caps small enough to bend them (the fixture's README says how far).
  ['gemma2-tiny', FIXTURES_JAX],
  // Phi-3: its fused projections, LongRoPE (short factors 1 to 5.3, cos and sin times the attention factor of 4x its original
  // context), partial rotary (8 of 12 channels), a sliding window of 7, GQA 4:2, untied.
  ['phi3-tiny-longrope', FIXTURES_JAX],
];

export const MODEL_VARIANTS: [string, string, Partial<ModelConfig>][] = [
  ['GPT-NeoX, parallel residual', 'gpt-neox-tiny', {}],
  ['GPT-NeoX, sequential residual', 'gpt-neox-tiny', { parallelResidual: false }],
  ['Mistral (GQA, sliding window of 6 keys)', 'mistral-tiny', { slidingWindow: 6 }],
  ['Llama, tied embeddings', 'llama-tiny-tied', {}],
  ['Qwen3 (q/k norms, a window on layer 1 alone)', '../jax/qwen3-tiny-window', {}],
  ['Gemma 3 (sandwich norms, sliding layers around a full one, each with its rope)', '../jax/gemma3-tiny', {}],
  ['Gemma 2 (sandwich norms, soft-capped scores and logits, sliding layers around a full one)', '../jax/gemma2-tiny', {}],
  ['Phi-3 (fused projections, LongRoPE with its attention factor, partial rotary, a window of 7)', '../jax/phi3-tiny-longrope', {}],
];

/**
 * One forward and backward of `model` on `layout` with per-token weights `w` (default sin(i + 1)): the
 * log-probs and every parameter's gradient (zeroed first), read back. For tests that compare two
 * models that must compute the same function.
 */
export async function logpAndGrads(gpu: Gpu, model: CausalLM, layout: BatchLayout, w?: Float32Array): Promise<{ logp: Float32Array; grads: Map<string, Float32Array> }> {
  const params = model.params;
  params.zeroGrads();
  const batch = uploadBatch(gpu, layout, model.cfg.vocabSize);
  const st = model.forward(batch, true);
  const logp = await gpu.readF32(st.logp);
  const tw = gpu.tensor([batch.N], w ?? Float32Array.from({ length: batch.N }, (_, i) => Math.sin(i + 1)));
  model.backward(st, tw);
  const grads = new Map<string, Float32Array>();
  for (const s of params.specs) grads.set(s.name, await gpu.readF32(params.grad(s.name)));
  gpu.pool.release(tw, st.logp); releaseBatch(gpu, batch);
  return { logp, grads };
}
