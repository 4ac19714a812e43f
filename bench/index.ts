// `srk bench KIND`: kernel microbenchmarks. Every run measures the adapter's copy bandwidth
// first, so each result can also be read as a ratio that compares across machines.
//   copy        vec4 f32 copy bandwidth (copy.ts)
//   matmul      square and Pythia-shaped products, optional tile sweep (matmul.ts)
//   attention   flash attention forward/backward, plain causal and packed pairs (attention.ts)
//   classifier  fused output layer (logits + log-softmax gather) forward/backward (classifier.ts)
//   norm        LayerNorm / RMSNorm forward/backward and bias-gradient column sums, GB/s (norm.ts)
//   optimizer   RMSprop / AdamW step with grad norm and clipping, GB/s (optimizer.ts)
//   step        a full training step on a random-init model, wall clock (step.ts)
//   generate    sampling's prompt pass and decode steps on a random-init model, wall clock (generate.ts)
// On a CPU adapter (lavapipe) every kind shrinks its sizes unless --full; `step` refuses the
// Pythia shapes there unless --full.
import type { AdapterInfo, Gpu } from '../src/engine/gpu.js';
import { benchCopy, type CopyResult } from './copy.js';
import { benchMatmul, pythiaCases, type MatmulCase, type MatmulResult } from './matmul.js';
import { tileName, type MatmulTile } from '../src/kernels/matmul.js';
import { fmt } from './harness.js';
import { attentionCases, benchAttention, type AttentionResult } from './attention.js';
import { benchClassifier, classifierCases, type ClassifierResult } from './classifier.js';
import { benchColumnSum, benchNorm, normCases, type ColumnSumResult, type NormResult } from './norm.js';
import { benchOptimizers, type OptimizerResult } from './optimizer.js';
import { precisionFor, setPrecision } from '../src/engine/precision.js';
import { benchStep, checkPromptBelowSeq, checkStepOptions, type StepBenchOptions, type StepResult } from './step.js';
import { userError } from '../src/errors.js';
import { benchGenerate, checkGenerateBench, type GenerateBenchOptions, type GenerateBenchResult } from './generate.js';
import { presetConfig } from '../src/init/presets.js';

export const BENCH_KINDS = ['matmul', 'copy', 'attention', 'classifier', 'norm', 'optimizer', 'step', 'generate'] as const;
export type BenchKind = (typeof BENCH_KINDS)[number];

export interface BenchOptions {
  kind: BenchKind; full: boolean; tokens?: number; sizes?: number[]; log: (s: string) => void;
  /** Also time every tiling in TILE_SWEEP on the square sizes (for tuning on a new GPU). */
  tileSweep?: boolean;
  /** matmul: only the cases whose name matches this regular expression. */
  only?: string;
  /** matmul: run the cases in reverse order (order effects: clocks, memory growth). */
  reverse?: boolean;
  /** attention: override the pair shape (default 8 pairs, seq 512, prompt 256; CPU: 1, 128, 64). */
  pairs?: number; seq?: number; prompt?: number;
  /** classifier: vocabulary rows (default 50304; 4096 on a CPU adapter). */
  vocab?: number;
  /** matmul: 'mixed' times every case in f32 and, right after it, with f16 operands (tensor cores). */
  precision?: 'f32' | 'mixed';
  /** step: its settings (pairs, seq, prompt above; defaults there are 8, 512, 256). */
  step?: Omit<StepBenchOptions, 'pairs' | 'seq' | 'prompt' | 'warmup' | 'repeats' | 'shape'> & { shape?: StepBenchOptions['shape'] };
}

