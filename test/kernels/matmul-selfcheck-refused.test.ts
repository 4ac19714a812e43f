// The self-check (matmul-selfcheck.ts) with a tiling whose kernels the adapter refuses: a finding for
// that tiling, no device error, and the other tilings checked as usual.
import { describe, expect, it, vi } from 'vitest';
import { getGpu } from '../helpers/gpu.js';
import { runTilings } from '../../src/kernels/matmul-selfcheck.js';
import { SIMPLE_64 } from '../../src/kernels/matmul.js';
import { BROKEN_TILING } from '../helpers/broken-tiling.js';

// The 64x128 register tiling's WGSL broken on purpose (helpers/broken-tiling.ts), as a driver might refuse a kernel.
vi.mock('../../src/kernels/matmul-simt.js', async (importOriginal) =>
  (await import('../helpers/broken-tiling.js')).withBrokenRegTiling(await importOriginal()));

describe('tensor-core matmul self-check, a refused tiling', () => {
  it('is a finding of that tiling alone; no device error', async () => {
    const gpu = await getGpu();
    const broken = BROKEN_TILING;
    const found = await runTilings(gpu, [broken, SIMPLE_64], [], (c) => !c.copies && !c.causal);
    expect(found.get(SIMPLE_64)).toEqual({ plain: [], split: [] });
    const bad = found.get(broken)!;
    expect(bad.plain.length).toBeGreaterThan(0);
    for (const w of bad.plain) expect(w).toMatch(/^the adapter refused matmul_reg_.*64x128/);
    gpu.check('after the refused kernels');
  });
});
