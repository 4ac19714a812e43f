// Attention backward on tensor cores: the dQ and dK/dV passes for the 'f16' precision (the forward,
// the tile shapes and the staging they share are in attention-smx.ts).
import type { KernelDef } from '../engine/kernel.js';
import { memoDef } from '../engine/kernel.js';
import { at, capBackward, passIO, queryTileWalk } from './attention-wgsl.js';
import { smxDialect } from './smx-wgsl.js';
import { ABSMAX_PARTS, f16ScaleWgsl } from './absmax.js';
import { F, PAD, SUBGROUP_PARAMS, keyTileWalk, quadStore, stagePosSeg, stageFn, subgroupLets, type SmxAttentionTiles } from './attention-smx.js';

// Backward on tensor cores (flash-attention-2 as in attention.ts, with f16 operands): the same two
// passes and outputs as the f32 kernels, after the same preparation kernel (lse and D per row).
// dO is tiny where the loss gradient is, so it is scaled by a power of two gs (gradScale below) from
// its max |value| and V's: as large as keeps max |dO| gs <= 2^14 and, since |dP|, |D| <=
// Dh max|dO| max|v|, |dS| = |P (dP - D)| <= 2^15 inside f16's range whatever the activations; D is
// scaled alike and the gradients are divided by gs at the end. P, dS and the staged operands are f16, every
// product sums in f32, the elementwise work (P = exp(s - lse), dS) is f32.
//   dQ pass:   a workgroup owns BR = 16 SGQ query rows (Q and dO fragments loaded once) and walks
//              key tiles: S = Q K^T, dP = dO V^T (scratch), dS (f16), dQ += dS K (result matrices
//              kept across the walk: no rescaling in the backward).
//   dK/dV pass: a workgroup owns 16 SGQ keys of one kv head (K and V fragments loaded once) and walks
//              the query tiles of every query head sharing it: S^T = K Q^T, dP^T = V dO^T, P^T and
//              dS^T (f16), dV += P^T dO, dK += dS^T Q.
// `softcap` variants: P of the capped score, dS times the cap's derivative 1 - tanh^2 (<= 1: |dS| keeps
// its bound).


/**
 * WGSL fn gradScale(li, base): the power of two dO is multiplied by. parts[base ..) holds the absmax
 * parts of dO, then those of V (2 x ABSMAX_PARTS). With s_g = f16Scale(dO) and s_v = f16Scale(V)
 * (max|x| <= 2^14 / s_x), gs = s_g min(1, s_v / (2^14 DhP)) where DhP >= Dh is a power of two, so
 * 2 Dh max|dO| max|v| gs <= 2^15. All factors are powers of two: exact.
 */
function gradScaleWgsl(threads: number, DP: number): string {
  const DhP = 2 ** Math.ceil(Math.log2(DP));
  return `${f16ScaleWgsl(threads)}
fn gradScale(li: u32, base: u32) -> f32 {
  let sg = f16Scale(li, base);
  workgroupBarrier(); // every invocation has read f16Scale's result before its scratch is reused
  let sv = f16Scale(li, base + ${ABSMAX_PARTS}u);
  return sg * min(1.0, sv / ${16384 * DhP}.0);
}`;
}

/** Workgroup bytes of a backward tiling ('dq': SGQ x 16 query rows, BC keys per tile; 'dkdv':
 *  SGQ x 16 keys, BC queries per tile). */
export function smxBackwardShape(pass: 'dq' | 'dkdv', t: SmxAttentionTiles, sg: number): { threads: number; sharedBytes: number } {
  const R = F * t.SGQ; const RSH = t.DP + PAD; const PS = t.BC + PAD; const threads = t.SGQ * sg;
  const kv = 2 * (t.reload ? 2 * (R + t.BC) : 2 * Math.max(R, t.BC)) * RSH; // owned operands first (after the streamed pair with reload), then the streamed pair
  const sab = 2 * 4 * t.SGQ * F * t.BC;                 // two f32 scratches per subgroup
  const half = (pass === 'dq' ? 1 : 2) * 2 * t.SGQ * F * PS; // dS (and P^T) in f16
  const small = 4 * (pass === 'dq' ? 4 * R + 2 * t.BC : 2 * R + 4 * t.BC) + 16 + 4 * threads; // + f16Scale's reduction
  return { threads, sharedBytes: kv + sab + half + small };
}

