import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['{engine,gateway,actors,analytics,protos,bench,scripts,console/src,console/e2e}/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Integration tests start real servers and worker threads; two cores: keep parallelism modest.
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
  },
});
