// One GPT-NeoX (Pythia) block, forward and backward, llm.c style: explicit steps over named
// buffers. N tokens, D = hidden, H heads of Dh, I = MLP width.
//
//   ln1 = LayerNorm1(x)                        [N, D]
//   qkv = ln1 Wqkv^T + bqkv                    [N, 3D], per token [H, 3, Dh] (HF's fused order)
//   rotary on the first rotaryDim channels of q and k (in place, per token position)
//   att = attention(q, k, v)                   [N, H, Dh] (over the rows whole: B T tokens, the mask's layout;
//                                              a shared prefix's N are fewer, shared-prefix.ts)
//   parallel:   y = x + att Wo^T + bo + MLP(LayerNorm2(x))
//   sequential: x1 = x + att Wo^T + bo; y = x1 + MLP(LayerNorm2(x1))
//   MLP(z) = gelu(z W1^T + b1) W2^T + b2       (hidden [N, I]; GELU and its backward in the products' epilogues)
import type { Tensor } from '../engine/tensor.js';
import { copy } from '../kernels/elementwise.js';
import { normBackward, normForward } from '../kernels/layernorm.js';
import { attentionBackward, attentionForward, type HeadOperand } from '../kernels/attention.js';
import { gelu, geluOp } from '../kernels/activations.js';
import { rotary } from '../kernels/rotary.js';
import { modelInvFreq } from './rope.js';
import { linearBackward, linearForward, operandScale, producedScale } from './linear.js';
import { columnSum } from '../kernels/column-sum.js';
import type { BlockTail } from './block-tail.js';
import { gatherRows, spreadRows } from './rows.js';
import { layerWindow, maskOf, type ForwardContext } from './context.js';

export interface NeoxSaved {
  x: Tensor; ln1: Tensor; mean1: Tensor; rstd1: Tensor; qkv: Tensor; att: Tensor; lse: Tensor;
  x1?: Tensor; ln2: Tensor; mean2: Tensor; rstd2: Tensor;
  /** GELU's input [N, I] (none after an in-place forward, which has no backward). */
  h?: Tensor;
  /**
   * The last block's tail on the scored rows (block-tail.ts): those rows of x and att ([n, D]; x only
   * with the parallel residual and a backward, as LayerNorm2's input). ln2 .. h then have n rows.
   */
  tail?: BlockTail & { x?: Tensor; att: Tensor };
}

const P = (l: number, s: string) => `gpt_neox.layers.${l}.${s}`;

function geluKind(act: string): 'erf' | 'tanh' {
  if (act === 'gelu') return 'erf';
  if (act === 'gelu_tanh') return 'tanh';
  throw new Error(`GPT-NeoX with activation ${act} is not supported (gelu or gelu_tanh)`);
}

function qkvOperands(qkv: Tensor, H: number, Dh: number): { q: HeadOperand; k: HeadOperand; v: HeadOperand } {
  const tokenStride = 3 * H * Dh; const headStride = 3 * Dh;
  return {
    q: { tensor: qkv, offset: 0, tokenStride, headStride },
    k: { tensor: qkv, offset: Dh, tokenStride, headStride },
    v: { tensor: qkv, offset: 2 * Dh, tokenStride, headStride },
  };
}

/**
 * Runs block l on x [N, D] and returns y [N, D] and what the backward needs. y is a new tensor, or
 * with `inPlace` (a forward without backward: x is needed by nothing after this block) x itself, the
 * residual sums added into it, which saves a copy of the residual stream per block. With `tail` (the
 * last block, block-tail.ts) everything after attention runs on the tail's rows: y is [n, D], new.
 */
