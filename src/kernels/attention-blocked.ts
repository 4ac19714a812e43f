// Register-tiled kernels (the default wherever their tiles fit; the kernels of attention-legacy.ts
// are the fallback). Tiles: chooseRegTiles (attention-tiling.ts).
//
// A workgroup of NT = (BR / 4) * (BC / 4) threads; thread li = (rg = li / NCG, cg = li % NCG) with
// NCG = BC / 4. Score phase: the thread computes the 4 x 4 scores of owned rows rg*4 + m and
// streamed rows cg + NCG*n (vec4 loads from workgroup memory: 8 vec4 loads per 64 multiply-adds),
// masks them and writes them once to workgroup memory. Product phase: the thread accumulates
// owned rows rg*4 + m over the vec4 columns cg + NCG*c (c < TD4 = DP / (4 NCG)). Forward only:
// between the two, thread li < BR runs the online softmax of row li (one exp per score, written
// back as P), while every thread stages V over K's tile. Rows of the staged tiles are DP + 4
// floats apart (vec4 reads of 8 different rows hit 8 different bank groups) and score rows BC + 1.
// DP is Dh rounded up to 4 NCG (pad columns are zero in workgroup memory).
// `softcap`: the variant with Gemma 2's score soft-capping (attention-wgsl.ts SOFTCAP_WGSL) where each
// visible score is formed.
import type { KernelDef } from '../engine/kernel.js';
import { memoDef } from '../engine/kernel.js';
import type { RegTiles } from './attention-tiling.js';
import { SHOWN_WGSL, at, capBackward, capped, passIO, queryTileWalk } from './attention-wgsl.js';

function regHeader(t: RegTiles): string {
  return `
const DP = ${t.DP}u;
const D4 = ${t.DP / 4}u;   // vec4 columns
const RS = ${t.DP / 4 + 1}u; // vec4 row stride of staged tiles
const BR = ${t.BR}u;
const BC = ${t.BC}u;
const SS = ${t.BC + 1}u;   // row stride of score tiles
const NCG = ${t.NCG}u;
const NT = ${t.NT}u;
const MASKED = -3.0e38;
const M0 = -1.0e30;
${SHOWN_WGSL}`;
}

/** fn NAME4(i, d0): columns d0 .. d0 + 3 of an f32 array starting at element i (zero past p.Dh). */
const load4 = (arr: string) => `
fn ${arr}4(i: u32, d0: u32) -> vec4f {
  var x = vec4f(0.0);
  if (d0 + 3u < p.Dh) { return vec4f(${arr}[i], ${arr}[i + 1u], ${arr}[i + 2u], ${arr}[i + 3u]); }
  if (d0 < p.Dh) { x.x = ${arr}[i]; }
  if (d0 + 1u < p.Dh) { x.y = ${arr}[i + 1u]; }
  if (d0 + 2u < p.Dh) { x.z = ${arr}[i + 2u]; }
  return x;
}`;

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const unroll = (n: number, f: (i: number) => string) => range(n).map(f).join('\n');

/** Stages rows [r0, r0 + ROWS) (those below `lim`) of operands into vec4 workgroup tiles. */
function stage(rows: string, r0: string, lim: string, head: string, ops: [string, string, string][]): string {
  // ops: [workgroup array, storage array, operand field name]
  // (Strided by NT, so Dawn's range analysis keeps these once-per-tile stores clamped: a loop counted
  // from 0 would bound them, but lavapipe's LLVM then unrolls it around the inlined loads and takes
  // twice as long to compile the attention kernels, for no gain in the hot loops.)
  return `
    for (var idx = li; idx < ${rows} * D4; idx += NT) {
      let rr = idx / D4; let c4 = idx % D4; let t = ${r0} + rr; let d0 = c4 * 4u;
      ${ops.map(([w]) => `var x${w} = vec4f(0.0);`).join(' ')}
      if (t < ${lim}) {
        ${ops.map(([w, s, f]) => `x${w} = ${s}4(${at(f, 'b', 't', head, 'd0')}, d0);`).join('\n        ')}
      }
      ${ops.map(([w]) => `${w}[rr * RS + c4] = x${w};`).join(' ')}
    }`;
}

