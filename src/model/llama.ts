// One Llama/Mistral/Qwen2/Qwen3/Gemma/Gemma 2/Gemma 3/Phi-3 block, forward and backward, llm.c style. N tokens, D = hidden,
// Hq query heads and Hkv key/value heads of Dh (grouped-query attention), I = MLP width.
//
//   n1 = RMSNorm1(x)
//   q = n1 Wq^T (+bq) [N, Hq, Dh];  k = n1 Wk^T (+bk), v = n1 Wv^T (+bv) [N, Hkv, Dh]
//   Qwen3, Gemma 3: q = RMSNorm_q(q), k = RMSNorm_k(k) over each head's Dh channels (q_norm / k_norm, gains [Dh])
//   rotary on q and k (full head by default), theta = rope_theta (Gemma 3's sliding layers: rope_local_base_freq)
//   att = attention(q, k, v) (a sliding window for Mistral, and on the Qwens' and Gemma 2's / 3's sliding layers: layerWindow;
//         Gemma 2 and 3 scale the scores by query_pre_attn_scalar^-1/2, Gemma 2 then soft-caps them: cap tanh(s / cap))
//   x1 = x + att Wo^T (+bo)                          Gemma 2 / 3: x1 = x + RMSNorm_pa(att Wo^T)
//   n2 = RMSNorm2(x1);  y = x1 + (act(n2 Wg^T) * (n2 Wu^T)) Wd^T      Gemma 2 / 3: y = x1 + RMSNorm_pf(... Wd^T)
// act is SiLU (SwiGLU), Gemma's a GELU (GeGLU). Gemma's RMSNorm gains are 1 + w (context.ts normOffset), and
// RMSNorm2 is its pre_feedforward_layernorm in Gemma 2 / 3, where post_attention_layernorm normalizes the attention's output.
// Biases exist only where the checkpoint has them (attention_bias / mlp_bias configs). Phi-3 stores Wq, Wk, Wv as the rows of
// one qkv_proj and Wg, Wu as those of one gate_up_proj: each is read (and its gradient written) as a view of those rows.
import type { Tensor } from '../engine/tensor.js';
import { copy } from '../kernels/elementwise.js';
import { normBackward, normForward } from '../kernels/layernorm.js';
import { attentionBackward, attentionForward } from '../kernels/attention.js';
import { swiglu, swigluBackward } from '../kernels/activations.js';
import { rotary } from '../kernels/rotary.js';
import { layerRope } from './rope.js';
import { linearBackward, linearForward, operandScale, producedScale } from './linear.js';
import { attentionScale, attentionSoftcap, hasHeadNorms, hasSandwichNorms, layerWindow, maskOf, normOffset, type ForwardContext, type ModelShape } from './context.js';
import type { BlockTail } from './block-tail.js';
import { gatherRows, spreadRows } from './rows.js';

export interface LlamaSaved {
  x: Tensor; n1: Tensor; rstd1: Tensor; q: Tensor; k: Tensor; v: Tensor; att: Tensor; lse: Tensor;
  /** Qwen3, Gemma 3: the q and k projections before their head norms [N, H Dh] and the norms' 1/rms [N H] (none after an in-place forward). */
  headNorm?: { qProj: Tensor; kProj: Tensor; rstdQ: Tensor; rstdK: Tensor };
  /** x + attention, RMSNorm2's input (none after an in-place forward, which has no backward). */
  x1?: Tensor;
  /** Gemma 3: the attention's and the MLP's outputs before their post-norms [N, D], and the norms' 1/rms [N] (none in place). */
  postNorm?: { attOut: Tensor; rstdAtt: Tensor; mlpOut: Tensor; rstdMlp: Tensor };
  n2: Tensor; rstd2: Tensor; gate: Tensor; up: Tensor;
  /** The last block's tail on the scored rows (block-tail.ts): att's rows [n, Hq Dh]; x1 .. up then have n rows. */
  tail?: BlockTail & { att: Tensor };
}

const P = (l: number, s: string) => `model.layers.${l}.${s}`;

