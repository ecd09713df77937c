import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { localLeases, openPostgresLeases, type Leases } from '../cluster/leases.ts';
import { OrderService } from './order-service.ts';
import { DEST, ORIGIN, OrderTestRig } from './order-test-rig.ts';

/**
 * Issue 15: a region's planning rounds run only on the node holding the region's lease, and their
 * changes commit only while the lease still carries the round's token (fenced in the same transaction).
 */
const LEASE = 'region:ishikawa-nomi';
const logger = pino({ level: 'silent' });
let rig: OrderTestRig;
const leases: Leases[] = [];
afterEach(async () => {
  for (const l of leases.splice(0)) await l.close();
  await rig?.close();
});

const serviceWith = (l: Leases) => new OrderService({ store: rig.store, regions: rig.regions, live: rig.live, commands: rig.commands, logger, now: () => rig.now, leases: l });
const NONE: () => Leases = () => ({ ...localLeases(), clustered: true, grant: () => null, holds: () => false, held: () => [] });
// Created through a service of a node holding nothing: its own round right after creation plans nothing.
const newOrder = () => serviceWith(NONE()).create({ originHub: ORIGIN, destination: { type: 'locker', hub: DEST }, weightKg: 1, tempClass: 'ambient', priority: 'medical', by: 'test' });

describe('planning rounds under the region lease', () => {
  it('a node that does not hold the region plans nothing of it; the holder does', async () => {
    rig = await OrderTestRig.open('sqlite');
    const order = await newOrder();
    await serviceWith(NONE()).tick();
    expect(await rig.state(order.id)).toBe('pending');
    expect(rig.sent).toEqual([]);
    await serviceWith(localLeases()).tick();
    expect(await rig.state(order.id)).toBe('assigned');
    expect(rig.missionsFor(order.id)).toHaveLength(1);
  });

  it('PostgreSQL: a round under a token another node has taken over changes nothing and sends nothing; the new holder assigns the order once', async () => {
    rig = await OrderTestRig.open('postgres');
    // A node whose clock stands still (it believes it holds) and never renews: its lease lapses in the database.
    const stale = await openPostgresLeases({ database: await rig.database.reopen(), nodeId: 'stale', ttlMs: 500, renewEveryMs: 3_600_000, monotonic: () => 0, names: () => [LEASE], logger });
    leases.push(stale);
    const current = await openPostgresLeases({ database: await rig.database.reopen(), nodeId: 'current', ttlMs: 500, names: () => [LEASE], logger });
    leases.push(current);
    await expect.poll(() => current.holds(LEASE), { timeout: 3000, interval: 10 }).toBe(true);
    expect(stale.holds(LEASE)).toBe(true); // by its own (frozen) clock
    const order = await newOrder();
    await serviceWith(stale).tick();
    expect(await rig.state(order.id)).toBe('pending');
    expect((await rig.store.auditOf(order.id)).map((a) => a.to)).toEqual(['pending']);
    expect(await rig.store.flights({ orderId: order.id, limit: 10 })).toEqual([]);
    expect(rig.sent).toEqual([]);
    await serviceWith(current).tick();
    expect(await rig.state(order.id)).toBe('assigned');
    expect((await rig.store.auditOf(order.id)).map((a) => a.to)).toEqual(['pending', 'assigned']);
    expect(rig.missionsFor(order.id)).toHaveLength(1);
  });
});
