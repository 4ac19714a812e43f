// Matrix multiply: C[b] = alpha * op(A[b]) op(B[b]) (+ C[b] if accumulate) (+ bias[n]).
// Optionally GELU or its backward applied as C is stored (`act`: GPT-NeoX's MLP).
//
// Logical shapes: op(A) [M, K], op(B) [K, N], C [M, N], bias [N]; `batch` independent products
// with element strides between them. Storage (row-major, leading dimensions lda/ldb/ldc):
//   A: transA ? [K, lda >= M] : [M, lda >= K];   B: transB ? [N, ldb >= K] : [K, ldb >= N].
// So the three products a linear layer needs are: y = x W^T (transB), dx = dy W, dW += dy^T x
// (transA, accumulate).
//
// Tiling: a workgroup computes a BM x BN tile of C, stepping through K in BK slices staged in
// workgroup memory (kernels: matmul-simt.ts simple and reg, matmul-smx.ts tensor cores). Loads are
// bounds-checked (zero-filled) so any M, N, K works; when the shape divides the tile the checks
// compile out. Operands over the binding limit are split into sub-products (see run()). Which
// tiling runs: the caller's, else on a GPU with a tuner (engine/tuner.ts) the fastest candidate
// timed in the first steps (tileCandidates(), split-K forms included: matmul-splitk.ts), else the
// built-in rule (chooseTile()).
//
// Precision: f32 tensors in and out always; the operands may be rounded to f16 (precision 'f16',
// default gpu.matmulPrecision) with the sums in f32: on tensor cores through subgroup matrices
// (matmul-smx.ts) where the adapter has them, else in the SIMT kernels as they stage the operands
// (matmul-simt.ts h16()). A gradient operand A can be scaled by a power of two from its max |A| first
// (scaleA, absmax.ts) so that f16's range fits it, and B likewise from partial maxima the caller found
// (scaleB: a weight gradient's layer input, attention's K, V and Q); the product is divided back by
// both in f32 (alpha / (sa sb)). A or B may also come as f16 copies made
// beforehand (half.ts: the same rounded values, half the bytes to read; a copy of A already
// scaled), which every kernel family reads as they are.
// Reference: matmul.ref.ts (with f16: true for the rounded operands).
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { ParamWriter, windowOf, type KernelDef } from '../engine/kernel.js';
import { ABSMAX_PARTS, absmaxParts } from './absmax.js';
import { smxDef, smxShape } from './matmul-smx.js';
import { SPLITK_REDUCE, splitKReduce } from './matmul-splitk.js';
import { halfOctave } from '../engine/tuner.js';
import { tileName, type ActEpilogue, type Causal, type F16Staging, type MatmulTile, type VecFlags } from './matmul-shared.js';
import { gelu, geluBackward, geluKernelName, type GeluOp } from './activations.js';
import { envSwitch } from '../engine/env.js';
import { regDef, regShape, regSharedBytes, simpleDef } from './matmul-simt.js';

export { tileName, type MatmulTile };

export interface MatmulArgs {
  /** f32 tensors; with precision 'f16', a or b may instead be an f16 copy (half.ts). */
  a: Tensor; b: Tensor; c: Tensor;
  M: number; N: number; K: number;
  transA?: boolean; transB?: boolean;
  lda?: number; ldb?: number; ldc?: number;
  batch?: number; strideA?: number; strideB?: number; strideC?: number;
  /**
   * A second batch level: `outer` groups of `batch` products, product (o, i) of each operand at
   * o * outerStride + i * stride (attention-unfused.ts: batch rows x heads, whose strides differ).
   */
  outer?: number; outerStrideA?: number; outerStrideB?: number; outerStrideC?: number;
  /**
   * B shared by groups of products (grouped-query attention: nRep query heads read one kv head):
   * product i of a batch reads B's matrix i / groupB (strideB apart), A and C their own as usual. The
   * batch must be a whole number of groups. Default 1.
   */
  groupB?: number;
  bias?: Tensor;
  accumulate?: boolean;
  alpha?: number;
  /** Element offsets into a, b, c, bias (used by the splitter; callers can use views instead). */
  offA?: number; offB?: number; offC?: number; offBias?: number;
  /** Tile override (tests exercise every tiling on any adapter); default chooseTile(). */
  tile?: MatmulTile;
  /**
   * Operand precision; default gpu.matmulPrecision. 'f16': A and B are rounded to f16 and their
   * products summed in f32 (tensor cores where the adapter has an f16 subgroup-matrix config,
   * matmul-smx.ts; elsewhere the f32 kernels round their operands the same way). Products with M or N
   * under 16 (bias gradients) stay f32: they are bandwidth-bound and gain nothing.
   */
  precision?: 'f32' | 'f16';
  /**
   * f16 only: multiply A by a power of two chosen from its max |A| (absmax.ts) before rounding, and
   * divide the result by it, so small-magnitude operands (gradients) keep f16's full precision
   * instead of falling into its subnormals. A per-tensor, per-call loss scale with nothing to tune.
   * A Tensor: partial maxima already computed over (at least) A by absmaxOf(), shared by the
   * products that take the same A (dx and dW both take dy).
   */
  scaleA?: boolean | Tensor;
  /**
   * f16 only: the same for B, with partial maxima computed over (at least) B (absmaxOf): for a small
   * B, such as dO in attention's dV = P^T dO (attention-unfused.ts). An f16 copy of B with it must
   * hold B times that scale.
   */
  scaleB?: Tensor;
  /**
   * The tuner's name of an outer candidate this product is part of (attention-unfused.ts, timed as a
   * whole against another way of computing the same thing): its dispatches are timed under it, with
   * the tiling the tuner already chose for this product's key, else the rule's (no tuning of its own
   * while the outer choice is measured).
   */
  timing?: string;
  /**
   * A's rows may be read, and C's written, past the matrix along their contiguous storage dimension
   * up to the next multiple of 4 (inside the leading dimension): A holds finite values there (they
   * meet only B's rows past K, read as 0, or make output rows past M, not stored), C's pad is
   * scratch that no one reads as data (C has no bias then). So such operands move as vec4 whatever
   * that dimension (attention-unfused.ts: score rows of width T, 16-float aligned; A there is causal
   * 'lowerA' too, whose pad lies above the diagonal and loads as 0 whatever it holds).
   */
  padA?: boolean; padC?: boolean;
  /**
   * A causal product (matmul-shared.ts Causal), for attention's scores kept as a square per head:
   * 'lowerC' computes only the output tiles that meet C's lower triangle (n <= m; C above it is left
   * as it was, or holds the full product in the diagonal tiles), 'lowerA' takes A as lower triangular
   * as stored and neither reads nor multiplies the rest (entries above its diagonal may hold
   * anything, NaN included). Such a product is never split along M, N or K (binding limit, split-K),
   * and a scaled A takes partial maxima computed over its lower triangle (scaleA as a Tensor).
   */
  causal?: Causal;
  /**
   * GELU applied as C is stored (GPT-NeoX's MLP). op 'gelu' or 'gelu_tanh': C = act(product + bias),
   * and `pre`, when given, gets product + bias (what the backward takes); op 'gelu_bwd' or
   * 'gelu_tanh_bwd': C = product * act'(pre). Fused into the f32 SIMT kernels' stores (no pass over C
   * of its own). Where the product runs elsewhere (f16 operands, an operand over the binding limit, a
   * forced tensor-core or split-K tiling, SRK_FUSED_ACT=0), the product is stored and activations.ts
   * runs the op as a pass of its own with the same WGSL functions; that pass also writes C's partial
   * maxima into `absmax` when given (f16 precision: the next product's operand scale), so a product
   * with `absmax` always takes it. C and pre: whole contiguous [M, N] f32 tensors in different buffers;
   * no batch, accumulate, padding or causal mask.
   */
  act?: { op: GeluOp; pre?: Tensor; absmax?: Tensor };
  /** The profiler's name for this product's dispatch (default the kernel's name; bench step --profile
   *  sums by the name's first word): attention-unfused.ts files its products under attention. */
  profileLabel?: string;
}

