// Matrix multiply: C[b] = alpha * op(A[b]) op(B[b]) (+ C[b] if accumulate) (+ bias[n]).
//
// Logical shapes: op(A) [M, K], op(B) [K, N], C [M, N], bias [N]; `batch` independent products
// with element strides between them. Storage (row-major, leading dimensions lda/ldb/ldc):
//   A: transA ? [K, lda >= M] : [M, lda >= K];   B: transB ? [N, ldb >= K] : [K, ldb >= N].
// So the three products a linear layer needs are: y = x W^T (transB), dx = dy W, dW += dy^T x
// (transA, accumulate).
//
// Tiling: a workgroup computes a BM x BN tile of C, stepping through K in BK slices staged in
// workgroup memory; each thread owns TM x TN outputs strided by the workgroup's shape (so
// neighbouring threads touch neighbouring addresses in shared memory and in C). Loads are
// bounds-checked (zero-filled) so any M, N, K works; when the shape divides the tile the checks
// compile out. Operands over the binding limit are split into sub-products (see run()). Which
// tiling runs: the caller's, else on a GPU with a tuner (engine/tuner.ts) the fastest candidate
// timed in the first steps (tileCandidates(), split-K forms included: matmul-splitk.ts), else the
// built-in rule (chooseTile()).
//
// Precision: f32 tensors in and out always; the operands may be rounded to f16 (precision 'f16',
// default gpu.matmulPrecision) with the sums in f32: on tensor cores through subgroup matrices
// (matmul-smx.ts) where the adapter has them, else in these kernels as they stage the operands
// (h16() below). A gradient operand A can be scaled by a power of two from its max |A| first
// (scaleA, absmax.ts) so that f16's range fits it. A or B may also come as f16 copies made
// beforehand (half.ts: the same rounded values, half the bytes to read; a copy of A already
// scaled), which every kernel family reads as they are.
// Reference: matmul.ref.ts (with f16: true for the rounded operands).
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { ParamWriter, windowOf, type KernelDef, memoDef } from '../engine/kernel.js';
import { ABSMAX_PARTS, absmaxParts, f16ScaleWgsl } from './absmax.js';
import { smxDef, smxShape } from './matmul-smx.js';
import { splitKReduce } from './matmul-splitk.js';
import { halfOctave } from '../engine/tuner.js';
import { BATCH_OFFSETS_WGSL, PARAMS_WGSL, f16Suffix, loadTileWgsl, operandType, quadRegDecls, quadSlots, type F16Staging, type StagedOperand, type VecFlags } from './matmul-shared.js';

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
   * The tuner's name of an outer candidate this product is part of (attention-unfused.ts, timed as a
   * whole against another way of computing the same thing): its dispatches are timed under it, with
   * the tiling the tuner already chose for this product's key, else the rule's (no tuning of its own
   * while the outer choice is measured).
   */
  timing?: string;
  /** The profiler's name for this product's dispatch (default the kernel's name; bench step --profile
   *  sums by the name's first word): attention-unfused.ts files its products under attention. */
  profileLabel?: string;
}

export interface MatmulTile {
  BM: number; BN: number; BK: number; TM: number; TN: number;
  /**
   * 'simple' (default): the loop-based kernel below (TM x TN outputs strided by the workgroup shape).
   * 'reg': the generated register-tiled kernel (regDef): fully unrolled inner loops, accumulators as
   * individual vec4 variables, A transposed in workgroup memory, vec4 global loads/stores where the
   * operands allow it, double-buffered workgroup tiles. TM, TN and BK must be multiples of 4.
   */
  kind?: 'simple' | 'reg' | 'smx';
  /** reg only: false forces scalar global loads and stores even where vec4 would be legal. */
  vec4?: boolean;
  /** Workgroup-memory stages, 2 = one barrier per K step. reg: default 2 where it fits; smx: default 1. */
  stages?: 1 | 2;
  /** reg only: false keeps the K step as a loop (body still unrolled over the thread's outputs). */
  unrollK?: boolean;
  /**
   * Split K into this many chunks whose products are summed by a second kernel (matmul-splitk.ts):
   * more workgroups for products with few output tiles and a long K. Unbatched products only.
   */
  splitK?: number;
  // 'smx' (matmul-smx.ts, f16 operands only): tensor-core tiles through subgroup matrices; each
  // subgroup computes TM x TN of the BM x BN tile as (TM/16) x (TN/16) 16x16 f32 accumulators.
}

/** Short label of a tiling, used in kernel names and bench case names. */
export function tileName(t: MatmulTile): string {
  if (t.splitK && t.splitK > 1) return `${tileName({ ...t, splitK: undefined })} split-K ${t.splitK}`;
  const base = `${t.BM}x${t.BN}x${t.BK}/${t.TM}x${t.TN}`;
  if ((t.kind ?? 'simple') === 'simple') return base;
  if (t.kind === 'smx') return `smx ${base}${t.stages === 2 ? ' 2-stage' : ''}`; // one stage by default
  return `reg ${base}${t.stages === 1 ? ' 1-stage' : ''}${t.vec4 === false ? ' scalar' : ''}${t.unrollK === false ? ' rolled-K' : ''}`;
}

