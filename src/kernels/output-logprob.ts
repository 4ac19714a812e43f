// The fused output layer: per-token log-probabilities of the target tokens, and their backward,
// without ever holding an N x V logits matrix beyond one chunk of rows.
//
// Shapes: h [N, d] (final hidden states), w [V, d] (output weights; with tied embeddings this is
// the embedding table itself), targets [N] i32 or u32 (any value outside [0, V), e.g. -1 /
// 0xffffffff, means "no target": logp 0 and no gradient), logp [N], weights g [N],
// dh [N, d], dw [V, d].
//
//   logp[n] = logit[n, t_n] - logsumexp_v logit[n, v],   logit = h w^T.
//   Backward for L with dL/dlogp[n] = g[n]:
//     dlogit[n, v] = g[n] * (1[v == t_n] - softmax(logit[n])[v])   (0 for rows without a target)
//     dh = dlogit w,   dw += dlogit^T h.
// `softcap` c (Gemma 2's final_logit_softcapping) takes logit' = c tanh(logit / c) in place of logit
// above, and the backward multiplies dlogit by 1 - tanh^2(logit / c); the logits held (chunks, kept)
// stay the raw h w^T. The row kernels cap in a compile-time variant (c a uniform): others pay nothing.
//
// Per chunk of rows [r0, r1): logits chunk [rows, V] = h[r0:r1] w^T (matmul; w over the binding
// limit is split there), then the row kernel (one workgroup per row: online max / sum of exp per
// thread, a tree reduction of (max, sum) pairs in workgroup memory, so the result is
// deterministic) writes logp and, for the backward, overwrites the chunk in place with dlogits
// (the llm.c fused-classifier trick); then dh[r0:r1] = dlogits w and dw += dlogits^T h[r0:r1].
// The DPO weights are known only after every sequence's log-prob is, so the backward runs after the
// whole forward: a forward asked to `keep` its logits holds every chunk until then (keptLogitsBudget(),
// 1 GiB by default: 4096 scored tokens of a 50k vocabulary take 786 MiB), and the backward reads them
// instead of recomputing them (the recompute is a quarter of the output layer's work in a step, ~7%
// of a Pythia-160m DPO step's FLOPs, ~3% at 410m, at 8 x 512 tokens); without, the
// backward recomputes each chunk, which keeps memory at one chunk. Rows per chunk: as many as fit
// `chunkBytes` (default: min(maxBinding, 128 MiB) = 667 rows at V = 50304), at least 1.
// In the f16 precision the products may read f16 copies of h and w (made once per call) and of each
// dlogits chunk instead of staging f32 (half.ts f16CopiesPick: the tuner times both ways).
// Reference: output-logprob.ref.ts.
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { ParamWriter, grid, maxWindowElems, windowOf, type KernelDef } from '../engine/kernel.js';
import { halfOctave } from '../engine/tuner.js';
import { matmul } from './matmul.js';
import { absmaxOf } from './absmax.js';
import { f16CopiesPick, halfOf } from './half.js';
import { keepLogitsMib } from '../engine/env.js';
import { SOFTCAP_WGSL, capBackward, capped, checkSoftcap } from './softcap.js';

const WG = 256;

/** Default byte budget of one logits chunk (it must also fit one binding window). */
export const DEFAULT_CHUNK_BYTES = 128 * 1024 * 1024;

