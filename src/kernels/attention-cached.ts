// Attention over a key/value cache, f32, forward only: generation's attention (src/generate/).
// Each query token i sits at a slot row * Tmax + position of the cache (kv-cache.ts), which already
// holds its own key and value and those of every earlier token of its row; it attends to positions
// [lo, position] of that row (lo: the sliding window's first, else 0). Prompt tokens (prefill) and
// each step's new tokens take the same kernel, so rows of any lengths run together without padding.
// Reference: attention-cached.ref.ts.
//
//   q      [N tokens] by (offset, tokenStride, headStride), Hq heads of Dh
//   kCache, vCache [rows, Tmax, Hkv, Dh]; slots [N] u32
//   out    [N, Hq, Dh]
//
// One workgroup per (token, query head): the query (scaled) in shared memory; the row's keys in
// chunks of 64, one per thread; an online softmax (running max and sum), each thread holding up
// to 4 of the output's columns (Dh <= 256). Decode steps have few tokens: this is not the training
// path's tiled flash kernel, and it need not be. `softcap` (Gemma 2): a variant that caps each scaled
// score as cap tanh(s / cap) (attention-wgsl.ts SOFTCAP_WGSL; the cap a uniform).
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { ParamWriter, chunkRanges, grid, maxWindowElems, memoDef, windowOf, type KernelDef } from '../engine/kernel.js';
import type { HeadOperand } from './attention.js';
import { SOFTCAP_WGSL, capped, checkSoftcap } from './softcap.js';

const WG = 64;
/** Largest head size: WG threads x 4 columns each. */
export const CACHED_ATTENTION_MAX_DH = 4 * WG;

const attentionCachedDef = memoDef((softcap: boolean): KernelDef => ({
  name: `attention_cached${softcap ? '_softcap' : ''}`,
  bindings: ['read', 'read', 'read', 'read', 'rw'],
  uniform: true,
  code: /* wgsl */ `
struct Params {
  N: u32, Hq: u32, nRep: u32, Hkv: u32, Dh: u32, Tmax: u32, window: u32, scale: f32,
  qBase: u32, qTok: u32, qHead: u32, kBase: u32, vBase: u32, slotBase: u32, oBase: u32,${softcap ? ' cap: f32,' : ''}
};
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> kc: array<f32>;
@group(0) @binding(2) var<storage, read> vc: array<f32>;
@group(0) @binding(3) var<storage, read> slots: array<u32>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;
var<workgroup> qs: array<f32, ${CACHED_ATTENTION_MAX_DH}>;
var<workgroup> s: array<f32, ${WG}>;
var<workgroup> slotShared: u32;${softcap ? SOFTCAP_WGSL : ''}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let g = wg.x + wg.y * nwg.x;   // (the same for the whole workgroup: returning here is uniform)
  if (g >= p.N * p.Hq) { return; }
  let i = g / p.Hq; let h = g % p.Hq; let kvh = h / p.nRep;
  if (li == 0u) { slotShared = slots[p.slotBase + i]; }
  for (var d = li; d < p.Dh; d += ${WG}u) { qs[d] = q[p.qBase + i * p.qTok + h * p.qHead + d] * p.scale; }
  let slot = workgroupUniformLoad(&slotShared);
  let pos = slot % p.Tmax;
  let rowBase = slot - pos;
  var lo = 0u;
  if (p.window > 0u && pos + 1u > p.window) { lo = pos + 1u - p.window; }
  let kvStride = p.Hkv * p.Dh;
  let kvOff = kvh * p.Dh;
  var m = -3.0e38;
  var l = 0.0;
  var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
  for (var c = lo; c <= pos; c += ${WG}u) {
    let j = c + li;
    var sc = -3.0e38;
    if (j <= pos) {
      let kRow = p.kBase + (rowBase + j) * kvStride + kvOff;
      var dot = 0.0;
      for (var d = 0u; d < p.Dh; d++) { dot = fma(qs[d], kc[kRow + d], dot); }
      sc = ${capped(softcap, 'dot')};
    }
    s[li] = sc;
    workgroupBarrier();
    let cnt = min(${WG}u, pos + 1u - c);
    var cm = m;
    for (var t = 0u; t < cnt; t++) { cm = max(cm, s[t]); }
    let corr = exp(m - cm);
    l = l * corr;
    for (var r = 0u; r < 4u; r++) { acc[r] = acc[r] * corr; }
    for (var t = 0u; t < cnt; t++) {
      let pt = exp(s[t] - cm);
      l = l + pt;
      let vRow = p.vBase + (rowBase + c + t) * kvStride + kvOff;
      for (var r = 0u; r < 4u; r++) {
        let d = li + r * ${WG}u;
        if (d < p.Dh) { acc[r] = fma(pt, vc[vRow + d], acc[r]); }
      }
    }
    m = cm;
    workgroupBarrier();
  }
  let out = p.oBase + (i * p.Hq + h) * p.Dh;
  for (var r = 0u; r < 4u; r++) {
    let d = li + r * ${WG}u;
    if (d < p.Dh) { o[out + d] = acc[r] / l; }
  }
}`,
}));

