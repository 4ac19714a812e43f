// The tensor pool (src/engine/tensor.ts) under varied sizes, as micro-batches of real data make them:
// a size the pool has no buffer of reuses a free one up to twice its size class, and the buffers held stay within twice
// the most ever in use (trimExcess between steps), where one size class per token count once held 7-12
// times the peak in free buffers over a long run.
import { describe, expect, it } from 'vitest';
import { getGpu } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import { TensorPool } from '../../src/engine/tensor.js';

const rng = makeRng();

describe(`tensor pool (seed ${rng.seed})`, () => {
  it('a request takes the smallest free buffer of its class or up to twice larger; smaller still: a new buffer', async () => {
    const gpu = await getGpu();
    const pool = new TensorPool(gpu);
    try {
      const big = pool.acquire([100_000]); // 400 KB
      const mid = pool.acquire([150_000]); // 600 KB
      pool.release(mid, big);
      const allocated = pool.allocatedBytes;
      const a = pool.acquire([80_000]); // 320 KB: the 400 KB buffer, the smallest that fits
      expect(a.buffer).toBe(big.buffer);
      expect(a.bytes).toBe(320_000); // the tensor is its own size, whatever its buffer's
      const b = pool.acquire([90_000]); // 360 KB: the 400 KB one is taken, 600 KB is within twice
      expect(b.buffer).toBe(mid.buffer);
      expect(pool.allocatedBytes).toBe(allocated);
      const c = pool.acquire([40_000]); // 160 KB: nothing free within twice its size
      expect(pool.allocatedBytes).toBeGreaterThan(allocated);
      pool.release(a, b, c);
      const d = pool.acquire([20_000]); // 80 KB: the 160 KB buffer is twice its size at most
      expect(d.buffer).toBe(c.buffer);
      // Exact (arena) requests take only their own size.
      const e = pool.acquire([64_000], 'f32', 'exact', true); // 256000 bytes
      expect([big.buffer, mid.buffer]).not.toContain(e.buffer);
      pool.release(d, e);
    } finally {
      pool.destroyAll();
    }
  });

  it('steps of varied lengths: the buffers held stay within twice the most ever held at once', async () => {
    const gpu = await getGpu();
    const pool = new TensorPool(gpu);
    try {
      const D = 96;
      // A "step": micro-batches of random token counts, longest first; each holds a layer's activations
      // ([N, D] and [N, 4D]) for 4 layers until its backward releases them.
      for (let step = 0; step < 300; step++) {
        const ns = Array.from({ length: 4 }, () => 1 + rng.int(512)).sort((a, b) => b - a);
        for (const N of ns) {
          const held = [];
          for (let l = 0; l < 4; l++) held.push(pool.acquire([N, D]), pool.acquire([N, 4 * D]));
          pool.release(...held.reverse());
        }
        pool.trimExcess();
        expect(pool.allocatedBytes, `step ${step}`).toBeLessThanOrEqual(2 * pool.peakInUseBytes);
      }
      pool.trimExcess(0);
      expect(pool.allocatedBytes).toBe(0);
    } finally {
      pool.destroyAll();
    }
  });

  it('trimExcess: the least recently released go first, down to the budget', async () => {
    const pool = new TensorPool(await getGpu());
    try {
      const a = pool.acquire([100_000]); const b = pool.acquire([300_000]);
      const held = pool.peakInUseBytes;
      expect(held).toBe(a.owner!.size + b.owner!.size);
      pool.release(a); pool.release(b); // a first: the older
      pool.trimExcess(b.owner!.size / held); // a budget one of them must leave
      expect(pool.allocatedBytes).toBe(b.owner!.size); // b's buffer is left, a's is gone
      expect(pool.acquire([300_000]).buffer).toBe(b.buffer);
    } finally {
      pool.destroyAll();
    }
  });
});