/** Dot products of 4 owned rows (rg*4 + m) with 4 streamed rows (cg + NCG*n) over all columns. */
function scores(pairs: [string, string, string][]): string {
  // pairs: [result array, owned tile, streamed tile]
  return `
    ${pairs.map(([s]) => `var ${s} = array<f32, 16>();`).join(' ')}
    for (var d4 = 0u; d4 < D4; d4++) {
      ${pairs.map(([s, , st]) => unroll(4, (n) => `let ${s}b${n} = ${st}[(cg + ${n}u * NCG) * RS + d4];`)).join('\n      ')}
      ${pairs.map(([s, ow, st]) => unroll(4, (m) => `{ let a = ${ow}[(rg * 4u + ${m}u) * RS + d4]; ${
        unroll(4, (n) => `${s}[${m * 4 + n}] += dot(a, ${s}b${n});`)} }`)).join('\n      ')}
    }`;
}

/** acc[m*TD4 + c] += w[owned row m][jj] * tile[jj][vec4 column cg + NCG*c] over the BC streamed rows. */
function product(t: RegTiles, terms: [string, string, string][]): string {
  // terms: [accumulator, weights (score layout [BR][SS]), streamed tile]
  return `
    for (var jj = 0u; jj < BC; jj++) {
      ${terms.map(([a, , tile]) => unroll(t.TD4, (c) => `let ${a}v${c} = ${tile}[jj * RS + cg + ${c}u * NCG];`)).join('\n      ')}
      ${terms.map(([a, w]) => unroll(4, (m) => `{ let x = vec4f(${w}[(rg * 4u + ${m}u) * SS + jj]); ${
        unroll(t.TD4, (c) => `${a}[${m * t.TD4 + c}] = fma(x, ${a}v${c}, ${a}[${m * t.TD4 + c}]);`)} }`)).join('\n      ')}
    }`;
}

/** Writes acc rows (owned row rg*4 + m, token `tok`) times f through operand n. */
function storeRows(t: RegTiles, acc: string, arr: string, n: string, head: string, r0: string, f: (m: number) => string): string {
  return unroll(4, (m) => `{
    let rr = rg * 4u + ${m}u; let t = ${r0} + rr;
    if (t < p.T) {
      let f = ${f(m)};
      ${unroll(t.TD4, (c) => `{
        let d0 = (cg + ${c}u * NCG) * 4u; let x = ${acc}[${m * t.TD4 + c}] * f; let i = ${at(n, 'b', 't', head, 'd0')};
        if (d0 < p.Dh) { ${arr}[i] = x.x; }
        if (d0 + 1u < p.Dh) { ${arr}[i + 1u] = x.y; }
        if (d0 + 2u < p.Dh) { ${arr}[i + 2u] = x.z; }
        if (d0 + 3u < p.Dh) { ${arr}[i + 3u] = x.w; }
      }`)}
    }
  }`);
}

