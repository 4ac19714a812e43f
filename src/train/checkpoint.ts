// Training checkpoints: a Hugging Face model directory (config.json, model.safetensors,
// tokenizer and generation files) plus optimizer.safetensors and trainer_state.json, written
// into a temporary directory and swapped in with renames, so a crash at any moment leaves the
// last good checkpoint whole (either OUT/checkpoint, or the previous one kept as
// OUT/.checkpoint-old while the swap is under way; findCheckpoint looks at both).
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Gpu } from '../engine/gpu.js';
import type { Params } from '../model/params.js';
import { openSafetensors, writeSafetensors, type TensorToWrite } from '../model/safetensors.js';
import type { Optimizer } from '../kernels/optimizer.js';

export const CHECKPOINT = 'checkpoint';
const OLD = '.checkpoint-old';
const TMP_PREFIX = '.checkpoint-tmp-';
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer.model', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json',
  'chat_template.jinja', 'vocab.json', 'merges.txt'];

export interface TrainerState {
  step: number; pairsSeen: number; epoch: number; position: number; seed: number;
  /** Options the run was started with (checked on resume). */
  options: Record<string, unknown>;
  savedAt: string;
}

export async function paramsToSafetensors(gpu: Gpu, params: Params, file: string): Promise<void> {
  const tensors: TensorToWrite[] = [];
  for (const s of params.specs) tensors.push({ name: s.name, dtype: 'F32', shape: s.shape, data: () => gpu.readF32(params.get(s.name)) });
  await writeSafetensors(file, tensors, { format: 'pt' });
}

/** Writes an HF model directory: the source's config and tokenizer files, current weights (read
 *  back from the GPU one tensor at a time while the file is written). */
export async function saveModelDir(gpu: Gpu, params: Params, rawConfig: Record<string, unknown>, sourceDir: string, dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'config.json'), `${JSON.stringify(rawConfig, null, 2)}\n`);
  for (const f of TOKENIZER_FILES) if (existsSync(path.join(sourceDir, f))) copyFileSync(path.join(sourceDir, f), path.join(dir, f));
  await paramsToSafetensors(gpu, params, path.join(dir, 'model.safetensors'));
}

export interface SaveRequest {
  out: string; params: Params; optimizer?: Optimizer; rawConfig: Record<string, unknown>; sourceDir: string; state: TrainerState;
}

export async function saveCheckpoint(gpu: Gpu, r: SaveRequest): Promise<string> {
  const tmp = path.join(r.out, `${TMP_PREFIX}${process.pid}`);
  // Temp directories of runs killed mid-save (another pid each) would otherwise pile up, each the
  // size of a checkpoint.
  for (const e of readdirSync(r.out)) if (e.startsWith(TMP_PREFIX)) rmSync(path.join(r.out, e), { recursive: true, force: true });
  await saveModelDir(gpu, r.params, r.rawConfig, r.sourceDir, tmp);
  if (r.optimizer) {
    const tensors: TensorToWrite[] = [];
    for (let k = 0; k < r.params.specs.length; k++) {
      const s = r.params.specs[k];
      for (let j = 0; j < r.optimizer.state[k].length; j++) {
        const state = r.optimizer.state[k][j];
        tensors.push({ name: `${s.name}#${j}`, dtype: 'F32', shape: s.shape, data: () => gpu.readF32(state) });
      }
    }
    await writeSafetensors(path.join(tmp, 'optimizer.safetensors'), tensors, { format: 'srk-optimizer', optimizer: r.optimizer.cfg.type });
  }
  writeFileSync(path.join(tmp, 'trainer_state.json'), `${JSON.stringify(r.state, null, 2)}\n`);
  const final = path.join(r.out, CHECKPOINT);
  const old = path.join(r.out, OLD);
  // Only a complete OUT/checkpoint may push the previous one aside. After a crash mid-swap,
  // OUT/.checkpoint-old alone is the last good checkpoint and stays until the new one is in place.
  if (existsSync(final)) {
    rmSync(old, { recursive: true, force: true });
    renameSync(final, old);
  }
  renameSync(tmp, final);
  rmSync(old, { recursive: true, force: true });
  return final;
}

/** The newest complete checkpoint under OUT (also one left mid-swap by a crash), or undefined. */
export function findCheckpoint(out: string): string | undefined {
  for (const d of [CHECKPOINT, OLD]) {
    const dir = path.join(out, d);
    if (existsSync(path.join(dir, 'trainer_state.json')) && existsSync(path.join(dir, 'model.safetensors'))) return dir;
  }
  return undefined;
}

export function readTrainerState(dir: string): TrainerState {
  return JSON.parse(readFileSync(path.join(dir, 'trainer_state.json'), 'utf8')) as TrainerState;
}

/** Restores optimizer state tensors saved by saveCheckpoint. */
export async function loadOptimizerState(gpu: Gpu, dir: string, params: Params, optimizer: Optimizer): Promise<void> {
  const f = await openSafetensors(path.join(dir, 'optimizer.safetensors'));
  try {
    if (f.metadata.optimizer !== optimizer.cfg.type) {
      throw new Error(`${dir}/optimizer.safetensors holds ${f.metadata.optimizer} state, but this run uses ${optimizer.cfg.type}`);
    }
    for (let k = 0; k < params.specs.length; k++) {
      for (let j = 0; j < optimizer.state[k].length; j++) {
        const name = `${params.specs[k].name}#${j}`;
        if (!f.header[name]) throw new Error(`${dir}/optimizer.safetensors lacks ${name}`);
        gpu.upload(optimizer.state[k][j], await f.readTensor(name));
      }
    }
  } finally {
    await f.close();
  }
}