export const SIMPLE_64: MatmulTile = { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4 };
// H100, 2026-11-27 (bench/RESULTS.md): at 4096^3 reg 128x128 runs 18.3 TFLOP/s with BK 8 and 13.5
// with BK 16; at 1024^3 (64 tiles) reg 64x64 runs 21.5 against 13-14 for the 128x128 forms.
const REG_128: MatmulTile = { BM: 128, BN: 128, BK: 8, TM: 8, TN: 8, kind: 'reg' };
const REG_64: MatmulTile = { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4, kind: 'reg' };
// Tensor-core tilings (f16 operands): 8 subgroups of 64x32 (4x2 accumulators) or 4 of 32x32.
export const SMX_128: MatmulTile = { BM: 128, BN: 128, BK: 32, TM: 64, TN: 32, kind: 'smx' };
export const SMX_64: MatmulTile = { BM: 64, BN: 64, BK: 32, TM: 32, TN: 32, kind: 'smx' };

// Measuring switches, read once (not on every dispatch): SRK_MATMUL=simple|reg forces an f32 kernel
// family; SRK_SMX_SAFE=1 gives the tensor-core kernel's simplest form (one stage, scratch epilogue,
// operand scales reduced without subgroup operations). Gpu.create refuses a malformed value before
// there is a device (engine/env.ts checkEnvironment), so none reaches a product.
const FORCED_FAMILY = (process.env.SRK_MATMUL || undefined) as 'simple' | 'reg' | undefined;
const SMX_SAFE = process.env.SRK_SMX_SAFE === '1';

// What the tensor-core self-check (matmul-selfcheck.ts) decided for an adapter: the safe forms
// instead of the default ones (as SRK_SMX_SAFE=1), and tuner candidates left out for good.
const SAFE_FORMS = new WeakSet<Gpu>();
const EXCLUDED = new WeakMap<Gpu, Set<MatmulTile>>();
/** Whether the tensor-core kernels run in their safe forms on gpu (SRK_SMX_SAFE=1, or the self-check's finding). */
export function smxSafe(gpu: Gpu): boolean { return SMX_SAFE || SAFE_FORMS.has(gpu); }
/** Runs gpu's tensor-core products in their safe forms from now on (the self-check's finding; tests). */
export function useSafeTensorCoreForms(gpu: Gpu, on = true): void { if (on) SAFE_FORMS.add(gpu); else SAFE_FORMS.delete(gpu); }
/** Leaves a tiling (one of SMX_CANDIDATES, or a split form from splitForms) out of gpu's tuner candidates. */
export function excludeTiling(gpu: Gpu, tile: MatmulTile): void {
  let set = EXCLUDED.get(gpu);
  if (!set) EXCLUDED.set(gpu, (set = new Set()));
  set.add(tile);
}
/** Whether a tensor-core tiling fits gpu's workgroup limits in every transpose (as fitTile decides it per product). */
export function smxTilingFits(gpu: Gpu, tile: MatmulTile): boolean {
  return !!gpu.smxMode && [false, true].every((ta) => [false, true].every((tb) => smxStages(gpu, tile, ta, tb) !== undefined));
}

/**
 * The workgroup-memory stages of a tensor-core tiling for these transposes on gpu, or undefined where
 * it exceeds the adapter's workgroup limits. One stage unless the tiling asks for two: on the H100
 * (bench/RESULTS.md, 2026-11-27) the two-stage form ran the dx and dW products of a training step ~50%
 * slower (47 KiB of workgroup memory per workgroup against 28). The safe forms have one stage.
 * `scales`: the operand scales the kernel reduces (A's, B's); smxShape counts one reduction array of
 * `threads` floats, and the form without subgroups declares one per scale.
 */
function smxStages(gpu: Gpu, tile: MatmulTile, transA: boolean, transB: boolean, scales = 1): 1 | 2 | undefined {
  const stages = smxSafe(gpu) ? 1 : tile.stages ?? 1;
  const s = smxShape(tile, gpu.fixedSubgroupSize, transA, transB, stages);
  const lim = gpu.limits;
  const bytes = s.sharedBytes + 4 * s.threads * Math.max(0, scales - 1);
  return s.threads <= lim.maxComputeInvocationsPerWorkgroup && bytes <= lim.maxComputeWorkgroupStorageSize ? stages : undefined;
}
/** For tests: forgets what the self-check decided for gpu. */
export function resetTensorCoreFindings(gpu: Gpu): void { SAFE_FORMS.delete(gpu); EXCLUDED.delete(gpu); }

/**
 * Tile sizes, where the tuner does not choose (engine/tuner.ts). Measured on an H100 (bench/RESULTS.md,
 * `srk bench matmul --tiles`; the figures beside REG_128 above): the simple kernel with 64x64 tiles and
 * 4x4 outputs per thread runs at ~18 TFLOP/s at 4096^3, while its 128x128/8x8 form falls to ~1.4 (the
 * 64 accumulators of a loop-indexed array spill). On lavapipe the simple 64x64 is the fastest, so CPU
 * adapters keep it. On other adapters the register-tiled kernel ('reg') is chosen: 128x128 tiles
 * (8x8 per thread) when the product has enough of them to fill a large GPU, 64x64 (4x4) otherwise;
 * the simple 64x64 stays the fallback wherever a 'reg' tiling cannot run (adapter limits).
 */
export function chooseTile(gpu: Gpu, M: number, N: number): MatmulTile {
  const forced = FORCED_FAMILY;
  if (forced === 'simple') return SIMPLE_64;
  if (gpu.isCpuAdapter && forced !== 'reg') return SIMPLE_64;
  // 264 = two workgroups per SM on a 132-SM H100 (a guess at what keeps every SM busy).
  const big = Math.ceil(M / 128) * Math.ceil(N / 128) >= 264;
  return big ? REG_128 : REG_64;
}

