// Causal self-attention, f32, flash style: forward (out + logsumexp) and backward (dq, dk, dv).
//
// Shapes: B batch rows of T tokens; Hq query heads, Hkv key/value heads (GQA: query head h reads
// kv head floor(h / (Hq / Hkv))); head dim Dh <= 256.
//   q: [B*T, Hq, Dh], k, v: [B*T, Hkv, Dh], out / dout / dq: like q, dk / dv: like k; lse: [B, Hq, T].
// Every per-head operand is a HeadOperand (tensor, element offset, token stride, head stride), so
// the models bind their activations without copies: GPT-NeoX's fused QKV [B*T, H, 3, Dh] is
// q = {t, 0, 3HDh, 3Dh}, k = {t, Dh, 3HDh, 3Dh}, v = {t, 2Dh, 3HDh, 3Dh}; Llama's separate
// projections are the defaults (offset 0, token stride H*Dh, head stride Dh).
// Mask: see attention-mask.ts (positions, segments, lengths; window per call). Reference:
// attention.ref.ts. Soft-capping (Gemma 2, `softcap`): every kernel family has a variant that caps each
// scaled score s as cap tanh(s / cap) before the softmax (the cap a uniform; without it, the kernels as before).
//
// Kernels: register-tiled ones (attention-blocked.ts: 4 x 4 score blocks per
// thread from vec4 workgroup tiles, each score and exponential computed once) wherever their
// tiles fit the adapter's workgroup memory; tiles come from maxComputeWorkgroupStorageSize (Dh 64:
// forward 64x32, dQ and dK/dV 32x32 on a 48 KiB GPU; 32x32, 32x16, 16x32 on lavapipe's 32 KiB).
// The previous kernels (attention-legacy.ts, which describes their layout) are the fallback (dQ
// and dK/dV at Dh 128, anything at Dh > 128). In f16 precision the tensor-core kernels
// (attention-smx.ts, attention-smx-backward.ts) are one more tuner candidate per pass once they passed
// their self-check on the adapter (attention-selfcheck.ts); SRK_ATTENTION=tc forces them, simt keeps
// them out. Attention through the matmul kernels (attention-unfused.ts; the backward keeps this
// file's preparation kernel) is the other way: the rule on GPUs (faster on the H100 at every Pythia
// shape), a tuner candidate against these kernels everywhere; SRK_ATTENTION=unfused forces it, simt
// keeps these. The flash kernels hold no T x T matrix.
// Rows at or past their length have no visible key: they write out = 0 and lse = 0 (finite, so
// the backward, which recomputes P = exp(s - lse) only for visible pairs, never meets NaN).
//
// Backward (flash-attention-2): D_i = rowsum(dout_i * out_i) (one small kernel, which also packs
// lse and D side by side); then
//   dK/dV pass: a workgroup owns BR keys of one kv head and walks every query row >= its first key
//     for each of the Hq/Hkv query heads sharing that kv head: P = exp(scale q.k - lse),
//     dV += P^T dO, dS = P (dO.v - D), dK += scale dS^T Q. Summing the GQA group inside one
//     workgroup keeps it deterministic (no float atomics).
//   dQ pass: a workgroup owns BR query rows of one query head and walks the key tiles:
//     dQ += scale dS K.
// Gradients are written (not accumulated) through HeadOperands, so they can land directly in a
// fused dQKV buffer.
//
// Bindings: at most 8 storage buffers per kernel. Operands larger than one binding window are
// handled by chunking over batch rows; a single batch row must fit one window.
//
// Not done yet (performance): the register-tiled kernels skip tiles outside a sliding window only
// without a mask (positions = indices); global loads are scalar (coalesced); the backward passes
// run 64-thread workgroups (occupancy limited by their ~40 KiB of workgroup memory); the fallback
// kernels keep their scalar, G-fold redundant design. WGSL note: declare per-iteration private
// arrays with an explicit initializer (lavapipe did not re-zero `var s: array<f32, 16>;` inside a loop).
//
// Files: this one holds the public API, argument checks and dispatch; attention-tiling.ts the tile
// choice (and setAttentionTiling, re-exported here); attention-wgsl.ts the operand addressing
// and soft-capping shared by the kernels, and the backward's preparation kernel; attention-blocked.ts and
// attention-legacy.ts the two kernel families.
import { MAX_HEAD_DIM } from './attention-limits.js';
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { ParamWriter, grid, maxWindowElems, windowOf, type KernelDef, type Window } from '../engine/kernel.js';
import { dummyI32, isPackedMask, packMask, packMaskHost, type MaskTensors, type PackedMask } from './attention-mask.js';
import { regDkdvDef, regDqDef, regForwardDef } from './attention-blocked.js';
import { dkdvDef, dqDef, forwardDef } from './attention-legacy.js';
import { attentionModeLabels, checkAttentionEnv, unfusedByRule, chooseSmxBackward, chooseSmxForward, chooseTiles, regTileCandidates, smxRowLanes, tcCandidateAllowed, tcTilesFor, unfusedCandidateAllowed, unfusedWanted, type Pass, type RegTiles } from './attention-tiling.js';
import { unfusedBackward, unfusedFits, unfusedForward } from './attention-unfused.js';
import { checkedTcForm, tcFormLabel, type TcCheckCase, type TcCheckRecorder, type TcForm } from './attention-selfcheck.js';
import type { SmxAttentionTiles } from './attention-smx.js';
import { halfOctave } from '../engine/tuner.js';
import { smxForwardDef } from './attention-smx.js';
import { smxDkdvDef, smxDqDef } from './attention-smx-backward.js';
import { ABSMAX_PARTS, absmaxInto } from './absmax.js';
import { PREP, PRE_WG, opParams, qkvMaxima, type Op } from './attention-wgsl.js';
import { roundsToF16 } from './matmul.js';
import { checkSoftcap } from './softcap.js';