export function chooseSmxBackwardTiles(pass: 'dq' | 'dkdv', Dh: number, sg: number, maxBytes: number, maxThreads: number, reload = false): SmxAttentionTiles | undefined {
  const DP = Math.ceil(Dh / F) * F;
  for (const [SGQ, BC] of [[4, 32], [2, 32], [1, 32], [1, 16]]) {
    const t = reload ? { SGQ, BC, DP, reload } : { SGQ, BC, DP };
    const s = smxBackwardShape(pass, t, sg);
    if (s.sharedBytes <= maxBytes && s.threads <= maxThreads) return t;
  }
  return undefined;
}

/** Stores result matrices `mats[d]` (16 rows of this subgroup x 16 columns d*16..) through the
 *  subgroup's scratch Sa into operand field `f` of array `arr` for head `head`, rows row0 + sg*16 + r. */
function storeFrags(sm: Dialect, mats: string[], factor: string, arr: string, f: string, head: string,
  row0: string, scratch: number, sg: number): string {
  const out: string[] = [];
  mats.forEach((mname, d) => {
    out.push(sm.scale(mname, factor), sm.store('Sa', `sgi * ${scratch}u`, mname, 'row_major', `${F}u`), 'workgroupBarrier();',
      `for (var t = 0u; t < ${(F * F) / sg}u; t++) {`,
      `  let e = lane + ${sg}u * t; let r = e / ${F}u; let col = ${d * F}u + e % ${F}u; let tok = ${row0} + sgi * ${F}u + r;`,
      `  if (tok < p.T && col < p.Dh) { ${arr}[${at(f, 'b', 'tok', head, 'col')}] = Sa[sgi * ${scratch}u + e]; }`,
      '}', 'workgroupBarrier();');
  });
  return out.join('\n  ');
}

type Dialect = ReturnType<typeof smxDialect>;

/** Quads of 4 elements per lane covering a subgroup's [16][C] tile (C a multiple of 4). */
function quads(C: number, sg: number): number {
  const n = (F * C) / (4 * sg);
  if (!Number.isInteger(n)) throw new RangeError(`attention: smx tile of ${C} columns does not split into quads over ${sg} lanes`);
  return n;
}


/** Loads the subgroup's 16 owned rows of the two operands staged at KV rows base and base + R as
 *  left matrices a0.., b0.. (one per 16 head-dim columns). */
function ownedFrags(sm: Dialect, a: string, b: string, R: number, FD: number, RSH: number, base: number): string[] {
  const out: string[] = [];
  for (let d = 0; d < FD; d++) {
    out.push(sm.load('left', `${a}${d}`, 'KV', `(${base}u + sgi * 16u) * ${RSH}u + ${d * F}u`, 'row_major', `${RSH}u`),
      sm.load('left', `${b}${d}`, 'KV', `(${base + R}u + sgi * 16u) * ${RSH}u + ${d * F}u`, 'row_major', `${RSH}u`));
  }
  return out;
}

/**
 * Sa = A X^T and Sb = B Y^T for the subgroup's rows (A, B: owned fragments a*, b*; X, Y: the
 * streamed tiles of C rows at KV rows 0 and C, read as column-major rights), stored [16][C].
 */
function pairScores(sm: Dialect, a: string, b: string, C: number, FD: number, RSH: number): string[] {
  const out: string[] = [];
  for (let c = 0; c < C / F; c++) {
    out.push('{');
    for (let d = 0; d < FD; d++) {
      const op = d === 0 ? sm.mul : sm.mma; // each tile's sums start from their first product
      out.push(sm.load('right', `xt${d}`, 'KV', `${c * F * RSH + d * F}u`, 'col_major', `${RSH}u`), op('sres', `${a}${d}`, `xt${d}`),
        sm.load('right', `yt${d}`, 'KV', `${(C + c * F) * RSH + d * F}u`, 'col_major', `${RSH}u`), op('dpres', `${b}${d}`, `yt${d}`));
    }
    out.push(sm.store('Sa', `sgi * ${F * C}u + ${c * F}u`, 'sres', 'row_major', `${C}u`),
      sm.store('Sb', `sgi * ${F * C}u + ${c * F}u`, 'dpres', 'row_major', `${C}u`), '}');
  }
  return out;
}

