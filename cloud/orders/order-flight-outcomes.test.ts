import { afterEach, describe, expect, it } from 'vitest';
import type { LockerTelemetry } from '../../contract/index.ts';
import { SQL_DATABASES } from '../../test/support/test-database.ts';
import { DEST, ORIGIN, OrderTestRig } from './order-test-rig.ts';

/**
 * How a flight ends for its order, when it does not go as planned (found in review, each failing on the
 * code before): a drone called home, a drone that keeps reporting its mission on the pad, a hub that goes
 * offline after its drone took the mission, a locker that refuses the compartment.
 */
let rig: OrderTestRig;
afterEach(async () => rig?.close());
const TIMEOUT = 'the device did not answer within 10 s'; // the hub agent's provisional failure (edge/agent.ts)

async function assignedOrder() {
  const order = await rig.orders.create({ originHub: ORIGIN, destination: { type: 'locker', hub: DEST }, weightKg: 1, tempClass: 'ambient', priority: 'medical', by: 'test' });
  await rig.tick();
  const o = (await rig.store.get(order.id))!;
  expect(o.state).toBe('assigned');
  return o;
}

describe.each(SQL_DATABASES)('flight outcomes (%s)', (kind) => {
  it('a drone called home lands at its hub: the order is planned again, never put in the locker with a pickup code', async () => {
    rig = await OrderTestRig.open(kind);
    const o = await assignedOrder();
    await rig.ack(o.missionCommandId!, 'done');
    await rig.droneEvent(ORIGIN, o.droneId!, o.missionId!, 'takeoff');
    expect(await rig.state(o.id)).toBe('in_flight');
    // drone.rtl (an operator, or its own failsafe): "rtl, then landed at home" (the contract).
    rig.now += 120_000;
    await rig.droneEvent(ORIGIN, o.droneId!, o.missionId!, 'landed', rig.regions.hub(ORIGIN)!.location);
    const after = (await rig.store.get(o.id))!;
    expect(after.state).toBe('pending');
    expect(after.pickupReveal).toBeNull();
    expect(after.reason).toMatch(/landed back at rs-komatsu-kibagata/);
    // Its compartment at the destination is given back.
    expect(rig.sent.some((s) => s.command.command === 'locker.release' && s.command.device === o.lockerId)).toBe(true);
  });

  it('a drone that lands neither at the destination nor at its hub leaves the order in flight (its position or the flight timeout decides)', async () => {
    rig = await OrderTestRig.open(kind);
    const o = await assignedOrder();
    await rig.droneEvent(ORIGIN, o.droneId!, o.missionId!, 'takeoff');
    await rig.droneEvent(ORIGIN, o.droneId!, o.missionId!, 'landed', { lat: 36.40, lon: 136.50 }); // a field on the way
    expect(await rig.state(o.id)).toBe('in_flight');
  });

  it('a drone that reports the mission on the pad after the agent timed out: no back and forth; re-planned after the take-off timeout', async () => {
    rig = await OrderTestRig.open(kind);
    const o = await assignedOrder();
    await rig.ack(o.missionCommandId!, 'failed', TIMEOUT);
    const home = rig.regions.hub(ORIGIN)!.location;
    for (let i = 0; i < 60; i++) { // 10 minutes, a tick every 10 s, the drone on the pad with the mission (a failed pre-flight check)
      rig.now += 10_000;
      rig.refreshHubs();
      rig.droneAt(ORIGIN, o.droneId!, { lat: home.lat, lon: home.lon, flightState: 'fault', missionId: o.missionId });
      await rig.tick();
      if ((await rig.store.get(o.id))!.missionId !== o.missionId) break;
    }
    const moves = (await rig.store.auditOf(o.id)).map((a) => `${a.from}->${a.to}`);
    expect(moves.length).toBeLessThanOrEqual(6); // created, assigned, (mission_unknown, assigned,) re-planned — 1,082 moves in 3 h before
    expect(moves).toContain('assigned->pending');
    expect(rig.sent.some((s) => s.command.command === 'drone.abort' && s.command.device === o.droneId)).toBe(true);
  });

  it('a drone that took the mission while its hub went offline is not replaced by a second drone: the order waits, then flies on its replayed take-off', async () => {
    rig = await OrderTestRig.open(kind);
    const o = await assignedOrder();
    await rig.ack(o.missionCommandId!, 'done', 'mission accepted');
    rig.hubOffline(ORIGIN);
    for (let i = 0; i < 8; i++) { rig.now += 60_000; await rig.tick(); }
    expect(await rig.state(o.id)).toBe('mission_unknown');
    expect(rig.missionsFor(o.id)).toHaveLength(1);
    // The hub is back; its outbox replays the take-off.
    rig.hubOffline(ORIGIN, false);
    await rig.droneEvent(ORIGIN, o.droneId!, o.missionId!, 'takeoff');
    expect(await rig.state(o.id)).toBe('in_flight');
    expect(rig.missionsFor(o.id)).toHaveLength(1);
  });

  it('the same with the hub offline for longer than a flight: the order ends failed for staff to check, its compartment released', async () => {
    rig = await OrderTestRig.open(kind);
    const o = await assignedOrder();
    await rig.ack(o.missionCommandId!, 'done', 'mission accepted');
    rig.hubOffline(ORIGIN);
    for (let i = 0; i < 60; i++) { rig.now += 60_000; await rig.tick(); }
    const after = (await rig.store.get(o.id))!;
    expect(after.state).toBe('failed');
    expect(after.reason).toMatch(/took the mission, then no sign/);
    expect(rig.missionsFor(o.id)).toHaveLength(1);
  });

  it('a locker that refuses the compartment: the order is planned again and the drone told to abort, before it flies', async () => {
    rig = await OrderTestRig.open(kind);
    const o = await assignedOrder();
    const reserve = rig.sent.find((s) => s.command.command === 'locker.reserve')!.command;
    await rig.ack(reserve.id, 'rejected', `compartment ${o.compartmentId} holds a parcel`);
    await rig.ack(o.missionCommandId!, 'done');
    rig.now += 2_000;
    await rig.tick();
    const after = (await rig.store.get(o.id))!;
    expect(after.missionId).not.toBe(o.missionId); // re-planned (pending, or assigned again elsewhere)
    expect((await rig.store.auditOf(o.id)).some((a) => a.from === 'assigned' && a.to === 'pending' && /did not reserve/.test(a.reason))).toBe(true);
    expect(rig.sent.some((s) => s.command.command === 'drone.abort' && s.command.device === o.droneId)).toBe(true);
  });
});

