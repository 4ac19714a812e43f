// Writes a randomly initialized checkpoint directory in Hugging Face format:
//   config.json             toHfConfigJson(preset config) + initializer_range
//   model.safetensors       F32, the names and shapes of expectedParameters (src/model/tensor-names.ts),
//                           __metadata__ {format: pt}
//   generation_config.json  bos / eos / pad ids
//   tokenizer.json, tokenizer_config.json, special_tokens_map.json   the byte tokenizer
//
// Initialization as transformers' _init_weights for these models: Linear and Embedding weights
// normal(0, initializer_range = 0.02), biases zeros, LayerNorm / RMSNorm weights ones (LayerNorm
// biases zeros; Gemma's RMSNorm weights zeros: their gain is 1 + w). Each tensor draws from its own stream Rng(seed, hash(name)), so a tensor's values
// depend only on the seed, its name and its size, not on the other tensors.
//
// The safetensors file is written tensor by tensor and chunk by chunk (memory stays at one chunk,
// also for pythia-410m's 1.6 GB), and the directory appears atomically: everything is written into
// a temporary directory beside outDir, which is then renamed to outDir. A non-empty existing outDir
// is refused unless `force` (then it is replaced, also atomically).
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { hfConfigText, toHfConfigJson, type Arch, type ModelConfig } from '../model/config.js';
import { expectedParameters, type ParamSpec } from '../model/tensor-names.js';
import { normOffset } from '../model/context.js';
import { writeSafetensors, type TensorToWrite } from '../model/safetensors.js';
import { ENDOFTEXT_ID, byteLevelTokenizerJson, specialTokensMapJson, tokenizerConfigJson } from './byte-tokenizer.js';
import { presetConfig } from './presets.js';
import { Rng, hashString } from './prng.js';

export const DEFAULT_INITIALIZER_RANGE = 0.02;

export interface InitModelOptions {
  arch: Arch;
  /** A preset name of presets.ts (tiny, small, pythia-160m, pythia-410m). */
  preset: string;
  outDir: string;
  /** Any safe integer. */
  seed: number;
  /** Replace a non-empty existing outDir. Default false. */
  force?: boolean;
  /** Tie the output layer to the embedding (no lm_head / embed_out). Default false. */
  tiedEmbeddings?: boolean;
  /** Std of the normal weights (default 0.02, transformers' initializer_range). */
  initializerRange?: number;
  /** Called after each tensor is written. */
  onTensor?: (name: string, index: number, count: number) => void;
}

export interface InitModelResult {
  dir: string;
  config: ModelConfig;
  numParams: number;
  files: string[];
}

export type InitKind = 'normal' | 'zeros' | 'ones';

/** How transformers initializes a parameter of these architectures, from its name and shape (`gainOffset` 1: Gemma's norms). */
export function initKind(spec: ParamSpec, gainOffset: 0 | 1 = 0): InitKind {
  if (spec.shape.length >= 2) return 'normal';
  if (spec.name.endsWith('.bias')) return 'zeros';
  if (/(^|\.)(input_layernorm|post_attention_layernorm|pre_feedforward_layernorm|post_feedforward_layernorm|final_layer_norm|norm|q_norm|k_norm)\.weight$/.test(spec.name)) {
    return gainOffset ? 'zeros' : 'ones';
  }
  throw new Error(`initKind: no rule for the 1-D parameter ${spec.name}`);
}

export const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** Number of parameters of a config (tied embeddings counted once). */
export function countParameters(cfg: ModelConfig): number {
  return expectedParameters(cfg).reduce((s, p) => s + numel(p.shape), 0);
}

/** The config.json object written for `cfg`. */
export function initConfigJson(cfg: ModelConfig, initializerRange = DEFAULT_INITIALIZER_RANGE): Record<string, unknown> {
  return { ...toHfConfigJson(cfg), initializer_range: initializerRange };
}

/**
 * Writes model.safetensors for `cfg` with F32 random-initialized tensors through writeSafetensors,
 * generating each tensor only when the writer reaches it.
 */
