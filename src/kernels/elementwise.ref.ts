// Float64 references for elementwise.ts.
export const fillRef = (n: number, v: number): Float64Array => new Float64Array(n).fill(v);
export const scaleRef = (y: ArrayLike<number>, a: number): Float64Array => Float64Array.from(y, (v) => a * v);
export const axpyRef = (a: number, x: ArrayLike<number>, b: number, y: ArrayLike<number>): Float64Array =>
  Float64Array.from(y, (v, i) => a * x[i] + b * v);
