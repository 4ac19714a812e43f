// A causal language model on the GPU: embedding, blocks, final norm, fused output layer, and the
// per-token log-probs of the batch targets. forward() records every kernel; with `train` it keeps
// each block's activations for backward(), which then adds every parameter gradient.
//
//   x0 = embed[ids]                                 [N, D] (Gemma: times sqrt(D))
//   x_{l+1} = block_l(x_l)                          (gpt-neox.ts / llama.ts)
//   h = finalNorm(x_L)[scored rows]                 [n, D] (the tokens with a target; embedding gather)
//   logp[r] = log softmax(h W_out^T)[i, target[r]]  [B T] for scored row r = rows[i], 0 elsewhere
//                                                   (output-logprob.ts, scattered by row-scatter.ts)
// Without backward, rows that begin alike may share their prefix (N < B T tokens through the blocks:
// shared-prefix.ts); the log-probs are still laid out by the rows.
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { normBackward, normForward } from '../kernels/layernorm.js';
import { embeddingBackward, embeddingForward } from '../kernels/embedding.js';
import { keptLogitsBudget, outputLogprob, outputLogprobBackward, releaseKeptLogits, type KeptLogits } from '../kernels/output-logprob.js';
import { gatherRows, spreadRows } from './rows.js';
import { lastBlockTail } from './block-tail.js';
import { neoxBlockBackward, neoxBlockForward, neoxFreeSaved, type NeoxSaved } from './gpt-neox.js';
import { llamaBlockBackward, llamaBlockForward, llamaFreeSaved, type LlamaSaved } from './llama.js';
import { embedScale, logitSoftcap, normOffset, type ForwardContext, type GpuBatch, type ModelShape } from './context.js';
import type { Params } from './params.js';

