// The last block's tail on the scored tokens only.
//
// Only the scored tokens' final hidden states reach the output layer (causal-lm.ts), and after the
// last block's attention nothing mixes tokens: its output projection, residual sums, second norm and
// MLP are row by row. So the last block runs them on the scored rows alone (packed pairs at 8 x 512
// with prompt 256: 4096 of 6152 tokens; unpacked about half), and so do the final norm and the
// backward through them. Attention itself still runs on every token (they are keys and values for
// the scored queries). The block gathers its input and attention output to those rows; the backward
// spreads the gradients of both back over every row, zeros elsewhere (rows.ts).
import type { Tensor } from '../engine/tensor.js';
import { envSwitch } from '../engine/env.js';
import type { GpuBatch } from './context.js';

/** The rows (in the blocks' token order) the last block's tail runs on. */
export interface BlockTail { rows: Tensor; n: number }

/**
 * The scored rows, where they are fewer than the batch's tokens (and any); undefined otherwise.
 * SRK_LAST_BLOCK_TRIM=0 runs the last block on every token, as the others.
 */
export function lastBlockTail(batch: GpuBatch): BlockTail | undefined {
  if (envSwitch('SRK_LAST_BLOCK_TRIM') === '0') return undefined;
  const { rows, n } = batch.scored;
  return n > 0 && n < batch.N ? { rows, n } : undefined;
}
