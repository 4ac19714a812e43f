// A full training step (src/train/step.ts trainStep: forward + backward over every micro-batch,
// gradient norm, clipping, RMSprop update, the step's readback) on a randomly initialized model
// of a preset's shapes (src/init/presets.ts) and synthetic token ids. Only time matters here, so
// the reference log-probs are random numbers and nothing is read from disk.
//
// Step time is wall-clock time around trainStep (which ends with its own readback), the median of
// a few steps after warm-up. Token counts, per step:
//   policyTokens      tokens the policy forward + backward actually processes: trainStep packs
//                     each pair into one row, (prompt - 1) + 2 * (1 + completion) tokens;
//   unpackedTokens    2 * pairs * seq, the count of the unpacked layout (one row per sequence),
//                     which is how most DPO trainers count; unpackedTokensPerS uses it;
//   augTokens         (Sr-DPO / Sr-IPO) tokens of the extra forward without gradients over the
//                     augmented pairs (refine prompt of `refineTokens` ids + prompt + completions);
//   augSharedTokens   of those, the ones the blocks skip: a micro-batch's rows share the refine
//                     prompt, computed once (src/model/shared-prefix.ts).
// Peak memory is the tensor pool's peak bytes in use (size classes, so slightly above the tensors'
// own sizes) during the timed steps; parameters, gradients and optimizer state are included.
// Precision 'mixed' (src/engine/precision.ts) also scores the first micro-batch in f32 and mixed on
// the same weights before training (PrecisionCheck). --profile adds one step with a timestamp per
// dispatch (StepProfile).
import type { TuneDecision } from '../src/engine/tuner.js';
import { chooseSmxBackward, unfusedByRule, unfusedWanted } from '../src/kernels/attention-tiling.js';
import { tcCheckState } from '../src/kernels/attention-selfcheck.js';
import type { Gpu } from '../src/engine/gpu.js';
import { Optimizer } from '../src/kernels/optimizer.js';
import { presetConfig } from '../src/init/presets.js';
import { buildBatch } from '../src/model/batch.js';
import { CausalLM } from '../src/model/causal-lm.js';
import { Params } from '../src/model/params.js';
import { expectedParameters } from '../src/model/tensor-names.js';
import type { TokenizedPair } from '../src/data/tokenize-pairs.js';
import type { ReferenceLogps } from '../src/train/reference.js';
import type { PairLogps } from '../src/train/score.js';
import { trainStep, type StepMetrics } from '../src/train/step.js';
import { isSrLoss, type LossName } from '../src/train/options.js';
import { randomInitParams, randomInts } from './random.js';
import { PRECISIONS, type Precision } from '../src/engine/precision.js';
import { choosePrecisions } from '../src/train/precision-choice.js';
import { scorePairs } from '../src/train/score.js';
import { userError } from '../src/errors.js';
import { benchMatmul } from './matmul.js';
import { stepFlops } from './step-flops.js';
import type { ModelConfig } from '../src/model/config.js';

export const STEP_SHAPES = ['tiny', 'small', 'pythia-160m', 'pythia-410m'] as const;
export type StepShape = (typeof STEP_SHAPES)[number];
export const STEP_LOSSES: readonly LossName[] = ['dpo', 'ipo', 'sr-dpo', 'sr-ipo', 'sft'];

/** Steps recorded without submitting for StepResult.hostOnlyMs. */
const HOST_ONLY_STEPS = 5;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Length of the synthetic refine prompt of the Sr losses: the paper's prompt (PAPER_REFINE_PROMPT) is 48
 *  tokens with the Pythia tokenizer; PyTorch's anchor (bench/anchor/torch_anchor.py) uses the same. */
export const REFINE_TOKENS = 48;

