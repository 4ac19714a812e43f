// WGSL shared by the attention kernels (attention-blocked.ts, attention-legacy.ts, attention-smx.ts): operand
// addressing through HeadOperand fields (base, token stride, head stride), the backward's
// preparation kernel, which both backward paths run first, and Gemma 2's score soft-capping
// (SOFTCAP_WGSL, also in attention-unfused.ts and attention-cached.ts).
import type { Tensor } from '../engine/tensor.js';
import type { KernelDef, ParamWriter, Window } from '../engine/kernel.js';
import { MASK_WGSL } from './attention-mask.js';
import type { Gpu } from '../engine/gpu.js';
import { ABSMAX_PARTS, absmaxInto, absmaxStridedInto } from './absmax.js';
import { SOFTCAP_WGSL, capBackward, capped } from './softcap.js';

/** A resolved HeadOperand (attention.ts): tensor, element offset, token and head strides, head count. */
export interface Op { t: Tensor; off: number; ts: number; hs: number; H: number }

/** Whether K and V lie side by side in one tensor (GPT-NeoX's fused QKV: [q k v] per head), so that each
 *  head's K and V columns are one run of 2 Dh. */
const kvSideBySide = (k: Op, v: Op, Dh: number): boolean =>
  k.t === v.t && v.off === k.off + Dh && k.hs === v.hs && k.ts === v.ts && k.H === v.H && k.ts === k.H * k.hs;

/** Q's, K's and V's partial maxima (qkvMaxima): one tensor to release, and a view of each operand's. */
export interface QkvMaxima { parts: Tensor; q: Tensor; k: Tensor; v: Tensor; /** V's maxima's offset in `parts` */ vAt: number }

/**
 * The partial maxima f16 attention scales Q, K and V by, once per attention call (over every row and
 * head), in one tensor of ABSMAX_PARTS sections: Q's, then K's, then V's, except where K and V lie side
 * by side (GPT-NeoX's fused QKV), whose one strided pass serves both (projections of the same normed
 * input, alike in size; Q keeps its own: one max for all three would put a query far smaller than the
 * keys into f16's subnormals). Shared by the matmul-based attention (scaleA / scaleB of its products)
 * and the tensor-core forward (one binding). `timing`: the tuner's name for the call.
 */
export function qkvMaxima(gpu: Gpu, ops: { q: Op; k: Op; v: Op }, Dh: number, tokens: number, timing?: string): QkvMaxima {
  const parts = gpu.pool.acquire([3 * ABSMAX_PARTS], 'f32', 'attn operand maxima');
  headAbsmaxInto(gpu, ops.q, Dh, tokens, parts, 0, Dh, timing);
  const joint = kvSideBySide(ops.k, ops.v, Dh);
  headAbsmaxInto(gpu, ops.k, Dh, tokens, parts, ABSMAX_PARTS, joint ? 2 * Dh : Dh, timing);
  if (!joint) headAbsmaxInto(gpu, ops.v, Dh, tokens, parts, 2 * ABSMAX_PARTS, Dh, timing);
  const vAt = (joint ? 1 : 2) * ABSMAX_PARTS;
  const at = (off: number) => parts.view([ABSMAX_PARTS], off);
  return { parts, q: at(0), k: at(ABSMAX_PARTS), v: at(vAt), vAt };
}

/**
 * The partial maxima of operand `op` (Dh columns a head, `tokens` tokens) into parts[outOff ..): of its
 * own columns where its heads lie evenly through the tokens (Q of GPT-NeoX's fused QKV tensor without K
 * and V; a tensor of its own whole), else of its whole tensor (a superset). `cols` (default Dh) reads
 * that many columns from each head's start: 2 Dh takes a fused tensor's K and V at once. `timing`: the
 * tuner's name for the attention call (absmaxStridedInto).
 */
export function headAbsmaxInto(gpu: Gpu, op: Op, Dh: number, tokens: number, parts: Tensor, outOff: number, cols = Dh, timing?: string): void {
  if (op.ts === op.H * op.hs && cols <= op.hs) absmaxStridedInto(gpu, op.t, op.off, cols, op.hs, tokens * op.H, parts, outOff, timing);
  else absmaxInto(gpu, op.t, op.t.numel, parts, outOff, timing);
}

