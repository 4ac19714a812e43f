// Loading a Hugging Face checkpoint directory onto the GPU (saving: train/checkpoint.ts).
import type { Gpu } from '../engine/gpu.js';
import fs from 'node:fs';
import path from 'node:path';
import { INDEX_FILE, SINGLE_FILE, openCheckpoint, type Checkpoint } from './safetensors.js';
import { loadModelConfig, type ModelConfig } from './config.js';
import { alternativeNames, expectedParameters, checkCheckpointNames } from './tensor-names.js';
import { uploadConverted } from '../kernels/convert.js';
import { Params } from './params.js';
import { elementIndex, firstNonFinite } from './finite-check.js';
import { userError } from '../errors.js';
import { CausalLM, outerNames } from './causal-lm.js';

export interface LoadedModel { cfg: ModelConfig; params: Params; model: CausalLM; dir: string }

/**
 * Reads config.json and the safetensors weights of `dir` into GPU parameters. Tensors are read
 * and uploaded one at a time (converted to f32 on the way), so a large checkpoint never sits in
 * host memory whole. Missing, unexpected or misshapen tensors are one error listing all of them.
 */
export interface LoadOptions {
  /** Gradient buffers too (a policy). */
  grads?: boolean;
  /** Bytes of the checkpoint read so far, of `total`: after each tensor (a 7B model is minutes of reading). */
  onProgress?: (done: number, total: number) => void;
}

export async function loadModel(gpu: Gpu, dir: string, opts: LoadOptions = {}): Promise<LoadedModel> {
  const cfg = await loadModelConfig(dir);
  const ckpt = withAlternativeNames(await openCheckpoint(dir), alternativeNames(cfg));
  try {
    checkCheckpointNames(cfg, await withoutTiedCopy(cfg, ckpt, dir), `checkpoint ${dir}`);
    const specs = expectedParameters(cfg);
    const params = new Params(gpu, specs).allocate();
    const total = specs.reduce((n, s) => n + ckpt.tensors[s.name].byteLength, 0);
    let done = 0;
    try {
      for (const s of specs) {
        const info = ckpt.tensors[s.name];
        const t = params.get(s.name);
        if (info.dtype !== 'F16' && info.dtype !== 'BF16' && info.dtype !== 'F64' && info.dtype !== 'F32') {
          throw new Error(`checkpoint ${dir}: parameter ${s.name} has dtype ${info.dtype}; expected F32, F16, BF16 or F64`);
        }
        const raw = await ckpt.readRaw(s.name);
        const bad = firstNonFinite(raw, info.dtype);
        if (bad >= 0) {
          throw userError(`${info.file}: tensor ${s.name} holds a non-finite value (NaN or Inf${info.dtype === 'F64' ? ', or past float32\'s range' : ''}) at [${elementIndex(bad, info.shape).join(', ')}]: ` +
            'the weights are damaged (a training run that diverged, or a bad conversion)');
        }
        // Half and double precision cross to the GPU as raw bytes and are converted there.
        if (info.dtype === 'F32') gpu.upload(t, new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4));
        else uploadConverted(gpu, info.dtype === 'F16' ? 'f16' : info.dtype === 'BF16' ? 'bf16' : 'f64', raw, t);
        done += info.byteLength;
        opts.onProgress?.(done, total);
      }
    } catch (e) { params.free(); throw e; }
    if (opts.grads) params.allocateGrads();
    return { cfg, params, model: new CausalLM(gpu, cfg, params), dir };
  } finally {
    await ckpt.close();
  }
}

/**
 * The checkpoint with each tensor that `alternatives` (usual name -> other name, tensor-names.ts
 * alternativeNames) finds under its other name read under the usual one, where the file lacks the usual one.
 */