const SIMPLE_64: MatmulTile = { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4 };
// H100, 2026-11-27 (bench/RESULTS.md): at 4096^3 reg 128x128 runs 18.3 TFLOP/s with BK 8 and 13.5
// with BK 16; at 1024^3 (64 tiles) reg 64x64 runs 21.5 against 13-14 for the 128x128 forms.
const REG_128: MatmulTile = { BM: 128, BN: 128, BK: 8, TM: 8, TN: 8, kind: 'reg' };
const REG_64: MatmulTile = { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4, kind: 'reg' };
// Tensor-core tilings (f16 operands): 8 subgroups of 64x32 (4x2 accumulators) or 4 of 32x32.
export const SMX_128: MatmulTile = { BM: 128, BN: 128, BK: 32, TM: 64, TN: 32, kind: 'smx' };
export const SMX_64: MatmulTile = { BM: 64, BN: 64, BK: 32, TM: 32, TN: 32, kind: 'smx' };


/**
 * Tile sizes. Measured on an H100 (bench/RESULTS.md): the simple kernel with 64x64 tiles and 4x4
 * outputs per thread runs at ~18 TFLOP/s at 4096^3, while its 128x128/8x8 form falls to ~1.4 (the
 * 64 accumulators of a loop-indexed array spill). On lavapipe the simple 64x64 is the fastest, so CPU
 * adapters keep it. On other adapters the register-tiled kernel ('reg') is chosen: 128x128 tiles
 * (8x8 per thread) when the product has enough of them to fill a large GPU, 64x64 (4x4) otherwise.
 * That choice is a GUESS until `srk bench matmul --tiles` has been run on the H100; the simple
 * 64x64 stays the fallback wherever a 'reg' tiling cannot run (adapter limits).
 */
// Measuring switches, read once (not on every dispatch): SRK_MATMUL=simple|reg forces an f32 kernel
// family; SRK_SMX_SAFE=1 gives the tensor-core kernel's simplest form (one stage, scratch epilogue).
const FORCED_FAMILY = process.env.SRK_MATMUL;
const SMX_SAFE = process.env.SRK_SMX_SAFE === '1';

export function chooseTile(gpu: Gpu, M: number, N: number): MatmulTile {
  const forced = FORCED_FAMILY;
  if (forced === 'simple') return SIMPLE_64;
  if (forced !== undefined && forced !== 'reg' && forced !== '') throw new Error(`SRK_MATMUL=${forced}: expected simple or reg`);
  if (gpu.isCpuAdapter && forced !== 'reg') return SIMPLE_64;
  // 264 = two workgroups per SM on a 132-SM H100 (a guess at what keeps every SM busy).
  const big = Math.ceil(M / 128) * Math.ceil(N / 128) >= 264;
  return big ? REG_128 : REG_64;
}

/**
 * WGSL for the f16 staging of the f32 kernels: h16(x) rounds an f32 to the nearest f16 value (ties
 * to even, f16 subnormals below 2^-14, +-inf from 65520 on, as a conversion to f16 would) and keeps
 * it as f32. Done with integer bit operations because compilers may fold an f32 -> f16 -> f32 round
 * trip away (lavapipe does).
 */
/** `enable f16;` where an operand is stored as f16 (it must open the module). */
function halfEnable(f16: F16Staging | undefined): string {
  return f16?.halfA || f16?.halfB ? 'enable f16;\n' : '';
}

function f16Header(f16: F16Staging | undefined): string {
  if (!f16) return '';
  return /* wgsl */ `
fn h16(x: f32) -> f32 {
  if (abs(x) >= 65520.0) { return bitcast<f32>((bitcast<u32>(x) & 0x80000000u) | 0x7f800000u); }
  if (abs(x) < 6.103515625e-5) { return round(x * 16777216.0) * 5.9604644775390625e-8; }
  let b = bitcast<u32>(x);
  return bitcast<f32>((b + 0xfffu + ((b >> 13u) & 1u)) & 0xffffe000u);
}
fn h16v(v: vec4<f32>) -> vec4<f32> { return vec4<f32>(h16(v.x), h16(v.y), h16(v.z), h16(v.w)); }`;
}
function f16Bindings(f16: F16Staging | undefined, threads: number): { decl: string; uniformBinding: number; kinds: ('read' | 'rw')[] } {
  if (!f16?.scaleA) return { decl: '', uniformBinding: 4, kinds: [] };
  return { decl: `@group(0) @binding(4) var<storage, read> parts: array<f32>;\n${f16ScaleWgsl(threads)}`, uniformBinding: 5, kinds: ['read'] };
}

