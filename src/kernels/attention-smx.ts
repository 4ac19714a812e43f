// Attention on tensor cores (f16 operands, f32 accumulation) for the 'f16' precision: the products
// as 16x16 subgroup matrices (smx-wgsl.ts: native, or emulated for tests); the online softmax, mask,
// rescaling, elementwise gradient work and outputs stay f32. Same arguments, Params (plus absmax parts:
// Q's, K's and V's in the forward, dO's and V's in the backward), mask rules and outputs as the
// register-tiled kernels (attention-blocked.ts),
// which attention.ts runs otherwise. This file: the forward and what the passes share; the backward's
// two passes are in attention-smx-backward.ts.
//
// Forward: S = Q K^T and O += P V, with Q, K and V staged times powers of two sq, sk, sv from their
// maxima (absmax.ts f16Scale: max |x| s <= 2^14), S and O divided back in f32: no operand rounds past
// f16's range or into its subnormals. (The backward stages Q and K unscaled: past f16's range its
// gradients are not finite, and the step stops.)
// Workgroup: SGQ subgroups, each owning 16 query rows of one head (BR = 16 SGQ rows), walking key
// tiles of BC keys. Per key tile:
//   1. stage K and V (f32 -> f16) in workgroup memory, rows DP + 8 halves apart (DP = Dh rounded
//      up to 16; pad columns and keys past the tile's end are zero);
//   2. each subgroup multiplies its Q fragments (loaded once, before the loop) by K^T into BC / 16
//      result matrices and stores the scores to its f32 scratch [16][SW] (every per-tile sum starts
//      from its first product, subgroupMatrixMultiply, not from a zero matrix declared in the loop);
//   3. online softmax over the subgroup's 16 rows (lanes split rows, or columns of a row with
//      subgroup shuffles to combine): mask, running max m and sum l per row, P = exp(s - m) to an
//      f16 tile, and the rescale factor exp(m_old - m_new) per row;
//   4. P V into DP / 16 result matrices, stored to the same scratch (S is consumed by then);
//   5. every lane rescales the output elements it owns (O kept in registers, f32) and adds P V.
// Barriers: after 1, 2, 3 and 4 (all subgroups run the same sequence; skipped tiles are skipped by
// the whole workgroup). Rows past their length or without visible keys write out = 0, lse = 0.
// Soft-capping (Gemma 2): the `softcap` variants cap each visible f32 score before the softmax (the
// backward multiplies dS by the cap's derivative; |dS| stays within the bound below).
// Reference: attention.ref.ts; checked in test/kernels/attention-smx.test.ts (emulated on lavapipe:
// subgroups of 8, so the softmax's shuffle path for 16+ lanes runs natively only).
import type { KernelDef } from '../engine/kernel.js';
import { memoDef } from '../engine/kernel.js';
import { SHOWN_WGSL, at, capped, passIO } from './attention-wgsl.js';
import { smxDialect } from './smx-wgsl.js';
import { ABSMAX_PARTS, f16ScaleWgsl } from './absmax.js';

export const F = 16;
export const PAD = 8; // f16 row padding of staged tiles: 16-byte aligned rows, fewer bank conflicts

export interface SmxAttentionTiles {
  /** Subgroups per workgroup (each owns 16 query rows) and keys per tile (a multiple of 16). */
  SGQ: number; BC: number;
  /** Head dim padded to 16. */
  DP: number;
  /**
   * The owned fragments (Q in the forward; Q, dO or K, V in the backward) staged in a region of
   * their own and loaded again for every tile instead of once before the walk (SRK_SMX_RELOAD=1):
   * a diagnostic form that holds no subgroup matrix across the walk's barriers and stores.
   */
  reload?: boolean;
}

/** WGSL storing the f32 vec4 `v` as 4 f16 at dst[at ..] (at a multiple of 4): one lane's aligned
 *  8 bytes, never single halves beside another lane's. */
export const quadStore = (dst: string, at: string, v: string) =>
  `{ let h = vec4<f16>(${v}); let w = ${at}; ${dst}[w] = h.x; ${dst}[w + 1u] = h.y; ${dst}[w + 2u] = h.z; ${dst}[w + 3u] = h.w; }`;

/** The tensor-core attention kernels' entry-point parameters for their subgroup (after `li`). */
export const SUBGROUP_PARAMS = '@builtin(subgroup_size) sgs_: u32, @builtin(subgroup_invocation_id) lane_: u32';