export { setAttentionTiling, type AttentionTiling } from './attention-tiling.js';

/** A per-head f32 operand: element (token r = b*T + t, head h, column d) is at
 *  offset + r * tokenStride + h * headStride + d. Defaults: offset 0, tokenStride H*Dh, headStride Dh. */
export interface HeadOperand { tensor: Tensor; offset?: number; tokenStride?: number; headStride?: number }

export interface AttentionArgs {
  B: number; T: number; Hq: number; Hkv: number; Dh: number;
  q: HeadOperand; k: HeadOperand; v: HeadOperand;
  /** Packed (attention-mask.ts) or raw mask tensors; absent = plain causal over all T tokens. */
  mask?: PackedMask | MaskTensors;
  /** Sliding window in positions (0 or absent = none): key visible iff pos_i - pos_j < window. */
  window?: number;
  /** Score scale; default 1 / sqrt(Dh). */
  scale?: number;
  /**
   * Gemma 2's attn_logit_softcapping: each scaled score s becomes softcap * tanh(s / softcap) before
   * the mask and softmax (lse is of those). Absent or 0: none; else finite and > 0.
   */
  softcap?: number;
  /**
   * 'f16' may run the products on tensor cores (attention-smx.ts: f16 operands, f32 softmax and sums)
   * where chooseSmxForward / chooseSmxBackward allow; default gpu.matmulPrecision.
   */
  precision?: 'f32' | 'f16';
  /** Internal (attention-selfcheck.ts): every pass on the tensor-core kernels in this form. */
  tcForm?: TcForm;
}

export interface AttentionForwardArgs extends AttentionArgs {
  /** [B*T, Hq, Dh] by default. Must not share a buffer with q, k, v. */
  out: HeadOperand;
  /** [B, Hq, T] dense, f32: logsumexp of each row's scaled scores (0 for rows without keys). */
  lse: Tensor;
}

export interface AttentionBackwardArgs extends AttentionArgs {
  /** The forward's output and logsumexp. */
  out: HeadOperand; lse: Tensor;
  /** Gradient of the loss with respect to out. */
  dout: HeadOperand;
  /** Written (overwritten) gradients, same layout rules as q, k, v. dk and dv may share a buffer
   *  (e.g. a fused dQKV); none may share a buffer with the inputs. */
  dq: HeadOperand; dk: HeadOperand; dv: HeadOperand;
}

const MAX_DH = MAX_HEAD_DIM;

// ---------------------------------------------------------------------------------------------
// Operands