function matmulDefGen(t: MatmulTile, transA: boolean, transB: boolean, full: boolean, f16?: F16Staging): KernelDef {
  const { BM, BN, BK, TM, TN } = t;
  const WX = BN / TN; const WY = BM / TM; const THREADS = WX * WY;
  // A tile element (row r of op(A), column kk): load index order follows the storage layout so
  // consecutive threads read consecutive addresses.
  // An element of a or b as f32 (f16 copies are widened).
  const A = (i: string) => (f16?.halfA ? `f32(a[${i}])` : `a[${i}]`);
  const B = (i: string) => (f16?.halfB ? `f32(b[${i}])` : `b[${i}]`);
  const loadA = transA
    ? `let kk = idx / ${BM}u; let r = idx % ${BM}u; let gm = m0 + r; let gk = k0 + kk;
       ${full ? `let v = ${A('aOff + gk * p.lda + gm')};` : `var v = 0.0; if (gm < p.M && gk < p.K) { v = ${A('aOff + gk * p.lda + gm')}; }`}`
    : `let r = idx / ${BK}u; let kk = idx % ${BK}u; let gm = m0 + r; let gk = k0 + kk;
       ${full ? `let v = ${A('aOff + gm * p.lda + gk')};` : `var v = 0.0; if (gm < p.M && gk < p.K) { v = ${A('aOff + gm * p.lda + gk')}; }`}`;
  const loadB = transB
    ? `let cc = idx / ${BK}u; let kk = idx % ${BK}u; let gn = n0 + cc; let gk = k0 + kk;
       ${full ? `let v = ${B('bOff + gn * p.ldb + gk')};` : `var v = 0.0; if (gn < p.N && gk < p.K) { v = ${B('bOff + gn * p.ldb + gk')}; }`}`
    : `let kk = idx / ${BN}u; let cc = idx % ${BN}u; let gn = n0 + cc; let gk = k0 + kk;
       ${full ? `let v = ${B('bOff + gk * p.ldb + gn')};` : `var v = 0.0; if (gn < p.N && gk < p.K) { v = ${B('bOff + gk * p.ldb + gn')}; }`}`;
  const name = `matmul_${transA ? 't' : 'n'}${transB ? 't' : 'n'}_${BM}x${BN}x${BK}_${TM}x${TN}${full ? '_full' : ''}${f16Suffix(f16)}`;
  const fb = f16Bindings(f16, THREADS);
  // f16 copies hold f16 values (A already scaled): staged as they are.
  const stageA = !f16 || f16.halfA ? 'v' : 'h16(v * sa)'; const stageB = !f16 || f16.halfB ? 'v' : 'h16(v)';
  return {
    name,
    bindings: ['read', 'read', 'rw', 'read', ...fb.kinds],
    uniform: true,
    code: /* wgsl */ `${halfEnable(f16)}
${PARAMS_WGSL}${f16Header(f16)}
@group(0) @binding(0) var<storage, read> a: array<${operandType(false, f16?.halfA)}>;
@group(0) @binding(1) var<storage, read> b: array<${operandType(false, f16?.halfB)}>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(${fb.uniformBinding}) var<uniform> p: Params;
${fb.decl}

var<workgroup> As: array<f32, ${BK * BM}>; // [BK][BM]
var<workgroup> Bs: array<f32, ${BK * BN}>; // [BK][BN]

@compute @workgroup_size(${WX}, ${WY}, 1)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let n0 = wg.x * ${BN}u;
  let m0 = wg.y * ${BM}u;
  ${BATCH_OFFSETS_WGSL}
  let sa = ${f16?.scaleA ? 'f16Scale(li, p.partsBase)' : '1.0'};
  let alpha = p.alpha / sa;
  var acc: array<array<f32, ${TN}>, ${TM}>;
  for (var k0 = 0u; k0 < p.K; k0 += ${BK}u) {
    for (var idx = li; idx < ${BM * BK}u; idx += ${THREADS}u) {
      ${loadA}
      As[kk * ${BM}u + r] = ${stageA};
    }
    for (var idx = li; idx < ${BN * BK}u; idx += ${THREADS}u) {
      ${loadB}
      Bs[kk * ${BN}u + cc] = ${stageB};
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${BK}u; kk++) {
      var av: array<f32, ${TM}>;
      var bv: array<f32, ${TN}>;
      for (var i = 0u; i < ${TM}u; i++) { av[i] = As[kk * ${BM}u + lid.y + i * ${WY}u]; }
      for (var j = 0u; j < ${TN}u; j++) { bv[j] = Bs[kk * ${BN}u + lid.x + j * ${WX}u]; }
      for (var i = 0u; i < ${TM}u; i++) {
        for (var j = 0u; j < ${TN}u; j++) { acc[i][j] = fma(av[i], bv[j], acc[i][j]); }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < ${TM}u; i++) {
    let gm = m0 + lid.y + i * ${WY}u;
    for (var j = 0u; j < ${TN}u; j++) {
      let gn = n0 + lid.x + j * ${WX}u;
      if (${full ? 'true' : 'gm < p.M && gn < p.N'}) {
        var v = alpha * acc[i][j];
        if (p.hasBias != 0u) { v += bias[p.biasBase + gn]; }
        let ci = cOff + gm * p.ldc + gn;
        if (p.accumulate != 0u) { v += c[ci]; }
        c[ci] = v;
      }
    }
  }
}`,
  };
}


/** Checks a 'reg' tiling's shape rules; returns its thread grid. */
function regShape(t: MatmulTile): { WX: number; WY: number; THREADS: number } {
  const { BM, BN, BK, TM, TN } = t;
  if (TM % 4 || TN % 4 || BK % 4 || BM % TM || BN % TN) {
    throw new RangeError(`matmul: reg tiling ${tileName(t)} needs TM, TN, BK multiples of 4 dividing BM, BN, BK`);
  }
  const WX = BN / TN; const WY = BM / TM;
  return { WX, WY, THREADS: WX * WY };
}

/** Workgroup memory bytes of a 'reg' tiling with `stages` buffers. */
function regSharedBytes(t: MatmulTile, stages: number): number {
  return stages * t.BK * (t.BM + t.BN) * 4;
}

