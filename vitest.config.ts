import { defineConfig } from 'vitest/config';

// Native code runs in forked child processes (never worker threads): a crash in
// the addon then fails one test file instead of taking the runner down.
export default defineConfig({
  test: {
    pool: 'forks',
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    exclude: ['test/gpu/**', 'node_modules/**'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    maxWorkers: 2,
  },
});