/**
 * WGSL naming the subgroup size `sgs` and the lane `lane` (with SUBGROUP_PARAMS): natively the
 * adapter's builtins; emulated, from the local index at the layout's size sg, so the emulation can
 * lay the kernels out for another adapter's subgroups (gpu.ts simulatedSubgroupSize: an H100's 32
 * checked on lavapipe's 8).
 */
export const subgroupLets = (sg: number, emulated: boolean): string =>
  emulated ? `let sgs = ${sg}u; let lane = li % ${sg}u;` : 'let sgs = sgs_; let lane = lane_;';

/** Workgroup bytes and threads of a tiling at subgroup size sg. */
export function smxAttentionShape(t: SmxAttentionTiles, sg: number): { threads: number; sharedBytes: number } {
  const BR = F * t.SGQ; const RSH = t.DP + PAD; const SW = Math.max(t.BC, t.DP);
  const kv = 2 * (t.reload ? BR + 2 * t.BC : Math.max(BR, 2 * t.BC)) * RSH; // Q (first, or after K and V), K and V (f16)
  const s = 4 * t.SGQ * F * SW;                    // per-subgroup f32 scratch (scores, then P V)
  const pt = 2 * t.SGQ * F * (t.BC + PAD);         // per-subgroup P (f16)
  const small = 4 * (3 * BR + 2 * t.BC + 4);       // qpos, qseg, rowA, kpos, kseg, flags
  const scaleRed = 4 * t.SGQ * sg;                  // f16Scale's reduction (Q's, K's and V's scales)
  return { threads: t.SGQ * sg, sharedBytes: kv + s + pt + small + scaleRed };
}

/** The largest tiling that fits the adapter (Dh <= 256), or undefined. */
export function chooseSmxAttentionTiles(Dh: number, sg: number, maxBytes: number, maxThreads: number, reload = false): SmxAttentionTiles | undefined {
  const DP = Math.ceil(Dh / F) * F;
  for (const [SGQ, BC] of [[4, 32], [2, 32], [1, 32], [1, 16]]) {
    const t = reload ? { SGQ, BC, DP, reload } : { SGQ, BC, DP };
    const s = smxAttentionShape(t, sg);
    if (s.sharedBytes <= maxBytes && s.threads <= maxThreads) return t;
  }
  return undefined;
}

/**
 * WGSL fn stageRow(li, n, lim, r0, dst, which, b, hh, mul): rows [r0, r0 + n) of operand number
 * `which` (ops: [storage array, Params field prefix]) for head hh, times mul, as f16 into KV rows
 * from dst; zero at rows >= lim and columns >= Dh. Reads 4 columns per invocation and step.
 */
export function stageFn(ops: [string, string][], threads: number, RSH: number): string {
  const pick = ops.map(([arr, f], i) =>
    `${i ? 'else ' : ''}${i < ops.length - 1 ? `if (which == ${i}u) ` : ''}{ x[c] = ${arr}[${at(f, 'b', 't', 'hh', 'd0 + c')}]; }`).join('\n          ');
  return /* wgsl */ `
fn stageRow(li: u32, n: u32, lim: u32, r0: u32, dst: u32, which: u32, b: u32, hh: u32, mul: f32) {
  for (var idx = li; idx < n * (DP / 4u); idx += ${threads}u) {
    let rr = idx / (DP / 4u); let d0 = (idx % (DP / 4u)) * 4u; let t = r0 + rr;
    var x = vec4f(0.0);
    if (t < lim) {
      for (var c = 0u; c < 4u; c++) {
        if (d0 + c < p.Dh) {
          ${pick}
        }
      }
    }
    let w = (dst + rr) * ${RSH}u + d0;
    let hx = vec4<f16>(x * mul);
    KV[w] = hx.x; KV[w + 1u] = hx.y; KV[w + 2u] = hx.z; KV[w + 3u] = hx.w;
  }
}`;
}

/**
 * WGSL: positions and segments of rows start + rr (rr < count, those below lim; 0 past it) into
 * workgroup arrays pos[rr], seg[rr]; with `lseD` also each query row's lse and gs * D from ld
 * (row base ldRow) into qlse, qD.
 */