export function neoxBlockForward(ctx: ForwardContext, l: number, x: Tensor, inPlace = false, tail?: BlockTail): { y: Tensor; saved: NeoxSaved } {
  const { gpu, cfg, params: p, batch } = ctx;
  const { N, B, T } = batch;
  const D = cfg.hiddenSize; const H = cfg.numHeads; const Dh = cfg.headDim; const I = cfg.intermediateSize;
  const acq = (shape: number[], name: string) => gpu.pool.acquire(shape, 'f32', name);
  const eps = cfg.normEps;

  // In f16 precision the norms and GELU also write their output's partial maxima (the next linear
  // layer's operand scale), so no absmax pass reads those outputs again.
  const ln1 = acq([N, D], 'ln1'); const mean1 = acq([N], 'mean1'); const rstd1 = acq([N], 'rstd1');
  const s1 = producedScale(gpu);
  normForward(gpu, false, { x, w: p.get(P(l, 'input_layernorm.weight')), b: p.get(P(l, 'input_layernorm.bias')), y: ln1, mean: mean1, rstd: rstd1, N, D, eps, absmax: s1 });
  const qkv = acq([N, 3 * D], 'qkv');
  linearForward(gpu, ln1, p.get(P(l, 'attention.query_key_value.weight')), p.getOptional(P(l, 'attention.query_key_value.bias')), qkv, N, D, 3 * D, false, s1);
  if (s1) gpu.pool.release(s1);
  const ops = qkvOperands(qkv, H, Dh);
  rotary(gpu, { x: ops.q, also: ops.k, N, heads: H, headDim: Dh, rotaryDim: cfg.rotaryDim, theta: cfg.ropeTheta, invFreq: modelInvFreq(cfg), positions: batch.positions });
  const att = acq([N, D], 'att'); const lse = acq(ctx.attend ? [1] : [B, H, T], 'lse');
  // A shared prefix (no backward): attention reads the rows whole, gathered from the compact order.
  const sp = batch.shared;
  if (ctx.attend) {
    ctx.attend(l, ops.q, ops.k, ops.v, att);
  } else {
    const qkvRows = sp ? gatherRows(gpu, qkv, sp.toCompact, sp.full, N, 3 * D, 'qkv_rows') : qkv;
    const attRows = sp ? acq([sp.full, D], 'att_rows') : att;
    const rowOps = sp ? qkvOperands(qkvRows, H, Dh) : ops;
    attentionForward(gpu, { B, T, Hq: H, Hkv: H, Dh, q: rowOps.q, k: rowOps.k, v: rowOps.v, mask: maskOf(batch), window: layerWindow(cfg, l), out: { tensor: attRows }, lse });
    if (sp) { gatherRows(gpu, attRows, sp.toFull, N, sp.full, D, att); gpu.pool.release(qkvRows, attRows); }
  }

  // The rest is row by row: on the tail's rows only where there is one (xt, attT: Nt rows, new tensors).
  const Nt = tail ? tail.n : N;
  const xt = tail ? gatherRows(gpu, x, tail.rows, Nt, N, D, 'x_tail') : x;
  const attT = tail ? gatherRows(gpu, att, tail.rows, Nt, N, D, 'att_tail') : att;
  const ln2 = acq([Nt, D], 'ln2'); const mean2 = acq([Nt], 'mean2'); const rstd2 = acq([Nt], 'rstd2');
  const s2 = producedScale(gpu);
  const norm2 = (z: Tensor) => normForward(gpu, false, { x: z, w: p.get(P(l, 'post_attention_layernorm.weight')), b: p.get(P(l, 'post_attention_layernorm.bias')), y: ln2, mean: mean2, rstd: rstd2, N: Nt, D, eps, absmax: s2 });
  // Parallel: the MLP reads x, so its norm runs before anything is added to x (in place).
  if (cfg.parallelResidual) norm2(xt);
  // The tail's rows of x are LayerNorm2's input in the parallel form (kept for the backward); else
  // nothing reads them after this, and they become y as x does in place.
  const keepXt = !!tail && !inPlace && cfg.parallelResidual;
  const y = inPlace || (tail && !keepXt) ? xt : acq([Nt, D], 'x');
  if (y !== xt) copy(gpu, xt, y);
  linearForward(gpu, attT, p.get(P(l, 'attention.dense.weight')), p.getOptional(P(l, 'attention.dense.bias')), y, Nt, D, D, true);
  // Sequential: the MLP reads x1 = x + attention; a copy is kept for the backward (LayerNorm2's input).
  let x1: Tensor | undefined;
  if (!cfg.parallelResidual) {
    if (!inPlace) { x1 = acq([Nt, D], 'x1'); copy(gpu, y, x1); }
    norm2(x1 ?? y);
  }
  // a = gelu(ln2 W1^T + b1), GELU in the product's epilogue where it can be (matmul.ts act); its
  // input h is kept for the backward (not in place: there is none).
  const h = inPlace ? undefined : acq([Nt, I], 'mlp_h');
  const a = acq([Nt, I], 'mlp_act');
  const s3 = producedScale(gpu);
  linearForward(gpu, ln2, p.get(P(l, 'mlp.dense_h_to_4h.weight')), p.get(P(l, 'mlp.dense_h_to_4h.bias')), a, Nt, D, I, false, s2,
    { op: geluOp(geluKind(cfg.act), false), pre: h, absmax: s3 });
  linearForward(gpu, a, p.get(P(l, 'mlp.dense_4h_to_h.weight')), p.get(P(l, 'mlp.dense_4h_to_h.bias')), y, Nt, I, D, true, s3);
  gpu.pool.release(a);
  for (const s of [s2, s3]) if (s) gpu.pool.release(s);
  const savedTail = tail ? { ...tail, x: keepXt ? xt : undefined, att: attT } : undefined;
  return { y, saved: { x, ln1, mean1, rstd1, qkv, att, lse, x1, ln2, mean2, rstd2, h, tail: savedTail } };
}