export interface StepBenchOptions {
  shape: StepShape; pairs: number; seq: number; prompt: number; loss: LossName; microBatch: number;
  precision: 'f32' | 'mixed'; packed: boolean; warmup: number; repeats: number;
  /** One more step with per-dispatch timestamps (gpu.profiler must exist), reported as StepProfile. */
  profile?: boolean;
  /** Pair lengths vary as in real data: prompt and each completion from a quarter to all of theirs. */
  varied?: boolean;
  /** trainStep's length ordering of micro-batches (default on); off to measure what it saves. */
  lengthOrder?: boolean;
  /** The Sr losses' augmented pass in another precision than the step's (precision.ts setAugPrecision). */
  augPrecision?: 'f32' | 'mixed';
  /**
   * Nothing is submitted at all (engine/recorder.ts discard), from the model's initialization on: only
   * the host's recording is measured (recordMs, hostOnlyMs, hostOnlyCpuMs, dispatches), at any shape on
   * any adapter, a CPU one included. Step times, losses and the precision checks mean nothing then and
   * are not reported; the Gpu should not tune (its timings would be of passes that never ran).
   */
  hostOnly?: boolean;
}

/**
 * GPU time of one step by kernel family (the kernel name up to its first '_', e.g. matmul,
 * attention) and the largest kernels by name. Every dispatch gets a pass of its own for its
 * timestamps, so small kernels read high; gpuMs against wallMs shows host and submit overhead.
 */
export interface StepProfile {
  wallMs: number; gpuMs: number; dispatches: number;
  families: { name: string; calls: number; ms: number }[];
  kernels: { name: string; calls: number; ms: number }[];
}

/**
 * Mixed precision against f32 on the same weights and batch (the first micro-batch, before any
 * update): per-sequence summed log-probs and their per-token means.
 */
export interface PrecisionCheck {
  sequences: number; tokensPerSequence: number;
  maxAbsDiff: number; maxAbsDiffPerToken: number; maxRelDiff: number; meanAbsLogp: number;
}

export interface StepResult {
  shape: StepShape; parameters: number; loss: LossName; precision: Precision; precisionNote?: string; precisionCheck?: PrecisionCheck;
  /** The tensor-core matmul's self-check, where the step's products run on native tensor cores (matmul-selfcheck.ts). */
  tcMatmulCheck?: string;
  /** The augmented pass's precision (Sr losses; null otherwise): the step's unless --aug-precision. */
  augPrecision: Precision | null; augPrecisionNote?: string;
  /** With the augmented pass alone in f16: its log-probs of the first micro-batch against f32 (same weights). */
  augPrecisionCheck?: PrecisionCheck;
  /**
   * Attention kernels in this step: 'unfused' (through the matmul kernels: SRK_ATTENTION=unfused, or
   * the tuner chose it both ways), 'tensor cores' (SRK_ATTENTION=tc, or the tuner chose them for every
   * pass), 'mixed' (either for some) or 'f32' (the f32 flash kernels); tcCheck: the tensor-core
   * kernels' self-check here (mixed precision).
   */
  attention: 'tensor cores' | 'mixed' | 'unfused' | 'f32'; tcCheck?: string;
  packed: boolean; varied: boolean; lengthOrder: boolean; optimizer: 'rmsprop'; gradClip: number;
  pairs: number; seq: number; prompt: number; completion: number; microBatch: number; refineTokens: number | null;
  /** Batch rows of one micro-batch and their (padded) length. */
  rowsPerMicroBatch: number; rowLength: number;
  policyTokens: number; unpackedTokens: number; augTokens: number; augSharedTokens: number;
  /** null with hostOnly (nothing ran), as tokensPerS, unpackedTokensPerS and last. */
  stepMs: number | null; samplesMs: number[]; warmupMs: number[];
  /**
   * Host time recording one timed step (median; train/step.ts StepMetrics.recordMs) and its
   * dispatches: near stepMs, the host bounds the step, not the GPU.
   */
  recordMs: number; dispatches: number;
  /**
   * The same steps' recording with nothing submitted (median of HOST_ONLY_STEPS; null while the tuner
   * still measures): the host's own cost, srk's code and Dawn's up to the submit, free of GPU work
   * competing for the CPU (a CPU adapter) and of the driver's submit-time work. / dispatches = the
   * host's time per dispatch.
   */
  hostOnlyMs: number | null;
  /**
   * CPU time of the process per host-only step (mean; every thread: the garbage collector's and
   * Dawn's too): above hostOnlyMs, other threads work for the step; on a machine with few cores they
   * take time from the recording.
   */
  hostOnlyCpuMs: number | null;
  /** StepBenchOptions.hostOnly: nothing ran; only recordMs, hostOnlyMs, hostOnlyCpuMs, dispatches and memory mean anything. */
  hostOnly: boolean;
  /** Bind groups and uniform buffers a timed step created (median; 0 when every dispatch finds its
   *  bindings cached, kernel.ts, as from a run's second step on): host work on top of the recording. */
  bindGroupsPerStep: number; uniformsPerStep: number;
  tokensPerS: number | null; unpackedTokensPerS: number | null;
  /**
   * peakInUseBytes: the most bytes in use at once over the timed steps (PyTorch's max_memory_allocated);
   * allocatedBytes: what the pool holds from the device at the end, in use or kept free for reuse
   * (PyTorch's reserved memory).
   */
  peakInUseBytes: number; resident: { params: number; grads: number; optimizerState: number }; allocatedBytes: number;
  last: { loss: number; gradNorm: number } | null;
  profile?: StepProfile;
  /** The tuner's kernel choices (engine/tuner.ts; on: real GPUs unless SRK_TUNE=0). */
  tuning: { on: boolean; decisions: TuneDecision[] };
  /**
   * The step against this run's own matmul rate (null with hostOnly): its nominal FLOPs (step-flops.ts:
   * policy 3 x forward, the augmented forward once) over its time, and the rate of the MLP's first
   * product on one micro-batch's rows, timed here in the step's precision (GPU timestamps where the
   * adapter has them). share = stepTflops / anchor.tflops: 1 would be a step whose every product ran
   * as fast as that one alone. A ratio within one run, so it reads the same on any adapter, where a step
   * time needs a same-card anchor (PyTorch's, gpu-check.sh) to mean anything.
   */
  matmul: {
    stepGflop: number; policyGflop: number; augGflop: number; stepTflops: number;
    anchor: { M: number; N: number; K: number; precision: 'f32' | 'f16'; tflops: number; timing: 'timestamp' | 'wall' };
    share: number;
  } | null;
}

