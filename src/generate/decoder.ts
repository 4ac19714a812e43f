// Generation's forward: the model over new tokens only, each layer's keys and values kept in a
// cache so that a token attends to everything before it without running it again.
//
//   cache_l: K, V [rows, Tmax, Hkv, Dh] per layer; slot(row, position) = row * Tmax + position
//   step(tokens, want):
//     x = embed[ids]                                   [N, D] (N new tokens of any rows, any positions)
//     per block: its own forward (gpt-neox.ts / llama.ts) with ctx.attend =
//       K_l[slots] = k, V_l[slots] = v                 (kv-cache.ts; after rotary)
//       att = attention of q over K_l, V_l            (attention-cached.ts: each token sees its row up to itself)
//       (the last block's tail on the `want` tokens only, block-tail.ts)
//     logits = finalNorm(x[want]) W_out^T              [n, V], read back for the sampler
// A prompt is one step of all its tokens (prefill); each new token after it is a step of one token
// per row still going. Rows need no padding: a token names its row and position.
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { embeddingForward } from '../kernels/embedding.js';
import { normForward } from '../kernels/layernorm.js';
import { kvAppend, kvCopy } from '../kernels/kv-cache.js';
import { attentionCached, CACHED_ATTENTION_MAX_DH } from '../kernels/attention-cached.js';
import { linearForward } from '../model/linear.js';
import { gatherRows } from '../model/rows.js';
import { outerNames } from '../model/causal-lm.js';
import { neoxBlockForward, neoxFreeSaved, type NeoxSaved } from '../model/gpt-neox.js';
import { llamaBlockForward, llamaFreeSaved, type LlamaSaved } from '../model/llama.js';
import type { AttendHook, BlockBatch, ForwardContext, ModelShape } from '../model/context.js';
import { attentionScale, attentionSoftcap, embedScale, layerWindow, logitSoftcap, normOffset } from '../model/context.js';
import type { Params } from '../model/params.js';
import { userError } from '../errors.js';

/** A token to run: its row of the cache, its position there (0-based), its id. */
export interface DecodeToken { row: number; pos: number; id: number }

/** Bytes of one layer's key (or value) cache for `rows` rows of `tokens` tokens. */
export function cacheBytes(cfg: ModelShape, rows: number, tokens: number): number {
  return rows * tokens * cfg.numKvHeads * cfg.headDim * 4;
}

export class Decoder {
  private readonly k: Tensor[] = [];
  private readonly v: Tensor[] = [];

  /** A cache for `rows` sequences of up to `Tmax` tokens each (prompt and generated). */
  constructor(readonly gpu: Gpu, readonly cfg: ModelShape, readonly params: Params, readonly rows: number, readonly Tmax: number) {
    if (cfg.headDim > CACHED_ATTENTION_MAX_DH) throw userError(`generation supports heads of at most ${CACHED_ATTENTION_MAX_DH} channels; this model's are ${cfg.headDim}`);
    const width = cfg.numKvHeads * cfg.headDim;
    const bytes = cacheBytes(cfg, rows, Tmax);
    if (bytes > gpu.maxBinding) {
      throw userError(`a key/value cache of ${rows} rows x ${Tmax} tokens is ${(bytes / 2 ** 20).toFixed(0)} MiB a layer, over this ` +
        `adapter's ${(gpu.maxBinding / 2 ** 20).toFixed(0)} MiB per buffer`);
    }
    for (let l = 0; l < cfg.numLayers; l++) {
      this.k.push(gpu.pool.acquire([rows * Tmax, width], 'f32', `k_cache_${l}`));
      this.v.push(gpu.pool.acquire([rows * Tmax, width], 'f32', `v_cache_${l}`));
    }
  }