function resolve(name: string, o: HeadOperand, H: number, a: AttentionArgs): Op {
  const { B, T, Dh } = a;
  const op: Op = { t: o.tensor, off: o.offset ?? 0, ts: o.tokenStride ?? H * Dh, hs: o.headStride ?? Dh, H };
  if (op.t.dtype !== 'f32') throw new TypeError(`attention: ${name} must be f32, got ${op.t}`);
  for (const [k, v] of [['offset', op.off], ['tokenStride', op.ts], ['headStride', op.hs]] as const) {
    if (!Number.isInteger(v) || v < 0) throw new RangeError(`attention: ${name}.${k} = ${v}`);
  }
  const end = op.off + span(op, B * T, Dh);
  if (end > op.t.numel) {
    throw new RangeError(`attention: ${name} needs ${end} elements but ${op.t} has ${op.t.numel} ` +
      `(B=${B} T=${T} H=${H} Dh=${Dh} offset=${op.off} tokenStride=${op.ts} headStride=${op.hs})`);
  }
  return op;
}

/** Elements spanned by `rows` tokens of an operand, from its first element. */
function span(op: Op, rows: number, Dh: number): number {
  return rows === 0 ? 0 : (rows - 1) * op.ts + (op.H - 1) * op.hs + Dh;
}

function win(gpu: Gpu, op: Op, b0: number, nb: number, T: number, Dh: number): Window {
  const first = op.off + b0 * T * op.ts;
  return windowOf(gpu, op.t, first, first + span(op, nb * T, Dh));
}

/** Element range [start, end) of rows [b0, b0 + nb) of an operand, counted from the start of its buffer. */
function bufferRange(op: Op, b0: number, nb: number, T: number, Dh: number): [number, number] {
  const s = op.t.offset / 4 + op.off + b0 * T * op.ts;
  return [s, s + span(op, nb * T, Dh)];
}

/** One binding window over two operands of the same buffer, with each one's base inside it. */
function unionWin(gpu: Gpu, x: Op, y: Op, b0: number, nb: number, T: number, Dh: number): { range: Window['range']; bases: [number, number] } {
  const [xs, xe] = bufferRange(x, b0, nb, T, Dh); const [ys, ye] = bufferRange(y, b0, nb, T, Dh);
  const align = gpu.bindingAlign;
  const start = Math.floor((4 * Math.min(xs, ys)) / align) * align;
  const size = Math.min(Math.ceil((4 * Math.max(xe, ye) - start) / 4) * 4, x.t.buffer.size - start);
  if (size > gpu.maxBinding) throw new RangeError(`attention: dk/dv window of ${size} bytes over the binding limit`);
  return { range: { buffer: x.t.buffer, offset: start, size }, bases: [xs - start / 4, ys - start / 4] };
}

/** Batch rows per dispatch so that every operand's window fits one binding. */
function batchChunk(gpu: Gpu, a: AttentionArgs, ops: Op[], perRowDense: number, pairs: [Op, Op][] = []): number {
  const limit = maxWindowElems(gpu);
  let nb = a.B;
  const pairSpan = ([x, y]: [Op, Op], n: number) => {
    const [xs, xe] = bufferRange(x, 0, n, a.T, a.Dh); const [ys, ye] = bufferRange(y, 0, n, a.T, a.Dh);
    return Math.max(xe, ye) - Math.min(xs, ys);
  };
  const fits = (n: number) => perRowDense * n <= limit && ops.every((op) => span(op, n * a.T, a.Dh) <= limit) &&
    pairs.every((pr) => pairSpan(pr, n) <= limit);
  while (nb > 1 && !fits(nb)) nb = Math.ceil(nb / 2);
  if (!fits(nb)) throw new RangeError(`attention: one batch row of T=${a.T} exceeds a binding window; chunking over T is not implemented`);
  return nb;
}

function checkArgs(a: AttentionArgs): void {
  const { B, T, Hq, Hkv, Dh } = a;
  for (const [k, v] of Object.entries({ B, T, Hq, Hkv, Dh })) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`attention: ${k} = ${v}`);
  }
  if (Hq % Hkv !== 0) throw new RangeError(`attention: Hq=${Hq} is not a multiple of Hkv=${Hkv}`);
  if (Dh > MAX_DH) throw new RangeError(`attention: Dh=${Dh} over ${MAX_DH}`);
  if (a.window !== undefined && (!Number.isInteger(a.window) || a.window < 0)) throw new RangeError(`attention: window = ${a.window}`);
  checkSoftcap(a.softcap, 'attention');
  if (a.mask && isPackedMask(a.mask) && (a.mask.B !== B || a.mask.T !== T)) {
    throw new RangeError(`attention: mask is for B=${a.mask.B} T=${a.mask.T}, attention has B=${B} T=${T}`);
  }
}

