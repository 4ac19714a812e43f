// `srk bench KIND`: kernel microbenchmarks. Every run measures the adapter's copy bandwidth
// first, so each result can also be read as a ratio that compares across machines.
import type { Gpu } from '../src/engine/gpu.js';
import { benchCopy, type CopyResult } from './copy.js';
import { benchMatmul, pythiaCases, type MatmulCase, type MatmulResult } from './matmul.js';
import type { MatmulTile } from '../src/kernels/matmul.js';
import { fmt, isCpuAdapter } from './harness.js';

export const BENCH_KINDS = ['matmul', 'copy'] as const;
export type BenchKind = (typeof BENCH_KINDS)[number];

export interface BenchOptions {
  kind: BenchKind; full: boolean; tokens?: number; sizes?: number[]; log: (s: string) => void;
  /** Also time every tiling in TILE_SWEEP on the square sizes (for tuning on a new GPU). */
  tileSweep?: boolean;
}

export const TILE_SWEEP: MatmulTile[] = [
  { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4 },
  { BM: 128, BN: 128, BK: 8, TM: 8, TN: 8 },
  { BM: 128, BN: 128, BK: 16, TM: 8, TN: 8 },
  { BM: 128, BN: 64, BK: 16, TM: 8, TN: 4 },
  { BM: 64, BN: 128, BK: 8, TM: 4, TN: 8 },
];

export interface BenchReport {
  kind: BenchKind; date: string; adapter: Record<string, string>; timing: 'timestamp' | 'wall';
  reducedForCpu: boolean; copy: CopyResult; matmul?: MatmulResult[];
}

export async function runBench(gpu: Gpu, o: BenchOptions): Promise<BenchReport> {
  const cpu = isCpuAdapter(gpu) && !o.full;
  const copy = await benchCopy(gpu, cpu ? 32 : 512);
  o.log(`copy ${fmt(copy.bytes / 2 ** 20)} MiB: ${fmt(copy.gbPerS)} GB/s (read+write), ${fmt(copy.timing.ms, 3)} ms`);
  const report: BenchReport = {
    kind: o.kind, date: new Date().toISOString(), adapter: gpu.adapterInfo, timing: copy.timing.method,
    reducedForCpu: cpu, copy,
  };
  if (o.kind === 'matmul') {
    const squares = o.sizes ?? (cpu ? [256] : [1024, 4096]);
    const tokens = o.tokens ?? (cpu ? 64 : 8192);
    const sweep: MatmulCase[] = o.tileSweep
      ? squares.flatMap((s) => TILE_SWEEP.map((tile) => ({
        name: `square ${s} tile ${tile.BM}x${tile.BN}x${tile.BK}/${tile.TM}x${tile.TN}`, M: s, N: s, K: s, tile })))
      : [];
    const cases: MatmulCase[] = [
      ...sweep,
      ...squares.map((s) => ({ name: `square ${s}`, M: s, N: s, K: s })),
      ...pythiaCases('pythia-160m', tokens), ...pythiaCases('pythia-410m', tokens),
    ];
    if (cpu) o.log(`(CPU adapter: reduced sizes, ${tokens} tokens; --full for the real ones)`);
    report.matmul = [];
    for (const c of cases) {
      const r = await benchMatmul(gpu, c, copy.gbPerS, cpu ? 1 : 2, cpu ? 3 : 7);
      report.matmul.push(r);
      o.log(`${c.name.padEnd(32)} ${`${c.M}x${c.N}x${c.K}`.padEnd(18)} ${fmt(r.gflops).padStart(8)} GFLOP/s ` +
        `${fmt(r.timing.ms, 3).padStart(9)} ms   min traffic ${fmt(r.minTrafficPctOfCopy ?? 0)}% of copy`);
    }
  }
  return report;
}
