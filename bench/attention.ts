// Flash attention forward and backward (src/kernels/attention.ts) on Pythia shapes, bound like
// the GPT-NeoX model binds them: q, k, v inside one fused QKV tensor [B*T, H, 3, Dh], and the
// gradients written into one fused dQKV tensor.
//
// Two layouts of the same work (pairs of prompt + two completions):
//   plain:  2 * pairs rows of `seq` tokens, plain causal (the unpacked layout);
//   packed: pairs rows of (prompt - 1) + 2 * (1 + completion) tokens, the packed-pair mask of
//           src/model/batch.ts (shared prompt prefix, two branches that do not see each other).
// FLOP counts use the visible (query, key) pairs V of the mask, counted exactly on the host:
//   forward  = 4 * V * H * Dh       (S = Q K^T and O = P V: 2 multiply-adds per pair and column);
//   backward = 2.5 * forward = 10 * V * H * Dh (recompute S, dV = P^T dO, dP = dO V^T,
//              dQ = dS K, dK = dS^T Q). The kernels recompute more than that (S and dO.V in both
//              the dK/dV and the dQ pass), which this count deliberately ignores.
// For plain causal rows V = B * T (T + 1) / 2, i.e. the usual 4 * B * T^2/2 * H * Dh.
import type { Gpu } from '../src/engine/gpu.js';
import { attentionBackward, attentionForward, type HeadOperand } from '../src/kernels/attention.js';
import { packMaskHost, type PackedMask } from '../src/kernels/attention-mask.js';
import { buildBatch } from '../src/model/batch.js';
import { timeIt, tuneFirst, type Timing } from './harness.js';
import { fillUniform } from './random.js';

export interface AttentionCase { name: string; layout: 'plain' | 'packed'; pairs: number; seq: number; prompt: number; H: number; Dh: number }
export interface AttentionResult extends AttentionCase {
  B: number; T: number; visiblePairs: number;
  forward: { timing: Timing; gflops: number };
  backward: { timing: Timing; gflops: number };
}

/** Rows, row length and the host mask of a case. */
function layoutOf(c: AttentionCase): { B: number; T: number; mask?: { positions: Int32Array; segments: Int32Array; lengths: Int32Array } } {
  if (c.layout === 'plain') return { B: 2 * c.pairs, T: c.seq };
  const C = c.seq - c.prompt;
  const ids = (n: number) => Array.from({ length: n }, () => 1);
  const layout = buildBatch(Array.from({ length: c.pairs }, () => ({ prompt: ids(c.prompt), completions: [ids(C), ids(C)] })), { packed: true });
  return { B: layout.B, T: layout.T, mask: { positions: layout.positions, segments: layout.segments, lengths: layout.lengths } };
}

/** Visible (query, key) pairs under the mask semantics of attention-mask.ts (no window). */
function visiblePairs(B: number, T: number, m?: { segments: Int32Array; lengths: Int32Array }): number {
  if (!m) return (B * T * (T + 1)) / 2;
  let n = 0;
  for (let b = 0; b < B; b++) {
    const len = m.lengths[b];
    for (let i = 0; i < len; i++) {
      const si = m.segments[b * T + i];
      for (let j = 0; j <= i; j++) { const sj = m.segments[b * T + j]; if (sj === 0 || sj === si) n++; }
    }
  }
  return n;
}

export async function benchAttention(gpu: Gpu, c: AttentionCase, warmup: number, repeats: number): Promise<AttentionResult> {
  const { B, T, mask: host } = layoutOf(c);
  const { H, Dh } = c;
  const N = B * T;
  const qkv = gpu.pool.acquire([N, H, 3, Dh]); const out = gpu.pool.acquire([N, H, Dh]);
  const lse = gpu.pool.acquire([B, H, T]); const dout = gpu.pool.acquire([N, H, Dh]);
  const dqkv = gpu.pool.acquire([N, H, 3, Dh]);
  fillUniform(gpu, qkv, 1, 11); fillUniform(gpu, dout, 1, 12);
  const mask: PackedMask | undefined = host ? packMaskHost(gpu, B, T, host) : undefined;
  const part = (t: typeof qkv, k: number): HeadOperand => ({ tensor: t, offset: k * Dh, tokenStride: 3 * H * Dh, headStride: 3 * Dh });
  const args = { B, T, Hq: H, Hkv: H, Dh, q: part(qkv, 0), k: part(qkv, 1), v: part(qkv, 2), mask };
  const fwd = () => attentionForward(gpu, { ...args, out: { tensor: out }, lse });
  const bwd = () => attentionBackward(gpu, {
    ...args, out: { tensor: out }, lse, dout: { tensor: dout }, dq: part(dqkv, 0), dk: part(dqkv, 1), dv: part(dqkv, 2),
  });
  await tuneFirst(gpu, () => { fwd(); bwd(); }, 16); // the tiles training would run (tuner on)
  const fwdT = await timeIt(gpu, fwd, warmup, repeats);
  fwd();
  const bwdT = await timeIt(gpu, bwd, warmup, repeats);
  gpu.pool.release(qkv, out, lse, dout, dqkv, mask?.packed);
  const vis = visiblePairs(B, T, host);
  const fFlops = 4 * vis * H * Dh;
  return {
    ...c, B, T, visiblePairs: vis,
    forward: { timing: fwdT, gflops: fFlops / (fwdT.ms * 1e6) },
    backward: { timing: bwdT, gflops: (2.5 * fFlops) / (bwdT.ms * 1e6) },
  };
}

/** The cases: Pythia-160m (12 heads) and Pythia-410m (16 heads), Dh 64, plain and packed. */
export function attentionCases(cpu: boolean): AttentionCase[] {
  const [pairs, seq, prompt] = cpu ? [1, 128, 64] : [8, 512, 256];
  const heads: [string, number][] = cpu ? [['pythia-160m', 12]] : [['pythia-160m', 12], ['pythia-410m', 16]];
  return heads.flatMap(([model, H]) => (['plain', 'packed'] as const).map((layout) => ({
    name: `${model} ${layout}`, layout, pairs, seq, prompt, H, Dh: 64,
  })));
}
