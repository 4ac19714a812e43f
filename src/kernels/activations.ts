// MLP activations, f32, forward and backward: GELU (exact erf form and tanh form) and SwiGLU.
//
//   gelu:      y = x * Phi(x), Phi(x) = 0.5 * (1 + erf(x / sqrt 2))   (HF "gelu": GPT-NeoX / Pythia)
//              dx = dy * (Phi(x) + x * exp(-x^2 / 2) / sqrt(2 pi))
//   geluTanh:  y = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3)   (HF "gelu_new" / "gelu_pytorch_tanh")
//              computed as y = x * sigmoid(2u) (1 + tanh(u) = 2 sigmoid(2u): no overflow, no cancellation)
//   swiglu:    y = silu(gate) * up, silu(g) = g * sigmoid(g)        (Llama / Mistral: down(silu(gate(x)) * up(x)))
//              dgate = dy * up * s * (1 + g * (1 - s)), dup = dy * g * s, s = sigmoid(g)
//   geglu:     y = gelu(gate) * up in either GELU form (Gemma: gelu_pytorch_tanh), the same kernels with
//              dgate = dy * up * gelu'(g), dup = dy * gelu(g)
//
// GELU is elementwise over whole tensors (x, y [n], any shape; GPT-NeoX applies it in place of
// h = x W1^T + b1 [N, I]). SwiGLU works on rows [N, I] where each operand has its own element
// offset and row stride, so the halves of a fused gate_up projection [N, 2I] (gate at column 0,
// up at column I, stride 2I) are used in place, as are separate gate and up tensors; its
// gradients can likewise be written into the two halves of one [N, 2I] gradient buffer.
//
// erf: WGSL has none. Phi uses two fits of my own (least squares on 2000 Chebyshev nodes against a
// float64 erf: the series 2/sqrt(pi) e^(-z^2) sum (2z^2)^n z / (2n+1)!! and the continued
// fraction for erfc, with coefficients rounded to f32):
//   |z| < 1:  erf(z) = z * P(z^2), P of degree 6      (float64 error 1.2e-9; in f32 ~1.5 ulp)
//   |z| >= 1: erfc(z) = exp(-z^2) * Q(1/z) / z, Q a degree-12 Chebyshev series on t = 1/z in
//             (0, 1] (float64 relative error 1.1e-8), summed with Clenshaw's recurrence (stable in
//             f32, unlike the same polynomial in monomials).
// so 1 + erf is never formed by cancellation: Phi = 0.5 erfc(-z) for z <= -1 and 1 - 0.5 erfc(z)
// for z >= 1. Abramowitz-Stegun 7.1.26 (absolute error 1.5e-7, with a large relative error in the
// tail) is not used. Measured against the float64 reference: see test/kernels/activations.test.ts.
// References: activations.ref.ts.
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { ParamWriter, chunkRanges, grid, maxWindowElems, windowOf, type KernelDef, memoDef } from '../engine/kernel.js';
import { ABSMAX_PARTS, absmaxPartWgsl, absmaxPartsWindow } from './absmax.js';

const WG = 256;

// erf(z) / z = P(z^2) on |z| < 1.
const P = [1.128379107e+0, -3.761262596e-1, 1.128359735e-1, -2.685432881e-2, 5.189312156e-3, -8.018855006e-4, 7.882496720e-5];
// z * exp(z^2) * erfc(z) = sum_k QC[k] T_k(2/z - 1) for z >= 1.
const QC = [5.039781332e-1, -7.211219519e-2, -7.495316211e-3, 3.838051809e-3, -6.410126807e-4, -1.554054870e-5,
  4.323024405e-5, -1.376937416e-5, 1.874798386e-6, 3.607257781e-7, -3.034436986e-7, 9.587247263e-8, -1.358326784e-8];

const lit = (v: number) => {
  const s = v.toExponential(9);
  return s.includes('e') ? s.replace('e+', 'e') : s;
};

function hornerWgsl(c: number[], v: string): string {
  let e = lit(c[c.length - 1]);
  for (let i = c.length - 2; i >= 0; i--) e = `(${lit(c[i])} + ${v} * ${e})`;
  return e;
}

