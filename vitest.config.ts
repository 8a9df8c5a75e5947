import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Most files wait on child processes and timers: two at once halve the wall time on 2 cores.
    maxWorkers: 2,
    minWorkers: 2,
    reporters: ['default'],
  },
});
