import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { RegionFile } from '../../contract/index.ts';
import { SQL_DATABASES } from '../../test/support/test-database.ts';
import type { Database } from '../db/database.ts';
import { OrderService } from './order-service.ts';
import { openOrderStore } from './order-store.ts';
import { DEST, ORIGIN, OrderTestRig } from './order-test-rig.ts';

/**
 * Issue 14: the order service as several cloud processes run it on one PostgreSQL database — each
 * process its own OrderService and store on its own connection pool, sharing the devices (live state
 * and the command service) — and as one cloud serving several regions.
 */
let rig: OrderTestRig;
afterEach(async () => rig?.close());

/** Another cloud process: its own service and store on `db`, the same devices. */
async function process(db: Database, onPickupCode?: (r: string) => void): Promise<OrderService> {
  return new OrderService({
    store: await openOrderStore(db), regions: rig.regions, live: rig.live, commands: rig.commands, logger: pino({ level: 'silent' }), now: () => rig.now, onPickupCode,
  });
}

const newOrder = (by = 'test') => rig.orders.create({ originHub: ORIGIN, destination: { type: 'locker', hub: DEST }, weightKg: 1, tempClass: 'ambient', priority: 'normal', by });
const sentFor = (orderId: string, command: string) => rig.sent.filter((s) => s.command.command === command && JSON.stringify(s.command.args).includes(orderId.slice(4)));

describe('two cloud processes on one PostgreSQL database', () => {
  it('two pickups with one code, one in each process: one succeeds, the compartment is released once, one audit entry', async () => {
    rig = await OrderTestRig.open('postgres');
    const order = await newOrder();
    await rig.tick();
    const o = (await rig.store.get(order.id))!;
    expect(o.state).toBe('assigned');
    await rig.droneEvent(ORIGIN, o.droneId!, o.missionId!, 'takeoff');
    await rig.droneEvent(ORIGIN, o.droneId!, o.missionId!, 'landed');
    expect(await rig.state(o.id)).toBe('in_locker');
    const code = await rig.orders.revealPickupCode(o.id);

    const results: string[] = [];
    const p1 = await process(rig.database.db, (r) => results.push(r));
    const p2 = await process(await rig.database.reopen(), (r) => results.push(r));
    const releasesBefore = rig.sent.filter((s) => s.command.command === 'locker.release').length;
    const pickup = (id: string) => ({ v: 1, type: 'locker.event', id, ts: rig.now, hub: DEST, device: o.lockerId!, event: 'pickup', severity: 'info', compartment: o.compartmentId!, pickupCode: code }) as never;
    p1.onDeviceMessage(pickup('pk-1'));
    p2.onDeviceMessage(pickup('pk-2'));
    await Promise.all([p1.settled(), p2.settled()]);

    expect(results.sort()).toEqual(['accepted', 'no_order']);
    expect(await rig.state(o.id)).toBe('picked_up');
    expect((await rig.store.auditOf(o.id)).filter((a) => a.to === 'picked_up')).toHaveLength(1);
    expect(rig.sent.filter((s) => s.command.command === 'locker.release').length - releasesBefore).toBe(1);
  });

  it('two staff record one order loaded at once, one in each process: one is recorded, the other refused as round_step_refused', async () => {
    rig = await OrderTestRig.open('postgres');
    const o = await rig.orders.create({ originHub: 'nomi-kokufu', destination: { type: 'locker', hub: 'nomi-wake' }, weightKg: 2, tempClass: 'ambient', priority: 'normal', by: 'test' });
    await rig.tick();
    expect(await rig.state(o.id)).toBe('assigned');
    const p1 = await process(rig.database.db);
    const p2 = await process(await rig.database.reopen());
    const results = await Promise.allSettled([p1.groundRoundStep(o.id, 'loaded', 'staff-a'), p2.groundRoundStep(o.id, 'loaded', 'staff-b')]);
    const outcomes = results.map((r) => (r.status === 'fulfilled' ? 'ok' : (r.reason as { code?: string }).code));
    expect(outcomes.sort()).toEqual(['ok', 'round_step_refused']);
    expect((await rig.store.auditOf(o.id)).filter((a) => a.to === 'on_board')).toHaveLength(1);
  });

  it('two planning rounds at once, one in each process: every order assigned once, no compartment or drone given twice, one mission each', async () => {
    rig = await OrderTestRig.open('postgres');
    const orders = [];
    for (let i = 0; i < 3; i++) orders.push(await newOrder());
    await rig.orders.settled();
    rig.orders.stop();
    const p1 = await process(rig.database.db);
    const p2 = await process(await rig.database.reopen());
    await rig.tick(); // the rig's own round from create() (if any) is over
    await Promise.all([p1.tick(), p2.tick(), p1.tick(), p2.tick()]);

    const active = await rig.store.inStates(['assigned']);
    const compartments = active.map((o) => `${o.lockerId}/${o.compartmentId}`);
    const drones = active.map((o) => o.droneId);
    expect(new Set(compartments).size).toBe(compartments.length);
    expect(new Set(drones).size).toBe(drones.length);
    for (const { id } of orders) {
      expect((await rig.store.auditOf(id)).filter((a) => a.to === 'assigned')).toHaveLength((await rig.state(id)) === 'assigned' ? 1 : 0);
      expect(sentFor(id, 'drone.mission').length).toBeLessThanOrEqual(1);
      expect(sentFor(id, 'locker.reserve').length).toBeLessThanOrEqual(1);
    }
    expect(active.length).toBeGreaterThan(0);
  });
});

