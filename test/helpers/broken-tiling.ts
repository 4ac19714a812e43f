// A register tiling whose kernels an adapter refuses: for tests of what srk does with a kernel the
// driver cannot build. Used as
//   vi.mock('../../src/kernels/matmul-simt.js', async (importOriginal) =>
//     (await import('../helpers/broken-tiling.js')).withBrokenRegTiling(await importOriginal()));
import type * as Simt from '../../src/kernels/matmul-simt.js';
import type { MatmulTile } from '../../src/kernels/matmul-shared.js';

/** The tiling broken: reg 64x128 (BK 16, 4x8 a thread), one of the f32 tuner candidates. */
export const BROKEN_TILING: MatmulTile = { BM: 64, BN: 128, BK: 16, TM: 4, TN: 8, kind: 'reg' };

/** The module with the 64x128 register tiling's WGSL broken on purpose (a type error). */
export function withBrokenRegTiling(mod: typeof Simt): typeof Simt {
  const regDef: typeof mod.regDef = (t, ...rest) => {
    const def = mod.regDef(t, ...rest);
    return t.BM === 64 && t.BN === 128 ? { ...def, code: `${def.code}\nconst broken: u32 = 1.5;` } : def;
  };
  return { ...mod, regDef };
}