export const opFields = (n: string) => `${n}Base: u32, ${n}Tok: u32, ${n}Head: u32,`;
export const opParams = (w: ParamWriter, wi: Window, op: Op) => w.u32(wi.base, op.ts, op.hs);
/**
 * Whether a row's softmax sum (of exp(score - max) over its visible keys) saw any key: it is +0
 * exactly for a row with none (past its length), at least 1 otherwise, NaN after a NaN score. As
 * bits again: `sum > 0.0` is false for NaN, and wrote the empty row's lse 0 for a NaN row. (A row
 * whose every visible score is -Inf also sums to +0 and reads as empty: only an infinite f32 input
 * gets there, weights are checked finite when they load, and f16 operands are scaled.)
 */
export const SAW_KEYS_WGSL = /* wgsl */ `
fn sawKeys(sum: f32) -> bool { return bitcast<u32>(sum) != 0u; }`;

/**
 * The flash forwards' test of a score against MASKED (an invisible key's exact score, a const each
 * kernel declares): true for every other value, NaN included. Compared as bits, because WGSL's
 * `x != MASKED` compiles to an ordered comparison (false for NaN on lavapipe), and `x > MASKED` is
 * false for NaN too: either one dropped a NaN score as if masked and returned a finite, wrong row.
 */
export const SHOWN_WGSL = /* wgsl */ `
fn shown(x: f32) -> bool { return bitcast<u32>(x) != bitcast<u32>(MASKED); }
${SAW_KEYS_WGSL}`;

// Gemma 2's score soft-capping (softcap.ts), used by every attention kernel family: capped() in a forward,
// capBackward() in a backward, SOFTCAP_WGSL declaring capTanh in the kernel.
export { SOFTCAP_WGSL, capBackward, capped };

/** Index of element (local batch b, token t, head h, column d) of operand n. */
export const at = (n: string, b: string, t: string, h: string, d: string) =>
  `p.${n}Base + (${b} * p.T + ${t}) * p.${n}Tok + ${h} * p.${n}Head + ${d}`;

/**
 * The Params struct, storage bindings and uniform of one attention pass, followed by MASK_WGSL: one
 * definition for every kernel family, in the order attention.ts binds them. `shared`: dK and dV in
 * one binding (named dk; dv addressed through its own fields). `scaled`: absmax parts (partsBase, binding
 * before the outputs): the tensor-core forward's of Q, K and V (qkvMaxima; V's at partsBase + vParts), the
 * tensor-core backward's of dO and V. `softcap`: the cap last in Params (attention.ts writes it after
 * everything else) and SOFTCAP_WGSL.
 */
export function passIO(pass: 'fwd' | 'dq' | 'dkdv', o: { shared?: boolean; scaled?: boolean; softcap?: boolean } = {}): string {
  const ops = pass === 'fwd' ? ['q', 'k', 'v', 'o'] : pass === 'dq' ? ['q', 'k', 'v', 'g', 'dq'] : ['q', 'k', 'v', 'g', 'dk', 'dv'];
  const tail = `${pass === 'fwd' ? 'lseBase' : 'ldBase'}: u32, scale: f32,${o.scaled ? ' partsBase: u32,' : ''}${o.scaled && pass === 'fwd' ? ' vParts: u32,' : ''}${o.softcap ? ' cap: f32,' : ''}`;
  const inputs: [string, string][] = pass === 'fwd'
    ? [['q', 'f32'], ['k', 'f32'], ['v', 'f32'], ['m', 'i32'], ...(o.scaled ? [['parts', 'f32'] as [string, string]] : [])]
    : [['q', 'f32'], ['k', 'f32'], ['v', 'f32'], ['dout', 'f32'], ['ld', 'f32'], ['m', 'i32'], ...(o.scaled ? [['parts', 'f32'] as [string, string]] : [])];
  const outputs = pass === 'fwd' ? ['o', 'lse'] : pass === 'dq' ? ['dq'] : o.shared ? ['dk'] : ['dk', 'dv'];
  const lines = [
    ...inputs.map(([n, t], i) => `@group(0) @binding(${i}) var<storage, read> ${n}: array<${t}>;`),
    ...outputs.map((n, i) => `@group(0) @binding(${inputs.length + i}) var<storage, read_write> ${n}: array<f32>;`),
    `@group(0) @binding(${inputs.length + outputs.length}) var<uniform> p: Params;`,
  ];
  return `struct Params {
  T: u32, Dh: u32, Hq: u32, nRep: u32, b0: u32, mBase: u32, hasMask: u32, window: u32,
  ${ops.map(opFields).join(' ')}
  ${tail}
};
${lines.join('\n')}
${MASK_WGSL}${o.softcap ? SOFTCAP_WGSL : ''}`;
}

