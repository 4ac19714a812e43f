// Training checkpoints: a Hugging Face model directory (config.json, model.safetensors,
// tokenizer and generation files) plus optimizer.safetensors and trainer_state.json, written
// into a temporary directory and swapped in with renames, so a crash at any moment leaves the
// last good checkpoint whole (either OUT/checkpoint, or the previous one kept as
// OUT/.checkpoint-old while the swap is under way; findCheckpoint looks at both).
import { closeSync, copyFileSync, existsSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, readdirSync, realpathSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { Gpu } from '../engine/gpu.js';
import type { Params } from '../model/params.js';
import type { Tensor } from '../engine/tensor.js';
import { openSafetensors, writeSafetensors, type Dtype, type TensorToWrite } from '../model/safetensors.js';
import type { Optimizer } from '../kernels/optimizer.js';
import { absmaxOf } from '../kernels/absmax.js';
import { writeFileAtomic } from '../report/metrics-log.js';
import { userError } from '../errors.js';
import { elementIndex, firstNonFinite } from '../model/finite-check.js';
import { hfConfigText } from '../model/config.js';

export const CHECKPOINT = 'checkpoint';
const OLD = '.checkpoint-old';
/** OUT/.checkpoint-tmp-PID: a save being written (renamed to OUT/checkpoint when whole). */
const TMP_PREFIX = '.checkpoint-tmp-';
const TMP_DIR = /^\.checkpoint-tmp-\d+$/;
/** A checkpoint's step, metrics and run settings (named as a Hugging Face Trainer's). */
export const TRAINER_STATE = 'trainer_state.json';
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer.model', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json',
  'chat_template.jinja', 'vocab.json', 'merges.txt', 'added_tokens.json'];

export interface TrainerState {
  step: number; pairsSeen: number; epoch: number; position: number; seed: number;
  /** Options the run was started with (checked on resume). */
  options: Record<string, unknown>;
  /** sha256 of the tokenized training pairs (reference.ts pairsHash; checked on resume: the data order
   *  and position mean nothing for other pairs). Absent in checkpoints of older srk. */
  dataHash?: string;
  /** sha256 of the tokenized --eval-data pairs the run evaluated on (a resume on other pairs is refused: one
   *  eval.jsonl series, one set). Absent where the run had none yet, and in checkpoints of older srk. */
  evalHash?: string;
  /** sha256 of the reference's weights (reference.ts weightsHash; checked on resume); absent for SFT and older srk. */
  refHash?: string;
  /** The step the run planned to end at when saved (a resume that moves it is noted: lr schedules follow it). */
  totalSteps?: number;
  savedAt: string;
}

/**
 * Storage dtype of a saved model.safetensors, by the names config.json's `torch_dtype` uses. float32
 * is the default because it keeps every update: at the paper's lr 5e-7 an RMSprop step moves a weight
 * by about 5e-7, and one of size 0.02 sits where half a bfloat16 step is 6e-5 and half a float16 one
 * 8e-6, so a half copy of a short run can round most of what it learned away. float16 / bfloat16
 * halve the file (the hub's usual form); the optimizer file then keeps the float32 weights, so --resume
 * loses nothing.
 */
export type SaveDtype = 'float32' | 'float16' | 'bfloat16';
export const SAVE_DTYPES: readonly SaveDtype[] = ['float32', 'float16', 'bfloat16'];
const STORED: Record<SaveDtype, Dtype> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' };
const F16_MAX = 65504;
/** Suffix of the float32 weights in optimizer.safetensors when model.safetensors is half. */
const MASTER = '#master';

/** The first parameter float16 cannot hold (a |value| over 65504, or not finite), or undefined. */
export async function float16Overflow(gpu: Gpu, params: Params): Promise<{ name: string; absmax: number } | undefined> {
  const parts = params.specs.map((s) => absmaxOf(gpu, params.get(s.name), params.get(s.name).numel));
  try {
    const maxima = await gpu.readManyF32(parts);
    for (let k = 0; k < parts.length; k++) {
      let m = 0;
      for (const v of maxima[k]!) { if (Number.isNaN(v)) { m = NaN; break; } m = Math.max(m, v); }
      if (!(m <= F16_MAX)) return { name: params.specs[k]!.name, absmax: m };
    }
    return undefined;
  } finally {
    for (const p of parts) gpu.pool.release(p);
  }
}