// mode 0: logp only (logits read, untouched); mode 1: also dlogits in place.
// softcap: the variant that caps each logit as it reads it (cap * tanh(x / cap), the cap a uniform
// f32 after the other parameters) and, backward, multiplies each dlogit by the cap's derivative
// 1 - tanh^2; the plain kernels' WGSL is untouched by it.
function rowDef(backward: boolean, softcap: boolean): KernelDef {
  // The logit as the softmax sees it (softcap.ts), and the backward's view of it.
  const lg = (x: string) => capped(softcap, x);
  const cb = capBackward(softcap, 'logits[base + v]', 'th');
  return {
    name: `logsoftmax_gather${softcap ? '_softcap' : ''}${backward ? '_bwd' : ''}`,
    bindings: ['rw', 'read', 'read', 'rw'],
    uniform: true,
    code: /* wgsl */ `
struct Params { V: u32, rows: u32, ld: u32, lBase: u32, tBase: u32, gBase: u32, oBase: u32, writeLogp: u32${softcap ? ', cap: f32' : ''} };
@group(0) @binding(0) var<storage, read_write> logits: array<f32>;
@group(0) @binding(1) var<storage, read> targets: array<i32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> logp: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

var<workgroup> sm: array<f32, ${WG}>;
var<workgroup> ss: array<f32, ${WG}>;

const NEG: f32 = -3.0e38;
${softcap ? `${SOFTCAP_WGSL}
` : ''}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let row = wg.x + wg.y * nwg.x;
  if (row >= p.rows) { return; }
  let base = p.lBase + row * p.ld;
  let t = targets[p.tBase + row];
  let valid = t >= 0 && u32(t) < p.V;
  var tlogit = 0.0;
  if (valid && li == 0u) { tlogit = ${lg('logits[base + u32(t)]')}; }
  // Online max / sum of exp over this thread's columns.
  var m = NEG;
  var s = 0.0;
  for (var v = li; v < p.V; v += ${WG}u) {
    let x = ${lg('logits[base + v]')};
    if (x > m) { s = s * exp(m - x) + 1.0; m = x; } else { s += exp(x - m); }
  }
  sm[li] = m;
  ss[li] = s;
  workgroupBarrier();
  for (var k = ${WG / 2}u; k > 0u; k >>= 1u) {
    if (li < k) {
      let m1 = sm[li]; let m2 = sm[li + k];
      let mm = max(m1, m2);
      ss[li] = ss[li] * exp(m1 - mm) + ss[li + k] * exp(m2 - mm);
      sm[li] = mm;
    }
    workgroupBarrier();
  }
  let lse = sm[0] + log(ss[0]);
  if (li == 0u && p.writeLogp != 0u) {
    var lp = 0.0;
    if (valid) { lp = tlogit - lse; }
    logp[p.oBase + row] = lp;
  }
${backward ? `
  var gw = 0.0;
  if (valid) { gw = g[p.gBase + row]; }
  for (var v = li; v < p.V; v += ${WG}u) {
    ${cb.decl}let pr = exp(${cb.score} - lse);
    var d = -gw * pr;
    if (valid && v == u32(t)) { d += gw; }
    logits[base + v] = ${cb.dS('d')};
  }` : ''}
}`,
  };
}

const ROW_FWD = rowDef(false, false);
const ROW_BWD = rowDef(true, false);
const ROW_FWD_CAP = rowDef(false, true);
const ROW_BWD_CAP = rowDef(true, true);


/** Rows [r0, r1) of a logits matrix with leading dimension ld (>= V) at element offset lOff;
 *  softcap 0: none (checkSoftcap). */
function rowKernel(gpu: Gpu, backward: boolean, logits: Tensor, lOff: number, ld: number, V: number,
  rows: number, targets: Tensor, tOff: number, g: Tensor | undefined, gOff: number,
  logp: Tensor | undefined, oOff: number, softcap: number): void {
  if (rows === 0) return;
  const k = gpu.kernels.get(softcap ? (backward ? ROW_BWD_CAP : ROW_FWD_CAP) : (backward ? ROW_BWD : ROW_FWD));
  const wl = windowOf(gpu, logits, lOff, lOff + (rows - 1) * ld + V);
  const wt = windowOf(gpu, targets, tOff, tOff + rows);
  const wg = g ? windowOf(gpu, g, gOff, gOff + rows) : windowOf(gpu, gpu.placeholder());
  const wo = logp ? windowOf(gpu, logp, oOff, oOff + rows) : windowOf(gpu, gpu.placeholder());
  const pw = new ParamWriter().u32(V, rows, ld, wl.base, wt.base, wg.base, wo.base, logp ? 1 : 0);
  if (softcap) pw.f32(softcap);
  const params = pw.bytes();
  gpu.recorder.dispatch(k, [wl.range, wt.range, wg.range, wo.range], params, grid(rows));
}

