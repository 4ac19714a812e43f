// When the recorder submits: early after the GPU went idle (a readback or sync), then in chunks
// doubling up to submitEvery, so a step's first kernels start while the host records the rest.
import { describe, expect, it } from 'vitest';
import { getGpu } from '../helpers/gpu.js';
import { fill } from '../../src/kernels/elementwise.js';
import type { Gpu } from '../../src/engine/gpu.js';
import type { Tensor } from '../../src/engine/tensor.js';

/** The dispatch counts (1-based) at which a submit happened, over `n` one-dispatch fills. */
function submitsOver(gpu: Gpu, t: Tensor, n: number, first = 0): number[] {
  const at: number[] = [];
  let submits = gpu.recorder.totalSubmits;
  for (let i = 1; i <= n; i++) {
    fill(gpu, t, first + i);
    if (gpu.recorder.totalSubmits > submits) { at.push(i); submits = gpu.recorder.totalSubmits; }
  }
  return at;
}

describe('recorder submits', () => {
  it('after a sync or a readback: at 8 dispatches, then 16, 32 and every submitEvery (64)', async () => {
    const gpu = await getGpu();
    expect(gpu.recorder.submitEvery).toBe(64);
    const t = gpu.tensor([16]);
    await gpu.sync();
    expect(submitsOver(gpu, t, 250)).toEqual([8, 24, 56, 120, 184, 248]);
    // The readback submits the rest and waits for it; its values are the last fill's.
    expect((await gpu.readF32(t))[0]).toBe(250);
    expect(submitsOver(gpu, t, 30, 250)).toEqual([8, 24]);
    expect((await gpu.readF32(t))[15]).toBe(280);
    gpu.pool.release(t);
  });

  it('readManyF32: several tensors (views at offsets, odd sizes) in one readback, each its own values', async () => {
    const gpu = await getGpu();
    const a = gpu.tensor([7], Float32Array.from({ length: 7 }, (_, i) => i + 0.5));
    const b = gpu.tensor([40], Float32Array.from({ length: 40 }, (_, i) => -i));
    const bView = b.view([3], 5); // elements 5, 6, 7
    const c = gpu.tensor([1], Float32Array.of(42));
    fill(gpu, c, 43); // recorded work before the read is seen by it
    const submits = gpu.recorder.totalSubmits;
    const [va, vb, vc] = await gpu.readManyF32([a, bView, c]);
    expect(gpu.recorder.totalSubmits).toBe(submits + 1);
    expect([...va]).toEqual([0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5]);
    expect([...vb]).toEqual([-5, -6, -7]);
    expect([...vc]).toEqual([43]);
    const ints = gpu.tensor([2], undefined, 'i32');
    await expect(gpu.readManyF32([a, ints])).rejects.toThrow(/readManyF32 of/);
    gpu.pool.release(a, b, c, ints);
  });

  it('discard: records and finishes but submits nothing, so the work never runs (bench step host-only steps)', async () => {
    const gpu = await getGpu();
    const t = gpu.tensor([16]);
    fill(gpu, t, 1);
    await gpu.sync();
    const submits = gpu.recorder.totalSubmits;
    gpu.recorder.discard = true;
    try {
      for (let i = 0; i < 100; i++) fill(gpu, t, 2); // past the submit points: flushed and dropped
      gpu.recorder.flush();
      expect(gpu.recorder.totalSubmits).toBe(submits);
      expect(gpu.recorder.pending).toBe(false);
    } finally { gpu.recorder.discard = false; }
    expect((await gpu.readF32(t))[7]).toBe(1);
    fill(gpu, t, 3);
    expect((await gpu.readF32(t))[7]).toBe(3);
    gpu.pool.release(t);
  });
});

