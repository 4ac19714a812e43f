// Model shapes for initModel: a ModelConfig per (arch, preset), with the byte tokenizer's
// "<|endoftext|>" (id 256) as BOS and EOS.
//
//   tiny         tests and the demo (gpt-neox): d 64, 2 layers, 4 heads (the others: 2 KV heads), seconds on a CPU.
//   small        d 128, 4 layers, 4 heads (the others: 2 KV heads), ~0.9M params: minutes of lavapipe a run.
//   pythia-160m  gpt-neox only: the real Pythia-160m shapes (d 768, 12 layers, 12 heads, vocab 50304).
//   pythia-410m  gpt-neox only: the real Pythia-410m shapes (d 1024, 24 layers, 16 heads, vocab 50304).
//
// The embedding of tiny/small has the byte tokenizer's 257 ids rounded up to a multiple of 64
// (320 rows; the unused rows are ordinary random rows, as in Pythia's padded 50304). The pythia
// presets keep the real vocab size 50304 so that benchmarks see real matmul shapes.
// MLP widths: gpt-neox 4d; the others the SwiGLU rule round_up(8d/3, 64).
import type { Arch, ModelConfig } from '../model/config.js';
import { BYTE_TOKENIZER_VOCAB, ENDOFTEXT_ID } from './byte-tokenizer.js';

export const ARCHS: readonly Arch[] = ['gpt-neox', 'mistral', 'llama', 'qwen2', 'qwen3', 'gemma', 'gemma2', 'gemma3', 'phi3'];

export interface Preset {
  name: string;
  /** What `srk init --help` says of it. */
  description: string;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  /** llama/mistral; gpt-neox always uses numHeads. */
  numKvHeads: number;
  intermediateSize: number;
  /** null: the tokenizer's vocabulary rounded up to a multiple of 64. */
  vocabSize: number | null;
  maxPositions: number;
}

export const roundUp = (n: number, m: number): number => Math.ceil(n / m) * m;
const swiglu = (d: number) => roundUp((8 * d) / 3, 64);

const NEOX: Preset[] = [
  { name: 'tiny', description: 'd 64, 2 layers, 4 heads: tests, the demo', hiddenSize: 64, numLayers: 2, numHeads: 4, numKvHeads: 4, intermediateSize: 256, vocabSize: null, maxPositions: 2048 },
  { name: 'small', description: 'd 128, 4 layers, 4 heads', hiddenSize: 128, numLayers: 4, numHeads: 4, numKvHeads: 4, intermediateSize: 512, vocabSize: null, maxPositions: 2048 },
  { name: 'pythia-160m', description: 'Pythia-160m shapes: d 768, 12 layers, 12 heads, vocab 50304', hiddenSize: 768, numLayers: 12, numHeads: 12, numKvHeads: 12, intermediateSize: 3072, vocabSize: 50304, maxPositions: 2048 },
  { name: 'pythia-410m', description: 'Pythia-410m shapes: d 1024, 24 layers, 16 heads, vocab 50304', hiddenSize: 1024, numLayers: 24, numHeads: 16, numKvHeads: 16, intermediateSize: 4096, vocabSize: 50304, maxPositions: 2048 },
];
const GQA: Preset[] = [
  { name: 'tiny', description: 'd 64, 2 layers, 4 heads, 2 KV heads: tests', hiddenSize: 64, numLayers: 2, numHeads: 4, numKvHeads: 2, intermediateSize: swiglu(64), vocabSize: null, maxPositions: 4096 },
  { name: 'small', description: 'd 128, 4 layers, 4 heads, 2 KV heads', hiddenSize: 128, numLayers: 4, numHeads: 4, numKvHeads: 2, intermediateSize: swiglu(128), vocabSize: null, maxPositions: 4096 },
];

export const PRESETS: Readonly<Record<Arch, readonly Preset[]>> = { 'gpt-neox': NEOX, mistral: GQA, llama: GQA, qwen2: GQA, qwen3: GQA, gemma: GQA, gemma2: GQA, gemma3: GQA, phi3: GQA };

