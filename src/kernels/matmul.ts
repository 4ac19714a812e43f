// Matrix multiply, f32: C[b] = alpha * op(A[b]) op(B[b]) (+ C[b] if accumulate) (+ bias[n]).
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
// compile out. Operands over the binding limit are split into sub-products (splitForBindings).
// Reference: matmul.ref.ts.
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { ParamWriter, windowOf, type KernelDef } from '../engine/kernel.js';

export interface MatmulArgs {
  a: Tensor; b: Tensor; c: Tensor;
  M: number; N: number; K: number;
  transA?: boolean; transB?: boolean;
  lda?: number; ldb?: number; ldc?: number;
  batch?: number; strideA?: number; strideB?: number; strideC?: number;
  bias?: Tensor;
  accumulate?: boolean;
  alpha?: number;
  /** Element offsets into a, b, c, bias (used by the splitter; callers can use views instead). */
  offA?: number; offB?: number; offC?: number; offBias?: number;
  /** Tile override (tests exercise every tiling on any adapter); default chooseTile(). */
  tile?: MatmulTile;
}

export interface MatmulTile { BM: number; BN: number; BK: number; TM: number; TN: number }

/**
 * Tile sizes. Measured on an H100 (bench/RESULTS.md): 64x64 tiles with 4x4 outputs per thread run at
 * ~18 TFLOP/s at 4096^3, while 128x128 with 8x8 per thread falls to ~1.4 (the 64 accumulators
 * spill). On lavapipe 64x64 is also the fastest. One tiling for all until a tuned kernel lands.
 */
export function chooseTile(_gpu: Gpu, _M: number, _N: number): MatmulTile {
  return { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4 };
}

