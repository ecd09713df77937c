import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hubClientId } from '../contract/index.ts';
import { hashPassword, LEGACY_SCRYPT } from '../cloud/accounts/password-hash.ts';
import { openDatabase, type Database } from '../cloud/db/database.ts';
import { hubSecretForm } from '../cloud/hubs/hub-credentials.ts';
import { ROOT, startTestCloud, testCloudEnv, type TestCloud } from './support/cloud-harness.ts';
import { connect } from './support/mqtt-client.ts';

/**
 * Issue 17, item 3: hub secrets stored as scrypt hashes by an older cloud keep working over MQTT and
 * move to the fast form at their first successful login; after that a reconnect costs no scrypt run.
 * `npm run hub-credentials -- status` shows the operator how many are left. Runs on SQLite, and on
 * PostgreSQL in the suite's second pass (TEST_DATABASE=postgres).
 */
const OLD = 'nomi-terai';
const OLD_WRONG = 'nomi-kokufu';

let t: TestCloud;
let db: Database;
const cli = (...args: string[]) => execFileSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'cloud/hub-credentials-cli.ts'), ...args], {
  cwd: ROOT, env: { ...process.env, ...testCloudEnv(t.dataDir, { DEMO_CREDENTIALS: 'false' }) }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'],
});
const secretOf = async (hub: string) => (await db.sql.one<{ secret: string }>('SELECT secret FROM hub_credentials WHERE hub_id = ?', [hub]))!.secret;
const login = async (hub: string, password = t.credentials[hub]!.password) => {
  const c = await connect(t.cloud.urls.mqtt, { username: hub, password, clientId: hubClientId(hub, 'edge') });
  await c.endAsync();
};

beforeAll(async () => {
  t = await startTestCloud({ MQTT_WS_PORT: 'off' });
  // The same operational database, opened as the CLI does (SQLite's WAL, or the test's PostgreSQL database).
  const config = t.cloud.config;
  db = await openDatabase({ url: config.database.url, dataDir: config.dataDir, synchronous: config.sqliteSync, maxConnections: 2 });
  // Two hubs' secrets as a cloud before issue 17 stored them.
  for (const hub of [OLD, OLD_WRONG]) {
    await db.sql.run('UPDATE hub_credentials SET secret = ? WHERE hub_id = ?', [await hashPassword(t.credentials[hub]!.password, LEGACY_SCRYPT), hub]);
  }
});
afterAll(async () => {
  await db?.close();
  await t?.stop();
});

describe('hub secrets stored as scrypt hashes before issue 17', () => {
  it('`status` counts them and `--list` names them', () => {
    const hubs = Object.keys(t.credentials).length;
    expect(JSON.parse(cli('status'))).toEqual({ hubs, fast: hubs - 2, scrypt: 2, unreadable: 0 });
    expect(JSON.parse(cli('status', '--list'))).toMatchObject({ scrypt: 2, legacyHubs: [OLD_WRONG, OLD].sort() });
    expect(() => cli('status', 'nomi-terai')).toThrow(/usage/);
  });

  it('an old-form secret logs in over MQTT and is re-stored in the fast form; its reconnects then cost no scrypt run', async () => {
    const before = t.cloud.credentials.checks();
    await login(OLD);
    expect(hubSecretForm(await secretOf(OLD))).toBe('fast');
    const after = t.cloud.credentials.checks();
    expect(after.scrypt - before.scrypt).toBe(1);
    expect(after.upgraded - before.upgraded).toBe(1);
    for (let i = 0; i < 5; i++) await login(OLD);
    const reconnected = t.cloud.credentials.checks();
    expect(reconnected.scrypt).toBe(after.scrypt);
    expect(reconnected.fast - after.fast).toBe(5);
    expect(JSON.parse(cli('status', '--list'))).toMatchObject({ scrypt: 1, legacyHubs: [OLD_WRONG] });
  });

  it('a wrong secret is refused for an old-form and a fast-form hub alike (CONNACK 4), and changes neither', async () => {
    const oldSecret = await secretOf(OLD_WRONG);
    const fastSecret = await secretOf(OLD);
    const other = t.credentials['nomi-neagari']!.password; // another hub's valid secret
    await expect(login(OLD_WRONG, other)).rejects.toMatchObject({ code: 4 });
    await expect(login(OLD, other)).rejects.toMatchObject({ code: 4 });
    expect(await secretOf(OLD_WRONG)).toBe(oldSecret);
    expect(await secretOf(OLD)).toBe(fastSecret);
    // `set` on it issues a new secret in the fast form; the old one is refused.
    const cred = JSON.parse(cli('set', OLD_WRONG)) as { password: string };
    expect(hubSecretForm(await secretOf(OLD_WRONG))).toBe('fast');
    await expect(login(OLD_WRONG)).rejects.toMatchObject({ code: 4 });
    await login(OLD_WRONG, cred.password);
    expect(JSON.parse(cli('status'))).toMatchObject({ scrypt: 0, unreadable: 0 });
  });
});
