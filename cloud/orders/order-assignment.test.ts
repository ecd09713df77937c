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

/** Issue 15: a process killed between an assignment's commit and its mission (kill -9, or its lease lost). */
describe.each(SQL_DATABASES)('a process that stops between an assignment and its mission (%s)', (kind) => {
  /** A new order assigned by a process that dies while the publish of `held` is under way (it never completes). */
  async function assignedThenStopped(held: 'locker.reserve' | 'drone.mission') {
    rig = await OrderTestRig.open(kind);
    rig.hold = (c) => c.command === held;
    const order = await newOrder();
    void rig.orders.tick();
    await expect.poll(() => rig.heldCommands().map((c) => c.command)).toEqual([held]);
    const assigned = (await rig.store.get(order.id))!;
    await rig.restart();
    rig.hold = () => false;
    return { order, assigned };
  }

  it('the next planning round sends the mission 30 s after the assignment, under the ids fixed at assignment: one reservation, one mission, the order flies', async () => {
    const { order, assigned } = await assignedThenStopped('locker.reserve'); // its mission is never issued
    expect(assigned.state).toBe('assigned');

    rig.now += 10_000;
    await rig.tick();
    expect(rig.missionsFor(order.id)).toEqual([]); // within MISSION_SEND_GRACE_MS the assigning process may still be sending it
    rig.now += 21_000;
    await rig.tick();
    const missions = rig.missionsFor(order.id);
    expect(missions).toHaveLength(1);
    expect(missions[0]).toMatchObject({ id: assigned.missionCommandId, args: { missionId: assigned.missionId, to: DEST } });
    const reserves = rig.sent.filter((s) => s.command.command === 'locker.reserve').map((s) => s.command.id);
    expect(new Set(reserves).size).toBe(1); // stored before the stop: issued again under its id, it is the same command

    await rig.ack(assigned.missionCommandId!, 'done');
    await rig.droneEvent(ORIGIN, assigned.droneId!, assigned.missionId!, 'takeoff');
    expect(await rig.store.get(order.id)).toMatchObject({ state: 'in_flight', attempts: 0, missionId: assigned.missionId });
    for (let i = 0; i < 3; i++) {
      rig.now += 60_000;
      await rig.tick();
    }
    expect(rig.missionsFor(order.id)).toHaveLength(1);
  });

  it('an assignment older than the take-off timeout is not sent as it was planned: the order is planned again', async () => {
    const { order, assigned } = await assignedThenStopped('locker.reserve');
    rig.now += 3 * 3_600_000; // down for 3 hours: battery, wind and mode may all have changed
    rig.refreshHubs();
    await rig.tick();
    expect(rig.missionsFor(order.id).filter((c) => (c.args as { missionId?: string }).missionId === assigned.missionId)).toEqual([]);
    expect((await rig.store.get(order.id))!.attempts).toBe(1);
  });

  it('an order cancelled while the next planner is sending the missions of a stopped process: its compartment is not reserved again', async () => {
    rig = await OrderTestRig.open(kind);
    const issue = rig.commands.issue.bind(rig.commands);
    rig.commands.issue = async () => {
      throw new Error('the process is dying'); // it stops before storing any command of its two assignments
    };
    const a = await newOrder();
    const b = await newOrder();
    await rig.tick();
    expect([await rig.state(a.id), await rig.state(b.id)]).toEqual(['assigned', 'assigned']);
    void issue;
    await rig.restart();
    rig.now += 31_000;
    rig.hold = (c) => c.command === 'locker.reserve';
    const round = rig.orders.tick();
    await expect.poll(() => rig.heldCommands().length).toBe(1);
    const first = (rig.heldCommands()[0]!.args as { orderId: string }).orderId;
    const other = first === a.id ? b : a;
    rig.hold = () => false;
    await rig.orders.cancel(other.id, 'coordinator', 'not needed');
    await rig.release();
    await round;
    await rig.tick();
    expect(await rig.state(other.id)).toBe('cancelled');
    expect(rig.sent.filter((x) => x.command.command === 'locker.reserve' && (x.command.args as { orderId?: string }).orderId === other.id)).toEqual([]);
    expect(rig.missionsFor(other.id)).toEqual([]);
    expect(rig.missionsFor(first)).toHaveLength(1);
  });

  it('a mission already stored before the stop is not issued again (a hub executes a command id once; the store keeps one)', async () => {
    const { order, assigned } = await assignedThenStopped('drone.mission');
    rig.now += 31_000;
    await rig.tick();
    expect(rig.missionsFor(order.id)).toHaveLength(1); // the one published before the stop
    expect(await rig.commands.get(assigned.missionCommandId!)).toMatchObject({ state: 'pending', command: 'drone.mission' });
  });
});

describe.each(SQL_DATABASES)('drone events of a mission (%s)', (kind) => {
  it('move the order only when they come from the drone the mission was given to: another hub\'s drone, or another drone of its hub, naming the mission changes nothing', async () => {
    rig = await OrderTestRig.open(kind);
    const order = await rig.orders.create({ originHub: ORIGIN, destination: { type: 'locker', hub: DEST }, weightKg: 1, tempClass: 'ambient', priority: 'normal', by: 'test' });
    await rig.tick();
    const o = (await rig.store.get(order.id))!;
    expect(o.state).toBe('assigned');
    // Mission ids are shown by the order API: a hub elsewhere (any region) or another drone tries it.
    for (const [hub, drone] of [['nomi-terai', 'drone-1'], [DEST, o.droneId!], [ORIGIN, `${o.droneId!}-other`]] as const) {
      await rig.droneEvent(hub, drone, o.missionId!, 'takeoff');
      await rig.droneEvent(hub, drone, o.missionId!, 'landed');
      expect(await rig.state(o.id), `${hub}/${drone}`).toBe('assigned');
    }
    // The drone it was given to flies it.
    await rig.droneEvent(ORIGIN, o.droneId!, o.missionId!, 'takeoff');
    expect(await rig.state(o.id)).toBe('in_flight');
    await rig.droneEvent('nomi-terai', 'drone-1', o.missionId!, 'landed');
    expect(await rig.state(o.id)).toBe('in_flight');
    await rig.droneEvent(ORIGIN, o.droneId!, o.missionId!, 'landed');
    expect(await rig.state(o.id)).toBe('in_locker');
  });
});