interface Problem extends Required<Omit<MatmulArgs, 'bias' | 'a' | 'b' | 'c' | 'tile' | 'precision' | 'scaleA' | 'scaleB' | 'timing' | 'profileLabel' | 'causal' | 'act'>> {
  a: Tensor; b: Tensor; c: Tensor; bias?: Tensor; tile?: MatmulTile; precision?: 'f32' | 'f16'; scaleA?: boolean | Tensor; scaleB?: Tensor;
  causal?: Causal; act?: MatmulArgs['act'];
  profileLabel?: string;
  /** The tuner's name for the candidate this (sub-)problem is part of (tuner.ts). */
  timing?: string;
}

/** Number of elements spanned by `batch` row-major matrices of `rows` x `cols` (leading dim ld),
 *  in `outer` groups `outerStride` apart. */
function span(batch: number, stride: number, rows: number, cols: number, ld: number, outer = 1, outerStride = 0): number {
  if (batch === 0 || rows === 0 || cols === 0 || outer === 0) return 0;
  return (outer - 1) * outerStride + (batch - 1) * stride + (rows - 1) * ld + cols;
}

function problem(gpu: Gpu, args: MatmulArgs): Problem {
  const transA = args.transA ?? false; const transB = args.transB ?? false;
  const { M, N, K } = args;
  const batch = args.batch ?? 1;
  // Every field named, no `{ ...args, ... }`: in Node 20's V8 each property written after an object
  // spread costs ~1 us (a slow store per property), and this object's 20 took ~22 us a matmul, more
  // host time than Dawn spends recording the dispatch (bench/RESULTS.md, thirteenth session).
  const p: Problem = {
    a: args.a, b: args.b, c: args.c, bias: args.bias, M, N, K, transA, transB, batch,
    lda: args.lda ?? (transA ? M : K), ldb: args.ldb ?? (transB ? K : N), ldc: args.ldc ?? N,
    strideA: args.strideA ?? M * K, strideB: args.strideB ?? K * N, strideC: args.strideC ?? M * N,
    accumulate: args.accumulate ?? false, alpha: args.alpha ?? 1, padA: args.padA ?? false, padC: args.padC ?? false,
    offA: args.offA ?? 0, offB: args.offB ?? 0, offC: args.offC ?? 0, offBias: args.offBias ?? 0,
    groupB: args.groupB ?? 1, outer: args.outer ?? 1, outerStrideA: args.outerStrideA ?? 0, outerStrideB: args.outerStrideB ?? 0, outerStrideC: args.outerStrideC ?? 0,
    tile: args.tile, precision: args.precision, scaleA: args.scaleA, scaleB: args.scaleB,
    timing: args.timing, profileLabel: args.profileLabel, causal: args.causal, act: args.act,
  };
  if (p.act) checkAct(p);
  if (!(Number.isInteger(p.groupB) && p.groupB >= 1 && batch % p.groupB === 0)) {
    throw new RangeError(`matmul: groupB ${p.groupB} must be a whole number dividing the batch ${batch}`);
  }
  if (p.causal !== undefined && p.causal !== 'lowerC' && p.causal !== 'lowerA') throw new TypeError(`matmul: causal is ${String(p.causal)}: expected lowerC or lowerA`);
  // A's maxima found here would span its whole window, the ignored upper triangle included.
  if (p.causal === 'lowerA' && p.scaleA === true) {
    throw new TypeError('matmul: a lower-triangular A is scaled by partial maxima of its lower triangle: pass them as scaleA');
  }
  // Operand types: f32, or f16 copies (half.ts) in the f16 precision, a copy of A holding A times
  // the scale of the partial maxima passed as scaleA.
  for (const [t, what] of [[p.a, 'A'], [p.b, 'B']] as const) {
    if (t.dtype !== 'f32' && t.dtype !== 'f16') throw new TypeError(`matmul: ${what} is ${t}: expected f32 or an f16 copy`);
  }
  if (p.c.dtype !== 'f32') throw new TypeError(`matmul: C is ${p.c}: expected f32`);
  if (p.a.dtype === 'f16' || p.b.dtype === 'f16') {
    if ((p.precision ?? gpu.matmulPrecision) !== 'f16') throw new TypeError('matmul: f16 operand copies need the f16 precision');
    if (!gpu.features.shaderF16) throw new Error('matmul: f16 operand copies need an adapter with shader-f16');
    if (p.a.dtype === 'f16' && p.scaleA === true) {
      throw new TypeError('matmul: an f16 copy of A is scaled when it is made (half.ts): pass the partial maxima it was scaled by as scaleA');
    }
  }
  // Shape checks: every access must stay inside its tensor.
  const need = (t: Tensor, off: number, n: number, what: string) => {
    if (off + n > t.numel) {
      throw new RangeError(`matmul: ${what} needs ${off + n} elements but ${t} has ${t.numel} ` +
        `(M=${M} N=${N} K=${K} batch=${batch} transA=${transA} transB=${transB})`);
    }
  };
  if (p.padC && p.bias) throw new TypeError('matmul: a padded C takes no bias');
  for (const [pad, ld, cols, what] of [[p.padA, p.lda, transA ? M : K, 'A'], [p.padC, p.ldc, N, 'C']] as const) {
    if (pad && ld < quad(cols)) throw new RangeError(`matmul: padded ${what} needs a leading dimension of at least ${quad(cols)} (has ${ld})`);
  }
  need(p.a, p.offA, spanA(p), 'A');
  need(p.b, p.offB, spanB(p), 'B');
  need(p.c, p.offC, spanC(p), 'C');
  if (p.bias) need(p.bias, p.offBias, N, 'bias');
  return p;
}

const GELU_OPS: readonly GeluOp[] = ['gelu', 'gelu_tanh', 'gelu_bwd', 'gelu_tanh_bwd'];

/** The activation's rules (MatmulArgs.act). */
function checkAct(p: Problem): void {
  const { op, pre } = p.act!;
  if (!GELU_OPS.includes(op)) throw new TypeError(`matmul: act ${String(op)}: expected ${GELU_OPS.join(', ')}`);
  if (op.endsWith('_bwd') && !pre) throw new TypeError(`matmul: act ${op} needs the forward's input as pre`);
  if (p.batch !== 1 || p.outer !== 1 || p.accumulate || p.padC || p.causal || p.ldc !== p.N || p.offC !== 0) {
    throw new TypeError('matmul: an activation takes a whole [M, N] C: no batch, accumulate, padding, causal mask or offset');
  }
  for (const [t, what] of [[p.c, 'C'], [pre, 'pre']] as const) {
    if (t && (t.dtype !== 'f32' || t.numel !== p.M * p.N)) throw new RangeError(`matmul: act needs ${what} as f32 [${p.M}, ${p.N}], got ${t}`);
  }
  // Their binding windows start at aligned offsets, so two tensors of one buffer could meet in them even
  // apart; WebGPU refuses a writable binding that meets another in one dispatch.
  if (pre && pre.buffer === p.c.buffer) throw new RangeError(`matmul: act's pre ${pre} shares a buffer with C ${p.c}`);
}

