import { defineConfig } from 'vitest/config';

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