/** acc_d += W Z for each 16 head-dim columns d: W the subgroup's f16 [16][C] tile in `w` (row
 *  stride PS), Z the streamed tile at KV row z0 (row-major). */
function accumulate(sm: Dialect, acc: string, w: string, z0: number, C: number, FD: number, RSH: number, PS: number): string[] {
  const out: string[] = [];
  for (let d = 0; d < FD; d++) {
    for (let c = 0; c < C / F; c++) {
      out.push(`{ ${sm.load('left', 'wf', w, `sgi * ${F * PS}u + ${c * F}u`, 'row_major', `${PS}u`)} ` +
        `${sm.load('right', 'zf', 'KV', `${(z0 + c * F) * RSH + d * F}u`, 'row_major', `${RSH}u`)} ${sm.mma(`${acc}${d}`, 'wf', 'zf')} }`);
    }
  }
  return out;
}

function smxDqDefGen(t: SmxAttentionTiles, sg: number, emulated: boolean, softcap = false): KernelDef {
  const sm = smxDialect(emulated);
  const { SGQ, BC, DP } = t;
  const BR = F * SGQ; const RSH = DP + PAD; const PS = BC + PAD; const FD = DP / F;
  const threads = SGQ * sg; const SA = F * BC; // per-subgroup scratch floats
  const u = (n: number) => `${n}u`;
  const OWN = t.reload ? 2 * BC : 0; // the owned operands' first KV row
  const loads = ownedFrags(sm, 'qf', 'gf', BR, FD, RSH, OWN); // Q and dO (staged at rows OWN and OWN + BR)
  const sdp = pairScores(sm, 'qf', 'gf', BC, FD, RSH);       // S = Q K^T, dP = dO V^T
  const dqs = accumulate(sm, 'dq', 'Ps', 0, BC, FD, RSH, PS); // dQ += dS K
  const accs = Array.from({ length: FD }, (_, d) => `dq${d}`);
  const cb = capBackward(softcap, `Sa[sgi * ${u(SA)} + e] * p.scale`);
  return {
    name: `attn_bwd_dq_smx_${BR}x${BC}_d${DP}_sg${sg}${t.reload ? '_reload' : ''}${emulated ? '_emu' : ''}${softcap ? '_softcap' : ''}`,
    bindings: ['read', 'read', 'read', 'read', 'read', 'read', 'read', 'rw'],
    uniform: true,
    code: sm.module(/* wgsl */ `${sm.header}
const BR = ${u(BR)};
const BC = ${u(BC)};
const DP = ${u(DP)};
${passIO('dq', { scaled: true, softcap })}
${gradScaleWgsl(threads, DP)}
var<workgroup> KV: array<f16, ${(t.reload ? 2 * (BR + BC) : 2 * Math.max(BR, BC)) * RSH}>; // ${t.reload ? 'K [BC], V [BC], Q [BR], dO [BR]' : 'Q [BR], dO [BR] first; then K [BC], V [BC]'}
var<workgroup> Sa: array<f32, ${SGQ * SA}>; // per subgroup [16][BC]: S (then output fragments)
var<workgroup> Sb: array<f32, ${SGQ * SA}>; // per subgroup [16][BC]: dP
var<workgroup> Ps: array<f16, ${SGQ * F * PS}>; // per subgroup [16][PS]: dS
var<workgroup> qpos: array<i32, ${BR}>;
var<workgroup> qseg: array<i32, ${BR}>;
var<workgroup> qlse: array<f32, ${BR}>;
var<workgroup> qD: array<f32, ${BR}>;
var<workgroup> kpos: array<i32, ${BC}>;
var<workgroup> kseg: array<i32, ${BC}>;
var<workgroup> lenS: u32;
${stageFn([['q', 'q'], ['k', 'k'], ['v', 'v'], ['dout', 'g']], threads, RSH)}

// workgroup (x: query tile, y: query head, z: batch row in this chunk).
@compute @workgroup_size(${threads}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32,
        ${SUBGROUP_PARAMS}) {
  ${subgroupLets(sg, emulated)}
  let b = wg.z; let gb = p.b0 + b; let h = wg.y; let kvh = h / p.nRep; let q0 = wg.x * BR;
  let sgi = li / sgs;
  let gs = gradScale(li, p.partsBase);
  if (li == 0u) { lenS = rowLen(gb); }
  let len = workgroupUniformLoad(&lenS);
  stageRow(li, BR, p.T, q0, ${u(OWN)}, 0u, b, h, 1.0);
  stageRow(li, BR, p.T, q0, ${u(OWN + BR)}, 3u, b, h, gs);
  let ldRow = p.ldBase + 2u * ((b * p.Hq + h) * p.T);
  ${stagePosSeg('BR', 'q0', 'p.T', 'qpos', 'qseg', threads, true)}
  workgroupBarrier();
  ${t.reload ? '' : loads.join('\n  ')}
  workgroupBarrier();
  ${accs.map((a) => sm.declResult(a)).join('\n  ')}
  ${keyTileWalk(threads)}
    ${t.reload ? loads.join('\n    ') : ''}
    ${sdp.join('\n    ')}
    workgroupBarrier();
    // Lanes take aligned quads of 4 elements (dS written 8 bytes at a time, as the staging does).
    for (var t = 0u; t < ${u(quads(BC, sg))}; t++) {
      let e0 = 4u * (lane + ${u(sg)} * t); let r = e0 / BC; let j0 = e0 % BC; let rr = sgi * 16u + r;
      var ds = vec4f(0.0);
      for (var k4 = 0u; k4 < 4u; k4++) {
        let jj = j0 + k4; let j = k0 + jj; let e = e0 + k4;
        if (j < kEnd && visible(q0 + rr, j, len, qpos[rr], qseg[rr], kpos[jj], kseg[jj])) {
          ${cb.decl}let pv = exp(${cb.score} - qlse[rr]);
          ds[k4] = ${cb.dS(`pv * (Sb[sgi * ${u(SA)} + e] - qD[rr])`)};
        }
      }
      ${quadStore('Ps', `sgi * ${u(F * PS)} + r * ${u(PS)} + j0`, 'ds')}
    }
    workgroupBarrier();
    ${dqs.join('\n    ')}
    workgroupBarrier();
  }
  ${storeFrags(sm, accs, 'p.scale / gs', 'dq', 'dq', 'h', 'q0', SA, sg)}
}`),
  };
}

