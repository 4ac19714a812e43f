// Timing for `srk bench`: warm-up, then the median of repeats. GPU time comes from timestamp
// queries when the adapter has them (Gpu created with profile: true), else from wall time around
// a full sync. Each repeat is one submit + wait, so nothing overlaps between repeats.
import type { Gpu } from '../src/engine/gpu.js';

export interface Timing { ms: number; samplesMs: number[]; method: 'timestamp' | 'wall' }

export async function timeIt(gpu: Gpu, run: () => void, warmup = 2, repeats = 7): Promise<Timing> {
  for (let i = 0; i < warmup; i++) run();
  await gpu.sync();
  const samples: number[] = [];
  const prof = gpu.profiler;
  for (let i = 0; i < repeats; i++) {
    if (prof) {
      await prof.collect(); prof.reset();
      run();
      await gpu.sync();
      const totals = await prof.collect();
      samples.push(totals.reduce((s, t) => s + t.ns, 0) / 1e6);
    } else {
      const t0 = performance.now();
      run();
      await gpu.sync();
      samples.push(performance.now() - t0);
    }
  }
  prof?.reset();
  const sorted = [...samples].sort((a, b) => a - b);
  return { ms: sorted[Math.floor(sorted.length / 2)], samplesMs: samples, method: prof ? 'timestamp' : 'wall' };
}


export function fmt(n: number, digits = 1): string {
  return n >= 100 ? n.toFixed(0) : n.toFixed(digits);
}