export const TILE_SWEEP: MatmulTile[] = [
  { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4 },
  { BM: 128, BN: 128, BK: 8, TM: 8, TN: 8 },
  { BM: 128, BN: 128, BK: 16, TM: 8, TN: 8 },
  { BM: 128, BN: 64, BK: 16, TM: 8, TN: 4 },
  { BM: 64, BN: 128, BK: 8, TM: 4, TN: 8 },
  // Register-tiled generated kernels (src/kernels/matmul.ts regDef); names from tileName().
  { BM: 128, BN: 128, BK: 16, TM: 8, TN: 8, kind: 'reg' },
  { BM: 128, BN: 128, BK: 8, TM: 8, TN: 8, kind: 'reg' },
  { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4, kind: 'reg' },
  { BM: 128, BN: 64, BK: 16, TM: 8, TN: 4, kind: 'reg' },
  { BM: 64, BN: 128, BK: 16, TM: 4, TN: 8, kind: 'reg' },
  { BM: 128, BN: 128, BK: 16, TM: 8, TN: 8, kind: 'reg', stages: 1 },
  { BM: 128, BN: 128, BK: 16, TM: 8, TN: 8, kind: 'reg', vec4: false },
  { BM: 128, BN: 128, BK: 16, TM: 8, TN: 8, kind: 'reg', unrollK: false },
  // 8 x 4 lanes a warp, 8x16 per thread, scalar accumulators (tuner candidates since run 7).
  { BM: 128, BN: 128, BK: 8, TM: 8, TN: 8, kind: 'reg', lanes: '8x4' },
  { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4, kind: 'reg', lanes: '8x4' },
  { BM: 128, BN: 256, BK: 8, TM: 8, TN: 16, kind: 'reg' },
  { BM: 128, BN: 256, BK: 8, TM: 8, TN: 16, kind: 'reg', lanes: '8x4' },
  { BM: 128, BN: 128, BK: 8, TM: 8, TN: 8, kind: 'reg', scalarAcc: true },
];

/** Tensor-core tilings (f16 operands) swept with --tiles --precision mixed. */
export const SMX_SWEEP: MatmulTile[] = [
  { BM: 128, BN: 128, BK: 32, TM: 64, TN: 32, kind: 'smx' },
  { BM: 128, BN: 128, BK: 32, TM: 64, TN: 32, kind: 'smx', stages: 2 },
  { BM: 128, BN: 128, BK: 32, TM: 32, TN: 64, kind: 'smx' },
  { BM: 128, BN: 128, BK: 64, TM: 64, TN: 32, kind: 'smx' },
  { BM: 128, BN: 128, BK: 16, TM: 64, TN: 32, kind: 'smx' },
  { BM: 256, BN: 128, BK: 32, TM: 64, TN: 64, kind: 'smx' },
  { BM: 128, BN: 256, BK: 32, TM: 64, TN: 64, kind: 'smx' },
  { BM: 128, BN: 64, BK: 32, TM: 32, TN: 32, kind: 'smx' },
  { BM: 64, BN: 128, BK: 32, TM: 32, TN: 32, kind: 'smx' },
  { BM: 64, BN: 64, BK: 32, TM: 32, TN: 32, kind: 'smx' },
  { BM: 64, BN: 64, BK: 64, TM: 32, TN: 32, kind: 'smx' },
];

export interface BenchReport {
  /** How the kernel figures were timed (copy, matmul, ...); `step` and `generate` are timed by the wall clock whatever this says. */
  kind: BenchKind; date: string; adapter: AdapterInfo; timing: 'timestamp' | 'wall';
  reducedForCpu: boolean; copy: CopyResult; matmul?: MatmulResult[];
  attention?: AttentionResult[]; classifier?: ClassifierResult[]; norm?: NormResult[]; columnSum?: ColumnSumResult[]; optimizer?: OptimizerResult[]; step?: StepResult;
  generate?: GenerateBenchResult;
}


/** The flags each kind reads beyond the common ones (--adapter, --json, --full, --fast, --timestamps). */
export const BENCH_KIND_FLAGS: Record<BenchKind, readonly string[]> = {
  matmul: ['tokens', 'sizes', 'tiles', 'only', 'reverse', 'precision'],
  copy: [],
  attention: ['pairs', 'seq', 'prompt', 'precision'],
  classifier: ['tokens', 'vocab'],
  norm: ['tokens'],
  optimizer: [],
  step: ['pairs', 'seq', 'prompt', 'shape', 'loss', 'micro-batch', 'micro-batch-size', 'precision', 'aug-precision', 'varied', 'length-order', 'profile', 'packed', 'host-only'],
  generate: ['pairs', 'seq', 'prompt', 'shape', 'precision'],
};
export const BENCH_COMMON_FLAGS = ['adapter', 'json', 'full', 'fast', 'timestamps', 'help', 'version'];

/**
 * Refuses flags typed for a kind that does not read them (`bench generate --loss sr-dpo` timed the same
 * thing as without it, and the report read as if the loss had been set). `given`: the flags as typed.
 */