/**
 * The register-tiled kernel, generated with every inner loop unrolled (constant indices only), so
 * the TM x TN accumulators live in registers as TM * TN / 4 vec4 variables.
 *
 * Threads form a WX x WY grid. Thread (tx, ty) owns output rows gi * 4WY + 4ty + i (gi < TM/4,
 * i < 4) and column groups gj * 4WX + 4tx .. +3 (gj < TN/4): contiguous quads, so workgroup-memory
 * reads and C stores are vec4. Workgroup memory holds A transposed (As[k][m], as vec4 along m) and
 * B as is (Bs[k][n], vec4 along n). Global memory is read in quads of 4 consecutive elements along
 * each operand's contiguous storage dimension: one vec4 load where `vec` allows it (the binding is
 * then declared array<vec4<f32>>), else 4 bounds-checked scalar loads. With 2 stages the next K
 * slice is loaded into registers before the current one is multiplied and stored into the other
 * buffer afterwards: one barrier per K step. `full` tiles compile without bounds checks.
 */
function regDefGen(t: MatmulTile, transA: boolean, transB: boolean, full: boolean, vec: VecFlags, stages: 1 | 2, f16?: F16Staging): KernelDef {
  const { BM, BN, BK, TM, TN } = t;
  const { WX, WY, THREADS } = regShape(t);
  const AQ = BM / 4; const BQ = BN / 4; // vec4s per k row of As, Bs
  const aStage = BK * AQ; const bStage = BK * BQ;
  const L: string[] = [];
  const u = (n: number) => `${n}u`;

  // One operand as stored (matmul-shared.ts StagedOperand); store() writes a quad register
  // (storage row r, columns c..c+3) into workgroup stage `st`.
  interface Operand extends StagedOperand {
    store: (reg: string, r: string, c: string, st: string) => string;
  }
  // A: storage [M][lda] (contiguous K) or, transposed, [K][lda] (contiguous M).
  const halfA = f16?.halfA; const halfB = f16?.halfB;
  const opA: Operand = transA
    ? { name: 'a', vec: vec.a, half: halfA, off: 'aOff', ld: 'p.lda', rows: BK, cols: BM, row0: 'k0', col0: 'm0', rowLim: 'p.K', colLim: 'p.M',
        store: (reg, r, c, st) => `As[${st} + (${r}) * ${u(AQ)} + (${c}) / 4u] = ${reg};` }
    : { name: 'a', vec: vec.a, half: halfA, off: 'aOff', ld: 'p.lda', rows: BM, cols: BK, row0: 'm0', col0: 'k0', rowLim: 'p.M', colLim: 'p.K',
        store: (reg, r, c, st) => `{ let q = ${reg}; let r = ${r}; let w = ${st} + (${c}) * ${u(AQ)} + r / 4u; let e = r % 4u; ` +
          [0, 1, 2, 3].map((j) => `As[w + ${u(j * AQ)}][e] = q[${j}];`).join(' ') + ' }' };
  // B: storage [K][ldb] (contiguous N) or, transposed, [N][ldb] (contiguous K).
  const opB: Operand = transB
    ? { name: 'b', vec: vec.b, half: halfB, off: 'bOff', ld: 'p.ldb', rows: BN, cols: BK, row0: 'n0', col0: 'k0', rowLim: 'p.N', colLim: 'p.K',
        store: (reg, r, c, st) => `{ let q = ${reg}; let r = ${r}; let w = ${st} + (${c}) * ${u(BQ)} + r / 4u; let e = r % 4u; ` +
          [0, 1, 2, 3].map((j) => `Bs[w + ${u(j * BQ)}][e] = q[${j}];`).join(' ') + ' }' }
    : { name: 'b', vec: vec.b, half: halfB, off: 'bOff', ld: 'p.ldb', rows: BK, cols: BN, row0: 'k0', col0: 'n0', rowLim: 'p.K', colLim: 'p.N',
        store: (reg, r, c, st) => `Bs[${st} + (${r}) * ${u(BQ)} + (${c}) / 4u] = ${reg};` };
  const ops = [opA, opB];
  const slots = (o: Operand) => quadSlots(o, THREADS);
  const regDecls = quadRegDecls(ops, THREADS);
  const loadGlobal = (k: string) => loadTileWgsl(ops, THREADS, k, full);
  // f16 precision: round each quad as it is staged (A after its scale).
  // f16 copies (o.half) hold f16 values, A already scaled: staged as they are.
  const staged = (o: Operand, reg: string) => !f16 || o.half ? reg
    : o === opA ? `h16v(${reg} * sa)` : `h16v(${reg})`;
  const storeShared = (stage: string) => ops.flatMap((o) => slots(o).map((s) => {
    const st = stage === '0' ? '0u' : `${stage} * ${u(o === opA ? aStage : bStage)}`;
    const body = o.store(staged(o, s.reg), s.r, s.c, st);
    return s.guard ? `if (${s.guard}) { ${body} }` : body;
  }));
  const compute = (stage: string) => {
    const out = [`{ let ai = ${stage === '0' ? '' : `${stage} * ${u(aStage)} + `}ty; let bi = ${stage === '0' ? '' : `${stage} * ${u(bStage)} + `}tx;`];
    const step = (kk: string, sfx: string) => {
      for (let gi = 0; gi < TM / 4; gi++) out.push(`  let a${sfx}_${gi} = As[ai + ${kk}${AQ}u + ${u(gi * WY)}];`);
      for (let gj = 0; gj < TN / 4; gj++) out.push(`  let b${sfx}_${gj} = Bs[bi + ${kk}${BQ}u + ${u(gj * WX)}];`);
      for (let i = 0; i < TM; i++) {
        for (let gj = 0; gj < TN / 4; gj++) {
          out.push(`  acc${i}_${gj} = fma(vec4<f32>(a${sfx}_${i >> 2}[${i & 3}]), b${sfx}_${gj}, acc${i}_${gj});`);
        }
      }
    };
    if (t.unrollK !== false) for (let kk = 0; kk < BK; kk++) step(`${kk}u * `, `${kk}`);
    else { out.push(`for (var kk = 0u; kk < ${u(BK)}; kk++) {`); step('kk * ', 'k'); out.push('}'); }
    out.push('}');
    return out;
  };
  const accDecls: string[] = [];
  for (let i = 0; i < TM; i++) for (let gj = 0; gj < TN / 4; gj++) accDecls.push(`var acc${i}_${gj} = vec4<f32>(0.0);`);

  L.push(`let sa = ${f16?.scaleA ? 'f16Scale(li, p.partsBase)' : '1.0'};`, 'let alpha = p.alpha / sa;',
    ...accDecls, ...regDecls, `let nT = (p.K + ${u(BK - 1)}) / ${u(BK)};`);
  if (stages === 2) {
    L.push('if (nT > 0u) {', ...loadGlobal('0u'), ...storeShared('0'), '}', 'workgroupBarrier();',
      'for (var t = 0u; t < nT; t++) {', '  let cur = t & 1u;', '  let more = t + 1u < nT;',
      '  if (more) {', ...loadGlobal(`(t + 1u) * ${u(BK)}`), '  }',
      ...compute('cur'),
      '  if (more) {', ...storeShared('(cur ^ 1u)'), '  }',
      '  workgroupBarrier();', '}');
  } else {
    L.push('if (nT > 0u) {', ...loadGlobal('0u'), '}',
      'for (var t = 0u; t < nT; t++) {', ...storeShared('0'), '  workgroupBarrier();',
      `  if (t + 1u < nT) {`, ...loadGlobal(`(t + 1u) * ${u(BK)}`), '  }',
      ...compute('0'), '  workgroupBarrier();', '}');
  }
  // Epilogue: alpha, bias, accumulate; vec4 or scalar stores.
  for (let i = 0; i < TM; i++) {
    const row = (i >> 2) * 4 * WY + (i & 3);
    for (let gj = 0; gj < TN / 4; gj++) {
      const col = gj * 4 * WX;
      L.push(`{ let gm = m0 + ty * 4u + ${u(row)}; let gn = n0 + tx * 4u + ${u(col)}; var v = alpha * acc${i}_${gj};`);
      if (vec.c) {
        L.push(`  if (${full ? 'true' : 'gm < p.M && gn < p.N'}) {`,
          '    if (p.hasBias != 0u) { let bb = p.biasBase + gn; v += vec4<f32>(bias[bb], bias[bb + 1u], bias[bb + 2u], bias[bb + 3u]); }',
          '    let ci = (cOff + gm * p.ldc + gn) >> 2u;',
          '    if (p.accumulate != 0u) { v += c[ci]; }',
          '    c[ci] = v;', '  }');
      } else {
        L.push(`  if (${full ? 'true' : 'gm < p.M'}) { let ci = cOff + gm * p.ldc + gn;`);
        for (let j = 0; j < 4; j++) {
          L.push(`    if (${full ? 'true' : `gn + ${j}u < p.N`}) { var s = v[${j}]; if (p.hasBias != 0u) { s += bias[p.biasBase + gn + ${j}u]; }` +
            ` if (p.accumulate != 0u) { s += c[ci + ${j}u]; } c[ci + ${j}u] = s; }`);
        }
        L.push('  }');
      }
      L.push('}');
    }
  }
  const name = `matmul_reg_${transA ? 't' : 'n'}${transB ? 't' : 'n'}_${BM}x${BN}x${BK}_${TM}x${TN}_s${stages}` +
    `${t.unrollK === false ? '_rolled' : ''}` +
    `_${vec.a ? 'v' : 's'}${vec.b ? 'v' : 's'}${vec.c ? 'v' : 's'}${full ? '_full' : ''}${f16Suffix(f16)}`;
  const fb = f16Bindings(f16, THREADS);
  return {
    name,
    bindings: ['read', 'read', 'rw', 'read', ...fb.kinds],
    uniform: true,
    code: /* wgsl */ `${halfEnable(f16)}
${PARAMS_WGSL}${f16Header(f16)}
@group(0) @binding(0) var<storage, read> a: array<${operandType(vec.a, halfA)}>;
@group(0) @binding(1) var<storage, read> b: array<${operandType(vec.b, halfB)}>;
@group(0) @binding(2) var<storage, read_write> c: array<${operandType(vec.c, false)}>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(${fb.uniformBinding}) var<uniform> p: Params;
${fb.decl}
var<workgroup> As: array<vec4<f32>, ${stages * aStage}>; // [stage][BK][BM / 4]
var<workgroup> Bs: array<vec4<f32>, ${stages * bStage}>; // [stage][BK][BN / 4]

@compute @workgroup_size(${WX}, ${WY}, 1)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let tx = lid.x; let ty = lid.y;
  let n0 = wg.x * ${BN}u;
  let m0 = wg.y * ${BM}u;
  ${BATCH_OFFSETS_WGSL}
  ${L.join('\n  ')}
}`,
  };
}