function checkDense(name: string, t: Tensor, n: number): void {
  if (t.dtype !== 'f32') throw new TypeError(`attention: ${name} must be f32, got ${t}`);
  if (t.numel < n) throw new RangeError(`attention: ${name} ${t} needs ${n} elements`);
}

/** WebGPU forbids a buffer bound writable in a dispatch from being bound read-only in the same one. */
function checkNoAlias(written: Tensor[], read: Tensor[]): void {
  for (const w of written) for (const r of read) {
    if (w.buffer === r.buffer) throw new Error(`attention: output ${w} shares a GPU buffer with input ${r}`);
  }
}

/** The packed mask (packing raw tensors into a scratch when needed) and a release function. */
function maskOf(gpu: Gpu, a: AttentionArgs): { m?: Tensor; done: () => void } {
  if (!a.mask) return { done: () => {} };
  if (isPackedMask(a.mask)) return { m: a.mask.packed, done: () => {} };
  const pm = packMask(gpu, a.B, a.T, a.mask);
  return { m: pm.packed, done: () => gpu.pool.release(pm.packed) };
}

// ---------------------------------------------------------------------------------------------
// Host side

function common(gpu: Gpu, a: AttentionArgs) {
  checkArgs(a);
  checkAttentionEnv();
  const q = resolve('q', a.q, a.Hq, a);
  const k = resolve('k', a.k, a.Hkv, a);
  const v = resolve('v', a.v, a.Hkv, a);
  const scale = a.scale ?? 1 / Math.sqrt(a.Dh);
  const window = a.window ?? 0;
  // softcap: 0 for none; `sc` picks the kernels' soft-capping variants (the cap goes last in Params).
  const softcap = a.softcap ?? 0;
  return { q, k, v, scale, window, softcap, sc: softcap > 0, nRep: a.Hq / a.Hkv };
}

/** One pass's kernel: tensor-core tiles (with the forward's softmax form), register tiles, or neither
 *  (the fallback kernels); `timing`: the tuner's name for the pass's dispatches. */
interface PassPick { tc?: SmxAttentionTiles; rowLanes?: boolean; rt?: RegTiles; timing?: string }

/**
 * One pass's kernel where nothing forces it: the tuner's pick (engine/tuner.ts) among the register
 * tiles that fit and, in f16 precision once it has passed its check on this adapter
 * (attention-selfcheck.ts), the tensor-core kernels; keyed by pass, head size, sequence length and
 * rows of work in half-octave buckets and the mask kind. Without a tuner: the rule's tiles. `regDef`:
 * the pass's register-tile kernel (a candidate's is built before its first use). `mode`: modePick's
 * answer; while flash against the matmul path is still undecided (timed as a whole, or run untimed as
 * the default between its samples) the pass makes no pick of its own, and runs the choice made (else
 * the rule) under the mode's timing name: a pass key opened then would stay open once the matmul path
 * won and close with candidates never timed.
 */
function passPick(gpu: Gpu, pass: Pass, a: AttentionArgs, masked: boolean, regDef: (rt: RegTiles) => KernelDef,
  mode: ModePick): PassPick {
  const cands = regTileCandidates(gpu, pass, a.Dh);
  if (cands.length === 0) return { timing: mode.timing };
  if (!gpu.tuner) return { rt: cands[0] };
  const form = tcCandidateAllowed(gpu, pass, a.precision ?? gpu.matmulPrecision) ? checkedTcForm(gpu, a.Dh, recordTcCheck) : undefined;
  const tc = form ? tcTilesFor(gpu, pass, a.Dh, form.reload) : undefined;
  const labels = cands.map((t) => `${t.BR}x${t.BC}`);
  if (tc) labels.push(tcFormLabel(form!));
  if (labels.length === 1) return { rt: cands[0], timing: mode.timing };
  const key = `attention ${pass} ${shapeKey(gpu, a, masked)}`;
  // Timed as a candidate of the outer choice (modePick): the choice made for this pass, else the rule.
  const { index, timing } = mode.deciding ? { index: gpu.tuner.table.chosen(key, labels) ?? 0, timing: mode.timing }
    : gpu.tuner.pick(key, labels);
  if (index >= cands.length) return { tc, rowLanes: form!.rowLanes, timing };
  // Register tiles other than the rule's, while being timed, run once the adapter has built their
  // kernel (as the matmul's tilings: kernel.ts checked()); meanwhile, or if refused, the rule's tiles.
  if (index > 0 && !mode.deciding && timing !== undefined && !gpu.tuner.built(gpu.kernels, key, labels, index, regDef(cands[index]))) {
    return { rt: cands[0] };
  }
  return { rt: cands[index], timing };
}

