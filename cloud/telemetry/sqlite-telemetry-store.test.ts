import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSqliteTelemetryStore, readFieldStrings } from './sqlite-telemetry-store.ts';
import { describeTelemetryStoreContract } from './telemetry-store.contract.ts';
import { TelemetryStoreError, type TelemetryPoint } from './telemetry-store.ts';

describeTelemetryStoreContract('sqlite', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'telemetry-sqlite-'));
  const file = path.join(dir, 'telemetry.db');
  const store = await createSqliteTelemetryStore({ path: file, synchronous: 'normal' });
  return {
    store,
    readStrings: (q) => readFieldStrings(file, q),
    cleanup: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describe('SQLite telemetry store', () => {
  let dir: string;
  const T0 = 1_764_000_000_000;
  const drone = (ts: number, msgId: string, pct: number): TelemetryPoint => ({
    measurement: 'drone', tags: { region: 'r', hub: 'h1', device: 'drone-1' }, fields: { msg_id: msgId, battery_pct: pct }, ts, msgId,
  });

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'telemetry-sqlite-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps what was written across close and reopen (synchronous=full), creating the directory', async () => {
    const file = path.join(dir, 'nested', 'telemetry.db');
    const first = await createSqliteTelemetryStore({ path: file, synchronous: 'full' });
    await first.write([drone(T0, 'm-1', 50), drone(T0 + 1_000, 'm-2', 40)]);
    await first.close();
    const again = await createSqliteTelemetryStore({ path: file, synchronous: 'full' });
    expect(await again.countPoints('drone', 'h1', T0, T0 + 60_000)).toBe(2);
    await again.close();
    const db = new Database(file, { readonly: true });
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    db.close();
  });

  it('dedupes a re-sent message by (hub, device, message id), even if the device re-stamped it', async () => {
    const store = await createSqliteTelemetryStore({ path: path.join(dir, 't.db') });
    await store.write([drone(T0, 'm-1', 50)]);
    await store.write([drone(T0 + 5_000, 'm-1', 50)]);
    expect(await store.countPoints('drone', 'h1', T0, T0 + 60_000)).toBe(1);
    await store.close();
  });

  it('keeps the same message id from two devices of one hub apart (issue 11: one device cannot use up another\'s ids)', async () => {
    const store = await createSqliteTelemetryStore({ path: path.join(dir, 't.db') });
    const other = { ...drone(T0, 'm-1', 60), tags: { region: 'r', hub: 'h1', device: 'drone-2' } };
    await store.write([drone(T0, 'm-1', 50), other]);
    await store.write([other]);
    expect(await store.countPoints('drone', 'h1', T0, T0 + 60_000)).toBe(2);
    await store.close();
  });

  it('migrates a version 1 database (dedupe key without the device) keeping every point', async () => {
    const file = path.join(dir, 't.db');
    const old = new Database(file);
    old.exec(`CREATE TABLE points (ts INTEGER NOT NULL, measurement TEXT NOT NULL, region TEXT NOT NULL, hub TEXT NOT NULL, device TEXT NOT NULL,
                part TEXT NOT NULL, tags TEXT NOT NULL, fields TEXT NOT NULL, msg_id TEXT NOT NULL, UNIQUE (hub, msg_id, measurement, part)) STRICT;
              CREATE INDEX points_series_ts ON points (hub, device, measurement, ts);`);
    const row = old.prepare('INSERT INTO points VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)');
    for (let i = 0; i < 3; i++) row.run(T0 + i, 'drone', 'r', 'h1', 'drone-1', '', '{"region":"r","hub":"h1","device":"drone-1"}', `{"msg_id":"old-${i}","battery_pct":50}`, `old-${i}`);
    old.pragma('user_version = 1');
    old.close();
    const store = await createSqliteTelemetryStore({ path: file });
    expect(await store.countPoints('drone', 'h1', T0, T0 + 60_000)).toBe(3);
    await store.write([drone(T0, 'old-0', 50), { ...drone(T0, 'old-0', 50), tags: { region: 'r', hub: 'h1', device: 'drone-2' } }]);
    expect(await store.countPoints('drone', 'h1', T0, T0 + 60_000)).toBe(4); // the re-sent copy is still a copy; another device's is not
    await store.close();
    const db = new Database(file, { readonly: true });
    expect(db.pragma('user_version', { simple: true })).toBe(2);
    expect(db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'points_series_ts'").get()).toEqual({ n: 1 });
    db.close();
  });

  it('refuses points it cannot store faithfully, as a non-retryable error', async () => {
    const store = await createSqliteTelemetryStore({ path: path.join(dir, 't.db') });
    const bad = { ...drone(T0, 'm-1', 1), fields: { msg_id: 'm-1', battery_pct: Number.NaN } };
    const err = await store.write([bad]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TelemetryStoreError);
    expect((err as TelemetryStoreError).code).toBe('rejected');
    expect((err as TelemetryStoreError).retryable).toBe(false);
    expect((err as Error).message).toContain('battery_pct');
    await store.close();
  });

  it('says which file it cannot open', async () => {
    const blocker = path.join(dir, 'file');
    await (await import('node:fs/promises')).writeFile(blocker, 'x');
    const err = await createSqliteTelemetryStore({ path: path.join(blocker, 'telemetry.db') }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TelemetryStoreError);
    expect((err as TelemetryStoreError).code).toBe('config');
    expect((err as Error).message).toContain(path.join(blocker, 'telemetry.db'));
  });
});