interface Problem extends Required<Omit<MatmulArgs, 'bias' | 'a' | 'b' | 'c' | 'tile' | 'precision' | 'scaleA' | 'timing' | 'profileLabel'>> {
  a: Tensor; b: Tensor; c: Tensor; bias?: Tensor; tile?: MatmulTile; precision?: 'f32' | 'f16'; scaleA?: boolean | Tensor;
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
  const p: Problem = {
    ...args, transA, transB, batch,
    lda: args.lda ?? (transA ? M : K), ldb: args.ldb ?? (transB ? K : N), ldc: args.ldc ?? N,
    strideA: args.strideA ?? M * K, strideB: args.strideB ?? K * N, strideC: args.strideC ?? M * N,
    accumulate: args.accumulate ?? false, alpha: args.alpha ?? 1,
    offA: args.offA ?? 0, offB: args.offB ?? 0, offC: args.offC ?? 0, offBias: args.offBias ?? 0,
    outer: args.outer ?? 1, outerStrideA: args.outerStrideA ?? 0, outerStrideB: args.outerStrideB ?? 0, outerStrideC: args.outerStrideC ?? 0,
  };
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
  need(p.a, p.offA, span(batch, p.strideA, transA ? K : M, transA ? M : K, p.lda, p.outer, p.outerStrideA), 'A');
  need(p.b, p.offB, span(batch, p.strideB, transB ? N : K, transB ? K : N, p.ldb, p.outer, p.outerStrideB), 'B');
  need(p.c, p.offC, span(batch, p.strideC, M, N, p.ldc, p.outer, p.outerStrideC), 'C');
  if (p.bias) need(p.bias, p.offBias, N, 'bias');
  return p;
}