export async function writeInitSafetensors(
  file: string, cfg: ModelConfig, seed: number, initializerRange = DEFAULT_INITIALIZER_RANGE,
  onTensor?: (name: string, index: number, count: number) => void,
): Promise<void> {
  if (!(initializerRange >= 0 && Number.isFinite(initializerRange))) throw new Error(`initializer range must be >= 0 (got ${initializerRange})`);
  const specs = expectedParameters(cfg);
  const kinds = specs.map((sp) => initKind(sp, normOffset(cfg))); // throws before anything is written
  // Each tensor is generated when the writer reaches it, so only one is in memory at a time.
  const tensors: TensorToWrite[] = specs.map((spec, t) => ({
    name: spec.name, dtype: 'F32', shape: spec.shape,
    data: async () => {
      const buf = new Float32Array(numel(spec.shape));
      const kind = kinds[t]!;
      if (kind === 'normal') new Rng(seed, hashString(spec.name)).fillNormal(buf, initializerRange);
      else buf.fill(kind === 'ones' ? 1 : 0);
      onTensor?.(spec.name, t, specs.length);
      return buf;
    },
  }));
  await writeSafetensors(file, tensors, { format: 'pt' });
}

const json = (o: unknown) => JSON.stringify(o, null, 2) + '\n';

async function isNonEmptyDir(dir: string): Promise<boolean> {
  let st;
  try { st = await fsp.stat(dir); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
  if (!st.isDirectory()) throw new Error(`init: ${dir} exists and is not a directory`);
  return (await fsp.readdir(dir)).length > 0;
}

/** Writes a random-initialized Hugging Face checkpoint directory (see the top of this file). */
export async function initModel(o: InitModelOptions): Promise<InitModelResult> {
  if (!Number.isSafeInteger(o.seed)) throw new Error(`init: seed must be an integer (got ${o.seed})`);
  const cfg = presetConfig(o.arch, o.preset, { tiedEmbeddings: o.tiedEmbeddings });
  const range = o.initializerRange ?? DEFAULT_INITIALIZER_RANGE;
  const outDir = path.resolve(o.outDir);
  if (!o.force && await isNonEmptyDir(outDir)) {
    throw new Error(`init: ${outDir} exists and is not empty (pass --force to replace it)`);
  }
  const parent = path.dirname(outDir); const base = path.basename(outDir);
  await fsp.mkdir(parent, { recursive: true });
  const tag = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const tmp = path.join(parent, `.${base}.tmp-${tag}`);
  await fsp.mkdir(tmp);
  const files: string[] = [];
  try {
    const put = async (name: string, content: string) => { await fsp.writeFile(path.join(tmp, name), content); files.push(name); };
    await put('config.json', hfConfigText(initConfigJson(cfg, range)));
    await put('generation_config.json', json({ bos_token_id: ENDOFTEXT_ID, eos_token_id: ENDOFTEXT_ID, pad_token_id: ENDOFTEXT_ID }));
    await put('tokenizer.json', json(byteLevelTokenizerJson()));
    await put('tokenizer_config.json', json(tokenizerConfigJson({ modelMaxLength: cfg.maxPositions })));
    await put('special_tokens_map.json', json(specialTokensMapJson()));
    await writeInitSafetensors(path.join(tmp, 'model.safetensors'), cfg, o.seed, range, o.onTensor);
    files.push('model.safetensors');

    // Move into place. An existing outDir (empty, or non-empty with force) is first moved aside, so
    // that outDir is always either the old directory or the complete new one.
    let old: string | null = null;
    if (await fsp.stat(outDir).then(() => true, () => false)) {
      if (!o.force && await isNonEmptyDir(outDir)) throw new Error(`init: ${outDir} exists and is not empty (pass --force to replace it)`);
      old = path.join(parent, `.${base}.old-${tag}`);
      await fsp.rename(outDir, old);
    }
    try {
      await fsp.rename(tmp, outDir);
    } catch (e) {
      if (old) await fsp.rename(old, outDir).catch(() => {});
      throw e;
    }
    if (old) await fsp.rm(old, { recursive: true, force: true });
  } catch (e) {
    await fsp.rm(tmp, { recursive: true, force: true });
    throw e;
  }
  return { dir: outDir, config: cfg, numParams: countParameters(cfg), files };
}
