import { defineConfig } from 'vitest/config';

// The GPU suite (excluded from the default run by the root vitest.config.ts):
//   npx vitest run --config test/gpu/vitest.config.ts
// Every test skips with the reason when the build has no CUDA or no device is present.
export default defineConfig({
  test: {
    root: new URL('../..', import.meta.url).pathname,
    pool: 'forks',
    include: ['test/gpu/**/*.test.ts'],
    testTimeout: 600_000,
    hookTimeout: 600_000,
    maxWorkers: 1,
  },
});