/** The first non-finite value of float32 `v` (a tensor of `shape`) and where, as "NaN at [i, j]"; undefined if none. */
function nonFinite(v: Float32Array, shape: readonly number[]): string | undefined {
  const bad = firstNonFinite(new Uint8Array(v.buffer, v.byteOffset, v.byteLength), 'F32');
  return bad < 0 ? undefined : `${v[bad]} at [${elementIndex(bad, shape).join(', ')}]`;
}

/** Counts the bytes read back from the GPU while a checkpoint is written, for a progress callback. */
class ReadbackProgress {
  private done = 0;
  constructor(readonly total: number, private readonly report?: (done: number, total: number) => void) {}
  /**
   * `t` (tensor `name`) read back, counted once it has arrived; unless `check` is false (a tensor the
   * same save reads and checks again: a half save's float32 weights), a non-finite value refuses the save
   * (the caller removes what it wrote: the last good checkpoint stays). Weights after a finite step do
   * not go non-finite but through an absurd learning rate; the check costs ~1 s per billion floats
   * beside writing them.
   */
  read(gpu: Gpu, t: Tensor, name: string, check = true): () => Promise<Float32Array> {
    return async () => {
      const v = await gpu.readF32(t);
      const bad = check ? nonFinite(v, t.shape) : undefined;
      if (bad) throw userError(`${name} holds ${bad}: the model is not saved (a checkpoint saved before stays)`);
      this.done += v.byteLength;
      this.report?.(this.done, this.total);
      return v;
    };
  }
}

async function paramsToSafetensors(gpu: Gpu, params: Params, file: string, dtype: Dtype, progress: ReadbackProgress): Promise<void> {
  const tensors: TensorToWrite[] = [];
  for (const s of params.specs) tensors.push({ name: s.name, dtype, shape: s.shape, data: progress.read(gpu, params.get(s.name), s.name) });
  await writeSafetensors(file, tensors, { format: 'pt' });
}

/** config.json for weights stored as `dtype`: transformers' `dtype: "auto"` (its default from version
 *  5) loads what the config names, so it must name what the file holds. Sets whichever of `dtype`
 *  (transformers 5) and `torch_dtype` the source has, `torch_dtype` when it has neither. */
export function configForDtype(raw: Record<string, unknown>, dtype: SaveDtype): Record<string, unknown> {
  const out = { ...raw };
  // Phi-3's hub files keep the auto_map of remote code that a checkpoint does not carry: transformers would look for those
  // files under trust_remote_code (the model cards ask for it) and fail. Without it, it loads its own Phi3 class, as srk computes.
  if (raw.model_type === 'phi3') delete out.auto_map;
  if ('dtype' in raw) out.dtype = dtype;
  if ('torch_dtype' in raw || !('dtype' in raw)) out.torch_dtype = dtype;
  return out;
}

export interface SaveModelOptions {
  /** Storage dtype of model.safetensors (default float32). */
  dtype?: SaveDtype;
  /** Where a note goes when float16 cannot hold a weight and float32 is written instead. */
  log?: (line: string) => void;
  /** Bytes read back from the GPU so far, of `total` (a 7B model's checkpoint takes minutes). */
  onProgress?: (done: number, total: number) => void;
}

/** The dtype a save writes: float32 in place of float16 where a weight is past float16's range (with a
 *  note naming it), so a run's end never fails to save what it trained. */
async function dtypeToWrite(gpu: Gpu, params: Params, wanted: SaveDtype, dir: string, log?: (line: string) => void): Promise<SaveDtype> {
  if (wanted !== 'float16') return wanted;
  const over = await float16Overflow(gpu, params);
  // A NaN is no range matter: no dtype holds it, and the save refuses it by name (ReadbackProgress).
  if (!over || Number.isNaN(over.absmax)) return wanted;
  (log ?? console.warn)(`float16 cannot hold ${over.name} (max |value| ${over.absmax}, float16's largest is ${F16_MAX}): ` +
    `the model in ${dir} is saved in float32 instead (--save-dtype bfloat16 has float32's range)`);
  return 'float32';
}

