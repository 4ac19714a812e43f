// The previous attention kernels, kept as the fallback wherever the register-tiled ones
// (attention-blocked.ts) do not fit: a pass whose accumulators would pass 64 floats a thread at every
// tiling (dK/dV at Dh 128, anything at Dh > 128), or whose tiles exceed the adapter's workgroup memory
// or invocations (attention-tiling.ts chooseRegTiles):
// a workgroup owns BR query rows of one (batch row, query head); G threads share a row,
// thread g owning the head-dim columns g, g+G, ... (DPT = 16 accumulators in registers). Key and
// value tiles of BC rows are staged in workgroup memory; the BR x BC score tile goes through
// workgroup memory too (a thread computes scores of its row for keys g, g+G, ..., then every
// thread of the row reads the whole row for the online softmax). No T x T matrix exists.
// Tiles: chooseTiles (attention-tiling.ts). The algorithm and conventions are described at the
// top of attention.ts. `softcap`: the variant with Gemma 2's score soft-capping (attention-wgsl.ts
// SOFTCAP_WGSL); these kernels run it at Gemma 2's head size 256.
import type { KernelDef } from '../engine/kernel.js';
import { memoDef } from '../engine/kernel.js';
import type { Tiles } from './attention-tiling.js';
import { SHOWN_WGSL, at, capBackward, capped, passIO } from './attention-wgsl.js';

function header(t: Tiles): string {
  return `
const DP = ${t.DP}u; // head dim (p.Dh) padded to G * DPT (pad columns are zero in workgroup memory)
const G = ${t.G}u;   // threads per owned row
const DPT = ${t.DPT}u;
const BR = ${t.R}u;  // owned rows per workgroup
const BC = ${t.C}u;  // rows per streamed tile
const NT = ${t.G * t.R}u;
const MASKED = -3.0e38; // score of an invisible pair (below any real score, and exp() of it is 0)
const M0 = -1.0e30;     // running max before any visible key: finite, so exp(M0 - m) never sees inf - inf
${SHOWN_WGSL}`;
}