export function checkBenchFlagsRead(kind: BenchKind, given: readonly string[]): void {
  const read = new Set([...BENCH_KIND_FLAGS[kind], ...BENCH_COMMON_FLAGS]);
  const unread = given.filter((f) => !read.has(f));
  if (unread.length === 0) return;
  const its = BENCH_KIND_FLAGS[kind];
  throw userError(`bench ${kind}: ${unread.map((f) => `--${f}`).join(', ')} ${unread.length === 1 ? 'is' : 'are'} not read by this kind ` +
    `(${its.length > 0 ? `it reads ${its.map((f) => `--${f}`).join(', ')}` : 'it has no settings of its own'}; srk bench --help says which flag each kind reads)`);
}

/**
 * The sizes and the case filter, checked before the GPU starts: a size that is not a positive integer
 * would reach a buffer allocation as NaN or 0, and a bad --only only after the copy benchmark.
 */
export function checkBenchOptions(o: Pick<BenchOptions, 'tokens' | 'sizes' | 'vocab' | 'pairs' | 'seq' | 'prompt' | 'only'> & { microBatch?: number }): void {
  const sizes: [string, number | undefined][] = [['tokens', o.tokens], ['vocab', o.vocab], ['pairs', o.pairs], ['seq', o.seq], ['prompt', o.prompt],
    ['micro-batch', o.microBatch], ...(o.sizes ?? []).map((s): [string, number] => ['sizes', s])];
  for (const [k, v] of sizes) {
    if (v !== undefined && !(Number.isInteger(v) && v >= 1)) throw userError(`bench: --${k} must be a positive integer, got ${v}`);
  }
  if (o.only !== undefined) {
    try { new RegExp(o.only); } catch (e) { throw userError(`bench: --only ${JSON.stringify(o.only)} is not a regular expression (${(e as Error).message})`); }
  }
}

/**
 * The matmul cases of this run, in order (the tile sweep, the squares, the models' products, each f16
 * twin where mixed runs); `log` gets the precision notes.
 */
function matmulCases(gpu: Gpu, o: BenchOptions, cpu: boolean, log: (s: string) => void): MatmulCase[] {
  const squares = o.sizes ?? (cpu ? [256] : [1024, 4096]);
  const tokens = o.tokens ?? (cpu ? 64 : 8192);
  const sweep: MatmulCase[] = o.tileSweep
    ? squares.flatMap((s) => TILE_SWEEP.map((tile) => ({
      name: `square ${s} tile ${tileName(tile)}`, M: s, N: s, K: s, tile })))
    : [];
  let cases: MatmulCase[] = [
    ...sweep,
    ...squares.map((s) => ({ name: `square ${s}`, M: s, N: s, K: s })),
    ...pythiaCases('pythia-160m', tokens), ...pythiaCases('pythia-410m', tokens),
  ];
  // The f16 cases ask for it per call (MatmulCase.precision); the default stays f32. Where mixed
  // falls back to f32 there are no f16 cases (SRK_MIXED=emulate times the emulation).
  const choice = o.precision === 'mixed' ? precisionFor(gpu, 'mixed') : undefined;
  if (choice?.note) log(`(${choice.note})`);
  if (choice?.precision === 'mixed') {
    if (!choice.note) log(`(mixed: f16 cases on tensor cores, subgroup matrices ${JSON.stringify(gpu.smxF16)})`);
    // Each f16 case right after its f32 twin; gradient products (dx, dW) scale A as training does, and dW its B.
    const f16 = (c: MatmulCase, tile?: MatmulTile): MatmulCase =>
      ({ ...c, name: `${c.name} f16${tile ? ` tile ${tileName(tile)}` : ''}`, tile, precision: 'f16', scaleA: / (dx|dW)$/.test(c.name),
        ...(/ dW$/.test(c.name) ? { scaleB: true } : {}) });
    cases = cases.flatMap((c) => c.tile ? [c] : [c, f16(c)]);
    // --tiles: every tensor-core tiling on the squares and the model's products (narrow with --only).
    if (o.tileSweep && gpu.smxF16) {
      const base = cases.filter((c) => !c.tile && c.precision !== 'f16');
      cases = cases.filter((c) => !c.tile).concat(base.flatMap((c) => SMX_SWEEP.map((t) => f16(c, t))));
    }
  }
  return cases;
}

