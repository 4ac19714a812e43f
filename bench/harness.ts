// Timing for `srk bench`: warm-up, then the median of repeats. GPU time comes from timestamp
// queries when the adapter has them (Gpu created with profile: true), else from wall time around
// a full sync. Each repeat is one submit + wait, so nothing overlaps between repeats.
//
// Warm-up runs for at least WARM_MS of wall time on a GPU, not a fixed count: after the host has
// been busy (filling a case's operands) the GPU has dropped its clocks, and two short warm-up runs
// did not bring them back. Measured on the H100 (bench/RESULTS.md, 2026-11-27): the same f16
// matmul read 132 TFLOP/s as the first case of a run and 35 TFLOP/s later in it.
import type { Gpu } from '../src/engine/gpu.js';

export interface Timing { ms: number; samplesMs: number[]; method: 'timestamp' | 'wall' }

const WARM_MS = 300;

export async function timeIt(gpu: Gpu, run: () => void, warmup = 2, repeats = 7): Promise<Timing> {
  const warmMs = gpu.isCpuAdapter ? 0 : WARM_MS;
  const t0 = performance.now();
  const profiling = gpu.profiler?.enabled ?? false;
  if (gpu.profiler) gpu.profiler.enabled = false; // warm-up runs are not timed
  for (let i = 0; i < warmup || (performance.now() - t0 < warmMs && i < 10_000); i++) {
    run();
    await gpu.sync();
  }
  if (gpu.profiler) gpu.profiler.enabled = profiling;
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


/**
 * With the tuner on (src/engine/tuner.ts), makes its choices for the kernels `run` dispatches the
 * way the first training steps do (candidates timed in turn, then settled), so what is timed next
 * is what training runs. Returns whether the tuner was on.
 */
export async function tuneFirst(gpu: Gpu, run: () => void, calls = 32): Promise<boolean> {
  if (!gpu.tuner) return false;
  const profiling = gpu.profiler?.enabled ?? false;
  if (gpu.profiler) gpu.profiler.enabled = false; // the tuner's timestamps need the passes
  // Rounds until the tuner has chosen: a tensor-core attention check takes a round of its own, and a
  // choice can open others (attention's tiles once the flash kernels are kept), so also one more round
  // after any round that met new keys or made choices.
  for (let round = 0, grew = true; round < gpu.tuner.table.maxSteps + 4 && (round < gpu.tuner.table.maxSteps || gpu.tuner.open || grew); round++) {
    const before = gpu.tuner.table.progress;
    for (let i = 0; i < calls; i++) run();
    await gpu.sync();
    await gpu.tuner.settle();
    grew = gpu.tuner.table.progress > before;
  }
  if (gpu.profiler) gpu.profiler.enabled = profiling;
  return true;
}

export function fmt(n: number, digits = 1): string {
  return n >= 100 ? n.toFixed(0) : n.toFixed(digits);
}
