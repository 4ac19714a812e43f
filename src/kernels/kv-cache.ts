// Key/value cache append, f32: cache[slots[i], h, :] = src[i, h, :] for N tokens. Generation
// (src/generate/decoder.ts) keeps every layer's keys and values of each row in a cache laid out
// [rows, Tmax, heads, Dh], slot = row * Tmax + position, so that a new token attends to the tokens
// before it without running them again (attention-cached.ts). src is a head operand as attention
// reads it: GPT-NeoX's k and v sit inside the fused qkv rows (token stride 3 D, head stride 3 Dh).
// Slots must be distinct (each written once per call). Reference: kv-cache.ref.ts.
//
//   src   [N tokens] by (offset, tokenStride, headStride), heads x Dh each
//   slots [N] u32
//   cache [S slots, heads, Dh]
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { ParamWriter, chunkRanges, grid, maxWindowElems, windowOf, type KernelDef } from '../engine/kernel.js';
import type { HeadOperand } from './attention.js';

const WG = 64;

const KV_APPEND: KernelDef = {
  name: 'kv_append',
  bindings: ['read', 'read', 'rw'],
  uniform: true,
  code: /* wgsl */ `
struct Params { N: u32, heads: u32, Dh: u32, srcBase: u32, tokStride: u32, headStride: u32, slotBase: u32, cacheBase: u32 };
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read> slots: array<u32>;
@group(0) @binding(2) var<storage, read_write> cache: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
// One workgroup per token.
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = wg.x + wg.y * nwg.x;
  if (i >= p.N) { return; }
  let width = p.heads * p.Dh;
  let dst = p.cacheBase + slots[p.slotBase + i] * width;
  let row = p.srcBase + i * p.tokStride;
  for (var e = li; e < width; e += ${WG}u) {
    let h = e / p.Dh; let d = e % p.Dh;
    cache[dst + e] = src[row + h * p.headStride + d];
  }
}`,
};

export interface KvAppendArgs {
  src: HeadOperand;
  /** [N] u32 distinct slots in [0, S). */
  slots: Tensor;
  /** [S, heads, Dh] f32. */
  cache: Tensor;
  N: number; heads: number; Dh: number;
}

export function kvAppend(gpu: Gpu, a: KvAppendArgs): void {
  const { src, slots, cache, N, heads, Dh } = a;
  const t = src.tensor;
  const off = src.offset ?? 0; const ts = src.tokenStride ?? heads * Dh; const hs = src.headStride ?? Dh;
  if (t.dtype !== 'f32' || cache.dtype !== 'f32') throw new TypeError(`kvAppend: ${t} and ${cache} must be f32`);
  if (slots.dtype !== 'u32') throw new TypeError(`kvAppend: slots ${slots} must be u32`);
  if (slots.numel < N || (N > 0 && off + (N - 1) * ts + (heads - 1) * hs + Dh > t.numel) || cache.numel % (heads * Dh) !== 0) {
    throw new RangeError(`kvAppend: src ${t}, slots ${slots} or cache ${cache} do not fit N=${N} heads=${heads} Dh=${Dh}`);
  }
  if (N === 0) return;
  // The cache bound whole (one binding, as the decoder sizes it); the source and slots in runs of tokens
  // that fit one (a long prompt pass's fused qkv rows may not).
  const wc = windowOf(gpu, cache);
  const run = Math.max(1, Math.floor(maxWindowElems(gpu) / Math.max(ts, heads * hs)) - 1);
  for (const [s, e] of chunkRanges(N, run)) {
    const ws = windowOf(gpu, t, off + s * ts, off + (e - 1) * ts + (heads - 1) * hs + Dh); const wi = windowOf(gpu, slots, s, e);
    const params = new ParamWriter().u32(e - s, heads, Dh, ws.base, ts, hs, wi.base, wc.base).bytes();
    gpu.recorder.dispatch(gpu.kernels.get(KV_APPEND), [ws.range, wi.range, wc.range], params, grid(e - s));
  }
}

const KV_COPY: KernelDef = {
  name: 'kv_copy',
  bindings: ['read', 'rw'],
  uniform: true,
  code: /* wgsl */ `
struct Params { n: u32, width: u32, pairBase: u32, cacheBase: u32 };
@group(0) @binding(0) var<storage, read> pairs: array<u32>;
@group(0) @binding(1) var<storage, read_write> cache: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
// One workgroup per (source, destination) slot pair.
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = wg.x + wg.y * nwg.x;
  if (i >= p.n) { return; }
  let src = p.cacheBase + pairs[p.pairBase + 2u * i] * p.width;
  let dst = p.cacheBase + pairs[p.pairBase + 2u * i + 1u] * p.width;
  for (var e = li; e < p.width; e += ${WG}u) { cache[dst + e] = cache[src + e]; }
}`,
};

export interface KvCopyArgs {
  /** [S, width] f32. */
  cache: Tensor;
  /** [n, 2] u32 (source slot, destination slot); no slot is both a source and a destination. */
  pairs: Tensor;
  n: number; width: number;
}

/**
 * cache[dst] = cache[src] for each slot pair, in place: a prompt run once whose keys and values serve
 * several rows (srk generate --samples, generate.ts). One read_write binding, since WebGPU copies no
 * buffer onto itself; sources are never destinations, so there is no race.
 */
export function kvCopy(gpu: Gpu, a: KvCopyArgs): void {
  const { cache, pairs, n, width } = a;
  if (cache.dtype !== 'f32' || pairs.dtype !== 'u32') throw new TypeError(`kvCopy: cache ${cache} must be f32 and pairs ${pairs} u32`);
  if (pairs.numel < 2 * n || cache.numel % width !== 0) throw new RangeError(`kvCopy: pairs ${pairs} or cache ${cache} do not fit n=${n} width=${width}`);
  if (n === 0) return;
  const wp = windowOf(gpu, pairs); const wc = windowOf(gpu, cache);
  const params = new ParamWriter().u32(n, width, wp.base, wc.base).bytes();
  gpu.recorder.dispatch(gpu.kernels.get(KV_COPY), [wp.range, wc.range], params, grid(n));
}