function checkTargets(targets: Tensor, N: number, what: string): void {
  if (targets.dtype !== 'i32' && targets.dtype !== 'u32') throw new TypeError(`${what}: targets ${targets} must be i32 or u32`);
  if (targets.numel < N) throw new RangeError(`${what}: targets ${targets} shorter than N=${N}`);
}

export interface LogSoftmaxGatherArgs {
  /** [N, V] (row stride `ld`, default V). Not modified. */
  logits: Tensor;
  /** [N] i32/u32; outside [0, V) = no target (logp 0). */
  targets: Tensor;
  /** [N] f32 out. */
  logp: Tensor;
  N: number; V: number; ld?: number;
  /** Logit soft-capping (Gemma 2's final_logit_softcapping): each logit x taken as
   *  softcap * tanh(x / softcap) before the log-softmax. Absent or 0: none; else finite and > 0. */
  softcap?: number;
}

/** logp[n] = log_softmax(logits[n])[targets[n]] (0 where there is no target). */
export function logSoftmaxGather(gpu: Gpu, a: LogSoftmaxGatherArgs): void {
  const { N, V } = a; const ld = a.ld ?? V;
  checkTargets(a.targets, N, 'logSoftmaxGather');
  const softcap = checkSoftcap(a.softcap, 'logSoftmaxGather');
  if (a.logits.numel < (N - 1) * ld + V || a.logp.numel < N) {
    throw new RangeError(`logSoftmaxGather: logits ${a.logits} / logp ${a.logp} too small for N=${N} V=${V}`);
  }
  if (V > maxWindowElems(gpu)) throw new RangeError(`logSoftmaxGather: one row of V=${V} exceeds a binding`);
  const rowsPer = Math.max(1, Math.floor((maxWindowElems(gpu) - V) / ld) + 1);
  for (let r0 = 0; r0 < N; r0 += rowsPer) {
    const r1 = Math.min(N, r0 + rowsPer);
    rowKernel(gpu, false, a.logits, r0 * ld, ld, V, r1 - r0, a.targets, r0, undefined, 0, a.logp, r0, softcap);
  }
}

export interface OutputLogprobArgs {
  /** [N, d] hidden states. */
  h: Tensor;
  /** [V, d] output weights (may exceed one binding; may be the tied embedding table). */
  w: Tensor;
  /** [N] i32/u32 target ids; outside [0, V) (e.g. -1) = no target. */
  targets: Tensor;
  N: number; d: number; V: number;
  /** Rows of logits per chunk (default: as many as fit chunkBytes). */
  chunkRows?: number;
  /** Byte budget of the logits chunk (default min(maxBinding, 128 MiB)). */
  chunkBytes?: number;
  /** Final logit soft-capping (Gemma 2's final_logit_softcapping): logit' = softcap * tanh(logit / softcap)
   *  before the log-softmax, and its derivative in the backward. Absent or 0: none; else finite and > 0.
   *  Kept logits stay the raw h w^T either way. */
  softcap?: number;
}

export interface OutputLogprobForwardArgs extends OutputLogprobArgs {
  /** [N] f32 out: log-prob of each target (0 where none). */
  logp: Tensor;
}

export interface OutputLogprobBackwardArgs extends OutputLogprobArgs {
  /** [N] f32: dL/dlogp per token (ignored where there is no target). */
  weights: Tensor;
  /** [N, d] f32 out: dL/dh, written (or added when accumulateDh). */
  dh: Tensor;
  /** [V, d] f32: dL/dw is ADDED to it (zero it first; tied embeddings add the lookup gradient). */
  dw: Tensor;
  accumulateDh?: boolean;
  /** Optional [N] out: the forward's logp, computed on the way (for SFT, where the weights are
   *  known before the forward, this makes forward + backward one pass). */
  logp?: Tensor;
}