function clenshawWgsl(c: number[]): string {
  // b_k = 2u b_{k+1} - b_{k+2} + c_k; result u b_1 - b_2 + c_0.
  let s = 'var b1 = 0.0;\n  var b2 = 0.0;\n';
  for (let k = c.length - 1; k >= 1; k--) s += `  { let b0 = u2 * b1 - b2 + ${lit(c[k])}; b2 = b1; b1 = b0; }\n`;
  s += `  return u * b1 - b2 + ${lit(c[0])};`;
  return s;
}

const MATH = /* wgsl */ `
const INV_SQRT2 = 0.7071067811865476;
const INV_SQRT_2PI = 0.3989422804014327;
const K_TANH = 0.7978845608028654;
const C_TANH = 0.044715;

// sigmoid without overflow: exp of a non-positive argument only.
fn sigmoid(v: f32) -> f32 {
  let e = exp(-abs(v));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), v >= 0.0);
}

// z exp(z^2) erfc(z) for z >= 1, Chebyshev series in u = 2/z - 1.
fn erfcScaled(z: f32) -> f32 {
  let u = 2.0 / z - 1.0;
  let u2 = 2.0 * u;
  ${clenshawWgsl(QC)}
}

// Phi(x) = 0.5 (1 + erf(x / sqrt 2)), the standard normal CDF.
fn normCdf(x: f32) -> f32 {
  let z = x * INV_SQRT2;
  let a = abs(z);
  if (a < 1.0) {
    let s = z * z;
    return 0.5 + 0.5 * z * ${hornerWgsl(P, 's')};
  }
  // exp(-a^2) underflows to 0 for a > ~9.3 (and a*a to inf): the tail is then exactly 0 or 1.
  let half = 0.5 * exp(-a * a) * erfcScaled(a) / a;
  return select(half, 1.0 - half, z > 0.0);
}
`;

/** The GELU elementwise ops: forward y = f(x), backward dx = dy f'(x), in either form. */
export type GeluOp = 'gelu' | 'gelu_bwd' | 'gelu_tanh' | 'gelu_tanh_bwd';
type Op = GeluOp;
const EXPR: Record<Op, string> = {
  gelu: 'xv * normCdf(xv)',
  gelu_bwd: 'gv * (normCdf(xv) + xv * INV_SQRT_2PI * exp(-0.5 * xv * xv))',
  gelu_tanh: 'xv * sigmoid(2.0 * K_TANH * (xv + C_TANH * xv * xv * xv))',
  // d/dx x s(2u) = s + x * 2 s (1 - s) u', 1 - s(2u) = s(-2u)
  gelu_tanh_bwd: `gv * geluTanhGrad(xv)`,
};
const TANH_GRAD = /* wgsl */ `
fn geluTanhGrad(x: f32) -> f32 {
  let u = K_TANH * (x + C_TANH * x * x * x);
  let s = sigmoid(2.0 * u);
  let sm = sigmoid(-2.0 * u);
  let ss = s * sm;
  // s (1 - s) underflows to 0 long before x^3 overflows; 0 * inf would be NaN at |x| > 1e13.
  return s + select(2.0 * x * ss * K_TANH * (1.0 + 3.0 * C_TANH * x * x), 0.0, ss == 0.0);
}`;

/** The GELU op of a form and direction. */
export function geluOp(kind: GeluKind, backward: boolean): GeluOp {
  return `${kind === 'erf' ? 'gelu' : 'gelu_tanh'}${backward ? '_bwd' : ''}` as GeluOp;
}

/**
 * WGSL for applying a GELU op inside another kernel (matmul.ts `act`: a product's epilogue), the
 * same functions and expressions as the elementwise kernels here, so the fused values are theirs: a
 * forward op defines fn actFwd(xv: f32) -> f32, a backward one fn actBwd(gv: f32, xv: f32) -> f32
 * (gv = dy, xv = the forward input).
 */
export function geluEpilogueWgsl(op: GeluOp): string {
  const bwd = op.endsWith('_bwd');
  return `${MATH}${op === 'gelu_tanh_bwd' ? TANH_GRAD : ''}
${bwd ? 'fn actBwd(gv: f32, xv: f32) -> f32' : 'fn actFwd(xv: f32) -> f32'} { return ${EXPR[op]}; }`;
}

/** The name of the elementwise kernel gelu()/geluBackward() dispatch for `op`. */
export function geluKernelName(op: GeluOp, inPlace: boolean, parts: boolean): string {
  return `${op}${inPlace ? '_inplace' : ''}${parts ? '_absmax' : ''}`;
}

