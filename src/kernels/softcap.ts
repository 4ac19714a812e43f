// Gemma 2's tanh soft-capping, shared by the attention kernels (each scaled score) and the output layer (each
// logit): x becomes cap tanh(x / cap), and a backward multiplies by its derivative 1 - tanh^2(x / cap). One
// WGSL function, one argument check and the float64 form for the references, so the two kernels cap alike.

/**
 * WGSL: capTanh(x, c) = tanh(x / c). The argument is clamped to +-15 (tanh(15) is 1 in f32) because some
 * implementations evaluate tanh through exp and give NaN or Inf for large ones; a NaN is returned as is
 * (clamp may turn it into a bound: a finite, wrong result where the non-finite checks downstream must see NaN),
 * tested as bits.
 */
export const SOFTCAP_WGSL = /* wgsl */ `
fn capTanh(x: f32, c: f32) -> f32 {
  let u = x / c;
  if ((bitcast<u32>(u) & 0x7fffffffu) > 0x7f800000u) { return u; }
  return tanh(clamp(u, -15.0, 15.0));
}`;

/** WGSL: value `x` soft-capped by the uniform's cap (p.cap) where `softcap` (SOFTCAP_WGSL), else x itself. */
export const capped = (softcap: boolean, x: string): string => softcap ? `p.cap * capTanh(${x}, p.cap)` : x;

/**
 * A backward's view of soft-capping for value `x` (`t`: a name for tanh(x / cap)): `decl` (a WGSL statement
 * and a space, to put first), `score` (what the forward's softmax saw: exp(score - lse) is the probability) and
 * `dS(g)` (a gradient with respect to the capped value, times d x' / d x = 1 - t^2). Without softcap: no
 * statement, x, and g unchanged, so the kernels' WGSL is as without the option.
 */
export function capBackward(softcap: boolean, x: string, t = 'ct'): { decl: string; score: string; dS: (g: string) => string } {
  if (!softcap) return { decl: '', score: x, dS: (g) => g };
  return { decl: `let ${t} = capTanh(${x}, p.cap); `, score: `p.cap * ${t}`, dS: (g) => `${g} * (1.0 - ${t} * ${t})` };
}

/** A softcap option: 0 when off (absent or 0), else the cap, finite and > 0 (else a RangeError naming `what`). */
export function checkSoftcap(softcap: number | undefined, what: string): number {
  if (softcap === undefined || softcap === 0) return 0;
  if (!(Number.isFinite(softcap) && softcap > 0)) throw new RangeError(`${what}: softcap = ${softcap} (absent or 0 for none, else finite and > 0)`);
  return softcap;
}

/** Float64: x capped by `cap` (0: x itself). */
export const capRef = (x: number, cap: number): number => (cap ? cap * Math.tanh(x / cap) : x);