export function matmul(gpu: Gpu, args: MatmulArgs): void {
  run(gpu, problem(gpu, args));
}

/** Names of the kernels matmul(gpu, args) would dispatch, in order; nothing is compiled or run (tests). */
export function matmulKernels(gpu: Gpu, args: MatmulArgs): string[] {
  const names: string[] = [];
  run(gpu, problem(gpu, args), names);
  return names;
}

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
    a: ok(p.a, wa.base, wa.range.size, p.lda, p.strideA, p.transA ? p.M : p.K) && o(p.outerStrideA),
    b: ok(p.b, wb.base, wb.range.size, p.ldb, p.strideB, p.transB ? p.K : p.N) && o(p.outerStrideB),
    c: ok(p.c, wc.base, wc.range.size, p.ldc, p.strideC, p.N) && o(p.outerStrideC),
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
    if (tile.splitK * p.M * p.N * 4 > gpu.maxBinding - gpu.bindingAlign) return 'needs a partial buffer over the binding limit';
    const base = fitTile(gpu, { ...tile, splitK: undefined }, p, f16);
    return typeof base === 'string' ? base : { tile, stages: base.stages };
  }
  if (tile.kind === 'smx') {
    if (!f16) return 'needs precision f16 (and M, N >= 16)';
    if (!gpu.smxMode) return 'needs an f16 subgroup-matrix adapter';
    const shape = (st: 1 | 2) => smxShape(tile, gpu.fixedSubgroupSize, p.transA, p.transB, st);
    // One stage unless the tiling asks for two: on the H100 (bench/RESULTS.md, 2026-11-27) the
    // two-stage form ran the dx and dW products of a training step ~50% slower (47 KiB of
    // workgroup memory per workgroup against 28). SRK_SMX_SAFE=1 also turns off direct stores.
    const stages = SMX_SAFE ? 1 : tile.stages ?? 1;
    const s = shape(stages);
    if (s.threads > lim.maxComputeInvocationsPerWorkgroup || s.sharedBytes > lim.maxComputeWorkgroupStorageSize) {
      return "exceeds this adapter's workgroup limits";
    }
    return { tile, stages };
  }
  if (tile.kind === 'reg') {
    const { WX, WY, THREADS } = regShape(tile);
    const fits = (st: number) => regSharedBytes(tile, st) <= lim.maxComputeWorkgroupStorageSize;
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
// 1024^3, 128x128 BK 8 at 4096^3, the simple 64x64 ahead of reg 64x64 at 4096^3).
const F32_CANDIDATES: MatmulTile[] = [REG_128, REG_64,
  { BM: 128, BN: 64, BK: 16, TM: 8, TN: 4, kind: 'reg' }, { BM: 64, BN: 128, BK: 16, TM: 4, TN: 8, kind: 'reg' }, SIMPLE_64];
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
 * tiling with K split in 4 and 8 (matmul-splitk.ts).
 */
function tileCandidates(gpu: Gpu, rule: MatmulTile, p: Problem): MatmulTile[] {
  // SRK_SMX_SAFE=1 (scripts/gpu-check.sh sets it when a tensor-core test fails) or emulated tensor
  // cores (for checking, never fast): the rule's tiling only.
  if (!gpu.tuner || FORCED_FAMILY || (rule.kind === 'smx' && (SMX_SAFE || gpu.smxMode === 'emulated'))) return [rule];
  const pool = rule.kind === 'smx' ? SMX_CANDIDATES : F32_CANDIDATES;
  const tiles = Math.ceil(p.M / rule.BM) * Math.ceil(p.N / rule.BN);
  const split = p.batch === 1 && p.outer === 1 && tiles < 528 && p.K >= 2048 ? [4, 8].map((S) => ({ ...rule, splitK: S })) : [];
  return [rule, ...pool.filter((t) => t !== rule), ...split];
}

/**
 * The tuner's key: layout, operand precision, and the shape in half-octave buckets, so the many
 * token counts of a run (micro-batches of varied lengths) share a few keys; the bias and
 * accumulate flags change the epilogue, so they are part of it.
 */
function tuneKey(p: Problem, f16: boolean): string {
  const b = halfOctave;
  const copies = `${p.a.dtype === 'f16' ? ' copyA' : ''}${p.b.dtype === 'f16' ? ' copyB' : ''}`;
  return `matmul ${p.transA ? 't' : 'n'}${p.transB ? 't' : 'n'}${f16 ? ' f16' : ''}${f16 && p.scaleA ? ' scaled' : ''}${copies}` +
    `${p.bias ? ' bias' : ''}${p.accumulate ? ' acc' : ''} 2^(${b(p.M)},${b(p.N)},${b(p.K)})${p.batch * p.outer > 1 ? ` x2^${b(p.batch * p.outer)}` : ''}`;
}

// Dispatches one problem, or splits it when an operand's binding window would be too large:
// first across the batch, then along the storage-row dimension of the largest operand (rows of
// C and plain A split M; rows of transposed B split N; rows of transposed A or plain B split K,
// the second half accumulating onto the first).
function run(gpu: Gpu, p: Problem, dry?: string[]): void {
  const { M, N, K, batch } = p;
  if (M === 0 || N === 0 || batch === 0 || p.outer === 0) return;
  const limit = Math.floor((gpu.maxBinding - gpu.bindingAlign) / 4);
  const sA = span(batch, p.strideA, p.transA ? K : M, p.transA ? M : K, p.lda, p.outer, p.outerStrideA);
  const sB = span(batch, p.strideB, p.transB ? N : K, p.transB ? K : N, p.ldb, p.outer, p.outerStrideB);
  const sC = span(batch, p.strideC, M, N, p.ldc, p.outer, p.outerStrideC);
  if (Math.max(sA, sB, sC) > limit) {
    if (p.outer > 1) { // the outer level first, then the batch, then the matrices
      const h = Math.floor(p.outer / 2);
      run(gpu, { ...p, outer: h }, dry);
      run(gpu, { ...p, outer: p.outer - h, offA: p.offA + h * p.outerStrideA, offB: p.offB + h * p.outerStrideB, offC: p.offC + h * p.outerStrideC }, dry);
      return;
    }
    if (batch > 1) {
      const h = Math.floor(batch / 2);
      run(gpu, { ...p, batch: h }, dry);
      run(gpu, { ...p, batch: batch - h, offA: p.offA + h * p.strideA, offB: p.offB + h * p.strideB, offC: p.offC + h * p.strideC }, dry);
      return;
    }
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
      run(gpu, { ...p, N: h }, dry);
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
  // f16 operands where asked for and the product is big enough to be compute-bound; f16 copies
  // (half.ts) are f16 whatever the size.
  const halfA = p.a.dtype === 'f16'; const halfB = p.b.dtype === 'f16';
  const f16 = (p.precision ?? gpu.matmulPrecision) === 'f16' && ((M >= 16 && N >= 16) || halfA || halfB);
  const smx = gpu.smxMode;
  const sgSize = gpu.fixedSubgroupSize;
  // The tiling: the caller's, else the tuner's pick among the candidates (tuner.ts), else the rule.
  let tile: MatmulTile;
  let stages: 1 | 2;
  let tuning = p.timing;
  if (p.tile) {
    const fit = fitTile(gpu, p.tile, p, f16);
    if (typeof fit === 'string') throw new RangeError(`matmul: tiling ${tileName(p.tile)} ${fit}`);
    ({ tile, stages } = fit);
  } else {
    const rule = f16 && smx ? (Math.ceil(M / 128) * Math.ceil(N / 128) >= 264 ? SMX_128 : SMX_64) : chooseTile(gpu, M, N);
    const fits = tileCandidates(gpu, rule, p)
      .map((t) => fitTile(gpu, t, p, f16)).filter((f): f is FittedTile => typeof f !== 'string');
    // A rule tiling that does not fit falls back to the simple kernel (always within limits).
    if (fits.length === 0 || fits[0].tile !== rule) {
      fits.splice(0, fits.length, { tile: SIMPLE_64, stages: 1 }, ...fits.filter((f) => f.tile !== SIMPLE_64));
    }
    let index = 0;
    if (gpu.tuner && fits.length > 1) {
      const key = tuneKey(p, f16);
      const labels = fits.map((f) => tileName(f.tile));
      // A dry run (matmulKernels) names what a tuned key dispatches, and times nothing; a product
      // timed as part of an outer candidate (p.timing) takes the choice made, else the rule.
      if (dry || p.timing !== undefined) index = gpu.tuner.table.chosen(key, labels) ?? 0;
      else ({ index, timing: tuning } = gpu.tuner.pick(key, labels));
    }
    ({ tile, stages } = fits[index]);
  }
  if (tile.splitK !== undefined && tile.splitK > 1) { runSplitK(gpu, p, tile, tuning, dry); return; }
  const full = M % tile.BM === 0 && N % tile.BN === 0 && K % tile.BK === 0 && K > 0;
  const wa = windowOf(gpu, p.a, p.offA, p.offA + Math.max(1, sA));
  const wb = windowOf(gpu, p.b, p.offB, p.offB + Math.max(1, sB));
  const wc = windowOf(gpu, p.c, p.offC, p.offC + sC);
  const staging: F16Staging | undefined = f16 ? { scaleA: !!p.scaleA, ...(halfA ? { halfA } : {}), ...(halfB ? { halfB } : {}) } : undefined;
  const vec = vecFlags(p, tile, wa, wb, wc, gpu.bindingAlign);
  const def = tile.kind === 'smx' ? smxDef(tile, p.transA, p.transB, full, vec, staging!, sgSize, stages, !p.bias && !SMX_SAFE, smx === 'emulated')
    : tile.kind === 'reg' ? regDef(tile, p.transA, p.transB, full, vec, stages, staging)
    : matmulDef(tile, p.transA, p.transB, full, staging);
  if (dry) { dry.push(def.name); return; }
  const kernel = gpu.kernels.get(def);
  const bias = p.bias ?? gpu.placeholder();
  const wbias = p.bias ? windowOf(gpu, bias, p.offBias, p.offBias + N) : windowOf(gpu, bias);
  // The dynamic scale of A: partial maxima over exactly the window the kernel reads.
  const given = typeof p.scaleA === 'object' ? p.scaleA : undefined;
  const parts = !staging?.scaleA ? undefined : given ?? gpu.tensor([ABSMAX_PARTS], undefined, 'f32', 'matmul absmax');
  if (parts && !given) absmaxParts(gpu, p.a, p.offA, sA, parts);
  const wparts = parts ? windowOf(gpu, parts) : undefined;
  const params = new ParamWriter()
    .u32(M, N, K, p.lda, p.ldb, p.ldc, wa.base, wb.base, wc.base, wbias.base,
      p.strideA, p.strideB, p.strideC, p.accumulate ? 1 : 0, p.bias ? 1 : 0)
    .f32(p.alpha).u32(wparts?.base ?? 0, batch, p.outerStrideA, p.outerStrideB, p.outerStrideC).bytes();
  gpu.recorder.dispatch(kernel, [wa.range, wb.range, wc.range, wbias.range, ...(wparts ? [wparts.range] : [])], params,
    [Math.ceil(N / tile.BN), Math.ceil(M / tile.BM), batch * p.outer], tuning, p.profileLabel && `${p.profileLabel}_${def.name}`);
  // Later work may reuse the buffer: it runs after this dispatch in queue order.
  if (parts && !given) gpu.pool.release(parts);
}

/**
 * A split-K product (matmul-splitk.ts): the K chunks as one batched product into a partial buffer
 * [S, M, N] (chunks of a whole number of BK slices; a shorter last chunk as a second product),
 * then the ordered sum with C's epilogue (alpha, accumulate, bias). A scaled f16 A gets one
 * maximum over all of A, shared by the chunks.
 */
function runSplitK(gpu: Gpu, p: Problem, tile: MatmulTile, timing: string | undefined, dry?: string[]): void {
  const { M, N, K } = p;
  const base: MatmulTile = { ...tile, splitK: undefined };
  const Kc = Math.ceil(Math.ceil(K / tile.splitK!) / base.BK) * base.BK;
  const full = Math.floor(K / Kc);
  const rest = K - full * Kc;
  const S = full + (rest > 0 ? 1 : 0);
  // Element steps of one K chunk in A and B as stored.
  const stepA = p.transA ? Kc * p.lda : Kc;
  const stepB = p.transB ? Kc : Kc * p.ldb;
  // (A dry run too: the chunks' kernel variants depend on the partial buffer's windows.)
  const part = gpu.pool.acquire([S * M * N], 'f32', 'matmul split-K partials');
  const f16 = (p.precision ?? gpu.matmulPrecision) === 'f16';
  const sA = span(1, p.strideA, p.transA ? K : M, p.transA ? M : K, p.lda);
  let parts: Tensor | undefined;
  if (f16 && p.scaleA === true && !dry) {
    parts = gpu.tensor([ABSMAX_PARTS], undefined, 'f32', 'matmul absmax');
    absmaxParts(gpu, p.a, p.offA, sA, parts);
  }
  const sub: Problem = {
    ...p, tile: base, timing, c: part, offC: 0, ldc: N, strideC: M * N, accumulate: false, bias: undefined, offBias: 0, alpha: 1,
    scaleA: parts ?? p.scaleA,
  };
  if (full > 0) run(gpu, { ...sub, K: Kc, batch: full, strideA: stepA, strideB: stepB }, dry);
  if (rest > 0) run(gpu, { ...sub, K: rest, batch: 1, offA: p.offA + full * stepA, offB: p.offB + full * stepB, offC: full * M * N }, dry);
  if (dry) { dry.push('matmul_splitk_reduce'); gpu.pool.release(part); return; }
  splitKReduce(gpu, {
    part: windowOf(gpu, part, 0, S * M * N), S, c: windowOf(gpu, p.c, p.offC, p.offC + span(1, p.strideC, M, N, p.ldc)), ldc: p.ldc,
    bias: p.bias ? windowOf(gpu, p.bias, p.offBias, p.offBias + N) : undefined,
    M, N, alpha: p.alpha, accumulate: p.accumulate, tuning: timing,
  });
  // Later work may reuse these: they are read before it in queue order.
  gpu.pool.release(part);
  if (parts) gpu.pool.release(parts);
}

// Generated kernel definitions are memoized by their arguments: the WGSL is built once per
// variant, and the kernel cache finds the pipeline by the definition's identity.
const matmulDef = memoDef(matmulDefGen);
const regDef = memoDef(regDefGen);
