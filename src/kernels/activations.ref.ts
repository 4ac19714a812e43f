// Float64 references for the MLP activations (elementwise; every array is [n], any shape flattened).
//   geluErf:  HF "gelu" (torch default, GPT-NeoX/Pythia)  y = 0.5 x (1 + erf(x / sqrt 2))
//   geluTanh: HF "gelu_new" / "gelu_pytorch_tanh"        y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
//   swiglu:   Llama/Mistral MLP core                     y = silu(gate) * up, silu(z) = z * sigmoid(z)
//   gated:    y = act(gate) * up for act silu, gelu or gelu_tanh (GeGLU: Gemma)
// Backwards take the forward input(s) and the upstream gradient dy and return new arrays.

const SQRT1_2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);
const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);
const K_TANH = Math.sqrt(2 / Math.PI), C_TANH = 0.044715;

/** erfc(z) for z >= 2: continued fraction exp(-z^2)/sqrt(pi) / (z + (1/2)/(z + 1/(z + (3/2)/(z + ...)))) (Lentz). */
function erfcCF(z: number): number {
  const tiny = 1e-300;
  let f = z, c = z, d = 0;
  for (let n = 1; n < 500; n++) {
    const a = n / 2;
    d = z + a * d; d = Math.abs(d) < tiny ? tiny : d; d = 1 / d;
    c = z + a / c; c = Math.abs(c) < tiny ? tiny : c;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.exp(-z * z) / Math.sqrt(Math.PI) / f;
}

/** erf(z) for |z| < 2: 2/sqrt(pi) exp(-z^2) sum_n 2^n z^(2n+1) / (1*3*...*(2n+1)) (all terms one sign). */
function erfSeries(z: number): number {
  let term = z, sum = z;
  for (let n = 0; n < 200 && Math.abs(term) > 1e-17 * Math.abs(sum); n++) {
    term *= (2 * z * z) / (2 * n + 3);
    sum += term;
  }
  return TWO_OVER_SQRT_PI * Math.exp(-z * z) * sum;
}

/** Error function in float64 (JavaScript has no Math.erf); relative error ~1e-15. */
export function erf(z: number): number {
  if (Number.isNaN(z)) return NaN;
  const a = Math.abs(z);
  if (a < 2) return erfSeries(z);
  const v = 1 - erfcCF(a);
  return z < 0 ? -v : v;
}

/** Complementary error function 1 - erf(z), accurate in the tail (z large positive). */
export function erfc(z: number): number {
  if (Number.isNaN(z)) return NaN;
  if (z >= 2) return erfcCF(z);
  if (z <= -2) return 2 - erfcCF(-z);
  return 1 - erfSeries(z);
}

/** x [n] -> y [n]; y = 0.5 x erfc(-x / sqrt 2) (= 0.5 x (1 + erf(x / sqrt 2)), no cancellation for x << 0). */
export function geluErfForward(x: ArrayLike<number>): Float64Array {
  return Float64Array.from(x, (v) => 0.5 * v * erfc(-v * SQRT1_2));
}

/** x [n], dy [n] -> dx [n]; dy/dx = Phi(x) + x phi(x), Phi = 0.5 erfc(-x/sqrt 2), phi = exp(-x^2/2)/sqrt(2 pi). */
export function geluErfBackward(x: ArrayLike<number>, dy: ArrayLike<number>): Float64Array {
  return Float64Array.from(x, (v, i) =>
    dy[i] * (0.5 * erfc(-v * SQRT1_2) + v * INV_SQRT_2PI * Math.exp(-0.5 * v * v)));
}

/** x [n] -> y [n]; y = 0.5 x (1 + tanh(k (x + c x^3))), k = sqrt(2/pi), c = 0.044715. */
export function geluTanhForward(x: ArrayLike<number>): Float64Array {
  return Float64Array.from(x, (v) => 0.5 * v * (1 + Math.tanh(K_TANH * (v + C_TANH * v * v * v))));
}

/** x [n], dy [n] -> dx [n]; dy/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) k (1 + 3 c x^2), t = tanh(k (x + c x^3)). */
export function geluTanhBackward(x: ArrayLike<number>, dy: ArrayLike<number>): Float64Array {
  return Float64Array.from(x, (v, i) => {
    const t = Math.tanh(K_TANH * (v + C_TANH * v * v * v));
    return dy[i] * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * K_TANH * (1 + 3 * C_TANH * v * v));
  });
}

/** sigmoid(z) = 1 / (1 + exp(-z)) (finite for all z: 0 or 1 at the extremes). */
export function sigmoid(z: number): number {
  return z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z));
}

/** gate [n], up [n] -> y [n]; y = silu(gate) * up. */
export function swigluForward(gate: ArrayLike<number>, up: ArrayLike<number>): Float64Array {
  if (gate.length !== up.length) throw new RangeError(`swiglu: gate ${gate.length} vs up ${up.length}`);
  return Float64Array.from(gate, (g, i) => g * sigmoid(g) * up[i]);
}

/**
 * dy [n], gate [n], up [n] -> dgate [n], dup [n];
 * dgate = dy * up * s (1 + g (1 - s)) with s = sigmoid(g); dup = dy * silu(g).
 */
export function swigluBackward(
  dy: ArrayLike<number>, gate: ArrayLike<number>, up: ArrayLike<number>,
): { dgate: Float64Array; dup: Float64Array } {
  const n = gate.length;
  const dgate = new Float64Array(n), dup = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const g = gate[i], s = sigmoid(g);
    dgate[i] = dy[i] * up[i] * s * (1 + g * (1 - s));
    dup[i] = dy[i] * g * s;
  }
  return { dgate, dup };
}

/** gate [n], up [n] -> y [n]; y = act(gate) * up (act: silu, or either GELU: GeGLU). */
export function gatedForward(gate: ArrayLike<number>, up: ArrayLike<number>, act: 'silu' | 'gelu' | 'gelu_tanh'): Float64Array {
  if (gate.length !== up.length) throw new RangeError(`gated: gate ${gate.length} vs up ${up.length}`);
  if (act === 'silu') return swigluForward(gate, up);
  const a = act === 'gelu' ? geluErfForward(gate) : geluTanhForward(gate);
  return Float64Array.from(a, (v, i) => v * up[i]);
}

/** dy, gate, up [n] -> dgate = dy * up * act'(gate), dup = dy * act(gate). */
export function gatedBackward(
  dy: ArrayLike<number>, gate: ArrayLike<number>, up: ArrayLike<number>, act: 'silu' | 'gelu' | 'gelu_tanh',
): { dgate: Float64Array; dup: Float64Array } {
  if (act === 'silu') return swigluBackward(dy, gate, up);
  const a = act === 'gelu' ? geluErfForward(gate) : geluTanhForward(gate);
  const da = act === 'gelu' ? geluErfBackward(gate, Float64Array.from(dy, (d, i) => d * up[i])) : geluTanhBackward(gate, Float64Array.from(dy, (d, i) => d * up[i]));
  return { dgate: da, dup: Float64Array.from(a, (v, i) => v * dy[i]) };
}