/** The shape part of the attention tuner keys: head size, length and rows of work in half-octave
 *  buckets, the mask kind, and f16 operands. */
function shapeKey(gpu: Gpu, a: AttentionArgs, masked: boolean): string {
  // The precision too: an f32 step may run its augmented pass in f16 (--aug-precision), same shapes.
  return `Dh ${a.Dh} T 2^${halfOctave(a.T)} heads 2^${halfOctave(a.B * a.Hq)}` +
    `${a.Hq !== a.Hkv ? ' gqa' : ''}${masked ? ' masked' : ''}${a.window ? ' window' : ''}${a.softcap ? ' softcap' : ''}` +
    `${(a.precision ?? gpu.matmulPrecision) === 'f16' ? ' f16' : ''}`;
}

/** modePick's answer: the way, the name to time it under, and whether the tuner is still choosing it. */
interface ModePick { unfused: boolean; timing?: string; deciding?: boolean }

/**
 * Flash kernels or the matmul path (attention-unfused.ts) for a forward or a backward:
 * SRK_ATTENTION=unfused forces the latter where its scratch fits, simt the former; otherwise the
 * rule (attentionModeLabels: the matmul path on GPUs, flash on CPU adapters) or, with a tuner, the two
 * are candidates of one key, each timed as a whole (inner choices as made, else the rules; the
 * absmax of scaled products and the backward's shared preparation kernel untimed) and the faster
 * kept. The directions are chosen apart: a flash forward (f32 scores) with the unfused backward in
 * f16 (P from that forward's lse) stays within the f16 bounds (attention-unfused.test.ts).
 * `timing`: the name to time this call's dispatches under while that key is measured.
 */
export function modePick(gpu: Gpu, dir: 'fwd' | 'bwd', a: AttentionArgs, masked: boolean): ModePick {
  if (a.tcForm) return { unfused: false };
  const fits = unfusedFits(gpu, a.Hq, a.T);
  if (unfusedWanted()) return { unfused: fits };
  const precision = a.precision ?? gpu.matmulPrecision;
  if (!fits || !unfusedCandidateAllowed(gpu, precision)) return { unfused: false };
  if (!gpu.tuner) return { unfused: unfusedByRule(gpu, precision) };
  const labels = attentionModeLabels(gpu.isCpuAdapter);
  const key = `attention mode ${dir} ${shapeKey(gpu, a, masked)}`;
  const { index, timing } = gpu.tuner.pick(key, labels);
  return { unfused: labels[index] === 'unfused', timing, deciding: gpu.tuner.table.chosen(key, labels) === undefined };
}

/** A pass forced onto tensor cores (the self-check's form, SRK_ATTENTION=tc or a test), else undefined. */
function forcedTc(gpu: Gpu, pass: Pass, a: AttentionArgs): PassPick | undefined {
  if (a.tcForm) {
    const tc = tcTilesFor(gpu, pass, a.Dh, a.tcForm.reload);
    if (!tc) throw new RangeError(`attention: no tensor-core tiling fits head size ${a.Dh} here`);
    return { tc, rowLanes: a.tcForm.rowLanes };
  }
  const precision = a.precision ?? gpu.matmulPrecision;
  if (pass === 'fwd') { const tc = chooseSmxForward(gpu, precision, a.Dh); return tc ? { tc, rowLanes: smxRowLanes() } : undefined; }
  const both = chooseSmxBackward(gpu, precision, a.Dh);
  return both ? { tc: both[pass] } : undefined;
}

/**
 * The self-check's case (attention-selfcheck.ts) through the tensor-core kernels in `form`, recorded
 * beside the caller's work; its reader runs after the step.
 */