/** Synthetic pairs of `seq` tokens: the prompt, then completions of seq - prompt tokens (bench step, attention). */
export function checkPromptBelowSeq(kind: string, prompt: number, seq: number): void {
  if (prompt >= seq) throw userError(`bench ${kind}: --prompt ${prompt} must be shorter than --seq ${seq} (completions are seq - prompt tokens)`);
}

/** Refusals that need no GPU work (the CPU-adapter rule is checked by the caller). */
export function checkStepOptions(o: StepBenchOptions): void {
  if (!PRECISIONS.includes(o.precision)) throw userError(`bench step: unknown --precision ${o.precision} (known: ${PRECISIONS.join(', ')})`);
  if (o.augPrecision !== undefined && !PRECISIONS.includes(o.augPrecision)) {
    throw userError(`bench step: unknown --aug-precision ${o.augPrecision} (known: ${PRECISIONS.join(', ')})`);
  }
  if (!STEP_LOSSES.includes(o.loss)) throw userError(`bench step: unknown --loss ${o.loss} (known: ${STEP_LOSSES.join(', ')})`);
  for (const [k, v] of [['pairs', o.pairs], ['seq', o.seq], ['prompt', o.prompt], ['micro-batch', o.microBatch]] as const) {
    if (!Number.isInteger(v) || v < 1) throw userError(`bench step: --${k} must be a positive integer, got ${v}`);
  }
  checkPromptBelowSeq('step', o.prompt, o.seq);
  // The longest sequence: prompt + completion, with the refine prompt in front for the Sr losses.
  const longest = o.seq + (o.loss === 'sr-dpo' || o.loss === 'sr-ipo' ? REFINE_TOKENS : 0);
  const positions = presetConfig('gpt-neox', o.shape).maxPositions;
  if (longest > positions) {
    throw userError(`bench step: --seq ${o.seq}${longest > o.seq ? ` (+ ${REFINE_TOKENS} refine-prompt tokens for ${o.loss})` : ''} is longer than ` +
      `the ${o.shape} shape's ${positions} positions`);
  }
}