function forwardDefGen(t: Tiles, softcap: boolean): KernelDef {
  return {
    name: `attn_fwd_g${t.G}x${t.DPT}_${t.R}x${t.C}${softcap ? '_softcap' : ''}`,
    bindings: ['read', 'read', 'read', 'read', 'rw', 'rw'],
    uniform: true,
    code: /* wgsl */ `${header(t)}
${passIO('fwd', { softcap })}
var<workgroup> Qs: array<f32, ${t.R * t.DP}>; // [BR][DP]
var<workgroup> Ks: array<f32, ${t.C * t.DP}>; // [BC][DP]
var<workgroup> Vs: array<f32, ${t.C * t.DP}>; // [BC][DP]
var<workgroup> Ss: array<f32, ${t.R * t.C}>;  // [BR][BC] scaled scores
var<workgroup> kpos: array<i32, ${t.C}>;
var<workgroup> kseg: array<i32, ${t.C}>;
var<workgroup> lenS: u32;

// workgroup (x: query tile, y: query head, z: batch row in this chunk); thread (g, r).
@compute @workgroup_size(${t.G}, ${t.R}, 1)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let b = wg.z; let gb = p.b0 + b; let h = wg.y; let kvh = h / p.nRep; let q0 = wg.x * BR;
  let g = lid.x; let r = lid.y; let i = q0 + r;
  // The row length comes from storage; workgroupUniformLoad makes the key loop (which holds
  // barriers) provably uniform.
  if (li == 0u) { lenS = rowLen(gb); }
  let len = workgroupUniformLoad(&lenS);
  for (var idx = li; idx < BR * DP; idx += NT) {
    let rr = idx / DP; let d = idx % DP; let qi = q0 + rr;
    var x = 0.0;
    if (qi < p.T && d < p.Dh) { x = q[${at('q', 'b', 'qi', 'h', 'd')}]; }
    Qs[idx] = x;
  }
  var pi = 0; var si = 0;
  if (i < p.T) { pi = posOf(gb, i); si = segOf(gb, i); }
  var mrow = M0;
  var lrow = 0.0;
  var acc: array<f32, DPT>;
  // Causal and length bound: no row of this tile sees a key at or past kEnd.
  let kEnd = min(min(q0 + BR, p.T), len);
  for (var k0 = 0u; k0 < kEnd; k0 += BC) {
    // A key tile hidden from this query tile by the segments is skipped (attention-mask.ts).
    if (tileSkipped(li, gb, q0, min(q0 + BR, len), k0, min(k0 + BC, kEnd))) { continue; }
    for (var idx = li; idx < BC * DP; idx += NT) {
      let jj = idx / DP; let d = idx % DP; let j = k0 + jj;
      var kx = 0.0; var vx = 0.0;
      if (j < kEnd && d < p.Dh) {
        kx = k[${at('k', 'b', 'j', 'kvh', 'd')}];
        vx = v[${at('v', 'b', 'j', 'kvh', 'd')}];
      }
      Ks[idx] = kx; Vs[idx] = vx;
    }
    for (var jj = li; jj < BC; jj += NT) {
      let j = k0 + jj;
      var pj = 0; var sj = 0;
      if (j < kEnd) { pj = posOf(gb, j); sj = segOf(gb, j); }
      kpos[jj] = pj; kseg[jj] = sj;
    }
    workgroupBarrier();
    for (var jj = g; jj < BC; jj += G) {
      let j = k0 + jj;
      var s = MASKED;
      if (j < kEnd && visible(i, j, len, pi, si, kpos[jj], kseg[jj])) {
        var dot = 0.0;
        for (var d = 0u; d < DP; d++) { dot = fma(Qs[r * DP + d], Ks[jj * DP + d], dot); }
        s = ${capped(softcap, 'dot * p.scale')};
      }
      Ss[r * BC + jj] = s;
    }
    workgroupBarrier();
    // Online softmax: rescale what was accumulated to the new running max.
    var tmax = M0;
    for (var jj = 0u; jj < BC; jj++) { tmax = max(tmax, Ss[r * BC + jj]); }
    let mnew = max(mrow, tmax);
    let alpha = exp(mrow - mnew);
    lrow *= alpha;
    for (var c = 0u; c < DPT; c++) { acc[c] *= alpha; }
    for (var jj = 0u; jj < BC; jj++) {
      let s = Ss[r * BC + jj];
      if (shown(s)) {
        let pj = exp(s - mnew);
        lrow += pj;
        for (var c = 0u; c < DPT; c++) { acc[c] = fma(pj, Vs[jj * DP + g + c * G], acc[c]); }
      }
    }
    mrow = mnew;
    workgroupBarrier();
  }
  if (i < p.T) {
    var inv = 0.0;
    var l = 0.0;
    if (sawKeys(lrow)) { inv = 1.0 / lrow; l = mrow + log(lrow); }
    for (var c = 0u; c < DPT; c++) {
      let d = g + c * G;
      if (d < p.Dh) { o[${at('o', 'b', 'i', 'h', 'd')}] = acc[c] * inv; }
    }
    if (g == 0u) { lse[p.lseBase + (b * p.Hq + h) * p.T + i] = l; }
  }
}`,
  };
}