function regForwardDefGen(t: RegTiles, softcap: boolean): KernelDef {
  return {
    name: `attn_fwd_reg_${t.BR}x${t.BC}_d${t.DP}${softcap ? '_softcap' : ''}`,
    bindings: ['read', 'read', 'read', 'read', 'rw', 'rw'],
    uniform: true,
    code: /* wgsl */ `${regHeader(t)}
${passIO('fwd', { softcap })}
${load4('q')}
${load4('k')}
${load4('v')}
var<workgroup> Qs: array<vec4f, ${t.BR * (t.DP / 4 + 1)}>;  // [BR][RS] owned queries
var<workgroup> KVs: array<vec4f, ${t.BC * (t.DP / 4 + 1)}>; // [BC][RS] keys, then values
var<workgroup> Ss: array<f32, ${t.BR * (t.BC + 1)}>;        // [BR][SS] scaled scores, then P
var<workgroup> qpos: array<i32, ${t.BR}>;
var<workgroup> qseg: array<i32, ${t.BR}>;
var<workgroup> rowA: array<f32, ${t.BR}>;  // per-row rescale of this tile, then 1 / l
var<workgroup> kpos: array<i32, ${t.BC}>;
var<workgroup> kseg: array<i32, ${t.BC}>;
var<workgroup> lenS: u32;

// workgroup (x: query tile, y: query head, z: batch row in this chunk).
@compute @workgroup_size(${t.NT}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let b = wg.z; let gb = p.b0 + b; let h = wg.y; let kvh = h / p.nRep; let q0 = wg.x * BR;
  let cg = li % NCG; let rg = li / NCG;
  if (li == 0u) { lenS = rowLen(gb); }
  let len = workgroupUniformLoad(&lenS);
  ${stage('BR', 'q0', 'p.T', 'h', [['Qs', 'q', 'q']])}
  for (var rr = li; rr < BR; rr += NT) {
    let i = q0 + rr; var pi = 0; var si = 0;
    if (i < p.T) { pi = posOf(gb, i); si = segOf(gb, i); }
    qpos[rr] = pi; qseg[rr] = si;
  }
  var mrow = M0;
  var lrow = 0.0;
  var acc: array<vec4f, ${4 * t.TD4}>;
  // Causal and length bound: no row of this tile sees a key at or past kEnd. Without a mask
  // (positions = indices) a sliding window also hides every key below q0 + 1 - window.
  let kEnd = min(min(q0 + BR, p.T), len);
  var kStart = 0u;
  if (p.hasMask == 0u && p.window > 0u && q0 + 1u > p.window) { kStart = ((q0 + 1u - p.window) / BC) * BC; }
  for (var k0 = kStart; k0 < kEnd; k0 += BC) {
    // A key tile no query of this tile can see through the segments (packed pairs: rejected
    // queries, chosen keys) is skipped whole.
    if (tileSkipped(li, gb, q0, min(q0 + BR, len), k0, min(k0 + BC, kEnd))) { continue; }
    ${stage('BC', 'k0', 'kEnd', 'kvh', [['KVs', 'k', 'k']])}
    for (var jj = li; jj < BC; jj += NT) {
      let j = k0 + jj; var pj = 0; var sj = 0;
      if (j < kEnd) { pj = posOf(gb, j); sj = segOf(gb, j); }
      kpos[jj] = pj; kseg[jj] = sj;
    }
    workgroupBarrier();
    ${scores([['s', 'Qs', 'KVs']])}
    ${unroll(16, (e) => `{
      let rr = rg * 4u + ${e >> 2}u; let jj = cg + ${e & 3}u * NCG; let j = k0 + jj;
      var x = MASKED;
      if (j < kEnd && visible(q0 + rr, j, len, qpos[rr], qseg[rr], kpos[jj], kseg[jj])) { x = ${capped(softcap, `s[${e}] * p.scale`)}; }
      Ss[rr * SS + jj] = x;
    }`)}
    workgroupBarrier();
    ${stage('BC', 'k0', 'kEnd', 'kvh', [['KVs', 'v', 'v']])}
    if (li < BR) {
      let r = li % BR; // li itself here, in a form Dawn's range analysis bounds (no clamps below)
      var tmax = M0;
      for (var jj = 0u; jj < BC; jj++) { tmax = max(tmax, Ss[r * SS + jj]); }
      let mnew = max(mrow, tmax);
      let alpha = exp(mrow - mnew);
      var sum = 0.0;
      for (var jj = 0u; jj < BC; jj++) {
        let x = Ss[r * SS + jj];
        var e = 0.0;
        if (shown(x)) { e = exp(x - mnew); }
        Ss[r * SS + jj] = e;
        sum += e;
      }
      lrow = lrow * alpha + sum;
      mrow = mnew;
      rowA[r] = alpha;
    }
    workgroupBarrier();
    ${unroll(4, (mm) => `{ let a = rowA[rg * 4u + ${mm}u]; ${unroll(t.TD4, (c) => `acc[${mm * t.TD4 + c}] *= a;`)} }`)}
    ${product(t, [['acc', 'Ss', 'KVs']])}
    workgroupBarrier();
  }
  if (li < BR) {
    let i = q0 + li;
    var inv = 0.0;
    var l = 0.0;
    if (sawKeys(lrow)) { inv = 1.0 / lrow; l = mrow + log(lrow); }
    rowA[li] = inv;
    if (i < p.T) { lse[p.lseBase + (b * p.Hq + h) * p.T + i] = l; }
  }
  workgroupBarrier();
  ${storeRows(t, 'acc', 'o', 'o', 'h', 'q0', (mm) => `rowA[rg * 4u + ${mm}u]`)}
}`,
  };
}

