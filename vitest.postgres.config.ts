import fs from 'node:fs';
import path from 'node:path';
import { defineConfig } from 'vitest/config';
import base from './vitest.config.ts';

/**
 * `npm run test:postgres` (issue 14, "Done when"): the system tests again, with every test cloud's
 * operational state in PostgreSQL (TEST_DATABASE=postgres: test/support/cloud-harness.ts gives each
 * cloud its own database in the run's throw-away cluster). Taken: every test/ file that starts a cloud
 * through the harness. Left out: the browser tests — what they check is the consoles' rendering,
 * and the state they render comes through the API the other system tests exercise on PostgreSQL —
 * and files that start no cloud (nothing in them depends on the database). The unit and contract
 * suites already run every store on both databases in the first pass. Cluster tests (issue 15: their
 * nodes set REDIS_URL) run on PostgreSQL already in the first pass and are not repeated; nor are files marked
 * SAME_ON_BOTH.
 */
const root = import.meta.dirname;
/**
 * A file that starts a cloud only to drive it from outside, where nothing it checks depends on the
 * operational database (e.g. the drill against `npm start`, which runs on the demo's own SQLite either
 * way), says so with this marker and is not repeated.
 */
const SAME_ON_BOTH = 'test:postgres — not repeated';
const startsACloud = /\b(testCloudEnv|startTestCloud|spawnCloud)\(/;
const files = fs
  .readdirSync(path.join(root, 'test'))
  .filter((f) => f.endsWith('.test.ts') && !f.endsWith('.browser.test.ts'))
  .filter((f) => {
    const text = fs.readFileSync(path.join(root, 'test', f), 'utf8');
    return startsACloud.test(text) && !text.includes('REDIS_URL') && !text.includes('cluster-harness') && !text.includes(SAME_ON_BOTH);
  })
  .map((f) => `test/${f}`);

export default defineConfig({ ...base, test: { ...base.test, include: files } });
