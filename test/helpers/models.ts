// The fixture models a model-level test runs on: each HF fixture architecture, GPT-NeoX also with the
// sequential residual (Pythia's is parallel), and the Mistral with a sliding window shorter than the
// tests' sequences (the fixture's own config has none), as [name, fixture directory, config change].
import { resolve } from 'node:path';
import type { ModelConfig } from '../../src/model/config.js';

export const FIXTURES_HF = resolve(import.meta.dirname, '../fixtures/hf');

export const MODEL_VARIANTS: [string, string, Partial<ModelConfig>][] = [
  ['GPT-NeoX, parallel residual', 'gpt-neox-tiny', {}],
  ['GPT-NeoX, sequential residual', 'gpt-neox-tiny', { parallelResidual: false }],
  ['Mistral (GQA, sliding window of 6 keys)', 'mistral-tiny', { slidingWindow: 6 }],
  ['Llama, tied embeddings', 'llama-tiny-tied', {}],
];