function regDqDefGen(t: RegTiles, softcap: boolean): KernelDef {
  const cb = (e: number) => capBackward(softcap, `s[${e}] * p.scale`);
  return {
    name: `attn_bwd_dq_reg_${t.BR}x${t.BC}_d${t.DP}${softcap ? '_softcap' : ''}`,
    bindings: ['read', 'read', 'read', 'read', 'read', 'read', 'rw'],
    uniform: true,
    code: /* wgsl */ `${regHeader(t)}
${passIO('dq', { softcap })}
${load4('q')}
${load4('k')}
${load4('v')}
${load4('dout')}
var<workgroup> Qs: array<vec4f, ${t.BR * (t.DP / 4 + 1)}>;   // [BR][RS] owned queries
var<workgroup> dOs: array<vec4f, ${t.BR * (t.DP / 4 + 1)}>;
var<workgroup> Ks: array<vec4f, ${t.BC * (t.DP / 4 + 1)}>;   // [BC][RS] streamed keys
var<workgroup> Vs: array<vec4f, ${t.BC * (t.DP / 4 + 1)}>;
var<workgroup> dSs: array<f32, ${t.BR * (t.BC + 1)}>;        // [BR][SS]
var<workgroup> qpos: array<i32, ${t.BR}>;
var<workgroup> qseg: array<i32, ${t.BR}>;
var<workgroup> qL: array<f32, ${t.BR}>;
var<workgroup> qD: array<f32, ${t.BR}>;
var<workgroup> kpos: array<i32, ${t.BC}>;
var<workgroup> kseg: array<i32, ${t.BC}>;
var<workgroup> lenS: u32;

// workgroup (x: query tile, y: query head, z: batch row in this chunk).
@compute @workgroup_size(${t.NT}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let b = wg.z; let gb = p.b0 + b; let h = wg.y; let kvh = h / p.nRep; let q0 = wg.x * BR;
  let cg = li % NCG; let rg = li / NCG;
  if (li == 0u) { lenS = rowLen(gb); }
  let len = workgroupUniformLoad(&lenS);
  ${stage('BR', 'q0', 'len', 'h', [['Qs', 'q', 'q'], ['dOs', 'dout', 'g']])}
  for (var rr = li; rr < BR; rr += NT) {
    let i = q0 + rr; var pi = 0; var si = 0; var lq = 0.0; var Dq = 0.0;
    if (i < len) {
      pi = posOf(gb, i); si = segOf(gb, i);
      let n = (b * p.Hq + h) * p.T + i;
      lq = ld[p.ldBase + 2u * n]; Dq = ld[p.ldBase + 2u * n + 1u];
    }
    qpos[rr] = pi; qseg[rr] = si; qL[rr] = lq; qD[rr] = Dq;
  }
  var acc: array<vec4f, ${4 * t.TD4}>;
  let kEnd = min(min(q0 + BR, p.T), len);
  var kStart = 0u;
  if (p.hasMask == 0u && p.window > 0u && q0 + 1u > p.window) { kStart = ((q0 + 1u - p.window) / BC) * BC; }
  for (var k0 = kStart; k0 < kEnd; k0 += BC) {
    // A key tile no query of this tile can see through the segments (packed pairs: rejected
    // queries, chosen keys) is skipped whole.
    if (tileSkipped(li, gb, q0, min(q0 + BR, len), k0, min(k0 + BC, kEnd))) { continue; }
    ${stage('BC', 'k0', 'kEnd', 'kvh', [['Ks', 'k', 'k'], ['Vs', 'v', 'v']])}
    for (var jj = li; jj < BC; jj += NT) {
      let j = k0 + jj; var pj = 0; var sj = 0;
      if (j < kEnd) { pj = posOf(gb, j); sj = segOf(gb, j); }
      kpos[jj] = pj; kseg[jj] = sj;
    }
    workgroupBarrier();
    ${scores([['s', 'Qs', 'Ks'], ['dp', 'dOs', 'Vs']])}
    ${unroll(16, (e) => `{
      let rr = rg * 4u + ${e >> 2}u; let jj = cg + ${e & 3}u * NCG; let j = k0 + jj;
      var ds = 0.0;
      if (j < kEnd && visible(q0 + rr, j, len, qpos[rr], qseg[rr], kpos[jj], kseg[jj])) {
        ${cb(e).decl}ds = ${cb(e).dS(`exp(${cb(e).score} - qL[rr]) * (dp[${e}] - qD[rr])`)};
      }
      dSs[rr * SS + jj] = ds;
    }`)}
    workgroupBarrier();
    ${product(t, [['acc', 'dSs', 'Ks']])}
    workgroupBarrier();
  }
  ${storeRows(t, 'acc', 'dq', 'dq', 'h', 'q0', () => 'p.scale')}
}`,
  };
}