/** The kernels' form of an activation (ActEpilogue): what they do with pre. */
function actEpilogue(act: NonNullable<Problem['act']>): ActEpilogue {
  return { op: act.op, pre: !act.pre ? 'none' : act.op.endsWith('_bwd') ? 'read' : 'write' };
}

/**
 * Whether a product with an activation runs it in the f32 SIMT kernels' epilogue: f32 operands, no
 * maxima wanted, every operand within one binding window (the splits along K add the second half
 * onto the first), no forced tensor-core or split-K tiling, SRK_FUSED_ACT not 0.
 */
function actFused(gpu: Gpu, p: Problem): boolean {
  if (envSwitch('SRK_FUSED_ACT') === '0' || p.act!.absmax || f16Operands(gpu, p)) return false;
  if (p.tile && (p.tile.kind === 'smx' || (p.tile.splitK ?? 1) > 1)) return false;
  const limit = Math.floor((gpu.maxBinding - gpu.bindingAlign) / 4);
  return Math.max(spanA(p), spanB(p), spanC(p)) <= limit;
}

/** A product with an activation as two passes: the product (into pre for a forward that keeps it), then activations.ts's. */
function runActApart(gpu: Gpu, p: Problem, dry?: DryRun): void {
  const { op, pre, absmax } = p.act!;
  const c = p.c;
  const bwd = op.endsWith('_bwd');
  const kind = op.startsWith('gelu_tanh') ? 'tanh' : 'erf';
  // (p is this call's own object: problem() made it.)
  p.act = undefined;
  if (!bwd && pre) p.c = pre;
  run(gpu, p, dry);
  if (dry) { dry.names.push(geluKernelName(op, bwd || !pre, !!absmax)); return; }
  if (bwd) geluBackward(gpu, pre!, c, c, kind, absmax);
  else gelu(gpu, pre ?? c, c, kind, absmax);
}

/** n rounded up to a multiple of 4. */
const quad = (n: number) => Math.ceil(n / 4) * 4;
/** Elements A's and C's windows span: with padding (padA, padC), their last row to the quad's end. */
function spanA(p: Problem): number {
  const cols = p.transA ? p.M : p.K;
  return span(p.batch, p.strideA, p.transA ? p.K : p.M, p.padA ? quad(cols) : cols, p.lda, p.outer, p.outerStrideA);
}
/** Elements B's window spans: one matrix per group of products (groupB). */
function spanB(p: Problem): number {
  return span(p.batch / p.groupB, p.strideB, p.transB ? p.N : p.K, p.transB ? p.K : p.N, p.ldb, p.outer, p.outerStrideB);
}
function spanC(p: Problem): number {
  return span(p.batch, p.strideC, p.M, p.padC ? quad(p.N) : p.N, p.ldc, p.outer, p.outerStrideC);
}

export function matmul(gpu: Gpu, args: MatmulArgs): void {
  exec(gpu, problem(gpu, args));
}

/** Runs a problem: with an activation fused where the kernels can (actFused), else in two passes. */
function exec(gpu: Gpu, p: Problem, dry?: DryRun): void {
  if (p.act && !actFused(gpu, p)) runActApart(gpu, p, dry);
  else run(gpu, p, dry);
}

/** Names of the kernels matmul(gpu, args) would dispatch, in order; nothing is compiled or run (tests). */
export function matmulKernels(gpu: Gpu, args: MatmulArgs): string[] {
  const dry: DryRun = { names: [], defs: [] };
  exec(gpu, problem(gpu, args), dry);
  return dry.names;
}

/**
 * The definitions of the matmul kernels (not the split-K reduction or activation passes) that
 * matmul(gpu, args) would dispatch, nothing compiled or run: for building them ahead, asynchronously
 * (matmul-selfcheck.ts).
 */
export function matmulDefs(gpu: Gpu, args: MatmulArgs): KernelDef[] {
  const dry: DryRun = { names: [], defs: [] };
  exec(gpu, problem(gpu, args), dry);
  return dry.defs;
}

/** What a dry run records instead of dispatching: every kernel's name, and the matmul kernels' definitions. */
interface DryRun { names: string[]; defs: KernelDef[] }

/**
 * Operands the 'reg' kernel may read/write as vec4: every quad it touches (4 elements along the
 * contiguous storage dimension, starting at a multiple of 4) must start at a 16-byte boundary of
 * the binding and lie wholly inside or wholly outside the logical matrix. So: window base, leading
 * dimension, batch stride and the contiguous extent are all multiples of 4.
 */
function vecFlags(p: Problem, tile: MatmulTile, wa: { base: number; range: { size: number } },
  wb: { base: number; range: { size: number } }, wc: { base: number; range: { size: number } }, align: number): VecFlags {
  if (tile.vec4 === false || align % 16 !== 0) return { a: false, b: false, c: false };
  // size: whole quads of the element type (16 bytes of f32, 8 of an f16 copy).
  const ok = (t: Tensor, base: number, size: number, ld: number, stride: number, contiguous: number) =>
    base % 4 === 0 && size % (4 * t.elemBytes) === 0 && ld % 4 === 0 && (p.batch === 1 || stride % 4 === 0) && contiguous % 4 === 0;
  const o = (outerStride: number) => p.outer === 1 || outerStride % 4 === 0;
  return {
    a: ok(p.a, wa.base, wa.range.size, p.lda, p.strideA, p.padA ? quad(p.transA ? p.M : p.K) : p.transA ? p.M : p.K) && o(p.outerStrideA),
    b: ok(p.b, wb.base, wb.range.size, p.ldb, p.strideB, p.transB ? p.K : p.N) && o(p.outerStrideB),
    c: ok(p.c, wc.base, wc.range.size, p.ldc, p.strideC, p.padC ? quad(p.N) : p.N) && o(p.outerStrideC),
  };
}

interface FittedTile { tile: MatmulTile; stages: 1 | 2 }

/**
 * A tiling with its workgroup-memory stages where it can run this problem on this adapter, else
 * why not (smx needs f16 operands and the tensor-core feature; every tiling must fit the
 * adapter's workgroup limits).
 */