function withAlternativeNames(ckpt: Checkpoint, alternatives: Record<string, string>): Checkpoint {
  const renamed = Object.entries(alternatives).filter(([usual, other]) => !ckpt.tensors[usual] && ckpt.tensors[other]);
  if (renamed.length === 0) return ckpt;
  const toUsual = new Map(renamed.map(([usual, other]) => [other, usual]));
  const toOther = new Map(renamed);
  const tensors: Checkpoint['tensors'] = Object.create(null);
  for (const [n, t] of Object.entries(ckpt.tensors)) tensors[toUsual.get(n) ?? n] = t;
  const inFile = (name: string) => toOther.get(name) ?? name;
  return {
    ...ckpt, tensors, names: ckpt.names.map((n) => toUsual.get(n) ?? n),
    readTensor: (name) => ckpt.readTensor(inFile(name)), readRaw: (name) => ckpt.readRaw(inFile(name)), close: () => ckpt.close(),
  };
}

/**
 * A config that ties the output layer to the embedding, with the output layer's tensor saved anyway
 * (some converters write both): transformers uses the embedding for both. A copy equal to the embedding is
 * passed over; one that differs is refused, naming both, rather than silently dropped.
 */
async function withoutTiedCopy(cfg: ModelConfig, ckpt: Checkpoint, dir: string): Promise<Checkpoint['tensors']> {
  const untied = cfg.arch === 'gpt-neox' ? 'embed_out.weight' : 'lm_head.weight';
  const embed = outerNames(cfg).embed;
  const out = ckpt.tensors[untied]; const emb = ckpt.tensors[embed];
  if (!cfg.tiedEmbeddings || !out || !emb || out.shape.join(',') !== emb.shape.join(',')) return ckpt.tensors;
  // In one dtype, the same bytes; in two (an f16 copy of an f32 embedding), the same values to the coarser one's rounding.
  const rel = [out.dtype, emb.dtype].includes('BF16') ? 2 ** -8 : [out.dtype, emb.dtype].includes('F16') ? 2 ** -11 : 2 ** -24;
  const same = out.dtype === emb.dtype
    ? Buffer.from(await ckpt.readRaw(untied)).equals(Buffer.from(await ckpt.readRaw(embed)))
    : sameValues(await ckpt.readTensor(untied), await ckpt.readTensor(embed), rel);
  if (!same) {
    throw userError(`checkpoint ${dir}: config.json ties the output layer to the embedding (tie_word_embeddings), but ${untied} differs from ${embed}: ` +
      'set tie_word_embeddings to false to use it, or remove it');
  }
  const rest: Checkpoint['tensors'] = Object.create(null);
  for (const [n, t] of Object.entries(ckpt.tensors)) if (n !== untied) rest[n] = t;
  return rest;
}

/** Equal within `rel` of the larger magnitude (a half copy's rounding; subnormal halves within 2^-24 absolute). */
const sameValues = (a: Float32Array, b: Float32Array, rel: number) =>
  a.length === b.length && a.every((v, i) => Math.abs(v - b[i]) <= rel * Math.max(Math.abs(v), Math.abs(b[i])) + 2 ** -24);

/**
 * The files a checkpoint's outputs depend on, each as "size:mtime" (a model changed in place is told
 * from the same one without reading gigabytes): config.json, the tokenizer's files and the weights srk
 * loads (model.safetensors, or the index and the shards it names). srk generate and srk logprobs keep
 * them with a partial --out (src/generate/resumable-output.ts).
 */
export function checkpointFileStamps(dir: string): Record<string, string> {
  const names = ['config.json', 'tokenizer.json', 'tokenizer.model', 'tokenizer_config.json', 'special_tokens_map.json', 'chat_template.jinja', 'added_tokens.json'];
  if (fs.existsSync(path.join(dir, SINGLE_FILE))) names.push(SINGLE_FILE);
  else if (fs.existsSync(path.join(dir, INDEX_FILE))) {
    names.push(INDEX_FILE);
    try {
      const map = (JSON.parse(fs.readFileSync(path.join(dir, INDEX_FILE), 'utf8')) as { weight_map?: Record<string, string> }).weight_map ?? {};
      names.push(...new Set(Object.values(map).filter((f) => typeof f === 'string' && f === path.basename(f))));
    } catch { /* loading the model names what is wrong with the index */ }
  }
  const out: Record<string, string> = {};
  for (const f of names.sort()) {
    const p = path.join(dir, f);
    if (fs.existsSync(p)) { const st = fs.statSync(p); out[f] = `${st.size}:${Math.round(st.mtimeMs)}`; }
  }
  return out;
}
