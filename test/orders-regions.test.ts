import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authedFetch, ROOT, startTestCloud, tempDir, type TestCloud } from './support/cloud-harness.ts';

/**
 * Issue 14, item 3: one cloud serving two regions (ishikawa-nomi and ishikawa-kanazawa from REGIONS_DIR).
 * Every order belongs to the region of its hubs; a coordinator of one region sees, creates and acts
 * on that region's orders only; admin and a coordinator of every region see both.
 */
const CONFIG = path.join(ROOT, 'config/regions');
const regionsDir = tempDir('orders-regions');
let t: TestCloud;
let nomiOrder: string;
let kanazawaOrder: string;

const order = (originHub: string, dest: string) => ({ originHub, destination: { type: 'locker', hub: dest }, weightKg: 1 });
const call = async (token: string, p: string, body?: unknown) => {
  const res = await authedFetch(t.cloud.urls.http, token, p, body ? { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {});
  return { status: res.status, body: (await res.json()) as Record<string, unknown> & { error?: { code: string } } };
};

beforeAll(async () => {
  for (const f of ['ishikawa-nomi.json', 'ishikawa-nomi.geography.json', 'ishikawa-kanazawa.json']) fs.copyFileSync(path.join(CONFIG, f), path.join(regionsDir, f));
  t = await startTestCloud({ MQTT_WS_PORT: 'off', REGIONS_DIR: regionsDir });
  nomiOrder = (await call(t.token, '/api/v1/orders', order('rs-komatsu-kibagata', 'nomi-kokufu'))).body.id as string;
  kanazawaOrder = (await call(t.token, '/api/v1/orders', order('kanazawa-nonoichi', 'kanazawa-tsubata'))).body.id as string;
}, 30_000);

afterAll(async () => {
  await t?.stop();
  fs.rmSync(regionsDir, { recursive: true, force: true });
});

describe('orders in a cloud of two regions', () => {
  it('each order belongs to its hubs\' region; a destination in the other region is refused', async () => {
    expect((await call(t.token, `/api/v1/orders/${nomiOrder}`)).body.region).toBe('ishikawa-nomi');
    expect((await call(t.token, `/api/v1/orders/${kanazawaOrder}`)).body.region).toBe('ishikawa-kanazawa');
    expect(await call(t.token, '/api/v1/orders', order('rs-komatsu-kibagata', 'kanazawa-tsubata'))).toMatchObject({ status: 400, body: { error: { code: 'unknown_destination' } } });
  });

  it('a coordinator of one region lists, reads, creates and cancels that region\'s orders only; one of every region sees both', async () => {
    const kanazawa = await t.tokenFor('coordinator-kanazawa', 'coordinator', [], ['ishikawa-kanazawa']);
    const ids = async (token: string) => ((await call(token, '/api/v1/orders')).body.orders as { id: string }[]).map((o) => o.id);
    expect(await ids(kanazawa)).toEqual([kanazawaOrder]);
    expect((await call(kanazawa, `/api/v1/orders/${kanazawaOrder}`)).status).toBe(200);
    expect(await call(kanazawa, `/api/v1/orders/${nomiOrder}`)).toMatchObject({ status: 403, body: { error: { code: 'region_not_allowed' } } });
    expect(await call(kanazawa, `/api/v1/orders/${nomiOrder}/cancel`, { reason: 'not mine' })).toMatchObject({ status: 403, body: { error: { code: 'region_not_allowed' } } });
    expect(await call(kanazawa, '/api/v1/orders', order('rs-komatsu-kibagata', 'nomi-kokufu'))).toMatchObject({ status: 403, body: { error: { code: 'region_not_allowed' } } });
    const mine = await call(kanazawa, '/api/v1/orders', order('kanazawa-morimoto', 'kanazawa-uchinada'));
    expect(mine).toMatchObject({ status: 201, body: { region: 'ishikawa-kanazawa' } });
    expect((await call(kanazawa, `/api/v1/orders/${mine.body.id as string}/cancel`, { reason: 'test' })).status).toBe(200);
    expect((await call(t.token, `/api/v1/orders/${nomiOrder}`)).body.state).not.toBe('cancelled');

    const everywhere = await t.tokenFor('coordinator-all', 'coordinator', [], null);
    expect(new Set(await ids(everywhere))).toEqual(new Set([nomiOrder, kanazawaOrder, mine.body.id]));
    expect(new Set(await ids(t.token))).toEqual(new Set([nomiOrder, kanazawaOrder, mine.body.id]));
  });
});