/**
 * The dK/dV passes' walk over the query tiles that can see key tile [k0, k0 + keyRows): every query
 * head of the key head's group, the causal range from k0 (cut by a sliding window when positions
 * are indices), query tiles of `queryRows` that the segments hide skipped. Opens two loops (with i0,
 * h and ldRow, the head's lse/D row, in scope) that the caller closes; `len` is the row's length.
 */
export function queryTileWalk(keyRows: string, queryRows: string): string {
  return `// Without a mask (positions = indices) a sliding window hides every query at or past
  // k0 + ${keyRows} - 1 + window from this tile's keys.
  var iEnd = len;
  if (p.hasMask == 0u && p.window > 0u) { iEnd = min(len, k0 + ${keyRows} - 1u + p.window); }
  for (var hh = 0u; hh < p.nRep; hh++) {
    let h = kvh * p.nRep + hh;
    let ldRow = p.ldBase + 2u * ((b * p.Hq + h) * p.T);
    // Causal: only queries i >= k0 can see this tile's keys; none at or past the length.
    for (var i0 = k0; i0 < iEnd; i0 += ${queryRows}) {
      // A query tile that sees none of this tile's keys through the segments is skipped whole.
      if (tileSkipped(li, gb, i0, min(i0 + ${queryRows}, iEnd), k0, min(k0 + ${keyRows}, len))) { continue; }`;
}

export const PRE_WG = 64;
// D_i = rowsum(dout_i * out_i), stored beside lse_i: ld[2 n] = lse, ld[2 n + 1] = D (n = (b Hq + h) T + i).
// roundG = 1 where both passes take dO as f16 (the tensor-core kernels, the unfused path's f16 products): D from dO
// rounded to f16's 11 significant bits, as dP = dO V^T sees it, so that dS = P (dP - D) cancels what V's keys share
// (a value bias): with D from the exact dO, its rounding (2^-11 |dO| |v|) stayed in dS, ~2x the error of rounding alone.
// (The passes scale dO by a power of two first; elements that land in f16's subnormals lose more bits there than
// here, a small remainder.)
export const PREP: KernelDef = {
  name: 'attn_bwd_prep',
  bindings: ['read', 'read', 'read', 'rw'],
  uniform: true,
  code: /* wgsl */ `
struct Params { T: u32, Hq: u32, Dh: u32, n: u32, ${opFields('g')} ${opFields('o')} lseBase: u32, ldBase: u32, roundG: u32 };
@group(0) @binding(0) var<storage, read> dout: array<f32>;
@group(0) @binding(1) var<storage, read> out: array<f32>;
@group(0) @binding(2) var<storage, read> lse: array<f32>;
@group(0) @binding(3) var<storage, read_write> ld: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
@compute @workgroup_size(${PRE_WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let n = (wg.x + wg.y * nwg.x) * ${PRE_WG}u + li;
  if (n >= p.n) { return; }
  let i = n % p.T; let h = (n / p.T) % p.Hq; let b = n / (p.T * p.Hq);
  var D = 0.0;
  for (var d = 0u; d < p.Dh; d++) {
    var g = dout[${at('g', 'b', 'i', 'h', 'd')}];
    // To nearest, ties to even, at 10 fraction bits: f16's rounding wherever the scaled value is an f16 normal.
    if (p.roundG == 1u) { let u = bitcast<u32>(g); g = bitcast<f32>((u + 0xfffu + ((u >> 13u) & 1u)) & 0xffffe000u); }
    D = fma(g, out[${at('o', 'b', 'i', 'h', 'd')}], D);
  }
  ld[p.ldBase + 2u * n] = lse[p.lseBase + n];
  ld[p.ldBase + 2u * n + 1u] = D;
}`,
};
