import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openPostgresDatabase, openSqliteDatabase } from '../cloud/db/database.ts';
import { ROOT, spawnCloud, tempDir, testCloudEnv } from './support/cloud-harness.ts';
import { freePort } from './support/ports.ts';
import { freshPostgresUrl } from './support/test-database.ts';

/** The cloud process as an operator starts and stops it. */
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

function runCloud(env: Record<string, string>): Promise<{ code: number | null; stderr: string; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'cloud/main.ts')], { cwd: ROOT, env: { ...process.env, ...env } });
    let stderr = '';
    let stdout = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.stdout.on('data', (d) => (stdout += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr, stdout });
    });
  });
}

describe('cloud process', () => {
  it('stops at start-up on a bad setting, naming the variable', async () => {
    const dir = tempDir('cfg');
    dirs.push(dir);
    const r = await runCloud(testCloudEnv(dir, { HTTP_PORT: 'eighty', SQLITE_SYNC: 'sometimes' }));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/HTTP_PORT="eighty"/);
    expect(r.stderr).toMatch(/SQLITE_SYNC="sometimes"/);
  });

  it('stops with a clear message when INFLUX_URL points at nothing', async () => {
    const dir = tempDir('cfg');
    dirs.push(dir);
    const port = await freePort();
    const r = await runCloud(testCloudEnv(dir, { INFLUX_URL: `http://127.0.0.1:${port}`, LOG_LEVEL: 'error' }));
    expect(r.code).toBe(1);
    expect(r.stdout + r.stderr).toContain(`127.0.0.1:${port}`);
    expect(r.stdout + r.stderr).toMatch(/unreachable|cannot reach|ECONNREFUSED/i);
  });

  // Issue 14, item 4: the operational database decides whether the cloud can run at all.
  it('stops with a clear message when the database of DATABASE_URL cannot be reached, without showing its password', async () => {
    const dir = tempDir('cfg');
    dirs.push(dir);
    const port = await freePort();
    const r = await runCloud(testCloudEnv(dir, { DATABASE_URL: `postgres://chiiki:not-for-logs@127.0.0.1:${port}/cloud`, LOG_LEVEL: 'error' }));
    expect(r.code).toBe(1);
    expect(r.stdout + r.stderr).toContain(`cannot reach the database postgres://chiiki:***@127.0.0.1:${port}/cloud (DATABASE_URL)`);
    expect(r.stdout + r.stderr).toMatch(/ECONNREFUSED/);
    expect(r.stdout + r.stderr).not.toContain('not-for-logs');
  });

  it.each(['sqlite', 'postgres'] as const)('refuses a %s database a newer release has migrated, naming the feature, and changes nothing in it', async (kind) => {
    const dir = tempDir('cfg');
    dirs.push(dir);
    const url = kind === 'postgres' ? await freshPostgresUrl() : '';
    const db = kind === 'postgres' ? await openPostgresDatabase(url) : openSqliteDatabase(path.join(dir, 'cloud.db'));
    const tables = async () => (await db.sql.query<{ n: number }>(
      kind === 'postgres' ? "SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'public'" : "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table'",
    ))[0]!.n;
    try {
      await db.sql.exec('CREATE TABLE IF NOT EXISTS schema_migrations (feature TEXT PRIMARY KEY, version INTEGER NOT NULL)');
      await db.sql.run("INSERT INTO schema_migrations (feature, version) VALUES ('accounts', 999)");
      const before = await tables();
      const r = await runCloud(testCloudEnv(dir, { DATABASE_URL: url, LOG_LEVEL: 'error' }));
      expect(r.code).toBe(1);
      expect(r.stdout + r.stderr).toMatch(/the accounts schema is at version 999, newer than this software knows \(\d+\); upgrade the software/);
      expect(await tables()).toBe(before);
    } finally {
      await db.close();
    }
  });

  it('shuts down cleanly on SIGTERM and writes demo credentials with mode 0600', async () => {
    const dir = tempDir('cfg');
    dirs.push(dir);
    const proc = await spawnCloud(testCloudEnv(dir));
    const creds = path.join(dir, 'credentials.json');
    expect(fs.statSync(creds).mode & 0o777).toBe(0o600);
    const hubs = JSON.parse(fs.readFileSync(creds, 'utf8'));
    expect(Object.keys(hubs).length).toBeGreaterThanOrEqual(8);
    expect(Object.values(hubs)[0]).toEqual({ username: expect.any(String), password: expect.any(String) });
    const started = Date.now();
    expect(await proc.kill('SIGTERM')).toBe(0);
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});