// shared: dk and dv live in one buffer (a fused dQKV) and are written through one binding, since
// WebGPU rejects overlapping writable bindings in a dispatch.
function dkdvDefGen(t: Tiles, shared: boolean, softcap: boolean): KernelDef {
  const cb = capBackward(softcap, 's * p.scale');
  return {
    name: `attn_bwd_dkdv_g${t.G}x${t.DPT}_${t.R}x${t.C}${shared ? '_shared' : ''}${softcap ? '_softcap' : ''}`,
    bindings: ['read', 'read', 'read', 'read', 'read', 'read', 'rw', ...(shared ? [] : ['rw' as const])],
    uniform: true,
    code: /* wgsl */ `${header(t)}
${passIO('dkdv', { shared, softcap })}
var<workgroup> Ks: array<f32, ${t.R * t.DP}>;  // [BR][DP] owned keys
var<workgroup> Vs: array<f32, ${t.R * t.DP}>;
var<workgroup> Qs: array<f32, ${t.C * t.DP}>;  // [BC][DP] streamed queries
var<workgroup> dOs: array<f32, ${t.C * t.DP}>;
var<workgroup> Ps: array<f32, ${t.R * t.C}>;   // [BR][BC]
var<workgroup> dSs: array<f32, ${t.R * t.C}>;
var<workgroup> qpos: array<i32, ${t.C}>;
var<workgroup> qseg: array<i32, ${t.C}>;
var<workgroup> qlse: array<f32, ${t.C}>;
var<workgroup> qD: array<f32, ${t.C}>;
var<workgroup> lenS: u32;

// workgroup (x: key tile, y: kv head, z: batch row in this chunk); thread (g, r) owns key k0 + r.
@compute @workgroup_size(${t.G}, ${t.R}, 1)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let b = wg.z; let gb = p.b0 + b; let kvh = wg.y; let k0 = wg.x * BR;
  let g = lid.x; let r = lid.y; let j = k0 + r;
  if (li == 0u) { lenS = rowLen(gb); }
  let len = workgroupUniformLoad(&lenS);
  for (var idx = li; idx < BR * DP; idx += NT) {
    let rr = idx / DP; let d = idx % DP; let kj = k0 + rr;
    var kx = 0.0; var vx = 0.0;
    if (kj < len && d < p.Dh) {
      kx = k[${at('k', 'b', 'kj', 'kvh', 'd')}];
      vx = v[${at('v', 'b', 'kj', 'kvh', 'd')}];
    }
    Ks[idx] = kx; Vs[idx] = vx;
  }
  var pj = 0; var sj = 0;
  if (j < len) { pj = posOf(gb, j); sj = segOf(gb, j); }
  var dka: array<f32, DPT>;
  var dva: array<f32, DPT>;
  for (var hh = 0u; hh < p.nRep; hh++) {
    let h = kvh * p.nRep + hh;
    let ldRow = p.ldBase + 2u * ((b * p.Hq + h) * p.T);
    // Causal: only queries i >= k0 can see this tile's keys; none at or past the length.
    for (var i0 = k0; i0 < len; i0 += BC) {
      // A query tile that sees none of this tile's keys through the segments is skipped.
      if (tileSkipped(li, gb, i0, min(i0 + BC, len), k0, min(k0 + BR, len))) { continue; }
      for (var idx = li; idx < BC * DP; idx += NT) {
        let ii = idx / DP; let d = idx % DP; let qi = i0 + ii;
        var qx = 0.0; var gx = 0.0;
        if (qi < len && d < p.Dh) {
          qx = q[${at('q', 'b', 'qi', 'h', 'd')}];
          gx = dout[${at('g', 'b', 'qi', 'h', 'd')}];
        }
        Qs[idx] = qx; dOs[idx] = gx;
      }
      for (var ii = li; ii < BC; ii += NT) {
        let qi = i0 + ii;
        var pq = 0; var sq = 0; var lq = 0.0; var dq = 0.0;
        if (qi < len) { pq = posOf(gb, qi); sq = segOf(gb, qi); lq = ld[ldRow + 2u * qi]; dq = ld[ldRow + 2u * qi + 1u]; }
        qpos[ii] = pq; qseg[ii] = sq; qlse[ii] = lq; qD[ii] = dq;
      }
      workgroupBarrier();
      for (var ii = g; ii < BC; ii += G) {
        let qi = i0 + ii;
        var pv = 0.0; var ds = 0.0;
        if (j < len && visible(qi, j, len, qpos[ii], qseg[ii], pj, sj)) {
          var s = 0.0; var dp = 0.0;
          for (var d = 0u; d < DP; d++) {
            s = fma(Qs[ii * DP + d], Ks[r * DP + d], s);
            dp = fma(dOs[ii * DP + d], Vs[r * DP + d], dp);
          }
          ${cb.decl}pv = exp(${cb.score} - qlse[ii]);
          ds = ${cb.dS('pv * (dp - qD[ii])')};
        }
        Ps[r * BC + ii] = pv; dSs[r * BC + ii] = ds;
      }
      workgroupBarrier();
      for (var ii = 0u; ii < BC; ii++) {
        let pv = Ps[r * BC + ii]; let ds = dSs[r * BC + ii];
        for (var c = 0u; c < DPT; c++) {
          let d = g + c * G;
          dva[c] = fma(pv, dOs[ii * DP + d], dva[c]);
          dka[c] = fma(ds, Qs[ii * DP + d], dka[c]);
        }
      }
      workgroupBarrier();
    }
  }
  if (j < p.T) {
    for (var c = 0u; c < DPT; c++) {
      let d = g + c * G;
      if (d < p.Dh) {
        dk[${at('dk', 'b', 'j', 'kvh', 'd')}] = dka[c] * p.scale;
        ${shared ? 'dk' : 'dv'}[${at('dv', 'b', 'j', 'kvh', 'd')}] = dva[c];
      }
    }
  }
}`,
  };
}