function syntheticPairs(n: number, prompt: number, completion: number, vocab: number, sr: boolean, varied = false): TokenizedPair[] {
  // varied: a seeded length from a quarter of the nominal one to all of it.
  const draw = (full: number, seed: number) => varied ? Math.max(1, Math.ceil(full * (0.25 + 0.75 * (randomInts(1, 1 << 20, seed)[0] / (1 << 20))))) : full;
  return Array.from({ length: n }, (_, i) => {
    const promptIds = [...randomInts(draw(prompt, 7919 * i + 11), vocab, 3 * i + 1)];
    return {
      promptIds,
      chosenIds: [...randomInts(draw(completion, 7919 * i + 12), vocab, 3 * i + 2)],
      rejectedIds: [...randomInts(draw(completion, 7919 * i + 13), vocab, 3 * i + 3)],
      augPromptIds: sr ? [...randomInts(REFINE_TOKENS, vocab, 99), ...promptIds] : undefined,
      truncated: false,
    };
  });
}

function randomLogps(n: number, seed: number): PairLogps {
  const r = randomInts(2 * n, 1000, seed);
  return {
    chosen: Float64Array.from({ length: n }, (_, i) => -50 - r[i] / 100),
    rejected: Float64Array.from({ length: n }, (_, i) => -50 - r[n + i] / 100),
    chosenTokens: new Int32Array(n), rejectedTokens: new Int32Array(n),
  };
}

export async function benchStep(gpu: Gpu, o: StepBenchOptions, log: (s: string) => void): Promise<StepResult> {
  checkStepOptions(o);
  if (o.hostOnly && gpu.tuner) throw userError('bench step --host-only: the tuner would time passes that never run (SRK_TUNE=0)');
  if (gpu.profiler) gpu.profiler.enabled = false; // timed steps run unprofiled; see o.profile
  gpu.pool.trim(); // the copy benchmark's buffers, free again: not part of allocatedBytes
  if (o.hostOnly && o.profile) log('  (--profile does nothing with --host-only: no kernel runs)');
  else if (o.profile && !gpu.profiler) log('  (--profile does nothing without GPU timestamps: --no-timestamps, or an adapter without timestamp-query)');
  if (o.hostOnly) gpu.recorder.discard = true;
  try {
    return await benchStepRun(gpu, o, log);
  } finally {
    if (o.hostOnly) gpu.recorder.discard = false;
  }
}