export function stagePosSeg(count: string, start: string, lim: string, pos: string, seg: string, threads: number, lseD = false): string {
  return `for (var rr = li; rr < ${count}; rr += ${threads}u) {
    let t = ${start} + rr; var pt = 0; var st = 0;${lseD ? ' var l = 0.0; var D = 0.0;' : ''}
    if (t < ${lim}) { pt = posOf(gb, t); st = segOf(gb, t);${lseD ? ' l = ld[ldRow + 2u * t]; D = ld[ldRow + 2u * t + 1u] * gs;' : ''} }
    ${pos}[rr] = pt; ${seg}[rr] = st;${lseD ? ' qlse[rr] = l; qD[rr] = D;' : ''}
  }`;
}

/**
 * WGSL opening the key-tile walk of a workgroup that owns query rows [q0, q0 + BR) (forward and dQ):
 * keys up to kEnd (causal, length), from kStart (a window without a mask), tiles the segments hide
 * skipped; each tile's K and V staged into KV rows [0, BC) and [BC, 2 BC) with their positions and
 * segments, then a barrier. The caller writes the tile's body and closes the loop.
 */
export function keyTileWalk(threads: number, kMul = '1.0', vMul = '1.0'): string {
  return `let kEnd = min(min(q0 + BR, p.T), len);
  var kStart = 0u;
  if (p.hasMask == 0u && p.window > 0u && q0 + 1u > p.window) { kStart = ((q0 + 1u - p.window) / BC) * BC; }
  for (var k0 = kStart; k0 < kEnd; k0 += BC) {
    if (tileSkipped(li, gb, q0, min(q0 + BR, len), k0, min(k0 + BC, kEnd))) { continue; }
    stageRow(li, BC, kEnd, k0, 0u, 1u, b, kvh, ${kMul});
    stageRow(li, BC, kEnd, k0, BC, 2u, b, kvh, ${vMul});
    ${stagePosSeg('BC', 'k0', 'kEnd', 'kpos', 'kseg', threads)}
    workgroupBarrier();`;
}

