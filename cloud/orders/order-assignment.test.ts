import { afterEach, describe, expect, it } from 'vitest';
import { SQL_DATABASES } from '../../test/support/test-database.ts';
import { DEST, ORIGIN, OrderTestRig } from './order-test-rig.ts';

/** Defect 4 of issue 12: a cancel that lands while an assignment is still issuing its commands. */
let rig: OrderTestRig;
afterEach(async () => rig?.close());

const newOrder = () => rig.orders.create({ originHub: ORIGIN, destination: { type: 'locker', hub: DEST }, weightKg: 1, tempClass: 'ambient', priority: 'normal', by: 'test' });

describe.each(SQL_DATABASES)('cancel during assignment (%s)', (kind) => {
  it('a cancel while the locker.reserve publish is held: no drone.mission for the order, the compartment released', async () => {
    rig = await OrderTestRig.open(kind);
    rig.hold = (c) => c.command === 'locker.reserve';
    const order = await newOrder();
    const tick = rig.orders.tick();
    await expect.poll(() => rig.heldCommands().map((c) => c.command)).toEqual(['locker.reserve']);
    const reserved = rig.heldCommands()[0]!.args as { compartment: string };
    await rig.orders.cancel(order.id, 'coordinator', 'customer changed their mind');
    await rig.release();
    await tick;
    await rig.orders.tick();
    expect((await rig.store.get(order.id))!.state).toBe('cancelled');
    expect(rig.missionsFor(order.id)).toEqual([]);
    const releases = rig.sent.filter((s) => s.command.command === 'locker.release').map((s) => s.command.args);
    expect(releases).toContainEqual({ compartment: reserved.compartment });
  });

  it('a cancel while another order is being assigned does not break the round for the rest', async () => {
    rig = await OrderTestRig.open(kind);
    rig.hold = (c) => c.command === 'locker.reserve';
    const first = await newOrder();
    const second = await newOrder();
    const third = await newOrder();
    const tick = rig.orders.tick();
    await expect.poll(() => rig.heldCommands().length).toBe(1);
    // The round holds on the first order's reserve; the second is cancelled before its turn.
    await rig.orders.cancel(second.id, 'coordinator', 'not needed');
    rig.hold = () => false;
    await rig.release();
    await tick;
    expect((await rig.store.get(second.id))!.state).toBe('cancelled');
    expect(rig.missionsFor(second.id)).toEqual([]);
    expect((await rig.store.get(first.id))!.state).toBe('assigned');
    expect((await rig.store.get(third.id))!.state).toBe('assigned');
  });
});