export function presetNames(arch: Arch): string[] {
  return PRESETS[arch].map((p) => p.name);
}

export function findPreset(arch: Arch, name: string): Preset {
  if (!ARCHS.includes(arch)) throw new Error(`unknown arch ${JSON.stringify(arch)} (known: ${ARCHS.join(', ')})`);
  const p = PRESETS[arch].find((q) => q.name === name);
  if (!p) throw new Error(`unknown ${arch} preset ${JSON.stringify(name)} (known: ${presetNames(arch).join(', ')})`);
  return p;
}

export interface PresetConfigOptions {
  /** Tie the output layer to the input embedding (no embed_out / lm_head tensor). Default false. */
  tiedEmbeddings?: boolean;
  /** Ids the tokenizer uses (default: the byte tokenizer's 257); the vocab is rounded up from it. */
  tokenizerVocab?: number;
}

/** The ModelConfig of a preset. */
export function presetConfig(arch: Arch, preset: string, opts: PresetConfigOptions = {}): ModelConfig {
  const p = findPreset(arch, preset);
  const tokVocab = opts.tokenizerVocab ?? BYTE_TOKENIZER_VOCAB;
  const vocabSize = p.vocabSize ?? roundUp(tokVocab, 64);
  if (vocabSize < tokVocab) throw new Error(`preset ${arch}/${preset}: vocab ${vocabSize} is smaller than the tokenizer's ${tokVocab} ids`);
  const neox = arch === 'gpt-neox';
  const gemma = arch === 'gemma' || arch === 'gemma2' || arch === 'gemma3';
  const headDim = p.hiddenSize / p.numHeads;
  return {
    arch,
    vocabSize,
    hiddenSize: p.hiddenSize,
    intermediateSize: p.intermediateSize,
    numLayers: p.numLayers,
    numHeads: p.numHeads,
    numKvHeads: neox ? p.numHeads : p.numKvHeads,
    headDim,
    rotaryDim: neox ? Math.trunc(headDim * 0.25) : headDim,
    ropeTheta: 10000,
    ropeScaling: null,
    maxPositions: p.maxPositions,
    norm: neox ? 'layernorm' : 'rmsnorm',
    normEps: gemma ? 1e-6 : 1e-5, // (the Gemma configs' rms_norm_eps)
    act: neox ? 'gelu' : gemma ? 'gelu_tanh' : 'silu',
    parallelResidual: neox,
    attentionBias: neox || arch === 'qwen2', // Qwen2: q/k/v_proj biases always
    mlpBias: neox,
    tiedEmbeddings: opts.tiedEmbeddings ?? false,
    // Gemma 3: its layer pattern at this depth (the last layer attends fully, the others slide), a window of 128 (gemma-3-1b's
    // 512 would not slide at the default --max-length 512), gemma-3-1b's rotary bases, and query_pre_attn_scalar = head_dim
    // (as Gemma 3's 1B-12B).
    ...(arch === 'gemma3' ? {
      slidingWindow: 128, windowLayers: Array.from({ length: p.numLayers }, (_, l) => l < p.numLayers - 1),
      ropeTheta: 1e6, slidingRope: { theta: 1e4, scaling: null }, queryPreAttnScalar: headDim,
    } : arch === 'gemma2' ? {
      // Gemma 2: every other layer slides (the first one), a window of 128 as Gemma 3's, query_pre_attn_scalar = head_dim
      // (gemma-2-2b's and 9b's), and gemma-2's soft caps (50 on the scores, 30 on the logits).
      slidingWindow: 128, windowLayers: Array.from({ length: p.numLayers }, (_, l) => l % 2 === 0),
      queryPreAttnScalar: headDim, attnSoftcap: 50, finalSoftcap: 30,
    } : { slidingWindow: null }),
    embedPaddingIdx: null,
    bosTokenId: ENDOFTEXT_ID,
    eosTokenId: ENDOFTEXT_ID,
    dtype: 'float32',
    raw: {},
  };
}