describe.each(SQL_DATABASES)('locker reservations (%s)', (kind) => {
  it('a compartment still reserved for a cancelled order is asked to release again once its hub is back (the first release expired while it was offline), every 10 minutes at most', async () => {
    rig = await OrderTestRig.open(kind);
    const o = await assignedOrder();
    const reserve = rig.sent.find((s) => s.command.command === 'locker.reserve')!.command;
    await rig.ack(reserve.id, 'done');
    // The locker reports the reservation.
    const bank = rig.live.hubs.get(DEST)!.devices.get(o.lockerId!)!;
    const reported = bank.telemetry as LockerTelemetry;
    bank.telemetry = { ...reported, compartments: reported.compartments.map((c) => (c.id === o.compartmentId ? { ...c, reservedFor: o.id } : c)) };
    const releases = () => rig.sent.filter((s) => s.command.command === 'locker.release' && (s.command.args as { compartment: string }).compartment === o.compartmentId).length;
    // Its hub goes offline; a coordinator cancels the order meanwhile: one release, which expires unsent.
    rig.hubOffline(DEST);
    await rig.orders.cancel(o.id, 'coordinator', 'recipient evacuated');
    expect(releases()).toBe(1);
    for (let i = 0; i < 15; i++) { rig.now += 60_000; rig.refreshHubs(); await rig.tick(); }
    expect(releases()).toBe(1); // not to an offline hub
    rig.hubOffline(DEST, false);
    rig.now += 60_000; rig.refreshHubs(); await rig.tick();
    expect(releases()).toBe(2);
    for (let i = 0; i < 9; i++) { rig.now += 60_000; rig.refreshHubs(); await rig.tick(); }
    expect(releases()).toBe(2); // still reported reserved: again only after 10 minutes
    rig.now += 60_000; rig.refreshHubs(); await rig.tick();
    expect(releases()).toBe(3);
    // Released: nothing more.
    const now = bank.telemetry as LockerTelemetry;
    bank.telemetry = { ...now, compartments: now.compartments.map((c) => (c.id === o.compartmentId ? { ...c, reservedFor: null } : c)) };
    for (let i = 0; i < 30; i++) { rig.now += 60_000; rig.refreshHubs(); await rig.tick(); }
    expect(releases()).toBe(3);
  });

  it('a compartment reserved for the order that holds it is left alone', async () => {
    rig = await OrderTestRig.open(kind);
    const o = await assignedOrder();
    const bank = rig.live.hubs.get(DEST)!.devices.get(o.lockerId!)!;
    const reported = bank.telemetry as LockerTelemetry;
    bank.telemetry = { ...reported, compartments: reported.compartments.map((c) => (c.id === o.compartmentId ? { ...c, reservedFor: o.id } : c)) };
    await rig.ack(o.missionCommandId!, 'done');
    for (let i = 0; i < 3; i++) { rig.now += 60_000; rig.refreshHubs(); await rig.tick(); }
    expect(rig.sent.filter((s) => s.command.command === 'locker.release')).toHaveLength(0);
  });
});
