import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['contract/**/*.test.ts', 'shared/**/*.test.ts', 'cloud/**/*.test.ts', 'edge/**/*.test.ts', 'simulators/**/*.test.ts', 'planning/**/*.test.ts', 'scripts/**/*.test.ts', 'bench/lib/**/*.test.ts', 'test/**/*.test.ts'],
    // One throw-away PostgreSQL cluster for the run (issue 14); tests make their own databases in it.
    globalSetup: ['./test/support/postgres-global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // System tests start real servers (influxd, mosquitto, the cloud); keep the 2-core machine from thrashing.
    maxWorkers: 2,
    reporters: ['default', './test/support/summary-reporter.ts'],
  },
});