async function benchStepRun(gpu: Gpu, o: StepBenchOptions, log: (s: string) => void): Promise<StepResult> {
  const cfg = presetConfig('gpt-neox', o.shape);
  const V = cfg.vocabSize;
  const sr = isSrLoss(o.loss);
  const completion = o.seq - o.prompt;
  const gradClip = 10;

  const params = new Params(gpu, expectedParameters(cfg)).allocate();
  randomInitParams(gpu, params);
  params.allocateGrads();
  const model = new CausalLM(gpu, cfg, params);
  const paramList = params.specs.map((s) => params.get(s.name));
  const gradList = params.specs.map((s) => params.grad(s.name));
  const optimizer = new Optimizer(gpu, { type: 'rmsprop' }, paramList, { maxGradNorm: gradClip });
  const paramBytes = paramList.reduce((s, t) => s + t.bytes, 0);
  const stateBytes = optimizer.state.flat().reduce((s, t) => s + t.bytes, 0);
  await gpu.sync();

  const pairs = syntheticPairs(o.pairs, o.prompt, completion, V, sr, o.varied);
  const indices = Int32Array.from({ length: o.pairs }, (_, i) => i);
  const ref: ReferenceLogps | undefined = o.loss === 'sft' ? undefined
    : { plain: randomLogps(o.pairs, 7), aug: sr ? randomLogps(o.pairs, 8) : undefined };
  const firstMb = pairs.slice(0, Math.min(o.pairs, o.microBatch));
  const layout = o.loss === 'sft'
    ? buildBatch(firstMb.map((p) => ({ prompt: p.promptIds, completions: [p.chosenIds] })), { packed: false })
    : buildBatch(firstMb.map((p) => ({ prompt: p.promptIds, completions: [p.chosenIds, p.rejectedIds] })), { packed: o.packed });
  // As in training (precision-choice.ts): the augmented pass as the rest unless --aug-precision says
  // otherwise, and products on native tensor cores check themselves first.
  const { main: choice, aug: augChoice, check: tcMatmulCheck } =
    await choosePrecisions(gpu, { precision: o.precision, augPrecision: o.augPrecision, augmented: sr, whyNotAugmented: `${o.loss} has no augmented pass` }, (l) => log(`  (${l})`));
  // Real (unpadded) tokens, from the pairs themselves (their lengths vary with --varied).
  const sumOf = (f: (p: TokenizedPair) => number) => pairs.reduce((s, p) => s + f(p), 0);
  const augTokens = !sr ? 0 : o.packed
    ? sumOf((p) => REFINE_TOKENS + p.promptIds.length + 1 + p.chosenIds.length + p.rejectedIds.length)
    : sumOf((p) => 2 * (REFINE_TOKENS + p.promptIds.length) + p.chosenIds.length + p.rejectedIds.length);

  let t = 1;
  let last: StepMetrics | undefined;
  const one = async (): Promise<number> => {
    const t0 = performance.now();
    last = await trainStep(gpu, model, optimizer, gradList, { pairs, indices, ref },
      { loss: o.loss, beta: 0.1, lambda: 0.5, microBatchSize: o.microBatch, lr: 5e-7, t: t++, packed: o.packed,
        orderByLength: o.lengthOrder !== false, augMatmulPrecision: augChoice?.matmul });
    return performance.now() - t0;
  };
  const warmupMs: number[] = [];
  // Whether the last step met new tuner keys or made choices (tuner.ts: a choice can open others).
  let grew = false;
  const warm = async (): Promise<number> => {
    const before = gpu.tuner?.table.progress ?? 0;
    const ms = await one();
    grew = (gpu.tuner?.table.progress ?? 0) > before;
    return ms;
  };
  for (let i = 0; i < o.warmup; i++) { warmupMs.push(await warm()); log(`  warm-up step ${i + 1}: ${warmupMs[i].toFixed(0)} ms`); }
  // Timed steps run with the tuner's choices made (engine/tuner.ts): more warm-up while it measures.
  // A choice can open others (attention: the flash kernels' tiles once flash is kept over the matmul
  // path), so also one more step after any step that met new keys or made choices.
  for (let i = warmupMs.length; gpu.tuner && (gpu.tuner.open || grew) && i < o.warmup + 8; i++) {
    warmupMs.push(await warm()); log(`  warm-up step ${i + 1} (tuning): ${warmupMs[i].toFixed(0)} ms`);
  }
  const tuning = gpu.tuner?.table.decisions() ?? [];
  if (gpu.tuner) log(`  tuner: ${tuning.length} kernel choices timed, ${tuning.filter((d) => d.chosen !== 0).length} differ from the rule`);
  for (const d of tuning.filter((d) => d.chosen !== 0)) {
    const ms = (i: number) => (d.medianMs[i] === null ? 'not timed' : `${d.medianMs[i]!.toFixed(3)} ms`);
    log(`    ${d.key}: ${d.candidates[d.chosen]} ${ms(d.chosen)} (rule ${d.candidates[0]} ${ms(0)})`);
  }
  // Which attention kernels the step runs: forced (SRK_ATTENTION=tc), or the tuner's picks once the
  // tensor-core kernels passed their check here (kernels/attention-selfcheck.ts).
  const forcedTc = !!chooseSmxBackward(gpu, gpu.matmulPrecision, cfg.headDim);
  const modes = tuning.filter((d) => d.key.startsWith('attention mode ')).map((d) => d.candidates[d.chosen]);
  const tcPicks = tuning.filter((d) => d.key.startsWith('attention ') && !d.key.startsWith('attention mode '))
    .map((d) => d.candidates[d.chosen].startsWith('tc'));
  // Untuned, the rule: the matmul path on GPUs (attention-tiling.ts unfusedByRule).
  const ruleUnfused = !gpu.tuner && unfusedByRule(gpu, gpu.matmulPrecision);
  const attentionKind = unfusedWanted() || ruleUnfused || (modes.length > 0 && modes.every((m) => m === 'unfused')) ? 'unfused' as const
    : forcedTc || (!modes.includes('unfused') && tcPicks.length > 0 && tcPicks.every(Boolean)) ? 'tensor cores' as const
      : modes.includes('unfused') || tcPicks.some(Boolean) ? 'mixed' as const : 'f32' as const;
  const tcCheck = choice.precision === 'mixed' ? tcCheckState(gpu, cfg.headDim) : undefined;
  log(`  attention: ${attentionKind}${forcedTc ? ' (SRK_ATTENTION=tc)' : ''}${tcCheck ? `; tensor-core check: ${tcCheck}` : ''}`);
  // Mixed against f32 log-probs with the kernels the timed steps run (after tuning).
  const precisionCheck = choice.precision === 'mixed' && o.loss !== 'sft' && !o.hostOnly
    ? await comparePrecisions(gpu, model, firstMb, o.packed) : undefined;
  // The augmented pass alone in f16 (--aug-precision mixed): its log-probs against f32 likewise.
  const augPrecisionCheck = augChoice?.precision === 'mixed' && !o.hostOnly ? await comparePrecisions(gpu, model, firstMb, o.packed, true) : undefined;
  if (augPrecisionCheck) {
    log(`  augmented pass, mixed vs f32 log-probs: max |diff| ${augPrecisionCheck.maxAbsDiff.toExponential(2)} per sequence, ` +
      `${augPrecisionCheck.maxAbsDiffPerToken.toExponential(2)} per token`);
  }
  if (precisionCheck) {
    log(`  mixed vs f32 log-probs (${precisionCheck.sequences} sequences of ${precisionCheck.tokensPerSequence} tokens, same weights): ` +
      `max |diff| ${precisionCheck.maxAbsDiff.toExponential(2)} per sequence, ${precisionCheck.maxAbsDiffPerToken.toExponential(2)} per token, ` +
      `relative ${precisionCheck.maxRelDiff.toExponential(2)} (|log-prob| ~ ${precisionCheck.meanAbsLogp.toFixed(1)})`);
  }
  // Peak over the timed steps only (the pool's peak is a plain counter; start it from what is held now).
  gpu.pool.peakInUseBytes = gpu.pool.inUseBytes;
  const samplesMs: number[] = [];
  const recordMs: number[] = [];
  const bindGroups: number[] = []; const uniforms: number[] = [];
  for (let i = 0; i < o.repeats; i++) {
    const bg0 = gpu.kernels.bindGroupsCreated; const u0 = gpu.kernels.uniformsCreated;
    samplesMs.push(await one());
    recordMs.push(last!.recordMs);
    const bg = gpu.kernels.bindGroupsCreated - bg0; const un = gpu.kernels.uniformsCreated - u0;
    bindGroups.push(bg); uniforms.push(un);
    log(`  step ${i + 1}: ${samplesMs[i].toFixed(0)} ms (host recording ${last!.recordMs.toFixed(0)} ms, ${last!.dispatches} dispatches` +
      `${bg || un ? `, ${bg} new bind groups, ${un} new uniform buffers` : ''})`);
  }
  const peak = gpu.pool.peakInUseBytes;
  const timed = last!; // (the host-only and profiled steps below report nothing of their own results)
  const dispatchesPerStep = timed.dispatches;
  // The host alone: steps recorded but never submitted (engine/recorder.ts discard), so no GPU work
  // competes for the CPU and nothing waits: srk's own code and Dawn's recording up to the submit.
  // Not while the tuner still measures (it would read times of passes that never ran).
  const hostOnly: number[] = [];
  let hostOnlyCpuMs: number | null = null;
  if (!gpu.tuner?.open) {
    const was = gpu.recorder.discard;
    gpu.recorder.discard = true;
    const cpu0 = process.cpuUsage();
    try {
      for (let i = 0; i < HOST_ONLY_STEPS; i++) { await one(); hostOnly.push(last!.recordMs); }
    } finally { gpu.recorder.discard = was; }
    const cpu = process.cpuUsage(cpu0);
    hostOnlyCpuMs = (cpu.user + cpu.system) / 1000 / HOST_ONLY_STEPS;
  }
  let profile: StepProfile | undefined;
  if (o.profile && gpu.profiler && !o.hostOnly) {
    await gpu.profiler.collect();
    gpu.profiler.reset();
    gpu.profiler.enabled = true;
    const wallMs = await one();
    const times = await gpu.profiler.collect();
    gpu.profiler.enabled = false;
    const fam = new Map<string, { name: string; calls: number; ms: number }>();
    for (const k of times) {
      const name = k.name.split('_')[0];
      const f = fam.get(name) ?? { name, calls: 0, ms: 0 };
      f.calls += k.calls; f.ms += k.ns / 1e6;
      fam.set(name, f);
    }
    profile = {
      wallMs, gpuMs: times.reduce((s, k) => s + k.ns / 1e6, 0), dispatches: times.reduce((s, k) => s + k.calls, 0),
      families: [...fam.values()].sort((a, b) => b.ms - a.ms),
      kernels: times.slice(0, 25).map((k) => ({ name: k.name, calls: k.calls, ms: k.ns / 1e6 })),
    };
    log(`  profiled step: wall ${wallMs.toFixed(1)} ms, GPU ${profile.gpuMs.toFixed(1)} ms in ${profile.dispatches} dispatches; ` +
      profile.families.slice(0, 8).map((f) => `${f.name} ${f.ms.toFixed(1)}`).join(', '));
  }
  const stepMs = median(samplesMs);
  const policyTokens = timed.tokens;
  const unpackedTokens = o.loss === 'sft' ? sumOf((p) => p.promptIds.length + p.chosenIds.length)
    : sumOf((p) => 2 * p.promptIds.length + p.chosenIds.length + p.rejectedIds.length);

  optimizer.release();
  model.destroy();
  params.free();
  // What the pool holds after the steps, before the matmul anchor's operands join it.
  const allocatedBytes = gpu.pool.allocatedBytes;
  // The anchor in the step's matmul precision (still set), with the model's memory free again.
  const matmulRatio = o.hostOnly ? null : await stepAgainstMatmul(gpu, cfg, pairs, o, sr, stepMs, layout.B * layout.T, log);
  gpu.matmulPrecision = 'f32';
  return {
    shape: o.shape, parameters: params.count, loss: o.loss, precision: choice.precision, precisionNote: choice.note, precisionCheck, tcMatmulCheck,
    augPrecision: sr ? augChoice?.precision ?? choice.precision : null, augPrecisionNote: augChoice?.note, augPrecisionCheck,
    attention: attentionKind, tcCheck,
    packed: o.loss === 'sft' ? false : o.packed, varied: o.varied ?? false, lengthOrder: o.lengthOrder !== false, optimizer: 'rmsprop', gradClip,
    pairs: o.pairs, seq: o.seq, prompt: o.prompt, completion, microBatch: o.microBatch, refineTokens: sr ? REFINE_TOKENS : null,
    rowsPerMicroBatch: layout.B, rowLength: layout.T,
    policyTokens, unpackedTokens, augTokens, augSharedTokens: timed.augSharedTokens,
    // Host only: nothing ran, so no step time, rate or result (null, not the recording's wall clock).
    stepMs: o.hostOnly ? null : stepMs, samplesMs: o.hostOnly ? [] : samplesMs, warmupMs: o.hostOnly ? [] : warmupMs,
    recordMs: median(recordMs), dispatches: dispatchesPerStep,
    hostOnlyMs: hostOnly.length ? median(hostOnly) : null, hostOnlyCpuMs, hostOnly: !!o.hostOnly,
    bindGroupsPerStep: median(bindGroups), uniformsPerStep: median(uniforms),
    tokensPerS: o.hostOnly ? null : policyTokens / (stepMs / 1000), unpackedTokensPerS: o.hostOnly ? null : unpackedTokens / (stepMs / 1000),
    peakInUseBytes: peak, resident: { params: paramBytes, grads: paramBytes, optimizerState: stateBytes }, allocatedBytes,
    last: o.hostOnly ? null : { loss: timed.loss, gradNorm: timed.gradNorm }, profile,
    tuning: { on: !!gpu.tuner, decisions: tuning }, matmul: matmulRatio,
  };
}