function fitTile(gpu: Gpu, tile: MatmulTile, p: Problem, f16: boolean): FittedTile | string {
  const lim = gpu.limits;
  if (tile.splitK !== undefined && tile.splitK > 1) {
    if (!Number.isInteger(tile.splitK)) return 'needs a whole number of K chunks';
    if (p.batch !== 1 || p.outer !== 1) return 'splits unbatched products only';
    if (p.causal) return 'splits no causal product';
    if (p.act) return 'fuses no activation (its reduction would apply it)';
    if (tile.splitK * p.M * p.N * 4 > gpu.maxBinding - gpu.bindingAlign) return 'needs a partial buffer over the binding limit';
    const base = fitTile(gpu, { ...tile, splitK: undefined }, p, f16);
    return typeof base === 'string' ? base : { tile, stages: base.stages };
  }
  // The f16 operand scales each reduce their partial maxima in a workgroup array (f16ScaleWgsl: at
  // most one float per thread).
  const scales = f16 ? (p.scaleA ? 1 : 0) + (p.scaleB ? 1 : 0) : 0;
  if (tile.kind === 'smx') {
    if (!f16) return 'needs precision f16 (and M, N >= 16)';
    if (!gpu.smxMode) return 'needs an f16 subgroup-matrix adapter';
    // (The safe forms, SRK_SMX_SAFE=1 or the self-check's finding, also turn off direct stores: run().)
    const stages = smxStages(gpu, tile, p.transA, p.transB, scales);
    return stages === undefined ? "exceeds this adapter's workgroup limits" : { tile, stages };
  }
  if (tile.kind === 'reg') {
    const { WX, WY, THREADS } = regShape(tile);
    const fits = (st: number) => regSharedBytes(tile, st) + 4 * THREADS * scales <= lim.maxComputeWorkgroupStorageSize;
    const stages = tile.stages ?? (fits(2) ? 2 : 1);
    if (!fits(stages) || THREADS > lim.maxComputeInvocationsPerWorkgroup ||
        WX > lim.maxComputeWorkgroupSizeX || WY > lim.maxComputeWorkgroupSizeY) {
      return "exceeds this adapter's workgroup limits";
    }
    return { tile, stages };
  }
  return { tile, stages: 1 };
}

// The tuner's candidates (tuner.ts): the tensor-core tilings for f16 on tensor cores, else the
// f32 register tilings the H100 sweeps found fastest somewhere (bench/RESULTS.md: 64x128 best at
// 1024^3, 128x128 BK 8 at 4096^3, the simple 64x64 ahead of reg 64x64 at 4096^3), and 128x128 with a
// 16-deep K step (half the barriers and twice the loads in flight per K step of BK 8, in 32 KiB of
// workgroup memory with two stages), and 128x128 and 64x64 with 8 x 4 lanes a warp (MatmulTile.lanes:
// fewer workgroup-memory wavefronts per multiply-add), and 128x256 with 8x16 per thread (a third fewer
// workgroup-memory reads per multiply-add than 8x8, at 128 accumulators a thread), and 128x128 on
// scalar accumulators (MatmulTile.scalarAcc); the last five added after run 7, where the f32 products
// ran at ~34 TFLOP/s against cuBLAS's 50.
const F32_CANDIDATES: MatmulTile[] = [REG_128, REG_64,
  { BM: 128, BN: 64, BK: 16, TM: 8, TN: 4, kind: 'reg' }, { BM: 64, BN: 128, BK: 16, TM: 4, TN: 8, kind: 'reg' }, SIMPLE_64,
  { ...REG_128, BK: 16 }, { ...REG_128, lanes: '8x4' }, { ...REG_64, lanes: '8x4' },
  { BM: 128, BN: 256, BK: 8, TM: 8, TN: 16, kind: 'reg' }, { BM: 128, BN: 256, BK: 8, TM: 8, TN: 16, kind: 'reg', lanes: '8x4' },
  { ...REG_128, scalarAcc: true }];
// Short K (attention's score products, K = the head size): the whole K in two 32-deep steps of one
// stage (32 KiB of workgroup memory), 4 barriers a tile where BK 8 has 9 (run 7: the 410m f32 score
// products ran at ~17 TFLOP/s, a third of the long products' rate).
const SHORT_K: MatmulTile = { ...REG_128, BK: 32, stages: 1 };
// Tensor cores: the two rule tilings, the other subgroup layout and a 128x64 tile, a 64-deep K step, and
// two stages where they fit (slower for the H100's dx and dW in run 4, bench/RESULTS.md; timed per shape
// here); and 64x64 per subgroup (16 accumulators: each loaded fragment used 4 times), in 128x128,
// 256x128 and 128x256 tiles, the last two reading a quarter less of the operands from L2 per output
// than 128x128 tiles (run 5's tensor-core products, 120-140 TFLOP/s alone, moved ~4 TB/s of f32
// operands from L2).
// Every one is checked on a tensor-core GPU by test/engine/matmul-f16.test.ts.
export const SMX_CANDIDATES: readonly MatmulTile[] = [SMX_128, SMX_64,
  { ...SMX_128, TM: 32, TN: 64 }, { BM: 128, BN: 64, BK: 32, TM: 32, TN: 32, kind: 'smx' },
  { ...SMX_64, BK: 64 }, { ...SMX_64, stages: 2 },
  { ...SMX_128, TM: 64, TN: 64 }, { BM: 256, BN: 128, BK: 32, TM: 64, TN: 64, kind: 'smx' },
  { BM: 128, BN: 256, BK: 32, TM: 64, TN: 64, kind: 'smx' }];

/**
 * The rule's tiling first, then the other candidates for this kind of product (none without a
 * tuner). Products with few output tiles and a long K (weight gradients) also try the rule's
 * tiling with K split in 2, 4 and 8 (matmul-splitk.ts; 2 for shapes whose tiles fill one and a half
 * waves of the GPU, as the 410m step's N = 1024 products on 128x128 tiles: 392 tiles on an H100's 264 slots;
 * K from 1024 on since run 7, for the attention output's products, K = 1024 at 410m). f32 products
 * with K <= 256 also try SHORT_K.
 */
function tileCandidates(gpu: Gpu, rule: MatmulTile, p: Problem): MatmulTile[] {
  // SRK_SMX_SAFE=1 (scripts/gpu-check.sh sets it when a tensor-core test fails) or emulated tensor
  // cores (for checking, never fast): the rule's tiling only.
  if (!gpu.tuner || FORCED_FAMILY || (rule.kind === 'smx' && (smxSafe(gpu) || gpu.smxMode === 'emulated'))) return [rule];
  const pool = rule.kind === 'smx' ? SMX_CANDIDATES : F32_CANDIDATES;
  const tiles = Math.ceil(p.M / rule.BM) * Math.ceil(p.N / rule.BN);
  const split = p.batch === 1 && p.outer === 1 && !p.causal && tiles < 528 && p.K >= 1024 ? splitForms(rule) : [];
  // A long-K product too small for the big tiles (run 7, 410m f32: the attention and QKV weight
  // gradients, K = 6152 tokens, kept 64x64 tiles at ~31 TFLOP/s, while 128x128 tiles, the faster kernel
  // on the large products, left SMs idle with 64-192 tiles): those tiles split along K as well.
  const splitBig = split.length && rule === REG_64 && p.K >= 4096 ? REG_128_SPLIT : [];
  const short = rule.kind !== 'smx' && p.K <= 256 ? [SHORT_K] : [];
  // The tuner samples candidates in this order, in turn, for two steps (tuner.ts): a key with few
  // calls a step (the output layer's chunks) samples only the first ones, so the forms made for
  // its kind of product come right after the rule.
  const all = [rule, ...split, ...splitBig, ...short, ...pool.filter((t) => t !== rule)];
  const excluded = EXCLUDED.get(gpu);
  return excluded ? all.filter((t) => t === rule || !excluded.has(t)) : all;
}

