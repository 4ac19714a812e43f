// The self-check (matmul-selfcheck.ts) with a tiling whose kernels the adapter refuses: a finding for
// that tiling, no device error, and the other tilings checked as usual.
import { describe, expect, it, vi } from 'vitest';
import { getGpu } from '../helpers/gpu.js';
import { runTilings } from '../../src/kernels/matmul-selfcheck.js';
import { SIMPLE_64, type MatmulTile } from '../../src/kernels/matmul.js';

// The 64x128 register tiling's WGSL broken on purpose (a type error), as a driver might refuse a kernel.
vi.mock('../../src/kernels/matmul-simt.js', async (importOriginal) => {
  const mod = await importOriginal<typeof import('../../src/kernels/matmul-simt.js')>();
  const regDef: typeof mod.regDef = (t, ...rest) => {
    const def = mod.regDef(t, ...rest);
    return t.BM === 64 && t.BN === 128 ? { ...def, code: `${def.code}\nconst broken: u32 = 1.5;` } : def;
  };
  return { ...mod, regDef };
});

describe('tensor-core matmul self-check, a refused tiling', () => {
  it('is a finding of that tiling alone; no device error', async () => {
    const gpu = await getGpu();
    const broken: MatmulTile = { BM: 64, BN: 128, BK: 16, TM: 4, TN: 8, kind: 'reg' };
    const found = await runTilings(gpu, [broken, SIMPLE_64], [], (c) => !c.copies && !c.causal);
    expect(found.get(SIMPLE_64)).toEqual({ plain: [], split: [] });
    const bad = found.get(broken)!;
    expect(bad.plain.length).toBeGreaterThan(0);
    for (const w of bad.plain) expect(w).toMatch(/^the adapter refused matmul_reg_.*64x128/);
    gpu.check('after the refused kernels');
  });
});
