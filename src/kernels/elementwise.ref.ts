// Float64 references for elementwise.ts.
export const fillRef = (n: number, v: number): Float64Array => new Float64Array(n).fill(v);
