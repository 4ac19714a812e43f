// Float64 reference for matmul.ts (same argument conventions, dense row-major, one batch).
import { absmaxRef, f16ScaleRef, roundF16 } from './absmax.ref.js';
export interface MatmulRefArgs {
  a: ArrayLike<number>; b: ArrayLike<number>; c?: ArrayLike<number>; bias?: ArrayLike<number>;
  M: number; N: number; K: number; transA?: boolean; transB?: boolean; alpha?: number; accumulate?: boolean;
  /** The f16 precision: operands rounded to f16 (A, B times their dynamic scales when scaleA, scaleB), exact sums. */
  f16?: boolean; scaleA?: boolean; scaleB?: boolean;
  /** matmul's causal 'lowerA': A lower triangular as stored, entries above its diagonal taken as 0. */
  lowerA?: boolean;
}

/** op(A) [M, K] x op(B) [K, N] -> C [M, N] in float64. */
export function matmulRef(r: MatmulRefArgs): Float64Array {
  const { M, N, K } = r;
  let alpha = r.alpha ?? 1;
  if (r.lowerA) {
    // Stored [M, K] (or [K, M] transposed): element (row, col) kept where col <= row.
    const cols = r.transA ? M : K;
    r = { ...r, lowerA: false, a: Array.from(r.a, (v, i) => (i % cols <= Math.floor(i / cols) ? v : 0)) };
  }
  if (r.f16) {
    const sa = r.scaleA ? f16ScaleRef(absmaxRef(r.a)) : 1;
    const sb = r.scaleB ? f16ScaleRef(absmaxRef(r.b)) : 1;
    r = { ...r, a: Array.from(r.a, (v) => roundF16(v * sa)), b: Array.from(r.b, (v) => roundF16(v * sb)) };
    alpha /= sa * sb;
  }
  const out = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) {
        const av = r.transA ? r.a[k * M + m] : r.a[m * K + k];
        const bv = r.transB ? r.b[n * K + k] : r.b[k * N + n];
        s += av * bv;
      }
      let v = alpha * s;
      if (r.bias) v += r.bias[n];
      if (r.accumulate && r.c) v += r.c[m * N + n];
      out[m * N + n] = v;
    }
  }
  return out;
}

/**
 * How far an element of an f16-operand product may lie from the exact product of its f32 operands:
 * WGSL lets an f32 -> f16 conversion round to either neighbour, so each operand carries a relative
 * error under 2^-10, and |err| <= (2^-9 + 2^-20) |alpha| sum_k |a_k b_k|, plus f32 rounding relative
 * to the terms added (|alpha A B|, |bias|, |C|: not to their sum, which may cancel). `absProd`:
 * |alpha| sum_k |a_k b_k| for the element; `addends`: |bias| + |C| where the epilogue adds them.
 */
export function f16ProductTolerance(absProd: number, addends = 0): number {
  return (2 ** -9 + 2 ** -20) * absProd + 1e-6 * (absProd + addends) + 1e-30;
}
