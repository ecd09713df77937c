import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { topics, type LockerEvent } from '../contract/index.ts';
import { ROOT, authedFetch, startTestCloud, tempDir, type TestCloud } from './support/cloud-harness.ts';
import { connect } from './support/mqtt-client.ts';
import { waitFor } from './support/ports.ts';
import { freshPostgresUrl } from './support/test-database.ts';

/**
 * Issue 14, item 4 and "Done when": an installation that ran on the embedded SQLite moves to
 * PostgreSQL with `npm run db:copy`, and a cloud started on the copy shows, through the API, the
 * state people made on the old one — accounts that sign in with their passwords, API tokens, the
 * disaster-mode history, an acknowledged alarm, orders with their audit trail — and carries on from
 * it (new mode versions, orders and audit entries take new ids, not copied ones).
 */
const REGION = 'ishikawa-nomi';
const HUB = 'nomi-terai';
const run = promisify(execFile);
const cleanups: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

type Json = Record<string, any>;
async function call(base: string, token: string, method: string, p: string, body?: unknown): Promise<{ status: number; body: Json }> {
  const res = await authedFetch(base, token, p, {
    method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Json };
}
const login = (base: string, username: string, password: string) =>
  fetch(`${base}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password }) });

/** The first event of each kind on the consoles' live feed. */
async function readFeed(base: string, token: string, kinds: string[]): Promise<Record<string, unknown>> {
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(), 10_000);
  const res = await authedFetch(base, token, '/api/v1/events', { signal: stop.signal });
  expect(res.status).toBe(200);
  const seen: Record<string, unknown> = {};
  const decoder = new TextDecoder();
  let text = '';
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      text += decoder.decode(chunk, { stream: true });
      for (const m of text.matchAll(/event: (\w+)\ndata: (.*)\n\n/g)) if (!(m[1]! in seen)) seen[m[1]!] = JSON.parse(m[2]!);
      if (kinds.every((k) => k in seen)) break;
    }
  } finally {
    clearTimeout(timer);
    stop.abort();
  }
  return seen;
}

describe('moving a SQLite installation to PostgreSQL (npm run db:copy)', () => {
  it('copies a real cloud\'s state, and a cloud on the copy shows it through the API and carries on from it', async () => {
    const dataDir = tempDir('db-copy');
    cleanups.push(() => fs.rmSync(dataDir, { recursive: true, force: true }));

    // ---- the old installation: embedded SQLite (even in the PostgreSQL pass of the suite)
    const old: TestCloud = await startTestCloud({ DATABASE_URL: '' }, dataDir);
    let oldOpen = true;
    cleanups.push(async () => {
      if (oldOpen) await old.cloud.close();
    });
    const a = old.cloud.urls.http;
    const api = (method: string, p: string, body?: unknown) => call(a, old.token, method, p, body);

    const tanaka = await api('POST', '/api/v1/accounts', { username: 'tanaka', role: 'staff', hubs: [HUB], displayName: '田中 (寺井)' });
    expect(tanaka.status).toBe(201);
    const tanakaPassword = tanaka.body.password as string;
    const coordinatorToken = await old.tokenFor('bousai-nomi', 'coordinator');

    const switched = await call(a, coordinatorToken, 'POST', `/api/v1/regions/${REGION}/mode`, { mode: 'emergency', reason: '震度6強 — relief operations start' });
    expect(switched.status).toBe(202);
    const backToNormal = await call(a, coordinatorToken, 'POST', `/api/v1/regions/${REGION}/mode`, { mode: 'normal', reason: 'relief operations over', hubs: [HUB] });
    expect(backToNormal.status).toBe(202);
    const modeBefore = (await api('GET', `/api/v1/regions/${REGION}/mode`)).body;
    const historyBefore = (await api('GET', `/api/v1/regions/${REGION}/mode/history`)).body.entries as Json[];
    expect(historyBefore.length).toBeGreaterThanOrEqual(2);

    const cred = old.credentials[HUB]!;
    const hub = await connect(old.cloud.urls.mqtt, { username: cred.username, password: cred.password, clientId: `${HUB}.copy-test` });
    const event: LockerEvent = {
      v: 1, type: 'locker.event', id: 'locker-a-boot1-000901', ts: Date.now(), hub: HUB, device: 'locker-a',
      event: 'door_open_too_long', severity: 'warning', compartment: 'A03', detail: '扉が180秒開いています',
    };
    await hub.publishAsync(topics.device(REGION, HUB, 'locker', 'locker-a', 'event'), JSON.stringify(event), { qos: 1 });
    await hub.endAsync();
    const alarm = await waitFor('the alarm', async () => {
      const list = (await api('GET', `/api/v1/alarms?hub=${HUB}&kind=door_open_too_long`)).body.alarms as Json[];
      return list[0];
    });
    expect((await api('POST', `/api/v1/alarms/${alarm.id}/ack`, { note: '向かいます' })).status).toBe(200);
    const alarmBefore = (await api('GET', `/api/v1/alarms/${alarm.id}`)).body;

    const orderIds: string[] = [];
    for (const [priority, weightKg] of [['medical', 1.5], ['normal', 0.8], ['relief', 3]] as const) {
      const o = await api('POST', '/api/v1/orders', { originHub: 'rs-komatsu-kibagata', destination: { type: 'locker', hub: 'nomi-kokufu' }, weightKg, priority, reference: `copy-${priority}` });
      expect(o.status).toBe(201);
      orderIds.push(o.body.id as string);
    }
    expect((await api('POST', `/api/v1/orders/${orderIds[1]}/cancel`, { reason: 'ordered twice' })).status).toBe(200);
    const ordersBefore = await Promise.all(orderIds.map(async (id) => (await api('GET', `/api/v1/orders/${id}`)).body));

    await old.cloud.close();
    oldOpen = false;

    // ---- the copy: the operator's command, into an empty PostgreSQL database
    const url = await freshPostgresUrl();
    const copied = await run(process.execPath, ['--import', 'tsx', path.join(ROOT, 'cloud/db/copy-sqlite-to-postgres-cli.ts'), '--from', dataDir, '--to', url], { cwd: ROOT });
    const out = copied.stdout;
    expect(out).toMatch(/accounts\s+\d+ rows/);
    expect(Number(/orders\s+(\d+) rows/.exec(out)?.[1])).toBe(3);
    expect(Number(/mode_versions\s+(\d+) rows/.exec(out)?.[1])).toBeGreaterThanOrEqual(2);
    expect(Number(/alarms\s+(\d+) rows/.exec(out)?.[1])).toBeGreaterThanOrEqual(1);
    expect(out).toMatch(/row counts verified and committed/);
    // A second copy into the same database is refused: it holds state now.
    const again = await run(process.execPath, ['--import', 'tsx', path.join(ROOT, 'cloud/db/copy-sqlite-to-postgres-cli.ts'), '--from', dataDir, '--to', url], { cwd: ROOT }).catch((e: { code: number; stderr: string }) => e);
    expect(again).toMatchObject({ code: 1, stderr: expect.stringMatching(/already holds operational state .*--force/) });

    // ---- the new installation: the same DATA_DIR, DATABASE_URL on the copy
    const moved = await startTestCloud({ DATABASE_URL: url }, dataDir);
    cleanups.push(() => moved.cloud.close());
    const b = moved.cloud.urls.http;
    // The old cloud's API token and coordinator token are valid here: token hashes moved with the accounts.
    const apiB = (method: string, p: string, body?: unknown) => call(b, old.token, method, p, body);
    expect((await apiB('GET', '/api/v1/auth/me')).body).toMatchObject({ account: { username: 'test-admin', role: 'admin' } });

    const signIn = await login(b, 'tanaka', tanakaPassword);
    expect(signIn.status).toBe(200);
    expect((await (await fetch(`${b}/api/v1/auth/me`, { headers: { cookie: signIn.headers.get('set-cookie')!.split(';')[0]! } })).json())).toMatchObject({ account: { username: 'tanaka', role: 'staff', hubs: [HUB], displayName: '田中 (寺井)' } });
    expect((await login(b, 'tanaka', 'not-the-password')).status).toBe(401);

    const modeAfter = (await apiB('GET', `/api/v1/regions/${REGION}/mode`)).body;
    expect(modeAfter.desired).toEqual(modeBefore.desired);
    expect((await apiB('GET', `/api/v1/regions/${REGION}/mode/history`)).body.entries).toEqual(historyBefore);

    expect((await apiB('GET', `/api/v1/alarms/${alarm.id}`)).body).toEqual(alarmBefore);
    expect(alarmBefore).toMatchObject({ state: 'acknowledged', acknowledgedBy: 'test-admin', ackNote: '向かいます' });

    for (const before of ordersBefore) {
      const after = (await apiB('GET', `/api/v1/orders/${before.id}`)).body;
      expect({ id: after.id, state: after.state, reference: after.reference, audit: after.audit, priority: after.priority })
        .toEqual({ id: before.id, state: before.state, reference: before.reference, audit: before.audit, priority: before.priority });
    }
    expect(ordersBefore[1]!.state).toBe('cancelled');

    // What the consoles are fed (GET /api/v1/events, as the coordinator console opens it): the mode and the orders from before the move.
    const feed = await readFeed(b, coordinatorToken, ['mode', 'orders']);
    expect(feed.mode).toMatchObject({ region: REGION, desired: modeBefore.desired });
    expect((feed.orders as Json).orders.map((o: Json) => o.id)).toEqual(expect.arrayContaining(orderIds));

    // ---- and it carries on: a new version, a new audit entry, a new order (identity columns past the copied ids)
    const next = await call(b, coordinatorToken, 'POST', `/api/v1/regions/${REGION}/mode`, { mode: 'normal', reason: 'all clear' });
    expect(next.status).toBe(202);
    expect(next.body.version).toBe(modeBefore.desired.version + 1);
    expect((await apiB('GET', `/api/v1/regions/${REGION}/mode/history`)).body.entries).toHaveLength(historyBefore.length + 1);
    const newOrder = await apiB('POST', '/api/v1/orders', { originHub: 'rs-komatsu-kibagata', destination: { type: 'locker', hub: 'nomi-kokufu' }, weightKg: 1, reference: 'after-copy' });
    expect(newOrder.status).toBe(201);
    expect((await apiB('POST', `/api/v1/orders/${newOrder.body.id}/cancel`, { reason: 'test' })).status).toBe(200);
    const audit = await apiB('GET', '/api/v1/audit?limit=5');
    expect(audit.status).toBe(200);
  }, 120_000);
});