/** Phi-3's fused tensors (tensor-names.ts): which one holds a split projection's weight, and at which rows. */
function fusedPart(cfg: ModelShape, name: string): { fused: string; r0: number; r1: number } | undefined {
  if (cfg.arch !== 'phi3') return undefined;
  const Q = cfg.numHeads * cfg.headDim; const KV = cfg.numKvHeads * cfg.headDim; const I = cfg.intermediateSize;
  switch (name) {
    case 'self_attn.q_proj.weight': return { fused: 'self_attn.qkv_proj.weight', r0: 0, r1: Q };
    case 'self_attn.k_proj.weight': return { fused: 'self_attn.qkv_proj.weight', r0: Q, r1: Q + KV };
    case 'self_attn.v_proj.weight': return { fused: 'self_attn.qkv_proj.weight', r0: Q + KV, r1: Q + 2 * KV };
    case 'mlp.gate_proj.weight': return { fused: 'mlp.gate_up_proj.weight', r0: 0, r1: I };
    case 'mlp.up_proj.weight': return { fused: 'mlp.gate_up_proj.weight', r0: I, r1: 2 * I };
    default: return undefined;
  }
}

// The row views of a fused tensor, made once each: the same view object every step (f16 copies and bind groups key by it).
const partViews = new WeakMap<Tensor, Map<number, Tensor>>();
function rowsView(t: Tensor, r0: number, r1: number): Tensor {
  let m = partViews.get(t);
  if (!m) partViews.set(t, (m = new Map()));
  let v = m.get(r0);
  if (!v) m.set(r0, (v = t.rows(r0, r1)));
  return v;
}

/** Layer l's weight `name` (or its gradient): the parameter itself, or Phi-3's rows of the fused one. */
function layerTensor(cfg: ModelShape, l: number, name: string, get: (full: string) => Tensor): Tensor {
  const part = fusedPart(cfg, name);
  return part ? rowsView(get(P(l, part.fused)), part.r0, part.r1) : get(P(l, name));
}
/** The norm before the MLP: post_attention_layernorm, but Gemma 3's pre_feedforward_layernorm (its post_attention_layernorm
 *  normalizes the attention's output). */
const mlpNormName = (cfg: ModelShape) => hasSandwichNorms(cfg) ? 'pre_feedforward_layernorm.weight' : 'post_attention_layernorm.weight';

/**
 * Runs block l on x [N, D]: y [N, D] (a new tensor, or x itself with `inPlace`: a forward without
 * backward, the residual sums added into x; neoxBlockForward) and what the backward needs. With
 * `tail` (the last block, block-tail.ts) everything after attention runs on its rows: y [n, D], new.
 */