/** Frees what a block saved, except its input x (owned by the caller). */
export function neoxFreeSaved(ctx: ForwardContext, s: NeoxSaved): void {
  ctx.gpu.pool.release(s.ln1, s.mean1, s.rstd1, s.qkv, s.att, s.lse, s.x1, s.ln2, s.mean2, s.rstd2, s.h, s.tail?.x, s.tail?.att);
}

/**
 * Backward of block l: given dy = dL/dy [N, D] ([n, D] with a tail), returns dL/dx [N, D] (a new
 * tensor; the caller releases dy). Parameter gradients are added into ctx.params' grads.
 *   parallel:   dx = dy + LN1'(A'(dy)) + LN2'(M'(dy))
 *   sequential: dx1 = dy + LN2'(M'(dy));  dx = dx1 + LN1'(A'(dx1))
 * With a tail, the terms but LN1'(...) have its n rows: they are scattered into dx's rows.
 */
export function neoxBlockBackward(ctx: ForwardContext, l: number, s: NeoxSaved, dy: Tensor): Tensor {
  const { gpu, cfg } = ctx;
  const { N } = ctx.batch;
  const Nt = s.tail?.n ?? N;
  const D = cfg.hiddenSize;
  const dxT = gpu.pool.acquire([Nt, D], 'f32', s.tail ? 'dx_tail' : 'dx');
  // dx = dy + the branches' gradients: LayerNorm2's backward (mlpBackward) writes dy + its part, so dy
  // is not copied into dx first.
  // Parallel: both branches' output layers take dy, so its f16 scale is found once, and their bias
  // gradients (both dy's column sums) come from one pass over dy, which finds the scale too.
  const denseBias = ctx.params.gradOptional(P(l, 'attention.dense.bias'));
  const sharedBias = cfg.parallelResidual && !!denseBias;
  let dyScale = sharedBias ? producedScale(gpu) : undefined;
  if (sharedBias) columnSum(gpu, { x: dy, out: ctx.params.grad(P(l, 'mlp.dense_4h_to_h.bias')), also: denseBias, N: Nt, D, accumulate: true, absmax: dyScale });
  if (cfg.parallelResidual && !dyScale) dyScale = operandScale(gpu, dy, Nt * D);
  mlpBackward(ctx, l, s, dy, dxT, dyScale, sharedBias);
  // Sequential: the attention branch's output gradient is dx1, which dxT now holds; the branch
  // reads it fully (dense-layer backward) before LayerNorm1's backward adds into dx (dxT itself
  // without a tail).
  const dx = s.tail ? spreadRows(gpu, dxT, s.tail.rows, Nt, N, D, 'dx') : dxT;
  attentionBranchBackward(ctx, l, s, cfg.parallelResidual ? dy : dxT, dx, dyScale, sharedBias);
  if (dyScale) gpu.pool.release(dyScale);
  if (dx !== dxT) gpu.pool.release(dxT);
  return dx;
}