/** Writes an HF model directory: the source's config (its dtype set to the one stored) and tokenizer
 *  files, current weights (read back from the GPU one tensor at a time while the file is written).
 *  Returns the dtype written (dtypeToWrite). */
export async function saveModelDir(gpu: Gpu, params: Params, rawConfig: Record<string, unknown>, sourceDir: string, dir: string,
  o: SaveModelOptions = {}): Promise<SaveDtype> {
  const dtype = await dtypeToWrite(gpu, params, o.dtype ?? 'float32', dir, o.log);
  await writeModelDir(gpu, params, rawConfig, sourceDir, dir, dtype, new ReadbackProgress(params.count * 4, o.onProgress));
  return dtype;
}

async function writeModelDir(gpu: Gpu, params: Params, rawConfig: Record<string, unknown>, sourceDir: string, dir: string,
  dtype: SaveDtype, progress: ReadbackProgress): Promise<void> {
  mkdirSync(dir, { recursive: true });
  writeFileAtomic(path.join(dir, 'config.json'), hfConfigText(configForDtype(rawConfig, dtype)));
  for (const f of TOKENIZER_FILES) if (existsSync(path.join(sourceDir, f))) copyFileSync(path.join(sourceDir, f), path.join(dir, f));
  await paramsToSafetensors(gpu, params, path.join(dir, 'model.safetensors'), STORED[dtype], progress);
}

export interface SaveRequest {
  out: string; params: Params; optimizer?: Optimizer; rawConfig: Record<string, unknown>; sourceDir: string; state: TrainerState;
  /** Storage dtype of model.safetensors (default float32). */
  dtype?: SaveDtype;
  log?: (line: string) => void;
  /** Bytes read back from the GPU so far (weights, optimizer state, float32 weights of a half save), of `total`. */
  onProgress?: (done: number, total: number) => void;
}

export async function saveCheckpoint(gpu: Gpu, r: SaveRequest): Promise<string> {
  const tmp = path.join(r.out, `${TMP_PREFIX}${process.pid}`);
  // Temp directories of runs killed mid-save (another pid each) would otherwise pile up, each the
  // size of a checkpoint.
  removeLeftoverDirs(r.out, TMP_DIR);
  try {
    return await writeCheckpoint(gpu, r, tmp);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true }); // a failed save (a full disk) leaves no half directory
    throw e;
  }
}

async function writeCheckpoint(gpu: Gpu, r: SaveRequest, tmp: string): Promise<string> {
  const dtype = await dtypeToWrite(gpu, r.params, r.dtype ?? 'float32', r.out, r.log);
  // Every tensor read back: the weights, each optimizer state, and the weights again in float32 for a half save.
  const perParams = 1 + (r.optimizer?.state[0]?.length ?? 0) + (r.optimizer && dtype !== 'float32' ? 1 : 0);
  const progress = new ReadbackProgress(r.params.count * 4 * perParams, r.onProgress);
  await writeModelDir(gpu, r.params, r.rawConfig, r.sourceDir, tmp, dtype, progress);
  if (r.optimizer) {
    const tensors: TensorToWrite[] = [];
    for (let k = 0; k < r.params.specs.length; k++) {
      const s = r.params.specs[k];
      // Half weights in model.safetensors: the float32 ones a resumed run continues from.
      if (dtype !== 'float32') tensors.push({ name: `${s.name}${MASTER}`, dtype: 'F32', shape: s.shape, data: progress.read(gpu, r.params.get(s.name), s.name, false) });
      for (let j = 0; j < r.optimizer.state[k].length; j++) {
        const state = r.optimizer.state[k][j];
        tensors.push({ name: `${s.name}#${j}`, dtype: 'F32', shape: s.shape, data: progress.read(gpu, state, `the optimizer state ${s.name}#${j}`) });
      }
    }
    await writeSafetensors(path.join(tmp, 'optimizer.safetensors'), tensors, { format: 'srk-optimizer', optimizer: r.optimizer.cfg.type });
  }
  writeFileAtomic(path.join(tmp, TRAINER_STATE), `${JSON.stringify(r.state, null, 2)}\n`); // fsynced: whole or absent after a power loss
  const final = path.join(r.out, CHECKPOINT);
  const old = path.join(r.out, OLD);
  // Only a complete OUT/checkpoint may push the previous one aside. After a crash mid-swap,
  // OUT/.checkpoint-old alone is the last good checkpoint and stays until the new one is in place.
  if (existsSync(final)) {
    rmSync(old, { recursive: true, force: true });
    renameSync(final, old);
  }
  renameSync(tmp, final);
  syncDir(r.out); // the renames reach the disk before the previous checkpoint goes
  // Saved: a previous checkpoint that cannot be removed now (a read-only file in it) is said, not a failed save.
  try { rmSync(old, { recursive: true, force: true }); }
  catch (e) { r.log?.(`warning: the previous checkpoint ${old} could not be removed (${(e as Error).message}); the next save needs it gone`); }
  return final;
}