const recordTcCheck: TcCheckRecorder = (gpu: Gpu, c: TcCheckCase, form: TcForm) => {
  const { B, T, Hq, Hkv, Dh } = c;
  const mask = packMaskHost(gpu, B, T, { positions: c.positions, segments: c.segments, lengths: c.lengths });
  const q = gpu.tensor([B * T, Hq, Dh], c.q, 'f32', 'tc check'); const k = gpu.tensor([B * T, Hkv, Dh], c.k, 'f32', 'tc check');
  const v = gpu.tensor([B * T, Hkv, Dh], c.v, 'f32', 'tc check'); const g = gpu.tensor([B * T, Hq, Dh], c.dout, 'f32', 'tc check');
  const out = gpu.tensor([B * T, Hq, Dh]); const lse = gpu.tensor([B, Hq, T]);
  const dq = gpu.tensor([B * T, Hq, Dh]); const dk = gpu.tensor([B * T, Hkv, Dh]); const dv = gpu.tensor([B * T, Hkv, Dh]);
  const args = { B, T, Hq, Hkv, Dh, q: { tensor: q }, k: { tensor: k }, v: { tensor: v }, mask, precision: 'f16' as const, tcForm: form };
  attentionForward(gpu, { ...args, out: { tensor: out }, lse });
  attentionBackward(gpu, { ...args, out: { tensor: out }, lse, dout: { tensor: g }, dq: { tensor: dq }, dk: { tensor: dk }, dv: { tensor: dv } });
  return {
    tensors: [mask.packed, q, k, v, g, out, lse, dq, dk, dv],
    read: async () => ({ out: await gpu.readF32(out), lse: await gpu.readF32(lse), dq: await gpu.readF32(dq), dk: await gpu.readF32(dk), dv: await gpu.readF32(dv) }),
  };
};

/** Writes out [B*T, Hq, Dh] (through its HeadOperand) and lse [B, Hq, T]. */
export function attentionForward(gpu: Gpu, a: AttentionForwardArgs): void {
  const { q, k, v, scale, window, softcap, sc, nRep } = common(gpu, a);
  const { B, T, Hq, Dh } = a;
  const o = resolve('out', a.out, Hq, a);
  checkDense('lse', a.lse, B * Hq * T);
  checkNoAlias([o.t, a.lse], [q.t, k.t, v.t]);
  if (o.t.buffer === a.lse.buffer) throw new Error('attention: out and lse must be in different GPU buffers');
  const mask = maskOf(gpu, a);
  const mode = modePick(gpu, 'fwd', a, !!mask.m);
  if (mode.unfused) {
    unfusedForward(gpu, { B, T, Hq, Hkv: a.Hkv, Dh, nRep, scale, window, softcap, timing: mode.timing }, { q, k, v, o }, a.lse,
      mask.m ?? dummyI32(gpu), !!mask.m, a.precision ?? gpu.matmulPrecision);
    mask.done();
    return;
  }
  const { tc, rowLanes, rt, timing } = forcedTc(gpu, 'fwd', a) ?? passPick(gpu, 'fwd', a, !!mask.m, (t) => regForwardDef(t, sc), mode);
  const rows = tc ? 16 * tc.SGQ : rt ? rt.BR : chooseTiles(gpu, 'fwd', Dh).R;
  const kernel = gpu.kernels.get(tc ? smxForwardDef(tc, gpu.fixedSubgroupSize, gpu.smxMode === 'emulated', !!rowLanes, sc)
    : rt ? regForwardDef(rt, sc) : forwardDef(chooseTiles(gpu, 'fwd', Dh), sc));
  const nb = batchChunk(gpu, a, [q, k, v, o], Hq * T);
  const mt = mask.m ?? dummyI32(gpu);
  const wm = windowOf(gpu, mt);
  // The tensor-core forward stages Q, K and V times powers of two from their own maxima (over every
  // row and head: once per call), the parts of Q, K, V in one binding (V's at vAt).
  const maxima = tc ? qkvMaxima(gpu, { q, k, v }, Dh, B * T, timing) : undefined;
  const wparts = maxima ? windowOf(gpu, maxima.parts) : undefined;
  for (let b0 = 0; b0 < B; b0 += nb) {
    const n = Math.min(nb, B - b0);
    const wq = win(gpu, q, b0, n, T, Dh); const wk = win(gpu, k, b0, n, T, Dh);
    const wv = win(gpu, v, b0, n, T, Dh); const wo = win(gpu, o, b0, n, T, Dh);
    const wl = windowOf(gpu, a.lse, b0 * Hq * T, (b0 + n) * Hq * T);
    const pw = new ParamWriter().u32(T, Dh, Hq, nRep, b0, wm.base, mask.m ? 1 : 0, window);
    opParams(pw, wq, q); opParams(pw, wk, k); opParams(pw, wv, v); opParams(pw, wo, o);
    pw.u32(wl.base).f32(scale);
    if (wparts) pw.u32(wparts.base, maxima!.vAt);
    if (sc) pw.f32(softcap);
    gpu.recorder.dispatch(kernel, [wq.range, wk.range, wv.range, wm.range, ...(wparts ? [wparts.range] : []), wo.range, wl.range], pw.bytes(),
      [Math.ceil(T / rows), Hq, n], timing);
  }
  if (maxima) gpu.pool.release(maxima.parts);
  mask.done();
}

