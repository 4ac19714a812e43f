// GPU memory over many training steps of varied lengths, as real data has them: how much the tensor
// pool (src/engine/tensor.ts) holds against the most the live tensors ever occupied at once, and the
// bind groups it makes (kernel.ts). No Python, no data: a tiny fixture model and random token ids.
//   npm run build && node scripts/pool-growth.mjs [STEPS=300] [MAX_LEN=20] [FIXTURE=test/fixtures/hf/gpt-neox-tiny]
// Prints a line every STEPS/5 steps: buffers, MiB held, MiB at most in use, their ratio, bind groups made.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = (p) => import(path.join(root, 'dist/src', p));
const { Gpu } = await dist('engine/gpu.js');
const { loadModel } = await dist('model/load.js');
const { Optimizer } = await dist('kernels/optimizer.js');
const { trainStep } = await dist('train/step.js');

const steps = Number(process.argv[2] ?? 300);
const maxLen = Number(process.argv[3] ?? 20);
const fixture = path.resolve(root, process.argv[4] ?? 'test/fixtures/hf/gpt-neox-tiny');
if (!(steps > 0) || !(maxLen > 0)) throw new Error('usage: node scripts/pool-growth.mjs [STEPS] [MAX_LEN] [FIXTURE]');

// A fixed seed: two builds of srk see the same lengths and ids.
let seed = 12345;
const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));

const gpu = await Gpu.create();
const m = await loadModel(gpu, fixture, { grads: true });
const V = m.cfg.vocabSize;
const grads = m.params.specs.map((s) => m.params.grad(s.name));
const opt = new Optimizer(gpu, { type: 'adamw' }, m.params.specs.map((s) => m.params.get(s.name)), { maxGradNorm: 1 });
const ids = (n) => Array.from({ length: n }, () => int(1, V - 1));
const P = 4096;
const pairs = Array.from({ length: P }, () => ({ promptIds: ids(int(1, maxLen)), chosenIds: ids(int(1, maxLen)), rejectedIds: ids(int(1, maxLen)), truncated: false }));
const ref = { plain: { chosen: Float64Array.from(pairs, () => -30 * rand()), rejected: Float64Array.from(pairs, () => -30 * rand()),
  chosenTokens: Int32Array.from(pairs, (p) => p.chosenIds.length), rejectedTokens: Int32Array.from(pairs, (p) => p.rejectedIds.length) } };
const pool = gpu.pool;
const MiB = (b) => (b / 2 ** 20).toFixed(2);
console.log(`${gpu.adapterInfo.device || gpu.adapterInfo.description}; ${path.relative(root, fixture)}; ${steps} DPO steps of 4 pairs (micro-batches of 2), lengths 1-${maxLen}`);
try {
  for (let s = 1; s <= steps; s++) {
    const indices = Array.from({ length: 4 }, () => int(0, P - 1));
    await trainStep(gpu, m.model, opt, grads, { pairs: indices.map((i) => pairs[i]), indices, ref },
      { loss: 'dpo', beta: 0.1, lambda: 0, microBatchSize: 2, lr: 1e-5, t: s });
    if (s === 1 || s % Math.max(1, Math.round(steps / 5)) === 0) {
      const peak = pool.peakInUseBytes;
      console.log(`step ${s}: ${pool.all.size} buffers, ${MiB(pool.allocatedBytes)} MiB held, ${MiB(peak)} MiB at most in use ` +
        `(x${(pool.allocatedBytes / peak).toFixed(2)}), ${gpu.kernels.bindGroupsCreated} bind groups made`);
    }
  }
} finally {
  opt.release(); m.model.destroy(); m.params.free();
  await gpu.destroy();
}