export function llamaBlockForward(ctx: ForwardContext, l: number, x: Tensor, inPlace = false, tail?: BlockTail): { y: Tensor; saved: LlamaSaved } {
  const { gpu, cfg, params: p, batch } = ctx;
  const { N, B, T } = batch;
  const D = cfg.hiddenSize; const Hq = cfg.numHeads; const Hkv = cfg.numKvHeads; const Dh = cfg.headDim;
  const I = cfg.intermediateSize; const eps = cfg.normEps; const wOffset = normOffset(cfg);
  const acq = (shape: number[], name: string) => gpu.pool.acquire(shape, 'f32', name);
  const w = (name: string) => layerTensor(cfg, l, name, (n) => p.get(n));
  const bias = (name: string) => p.getOptional(P(l, name));

  const n1 = acq([N, D], 'n1'); const rstd1 = acq([N], 'rstd1');
  const s1 = producedScale(gpu); // one max |n1| for q, k and v, written by the norm
  normForward(gpu, true, { x, w: w('input_layernorm.weight'), y: n1, rstd: rstd1, N, D, eps, absmax: s1, wOffset });
  const qIn = acq([N, Hq * Dh], 'q'); const kIn = acq([N, Hkv * Dh], 'k'); const v = acq([N, Hkv * Dh], 'v');
  linearForward(gpu, n1, w('self_attn.q_proj.weight'), bias('self_attn.q_proj.bias'), qIn, N, D, Hq * Dh, false, s1);
  linearForward(gpu, n1, w('self_attn.k_proj.weight'), bias('self_attn.k_proj.bias'), kIn, N, D, Hkv * Dh, false, s1);
  linearForward(gpu, n1, w('self_attn.v_proj.weight'), bias('self_attn.v_proj.bias'), v, N, D, Hkv * Dh, false, s1);
  gpu.pool.release(s1);
  let headNorm: LlamaSaved['headNorm'];
  let q = qIn; let k = kIn;
  if (hasHeadNorms(cfg)) {
    // Each head's Dh channels as a row of their own: [N H, Dh] through the model's RMSNorm kernel.
    const norm = (x: Tensor, heads: number, name: 'q' | 'k') => {
      const y = acq([N, heads * Dh], name); const rstd = acq([N * heads], `rstd_${name}`);
      normForward(gpu, true, { x, w: w(`self_attn.${name}_norm.weight`), y, rstd, N: N * heads, D: Dh, eps, wOffset });
      return { y, rstd };
    };
    const nq = norm(qIn, Hq, 'q'); const nk = norm(kIn, Hkv, 'k');
    q = nq.y; k = nk.y;
    if (inPlace) gpu.pool.release(qIn, kIn, nq.rstd, nk.rstd);
    else headNorm = { qProj: qIn, kProj: kIn, rstdQ: nq.rstd, rstdK: nk.rstd };
  }
  const rope = layerRope(cfg, l);
  const rot = (x: Tensor, heads: number) => ({ x: { tensor: x }, heads, N, headDim: Dh, rotaryDim: cfg.rotaryDim, ...rope, positions: batch.positions });
  rotary(gpu, rot(q, Hq));
  rotary(gpu, rot(k, Hkv));
  const att = acq([N, Hq * Dh], 'att'); const lse = acq(ctx.attend ? [1] : [B, Hq, T], 'lse');
  // A shared prefix (no backward): attention reads the rows whole, gathered from the compact order.
  const sp = batch.shared;
  if (ctx.attend) {
    ctx.attend(l, { tensor: q }, { tensor: k }, { tensor: v }, att);
  } else {
    const rows = (t: Tensor, width: number, name: string) => sp ? gatherRows(gpu, t, sp.toCompact, sp.full, N, width, name) : t;
    const qr = rows(q, Hq * Dh, 'q_rows'); const kr = rows(k, Hkv * Dh, 'k_rows'); const vr = rows(v, Hkv * Dh, 'v_rows');
    const attRows = sp ? acq([sp.full, Hq * Dh], 'att_rows') : att;
    attentionForward(gpu, { B, T, Hq, Hkv, Dh, q: { tensor: qr }, k: { tensor: kr }, v: { tensor: vr }, mask: maskOf(batch),
      window: layerWindow(cfg, l), scale: attentionScale(cfg), softcap: attentionSoftcap(cfg), out: { tensor: attRows }, lse });
    if (sp) { gatherRows(gpu, attRows, sp.toFull, N, sp.full, Hq * Dh, att); gpu.pool.release(qr, kr, vr, attRows); }
  }
  // The rest is row by row: on the tail's rows only where there is one (x1, attT: Nt rows, new tensors).
  // x1 = x + attention: in place, x itself (and y too); otherwise kept for the backward (RMSNorm2's
  // input): the tail's gathered rows, or a copy of x; y is then its copy.
  const Nt = tail ? tail.n : N;
  const x1 = tail ? gatherRows(gpu, x, tail.rows, Nt, N, D, inPlace ? 'x_tail' : 'x1') : inPlace ? x : acq([N, D], 'x1');
  if (x1 !== x && !tail) copy(gpu, x, x1);
  const attT = tail ? gatherRows(gpu, att, tail.rows, Nt, N, Hq * Dh, 'att_tail') : att;
  // Gemma 3: a branch's output [Nt, D] normalized into the residual stream (y += RMSNorm(out)); elsewhere the
  // projection adds into the stream itself.
  const sandwich = hasSandwichNorms(cfg);
  const postNormInto = (out: Tensor, into: Tensor, name: string) => {
    const rstd = acq([Nt], `rstd_${name}`);
    normForward(gpu, true, { x: out, w: w(`${name}.weight`), y: into, rstd, N: Nt, D, eps, wOffset, accumulate: true });
    return rstd;
  };
  let attOut: Tensor | undefined; let rstdAtt: Tensor | undefined;
  if (sandwich) {
    attOut = acq([Nt, D], 'att_out');
    linearForward(gpu, attT, w('self_attn.o_proj.weight'), bias('self_attn.o_proj.bias'), attOut, Nt, Hq * Dh, D, false);
    rstdAtt = postNormInto(attOut, x1, 'post_attention_layernorm');
  } else {
    linearForward(gpu, attT, w('self_attn.o_proj.weight'), bias('self_attn.o_proj.bias'), x1, Nt, Hq * Dh, D, true);
  }
  const n2 = acq([Nt, D], 'n2'); const rstd2 = acq([Nt], 'rstd2');
  const s2 = producedScale(gpu); // one max |n2| for gate and up, written by the norm
  normForward(gpu, true, { x: x1, w: w(mlpNormName(cfg)), y: n2, rstd: rstd2, N: Nt, D, eps, absmax: s2, wOffset });
  const gate = acq([Nt, I], 'gate'); const up = acq([Nt, I], 'up');
  linearForward(gpu, n2, w('mlp.gate_proj.weight'), bias('mlp.gate_proj.bias'), gate, Nt, D, I, false, s2);
  linearForward(gpu, n2, w('mlp.up_proj.weight'), bias('mlp.up_proj.bias'), up, Nt, D, I, false, s2);
  gpu.pool.release(s2);
  const a = acq([Nt, I], 'mlp_act');
  swiglu(gpu, { gate, up, y: a, N: Nt, I, act: cfg.act }); // SiLU, or Gemma's GELU
  const y = inPlace ? x1 : acq([Nt, D], 'x');
  if (!inPlace) copy(gpu, x1, y);
  let postNorm: LlamaSaved['postNorm'];
  if (sandwich) {
    const mlpOut = acq([Nt, D], 'mlp_out');
    linearForward(gpu, a, w('mlp.down_proj.weight'), bias('mlp.down_proj.bias'), mlpOut, Nt, I, D, false);
    const rstdMlp = postNormInto(mlpOut, y, 'post_feedforward_layernorm');
    if (inPlace) gpu.pool.release(attOut, rstdAtt, mlpOut, rstdMlp);
    else postNorm = { attOut: attOut!, rstdAtt: rstdAtt!, mlpOut, rstdMlp };
  } else {
    linearForward(gpu, a, w('mlp.down_proj.weight'), bias('mlp.down_proj.bias'), y, Nt, I, D, true);
  }
  gpu.pool.release(a);
  const savedTail = tail ? { ...tail, att: attT } : undefined;
  return { y, saved: { x, n1, rstd1, q, k, v, att, lse, headNorm, x1: inPlace ? undefined : x1, postNorm, n2, rstd2, gate, up, tail: savedTail } };
}

