// Float64 reference for column-sum.ts.
export function columnSumRef(x: ArrayLike<number>, N: number, D: number, out?: ArrayLike<number>): Float64Array {
  const s = out ? Float64Array.from(out) : new Float64Array(D);
  for (let r = 0; r < N; r++) for (let d = 0; d < D; d++) s[d] += x[r * D + d];
  return s;
}
