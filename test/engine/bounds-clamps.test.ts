// WebGPU's robustness transform clamps every runtime index into workgroup memory unless Dawn's
// integer range analysis (on in srk for GPUs, src/engine/gpu.ts; asked for here on lavapipe) proves it
// in range. The f32 register matmul's
// indices are written so it can (src/kernels/matmul-simt.ts: the stage as `t % 2u`, `1u - cur`):
// checked here in the SPIR-V Dawn generates (its dump_shaders toggle), so a rewrite that brings the
// clamps back into the inner loop fails a test rather than only a GPU run's throughput.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(__dirname, '..', '..');

/** Clamps (SPIR-V UMin) in the register matmul's module, from a bench run with Dawn's shader dump. */
function regMatmulClamps(toggles: string): number {
  const r = spawnSync(process.execPath, [join(root, 'bin', 'srk.js'), 'bench', 'matmul', '--sizes', '64', '--only', 'square'], {
    cwd: root, encoding: 'utf8', timeout: 120_000,
    env: { ...process.env, SRK_MATMUL: 'reg', SRK_DAWN_TOGGLES: toggles },
  });
  expect(r.status, r.stderr).toBe(0);
  const modules = `${r.stdout}\n${r.stderr}`.split('// Dumped WGSL:').slice(1);
  const reg = modules.filter((m) => m.includes('acc0_0') && m.includes('var<workgroup> As: array<vec4<f32>'));
  expect(reg.length, 'the register matmul among the dumped modules').toBeGreaterThan(0);
  return reg.reduce((n, m) => n + (m.match(/\bUMin\b/g)?.length ?? 0), 0);
}

describe('bounds clamps in the f32 register matmul', () => {
  it('none with the integer range analysis (srk\'s default on GPUs), many without it', () => {
    expect(regMatmulClamps('dump_shaders,enable_integer_range_analysis_in_robustness')).toBe(0);
    expect(regMatmulClamps('dump_shaders')).toBeGreaterThan(20);
  }, 120_000);
});