export async function runBench(gpu: Gpu, o: BenchOptions): Promise<BenchReport> {
  const cpu = gpu.isCpuAdapter && !o.full;
  let stepOpts: StepBenchOptions | undefined;
  if (o.kind === 'attention') {
    for (const c of attentionCases(cpu)) checkPromptBelowSeq('attention', o.prompt ?? c.prompt, o.seq ?? c.seq);
  }
  if (o.kind === 'step') {
    // Checked before any GPU work, so a refusal is immediate.
    const s = o.step ?? { loss: 'dpo' as const, microBatch: 8, precision: 'f32' as const, packed: true, profile: false, varied: false, lengthOrder: true };
    stepOpts = {
      ...s, shape: s.shape ?? (cpu ? 'tiny' : 'pythia-160m'), pairs: o.pairs ?? 8, seq: o.seq ?? 512, prompt: o.prompt ?? 256,
      warmup: 2, repeats: cpu ? 3 : 5,
    };
    checkStepOptions(stepOpts);
    if (cpu && stepOpts.shape.startsWith('pythia') && !stepOpts.hostOnly) {
      throw userError(`bench step: --shape ${stepOpts.shape} on a CPU adapter (${gpu.adapterInfo.device || gpu.adapterInfo.description}) ` +
        'would take hours; use --shape tiny, --host-only (the host\'s recording alone), or --full to run it anyway');
    }
  }
  let genOpts: GenerateBenchOptions | undefined;
  if (o.kind === 'generate') {
    // --pairs: the rows (prompts) generated together; --seq: prompt + new tokens.
    const shape = o.step?.shape ?? (cpu ? 'tiny' : 'pythia-160m');
    const prompt = o.prompt ?? (cpu ? 16 : 256); const seq = o.seq ?? (cpu ? 32 : 512);
    if (seq < prompt + 2) throw userError(`bench generate: --seq ${seq} must be at least --prompt ${prompt} + 2 (a decode step needs a second new token)`);
    if (o.step?.precision === 'mixed') throw userError('bench generate runs in f32 (srk generate\'s precision): --precision mixed does not apply');
    genOpts = { shape, rows: o.pairs ?? (cpu ? 2 : 8), prompt, newTokens: seq - prompt, warmup: 1, repeats: cpu ? 2 : 5 };
    try { checkGenerateBench(genOpts, presetConfig('gpt-neox', shape).maxPositions); } catch (e) { throw userError((e as Error).message); }
    if (cpu && shape.startsWith('pythia')) {
      throw userError(`bench generate: --shape ${shape} on a CPU adapter would take hours; use --shape tiny, or --full to run it anyway`);
    }
  }
  // A --only that matches no matmul case is refused before the copy benchmark.
  const only = o.kind === 'matmul' && o.only ? new RegExp(o.only) : undefined;
  if (only) {
    const cases = matmulCases(gpu, o, cpu, () => {});
    if (!cases.some((c) => only.test(c.name))) {
      throw userError(`bench matmul: no case matches --only ${JSON.stringify(o.only)} (the cases: ${cases.slice(0, 6).map((c) => c.name).join(', ')}, ...)`);
    }
  }
  const copy = await benchCopy(gpu, cpu ? 32 : 512);
  o.log(`copy ${fmt(copy.bytes / 2 ** 20)} MiB: ${fmt(copy.gbPerS)} GB/s (read+write), ${fmt(copy.timing.ms, 3)} ms`);
  const report: BenchReport = {
    kind: o.kind, date: new Date().toISOString(), adapter: gpu.adapterInfo, timing: copy.timing.method,
    reducedForCpu: cpu, copy,
  };
  if (o.kind === 'matmul') {
    const tokens = o.tokens ?? (cpu ? 64 : 8192);
    const cases = matmulCases(gpu, o, cpu, o.log);
    if (cpu) o.log(`(CPU adapter: reduced sizes, ${tokens} tokens; --full for the real ones)`);
    report.matmul = [];
    const selected = cases.filter((c) => !only || only.test(c.name));
    if (o.reverse) selected.reverse();
    for (const c of selected) {
      let r: MatmulResult;
      try {
        r = await benchMatmul(gpu, c, copy.gbPerS, cpu ? 1 : 2, cpu ? 3 : 7);
      } catch (e) {
        if (!c.tile) throw e;
        o.log(`${c.name}: ${(e as Error).message.split('\n')[0]}`); // a swept tiling this adapter cannot run
        continue;
      }
      report.matmul.push(r);
      o.log(`${c.name.padEnd(32)} ${`${c.M}x${c.N}x${c.K}`.padEnd(18)} ${fmt(r.gflops).padStart(8)} GFLOP/s ` +
        `${fmt(r.timing.ms, 3).padStart(9)} ms   min traffic ${fmt(r.minTrafficPctOfCopy ?? 0)}% of copy` +
        (r.tunedKernels ? `   tuned: ${r.tunedKernels.join(' + ')}` : ''));
    }
  }
  const [warm, reps] = cpu ? [1, 3] : [2, 7];
  const tokens = (cpuDefault: number) => o.tokens ?? (cpu ? cpuDefault : 8192);
  if (o.kind === 'attention') {
    const cases = attentionCases(cpu).map((c) => ({ ...c, pairs: o.pairs ?? c.pairs, seq: o.seq ?? c.seq, prompt: o.prompt ?? c.prompt }));
    if (cpu) o.log(`(CPU adapter: reduced sizes, ${cases[0].pairs} pair(s) of ${cases[0].seq} tokens; --full for the real ones)`);
    // --precision mixed: f16 operands where attention runs products (tensor cores, the matmul path).
    const choice = setPrecision(gpu, o.precision ?? 'f32');
    o.log(`attention precision ${choice.precision}${choice.note ? ` (${choice.note})` : ''}`);
    report.attention = [];
    for (const c of cases) {
      const r = await benchAttention(gpu, c, warm, reps);
      report.attention.push(r);
      o.log(`${c.name.padEnd(20)} ${`${r.B}x${r.T} H${c.H} Dh${c.Dh}`.padEnd(20)} fwd ${fmt(r.forward.timing.ms, 3).padStart(9)} ms ` +
        `${fmt(r.forward.gflops).padStart(7)} GFLOP/s   bwd ${fmt(r.backward.timing.ms, 3).padStart(9)} ms ${fmt(r.backward.gflops).padStart(7)} GFLOP/s`);
    }
  }
  if (o.kind === 'classifier') {
    const n = tokens(32);
    const V = o.vocab ?? (cpu ? 4096 : 50304);
    if (cpu) o.log(`(CPU adapter: reduced sizes, ${n} tokens, vocabulary ${V}; --full for the real ones)`);
    report.classifier = [];
    for (const c of classifierCases(n, V)) {
      const r = await benchClassifier(gpu, c, warm, reps);
      report.classifier.push(r);
      o.log(`${c.name.padEnd(20)} N ${c.N} V ${c.V} d ${c.d} (chunks of ${r.chunkRows} rows)  fwd ${fmt(r.forward.timing.ms, 3).padStart(9)} ms ` +
        `${fmt(r.forward.gflops).padStart(7)} GFLOP/s   bwd ${fmt(r.backward.timing.ms, 3).padStart(9)} ms ${fmt(r.backward.gflops).padStart(7)} GFLOP/s`);
    }
  }
  if (o.kind === 'norm') {
    const n = tokens(256);
    if (cpu) o.log(`(CPU adapter: reduced sizes, ${n} rows; --full for the real ones)`);
    report.norm = [];
    for (const c of normCases(n)) {
      const r = await benchNorm(gpu, c, copy.gbPerS, warm, reps);
      report.norm.push(r);
      const part = (m: NormResult['forward']) => `${fmt(m.timing.ms, 3).padStart(9)} ms ${fmt(m.gbPerS).padStart(7)} GB/s ${fmt(m.pctOfCopy).padStart(5)}%`;
      o.log(`${c.name.padEnd(16)} [${c.N}, ${c.D}]  fwd ${part(r.forward)}   bwd ${part(r.backward)}  (% of copy)`);
    }
    report.columnSum = [];
    for (const D of [768, 3072]) { // Pythia-160m's attention-out / mlp-down and mlp-up biases
      const r = await benchColumnSum(gpu, n, D, copy.gbPerS, warm, reps);
      report.columnSum.push(r);
      o.log(`${r.name.padEnd(20)} [${n}, ${D}]  ${fmt(r.timing.ms, 3).padStart(9)} ms ${fmt(r.gbPerS).padStart(7)} GB/s ${fmt(r.pctOfCopy).padStart(5)}% of copy`);
    }
  }
  if (o.kind === 'optimizer') {
    const shapes = cpu ? 'small' : 'pythia-160m';
    if (cpu) o.log('(CPU adapter: the small preset\'s tensor shapes; --full for Pythia-160m\'s)');
    report.optimizer = await benchOptimizers(gpu, shapes, copy.gbPerS, warm, reps);
    for (const r of report.optimizer) {
      o.log(`${r.name.padEnd(16)} ${r.shapes} (${r.tensors} tensors, ${(r.elements / 1e6).toFixed(1)}M elements, ${r.bytesPerElement} B each) ` +
        `${fmt(r.timing.ms, 3).padStart(9)} ms ${fmt(r.gbPerS).padStart(7)} GB/s ${fmt(r.pctOfCopy).padStart(5)}% of copy`);
    }
  }
  if (o.kind === 'generate' && genOpts) {
    const g = genOpts;
    o.log(`generate: ${g.shape}, ${g.rows} rows x (${g.prompt} prompt + ${g.newTokens} new tokens), greedy, f32; ${g.warmup} warm-up + ${g.repeats} timed (wall clock)`);
    const r = await benchGenerate(gpu, g);
    report.generate = r;
    o.log(`prefill ${fmt(r.prefillMs, 3)} ms = ${fmt(r.prefillTokensPerS)} prompt tokens/s; decode ${fmt(r.decodeStepMs, 3)} ms a step = ` +
      `${fmt(r.decodeTokensPerS)} new tokens/s (${g.rows} a step); peak GPU memory ${fmt(r.peakInUseBytes / 2 ** 20)} MiB`);
  }
  if (o.kind === 'step' && stepOpts) {
    const s = stepOpts;
    o.log(`step: ${s.shape}, ${s.loss}, ${s.pairs} pairs x (${s.prompt} prompt + ${s.seq - s.prompt} completion), micro-batch ${s.microBatch}, ` +
      `${s.precision}${s.augPrecision && s.augPrecision !== s.precision ? ` (augmented pass ${s.augPrecision})` : ''}, ${s.packed ? 'packed' : 'unpacked'}, RMSprop + clip; ${s.warmup} warm-up + ${s.repeats} timed steps (wall clock)`);
    const r = await benchStep(gpu, s, o.log);
    report.step = r;
    if (r.hostOnly) {
      const ms = r.hostOnlyMs ?? r.recordMs;
      o.log(`host only (nothing submitted): recording ${fmt(ms)} ms a step, ${r.dispatches} dispatches = ${fmt((1000 * ms) / r.dispatches)} us a dispatch; ` +
        `${fmt(r.hostOnlyCpuMs ?? 0)} ms of CPU a step (every thread); peak GPU memory ${fmt(r.peakInUseBytes / 2 ** 20)} MiB`);
      return report;
    }
    const hostOnly = r.hostOnlyMs === null ? '' : `; ${fmt(r.hostOnlyMs)} ms = ${fmt((1000 * r.hostOnlyMs) / r.dispatches)} us a dispatch ` +
      `with nothing submitted, ${fmt(r.hostOnlyCpuMs!)} ms of CPU`;
    // The second rate counts what PyTorch's anchor counts (its policy tokens: each pair's prompt twice).
    const processed = r.loss === 'sft' ? 'prompt + chosen' : r.packed ? 'packed: each prompt once' : 'unpacked';
    const unpacked = r.loss === 'sft' ? 'prompt + chosen' : 'prompt + completion, twice a pair';
    o.log(`step ${fmt(r.stepMs!, 3)} ms, ${r.precision}${r.augPrecision && r.augPrecision !== r.precision ? ` (augmented pass ${r.augPrecision})` : ''} (host recording ${fmt(r.recordMs)} ms, ${r.dispatches} dispatches${hostOnly}); policy ${r.policyTokens} tokens/step (${processed}) = ${fmt(r.tokensPerS!)} tokens/s, ` +
      `${fmt(r.unpackedTokensPerS!)} policy tokens/s as PyTorch counts them (${unpacked}${r.varied ? ', at their drawn lengths' : ''} = ${r.unpackedTokens})` +
      `${r.augTokens ? `, plus ${r.augTokens} augmented forward-only tokens${r.augSharedTokens ? ` (${r.augSharedTokens} of them skipped: the rows' shared refinement prompt, computed once a micro-batch)` : ''}` : ''}; ` +
      `peak GPU memory ${fmt(r.peakInUseBytes / 2 ** 20)} MiB (params ${fmt(r.resident.params / 2 ** 20)} MiB)`);
  }
  return report;
}