/**
 * Removes the entries of `dir` (a run's own directory, or one below it) whose names match `temp`: the temp
 * directories of saves a killed run left. The run's lock is held, so no other process is writing them.
 * (Temp files of single-file writes, which other commands may be writing, go by age: stale-temps.ts.)
 */
function removeLeftoverDirs(dir: string, temp: RegExp): void {
  if (!existsSync(dir)) return;
  for (const e of readdirSync(dir)) if (temp.test(e)) rmSync(path.join(dir, e), { recursive: true, force: true });
}

function syncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try { fsyncSync(fd); } finally { closeSync(fd); }
  } catch { /* a platform without directory fsync: renames are still atomic */ }
}

/** Where --keep-models keeps the model of each save: OUT/models/step-N. */
export const KEPT_MODELS = 'models';
/** What a kept model leaves out of a checkpoint: the optimizer's state, not part of a Hugging Face model.
 *  trainer_state.json stays (small, as in a Hugging Face Trainer's checkpoint-N): its step and metrics, and
 *  the run's settings, which srk eval and srk logprobs of the kept model score with (cli/run-settings.ts). */
const NOT_KEPT = new Set(['optimizer.safetensors']);

/** OUT/models/step-N: where keepModel puts the model of step N. */
export const keptModelDir = (out: string, step: number): string => path.join(out, KEPT_MODELS, `step-${step}`);

/** The dtype a checkpoint's model.safetensors was saved in, as its config.json names it (float32 where it names none). */
export function savedDtype(dir: string): string {
  try {
    const cfg = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    const d = cfg.dtype ?? cfg.torch_dtype;
    return typeof d === 'string' ? d : 'float32';
  } catch {
    return 'float32';
  }
}

/**
 * Keeps the model of checkpoint `dir` as OUT/models/step-`step` (config, weights, tokenizer files and
 * trainer_state.json: everything but the optimizer's state), by
 * hard links: no copy, and the next save writes new files, so the kept ones stay as they are. Built
 * in a temporary directory and renamed into place, as checkpoints are.
 */
export function keepModel(out: string, dir: string, step: number): string {
  const base = path.join(out, KEPT_MODELS);
  const final = keptModelDir(out, step);
  const tmp = path.join(base, `.step-${step}-tmp-${process.pid}`);
  // A run killed while it linked left its temp directory (another pid's).
  removeLeftoverDirs(base, /^\.step-\d+-tmp-\d+$/);
  mkdirSync(tmp, { recursive: true });
  for (const f of readdirSync(dir)) {
    if (NOT_KEPT.has(f)) continue;
    try { linkSync(path.join(dir, f), path.join(tmp, f)); }
    catch { copyFileSync(path.join(dir, f), path.join(tmp, f)); } // a file system without hard links
  }
  rmSync(final, { recursive: true, force: true });
  renameSync(tmp, final);
  return final;
}

/**
 * Refuses a run in OUT whose saves would replace what srk train did not write there: an OUT/checkpoint
 * without trainer_state.json (a Hugging Face model directory copied in: a save swaps the directory out
 * and deletes it), and a model the run reads (--model, --ref-model) inside the directories its saves
 * replace (OUT/checkpoint, OUT/.checkpoint-old, OUT/models). `models`: each model directory by its flag.
 */
