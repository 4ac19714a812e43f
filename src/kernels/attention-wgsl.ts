// WGSL shared by the attention kernels (attention-blocked.ts, attention-legacy.ts): operand
// addressing through HeadOperand fields (base, token stride, head stride) and the backward's
// preparation kernel, which both backward paths run first.
import type { Tensor } from '../engine/tensor.js';
import type { KernelDef, ParamWriter, Window } from '../engine/kernel.js';
import { MASK_WGSL } from './attention-mask.js';

/** A resolved HeadOperand (attention.ts): tensor, element offset, token and head strides, head count. */
export interface Op { t: Tensor; off: number; ts: number; hs: number; H: number }

export const opFields = (n: string) => `${n}Base: u32, ${n}Tok: u32, ${n}Head: u32,`;
export const opParams = (w: ParamWriter, wi: Window, op: Op) => w.u32(wi.base, op.ts, op.hs);
/** Index of element (local batch b, token t, head h, column d) of operand n. */
export const at = (n: string, b: string, t: string, h: string, d: string) =>
  `p.${n}Base + (${b} * p.T + ${t}) * p.${n}Tok + ${h} * p.${n}Head + ${d}`;

/**
 * The Params struct, storage bindings and uniform of one attention pass, followed by MASK_WGSL: one
 * definition for every kernel family, in the order attention.ts binds them. `shared`: dK and dV in
 * one binding (named dk; dv addressed through its own fields). `scaled`: the tensor-core backward's
 * dO and V absmax parts (partsBase, binding before the outputs).
 */
export function passIO(pass: 'fwd' | 'dq' | 'dkdv', o: { shared?: boolean; scaled?: boolean } = {}): string {
  const ops = pass === 'fwd' ? ['q', 'k', 'v', 'o'] : pass === 'dq' ? ['q', 'k', 'v', 'g', 'dq'] : ['q', 'k', 'v', 'g', 'dk', 'dv'];
  const tail = pass === 'fwd' ? 'lseBase: u32, scale: f32,' : `ldBase: u32, scale: f32,${o.scaled ? ' partsBase: u32,' : ''}`;
  const inputs: [string, string][] = pass === 'fwd'
    ? [['q', 'f32'], ['k', 'f32'], ['v', 'f32'], ['m', 'i32']]
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
${MASK_WGSL}`;
}

export const PRE_WG = 64;
// D_i = rowsum(dout_i * out_i), stored beside lse_i: ld[2 n] = lse, ld[2 n + 1] = D (n = (b Hq + h) T + i).
export const PREP: KernelDef = {
  name: 'attn_bwd_prep',
  bindings: ['read', 'read', 'read', 'rw'],
  uniform: true,
  code: /* wgsl */ `
struct Params { T: u32, Hq: u32, Dh: u32, n: u32, ${opFields('g')} ${opFields('o')} lseBase: u32, ldBase: u32 };
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
  for (var d = 0u; d < p.Dh; d++) { D = fma(dout[${at('g', 'b', 'i', 'h', 'd')}], out[${at('o', 'b', 'i', 'h', 'd')}], D); }
  ld[p.ldBase + 2u * n] = lse[p.lseBase + n];
  ld[p.ldBase + 2u * n + 1u] = D;
}`,
};