export function llamaFreeSaved(ctx: ForwardContext, s: LlamaSaved): void {
  // (After an in-place forward x1 was the block's output, which the caller owns: none is saved.)
  ctx.gpu.pool.release(s.n1, s.rstd1, s.q, s.k, s.v, s.att, s.lse, s.x1, s.n2, s.rstd2, s.gate, s.up, s.tail?.att);
  if (s.headNorm) ctx.gpu.pool.release(s.headNorm.qProj, s.headNorm.kProj, s.headNorm.rstdQ, s.headNorm.rstdK);
  if (s.postNorm) ctx.gpu.pool.release(s.postNorm.attOut, s.postNorm.rstdAtt, s.postNorm.mlpOut, s.postNorm.rstdMlp);
}

/** Backward of block l: dy [N, D] ([n, D] with a tail) in, dL/dx [N, D] returned as a new tensor
 *  (caller releases dy).  dx1 = dy + RMS2'(MLP'(dy));  dx = dx1 + RMS1'(Attn'(dx1)); with a tail,
 *  dx1 has its n rows, scattered into dx's. */
export function llamaBlockBackward(ctx: ForwardContext, l: number, s: LlamaSaved, dy: Tensor): Tensor {
  const { gpu, cfg, params: p, batch } = ctx;
  const { B, T } = batch;
  const Nfull = batch.N;
  // The MLP, RMSNorm2 and the output projection run on the tail's rows (all without one).
  const N = s.tail?.n ?? Nfull;
  const x1 = s.x1;
  if (!x1) throw new Error('Llama backward: the forward kept no activations (it ran in place)');
  const D = cfg.hiddenSize; const Hq = cfg.numHeads; const Hkv = cfg.numKvHeads; const Dh = cfg.headDim;
  const I = cfg.intermediateSize; const wOffset = normOffset(cfg);
  const acq = (shape: number[], name: string) => gpu.pool.acquire(shape, 'f32', name);
  const w = (name: string) => layerTensor(cfg, l, name, (n) => p.get(n));
  const g = (name: string) => layerTensor(cfg, l, name, (n) => p.grad(n));
  const gb = (name: string) => p.gradOptional(P(l, name));
  // Gemma 3: the gradient of a branch's output [N, D] through its post-norm (the stream's gradient dStream is the norm's output's).
  const pn = s.postNorm;
  const throughPostNorm = (dStream: Tensor, out: Tensor, rstd: Tensor, name: string) => {
    const dOut = acq([N, D], `d_${name}`);
    normBackward(gpu, true, { dy: dStream, x: out, w: w(`${name}.weight`), rstd, dx: dOut, dw: g(`${name}.weight`), N, D, wOffset });
    return dOut;
  };

  // dx1 = dy + the MLP branch's gradient: RMSNorm2's backward writes dy + its part (no copy of dy first).
  const dx1 = acq([N, D], s.tail ? 'dx_tail' : 'dx');
  // MLP (its output's gradient: dy, or through Gemma 3's post-feedforward norm)
  const dMlp = pn ? throughPostNorm(dy, pn.mlpOut, pn.rstdMlp, 'post_feedforward_layernorm') : dy;
  const act = cfg.act;
  const a = acq([N, I], 'mlp_act');
  swiglu(gpu, { gate: s.gate, up: s.up, y: a, N, I, act }); // recomputed rather than stored
  const da = acq([N, I], 'd_mlp_act');
  linearBackward(gpu, dMlp, a, w('mlp.down_proj.weight'), { dx: da, dw: g('mlp.down_proj.weight'), db: gb('mlp.down_proj.bias') }, N, I, D);
  gpu.pool.release(a);
  if (dMlp !== dy) gpu.pool.release(dMlp);
  const dgate = acq([N, I], 'd_gate'); const dup = acq([N, I], 'd_up');
  swigluBackward(gpu, { dy: da, gate: s.gate, up: s.up, dgate, dup, N, I, act });
  gpu.pool.release(da);
  const dn2 = acq([N, D], 'd_n2');
  const n2Scale = operandScale(gpu, s.n2, N * D); // gate and up take the same input: one max for both
  linearBackward(gpu, dgate, s.n2, w('mlp.gate_proj.weight'), { dx: dn2, dw: g('mlp.gate_proj.weight'), db: gb('mlp.gate_proj.bias') }, N, D, I, undefined, n2Scale);
  linearBackward(gpu, dup, s.n2, w('mlp.up_proj.weight'), { dx: dn2, accumulateDx: true, dw: g('mlp.up_proj.weight'), db: gb('mlp.up_proj.bias') }, N, D, I, undefined, n2Scale);
  gpu.pool.release(dgate, dup);
  if (n2Scale) gpu.pool.release(n2Scale);
  normBackward(gpu, true, { dy: dn2, x: x1, w: w(mlpNormName(cfg)), rstd: s.rstd2, dx: dx1, residual: dy, dw: g(mlpNormName(cfg)), N, D, wOffset });
  gpu.pool.release(dn2);
  // Attention: its output gradient is dx1 (read fully before RMSNorm1 adds into dx, which is dx1
  // itself without a tail, else dx1 scattered to every row), or through Gemma 3's post-attention norm.
  const dAttOut = pn ? throughPostNorm(dx1, pn.attOut, pn.rstdAtt, 'post_attention_layernorm') : dx1;
  let datt = acq([N, Hq * Dh], 'd_att');
  linearBackward(gpu, dAttOut, s.tail?.att ?? s.att, w('self_attn.o_proj.weight'), { dx: datt, dw: g('self_attn.o_proj.weight'), db: gb('self_attn.o_proj.bias') }, N, Hq * Dh, D);
  if (dAttOut !== dx1) gpu.pool.release(dAttOut);
  let dx = dx1;
  if (s.tail) {
    const full = spreadRows(gpu, datt, s.tail.rows, N, Nfull, Hq * Dh, 'd_att'); gpu.pool.release(datt); datt = full;
    dx = spreadRows(gpu, dx1, s.tail.rows, N, Nfull, D, 'dx'); gpu.pool.release(dx1);
  }
  let dq = acq([Nfull, Hq * Dh], 'd_q'); let dk = acq([Nfull, Hkv * Dh], 'd_k'); const dv = acq([Nfull, Hkv * Dh], 'd_v');
  attentionBackward(gpu, { B, T, Hq, Hkv, Dh, q: { tensor: s.q }, k: { tensor: s.k }, v: { tensor: s.v }, mask: maskOf(batch),
    window: layerWindow(cfg, l), scale: attentionScale(cfg), softcap: attentionSoftcap(cfg), out: { tensor: s.att }, lse: s.lse, dout: { tensor: datt },
    dq: { tensor: dq }, dk: { tensor: dk }, dv: { tensor: dv } });
  gpu.pool.release(datt);
  const rope = layerRope(cfg, l);
  const rot = (x: Tensor, heads: number) => ({ x: { tensor: x }, heads, N: Nfull, headDim: Dh, rotaryDim: cfg.rotaryDim, ...rope, positions: batch.positions, inverse: true });
  rotary(gpu, rot(dq, Hq));
  rotary(gpu, rot(dk, Hkv));
  if (s.headNorm) {
    // The head norms (Qwen3, Gemma 3): the projections' output gradients from the norms' (rows [N H, Dh], as the forward).
    const hn = s.headNorm;
    const back = (dNormed: Tensor, proj: Tensor, rstd: Tensor, heads: number, name: 'q' | 'k') => {
      const dProj = acq([Nfull, heads * Dh], `d_${name}_proj`);
      normBackward(gpu, true, { dy: dNormed, x: proj, w: w(`self_attn.${name}_norm.weight`), rstd, dx: dProj, dw: g(`self_attn.${name}_norm.weight`), N: Nfull * heads, D: Dh, wOffset });
      gpu.pool.release(dNormed);
      return dProj;
    };
    dq = back(dq, hn.qProj, hn.rstdQ, Hq, 'q');
    dk = back(dk, hn.kProj, hn.rstdK, Hkv, 'k');
  }
  const dn1 = acq([Nfull, D], 'd_n1');
  const n1Scale = operandScale(gpu, s.n1, Nfull * D); // q, k and v take the same input: one max for the three
  linearBackward(gpu, dq, s.n1, w('self_attn.q_proj.weight'), { dx: dn1, dw: g('self_attn.q_proj.weight'), db: gb('self_attn.q_proj.bias') }, Nfull, D, Hq * Dh, undefined, n1Scale);
  linearBackward(gpu, dk, s.n1, w('self_attn.k_proj.weight'), { dx: dn1, accumulateDx: true, dw: g('self_attn.k_proj.weight'), db: gb('self_attn.k_proj.bias') }, Nfull, D, Hkv * Dh, undefined, n1Scale);
  linearBackward(gpu, dv, s.n1, w('self_attn.v_proj.weight'), { dx: dn1, accumulateDx: true, dw: g('self_attn.v_proj.weight'), db: gb('self_attn.v_proj.bias') }, Nfull, D, Hkv * Dh, undefined, n1Scale);
  gpu.pool.release(dq, dk, dv);
  if (n1Scale) gpu.pool.release(n1Scale);
  normBackward(gpu, true, { dy: dn1, x: s.x, w: w('input_layernorm.weight'), rstd: s.rstd1, dx, accumulateDx: true, dw: g('input_layernorm.weight'), N: Nfull, D, wOffset });
  gpu.pool.release(dn1);
  return dx;
}