/** D_i = rowsum(dout_i * out_i) beside lse_i into ld [B, Hq, T, 2] for batch rows [b0, b0 + n) (PREP). */
function prepareLseD(gpu: Gpu, a: AttentionBackwardArgs, o: Op, go: Op, ld: Tensor, b0: number, n: number, roundG: boolean): void {
  const { T, Hq, Dh } = a;
  const rows = n * Hq * T;
  const wld = windowOf(gpu, ld, 2 * b0 * Hq * T, 2 * (b0 + n) * Hq * T);
  const wlse = windowOf(gpu, a.lse, b0 * Hq * T, (b0 + n) * Hq * T);
  const wo = win(gpu, o, b0, n, T, Dh); const wg = win(gpu, go, b0, n, T, Dh);
  const pp = new ParamWriter().u32(T, Hq, Dh, rows);
  opParams(pp, wg, go); opParams(pp, wo, o);
  pp.u32(wlse.base, wld.base, roundG ? 1 : 0);
  gpu.recorder.dispatch(gpu.kernels.get(PREP), [wg.range, wo.range, wlse.range, wld.range], pp.bytes(), grid(Math.ceil(rows / PRE_WG)));
}

/** Writes dq, dk, dv (through their HeadOperands) from dout and the forward's out and lse. */
export function attentionBackward(gpu: Gpu, a: AttentionBackwardArgs): void {
  const { q, k, v, scale, window, softcap, sc, nRep } = common(gpu, a);
  const { B, T, Hq, Hkv, Dh } = a;
  const o = resolve('out', a.out, Hq, a);
  const go = resolve('dout', a.dout, Hq, a);
  const dq = resolve('dq', a.dq, Hq, a);
  const dk = resolve('dk', a.dk, Hkv, a);
  const dv = resolve('dv', a.dv, Hkv, a);
  checkDense('lse', a.lse, B * Hq * T);
  checkNoAlias([dq.t, dk.t, dv.t], [q.t, k.t, v.t, o.t, go.t, a.lse]);
  const mask = maskOf(gpu, a);
  const mt = mask.m ?? dummyI32(gpu);
  const wm = windowOf(gpu, mt);
  const ld = gpu.pool.acquire([B, Hq, T, 2], 'f32', 'attn_lse_d');
  const mode = modePick(gpu, 'bwd', a, !!mask.m);
  if (mode.unfused) {
    // The matmul path (attention-unfused.ts) after the same preparation kernel (lse and D per row).
    const nbPrep = batchChunk(gpu, a, [o, go], 2 * Hq * T);
    const precision = a.precision ?? gpu.matmulPrecision;
    // (dP = dO V^T is T x T: f16 operands where the matmul rounds them, and D is taken alike.)
    for (let b0 = 0; b0 < B; b0 += nbPrep) prepareLseD(gpu, a, o, go, ld, b0, Math.min(nbPrep, B - b0), roundsToF16(gpu, precision, T, T));
    unfusedBackward(gpu, { B, T, Hq, Hkv, Dh, nRep, scale, window, softcap, timing: mode.timing }, { q, k, v, g: go, dq, dk, dv }, ld,
      mt, !!mask.m, precision);
    gpu.pool.release(ld);
    mask.done();
    return;
  }
  const shared = dk.t.buffer === dv.t.buffer;
  const sg = gpu.fixedSubgroupSize; const emu = gpu.smxMode === 'emulated';
  const { tc: tq, rt: rq, timing: timeQ } = forcedTc(gpu, 'dq', a) ?? passPick(gpu, 'dq', a, !!mask.m, (rt) => regDqDef(rt, sc), mode);
  const { tc: tkv, rt: rkv, timing: timeKV } = forcedTc(gpu, 'dkdv', a) ?? passPick(gpu, 'dkdv', a, !!mask.m, (rt) => regDkdvDef(rt, shared, sc), mode);
  const kKV = gpu.kernels.get(tkv ? smxDkdvDef(tkv, sg, emu, shared, sc)
    : rkv ? regDkdvDef(rkv, shared, sc) : dkdvDef(chooseTiles(gpu, 'dkdv', Dh), shared, sc));
  const kQ = gpu.kernels.get(tq ? smxDqDef(tq, sg, emu, sc) : rq ? regDqDef(rq, sc) : dqDef(chooseTiles(gpu, 'dq', Dh), sc));
  const kvRows = tkv ? 16 * tkv.SGQ : rkv ? rkv.BR : chooseTiles(gpu, 'dkdv', Dh).R;
  const qRows = tq ? 16 * tq.SGQ : rq ? rq.BR : chooseTiles(gpu, 'dq', Dh).R;
  // The tensor-core passes scale dO by a power of two from its and V's max |value| (over their whole
  // tensors): absmax parts of dO, then of V, in one binding (bound by the tensor-core passes only).
  let parts: Tensor | undefined;
  if (tq || tkv) {
    parts = gpu.pool.acquire([2 * ABSMAX_PARTS], 'f32', 'attn grad scale');
    absmaxInto(gpu, go.t, go.t.numel, parts, 0);
    absmaxInto(gpu, v.t, v.t.numel, parts, ABSMAX_PARTS);
  }
  const wparts = parts ? windowOf(gpu, parts) : undefined;
  const nb = batchChunk(gpu, a, [q, k, v, o, go, dq, dk, dv], 2 * Hq * T, shared ? [[dk, dv]] : []);
  for (let b0 = 0; b0 < B; b0 += nb) {
    const n = Math.min(nb, B - b0);
    // One D for both passes: rounded where both take dO as f16 (a pass on the f32 kernels, which the tuner may pair
    // with a tensor-core one, computes dP from the exact dO and wants the exact D).
    prepareLseD(gpu, a, o, go, ld, b0, n, !!(tq && tkv));
    const wld = windowOf(gpu, ld, 2 * b0 * Hq * T, 2 * (b0 + n) * Hq * T);
    const wq = win(gpu, q, b0, n, T, Dh); const wk = win(gpu, k, b0, n, T, Dh); const wv = win(gpu, v, b0, n, T, Dh);
    const wg = win(gpu, go, b0, n, T, Dh);
    const wdq = win(gpu, dq, b0, n, T, Dh);
    let wdk: Window; let wdv: Window;
    if (shared) {
      const u = unionWin(gpu, dk, dv, b0, n, T, Dh);
      wdk = { range: u.range, base: u.bases[0] }; wdv = { range: u.range, base: u.bases[1] };
    } else {
      wdk = win(gpu, dk, b0, n, T, Dh); wdv = win(gpu, dv, b0, n, T, Dh);
    }


    const head = (w: ParamWriter) => {
      w.u32(T, Dh, Hq, nRep, b0, wm.base, mask.m ? 1 : 0, window);
      opParams(w, wq, q); opParams(w, wk, k); opParams(w, wv, v); opParams(w, wg, go);
      return w;
    };
    const pkv = head(new ParamWriter());
    opParams(pkv, wdk, dk); opParams(pkv, wdv, dv);
    pkv.u32(wld.base).f32(scale);
    if (wparts && tkv) pkv.u32(wparts.base);
    if (sc) pkv.f32(softcap);
    const prKV = wparts && tkv ? [wparts.range] : []; const prQ = wparts && tq ? [wparts.range] : [];
    gpu.recorder.dispatch(kKV, [wq.range, wk.range, wv.range, wg.range, wld.range, wm.range, ...prKV, wdk.range, ...(shared ? [] : [wdv.range])],
      pkv.bytes(), [Math.ceil(T / kvRows), Hkv, n], timeKV);

    const pq = head(new ParamWriter());
    opParams(pq, wdq, dq);
    pq.u32(wld.base).f32(scale);
    if (wparts && tq) pq.u32(wparts.base);
    if (sc) pq.f32(softcap);
    gpu.recorder.dispatch(kQ, [wq.range, wk.range, wv.range, wg.range, wld.range, wm.range, ...prQ, wdq.range],
      pq.bytes(), [Math.ceil(T / qRows), Hq, n], timeQ);
  }
  gpu.pool.release(ld);
  if (parts) gpu.pool.release(parts);
  mask.done();
}