/** HF names of the parameters outside the blocks. */
export function outerNames(cfg: ModelShape): { embed: string; normW: string; normB?: string; out: string } {
  if (cfg.arch === 'gpt-neox') {
    return { embed: 'gpt_neox.embed_in.weight', normW: 'gpt_neox.final_layer_norm.weight', normB: 'gpt_neox.final_layer_norm.bias',
      out: cfg.tiedEmbeddings ? 'gpt_neox.embed_in.weight' : 'embed_out.weight' };
  }
  return { embed: 'model.embed_tokens.weight', normW: 'model.norm.weight',
    out: cfg.tiedEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight' };
}

type Saved = NeoxSaved | LlamaSaved;

/** What forward(train) keeps for backward(). */
export interface ForwardState {
  ctx: ForwardContext & { batch: GpuBatch };
  blocks: Saved[];
  /** xL: the last block's output [N, D] ([n, D] with `tail`); h: the final-norm output of the scored tokens [n, D]. */
  xL: Tensor; h: Tensor; mean?: Tensor; rstd: Tensor;
  /** Whether the last block ran its tail on the scored rows (block-tail.ts): xL, mean, rstd have n rows. */
  tail: boolean;
  /** Per-token log-probs [B T]. */
  logp: Tensor;
  /** The output layer's logits of the scored tokens, kept for backward() (training, within keptLogitsBudget()). */
  logits?: KeptLogits;
}

export class CausalLM {
  constructor(readonly gpu: Gpu, readonly cfg: ModelShape, readonly params: Params) {}

  /**
   * Per-token log-probs [B T] of the batch's targets. With train = true, keeps the activations
   * for backward() (call release() or backward() afterwards); otherwise frees them layer by layer.
   */
  forward(batch: GpuBatch, train: boolean): ForwardState {
    const { gpu, cfg, params: p } = this;
    const { N } = batch;
    // The log-probs are per token of the rows' own layout (B T), also where the blocks run on fewer
    // (a shared prefix, which has no backward).
    if (train && batch.shared) throw new Error('CausalLM.forward: a batch with a shared prefix has no backward (upload it without sharePrefix)');
    const NL = batch.shared?.full ?? N;
    const D = cfg.hiddenSize; const V = cfg.vocabSize;
    const names = outerNames(cfg);
    const ctx = { gpu, cfg, params: p, batch };
    let x = gpu.pool.acquire([N, D], 'f32', 'x0');
    embeddingForward(gpu, { table: p.get(names.embed), ids: batch.ids, out: x, N, V, D, scale: embedScale(cfg) });
    const blocks: Saved[] = [];
    // The last block's tail (after attention) runs on the scored rows only (block-tail.ts).
    const tail = lastBlockTail(batch);
    // Without backward, each block adds its residual sums into x in place (no copy of the stream).
    for (let l = 0; l < cfg.numLayers; l++) {
      const t = l === cfg.numLayers - 1 ? tail : undefined;
      const r = cfg.arch === 'gpt-neox' ? neoxBlockForward(ctx, l, x, !train, t) : llamaBlockForward(ctx, l, x, !train, t);
      if (train) blocks.push(r.saved);
      else {
        this.freeSaved(ctx, r.saved);
        if (r.y !== x) gpu.pool.release(x); // (the tail's rows are a new tensor)
      }
      x = r.y;
    }
    // The output layer (the largest product, V rows) runs on the scored tokens only: in packed
    // pairs a third of the tokens are prompt, unpacked half; padding never has a target. With the
    // tail, x holds just those rows; else the final norm's output is gathered to them.
    const { rows, fullRows, targets, n } = batch.scored;
    const Nx = tail ? tail.n : N;
    const h = gpu.pool.acquire([Math.max(1, Nx), D], 'f32', tail ? 'h_scored' : 'h_final');
    const rstd = gpu.pool.acquire([Nx], 'f32', 'rstd_final');
    const mean = cfg.arch === 'gpt-neox' ? gpu.pool.acquire([Nx], 'f32', 'mean_final') : undefined;
    normForward(gpu, cfg.arch !== 'gpt-neox', { x, w: p.get(names.normW), b: names.normB ? p.get(names.normB) : undefined, y: h, mean, rstd, N: Nx, D, eps: cfg.normEps, wOffset: normOffset(cfg) });
    const hs = tail ? h : gatherRows(gpu, h, rows, n, N, D, 'h_scored');
    if (hs !== h) gpu.pool.release(h);
    const logps = gpu.pool.acquire([Math.max(1, n)], 'f32', 'logp_scored');
    // Training: the logits stay for backward() where they fit the budget (else it recomputes them).
    const keep = train && n * V * 4 <= keptLogitsBudget();
    const logits = outputLogprob(gpu, { h: hs, w: p.get(names.out), targets, logp: logps, N: n, d: D, V, keep, softcap: logitSoftcap(cfg) });
    const logp = spreadRows(gpu, logps, fullRows, n, NL, 1, 'logp');
    gpu.pool.release(logps);
    const st: ForwardState = { ctx, blocks, xL: x, h: hs, mean, rstd, logp, logits, tail: !!tail };
    if (!train) { this.release(st); st.blocks = []; }
    return st;
  }

  /** Frees the activations of a forward (the logp tensor too unless keepLogp). */
  release(st: ForwardState, keepLogp = true): void {
    for (const s of st.blocks) { this.freeSaved(st.ctx, s); this.gpu.pool.release(s.x); }
    st.blocks = [];
    this.gpu.pool.release(st.xL, st.h, st.mean, st.rstd);
    releaseKeptLogits(this.gpu, st.logits);
    if (!keepLogp) this.gpu.pool.release(st.logp);
  }

  /**
   * Adds dL/dparams for L = sum_n weights[n] * logp[n] (weights [N]: dL/dlogp per token, zero on
   * prompt and padding). Frees the forward's activations (not logp).
   */
  backward(st: ForwardState, weights: Tensor): void {
    const { gpu, cfg, params: p } = this;
    const { ctx } = st;
    const { N } = ctx.batch;
    const D = cfg.hiddenSize; const V = cfg.vocabSize;
    const names = outerNames(cfg);
    // The output layer's backward on the scored rows (st.h holds them), scattered into dh [N, D] unless the
    // last block's tail has only those rows.
    const { rows, targets, n } = ctx.batch.scored;
    const ws = gatherRows(gpu, weights, rows, n, N, 1, 'weights_scored');
    const dhs = gpu.pool.acquire([Math.max(1, n), D], 'f32', 'd_h_scored');
    outputLogprobBackward(gpu, { h: st.h, w: p.get(names.out), targets, weights: ws, dh: dhs, dw: p.grad(names.out), N: n, d: D, V, kept: st.logits, softcap: logitSoftcap(ctx.cfg) });
    st.logits = undefined;
    // With the tail, the final norm and the last block's tail have just the scored rows: no scatter.
    const Nx = st.tail ? n : N;
    const dh = st.tail ? dhs : spreadRows(gpu, dhs, rows, n, N, D, 'd_h_final');
    if (dh !== dhs) gpu.pool.release(dhs);
    gpu.pool.release(ws);
    let dx = gpu.pool.acquire([Nx, D], 'f32', 'dx');
    normBackward(gpu, cfg.arch !== 'gpt-neox', { dy: dh, x: st.xL, w: p.get(names.normW), mean: st.mean, rstd: st.rstd, dx,
      dw: p.grad(names.normW), db: names.normB ? p.grad(names.normB) : undefined, N: Nx, D, wOffset: normOffset(cfg) });
    gpu.pool.release(dh, st.xL, st.h, st.mean, st.rstd);
    for (let l = cfg.numLayers - 1; l >= 0; l--) {
      const s = st.blocks[l];
      const dxPrev = cfg.arch === 'gpt-neox'
        ? neoxBlockBackward(ctx, l, s as NeoxSaved, dx) : llamaBlockBackward(ctx, l, s as LlamaSaved, dx);
      gpu.pool.release(dx);
      this.freeSaved(ctx, s);
      gpu.pool.release(s.x);
      dx = dxPrev;
    }
    st.blocks = [];
    embeddingBackward(gpu, { dy: dx, ids: ctx.batch.hostIds, dTable: p.grad(names.embed), N, V, D, paddingIdx: cfg.embedPaddingIdx ?? undefined, scale: embedScale(cfg) });
    gpu.pool.release(dx);
  }

  private freeSaved(ctx: ForwardContext, s: Saved): void {
    if (this.cfg.arch === 'gpt-neox') neoxFreeSaved(ctx, s as NeoxSaved); else llamaFreeSaved(ctx, s as LlamaSaved);
  }

  /** Nothing is held between calls any more; kept so callers can release a model uniformly. */
  destroy(): void { /* no state */ }
}