/** The unsplit tiling of each split-K tiling (runSplitK). */
const SPLIT_BASES = new WeakMap<MatmulTile, MatmulTile>();
/** Kernel definitions by tiling object, then defOf()'s key of the other arguments (run()). */
const DEFS = new WeakMap<MatmulTile, Map<string, KernelDef>>();

// Split-K forms of each rule tiling, made once (not per call: host time, see problem()).
const SPLIT_FORMS = new Map<MatmulTile, MatmulTile[]>();
/** The split-K tilings (K in 2, 4, 8) of a rule tiling, as the tuner's candidates hold them. */
export function splitForms(rule: MatmulTile): MatmulTile[] {
  let forms = SPLIT_FORMS.get(rule);
  if (!forms) SPLIT_FORMS.set(rule, (forms = [2, 4, 8].map((S) => ({ ...rule, splitK: S }))));
  return forms;
}
const REG_128_SPLIT: MatmulTile[] = [2, 4].map((S) => ({ ...REG_128, splitK: S }));

/** The tilings a product may run with, the rule's first (the tuner's candidates; the rule alone without one). */
function candidateFits(gpu: Gpu, p: Problem, f16: boolean): FittedTile[] {
  const rule = f16 && gpu.smxMode ? (Math.ceil(p.M / 128) * Math.ceil(p.N / 128) >= 264 ? SMX_128 : SMX_64) : chooseTile(gpu, p.M, p.N);
  const fits = tileCandidates(gpu, rule, p)
    .map((t) => fitTile(gpu, t, p, f16)).filter((f): f is FittedTile => typeof f !== 'string');
  // A rule tiling that does not fit falls back to the simple kernel (always within limits).
  if (fits.length === 0 || fits[0].tile !== rule) {
    fits.splice(0, fits.length, { tile: SIMPLE_64, stages: 1 }, ...fits.filter((f) => f.tile !== SIMPLE_64));
  }
  return fits;
}

/**
 * Names of the tilings the tuner would time for matmul(gpu, args) (the rule's first), for tests;
 * nothing is compiled or run. A product the binding limit splits is named as a whole.
 */
export function matmulCandidates(gpu: Gpu, args: MatmulArgs): string[] {
  const p = problem(gpu, args);
  return candidateFits(gpu, p, f16Operands(gpu, p)).map((f) => tileName(f.tile));
}

/** Whether a product takes f16 operands: asked for and big enough to be compute-bound; f16 copies (half.ts) whatever the size. */
function f16Operands(gpu: Gpu, p: Problem): boolean {
  return roundsToF16(gpu, p.precision, p.M, p.N) || ((p.precision ?? gpu.matmulPrecision) === 'f16' && (p.a.dtype === 'f16' || p.b.dtype === 'f16'));
}

/** Whether an M x N product of f32 operands in `precision` (default the gpu's) rounds them to f16: not below 16 x 16
 *  (too small to be compute-bound). For work that must see its operands as the product does (attention's D). */
export function roundsToF16(gpu: Gpu, precision: 'f32' | 'f16' | undefined, M: number, N: number): boolean {
  return (precision ?? gpu.matmulPrecision) === 'f16' && M >= 16 && N >= 16;
}

/**
 * The tuner's key: layout, operand precision, and the shape in half-octave buckets, so the many
 * token counts of a run (micro-batches of varied lengths) share a few keys; the bias and
 * accumulate flags change the epilogue, so they are part of it.
 */
function tuneKey(p: Problem, f16: boolean): string {
  const b = halfOctave;
  const copies = `${p.a.dtype === 'f16' ? ' copyA' : ''}${p.b.dtype === 'f16' ? ' copyB' : ''}`;
  return `matmul ${p.transA ? 't' : 'n'}${p.transB ? 't' : 'n'}${f16 ? ' f16' : ''}${f16 && p.scaleA ? ' scaled' : ''}${f16 && p.scaleB ? ' scaledB' : ''}${copies}` +
    `${p.bias ? ' bias' : ''}${p.accumulate ? ' acc' : ''}${p.causal ? ` ${p.causal}` : ''}${p.act ? ` ${p.act.op}${p.act.pre ? ' pre' : ''}` : ''}${p.groupB > 1 ? ` groupB ${p.groupB}` : ''} 2^(${b(p.M)},${b(p.N)},${b(p.K)})${p.batch * p.outer > 1 ? ` x2^${b(p.batch * p.outer)}` : ''}`;
}

