import { afterEach, describe, expect, it } from 'vitest';
import { SQL_DATABASES } from '../../test/support/test-database.ts';
import { GROUND_ROUND_END_MS, MAX_ATTEMPTS, OrderError } from './order-service.ts';
import { OrderTestRig, T0 } from './order-test-rig.ts';

/**
 * Defect 2 of issue 12: orders on a ground round (貨客混載) — the Nomi bus, nomi-kokufu → nomi-wake;
 * nomi-kokufu has no drone, so every order from it goes by bus. The real order service on SQLite and
 * PostgreSQL with a fake clock (order-test-rig.ts).
 */
const FROM = 'nomi-kokufu';
const TO = 'nomi-wake';
const ROUND = 'nomi-bus-terai-tatsunokuchi'; // 50 kg a departure; 08:10, 12:10, 16:10 JST
const NOON = Date.parse('2026-06-01T03:10:00Z'); // 12:10 JST, the first departure after T0 (10:00 JST)
const AFTERNOON = Date.parse('2026-06-01T07:10:00Z'); // 16:10 JST

let rig: OrderTestRig;
afterEach(async () => rig?.close());

async function busOrder(weightKg = 2) {
  const order = await rig.orders.create({ originHub: FROM, destination: { type: 'locker', hub: TO }, weightKg, tempClass: 'ambient', priority: 'normal', by: 'test' });
  await rig.tick();
  return (await rig.store.get(order.id))!;
}

/** Planning rounds every 2 s (as the cloud does) until `until`, then one more. */
async function runUntil(until: number) {
  while (rig.now < until) {
    rig.now = Math.min(until, rig.now + 10 * 60_000);
    await rig.tick();
  }
  rig.now += 1;
  await rig.tick();
}

describe.each(SQL_DATABASES)('an order on a ground round always finishes (%s)', (kind) => {
  it('staff record it loaded and delivered: assigned → on_board → delivered, each step audited with the account', async () => {
    rig = await OrderTestRig.open(kind);
    const o = await busOrder();
    expect(o).toMatchObject({ state: 'assigned', carrier: 'ground', roundId: ROUND, roundDepartsAt: NOON });
    rig.now = NOON - 60_000;
    expect((await rig.orders.groundRoundStep(o.id, 'loaded', 'staff-kokufu')).state).toBe('on_board');
    rig.now = NOON + 40 * 60_000;
    expect((await rig.orders.groundRoundStep(o.id, 'delivered', 'staff-wake')).state).toBe('delivered');
    expect((await rig.store.auditOf(o.id)).map((a) => [a.to, a.actor])).toEqual([
      ['pending', 'test'], ['assigned', 'system'], ['on_board', 'staff-kokufu'], ['delivered', 'staff-wake'],
    ]);
    // Final: the round's end changes nothing.
    await runUntil(NOON + GROUND_ROUND_END_MS + 60_000);
    expect((await rig.store.get(o.id))!.state).toBe('delivered');
  });

  it('never loaded: when the round ends the order is dispatched again (next departure), and fails after the last attempt — never assigned for ever', async () => {
    rig = await OrderTestRig.open(kind);
    const o = await busOrder();
    expect((await rig.store.get(o.id))!.state).toBe('assigned');
    await runUntil(NOON + GROUND_ROUND_END_MS);
    // Back to pending at the round's end, then straight onto the next departure.
    const again = (await rig.store.get(o.id))!;
    expect(again).toMatchObject({ state: 'assigned', carrier: 'ground', roundDepartsAt: AFTERNOON, attempts: 1 });
    expect((await rig.store.auditOf(o.id)).map((a) => a.to)).toEqual(['pending', 'assigned', 'pending', 'assigned']);
    expect((await rig.store.auditOf(o.id))[2]!.reason).toMatch(/ended and the parcel was never recorded as loaded/);
    // Nobody ever loads it: after MAX_ATTEMPTS rounds it fails, and stays failed.
    await runUntil(T0 + 3 * 86_400_000);
    const last = (await rig.store.get(o.id))!;
    expect(last.state).toBe('failed');
    expect(last.reason).toMatch(new RegExp(`gave up after ${MAX_ATTEMPTS} attempts`));
  });

  it('loaded but not confirmed delivered by the round end: failed, with a reason that asks a person to check', async () => {
    rig = await OrderTestRig.open(kind);
    const o = await busOrder();
    rig.now = NOON;
    await rig.orders.groundRoundStep(o.id, 'loaded', 'staff-kokufu');
    await runUntil(NOON + GROUND_ROUND_END_MS - 1);
    expect((await rig.store.get(o.id))!.state).toBe('on_board');
    await runUntil(NOON + GROUND_ROUND_END_MS + 1);
    expect(await rig.store.get(o.id)).toMatchObject({ state: 'failed', reason: expect.stringMatching(/ended without the parcel recorded as delivered/) });
  });

  it('refuses steps that do not follow: delivered before loaded, a drone order, a final order; cancel only before loading', async () => {
    rig = await OrderTestRig.open(kind);
    const o = await busOrder();
    const refused = async (f: () => Promise<unknown>) => {
      try {
        await f();
      } catch (err) {
        return err instanceof OrderError ? err.code : String(err);
      }
      return 'accepted';
    };
    expect(await refused(() => rig.orders.groundRoundStep(o.id, 'delivered', 's'))).toBe('round_step_refused');
    const drone = await rig.orders.create({ originHub: 'rs-komatsu-kibagata', destination: { type: 'locker', hub: 'nomi-kokufu' }, weightKg: 1, tempClass: 'ambient', priority: 'normal', by: 'test' });
    await rig.tick();
    expect((await rig.store.get(drone.id))!.carrier).toBe('drone');
    expect(await refused(() => rig.orders.groundRoundStep(drone.id, 'loaded', 's'))).toBe('round_step_refused');
    await rig.orders.groundRoundStep(o.id, 'loaded', 's');
    await expect(rig.orders.cancel(o.id, 'coordinator', 'changed my mind')).rejects.toMatchObject({ code: 'not_cancellable' });
    await rig.orders.groundRoundStep(o.id, 'failed', 's', 'parcel damaged on the bus');
    expect(await rig.store.get(o.id)).toMatchObject({ state: 'failed', reason: 'parcel damaged on the bus' });
    expect(await refused(() => rig.orders.groundRoundStep(o.id, 'loaded', 's'))).toBe('round_step_refused');

    const cancelled = await busOrder();
    expect((await rig.orders.cancel(cancelled.id, 'coordinator', 'not needed')).state).toBe('cancelled');
  });
});

describe.each(SQL_DATABASES)('a round departure stays booked across planning rounds (%s)', (kind) => {
  it('orders arriving one planning round at a time never put more than the bus capacity on a departure', async () => {
    rig = await OrderTestRig.open(kind);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push((await busOrder(20)).id); // 20 kg each, one per planning round; the bus takes 50 kg
      rig.now += 2000;
    }
    const orders = await Promise.all(ids.map(async (id) => (await rig.store.get(id))!));
    expect(orders.map((o) => o.state)).toEqual(['assigned', 'assigned', 'assigned']);
    expect(orders.map((o) => o.roundDepartsAt)).toEqual([NOON, NOON, AFTERNOON]);
    // A cancelled order frees its weight for the next one.
    await rig.orders.cancel(ids[0]!, 'coordinator', 'not needed');
    expect((await busOrder(20)).roundDepartsAt).toBe(NOON);
  });
});