// Elementwise op: out[i] = f(x[i]) (forward) or f(x[i], g[i]) (backward, g = dy). In-place
// variants use one read_write binding for the operand that is overwritten (WebGPU forbids binding
// a range both as read and as read_write in one dispatch). `parts`: the variant that also writes the
// result's partial maxima (absmax.ts absmaxPartWgsl): ABSMAX_PARTS workgroups in grid-stride order.
function elemDefGen(op: Op, inPlace: boolean, parts = false): KernelDef {
  const bwd = op.endsWith('_bwd');
  // Bindings: x, [g], out  (in place: forward x is out; backward g is out).
  const decl: string[] = [];
  let load = ''; let store = '';
  if (!bwd) {
    if (inPlace) {
      decl.push('@group(0) @binding(0) var<storage, read_write> xo: array<f32>;');
      load = 'let xv = xo[p.xBase + i];'; store = 'xo[p.xBase + i] = r;';
    } else {
      decl.push('@group(0) @binding(0) var<storage, read> x: array<f32>;', '@group(0) @binding(1) var<storage, read_write> o: array<f32>;');
      load = 'let xv = x[p.xBase + i];'; store = 'o[p.oBase + i] = r;';
    }
  } else if (inPlace) {
    decl.push('@group(0) @binding(0) var<storage, read> x: array<f32>;', '@group(0) @binding(1) var<storage, read_write> go: array<f32>;');
    load = 'let xv = x[p.xBase + i]; let gv = go[p.gBase + i];'; store = 'go[p.gBase + i] = r;';
  } else {
    decl.push('@group(0) @binding(0) var<storage, read> x: array<f32>;', '@group(0) @binding(1) var<storage, read> g: array<f32>;',
      '@group(0) @binding(2) var<storage, read_write> o: array<f32>;');
    load = 'let xv = x[p.xBase + i]; let gv = g[p.gBase + i];'; store = 'o[p.oBase + i] = r;';
  }
  const bindings: ('read' | 'rw')[] = decl.map((d) => (d.includes('read_write') ? 'rw' : 'read'));
  const main = parts ? `
  var m = 0.0;
  for (var i = wg.x * ${WG}u + li; i < p.n; i += ${ABSMAX_PARTS * WG}u) {
    ${load}
    let r = ${EXPR[op]};
    ${store}
    m = amaxNan(m, abs(r));
  }
  writeAbsmaxPart(li, m, wg.x);` : `
  let i = (wg.x + wg.y * nwg.x) * ${WG}u + li;
  if (i >= p.n) { return; }
  ${load}
  let r = ${EXPR[op]};
  ${store}`;
  return {
    name: geluKernelName(op, inPlace, parts),
    bindings: parts ? [...bindings, 'rw'] : bindings,
    uniform: true,
    code: /* wgsl */ `
struct Params { n: u32, xBase: u32, gBase: u32, oBase: u32, partsBase: u32, partsAccumulate: u32 };
${decl.join('\n')}
${parts ? absmaxPartWgsl(WG, decl.length) : ''}
@group(0) @binding(${decl.length + (parts ? 1 : 0)}) var<uniform> p: Params;
${MATH}
${op === 'gelu_tanh_bwd' ? TANH_GRAD : ''}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {${main}
}`,
  };
}

function sameView(a: Tensor, b: Tensor): boolean {
  return a.buffer === b.buffer && a.offset === b.offset;
}

function checkF32(what: string, ...ts: Tensor[]): void {
  for (const t of ts) if (t.dtype !== 'f32') throw new TypeError(`${what}: ${t} must be f32`);
}

export type GeluKind = 'erf' | 'tanh';

// Runs an elementwise op over n elements in chunks that fit the binding limit. `ts` are the
// bound tensors in binding order with the role of each base parameter.
function runElem(gpu: Gpu, def: KernelDef, n: number, ops: { t: Tensor; role: 'x' | 'g' | 'o' }[], parts?: Tensor): void {
  const k = gpu.kernels.get(def);
  const wparts = parts ? absmaxPartsWindow(gpu, parts) : undefined;
  let chunk = 0;
  for (const [s, e] of chunkRanges(n, maxWindowElems(gpu))) {
    const bases = { x: 0, g: 0, o: 0 };
    const ranges = ops.map(({ t, role }) => { const w = windowOf(gpu, t, s, e); bases[role] = w.base; return w.range; });
    if (wparts) ranges.push(wparts.range);
    const params = new ParamWriter().u32(e - s, bases.x, bases.g, bases.o, wparts?.base ?? 0, chunk++ > 0 ? 1 : 0).bytes();
    gpu.recorder.dispatch(k, ranges, params, wparts ? [ABSMAX_PARTS, 1, 1] : grid(Math.ceil((e - s) / WG)));
  }
}