/** Rows per logits chunk for V columns. */
export function outputChunkRows(gpu: Gpu, N: number, V: number, chunkRows?: number, chunkBytes?: number): number {
  if (chunkRows !== undefined) {
    if (!(chunkRows >= 1)) throw new RangeError(`outputLogprob: chunkRows ${chunkRows} < 1`);
    if (chunkRows * V > maxWindowElems(gpu)) throw new RangeError(`outputLogprob: chunkRows ${chunkRows} x V ${V} exceeds a binding`);
    return Math.min(N, Math.floor(chunkRows));
  }
  const budget = Math.min(chunkBytes ?? DEFAULT_CHUNK_BYTES, maxWindowElems(gpu) * 4);
  const rows = Math.floor(budget / (V * 4));
  if (rows < 1 && V > maxWindowElems(gpu)) throw new RangeError(`outputLogprob: one row of V=${V} exceeds a binding`);
  return Math.max(1, Math.min(N, rows));
}

function checkArgs(gpu: Gpu, a: OutputLogprobArgs, what: string): number {
  const { N, d, V } = a;
  checkTargets(a.targets, N, what);
  checkSoftcap(a.softcap, what);
  if (a.h.numel < N * d) throw new RangeError(`${what}: h ${a.h} smaller than [${N}, ${d}]`);
  if (a.w.numel < V * d) throw new RangeError(`${what}: w ${a.w} smaller than [${V}, ${d}]`);
  return outputChunkRows(gpu, N, V, a.chunkRows, a.chunkBytes);
}

/** A forward's logits chunks, kept for the backward (outputLogprob `keep`): chunk i holds rows
 *  [i rows, (i + 1) rows) of the N x V logits. Release with releaseKeptLogits() if no backward takes them. */
export interface KeptLogits { N: number; V: number; rows: number; chunks: Tensor[] }

/**
 * Bytes of logits a training forward may keep for its backward (outputLogprob `keep`):
 * SRK_KEEP_LOGITS_MIB (MiB; 0: never keep, recompute), default 1024.
 */
export function keptLogitsBudget(): number {
  return (keepLogitsMib(process.env.SRK_KEEP_LOGITS_MIB) ?? 1024) * 2 ** 20;
}

/** Frees kept logits (a forward whose backward never ran). */
export function releaseKeptLogits(gpu: Gpu, kept: KeptLogits | undefined): void {
  if (kept) gpu.pool.release(...kept.chunks.splice(0));
}

/**
 * Forward: logp [N]. `keep` (a training forward): every logits chunk is kept and returned for
 * outputLogprobBackward's `kept`, which then reads them instead of recomputing them.
 */
export function outputLogprob(gpu: Gpu, a: OutputLogprobForwardArgs & { keep?: boolean }): KeptLogits | undefined {
  const { N, d, V } = a;
  const rows = checkArgs(gpu, a, 'outputLogprob');
  if (a.logp.numel < N) throw new RangeError(`outputLogprob: logp ${a.logp} shorter than N=${N}`);
  if (N === 0) return undefined;
  const kept: KeptLogits | undefined = a.keep ? { N, V, rows, chunks: [] } : undefined;
  let logits = gpu.pool.acquire([rows, V], 'f32', 'logits-chunk');
  const { h, w, timing, release } = operands(gpu, a, rows, 'fwd');
  for (let r0 = 0; r0 < N; r0 += rows) {
    const m = Math.min(rows, N - r0);
    if (kept && r0 > 0) logits = gpu.pool.acquire([rows, V], 'f32', 'logits-chunk');
    matmul(gpu, { a: h, b: w, c: logits, M: m, N: V, K: d, transB: true, offA: r0 * d, timing });
    rowKernel(gpu, false, logits, 0, V, V, m, a.targets, r0, undefined, 0, a.logp, r0, a.softcap ?? 0);
    kept?.chunks.push(logits);
  }
  release();
  if (!kept) gpu.pool.release(logits);
  return kept;
}

/**
 * h and w as the products read them: f32, or in the f16 precision f16 copies (half.ts, made once
 * per call for all chunks) where f16CopiesPick says so; the tuner's timing name while it compares
 * the two ways (the copies and products timed, the row kernels the same either way and untimed).
 */
