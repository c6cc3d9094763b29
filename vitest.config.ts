import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    // Each file gets its own database clone, so files run in parallel safely.
    pool: 'forks',
    testTimeout: 30_000,
    // expect.poll waits on events that cross processes, Redis or PostgreSQL; on a busy
    // machine that can take longer than vitest's 1 s default, and a passing poll is no slower.
    expect: { poll: { timeout: 10_000 } },
    hookTimeout: 60_000,
  },
});
