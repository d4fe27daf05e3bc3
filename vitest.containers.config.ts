import { defineConfig } from 'vitest/config';

/**
 * The container tests: Warren's images built with podman from the Dockerfiles, a study's images
 * built FROM them, run as the rendered pod templates say. Alone, after the other suites: the
 * builds take the machine's cores for a few minutes.
 */
export default defineConfig({
  test: {
    include: ['test/containers/**/*.test.ts'],
    globalSetup: ['test/globalSetup.ts'],
    testTimeout: 900_000,
    hookTimeout: 1_200_000,
    pool: 'forks',
    maxWorkers: 1,
  },
});