describe('uniform buffers, cached by content', () => {
  it('the same bytes find the same buffer; one changed byte anywhere, another', async () => {
    const gpu = await getGpu();
    const bytes = Uint8Array.from({ length: 48 }, (_, i) => (i * 37 + 11) & 255);
    const first = gpu.kernels.uniform(bytes).buffer;
    expect(gpu.kernels.uniform(Uint8Array.from(bytes)).buffer).toBe(first);
    // The same content in a view at an offset of a larger array.
    const host = new Uint8Array(64); host.set(bytes, 16);
    expect(gpu.kernels.uniform(host.subarray(16, 64)).buffer).toBe(first);
    const seen = new Set([first]);
    for (const i of [0, 1, 2, 3, 30, 47]) { // each byte of a word: the key packs two per character
      const other = Uint8Array.from(bytes); other[i] ^= 1;
      const b = gpu.kernels.uniform(other).buffer;
      expect(seen.has(b)).toBe(false);
      seen.add(b);
    }
    // A shorter prefix of the same bytes is another buffer (its size differs).
    expect(gpu.kernels.uniform(bytes.subarray(0, 32)).buffer).not.toBe(first);
  });
});

describe('bind groups, cached by kernel and ranges', () => {
  it('the same kernel and ranges find the same group; any other buffer, offset, size or kernel, another', async () => {
    const gpu = await getGpu();
    const def = (name: string) => ({
      name, bindings: ['read', 'rw'] as ('read' | 'rw')[],
      code: `@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read_write> b: array<f32>;
@compute @workgroup_size(1) fn main() { b[0] = a[0]; }`,
    });
    const k1 = gpu.kernels.get(def('bg_cache_test_1')); const k2 = gpu.kernels.get(def('bg_cache_test_2'));
    const x = gpu.tensor([1024]); const y = gpu.tensor([1024]);
    const r = (t: typeof x, offset: number, size: number) => ({ buffer: t.buffer, offset: t.offset + offset, size });
    const base = [r(x, 0, 256), r(y, 256, 512)];
    const g = gpu.kernels.bindGroup(k1, base);
    expect(gpu.kernels.bindGroup(k1, [r(x, 0, 256), r(y, 256, 512)])).toBe(g);
    const others = [
      gpu.kernels.bindGroup(k2, base),
      gpu.kernels.bindGroup(k1, [r(y, 0, 256), r(y, 256, 512)]),
      gpu.kernels.bindGroup(k1, [r(x, 256, 256), r(y, 256, 512)]),
      gpu.kernels.bindGroup(k1, [r(x, 0, 512), r(y, 256, 512)]),
      gpu.kernels.bindGroup(k1, [r(x, 0, 256), r(y, 0, 512)]),
    ];
    expect(new Set([g, ...others]).size).toBe(6);
    // Each is found again, not made twice.
    const made = gpu.kernels.bindGroupsCreated;
    expect(gpu.kernels.bindGroup(k2, base)).toBe(others[0]);
    expect(gpu.kernels.bindGroup(k1, [r(x, 0, 256), r(y, 0, 512)])).toBe(others[4]);
    expect(gpu.kernels.bindGroupsCreated).toBe(made);
    gpu.pool.release(x, y);
  });
});

describe('bind groups whose keys share a hash bucket', () => {
  it('stay apart (the key itself is compared, not only its hash)', async () => {
    const gpu = await getGpu();
    const k = gpu.kernels.get({
      name: 'bg_collision_test', bindings: ['read', 'rw'],
      code: `@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read_write> b: array<f32>;
@compute @workgroup_size(1) fn main() { b[0] = a[0]; }`,
    });
    const x = gpu.tensor([4096]); const y = gpu.tensor([4096]);
    const ranges = (o: number, size: number) => [{ buffer: x.buffer, offset: x.offset + o, size }, { buffer: y.buffer, offset: y.offset, size: 16 }];
    const hash = gpu.kernels.bindKeyHash;
    gpu.kernels.bindKeyHash = () => 7; // every key in one bucket
    try {
      const cases: [number, number][] = [[0, 256], [256, 256], [0, 512], [512, 1024]];
      const groups = cases.map(([o, s]) => gpu.kernels.bindGroup(k, ranges(o, s)));
      expect(new Set(groups).size).toBe(cases.length);
      const made = gpu.kernels.bindGroupsCreated;
      cases.forEach(([o, s], i) => expect(gpu.kernels.bindGroup(k, ranges(o, s))).toBe(groups[i]));
      expect(gpu.kernels.bindGroupsCreated).toBe(made);
    } finally {
      gpu.kernels.bindKeyHash = hash;
    }
    gpu.pool.release(x, y);
  });
});
