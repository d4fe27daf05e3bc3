import { defineConfig } from 'vitest/config';

/**
 * `npm run test:faults`: the slower suite that breaks things on purpose (workers killed, the
 * broker restarted, poison and OOM tasks, consumer timeouts, bad input) and ends by printing
 * what it did and what was lost (nothing).
 */
export default defineConfig({
  test: {
    include: ['test/faults/**/*.test.ts'],
    globalSetup: ['test/faults/globalSetup.ts'],
    testTimeout: 180_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 2,
  },
});
