import { defineConfig } from 'vitest/config';

// Lavapipe (Mesa's Vulkan on the CPU) compiles a shader about 3x faster for 128-bit vectors than for
// its default 256 (AVX2): most of a cold run (a fresh machine, as CI's, with no Mesa shader cache) is
// spent compiling the matmul and attention variants the suite checks. Measured on the 2-core machine
// (2026-11-28): the suite cold 7:55 against 10:15, warm about the same (5:13 against 5:26). Lanes a
// subgroup go from 8 to 4; test/kernels/smx-platform.test.ts and f16-scale.test.ts keep 256 (8 lanes), so
// the subgroup kernels are checked at both sizes. The forks inherit this; an explicit setting wins. It
// means nothing to a GPU's driver.
process.env.LP_NATIVE_VECTOR_WIDTH ??= '128';

// GPU tests share one software Vulkan device per worker; on a 2-core machine more than two
// workers only add contention (Dawn's event pump polls busily while work is pending).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 2,
  },
});