/** The MLP's backward on the tail's rows (all N without one): dx = dOut + LN2'(M'(dOut)). */
function mlpBackward(ctx: ForwardContext, l: number, s: NeoxSaved, dOut: Tensor, dx: Tensor, dOutScale?: Tensor, sharedBias = false): void {
  const { gpu, cfg, params: p } = ctx;
  const N = s.tail?.n ?? ctx.batch.N;
  const D = cfg.hiddenSize; const I = cfg.intermediateSize;
  const acq = (shape: number[], name: string) => gpu.pool.acquire(shape, 'f32', name);
  const g = (name: string) => p.grad(P(l, name));
  const w = (name: string) => p.get(P(l, name));
  const h = s.h;
  if (!h) throw new Error('GPT-NeoX backward: the forward kept no MLP activations (it ran in place)');
  const a = acq([N, I], 'mlp_act');
  gelu(gpu, h, a, geluKind(cfg.act)); // recomputed rather than stored
  // dh = (dOut W2) * gelu'(h): GELU's backward in the dx product's epilogue where it can be (matmul.ts act).
  // (sharedBias: the bias gradient was added with the attention output's, neoxBlockBackward.)
  const dh = acq([N, I], 'd_mlp_h');
  const dhScale = producedScale(gpu);
  linearBackward(gpu, dOut, a, w('mlp.dense_4h_to_h.weight'), { dx: dh, dxAct: { op: geluOp(geluKind(cfg.act), true), pre: h, absmax: dhScale },
    dw: g('mlp.dense_4h_to_h.weight'), db: sharedBias ? undefined : g('mlp.dense_4h_to_h.bias') }, N, I, D, dOutScale);
  gpu.pool.release(a);
  const dln2 = acq([N, D], 'd_ln2');
  linearBackward(gpu, dh, s.ln2, w('mlp.dense_h_to_4h.weight'), { dx: dln2, dw: g('mlp.dense_h_to_4h.weight'), db: g('mlp.dense_h_to_4h.bias') }, N, D, I, dhScale);
  gpu.pool.release(dh);
  if (dhScale) gpu.pool.release(dhScale);
  normBackward(gpu, false, { dy: dln2, x: s.x1 ?? s.tail?.x ?? s.x, w: w('post_attention_layernorm.weight'), mean: s.mean2, rstd: s.rstd2, dx, residual: dOut, dw: g('post_attention_layernorm.weight'), db: g('post_attention_layernorm.bias'), N, D });
  gpu.pool.release(dln2);
}

function attentionBranchBackward(ctx: ForwardContext, l: number, s: NeoxSaved, dOut: Tensor, dx: Tensor, dOutScale?: Tensor, sharedBias = false): void {
  const { gpu, cfg, params: p, batch } = ctx;
  const { N, B, T } = batch;
  const D = cfg.hiddenSize; const H = cfg.numHeads; const Dh = cfg.headDim;
  const acq = (shape: number[], name: string) => gpu.pool.acquire(shape, 'f32', name);
  const g = (name: string) => p.grad(P(l, name));
  const w = (name: string) => p.get(P(l, name));
  // The dense layer on the tail's rows (dOut has them), its dx scattered to every row for attention.
  const Nt = s.tail?.n ?? N;
  let datt = acq([Nt, D], 'd_att');
  linearBackward(gpu, dOut, s.tail?.att ?? s.att, w('attention.dense.weight'), { dx: datt, dw: g('attention.dense.weight'), db: sharedBias ? undefined : p.gradOptional(P(l, 'attention.dense.bias')) }, Nt, D, D, dOutScale);
  if (s.tail) { const full = spreadRows(gpu, datt, s.tail.rows, Nt, N, D, 'd_att'); gpu.pool.release(datt); datt = full; }
  const dqkv = acq([N, 3 * D], 'd_qkv');
  const ops = qkvOperands(s.qkv, H, Dh);
  const dops = qkvOperands(dqkv, H, Dh);
  attentionBackward(gpu, { B, T, Hq: H, Hkv: H, Dh, q: ops.q, k: ops.k, v: ops.v, mask: maskOf(batch), window: layerWindow(cfg, l),
    out: { tensor: s.att }, lse: s.lse, dout: { tensor: datt }, dq: dops.q, dk: dops.k, dv: dops.v });
  gpu.pool.release(datt);
  rotary(gpu, { x: dops.q, also: dops.k, N, heads: H, headDim: Dh, rotaryDim: cfg.rotaryDim, theta: cfg.ropeTheta, invFreq: modelInvFreq(cfg), positions: batch.positions, inverse: true });
  const dln1 = acq([N, D], 'd_ln1');
  linearBackward(gpu, dqkv, s.ln1, w('attention.query_key_value.weight'), { dx: dln1, dw: g('attention.query_key_value.weight'), db: p.gradOptional(P(l, 'attention.query_key_value.bias')) }, N, D, 3 * D);
  gpu.pool.release(dqkv);
  normBackward(gpu, false, { dy: dln1, x: s.x, w: w('input_layernorm.weight'), mean: s.mean1, rstd: s.rstd1, dx, accumulateDx: true, dw: g('input_layernorm.weight'), db: g('input_layernorm.bias'), N, D });
  gpu.pool.release(dln1);
}
