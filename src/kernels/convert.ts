// Conversion of checkpoint data to f32 on the GPU: f16, bf16 and f64 bytes, uploaded as raw u32
// words, become f32 tensors. Checkpoints in half precision thus cross the bus at half the size.
//   f16:  two per word, unpack2x16float (IEEE half, subnormals included)
//   bf16: two per word, the upper 16 bits of an f32
//   f64:  two words per value (little-endian lo, hi), rounded to the nearest f32 (ties to even) in
//         integer arithmetic: subnormal f32 results included, past the f32 range inf
// Reference: convert.ref.ts.
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { ParamWriter, chunkRanges, grid, maxWindowElems, windowOf, type KernelDef } from '../engine/kernel.js';

export type SourceDtype = 'f16' | 'bf16' | 'f64';
const WG = 256;

const BODY: Record<SourceDtype, string> = {
  f16: `let w = src[p.sBase + i / 2u]; let v = unpack2x16float(w)[i % 2u];`,
  bf16: `let w = src[p.sBase + i / 2u]; let v = bitcast<f32>(select(w << 16u, w & 0xffff0000u, (i % 2u) == 1u));`,
  // Correctly rounded (to nearest, ties to even, as torch's .float() and Math.fround), in integers:
  // rounding the mantissa to an f32 first and scaling after would round twice.
  f64: `let lo = src[p.sBase + 2u * i]; let hi = src[p.sBase + 2u * i + 1u];
  let sign = hi & 0x80000000u;
  let e = i32((hi >> 20u) & 0x7ffu);
  // The f64 mantissa's top 23 bits, and the 29 below them that rounding looks at.
  let m23 = ((hi & 0xfffffu) << 3u) | (lo >> 29u);
  let rest = lo & 0x1fffffffu;
  let e32 = e - 896; // the f32 biased exponent: e - 1023 + 127
  var bits = sign;
  if (e == 0x7ff) {
    bits = select(sign | 0x7f800000u, 0x7fc00000u, ((hi & 0xfffffu) | lo) != 0u);
  } else if (e32 >= 255) {
    bits = sign | 0x7f800000u;
  } else if (e32 >= 1) {
    let up = rest > 0x10000000u || (rest == 0x10000000u && (m23 & 1u) == 1u);
    // A carry out of the mantissa moves into the exponent (up to inf), as rounding should.
    bits = sign | (((u32(e32) << 23u) | m23) + select(0u, 1u, up));
  } else if (e != 0 && e32 >= -23) {
    // An f32 subnormal: the 24-bit significand 1.m shifted right by d = 1 - e32 (1..24) bits.
    let sig = 0x800000u | m23;
    let d = u32(1 - e32);
    let kept = sig >> d;
    let dropped = sig & ((1u << d) - 1u);
    let half = 1u << (d - 1u);
    let up = dropped > half || (dropped == half && (rest != 0u || (kept & 1u) == 1u));
    bits = sign | (kept + select(0u, 1u, up));
  }
  let v = bitcast<f32>(bits);`,
};

function def(src: SourceDtype): KernelDef {
  return {
    name: `convert_${src}_f32`,
    bindings: ['read', 'rw'],
    uniform: true,
    code: /* wgsl */ `
struct Params { n: u32, sBase: u32, dBase: u32 };
@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wg.x + wg.y * nwg.x) * ${WG}u + li;
  if (i >= p.n) { return; }
  ${BODY[src]}
  dst[p.dBase + i] = v;
}`,
  };
}

/** Words of raw data per element (fractional for 16-bit types). */
const WORDS: Record<SourceDtype, number> = { f16: 0.5, bf16: 0.5, f64: 2 };

/**
 * dst [n] f32 = convert(src), where src is a u32 tensor holding the raw little-endian bytes of n
 * values of `from` (an odd count of 16-bit values is padded with one zero half).
 */
export function convertToF32(gpu: Gpu, from: SourceDtype, src: Tensor, dst: Tensor, n = dst.numel): void {
  const words = Math.ceil(n * WORDS[from]);
  if (src.numel < words) throw new RangeError(`convert ${from}: ${src} holds fewer than the ${words} words of ${n} values`);
  if (dst.numel < n) throw new RangeError(`convert ${from}: ${dst} shorter than ${n}`);
  const k = gpu.kernels.get(def(from));
  // Even chunks keep 16-bit pairs inside one word; chunks bounded by both bindings.
  const chunk = Math.floor(Math.min(maxWindowElems(gpu), maxWindowElems(gpu) / WORDS[from]) / 2) * 2;
  for (const [s, e] of chunkRanges(n, chunk)) {
    const ws = windowOf(gpu, src, Math.floor(s * WORDS[from]), Math.ceil(e * WORDS[from]));
    const wd = windowOf(gpu, dst, s, e);
    gpu.recorder.dispatch(k, [ws.range, wd.range], new ParamWriter().u32(e - s, ws.base, wd.base).bytes(), grid(Math.ceil((e - s) / WG)));
  }
}

/** Uploads raw bytes of `from` values and converts them into dst on the GPU. */
export function uploadConverted(gpu: Gpu, from: SourceDtype, bytes: Uint8Array, dst: Tensor): void {
  const n = dst.numel;
  const words = Math.ceil(n * WORDS[from]);
  const need = n * WORDS[from] * 4;
  if (bytes.byteLength !== need) throw new RangeError(`convert ${from}: ${bytes.byteLength} bytes for ${n} values (expected ${need})`);
  const padded = new Uint8Array(words * 4);
  padded.set(bytes);
  const src = gpu.tensor([words], new Uint32Array(padded.buffer), 'u32', `raw_${from}`);
  convertToF32(gpu, from, src, dst, n);
  gpu.pool.release(src);
}