/**
 * y = gelu(x) elementwise (kind 'erf': exact, HF "gelu"; 'tanh': HF "gelu_new"/"gelu_pytorch_tanh").
 * x and y have the same number of elements; y may be x itself (in place), otherwise they must not
 * share a buffer range. `absmax`: also y's partial maxima into this [ABSMAX_PARTS] tensor (absmax.ts),
 * in the same pass (the f16 scale of the linear layer that takes y).
 */
export function gelu(gpu: Gpu, x: Tensor, y: Tensor, kind: GeluKind = 'erf', absmax?: Tensor): void {
  checkF32('gelu', x, y);
  if (x.numel !== y.numel) throw new RangeError(`gelu: ${x} and ${y} differ in size`);
  const op: Op = kind === 'erf' ? 'gelu' : 'gelu_tanh';
  if (sameView(x, y)) runElem(gpu, elemDef(op, true, !!absmax), x.numel, [{ t: x, role: 'x' }], absmax);
  else runElem(gpu, elemDef(op, false, !!absmax), x.numel, [{ t: x, role: 'x' }, { t: y, role: 'o' }], absmax);
}

/**
 * dx = dy * gelu'(x) elementwise, x the forward input. dx may be dy itself (in place). `absmax`: also
 * dx's partial maxima, as for gelu().
 */
export function geluBackward(gpu: Gpu, x: Tensor, dy: Tensor, dx: Tensor, kind: GeluKind = 'erf', absmax?: Tensor): void {
  checkF32('geluBackward', x, dy, dx);
  if (x.numel !== dy.numel || x.numel !== dx.numel) throw new RangeError(`geluBackward: ${x}, ${dy}, ${dx} differ in size`);
  const op: Op = kind === 'erf' ? 'gelu_bwd' : 'gelu_tanh_bwd';
  if (sameView(dy, dx)) runElem(gpu, elemDef(op, true, !!absmax), x.numel, [{ t: x, role: 'x' }, { t: dy, role: 'g' }], absmax);
  else runElem(gpu, elemDef(op, false, !!absmax), x.numel, [{ t: x, role: 'x' }, { t: dy, role: 'g' }, { t: dx, role: 'o' }], absmax);
}

// ---------------------------------------------------------------------------------------------
// SwiGLU over rows with per-operand offsets and strides.

/** Row layout of one operand: element (n, j) is at offset + n * stride + j. */
export interface RowLayout { offset?: number; stride?: number }

export interface SwigluArgs {
  gate: Tensor; up: Tensor; y: Tensor;
  N: number; I: number;
  /** Defaults: offset 0, stride I. Fused gate_up [N, 2I]: gate {0, 2I}, up {I, 2I}. */
  gateLayout?: RowLayout; upLayout?: RowLayout; yLayout?: RowLayout;
  /** The gate's activation: silu (default; SwiGLU) or a GELU (GeGLU). */
  act?: GateAct;
}

export interface SwigluBackwardArgs {
  dy: Tensor; gate: Tensor; up: Tensor; dgate: Tensor; dup: Tensor;
  N: number; I: number;
  dyLayout?: RowLayout; gateLayout?: RowLayout; upLayout?: RowLayout; dgateLayout?: RowLayout; dupLayout?: RowLayout;
  /** The forward's gate activation. */
  act?: GateAct;
}

interface Operand { t: Tensor; off: number; stride: number }

function operand(what: string, t: Tensor, l: RowLayout | undefined, N: number, I: number): Operand {
  const off = l?.offset ?? 0; const stride = l?.stride ?? I;
  if (t.dtype !== 'f32') throw new TypeError(`swiglu ${what}: ${t} must be f32`);
  if (stride < I) throw new RangeError(`swiglu ${what}: stride ${stride} < I ${I}`);
  if (N > 0 && off + (N - 1) * stride + I > t.numel) {
    throw new RangeError(`swiglu ${what}: rows of ${I} at offset ${off} stride ${stride} x ${N} exceed ${t}`);
  }
  return { t, off, stride };
}