export interface AttentionCachedArgs {
  q: HeadOperand;
  /** [rows, Tmax, Hkv, Dh] f32 each, holding every query's own key and value and those before it. */
  kCache: Tensor; vCache: Tensor;
  /** [N] u32: row * Tmax + position of each query token. */
  slots: Tensor;
  /** [N, Hq, Dh] f32. */
  out: Tensor;
  N: number; Hq: number; Hkv: number; Dh: number; Tmax: number;
  /** Sliding window in positions (0 = none): key j visible to a query at position i iff i - j < window. */
  window?: number;
  /** Score scale; default 1 / sqrt(Dh). */
  scale?: number;
  /** Gemma 2's soft-cap of the scaled scores (s -> softcap tanh(s / softcap)); absent or 0: none, else finite and > 0. */
  softcap?: number;
}

export function attentionCached(gpu: Gpu, a: AttentionCachedArgs): void {
  const { q, kCache, vCache, slots, out, N, Hq, Hkv, Dh, Tmax } = a;
  if (Hkv <= 0 || Hq % Hkv !== 0) throw new RangeError(`attentionCached: Hkv ${Hkv} must divide Hq ${Hq}`);
  if (Dh > CACHED_ATTENTION_MAX_DH) throw new RangeError(`attentionCached: head size ${Dh} over ${CACHED_ATTENTION_MAX_DH}`);
  const softcap = checkSoftcap(a.softcap, 'attentionCached');
  const qOff = q.offset ?? 0; const qTok = q.tokenStride ?? Hq * Dh; const qHead = q.headStride ?? Dh;
  for (const t of [q.tensor, kCache, vCache, out]) if (t.dtype !== 'f32') throw new TypeError(`attentionCached: ${t} must be f32`);
  if (slots.dtype !== 'u32') throw new TypeError(`attentionCached: slots ${slots} must be u32`);
  if (kCache.numel % (Tmax * Hkv * Dh) !== 0 || vCache.numel !== kCache.numel || slots.numel < N || out.numel < N * Hq * Dh ||
    (N > 0 && qOff + (N - 1) * qTok + (Hq - 1) * qHead + Dh > q.tensor.numel)) {
    throw new RangeError(`attentionCached: q ${q.tensor}, caches ${kCache} / ${vCache}, slots ${slots} or out ${out} do not fit ` +
      `N=${N} Hq=${Hq} Hkv=${Hkv} Dh=${Dh} Tmax=${Tmax}`);
  }
  if (N === 0) return;
  // The caches are bound whole (the decoder sizes them to one binding); the queries, their slots and the
  // output in runs of tokens that fit one (a prompt pass of many tokens: with grouped-query attention q
  // is Hq / Hkv times a token's cache entry).
  const wk = windowOf(gpu, kCache); const wv = windowOf(gpu, vCache);
  const width = Math.max(qTok, Hq * qHead, Hq * Dh);
  const run = Math.max(1, Math.floor(maxWindowElems(gpu) / width) - 1);
  for (const [s, e] of chunkRanges(N, run)) {
    const first = qOff + s * qTok;
    const wq = windowOf(gpu, q.tensor, first, qOff + (e - 1) * qTok + (Hq - 1) * qHead + Dh);
    const ws = windowOf(gpu, slots, s, e); const wo = windowOf(gpu, out, s * Hq * Dh, e * Hq * Dh);
    const params = new ParamWriter()
      .u32(e - s, Hq, Hq / Hkv, Hkv, Dh, Tmax, a.window ?? 0).f32(a.scale ?? 1 / Math.sqrt(Dh))
      .u32(wq.base, qTok, qHead, wk.base, wv.base, ws.base, wo.base);
    if (softcap) params.f32(softcap);
    gpu.recorder.dispatch(gpu.kernels.get(attentionCachedDef(softcap > 0)), [wq.range, wk.range, wv.range, ws.range, wo.range], params.bytes(), grid((e - s) * Hq));
  }
}