// Dispatches one problem, or splits it when an operand's binding window would be too large:
// first across the batch, then along the storage-row dimension of the largest operand (rows of
// C and plain A split M; rows of transposed B split N; rows of transposed A or plain B split K,
// the second half accumulating onto the first).
function run(gpu: Gpu, p: Problem, dry?: DryRun): void {
  const { M, N, K, batch } = p;
  if (M === 0 || N === 0 || batch === 0 || p.outer === 0) return;
  const limit = Math.floor((gpu.maxBinding - gpu.bindingAlign) / 4);
  const sA = spanA(p);
  const sB = spanB(p);
  const sC = spanC(p);
  if (Math.max(sA, sB, sC) > limit) {
    if (p.act) throw new Error('matmul: internal: a fused activation reached the binding-limit split (actFused)');
    if (p.outer > 1) { // the outer level first, then the batch, then the matrices
      const h = Math.floor(p.outer / 2);
      run(gpu, { ...p, outer: h }, dry);
      run(gpu, { ...p, outer: p.outer - h, offA: p.offA + h * p.outerStrideA, offB: p.offB + h * p.outerStrideB, offC: p.offC + h * p.outerStrideC }, dry);
      return;
    }
    if (batch > 1) {
      // Whole groups of a shared B (groupB) apart; one group alone into two groups that read its B.
      const g = p.groupB;
      if (batch > g) {
        const h = Math.floor(batch / (2 * g)) * g;
        run(gpu, { ...p, batch: h }, dry);
        run(gpu, { ...p, batch: batch - h, offA: p.offA + h * p.strideA, offB: p.offB + (h / g) * p.strideB, offC: p.offC + h * p.strideC }, dry);
      } else {
        const h = Math.floor(batch / 2);
        run(gpu, { ...p, batch: h, groupB: h }, dry);
        run(gpu, { ...p, batch: batch - h, groupB: batch - h, offA: p.offA + h * p.strideA, offC: p.offC + h * p.strideC }, dry);
      }
      return;
    }
    // Split along a matrix dimension, a causal product's diagonal would move with the offsets.
    if (p.causal) throw new RangeError(`matmul: a causal product (${p.causal}) over the binding limit must be split by its caller (M=${M} N=${N} K=${K})`);
    const worst = sC >= sA && sC >= sB ? 'C' : sA >= sB ? 'A' : 'B';
    const dim = worst === 'C' ? 'M' : worst === 'A' ? (p.transA ? 'K' : 'M') : (p.transB ? 'N' : 'K');
    if (dim === 'M' && M > 1) {
      const h = Math.floor(M / 2);
      run(gpu, { ...p, M: h }, dry);
      run(gpu, { ...p, M: M - h, offA: p.offA + h * (p.transA ? 1 : p.lda), offC: p.offC + h * p.ldc }, dry);
      return;
    }
    if (dim === 'N' && N > 1) {
      const h = Math.floor(N / 2);
      run(gpu, { ...p, N: h, padC: false }, dry); // its pad is the second half's first columns
      run(gpu, { ...p, N: N - h, offB: p.offB + h * (p.transB ? p.ldb : 1), offC: p.offC + h, offBias: p.offBias + h }, dry);
      return;
    }
    if (dim === 'K' && K > 1) {
      const h = Math.floor(K / 2);
      run(gpu, { ...p, K: h }, dry);
      run(gpu, { ...p, K: K - h, accumulate: true, bias: undefined,
        offA: p.offA + h * (p.transA ? p.lda : 1), offB: p.offB + h * (p.transB ? 1 : p.ldb) }, dry);
      return;
    }
    throw new RangeError(`matmul: one row of an operand exceeds the binding limit (M=${M} N=${N} K=${K})`);
  }
  const halfA = p.a.dtype === 'f16'; const halfB = p.b.dtype === 'f16';
  const f16 = f16Operands(gpu, p);
  const smx = gpu.smxMode;
  const sgSize = gpu.fixedSubgroupSize;
  // The tiling: the caller's, else the tuner's pick among the candidates (tuner.ts), else the rule.
  let tile: MatmulTile;
  let stages: 1 | 2;
  let tuning = p.timing;
  // A tuner's pick other than the rule, run only once its kernel is known to build.
  let candidate: { key: string; labels: string[]; index: number; rule: FittedTile } | undefined;
  if (p.tile) {
    const fit = fitTile(gpu, p.tile, p, f16);
    if (typeof fit === 'string') throw new RangeError(`matmul: tiling ${tileName(p.tile)} ${fit}`);
    ({ tile, stages } = fit);
  } else {
    const fits = candidateFits(gpu, p, f16);
    let index = 0;
    if (gpu.tuner && fits.length > 1) {
      const key = tuneKey(p, f16);
      const labels = fits.map((f) => tileName(f.tile));
      // A dry run (matmulKernels) names what a tuned key dispatches, and times nothing; a product
      // timed as part of an outer candidate (p.timing) takes the choice made, else the rule.
      if (dry || p.timing !== undefined) index = gpu.tuner.table.chosen(key, labels) ?? 0;
      else {
        ({ index, timing: tuning } = gpu.tuner.pick(key, labels));
        // A candidate other than the rule, while it is being timed, runs once the adapter has
        // compiled it (kernel.ts checked()): one the driver refuses must cost its place among the
        // candidates, not the step. A choice made (here, or loaded from this run's tuning.json on
        // the same adapter) runs as chosen, so a resumed run dispatches what the first one did.
        if (index > 0 && tuning !== undefined) candidate = { key, labels, index, rule: fits[0] };
      }
    }
    ({ tile, stages } = fits[index]);
  }
  if (tile.splitK !== undefined && tile.splitK > 1) {
    // A split candidate being timed runs once all its kernels are built, as a single-kernel one does
    // (below): else the rule runs in its place, untimed.
    if (!candidate || dry || splitKernelsBuilt(gpu, p, tile, candidate)) { runSplitK(gpu, p, tile, tuning, dry); return; }
    ({ tile, stages } = candidate.rule);
    tuning = undefined;
    candidate = undefined;
  }
  const wa = windowOf(gpu, p.a, p.offA, p.offA + Math.max(1, sA));
  const wb = windowOf(gpu, p.b, p.offB, p.offB + Math.max(1, sB));
  const wc = windowOf(gpu, p.c, p.offC, p.offC + sC);
  // An activation epilogue (actFused: the f32 SIMT kernels) and its pre tensor, laid out as C.
  const act = p.act ? actEpilogue(p.act) : undefined;
  const wpre = p.act?.pre ? windowOf(gpu, p.act.pre, 0, sC) : undefined;
  const staging: F16Staging | undefined = !f16 ? undefined
    : { scaleA: !!p.scaleA, ...(p.scaleB ? { scaleB: true } : {}), ...(halfA ? { halfA } : {}), ...(halfB ? { halfB } : {}) };
  const defOf = (t: MatmulTile, st: 1 | 2): KernelDef => {
    const full = M % t.BM === 0 && N % t.BN === 0 && K % t.BK === 0 && K > 0;
    const vec = vecFlags(p, t, wa, wb, wc, gpu.bindingAlign);
    // pre moves in C's quads: vec4 only where its window allows them too.
    if (wpre && !(wpre.base % 4 === 0 && wpre.range.size % 16 === 0)) vec.c = false;
    // Every argument of the generators below in a short key, per tiling object: their memoDef keys
    // are JSON of all arguments, ~1-2 us a call (host time per dispatch).
    const safe = t.kind === 'smx' && smxSafe(gpu);
    const key = `${+p.transA}${+p.transB}${+full}${+vec.a}${+vec.b}${+vec.c}${st}${+!!p.bias}${sgSize}${smx ?? ''}${safe ? 'safe' : ''}` +
      (staging ? `${+staging.scaleA}${+!!staging.scaleB}${+!!staging.halfA}${+!!staging.halfB}` : '') + (p.causal ?? '') +
      (act ? ` ${act.op} ${act.pre}` : '') + (p.groupB > 1 ? ` g${p.groupB}` : '');
    let byKey = DEFS.get(t);
    if (!byKey) DEFS.set(t, (byKey = new Map()));
    let def = byKey.get(key);
    if (!def) {
      if (act && t.kind === 'smx') throw new Error('matmul: internal: an activation epilogue on tensor cores (actFused)');
      def = t.kind === 'smx' ? smxDef(t, p.transA, p.transB, full, vec, staging!, sgSize, st, !safe, smx === 'emulated', !safe, p.causal, p.groupB)
        : t.kind === 'reg' ? regDef(t, p.transA, p.transB, full, vec, st, staging, p.causal, act, p.groupB)
        : simpleDef(t, p.transA, p.transB, full, staging, p.causal, act, p.groupB);
      byKey.set(key, def);
    }
    return def;
  };
  let def = defOf(tile, stages);
  if (dry) { dry.names.push(def.name); dry.defs.push(def); return; }
  let kernel = candidate ? gpu.tuner!.built(gpu.kernels, candidate.key, candidate.labels, candidate.index, def) : gpu.kernels.get(def);
  if (!kernel) {
    ({ tile, stages } = candidate!.rule);
    tuning = undefined;
    def = defOf(tile, stages);
    kernel = gpu.kernels.get(def);
  }
  const bias = p.bias ?? gpu.placeholder();
  const wbias = p.bias ? windowOf(gpu, bias, p.offBias, p.offBias + N) : windowOf(gpu, bias);
  // The dynamic scale of A: partial maxima over exactly the window the kernel reads.
  const given = typeof p.scaleA === 'object' ? p.scaleA : undefined;
  const parts = !staging?.scaleA ? undefined : given ?? gpu.tensor([ABSMAX_PARTS], undefined, 'f32', 'matmul absmax');
  if (parts && !given) absmaxParts(gpu, p.a, p.offA, sA, parts);
  const wparts = parts ? windowOf(gpu, parts) : undefined;
  const wpartsB = staging?.scaleB ? windowOf(gpu, p.scaleB!) : undefined;
  // (An unbatched product's strides go as 0: the kernel multiplies them by batch index 0, and their
  // defaults M K, K N, M N pass 2^32 for a 7B model's MLP over a few hundred thousand tokens.)
  const one = batch === 1;
  const params = new ParamWriter()
    .u32(M, N, K, p.lda, p.ldb, p.ldc, wa.base, wb.base, wc.base, wbias.base,
      one ? 0 : p.strideA, one ? 0 : p.strideB, one ? 0 : p.strideC, p.accumulate ? 1 : 0, p.bias ? 1 : 0)
    .f32(p.alpha).u32(wparts?.base ?? 0, batch, p.outerStrideA, p.outerStrideB, p.outerStrideC, wpartsB?.base ?? 0, ...(act ? [wpre?.base ?? 0] : [])).bytes();
  const scaleRanges = [wparts, wpartsB, wpre].flatMap((w) => (w ? [w.range] : []));
  gpu.recorder.dispatch(kernel, [wa.range, wb.range, wc.range, wbias.range, ...scaleRanges], params,
    [Math.ceil(N / tile.BN), Math.ceil(M / tile.BM), batch * p.outer], tuning, p.profileLabel && `${p.profileLabel}_${def.name}`);
  // Later work may reuse the buffer: it runs after this dispatch in queue order.
  if (parts && !given) gpu.pool.release(parts);
}