function operands(gpu: Gpu, a: OutputLogprobArgs, rows: number, dir: 'fwd' | 'bwd'): { h: Tensor; w: Tensor; copies: boolean; timing?: string; release: () => void } {
  const { N, d, V } = a;
  // A chunk under 16 rows multiplies in f32 when staged (matmul.ts): no copies then.
  const small = Math.min(rows, N - Math.floor((N - 1) / rows) * rows, d) < 16;
  const { copies, timing } = small ? { copies: false, timing: undefined }
    : f16CopiesPick(gpu, `output layer ${dir} 2^(${halfOctave(N)},${halfOctave(V)},${halfOctave(d)})`);
  if (!copies) return { h: a.h, w: a.w, copies, timing, release: () => {} };
  const h = halfOf(gpu, a.h, N * d, undefined, timing);
  const w = halfOf(gpu, a.w, V * d, undefined, timing);
  return { h, w, copies, timing, release: () => gpu.pool.release(h, w) };
}

/**
 * Backward: dh = dlogits w, dw += dlogits^T h, chunk by chunk, on the logits `kept` by the forward
 * (released here as they are used), else recomputing each chunk.
 */
export function outputLogprobBackward(gpu: Gpu, a: OutputLogprobBackwardArgs & { kept?: KeptLogits }): void {
  const { N, d, V } = a;
  const rows = checkArgs(gpu, a, 'outputLogprobBackward');
  if (a.weights.numel < N) throw new RangeError(`outputLogprobBackward: weights ${a.weights} shorter than N=${N}`);
  if (a.dh.numel < N * d) throw new RangeError(`outputLogprobBackward: dh ${a.dh} smaller than [${N}, ${d}]`);
  if (a.dw.numel < V * d) throw new RangeError(`outputLogprobBackward: dw ${a.dw} smaller than [${V}, ${d}]`);
  if (a.logp && a.logp.numel < N) throw new RangeError(`outputLogprobBackward: logp ${a.logp} shorter than N=${N}`);
  const kept = a.kept;
  if (kept && (kept.N !== N || kept.V !== V || kept.rows !== rows || kept.chunks.length !== Math.ceil(N / rows))) {
    throw new Error(`outputLogprobBackward: the kept logits (${kept.N} x ${kept.V} in ${kept.chunks.length} chunks of ${kept.rows} rows) are not this call's (${N} x ${V}, ${rows} rows a chunk)`);
  }
  if (N === 0) return;
  const scratch = kept ? undefined : gpu.pool.acquire([rows, V], 'f32', 'logits-chunk');
  const { h, w, copies, timing, release } = operands(gpu, a, rows, 'bwd');
  for (let r0 = 0, i = 0; r0 < N; r0 += rows, i++) {
    const m = Math.min(rows, N - r0);
    const logits = kept ? kept.chunks[i] : scratch!;
    if (!kept) matmul(gpu, { a: h, b: w, c: logits, M: m, N: V, K: d, transB: true, offA: r0 * d, timing });
    rowKernel(gpu, true, logits, 0, V, V, m, a.targets, r0, a.weights, r0, a.logp, r0, a.softcap ?? 0);
    // f16 precision: one max |dlogits| for both products below (they scale it before rounding).
    const scale = gpu.matmulPrecision === 'f16' ? absmaxOf(gpu, logits, m * V) : undefined;
    const dl = copies ? halfOf(gpu, logits, m * V, scale, timing) : logits;
    // dh[r0:r0+m] = dlogits [m, V] w [V, d]
    matmul(gpu, { a: dl, b: w, c: a.dh, M: m, N: d, K: V, offC: r0 * d, accumulate: a.accumulateDh ?? false, scaleA: scale, timing });
    // dw [V, d] += dlogits^T [V, m] h[r0:r0+m] [m, d]
    matmul(gpu, { a: dl, b: h, c: a.dw, M: V, N: d, K: m, transA: true, lda: V, offB: r0 * d, accumulate: true, scaleA: scale, timing });
    if (copies) gpu.pool.release(dl);
    if (scale) gpu.pool.release(scale);
    // Later work may reuse a kept chunk: it runs after these products in queue order.
    if (kept) gpu.pool.release(logits);
  }
  if (kept) kept.chunks.length = 0;
  release();
  if (scratch) gpu.pool.release(scratch);
}