/** Element range [first, end) of rows [r0, r1) of the operands in `ops` (all in one buffer). */
function span(ops: Operand[], I: number, r0: number, r1: number): [number, number] {
  let lo = Infinity; let hi = 0;
  for (const o of ops) { lo = Math.min(lo, o.off + r0 * o.stride); hi = Math.max(hi, o.off + (r1 - 1) * o.stride + I); }
  return [lo, hi];
}

/** Rows per chunk so that every binding's span fits one window. */
function swigluRows(gpu: Gpu, groups: Operand[][], N: number, I: number): number {
  const max = maxWindowElems(gpu);
  let rows = N;
  for (const g of groups) {
    // the span of rows [0, r) grows by at most max(stride) per row
    const [lo, hi1] = span(g, I, 0, 1);
    const step = Math.max(...g.map((o) => o.stride));
    const r = Math.floor((max - (hi1 - lo)) / step) + 1;
    if (hi1 - lo > max) throw new RangeError(`swiglu: one row span exceeds the binding limit`);
    rows = Math.min(rows, r);
  }
  return Math.max(1, rows);
}

/** The gate's activation of a gated MLP: SiLU (SwiGLU: Llama, Mistral, Qwen) or a GELU (GeGLU: Gemma). */
export type GateAct = 'silu' | 'gelu' | 'gelu_tanh';
// a(g) and a'(g) in WGSL (the same functions and expressions as the elementwise GELU kernels).
const GATE_FWD: Record<GateAct, string> = {
  silu: 'g * sigmoid(g)', gelu: `${EXPR.gelu.replaceAll('xv', 'g')}`, gelu_tanh: `${EXPR.gelu_tanh.replaceAll('xv', 'g')}`,
};
const GATE_GRAD: Record<GateAct, string> = {
  silu: 's * (1.0 + g * sigmoid(-g))',
  gelu: 'normCdf(g) + g * INV_SQRT_2PI * exp(-0.5 * g * g)',
  gelu_tanh: 'geluTanhGrad(g)',
};

function swigluFwdDefGen(act: GateAct = 'silu'): KernelDef {
  return {
    name: act === 'silu' ? 'swiglu' : `gated_${act}`,
    bindings: ['read', 'read', 'rw'],
    uniform: true,
    code: /* wgsl */ `
struct Params { rows: u32, I: u32, gBase: u32, gStride: u32, uBase: u32, uStride: u32, yBase: u32, yStride: u32 };
@group(0) @binding(0) var<storage, read> gate: array<f32>;
@group(0) @binding(1) var<storage, read> up: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
${MATH}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wg.x + wg.y * nwg.x) * ${WG}u + li;
  if (i >= p.rows * p.I) { return; }
  let n = i / p.I;
  let j = i - n * p.I;
  let g = gate[p.gBase + n * p.gStride + j];
  y[p.yBase + n * p.yStride + j] = ${GATE_FWD[act]} * up[p.uBase + n * p.uStride + j];
}`,
  };
}

// fused: dgate and dup live in one buffer and are written through a single binding.
function swigluBwdDefGen(fused: boolean, act: GateAct = 'silu'): KernelDef {
  return {
    name: `${act === 'silu' ? 'swiglu' : `gated_${act}`}_bwd${fused ? '_fused' : ''}`,
    bindings: fused ? ['read', 'read', 'read', 'rw'] : ['read', 'read', 'read', 'rw', 'rw'],
    uniform: true,
    code: /* wgsl */ `
struct Params {
  rows: u32, I: u32, yBase: u32, yStride: u32, gBase: u32, gStride: u32, uBase: u32, uStride: u32,
  dgBase: u32, dgStride: u32, duBase: u32, duStride: u32,
};
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> gate: array<f32>;
@group(0) @binding(2) var<storage, read> up: array<f32>;
@group(0) @binding(3) var<storage, read_write> dg: array<f32>;
${fused ? '' : '@group(0) @binding(4) var<storage, read_write> du: array<f32>;'}
@group(0) @binding(${fused ? 4 : 5}) var<uniform> p: Params;
${MATH}${act === 'gelu_tanh' ? TANH_GRAD : ''}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wg.x + wg.y * nwg.x) * ${WG}u + li;
  if (i >= p.rows * p.I) { return; }
  let n = i / p.I;
  let j = i - n * p.I;
  let d = dy[p.yBase + n * p.yStride + j];
  let g = gate[p.gBase + n * p.gStride + j];
  let u = up[p.uBase + n * p.uStride + j];
  ${act === 'silu' ? `let s = sigmoid(g);
  dg[p.dgBase + n * p.dgStride + j] = d * u * ${GATE_GRAD.silu};
  ${fused ? 'dg' : 'du'}[p.duBase + n * p.duStride + j] = d * g * s;` : `dg[p.dgBase + n * p.dgStride + j] = d * u * (${GATE_GRAD[act]});
  ${fused ? 'dg' : 'du'}[p.duBase + n * p.duStride + j] = d * ${GATE_FWD[act]};`}
}`,
  };
}