  /**
   * Runs `tokens` through the model, their keys and values written to the cache (a row's tokens
   * before them must be in it already, by this step or earlier ones), and returns the logits
   * [want.length, V] of the tokens at indices `want` (into `tokens`).
   */
  async step(tokens: readonly DecodeToken[], want: readonly number[]): Promise<Float32Array> {
    const { gpu, cfg, params: p, Tmax } = this;
    const N = tokens.length; const n = want.length;
    const D = cfg.hiddenSize; const V = cfg.vocabSize;
    if (N === 0 || n === 0) throw new Error('Decoder.step: no tokens, or no logits wanted');
    const slots = new Uint32Array(N); const ids = new Uint32Array(N); const positions = new Int32Array(N);
    tokens.forEach((t, i) => {
      if (!(t.row >= 0 && t.row < this.rows && t.pos >= 0 && t.pos < Tmax)) throw new RangeError(`Decoder.step: token ${i} at row ${t.row}, position ${t.pos} is outside the cache (${this.rows} x ${Tmax})`);
      if (!(t.id >= 0 && t.id < V)) throw new RangeError(`Decoder.step: token id ${t.id} is outside the model's vocabulary of ${V}`);
      slots[i] = t.row * Tmax + t.pos; ids[i] = t.id; positions[i] = t.pos;
    });
    const names = outerNames(cfg);
    const t = {
      ids: gpu.tensor([N], ids, 'u32', 'gen_ids'), positions: gpu.tensor([N], positions, 'i32', 'gen_positions'),
      slots: gpu.tensor([N], slots, 'u32', 'gen_slots'), want: gpu.tensor([n], Uint32Array.from(want), 'u32', 'gen_want'),
    };
    const batch: BlockBatch = { B: 1, T: N, N, positions: t.positions };
    const Hq = cfg.numHeads; const Hkv = cfg.numKvHeads; const Dh = cfg.headDim;
    const attend: AttendHook = (l, q, k, v, out) => {
      kvAppend(gpu, { src: k, slots: t.slots, cache: this.k[l], N, heads: Hkv, Dh });
      kvAppend(gpu, { src: v, slots: t.slots, cache: this.v[l], N, heads: Hkv, Dh });
      attentionCached(gpu, { q, kCache: this.k[l], vCache: this.v[l], slots: t.slots, out, N, Hq, Hkv, Dh, Tmax, window: layerWindow(cfg, l), scale: attentionScale(cfg), softcap: attentionSoftcap(cfg) });
    };
    const ctx: ForwardContext = { gpu, cfg, params: p, batch, attend };
    let x = gpu.pool.acquire([N, D], 'f32', 'gen_x');
    embeddingForward(gpu, { table: p.get(names.embed), ids: t.ids, out: x, N, V, D, scale: embedScale(cfg) });
    // The last block's tail runs on the wanted tokens only (all of them in a decode step).
    const tail = n < N ? { rows: t.want, n } : undefined;
    for (let l = 0; l < cfg.numLayers; l++) {
      const r = cfg.arch === 'gpt-neox'
        ? neoxBlockForward(ctx, l, x, true, l === cfg.numLayers - 1 ? tail : undefined)
        : llamaBlockForward(ctx, l, x, true, l === cfg.numLayers - 1 ? tail : undefined);
      if (cfg.arch === 'gpt-neox') neoxFreeSaved(ctx, r.saved as NeoxSaved); else llamaFreeSaved(ctx, r.saved as LlamaSaved);
      if (r.y !== x) gpu.pool.release(x);
      x = r.y;
    }
    // Without a tail (every token wanted) the wanted rows are gathered here, in `want`'s order, unless
    // that is the tokens' own order (a decode step's).
    const inOrder = want.every((w, i) => w === i);
    const xs = tail || inOrder ? x : gatherRows(gpu, x, t.want, n, N, D, 'gen_x_wanted');
    if (xs !== x) gpu.pool.release(x);
    const h = gpu.pool.acquire([n, D], 'f32', 'gen_h');
    const rstd = gpu.pool.acquire([n], 'f32', 'gen_rstd');
    const mean = cfg.arch === 'gpt-neox' ? gpu.pool.acquire([n], 'f32', 'gen_mean') : undefined;
    normForward(gpu, cfg.arch !== 'gpt-neox', { x: xs, w: p.get(names.normW), b: names.normB ? p.get(names.normB) : undefined, y: h, mean, rstd, N: n, D, eps: cfg.normEps, wOffset: normOffset(cfg) });
    const logits = gpu.pool.acquire([n, V], 'f32', 'gen_logits');
    linearForward(gpu, h, p.get(names.out), undefined, logits, n, D, V);
    try {
      const out = await gpu.readF32(logits);
      // Gemma 2's logits soft-capped as transformers does before the sampler (here on the host, a row of V per token).
      const cap = logitSoftcap(cfg);
      if (cap) for (let i = 0; i < out.length; i++) out[i] = cap * Math.tanh(out[i]! / cap);
      return out;
    } finally {
      gpu.pool.release(xs, h, rstd, mean, logits, t.ids, t.positions, t.slots, t.want);
    }
  }

  /**
   * Row `from`'s first `length` tokens' keys and values copied to each row of `to`, in every layer: a
   * prompt run once for several rows (its samples), which then go on from position `length`.
   */
  copyPrefix(from: number, to: readonly number[], length: number): void {
    const { gpu, Tmax } = this;
    if (to.length === 0 || length === 0) return;
    if (length > Tmax || to.includes(from)) throw new RangeError(`Decoder.copyPrefix: ${length} tokens from row ${from} to rows ${to.join(', ')}`);
    const pairs = new Uint32Array(2 * to.length * length);
    to.forEach((row, k) => {
      for (let pos = 0; pos < length; pos++) {
        const i = k * length + pos;
        pairs[2 * i] = from * Tmax + pos; pairs[2 * i + 1] = row * Tmax + pos;
      }
    });
    const t = gpu.tensor([pairs.length], pairs, 'u32', 'gen_copy_pairs');
    const width = this.cfg.numKvHeads * this.cfg.headDim;
    for (let l = 0; l < this.cfg.numLayers; l++) {
      kvCopy(gpu, { cache: this.k[l], pairs: t, n: to.length * length, width });
      kvCopy(gpu, { cache: this.v[l], pairs: t, n: to.length * length, width });
    }
    gpu.pool.release(t);
  }

  /** Returns the cache to the pool. */
  free(): void {
    this.gpu.pool.release(...this.k, ...this.v);
    this.k.length = 0; this.v.length = 0;
  }
}