function dqDefGen(t: Tiles, softcap: boolean): KernelDef {
  const cb = capBackward(softcap, 's * p.scale');
  return {
    name: `attn_bwd_dq_g${t.G}x${t.DPT}_${t.R}x${t.C}${softcap ? '_softcap' : ''}`,
    bindings: ['read', 'read', 'read', 'read', 'read', 'read', 'rw'],
    uniform: true,
    code: /* wgsl */ `${header(t)}
${passIO('dq', { softcap })}
var<workgroup> Qs: array<f32, ${t.R * t.DP}>;  // [BR][DP] owned queries
var<workgroup> dOs: array<f32, ${t.R * t.DP}>;
var<workgroup> Ks: array<f32, ${t.C * t.DP}>;  // [BC][DP] streamed keys
var<workgroup> Vs: array<f32, ${t.C * t.DP}>;
var<workgroup> dSs: array<f32, ${t.R * t.C}>;  // [BR][BC]
var<workgroup> kpos: array<i32, ${t.C}>;
var<workgroup> kseg: array<i32, ${t.C}>;
var<workgroup> lenS: u32;

// workgroup (x: query tile, y: query head, z: batch row in this chunk); thread (g, r) owns query q0 + r.
@compute @workgroup_size(${t.G}, ${t.R}, 1)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let b = wg.z; let gb = p.b0 + b; let h = wg.y; let kvh = h / p.nRep; let q0 = wg.x * BR;
  let g = lid.x; let r = lid.y; let i = q0 + r;
  if (li == 0u) { lenS = rowLen(gb); }
  let len = workgroupUniformLoad(&lenS);
  for (var idx = li; idx < BR * DP; idx += NT) {
    let rr = idx / DP; let d = idx % DP; let qi = q0 + rr;
    var qx = 0.0; var gx = 0.0;
    if (qi < len && d < p.Dh) {
      qx = q[${at('q', 'b', 'qi', 'h', 'd')}];
      gx = dout[${at('g', 'b', 'qi', 'h', 'd')}];
    }
    Qs[idx] = qx; dOs[idx] = gx;
  }
  var pi = 0; var si = 0; var lq = 0.0; var Dq = 0.0;
  if (i < len) {
    pi = posOf(gb, i); si = segOf(gb, i);
    let n = (b * p.Hq + h) * p.T + i;
    lq = ld[p.ldBase + 2u * n]; Dq = ld[p.ldBase + 2u * n + 1u];
  }
  var acc: array<f32, DPT>;
  let kEnd = min(min(q0 + BR, p.T), len);
  for (var k0 = 0u; k0 < kEnd; k0 += BC) {
    // A key tile hidden from this query tile by the segments is skipped (attention-mask.ts).
    if (tileSkipped(li, gb, q0, min(q0 + BR, len), k0, min(k0 + BC, kEnd))) { continue; }
    for (var idx = li; idx < BC * DP; idx += NT) {
      let jj = idx / DP; let d = idx % DP; let j = k0 + jj;
      var kx = 0.0; var vx = 0.0;
      if (j < kEnd && d < p.Dh) {
        kx = k[${at('k', 'b', 'j', 'kvh', 'd')}];
        vx = v[${at('v', 'b', 'j', 'kvh', 'd')}];
      }
      Ks[idx] = kx; Vs[idx] = vx;
    }
    for (var jj = li; jj < BC; jj += NT) {
      let j = k0 + jj;
      var pj = 0; var sj = 0;
      if (j < kEnd) { pj = posOf(gb, j); sj = segOf(gb, j); }
      kpos[jj] = pj; kseg[jj] = sj;
    }
    workgroupBarrier();
    for (var jj = g; jj < BC; jj += G) {
      let j = k0 + jj;
      var ds = 0.0;
      if (j < kEnd && visible(i, j, len, pi, si, kpos[jj], kseg[jj])) {
        var s = 0.0; var dp = 0.0;
        for (var d = 0u; d < DP; d++) {
          s = fma(Qs[r * DP + d], Ks[jj * DP + d], s);
          dp = fma(dOs[r * DP + d], Vs[jj * DP + d], dp);
        }
        ${cb.decl}let pv = exp(${cb.score} - lq);
        ds = ${cb.dS('pv * (dp - Dq)')};
      }
      dSs[r * BC + jj] = ds;
    }
    workgroupBarrier();
    for (var jj = 0u; jj < BC; jj++) {
      let ds = dSs[r * BC + jj];
      for (var c = 0u; c < DPT; c++) { acc[c] = fma(ds, Ks[jj * DP + g + c * G], acc[c]); }
    }
    workgroupBarrier();
  }
  if (i < p.T) {
    for (var c = 0u; c < DPT; c++) {
      let d = g + c * G;
      if (d < p.Dh) { dq[${at('dq', 'b', 'i', 'h', 'd')}] = acc[c] * p.scale; }
    }
  }
}`,
  };
}

// Generated kernel definitions are memoized by their arguments: the WGSL is built once per
// variant, and the kernel cache finds the pipeline by the definition's identity.
export const forwardDef = memoDef(forwardDefGen);
export const dkdvDef = memoDef(dkdvDefGen);
export const dqDef = memoDef(dqDefGen);
