import { defineConfig } from 'vitest/config';

// Tests run in forked processes (real servers, real files, node:sqlite); two workers match the
// two cores of the development and CI machines.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/setup/fuzz-seed.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