export function checkSaveTargets(out: string, models: readonly { flag: string; dir: string }[]): void {
  const final = path.join(out, CHECKPOINT);
  if (existsSync(final) && !existsSync(path.join(final, TRAINER_STATE))) {
    throw userError(`${final} is there and is no checkpoint of srk train (it has no trainer_state.json): the run saves by replacing ` +
      'that directory, which would delete it; move it away or choose another --out');
  }
  for (const { flag, dir } of models) {
    if (!existsSync(dir)) continue; // the flag's own check names it
    const real = realpathSync(dir);
    for (const d of [CHECKPOINT, OLD, KEPT_MODELS]) {
      const target = path.join(out, d);
      if (!existsSync(target)) continue;
      const t = realpathSync(target);
      if (real === t || real.startsWith(t + path.sep)) {
        throw userError(`--${flag} ${dir} is inside ${target}, which this run's saves replace: copy the model elsewhere and give that, or choose another --out`);
      }
    }
  }
}

/** The newest complete checkpoint under OUT (also one left mid-swap by a crash), or undefined. A
 *  checkpoint whose trainer_state.json does not read (cut short by a power loss) is passed over for
 *  the previous one where that is still there. */
export function findCheckpoint(out: string): string | undefined {
  let unreadable: string | undefined;
  for (const d of [CHECKPOINT, OLD]) {
    const dir = path.join(out, d);
    if (!existsSync(path.join(dir, TRAINER_STATE)) || !existsSync(path.join(dir, 'model.safetensors'))) continue;
    try { readTrainerState(dir); return dir; } catch { unreadable ??= dir; }
  }
  return unreadable; // then readTrainerState names the file
}

/**
 * findCheckpoint for a run to be resumed: a swap a crash left between its two renames (only
 * OUT/.checkpoint-old) is finished first, so the run saves, and ends with its model, in OUT/checkpoint.
 */
export function settleCheckpoint(out: string): string | undefined {
  const found = findCheckpoint(out);
  const final = path.join(out, CHECKPOINT);
  if (found !== path.join(out, OLD) || existsSync(final)) return found;
  renameSync(found, final);
  syncDir(out);
  return final;
}

export function readTrainerState(dir: string): TrainerState {
  const file = path.join(dir, TRAINER_STATE);
  let state: unknown;
  try {
    state = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw userError(`${file}: ${e instanceof Error ? e.message : String(e)} (an incomplete checkpoint: no step to resume from)`);
  }
  const s = state as Partial<TrainerState> | null;
  if (!s || typeof s !== 'object' || !Number.isSafeInteger(s.step) || typeof s.options !== 'object') {
    throw userError(`${file}: not a trainer state (step and options missing)`);
  }
  return s as TrainerState;
}

/** Restores optimizer state tensors saved by saveCheckpoint, and the float32 weights where the
 *  checkpoint's model.safetensors holds half ones (loaded before this). */
export async function loadOptimizerState(gpu: Gpu, dir: string, params: Params, optimizer: Optimizer): Promise<void> {
  const file = path.join(dir, 'optimizer.safetensors');
  if (!existsSync(file)) {
    throw userError(`${dir} has no optimizer.safetensors: a model kept by --keep-models, or a checkpoint copied without it, ` +
      'is no state to resume from (--resume continues from OUT/checkpoint as srk train left it)');
  }
  const f = await openSafetensors(file);
  // As model weights are when they load (load.ts): a NaN or Inf here would continue the run from it.
  const finite = (v: Float32Array, name: string): Float32Array => {
    const bad = nonFinite(v, f.header[name].shape);
    if (bad) throw userError(`${file}: tensor ${name} holds ${bad}: not a state to resume from`);
    return v;
  };
  try {
    if (f.metadata.optimizer !== optimizer.cfg.type) {
      throw new Error(`${dir}/optimizer.safetensors holds ${f.metadata.optimizer} state, but this run uses ${optimizer.cfg.type}`);
    }
    for (let k = 0; k < params.specs.length; k++) {
      for (let j = 0; j < optimizer.state[k].length; j++) {
        const name = `${params.specs[k].name}#${j}`;
        if (!f.header[name]) throw new Error(`${dir}/optimizer.safetensors lacks ${name}`);
        gpu.upload(optimizer.state[k][j], finite(await f.readTensor(name), name));
      }
      const master = `${params.specs[k].name}${MASTER}`;
      if (f.header[master]) gpu.upload(params.get(params.specs[k].name), finite(await f.readTensor(master), master));
    }
  } finally {
    await f.close();
  }
}
