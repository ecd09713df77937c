import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authedFetch, startTestCloud, type TestCloud } from './support/cloud-harness.ts';

/**
 * Issue 12, defect 2, against the real cloud: orders on a ground round (貨客混載). nomi-kokufu has no
 * drone, so an order from it to nomi-wake goes on the Nomi bus (50 kg a departure). The bus has no
 * device of ours: staff of the order's hubs record "loaded" and "delivered" (or "failed") through
 * `POST /api/v1/orders/:orderId/ground-round`, which is default-deny like every route.
 * (The round's end — re-dispatch or failure — needs hours of clock: cloud/orders/order-ground-round.test.ts.)
 */
const FROM = 'nomi-kokufu';
const TO = 'nomi-wake';
let t: TestCloud;
let base: string;

interface OrderBody { id: string; state: string; reason: string | null; carrier: string | null; groundRound: { id: string; departsAt: string } | null; audit?: { to: string; actor: string }[] }

const as = (token: string) => async (path: string, json?: unknown, headers: Record<string, string> = {}) => {
  const res = await authedFetch(base, token, path, json === undefined ? { headers } : { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(json) });
  return { status: res.status, body: (await res.json()) as OrderBody & { error?: { code: string } } };
};
let admin: ReturnType<typeof as>;

async function busOrder(weightKg: number): Promise<OrderBody> {
  const created = await admin('/api/v1/orders', { originHub: FROM, destination: { type: 'locker', hub: TO }, weightKg });
  expect(created.status).toBe(201);
  // Dispatch runs right after a new order.
  await expect.poll(async () => (await admin(`/api/v1/orders/${created.body.id}`)).body.state).toBe('assigned');
  return (await admin(`/api/v1/orders/${created.body.id}`)).body;
}

beforeAll(async () => {
  t = await startTestCloud();
  base = t.cloud.urls.http;
  admin = as(t.token);
});
afterAll(async () => {
  await t?.stop();
});

describe('an order on a ground round, through the API', () => {
  it('staff at the origin record it loaded, staff at the destination record it delivered; each step is in the order\'s audit log with the account', async () => {
    const o = await busOrder(2);
    expect(o).toMatchObject({ carrier: 'ground', groundRound: { id: 'nomi-bus-terai-tatsunokuchi' } });
    const atOrigin = as(await t.tokenFor('staff-at-kokufu', 'staff', [FROM]));
    const atDest = as(await t.tokenFor('staff-at-wake', 'staff', [TO]));

    expect(await atDest(`/api/v1/orders/${o.id}/ground-round`, { step: 'delivered' })).toMatchObject({ status: 409, body: { error: { code: 'round_step_refused' } } });
    expect(await atOrigin(`/api/v1/orders/${o.id}/ground-round`, { step: 'loaded' })).toMatchObject({ status: 200, body: { state: 'on_board' } });
    expect(await atDest(`/api/v1/orders/${o.id}/ground-round`, { step: 'delivered' })).toMatchObject({ status: 200, body: { state: 'delivered' } });
    expect(await atDest(`/api/v1/orders/${o.id}/ground-round`, { step: 'failed' })).toMatchObject({ status: 409, body: { error: { code: 'round_step_refused' } } });

    const audit = (await admin(`/api/v1/orders/${o.id}`)).body.audit!;
    expect(audit.map((a) => [a.to, a.actor])).toEqual([['pending', 'test-admin'], ['assigned', 'system'], ['on_board', 'staff-at-kokufu'], ['delivered', 'staff-at-wake']]);
  });

  it('refuses: 401 without a session, 403 for the operator and for staff of other hubs, 415 for a body that is not JSON, 400 for an unknown step', async () => {
    const o = await busOrder(1);
    const path = `/api/v1/orders/${o.id}/ground-round`;
    const anonymous = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ step: 'loaded' }) });
    expect(anonymous.status).toBe(401);
    const operator = as(await t.tokenFor('ops-viewer', 'operator'));
    expect(await operator(path, { step: 'loaded' })).toMatchObject({ status: 403, body: { error: { code: 'forbidden' } } });
    const elsewhere = as(await t.tokenFor('staff-at-neagari', 'staff', ['nomi-neagari']));
    expect(await elsewhere(path, { step: 'loaded' })).toMatchObject({ status: 403, body: { error: { code: 'forbidden' } } });
    const atOrigin = await t.tokenFor('staff-at-kokufu', 'staff', [FROM]);
    const text = await authedFetch(base, atOrigin, path, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'loaded' });
    expect(text.status).toBe(415);
    expect(await as(atOrigin)(path, { step: 'teleported' })).toMatchObject({ status: 400 });
    // None of these changed the order; the refusals are in the API audit.
    expect((await admin(`/api/v1/orders/${o.id}`)).body.state).toBe('assigned');
    const coordinator = await t.tokenFor('audit-reader', 'coordinator');
    await expect.poll(async () => {
      const { entries } = (await (await authedFetch(base, coordinator, '/api/v1/audit?limit=500')).json()) as { entries: { account: string | null; route: string | null; status: number }[] };
      return entries.filter((e) => e.route === '/api/v1/orders/:orderId/ground-round').map((e) => `${e.account}:${e.status}`);
    }).toEqual(expect.arrayContaining(['null:401', 'staff-at-neagari:403', 'ops-viewer:403', 'null:415'])); // the media type is checked before the session
  });

  it('orders arriving one at a time never put more on a bus departure than its 50 kg: the third 20 kg order takes a later departure', async () => {
    // The previous test left a 1 kg order on the next departure (the delivered one no longer counts): 1 + 20 + 20 ≤ 50, one more 20 kg would not fit.
    const orders: OrderBody[] = [];
    for (let i = 0; i < 3; i++) orders.push(await busOrder(20));
    const departures = orders.map((o) => Date.parse(o.groundRound!.departsAt));
    expect(departures[1]).toBe(departures[0]);
    expect(departures[2]).toBeGreaterThan(departures[0]!);
  });
});