function regDkdvDefGen(t: RegTiles, shared: boolean, softcap: boolean): KernelDef {
  const cb = (e: number) => capBackward(softcap, `s[${e}] * p.scale`);
  return {
    name: `attn_bwd_dkdv_reg_${t.BR}x${t.BC}_d${t.DP}${shared ? '_shared' : ''}${softcap ? '_softcap' : ''}`,
    bindings: ['read', 'read', 'read', 'read', 'read', 'read', 'rw', ...(shared ? [] : ['rw' as const])],
    uniform: true,
    code: /* wgsl */ `${regHeader(t)}
${passIO('dkdv', { shared, softcap })}
${load4('q')}
${load4('k')}
${load4('v')}
${load4('dout')}
var<workgroup> Ks: array<vec4f, ${t.BR * (t.DP / 4 + 1)}>;   // [BR][RS] owned keys
var<workgroup> Vs: array<vec4f, ${t.BR * (t.DP / 4 + 1)}>;
var<workgroup> Qs: array<vec4f, ${t.BC * (t.DP / 4 + 1)}>;   // [BC][RS] streamed queries
var<workgroup> dOs: array<vec4f, ${t.BC * (t.DP / 4 + 1)}>;
var<workgroup> Ps: array<f32, ${t.BR * (t.BC + 1)}>;         // [BR][SS]
var<workgroup> dSs: array<f32, ${t.BR * (t.BC + 1)}>;
var<workgroup> kpos: array<i32, ${t.BR}>;
var<workgroup> kseg: array<i32, ${t.BR}>;
var<workgroup> qpos: array<i32, ${t.BC}>;
var<workgroup> qseg: array<i32, ${t.BC}>;
var<workgroup> qlse: array<f32, ${t.BC}>;
var<workgroup> qD: array<f32, ${t.BC}>;
var<workgroup> lenS: u32;

// workgroup (x: key tile, y: kv head, z: batch row in this chunk).
@compute @workgroup_size(${t.NT}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let b = wg.z; let gb = p.b0 + b; let kvh = wg.y; let k0 = wg.x * BR;
  let cg = li % NCG; let rg = li / NCG;
  if (li == 0u) { lenS = rowLen(gb); }
  let len = workgroupUniformLoad(&lenS);
  ${stage('BR', 'k0', 'len', 'kvh', [['Ks', 'k', 'k'], ['Vs', 'v', 'v']])}
  for (var rr = li; rr < BR; rr += NT) {
    let j = k0 + rr; var pj = 0; var sj = 0;
    if (j < len) { pj = posOf(gb, j); sj = segOf(gb, j); }
    kpos[rr] = pj; kseg[rr] = sj;
  }
  var dka: array<vec4f, ${4 * t.TD4}>;
  var dva: array<vec4f, ${4 * t.TD4}>;
  ${queryTileWalk('BR', 'BC')}
      ${stage('BC', 'i0', 'iEnd', 'h', [['Qs', 'q', 'q'], ['dOs', 'dout', 'g']])}
      for (var ii = li; ii < BC; ii += NT) {
        let qi = i0 + ii;
        var pq = 0; var sq = 0; var lq = 0.0; var dq = 0.0;
        if (qi < iEnd) { pq = posOf(gb, qi); sq = segOf(gb, qi); lq = ld[ldRow + 2u * qi]; dq = ld[ldRow + 2u * qi + 1u]; }
        qpos[ii] = pq; qseg[ii] = sq; qlse[ii] = lq; qD[ii] = dq;
      }
      workgroupBarrier();
      ${scores([['s', 'Ks', 'Qs'], ['dp', 'Vs', 'dOs']])}
      ${unroll(16, (e) => `{
        let rr = rg * 4u + ${e >> 2}u; let ii = cg + ${e & 3}u * NCG; let qi = i0 + ii; let j = k0 + rr;
        var pv = 0.0; var ds = 0.0;
        if (qi < iEnd && visible(qi, j, len, qpos[ii], qseg[ii], kpos[rr], kseg[rr])) {
          ${cb(e).decl}pv = exp(${cb(e).score} - qlse[ii]);
          ds = ${cb(e).dS(`pv * (dp[${e}] - qD[ii])`)};
        }
        Ps[rr * SS + ii] = pv; dSs[rr * SS + ii] = ds;
      }`)}
      workgroupBarrier();
      ${product(t, [['dva', 'Ps', 'dOs'], ['dka', 'dSs', 'Qs']])}
      workgroupBarrier();
    }
  }
  ${storeRows(t, 'dka', 'dk', 'dk', 'kvh', 'k0', () => 'p.scale')}
  ${storeRows(t, 'dva', shared ? 'dk' : 'dv', 'dv', 'kvh', 'k0', () => '1.0')}
}`,
  };
}

// Generated kernel definitions are memoized by their arguments: the WGSL is built once per
// variant, and the kernel cache finds the pipeline by the definition's identity.
export const regForwardDef = memoDef(regForwardDefGen);
export const regDqDef = memoDef(regDqDefGen);
export const regDkdvDef = memoDef(regDkdvDefGen);