/**
 * StepResult.matmul: the step's nominal FLOPs against the MLP's first product (y = x W^T, hidden ->
 * intermediate) on `rows` rows (a micro-batch's), timed now in the step's matmul precision.
 */
async function stepAgainstMatmul(gpu: Gpu, cfg: ModelConfig, pairs: TokenizedPair[], o: StepBenchOptions, sr: boolean, stepMs: number,
  rows: number, log: (s: string) => void): Promise<NonNullable<StepResult['matmul']>> {
  const lengths = pairs.map((p) => ({ prompt: p.promptIds.length, chosen: p.chosenIds.length,
    rejected: o.loss === 'sft' ? 0 : p.rejectedIds.length, refine: sr ? REFINE_TOKENS : 0 }));
  const f = stepFlops(cfg, lengths, o.loss !== 'sft' && o.packed, o.microBatch);
  const precision = gpu.matmulPrecision;
  const profiling = gpu.profiler?.enabled ?? false;
  if (gpu.profiler) gpu.profiler.enabled = true; // timestamps, as `bench matmul` times its products
  let r;
  try {
    r = await benchMatmul(gpu, { name: 'step anchor: mlp-up fwd', M: rows, N: cfg.intermediateSize, K: cfg.hiddenSize, transB: true, precision });
  } finally {
    if (gpu.profiler) gpu.profiler.enabled = profiling;
  }
  const stepTflops = f.total / (stepMs * 1e9);
  const anchor = { M: rows, N: cfg.intermediateSize, K: cfg.hiddenSize, precision, tflops: r.gflops / 1000, timing: r.timing.method };
  const share = stepTflops / anchor.tflops;
  log(`  nominal work ${(f.total / 1e9).toPrecision(4)} GFLOP a step (policy ${(f.policy / 1e9).toPrecision(4)}${f.augmented ? `, augmented ${(f.augmented / 1e9).toPrecision(4)}` : ''}) ` +
    `= ${stepTflops.toPrecision(3)} TFLOP/s, ${(100 * share).toFixed(1)}% of this run's ${precision} matmul rate on the MLP's ` +
    `${rows}x${anchor.N}x${anchor.K} product (${anchor.tflops.toPrecision(3)} TFLOP/s)`);
  return { stepGflop: f.total / 1e9, policyGflop: f.policy / 1e9, augGflop: f.augmented / 1e9, stepTflops, anchor, share };
}

