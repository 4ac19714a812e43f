// The in-kernel reduction of absmax partial maxima to an operand's f16 scale (src/kernels/absmax.ts
// f16ScaleWgsl), as the f16 matmul kernels run it: by one invocation over the workgroup's values, or
// (tensor-core kernels, which enable subgroups) by subgroupMax and then the few subgroup maxima. Every
// invocation must get f16ScaleRef of the maximum, wherever in the 1024 partials it lies.
import { describe, expect, it } from 'vitest';
import { getGpu } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import { windowOf, type KernelDef } from '../../src/engine/kernel.js';
import { ABSMAX_PARTS, f16ScaleWgsl } from '../../src/kernels/absmax.js';
import { f16ScaleRef } from '../../src/kernels/absmax.ref.js';

// Lavapipe's 8-lane subgroups here (256-bit vectors, its default); the rest of the suite runs 4 lanes
// (vitest.config.ts), so the subgroup code is checked at both sizes. Read when the device is made.
process.env.LP_NATIVE_VECTOR_WIDTH = '256';
const rng = makeRng();

describe(`f16 scale from partial maxima (seed ${rng.seed})`, () => {
  it('every invocation gets the scale of the maximum, by one invocation or by subgroups, at 32 to 256 invocations', async () => {
    const gpu = await getGpu();
    const sg = gpu.features.subgroups ? gpu.fixedSubgroupSize : 0;
    for (const threads of [32, 96, 256]) {
      for (const subgroups of sg && threads % sg === 0 ? [false, true] : [false]) {
        const def: KernelDef = {
          name: `test_f16scale_${threads}${subgroups ? `_sg${sg}` : ''}`, bindings: ['read', 'rw'],
          code: `${subgroups ? 'enable subgroups;\n' : ''}@group(0) @binding(0) var<storage, read> parts: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
${f16ScaleWgsl(threads, 'f16Scale', 'parts', subgroups ? sg : 0)}
@compute @workgroup_size(${threads})
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wg: vec3u) {
  out[wg.x * ${threads}u + li] = f16Scale(li, wg.x * ${ABSMAX_PARTS}u);
}`,
        };
        // Several sets of partials (one per workgroup): the maximum at the first and last slot, in the
        // last invocation's slots, at random places; all zero (scale 1); tiny and huge maxima, one just
        // under f32's largest; a NaN or an Inf before or after the finite maximum (scale 1: not finite).
        const sets: Float32Array[] = [];
        const at = [0, ABSMAX_PARTS - 1, threads - 1, ABSMAX_PARTS - threads, rng.int(ABSMAX_PARTS), rng.int(ABSMAX_PARTS)];
        for (const [i, pos] of at.entries()) {
          const p = Float32Array.from({ length: ABSMAX_PARTS }, () => rng.uniform() * 3);
          p[pos] = [7.5, 1e-6, 3.1e4, 5, 2e-30, 123.25][i];
          for (let j = 0; j < ABSMAX_PARTS; j++) if (j !== pos) p[j] = Math.min(p[j], p[pos] * 0.999);
          sets.push(p);
        }
        sets.push(new Float32Array(ABSMAX_PARTS));
        const nonFinite: number[] = [];
        for (const bad of [NaN, Infinity]) {
          for (const [at, top] of [[rng.int(threads), ABSMAX_PARTS - 1 - rng.int(threads)], [ABSMAX_PARTS - 1, 0], [(5 * threads + 3) % ABSMAX_PARTS, 3]]) {
            const p = Float32Array.from({ length: ABSMAX_PARTS }, () => rng.uniform());
            p[top] = 2.5; p[at] = bad;
            nonFinite.push(sets.length); sets.push(p);
          }
        }
        const nearMax = new Float32Array(ABSMAX_PARTS); nearMax[rng.int(ABSMAX_PARTS)] = 3.1e38;
        sets.push(nearMax);
        const all = new Float32Array(sets.length * ABSMAX_PARTS);
        sets.forEach((p, i) => all.set(p, i * ABSMAX_PARTS));
        const tp = gpu.tensor([all.length], all); const to = gpu.tensor([sets.length * threads]);
        gpu.recorder.dispatch(gpu.kernels.get(def), [windowOf(gpu, tp).range, windowOf(gpu, to).range], undefined, [sets.length, 1, 1]);
        const got = await gpu.readF32(to);
        sets.forEach((p, i) => {
          const want = nonFinite.includes(i) ? 1 : f16ScaleRef(Math.max(...p));
          const bad = [...got.subarray(i * threads, (i + 1) * threads)].filter((v) => v !== want);
          expect(bad.slice(0, 4), `set ${i}, ${threads} invocations${subgroups ? `, subgroups of ${sg}` : ''}: want ${want}`).toEqual([]);
        });
        gpu.pool.release(tp, to);
      }
    }
  });
});
