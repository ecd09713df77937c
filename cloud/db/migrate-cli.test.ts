import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../../test/support/ports.ts';
import { openTestDatabase, SQL_DATABASES, type TestDatabase } from '../../test/support/test-database.ts';
import { SCHEMA } from './schema.ts';

/** `npm run db:migrate` as an operator runs it: the real CLI, the cloud's settings from the environment. */
const CLI = path.join(import.meta.dirname, 'migrate-cli.ts');
const exec = promisify(execFile);

async function migrate(env: Record<string, string>, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await exec(process.execPath, ['--import', 'tsx', CLI, ...args], { env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'silent', ...env } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe.each(SQL_DATABASES)('npm run db:migrate on %s', (kind) => {
  let t: TestDatabase;
  afterEach(async () => t?.cleanup());
  const envOf = (t: TestDatabase): Record<string, string> => (kind === 'sqlite' ? { DATA_DIR: t.where } : { DATA_DIR: '/nonexistent', DATABASE_URL: t.where });
  const withSteps = SCHEMA.filter((f) => f.steps[kind].length > 0);

  it('shows where each feature stands, migrates to the newest, and then has nothing to do', async () => {
    t = await openTestDatabase(kind);
    const status = await migrate(envOf(t), '--status');
    expect(status.code).toBe(0);
    for (const f of withSteps) expect(status.stdout).toMatch(new RegExp(`${f.feature}\\s+0 of ${f.steps[kind].length}\\s+${f.steps[kind].length} step\\(s\\) to apply`));

    const first = await migrate(envOf(t));
    expect(first.code).toBe(0);
    for (const f of withSteps) expect(first.stdout).toMatch(new RegExp(`${f.feature}\\s+0 → ${f.steps[kind].length}\\n`));
    expect(first.stdout).toMatch(/applied \d+ step\(s\)/);

    const again = await migrate(envOf(t));
    expect(again.stdout).toMatch(/nothing to do: the schema is the newest this software knows/);
    expect((await migrate(envOf(t), '--status')).stdout).not.toMatch(/to apply|NEWER/);
  }, 60_000);

  it('refuses, exit code 1, a database a newer release migrated, and changes nothing', async () => {
    t = await openTestDatabase(kind);
    const feature = withSteps[0]!.feature;
    await t.db.sql.exec('CREATE TABLE schema_migrations (feature TEXT PRIMARY KEY, version INTEGER NOT NULL)');
    await t.db.sql.run('INSERT INTO schema_migrations (feature, version) VALUES (?, 999)', [feature]);
    for (const args of [[], ['--status']]) {
      const r = await migrate(envOf(t), ...args);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`db:migrate: database .*: the ${feature} schema is at version 999, newer than this software knows`));
      expect(r.stdout).toMatch(new RegExp(`${feature}\\s+999 of \\d+\\s+NEWER than this software`));
    }
    expect(await t.db.sql.query('SELECT feature, version FROM schema_migrations')).toEqual([{ feature, version: 999 }]);
  }, 60_000);
});

describe('npm run db:migrate', () => {
  it('says which database it cannot reach (without its password), exit code 1', async () => {
    const port = await freePort();
    const r = await migrate({ DATABASE_URL: `postgres://chiiki:not-for-logs@127.0.0.1:${port}/cloud` });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`db:migrate: cannot reach the database postgres://chiiki:***@127.0.0.1:${port}/cloud (DATABASE_URL): connect ECONNREFUSED`);
    expect(r.stderr).not.toContain('not-for-logs');
  });

  it('says which SQLite file it cannot open, exit code 1', async () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'chiiki-migrate-')), 'not-a-dir');
    fs.writeFileSync(file, '');
    const r = await migrate({ DATA_DIR: file });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`db:migrate: cannot reach the database ${file}/cloud.db (DATA_DIR): EEXIST`);
    fs.rmSync(path.dirname(file), { recursive: true });
  });

  it('refuses an unknown argument with its usage, exit code 2', async () => {
    const r = await migrate({ DATA_DIR: '/nonexistent' }, '--stauts');
    expect(r).toMatchObject({ code: 2, stderr: expect.stringContaining('usage: npm run db:migrate [-- --status]') });
  });
});