/** Scores `pairs` (their augmented prompts if asked) with f32 and with f16 matmul operands on the same weights. */
async function comparePrecisions(gpu: Gpu, model: CausalLM, pairs: TokenizedPair[], packed: boolean, augmented = false): Promise<PrecisionCheck> {
  const ref = await scorePairs(gpu, model, pairs, { microBatch: pairs.length, packed, augmented, matmulPrecision: 'f32' });
  const mixed = await scorePairs(gpu, model, pairs, { microBatch: pairs.length, packed, augmented, matmulPrecision: 'f16' });
  const r: PrecisionCheck = { sequences: 2 * pairs.length, tokensPerSequence: pairs[0].chosenIds.length,
    maxAbsDiff: 0, maxAbsDiffPerToken: 0, maxRelDiff: 0, meanAbsLogp: 0 };
  for (const [a, b, n] of [[ref.chosen, mixed.chosen, ref.chosenTokens], [ref.rejected, mixed.rejected, ref.rejectedTokens]] as const) {
    for (let i = 0; i < a.length; i++) {
      const d = Math.abs(a[i] - b[i]);
      r.maxAbsDiff = Math.max(r.maxAbsDiff, d);
      r.maxAbsDiffPerToken = Math.max(r.maxAbsDiffPerToken, d / Math.max(1, n[i]));
      r.maxRelDiff = Math.max(r.maxRelDiff, d / Math.max(1e-30, Math.abs(a[i])));
      r.meanAbsLogp += Math.abs(a[i]) / r.sequences;
    }
  }
  return r;
}