/**
 * Whether every kernel of split candidate `tile` is built (KernelCache.checked): their compiles all
 * start here; the first not ready is handed to the tuner (Tuner.built), which takes the pick back
 * while it compiles, or leaves the candidate out for good where the adapter refused it.
 */
function splitKernelsBuilt(gpu: Gpu, p: Problem, tile: MatmulTile, c: { key: string; labels: string[]; index: number }): boolean {
  const dry: DryRun = { names: [], defs: [] };
  runSplitK(gpu, p, tile, undefined, dry);
  const defs = [...dry.defs, SPLITK_REDUCE];
  const notReady = defs.map((d) => gpu.kernels.checked(d)).findIndex((k) => !('pipeline' in k));
  if (notReady < 0) return true;
  gpu.tuner!.built(gpu.kernels, c.key, c.labels, c.index, defs[notReady]);
  return false;
}

/**
 * A split-K product (matmul-splitk.ts): the K chunks as one batched product into a partial buffer
 * [S, M, N] (chunks of a whole number of BK slices; a shorter last chunk as a second product),
 * then the ordered sum with C's epilogue (alpha, accumulate, bias). A scaled f16 A gets one
 * maximum over all of A, shared by the chunks.
 */
function runSplitK(gpu: Gpu, p: Problem, tile: MatmulTile, timing: string | undefined, dry?: DryRun): void {
  const { M, N, K } = p;
  let base = SPLIT_BASES.get(tile); // (one object per split tiling: run()'s definitions are cached by it)
  if (!base) SPLIT_BASES.set(tile, (base = { ...tile, splitK: undefined }));
  const Kc = Math.ceil(Math.ceil(K / tile.splitK!) / base.BK) * base.BK;
  const full = Math.floor(K / Kc);
  const rest = K - full * Kc;
  const S = full + (rest > 0 ? 1 : 0);
  // Element steps of one K chunk in A and B as stored.
  const stepA = p.transA ? Kc * p.lda : Kc;
  const stepB = p.transB ? Kc : Kc * p.ldb;
  // (A dry run too: the chunks' kernel variants depend on the partial buffer's windows.)
  const part = gpu.pool.acquire([S * M * N], 'f32', 'matmul split-K partials');
  const f16 = f16Operands(gpu, p);
  const sA = spanA({ ...p, batch: 1, outer: 1 }); // a padded A's pad included: the kernels read it
  let parts: Tensor | undefined;
  if (f16 && p.scaleA === true && !dry) {
    parts = gpu.tensor([ABSMAX_PARTS], undefined, 'f32', 'matmul absmax');
    absmaxParts(gpu, p.a, p.offA, sA, parts);
  }
  const sub: Problem = {
    ...p, tile: base, timing, c: part, offC: 0, ldc: N, strideC: M * N, accumulate: false, bias: undefined, offBias: 0, alpha: 1, padC: false,
    scaleA: parts ?? p.scaleA,
  };
  if (full > 0) run(gpu, { ...sub, K: Kc, batch: full, strideA: stepA, strideB: stepB }, dry);
  if (rest > 0) run(gpu, { ...sub, K: rest, batch: 1, offA: p.offA + full * stepA, offB: p.offB + full * stepB, offC: full * M * N }, dry);
  if (dry) { dry.names.push('matmul_splitk_reduce'); gpu.pool.release(part); return; }
  splitKReduce(gpu, {
    part: windowOf(gpu, part, 0, S * M * N), S, c: windowOf(gpu, p.c, p.offC, p.offC + span(1, p.strideC, M, N, p.ldc)), ldc: p.ldc,
    bias: p.bias ? windowOf(gpu, p.bias, p.offBias, p.offBias + N) : undefined,
    M, N, alpha: p.alpha, accumulate: p.accumulate, tuning: timing,
  });
  // Later work may reuse these: they are read before it in queue order.
  gpu.pool.release(part);
  if (parts) gpu.pool.release(parts);
}