function smxForwardDefGen(t: SmxAttentionTiles, sg: number, emulated: boolean, rowLanes = false, softcap = false): KernelDef {
  const sm = smxDialect(emulated);
  const { SGQ, BC, DP } = t;
  const BR = F * SGQ; const RSH = DP + PAD; const SW = Math.max(BC, DP); const PS = BC + PAD;
  const FD = DP / F; const FC = BC / F;
  const threads = SGQ * sg;
  const u = (n: number) => `${n}u`;
  // Softmax lanes: with sg >= 16, LPR lanes share a row (column quads part, part + LPR, ...) and
  // combine with shuffles; with sg < 16, a lane owns RPL rows. (Emulated on lavapipe, sg = 8: no
  // shuffles; the shuffle path runs only where subgroups have 16 or more invocations.) `rowLanes`
  // (SRK_SMX_SOFTMAX=row): one lane per row and no shuffles at any subgroup size, lanes 16+ idle.
  // Every lane writes P in aligned quads of 4 f16 (8 bytes), as the staging does, never single
  // halves beside another lane's.
  const LPR = rowLanes ? 1 : Math.max(1, sg / F); const RPL = Math.max(1, F / sg);
  const active = rowLanes && sg > F ? 'lane < 16u' : 'true';
  const combine = (x: string, op: 'max' | '+') => {
    const steps: string[] = [];
    for (let d = F; d < F * LPR; d *= 2) {
      steps.push(op === 'max' ? `${x} = max(${x}, subgroupShuffleXor(${x}, ${u(d)}));` : `${x} += subgroupShuffleXor(${x}, ${u(d)});`);
    }
    return steps.join(' ');
  };
  // Lane's softmax rows: rr(i) for i < RPL (the row within the subgroup), its column part.
  const rowOf = (i: number) => (sg >= F ? 'lane % 16u' : `lane + ${u(i * sg)}`);
  const part = sg >= F && LPR > 1 ? 'lane / 16u' : '0u';
  const QPL = BC / (4 * LPR); // column quads per lane and row
  if (!Number.isInteger(QPL)) throw new RangeError(`attention: smx key tile ${BC} is not a multiple of ${4 * LPR}`);

  const QROW = t.reload ? 2 * BC : 0; // Q's first KV row
  const qLoads: string[] = [];
  for (let d = 0; d < FD; d++) qLoads.push(sm.load('left', `qf${d}`, 'KV', `(${u(QROW)} + sg * ${u(F)}) * ${u(RSH)} + ${u(d * F)}`, 'row_major', u(RSH)));
  // S = Q K^T: K staged as KV[key][d]; the right matrix (rows d, columns keys) is column-major.
  const scores: string[] = [];
  for (let c = 0; c < FC; c++) {
    scores.push('{');
    for (let d = 0; d < FD; d++) {
      scores.push(sm.load('right', `kf${d}`, 'KV', `${u(c * F * RSH + d * F)}`, 'col_major', u(RSH)),
        d === 0 ? sm.mul('sres', `qf${d}`, `kf${d}`) : sm.mma('sres', `qf${d}`, `kf${d}`));
    }
    scores.push(sm.store('Ss', `sg * ${u(F * SW)} + ${u(c * F)}`, 'sres', 'row_major', u(SW)), '}');
  }
  // P V: P [16][BC] (left, row-major), V staged after K as KV[BC + key][d] (right, row-major).
  const pv: string[] = [];
  for (let d = 0; d < FD; d++) {
    pv.push('{');
    for (let c = 0; c < FC; c++) {
      pv.push(sm.load('left', `pf${c}`, 'Ps', `sg * ${u(F * PS)} + ${u(c * F)}`, 'row_major', u(PS)),
        sm.load('right', `vf${c}`, 'KV', `${u((BC + c * F) * RSH + d * F)}`, 'row_major', u(RSH)),
        c === 0 ? sm.mul('pvr', `pf${c}`, `vf${c}`) : sm.mma('pvr', `pf${c}`, `vf${c}`));
    }
    pv.push(sm.store('Ss', `sg * ${u(F * SW)} + ${u(d * F)}`, 'pvr', 'row_major', u(SW)), '}');
  }
  const OPL = (F * DP) / sg; // output elements per lane: e = lane + sg * t, row e / DP, column e % DP

  const softmaxRows: string[] = [];
  for (let i = 0; i < RPL; i++) {
    softmaxRows.push(`if (${active}) {
      let r = ${rowOf(i)}; let rr = sg * 16u + r; let qi = q0 + rr; let srow = sg * ${u(F * SW)} + r * ${u(SW)};
      var tmax = M0;
      for (var cc = 0u; cc < ${u(QPL)}; cc++) {
        for (var k4 = 0u; k4 < 4u; k4++) {
          let jj = 4u * (${part} + ${u(LPR)} * cc) + k4; let j = k0 + jj;
          var x = MASKED;
          if (j < kEnd && visible(qi, j, len, qpos[rr], qseg[rr], kpos[jj], kseg[jj])) { x = ${capped(softcap, 'Ss[srow + jj] * sScale')}; }
          Ss[srow + jj] = x;
          tmax = max(tmax, x);
        }
      }
      ${combine('tmax', 'max')}
      let mnew = max(mrow[${i}], tmax);
      let alpha = exp(mrow[${i}] - mnew);
      var sum = 0.0;
      for (var cc = 0u; cc < ${u(QPL)}; cc++) {
        let j0 = 4u * (${part} + ${u(LPR)} * cc);
        var e = vec4f(0.0);
        for (var k4 = 0u; k4 < 4u; k4++) {
          let x = Ss[srow + j0 + k4];
          if (shown(x)) { e[k4] = exp(x - mnew); }
        }
        ${quadStore('Ps', `sg * ${u(F * PS)} + r * ${u(PS)} + j0`, 'e')}
        sum += e.x + e.y + e.z + e.w;
      }
      ${combine('sum', '+')}
      lrow[${i}] = lrow[${i}] * alpha + sum;
      mrow[${i}] = mnew;
      rowA[rr] = alpha;
    }`);
  }
  const finishRows: string[] = [];
  for (let i = 0; i < RPL; i++) {
    finishRows.push(`if (${active}) {
      let r = ${rowOf(i)}; let rr = sg * 16u + r; let qi = q0 + rr;
      var inv = 0.0; var l = 0.0;
      if (sawKeys(lrow[${i}])) { inv = 1.0 / lrow[${i}]; l = mrow[${i}] + log(lrow[${i}]); }
      rowA[rr] = inv;
      if (${part} == 0u && qi < p.T) { lse[p.lseBase + (b * p.Hq + h) * p.T + qi] = l; }
    }`);
  }

  return {
    name: `attn_fwd_smx_${BR}x${BC}_d${DP}_sg${sg}${rowLanes ? '_rowlanes' : ''}${t.reload ? '_reload' : ''}${emulated ? '_emu' : ''}${softcap ? '_softcap' : ''}`,
    bindings: ['read', 'read', 'read', 'read', 'read', 'rw', 'rw'],
    uniform: true,
    // Shuffles run in uniform control flow (the key loop's bounds and skips are workgroup-uniform;
    // Tint's uniformity analysis accepts the sg 16, 32 and 64 forms).
    code: sm.module(/* wgsl */ `${sm.header}
const BR = ${u(BR)};
const BC = ${u(BC)};
const DP = ${u(DP)};
const MASKED = -3.0e38;
const M0 = -1.0e30;
${SHOWN_WGSL}
${passIO('fwd', { scaled: true, softcap })}
${f16ScaleWgsl(threads)}
var<workgroup> KV: array<f16, ${(t.reload ? BR + 2 * BC : Math.max(BR, 2 * BC)) * RSH}>; // ${t.reload ? 'K [BC][RSH], V [BC][RSH], Q [BR][RSH]' : 'Q [BR][RSH] first; then K [BC][RSH], V [BC][RSH]'}
var<workgroup> Ss: array<f32, ${SGQ * F * SW}>;  // per subgroup [16][SW]: scores, then P V
var<workgroup> Ps: array<f16, ${SGQ * F * PS}>;  // per subgroup [16][PS]: P
var<workgroup> qpos: array<i32, ${BR}>;
var<workgroup> qseg: array<i32, ${BR}>;
var<workgroup> rowA: array<f32, ${BR}>;          // per row: this tile's rescale, at the end 1 / l
var<workgroup> kpos: array<i32, ${BC}>;
var<workgroup> kseg: array<i32, ${BC}>;
var<workgroup> lenS: u32;

${stageFn([['q', 'q'], ['k', 'k'], ['v', 'v']], threads, RSH)}

// workgroup (x: query tile, y: query head, z: batch row in this chunk).
@compute @workgroup_size(${threads}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32,
        ${SUBGROUP_PARAMS}) {
  ${subgroupLets(sg, emulated)}
  let b = wg.z; let gb = p.b0 + b; let h = wg.y; let kvh = h / p.nRep; let q0 = wg.x * BR;
  let sg = li / sgs;
  if (li == 0u) { lenS = rowLen(gb); }
  let len = workgroupUniformLoad(&lenS);
  // Q, K and V staged times powers of two from their maxima (parts: Q's, K's, and V's at vParts), so that none
  // rounds past f16's range (a key at Inf scored -Inf: dropped) nor into its subnormals; S and O
  // are divided back in f32.
  let sq = f16Scale(li, p.partsBase);
  workgroupBarrier(); // every invocation has read f16Scale's result before its scratch is reused
  let sk = f16Scale(li, p.partsBase + ${ABSMAX_PARTS}u);
  workgroupBarrier();
  let sv = f16Scale(li, p.partsBase + p.vParts);
  let sScale = p.scale / sq / sk;
  stageRow(li, BR, p.T, q0, ${u(QROW)}, 0u, b, h, sq);
  ${stagePosSeg('BR', 'q0', 'p.T', 'qpos', 'qseg', threads)}
  workgroupBarrier();
  ${t.reload ? '' : qLoads.join('\n  ')}
  workgroupBarrier();
  var mrow = array<f32, ${RPL}>(${Array(RPL).fill('M0').join(', ')});
  var lrow = array<f32, ${RPL}>();
  var acc = array<f32, ${OPL}>();
  ${keyTileWalk(threads, 'sk', 'sv')}
    ${t.reload ? qLoads.join('\n    ') : ''}
    ${scores.join('\n    ')}
    workgroupBarrier();
    ${softmaxRows.join('\n    ')}
    workgroupBarrier();
    ${pv.join('\n    ')}
    workgroupBarrier();
    for (var t = 0u; t < ${u(OPL)}; t++) {
      let e = lane + ${u(sg)} * t; let r = e / DP; let c = e % DP;
      acc[t] = acc[t] * rowA[sg * 16u + r] + Ss[sg * ${u(F * SW)} + r * ${u(SW)} + c];
    }
  }
  // A barrier before rowA changes meaning (the last tile's rescale was read above).
  workgroupBarrier();
  ${finishRows.join('\n  ')}
  workgroupBarrier();
  for (var t = 0u; t < ${u(OPL)}; t++) {
    let e = lane + ${u(sg)} * t; let r = e / DP; let c = e % DP; let rr = sg * 16u + r; let qi = q0 + rr;
    if (qi < p.T && c < p.Dh) { o[${at('o', 'b', 'qi', 'h', 'c')}] = acc[t] * rowA[rr] / sv; }
  }
}`),
  };
}

export const smxForwardDef = memoDef(smxForwardDefGen);