/** y = act(gate) * up over rows [N, I] (act silu by default), each operand with its own offset and row stride. */
export function swiglu(gpu: Gpu, a: SwigluArgs): void {
  const { N, I } = a;
  const g = operand('gate', a.gate, a.gateLayout, N, I);
  const u = operand('up', a.up, a.upLayout, N, I);
  const y = operand('y', a.y, a.yLayout, N, I);
  if (N === 0 || I === 0) return;
  const k = gpu.kernels.get(swigluFwdDef(a.act ?? 'silu'));
  for (const [r0, r1] of chunkRanges(N, swigluRows(gpu, [[g], [u], [y]], N, I))) {
    const w = [g, u, y].map((o) => windowOf(gpu, o.t, ...span([o], I, r0, r1)));
    const params = new ParamWriter().u32(r1 - r0, I, w[0].base, g.stride, w[1].base, u.stride, w[2].base, y.stride).bytes();
    gpu.recorder.dispatch(k, w.map((x) => x.range), params, grid(Math.ceil(((r1 - r0) * I) / WG)));
  }
}

/**
 * dgate = dy * up * act'(gate), dup = dy * act(gate) (silu: act' = s (1 + gate (1 - s)), s = sigmoid(gate)); written (not
 * accumulated). dgate and dup may be two halves of one buffer (a fused [N, 2I] gradient).
 */
export function swigluBackward(gpu: Gpu, a: SwigluBackwardArgs): void {
  const { N, I } = a;
  const dy = operand('dy', a.dy, a.dyLayout, N, I);
  const g = operand('gate', a.gate, a.gateLayout, N, I);
  const u = operand('up', a.up, a.upLayout, N, I);
  const dg = operand('dgate', a.dgate, a.dgateLayout, N, I);
  const du = operand('dup', a.dup, a.dupLayout, N, I);
  if (N === 0 || I === 0) return;
  const fused = a.dgate.buffer === a.dup.buffer;
  const outs = fused ? [[dg, du]] : [[dg], [du]];
  const k = gpu.kernels.get(swigluBwdDef(fused, a.act ?? 'silu'));
  for (const [r0, r1] of chunkRanges(N, swigluRows(gpu, [[dy], [g], [u], ...outs], N, I))) {
    const wIn = [dy, g, u].map((o) => windowOf(gpu, o.t, ...span([o], I, r0, r1)));
    const wOut = outs.map((grp) => windowOf(gpu, grp[0].t, ...span(grp, I, r0, r1)));
    // Fused: both outputs are addressed from the one window's start.
    const start = fused ? span(outs[0], I, r0, r1)[0] : 0;
    const dgBase = fused ? wOut[0].base + dg.off + r0 * dg.stride - start : wOut[0].base;
    const duBase = fused ? wOut[0].base + du.off + r0 * du.stride - start : wOut[1].base;
    const params = new ParamWriter().u32(r1 - r0, I, wIn[0].base, dy.stride, wIn[1].base, g.stride, wIn[2].base, u.stride,
      dgBase, dg.stride, duBase, du.stride).bytes();
    gpu.recorder.dispatch(k, [...wIn, ...wOut].map((x) => x.range), params, grid(Math.ceil(((r1 - r0) * I) / WG)));
  }
}

// Generated kernel definitions are memoized by their arguments: the WGSL is built once per
// variant, and the kernel cache finds the pipeline by the definition's identity.
const elemDef = memoDef(elemDefGen);
const swigluFwdDef = memoDef(swigluFwdDefGen);
const swigluBwdDef = memoDef(swigluBwdDefGen);