function matmulDef(t: MatmulTile, transA: boolean, transB: boolean, full: boolean): KernelDef {
  const { BM, BN, BK, TM, TN } = t;
  const WX = BN / TN; const WY = BM / TM; const THREADS = WX * WY;
  // A tile element (row r of op(A), column kk): load index order follows the storage layout so
  // consecutive threads read consecutive addresses.
  const loadA = transA
    ? `let kk = idx / ${BM}u; let r = idx % ${BM}u; let gm = m0 + r; let gk = k0 + kk;
       ${full ? 'let v = a[aOff + gk * p.lda + gm];' : `var v = 0.0; if (gm < p.M && gk < p.K) { v = a[aOff + gk * p.lda + gm]; }`}`
    : `let r = idx / ${BK}u; let kk = idx % ${BK}u; let gm = m0 + r; let gk = k0 + kk;
       ${full ? 'let v = a[aOff + gm * p.lda + gk];' : `var v = 0.0; if (gm < p.M && gk < p.K) { v = a[aOff + gm * p.lda + gk]; }`}`;
  const loadB = transB
    ? `let cc = idx / ${BK}u; let kk = idx % ${BK}u; let gn = n0 + cc; let gk = k0 + kk;
       ${full ? 'let v = b[bOff + gn * p.ldb + gk];' : `var v = 0.0; if (gn < p.N && gk < p.K) { v = b[bOff + gn * p.ldb + gk]; }`}`
    : `let kk = idx / ${BN}u; let cc = idx % ${BN}u; let gn = n0 + cc; let gk = k0 + kk;
       ${full ? 'let v = b[bOff + gk * p.ldb + gn];' : `var v = 0.0; if (gn < p.N && gk < p.K) { v = b[bOff + gk * p.ldb + gn]; }`}`;
  const name = `matmul_${transA ? 't' : 'n'}${transB ? 't' : 'n'}_${BM}x${BN}x${BK}_${TM}x${TN}${full ? '_full' : ''}`;
  return {
    name,
    bindings: ['read', 'read', 'rw', 'read'],
    uniform: true,
    code: /* wgsl */ `
struct Params {
  M: u32, N: u32, K: u32, lda: u32, ldb: u32, ldc: u32,
  aBase: u32, bBase: u32, cBase: u32, biasBase: u32,
  strideA: u32, strideB: u32, strideC: u32,
  accumulate: u32, hasBias: u32, alpha: f32,
};
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

var<workgroup> As: array<f32, ${BK * BM}>; // [BK][BM]
var<workgroup> Bs: array<f32, ${BK * BN}>; // [BK][BN]

@compute @workgroup_size(${WX}, ${WY}, 1)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let n0 = wg.x * ${BN}u;
  let m0 = wg.y * ${BM}u;
  let aOff = p.aBase + wg.z * p.strideA;
  let bOff = p.bBase + wg.z * p.strideB;
  let cOff = p.cBase + wg.z * p.strideC;
  var acc: array<array<f32, ${TN}>, ${TM}>;
  for (var k0 = 0u; k0 < p.K; k0 += ${BK}u) {
    for (var idx = li; idx < ${BM * BK}u; idx += ${THREADS}u) {
      ${loadA}
      As[kk * ${BM}u + r] = v;
    }
    for (var idx = li; idx < ${BN * BK}u; idx += ${THREADS}u) {
      ${loadB}
      Bs[kk * ${BN}u + cc] = v;
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
        var v = p.alpha * acc[i][j];
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

interface Problem extends Required<Omit<MatmulArgs, 'bias' | 'a' | 'b' | 'c' | 'tile'>> {
  a: Tensor; b: Tensor; c: Tensor; bias?: Tensor; tile?: MatmulTile;
}

/** Number of elements spanned by `batch` row-major matrices of `rows` x `cols` (leading dim ld). */
function span(batch: number, stride: number, rows: number, cols: number, ld: number): number {
  if (batch === 0 || rows === 0 || cols === 0) return 0;
  return (batch - 1) * stride + (rows - 1) * ld + cols;
}

let dummyBias: WeakMap<Gpu, Tensor> = new WeakMap();
function dummy(gpu: Gpu): Tensor {
  let t = dummyBias.get(gpu);
  if (!t) { t = gpu.tensor([4], new Float32Array(4)); dummyBias.set(gpu, t); }
  return t;
}

export function matmul(gpu: Gpu, args: MatmulArgs): void {
  const transA = args.transA ?? false; const transB = args.transB ?? false;
  const { M, N, K } = args;
  const batch = args.batch ?? 1;
  const p: Problem = {
    ...args, transA, transB, batch,
    lda: args.lda ?? (transA ? M : K), ldb: args.ldb ?? (transB ? K : N), ldc: args.ldc ?? N,
    strideA: args.strideA ?? M * K, strideB: args.strideB ?? K * N, strideC: args.strideC ?? M * N,
    accumulate: args.accumulate ?? false, alpha: args.alpha ?? 1,
    offA: args.offA ?? 0, offB: args.offB ?? 0, offC: args.offC ?? 0, offBias: args.offBias ?? 0,
  };
  // Shape checks: every access must stay inside its tensor.
  const need = (t: Tensor, off: number, n: number, what: string) => {
    if (off + n > t.numel) {
      throw new RangeError(`matmul: ${what} needs ${off + n} elements but ${t} has ${t.numel} ` +
        `(M=${M} N=${N} K=${K} batch=${batch} transA=${transA} transB=${transB})`);
    }
  };
  need(p.a, p.offA, span(batch, p.strideA, transA ? K : M, transA ? M : K, p.lda), 'A');
  need(p.b, p.offB, span(batch, p.strideB, transB ? N : K, transB ? K : N, p.ldb), 'B');
  need(p.c, p.offC, span(batch, p.strideC, M, N, p.ldc), 'C');
  if (p.bias) need(p.bias, p.offBias, N, 'bias');
  run(gpu, p);
}

// Dispatches one problem, or splits it when an operand's binding window would be too large:
// first across the batch, then along the storage-row dimension of the largest operand (rows of
// C and plain A split M; rows of transposed B split N; rows of transposed A or plain B split K,
// the second half accumulating onto the first).
function run(gpu: Gpu, p: Problem): void {
  const { M, N, K, batch } = p;
  if (M === 0 || N === 0 || batch === 0) return;
  const limit = Math.floor((gpu.maxBinding - gpu.bindingAlign) / 4);
  const sA = span(batch, p.strideA, p.transA ? K : M, p.transA ? M : K, p.lda);
  const sB = span(batch, p.strideB, p.transB ? N : K, p.transB ? K : N, p.ldb);
  const sC = span(batch, p.strideC, M, N, p.ldc);
  if (Math.max(sA, sB, sC) > limit) {
    if (batch > 1) {
      const h = Math.floor(batch / 2);
      run(gpu, { ...p, batch: h });
      run(gpu, { ...p, batch: batch - h, offA: p.offA + h * p.strideA, offB: p.offB + h * p.strideB, offC: p.offC + h * p.strideC });
      return;
    }
    const worst = sC >= sA && sC >= sB ? 'C' : sA >= sB ? 'A' : 'B';
    const dim = worst === 'C' ? 'M' : worst === 'A' ? (p.transA ? 'K' : 'M') : (p.transB ? 'N' : 'K');
    if (dim === 'M' && M > 1) {
      const h = Math.floor(M / 2);
      run(gpu, { ...p, M: h });
      run(gpu, { ...p, M: M - h, offA: p.offA + h * (p.transA ? 1 : p.lda), offC: p.offC + h * p.ldc });
      return;
    }
    if (dim === 'N' && N > 1) {
      const h = Math.floor(N / 2);
      run(gpu, { ...p, N: h });
      run(gpu, { ...p, N: N - h, offB: p.offB + h * (p.transB ? p.ldb : 1), offC: p.offC + h, offBias: p.offBias + h });
      return;
    }
    if (dim === 'K' && K > 1) {
      const h = Math.floor(K / 2);
      run(gpu, { ...p, K: h });
      run(gpu, { ...p, K: K - h, accumulate: true, bias: undefined,
        offA: p.offA + h * (p.transA ? p.lda : 1), offB: p.offB + h * (p.transB ? 1 : p.ldb) });
      return;
    }
    throw new RangeError(`matmul: one row of an operand exceeds the binding limit (M=${M} N=${N} K=${K})`);
  }
  const tile = p.tile ?? chooseTile(gpu, M, N);
  const full = M % tile.BM === 0 && N % tile.BN === 0 && K % tile.BK === 0;
  const kernel = gpu.kernels.get(matmulDef(tile, p.transA, p.transB, full));
  const wa = windowOf(gpu, p.a, p.offA, p.offA + Math.max(1, sA));
  const wb = windowOf(gpu, p.b, p.offB, p.offB + Math.max(1, sB));
  const wc = windowOf(gpu, p.c, p.offC, p.offC + sC);
  const bias = p.bias ?? dummy(gpu);
  const wbias = p.bias ? windowOf(gpu, bias, p.offBias, p.offBias + N) : windowOf(gpu, bias);
  const params = new ParamWriter()
    .u32(M, N, K, p.lda, p.ldb, p.ldc, wa.base, wb.base, wc.base, wbias.base,
      p.strideA, p.strideB, p.strideC, p.accumulate ? 1 : 0, p.bias ? 1 : 0)
    .f32(p.alpha).bytes();
  gpu.recorder.dispatch(kernel, [wa.range, wb.range, wc.range, wbias.range], params,
    [Math.ceil(N / tile.BN), Math.ceil(M / tile.BM), batch]);
}