function smxDkdvDefGen(t: SmxAttentionTiles, sg: number, emulated: boolean, shared: boolean, softcap = false): KernelDef {
  const sm = smxDialect(emulated);
  const { SGQ, BC, DP } = t;
  const BK = F * SGQ; const BQ = BC; const RSH = DP + PAD; const PS = BQ + PAD; const FD = DP / F;
  const threads = SGQ * sg; const SA = F * BQ;
  const u = (n: number) => `${n}u`;
  const OWN = t.reload ? 2 * BQ : 0; // the owned operands' first KV row
  const loads = ownedFrags(sm, 'kf', 'vf', BK, FD, RSH, OWN); // K and V (staged at rows OWN and OWN + BK)
  const sdp = pairScores(sm, 'kf', 'vf', BQ, FD, RSH);      // S^T = K Q^T, dP^T = V dO^T
  const prods = [...accumulate(sm, 'dv', 'Pt', BQ, BQ, FD, RSH, PS),  // dV += P^T dO
    ...accumulate(sm, 'dk', 'Dt', 0, BQ, FD, RSH, PS)];             // dK += dS^T Q
  const dks = Array.from({ length: FD }, (_, d) => `dk${d}`);
  const dvs = Array.from({ length: FD }, (_, d) => `dv${d}`);
  const cb = capBackward(softcap, `Sa[sgi * ${u(SA)} + e] * p.scale`);
  return {
    name: `attn_bwd_dkdv_smx_${BK}x${BQ}_d${DP}_sg${sg}${shared ? '_shared' : ''}${t.reload ? '_reload' : ''}${emulated ? '_emu' : ''}${softcap ? '_softcap' : ''}`,
    bindings: ['read', 'read', 'read', 'read', 'read', 'read', 'read', 'rw', ...(shared ? [] : ['rw' as const])],
    uniform: true,
    code: sm.module(/* wgsl */ `${sm.header}
const BK = ${u(BK)};
const BQ = ${u(BQ)};
const DP = ${u(DP)};
${passIO('dkdv', { shared, scaled: true, softcap })}
${gradScaleWgsl(threads, DP)}
var<workgroup> KV: array<f16, ${(t.reload ? 2 * (BK + BQ) : 2 * Math.max(BK, BQ)) * RSH}>; // ${t.reload ? 'Q [BQ], dO [BQ], K [BK], V [BK]' : 'K [BK], V [BK] first; then Q [BQ], dO [BQ]'}
var<workgroup> Sa: array<f32, ${SGQ * SA}>; // per subgroup [16 keys][BQ]: S^T (then output fragments)
var<workgroup> Sb: array<f32, ${SGQ * SA}>; // dP^T
var<workgroup> Pt: array<f16, ${SGQ * F * PS}>; // P^T
var<workgroup> Dt: array<f16, ${SGQ * F * PS}>; // dS^T
var<workgroup> kpos: array<i32, ${BK}>;
var<workgroup> kseg: array<i32, ${BK}>;
var<workgroup> qpos: array<i32, ${BQ}>;
var<workgroup> qseg: array<i32, ${BQ}>;
var<workgroup> qlse: array<f32, ${BQ}>;
var<workgroup> qD: array<f32, ${BQ}>;
var<workgroup> lenS: u32;
${stageFn([['q', 'q'], ['k', 'k'], ['v', 'v'], ['dout', 'g']], threads, RSH)}

// workgroup (x: key tile, y: kv head, z: batch row in this chunk).
@compute @workgroup_size(${threads}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32,
        ${SUBGROUP_PARAMS}) {
  ${subgroupLets(sg, emulated)}
  let b = wg.z; let gb = p.b0 + b; let kvh = wg.y; let k0 = wg.x * BK;
  let sgi = li / sgs;
  let gs = gradScale(li, p.partsBase);
  if (li == 0u) { lenS = rowLen(gb); }
  let len = workgroupUniformLoad(&lenS);
  stageRow(li, BK, len, k0, ${u(OWN)}, 1u, b, kvh, 1.0);
  stageRow(li, BK, len, k0, ${u(OWN + BK)}, 2u, b, kvh, 1.0);
  ${stagePosSeg('BK', 'k0', 'len', 'kpos', 'kseg', threads)}
  workgroupBarrier();
  ${t.reload ? '' : loads.join('\n  ')}
  workgroupBarrier();
  ${[...dks, ...dvs].map((a) => sm.declResult(a)).join('\n  ')}
  ${queryTileWalk('BK', 'BQ')}
      stageRow(li, BQ, iEnd, i0, 0u, 0u, b, h, 1.0);
      stageRow(li, BQ, iEnd, i0, BQ, 3u, b, h, gs);
      ${stagePosSeg('BQ', 'i0', 'iEnd', 'qpos', 'qseg', threads, true)}
      workgroupBarrier();
      ${t.reload ? loads.join('\n      ') : ''}
      ${sdp.join('\n      ')}
      workgroupBarrier();
      for (var t = 0u; t < ${u(quads(BQ, sg))}; t++) {
        let e0 = 4u * (lane + ${u(sg)} * t); let r = e0 / BQ; let i4 = e0 % BQ; let rr = sgi * 16u + r;
        var pv = vec4f(0.0); var ds = vec4f(0.0);
        for (var k4 = 0u; k4 < 4u; k4++) {
          let ii = i4 + k4; let qi = i0 + ii; let e = e0 + k4;
          if (qi < iEnd && visible(qi, k0 + rr, len, qpos[ii], qseg[ii], kpos[rr], kseg[rr])) {
            ${cb.decl}pv[k4] = exp(${cb.score} - qlse[ii]);
            ds[k4] = ${cb.dS(`pv[k4] * (Sb[sgi * ${u(SA)} + e] - qD[ii])`)};
          }
        }
        ${quadStore('Pt', `sgi * ${u(F * PS)} + r * ${u(PS)} + i4`, 'pv')}
        ${quadStore('Dt', `sgi * ${u(F * PS)} + r * ${u(PS)} + i4`, 'ds')}
      }
      workgroupBarrier();
      ${prods.join('\n      ')}
      workgroupBarrier();
    }
  }
  ${storeFrags(sm, dks, 'p.scale / gs', 'dk', 'dk', 'kvh', 'k0', SA, sg)}
  ${storeFrags(sm, dvs, '1.0 / gs', shared ? 'dk' : 'dv', 'dv', 'kvh', 'k0', SA, sg)}
}`),
  };
}

export const smxDqDef = memoDef(smxDqDefGen);
export const smxDkdvDef = memoDef(smxDkdvDefGen);
