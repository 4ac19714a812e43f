// Reference for row-scatter.ts: out (a copy) with out[rows[i]] = x[i] for each row of D values.
export function scatterRowsRef(x: ArrayLike<number>, rows: ArrayLike<number>, out: ArrayLike<number>, D: number): Float64Array {
  const o = Float64Array.from(out);
  for (let i = 0; i < rows.length; i++) for (let d = 0; d < D; d++) o[rows[i] * D + d] = x[i * D + d];
  return o;
}