/** A second region beside ishikawa-nomi: the same ground, other hub ids; its depot has no drones. */
function secondRegion(base: RegionFile): RegionFile {
  const id = (h: string) => `b-${h}`;
  return {
    ...base, id: 'second-region',
    hubs: base.hubs.map((h) => ({ ...h, id: id(h.id), drones: [] })),
    groundRounds: [], reliefRoutes: [],
  } as RegionFile;
}

describe.each(SQL_DATABASES)('many regions in one cloud (%s)', (kind) => {
  it('an order belongs to its hubs\' region; dispatch never gives it a drone of another region; a destination in another region is refused', async () => {
    rig = await OrderTestRig.open(kind);
    const second = secondRegion(rig.region);
    rig.regions.add(second);
    rig.setTelemetry();

    const here = await newOrder();
    const there = await rig.orders.create({ originHub: `b-${ORIGIN}`, destination: { type: 'locker', hub: `b-${DEST}` }, weightKg: 1, tempClass: 'ambient', priority: 'normal', by: 'test' });
    expect(here.region).toBe(rig.region.id);
    expect(there.region).toBe('second-region');
    await rig.tick();
    await rig.tick();

    // ishikawa-nomi's drones stand idle at the same place, yet the second region's order waits: its region has none.
    expect(await rig.store.get(here.id)).toMatchObject({ state: 'assigned', droneHub: ORIGIN });
    expect(await rig.store.get(there.id)).toMatchObject({ state: 'pending', droneId: null });
    expect((await rig.store.get(there.id))!.waitReasons?.length).toBeGreaterThan(0);
    expect(rig.sent.filter((s) => s.command.hub.startsWith('b-'))).toEqual([]);

    await expect(rig.orders.create({ originHub: ORIGIN, destination: { type: 'locker', hub: `b-${DEST}` }, weightKg: 1, tempClass: 'ambient', priority: 'normal', by: 'test' }))
      .rejects.toMatchObject({ code: 'unknown_destination' });
    expect((await rig.store.list({ regions: ['second-region'], limit: 10 })).map((o) => o.id)).toEqual([there.id]);
  });
});

describe('the wind rule\'s question: a mission assigned at this hub?', () => {
  it('is answered from memory: at once for an assignment made here, and as the store has it after a planning round', async () => {
    rig = await OrderTestRig.open('sqlite');
    expect(rig.orders.hasAssignedMissionAt(ORIGIN)).toBe(false);
    const order = await newOrder();
    await rig.tick();
    const o = (await rig.store.get(order.id))!;
    expect(o.state).toBe('assigned');
    expect(rig.orders.hasAssignedMissionAt(ORIGIN)).toBe(true);
    expect(rig.orders.hasAssignedMissionAt(DEST)).toBe(false);
    await rig.droneEvent(ORIGIN, o.droneId!, o.missionId!, 'takeoff');
    await rig.tick();
    expect(rig.orders.hasAssignedMissionAt(ORIGIN)).toBe(false);
  });
});
