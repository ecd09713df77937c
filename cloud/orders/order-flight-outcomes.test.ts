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


/**
 * A drone event as ingest hands it over, without touching the drone's live position: replayed after an
 * outage (`historical`, the default) or live. As the edge outbox sends them, rtl is a warning (its urgent
 * lane, replayed first), take-off and landing are info.
 */
async function sendEvent(drone: string, missionId: string, name: string, ts: number, historical = true) {
  const severity = name === 'rtl' ? 'warning' : 'info';
  rig.orders.onDeviceMessage({ v: 1, type: 'drone.event', id: `ev-${ts}-${name}-${Math.random()}`, ts, hub: ORIGIN, device: drone, event: name, severity, missionId, ...(historical ? { historical: true } : {}) } as never);
  await rig.drain();
}

/** The drone's report as the cloud received it now, stamped by a hub clock `skewMs` off. */
function reportSkewed(drone: string, p: Parameters<OrderTestRig['droneAt']>[2], skewMs: number): void {
  rig.droneAt(ORIGIN, drone, p);
  (rig.live.hubs.get(ORIGIN)!.devices.get(drone)!.telemetry as { ts: number }).ts = rig.now + skewMs;
}

describe.each(SQL_DATABASES)('flight outcomes (%s)', (kind) => {
  it('a drone called home lands at its hub: the order is planned again, never put in the locker with a pickup code', async () => {
    rig = await OrderTestRig.open(kind);
    const o = await rig.assignedOrder('medical');
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
    const o = await rig.assignedOrder('medical');
    await rig.droneEvent(ORIGIN, o.droneId!, o.missionId!, 'takeoff');
    await rig.droneEvent(ORIGIN, o.droneId!, o.missionId!, 'landed', { lat: 36.40, lon: 136.50 }); // a field on the way
    expect(await rig.state(o.id)).toBe('in_flight');
  });

  it('a drone that reports the mission on the pad after the agent timed out: no back and forth; re-planned after the take-off timeout', async () => {
    rig = await OrderTestRig.open(kind);
    const o = await rig.assignedOrder('medical');
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
    expect(moves.length).toBeLessThanOrEqual(4); // created, assigned, mission_unknown, re-planned — 1,082 moves in 3 h before
    expect(moves).toContain('mission_unknown->pending');
    expect(rig.sent.some((s) => s.command.command === 'drone.abort' && s.command.device === o.droneId)).toBe(true);
  });

  it('a drone that took the mission while its hub went offline is not replaced by a second drone: the order waits, then flies on its replayed take-off', async () => {
    rig = await OrderTestRig.open(kind);
    const o = await rig.assignedOrder('medical');
    await rig.ack(o.missionCommandId!, 'done', 'mission accepted');
    rig.hubOffline(ORIGIN);
    for (let i = 0; i < 8; i++) { rig.now += 60_000; await rig.tick(); }
    expect(await rig.state(o.id)).toBe('assigned'); // waits as it is: no move, no clock restarted
    expect(rig.missionsFor(o.id)).toHaveLength(1);
    // The hub is back; its outbox replays the take-off.
    rig.hubOffline(ORIGIN, false);
    await rig.droneEvent(ORIGIN, o.droneId!, o.missionId!, 'takeoff');
    expect(await rig.state(o.id)).toBe('in_flight');
    expect(rig.missionsFor(o.id)).toHaveLength(1);
  });

  it('the same with the hub offline for longer than a flight: the order ends failed for staff to check, its compartment released', async () => {
    rig = await OrderTestRig.open(kind);
    const o = await rig.assignedOrder('medical');
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
    const o = await rig.assignedOrder('medical');
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


describe.each(SQL_DATABASES)('flight outcomes after an outage, and the second review (%s)', (kind) => {
  it('a landing replayed after an outage is the delivery, whatever the drone\'s newest position (home by then, or an old one mid-route)', async () => {
    for (const newest of ['home', 'mid-route'] as const) {
      rig = await OrderTestRig.open(kind);
      const o = await rig.assignedOrder('medical');
      await rig.ack(o.missionCommandId!, 'done');
      await rig.droneEvent(ORIGIN, o.droneId!, o.missionId!, 'takeoff');
      const home = rig.regions.hub(ORIGIN)!.location;
      if (newest === 'mid-route') rig.droneAt(ORIGIN, o.droneId!, { lat: 36.39, lon: 136.483, flightState: 'mission', altM: 60, missionId: o.missionId });
      rig.hubOffline(ORIGIN);
      const t0 = rig.now;
      rig.now += 20 * 60_000;
      rig.hubOffline(ORIGIN, false);
      rig.refreshHubs();
      if (newest === 'home') rig.droneAt(ORIGIN, o.droneId!, { ...home, flightState: 'idle', missionId: null });
      await sendEvent(o.droneId!, o.missionId!, 'landed', t0 + 8 * 60_000);
      await sendEvent(o.droneId!, o.missionId!, 'landed', t0 + 17 * 60_000); // home again after the delivery
      expect(await rig.state(o.id), newest).toBe('in_locker');
      rig.now += 2_000; rig.refreshHubs(); await rig.tick();
      expect(rig.missionsFor(o.id), newest).toHaveLength(1);
      expect(rig.sent.some((x) => x.command.command === 'locker.release'), newest).toBe(false);
      await rig.close();
    }
  });

  it('a drone called home (its rtl event) is never a delivery: replayed without a position of the time, the order waits until its position shows it home', async () => {
    rig = await OrderTestRig.open(kind);
    const o = await rig.assignedOrder('medical');
    await rig.droneEvent(ORIGIN, o.droneId!, o.missionId!, 'takeoff');
    rig.hubOffline(ORIGIN);
    const t0 = rig.now;
    rig.now += 20 * 60_000;
    rig.hubOffline(ORIGIN, false);
    await sendEvent(o.droneId!, o.missionId!, 'rtl', t0 + 3 * 60_000);
    await sendEvent(o.droneId!, o.missionId!, 'landed', t0 + 6 * 60_000);
    expect(await rig.state(o.id)).toBe('in_flight'); // not delivered; where it landed is not known yet
    // Its live position, once its hub has been back a minute (its backlog replayed): on the ground at its
    // hub — planned again, with the parcel there.
    rig.now += 61_000; rig.refreshHubs();
    rig.droneAt(ORIGIN, o.droneId!, { ...rig.regions.hub(ORIGIN)!.location, flightState: 'idle', missionId: null });
    await rig.tick(); // (and the same round may assign it again)
    expect((await rig.store.auditOf(o.id)).some((a) => a.from === 'in_flight' && a.to === 'pending' && /called home/.test(a.reason))).toBe(true);
    expect((await rig.store.get(o.id))!.pickupReveal).toBeNull();
  });

  it('a locker reservation the cloud did not make (another carrier) is left alone', async () => {
    rig = await OrderTestRig.open(kind);
    const bankId = rig.region.hubs.find((h) => h.id === DEST)!.lockers[0]!.id;
    const bank = rig.live.hubs.get(DEST)!.devices.get(bankId)!;
    const t = bank.telemetry as LockerTelemetry;
    const cid = t.compartments[0]!.id;
    bank.telemetry = { ...t, compartments: t.compartments.map((c) => (c.id === cid ? { ...c, occupied: true, reservedFor: 'order-8f2a' } : c)) };
    for (let i = 0; i < 31; i++) { rig.now += 60_000; rig.refreshHubs(); await rig.tick(); }
    expect(rig.sent.filter((x) => x.command.command === 'locker.release')).toHaveLength(0);
  });

  it('a compartment the locker refused to reserve (another party holds it) is not released by the re-plan', async () => {
    rig = await OrderTestRig.open(kind);
    const o = await rig.assignedOrder('medical');
    const reserve = rig.sent.find((x) => x.command.command === 'locker.reserve' && (x.command.args as { orderId: string }).orderId === o.id)!.command;
    await rig.ack(reserve.id, 'rejected', `compartment ${o.compartmentId} is reserved for order-77aa01`);
    rig.now += 2_000;
    await rig.tick();
    expect(rig.sent.filter((x) => x.command.command === 'locker.release' && (x.command.args as { compartment: string }).compartment === o.compartmentId)).toHaveLength(0);
  });

  it('a hub up one minute in seven (never long enough to replay its backlog), its drone idle: the order is not moved back and forth, and ends for staff after a flight\'s worth', async () => {
    rig = await OrderTestRig.open(kind);
    const o = await rig.assignedOrder('medical');
    await rig.ack(o.missionCommandId!, 'done', 'mission accepted');
    const home = rig.regions.hub(ORIGIN)!.location;
    for (let i = 0; i < 3 * 180; i++) { // 3 hours, a tick every 20 s
      rig.now += 20_000;
      const online = i % 21 < 3;
      rig.hubOffline(ORIGIN, !online);
      rig.refreshHubs();
      if (online) rig.droneAt(ORIGIN, o.droneId!, { ...home, flightState: 'idle', missionId: null });
      await rig.tick();
    }
    const moves = await rig.store.auditOf(o.id);
    expect(moves.length).toBeLessThanOrEqual(3); // created, assigned, failed — its backlog may hold the take-off: no second drone
    expect(moves.at(-1)).toMatchObject({ to: 'failed' });
    expect(moves.at(-1)!.reason).toMatch(/took the mission, then no sign of it for 45 minutes/);
    expect(rig.missionsFor(o.id)).toHaveLength(1);
  });

  it('the drone flying its mission while the order waits in mission_unknown: a refused reservation does not send a second drone', async () => {
    rig = await OrderTestRig.open(kind);
    const o = await rig.assignedOrder('medical');
    await rig.ack(o.missionCommandId!, 'failed', TIMEOUT);
    rig.now += 2_000; rig.refreshHubs();
    await rig.tick();
    expect(await rig.state(o.id)).toBe('mission_unknown');
    const reserve = rig.sent.find((x) => x.command.command === 'locker.reserve')!.command;
    await rig.ack(reserve.id, 'rejected', `compartment ${o.compartmentId} holds a parcel`);
    rig.droneAt(ORIGIN, o.droneId!, { lat: 36.39, lon: 136.483, altM: 60, flightState: 'mission', missionId: o.missionId });
    rig.now += 2_000; rig.refreshHubs();
    await rig.tick();
    expect(await rig.state(o.id)).toBe('in_flight');
    expect(rig.missionsFor(o.id)).toHaveLength(1);
  });

  it('after the agent timed out, a drone seen once on the pad with the mission and then silent is waited for, not replaced', async () => {
    rig = await OrderTestRig.open(kind);
    const o = await rig.assignedOrder('medical');
    await rig.ack(o.missionCommandId!, 'failed', TIMEOUT);
    const home = rig.regions.hub(ORIGIN)!.location;
    rig.now += 5_000;
    rig.droneAt(ORIGIN, o.droneId!, { ...home, flightState: 'idle', missionId: o.missionId });
    const others = rig.region.hubs.find((h) => h.id === ORIGIN)!.drones.map((d) => d.id).filter((d) => d !== o.droneId);
    for (let i = 0; i < 8; i++) {
      rig.now += 60_000; rig.refreshHubs();
      for (const d of others) rig.droneAt(ORIGIN, d, { ...home, flightState: 'idle', missionId: null });
      await rig.tick();
    }
    expect(rig.missionsFor(o.id).every((c) => c.device === o.droneId)).toBe(true);
    expect(await rig.state(o.id)).toBe('mission_unknown');
  });
});


describe.each(SQL_DATABASES)('drones called home, and hubs coming back (third review, %s)', (kind) => {
  it('a drone called home and seen on the ground at the destination (drone.abort lands it at the nearest hub) is not a delivery', async () => {
    rig = await OrderTestRig.open(kind);
    const o = await rig.assignedOrder('medical');
    await rig.droneEvent(ORIGIN, o.droneId!, o.missionId!, 'takeoff');
    rig.now += 60_000;
    await sendEvent(o.droneId!, o.missionId!, 'rtl', rig.now, false);
    rig.now += 20_000; rig.refreshHubs();
    rig.droneAt(ORIGIN, o.droneId!, { ...rig.regions.hub(DEST)!.location, flightState: 'landed', missionId: o.missionId });
    await rig.tick(); // a planning round before the landing event
    await rig.droneEvent(ORIGIN, o.droneId!, o.missionId!, 'landed', rig.regions.hub(DEST)!.location);
    const after = (await rig.store.get(o.id))!;
    expect(after.state).toBe('in_flight');
    expect(after.pickupReveal).toBeNull();
  });

  it('a drone called home that lands in a field: the order waits (the parcel is in the field), no second drone', async () => {
    rig = await OrderTestRig.open(kind);
    const o = await rig.assignedOrder('medical');
    await rig.droneEvent(ORIGIN, o.droneId!, o.missionId!, 'takeoff');
    rig.now += 60_000;
    await sendEvent(o.droneId!, o.missionId!, 'rtl', rig.now, false);
    rig.now += 60_000;
    await rig.droneEvent(ORIGIN, o.droneId!, o.missionId!, 'landed', { lat: 36.40, lon: 136.50 });
    rig.now += 2_000; rig.refreshHubs(); await rig.tick();
    expect(await rig.state(o.id)).toBe('in_flight');
    expect(rig.missionsFor(o.id)).toHaveLength(1);
  });

  it('a recall is kept when its flight-log write fails: a replayed landing is still not the delivery', async () => {
    rig = await OrderTestRig.open(kind);
    const o = await rig.assignedOrder('medical');
    await rig.droneEvent(ORIGIN, o.droneId!, o.missionId!, 'takeoff');
    const real = rig.store.updateFlight.bind(rig.store);
    rig.store.updateFlight = async (m, f, tx) => {
      if (f.result === 'recalled') throw new Error('database is locked');
      return real(m, f, tx);
    };
    const t0 = rig.now;
    rig.now += 20 * 60_000;
    await sendEvent(o.droneId!, o.missionId!, 'rtl', t0 + 3 * 60_000);
    await sendEvent(o.droneId!, o.missionId!, 'landed', t0 + 6 * 60_000);
    expect(await rig.state(o.id)).toBe('in_flight');
  });

  it('called home while armed, before take-off: back on the pad, the order is planned again at once (not held for 45 minutes and logged lost)', async () => {
    rig = await OrderTestRig.open(kind);
    const o = await rig.assignedOrder('medical');
    await sendEvent(o.droneId!, o.missionId!, 'armed', rig.now, false);
    expect(await rig.state(o.id)).toBe('in_flight');
    rig.now += 3_000;
    await sendEvent(o.droneId!, o.missionId!, 'rtl', rig.now, false);
    rig.now += 60_000; rig.refreshHubs();
    rig.droneAt(ORIGIN, o.droneId!, { ...rig.regions.hub(ORIGIN)!.location, flightState: 'idle', missionId: null });
    await rig.tick();
    expect((await rig.store.auditOf(o.id)).some((a) => a.from === 'in_flight' && a.to === 'pending' && /called home/.test(a.reason))).toBe(true);
  });

  it('a hub back from an outage is given a minute to replay its backlog: the take-off in it arrives before the order would be planned again', async () => {
    rig = await OrderTestRig.open(kind);
    const o = await rig.assignedOrder('medical');
    await rig.ack(o.missionCommandId!, 'done', 'mission accepted');
    const home = rig.regions.hub(ORIGIN)!.location;
    rig.hubOffline(ORIGIN);
    const t0 = rig.now;
    for (let i = 0; i < 8; i++) { rig.now += 60_000; await rig.tick(); }
    rig.hubOffline(ORIGIN, false);
    rig.now += 2_000; rig.refreshHubs();
    await rig.tick(); // before the backlog
    await sendEvent(o.droneId!, o.missionId!, 'takeoff', t0 + 10_000);
    const others = rig.region.hubs.find((h) => h.id === ORIGIN)!.drones.map((d) => d.id).filter((d) => d !== o.droneId);
    for (let i = 0; i < 3; i++) { rig.now += 2_000; rig.refreshHubs(); for (const d of others) rig.droneAt(ORIGIN, d, { ...home, flightState: 'idle', missionId: null }); await rig.tick(); }
    expect(await rig.state(o.id)).toBe('in_flight');
    expect(rig.missionsFor(o.id)).toHaveLength(1);
    expect(rig.sent.some((x) => x.command.command === 'drone.abort')).toBe(false);
  });

  it('after the agent timed out, a drone on the pad with the mission whose reports come and go (hub up a minute in seven): planned again once, not moved back and forth', async () => {
    rig = await OrderTestRig.open(kind);
    const o = await rig.assignedOrder('medical');
    await rig.ack(o.missionCommandId!, 'failed', TIMEOUT);
    const home = rig.regions.hub(ORIGIN)!.location;
    for (let i = 0; i < 3 * 180; i++) {
      rig.now += 20_000;
      const online = i % 21 < 3;
      rig.hubOffline(ORIGIN, !online);
      rig.refreshHubs();
      if (online) rig.droneAt(ORIGIN, o.droneId!, { ...home, flightState: 'fault', missionId: o.missionId });
      await rig.tick();
    }
    const moves = (await rig.store.auditOf(o.id)).filter((a) => a.to === 'mission_unknown' || a.from === 'mission_unknown');
    expect(moves.length).toBeLessThanOrEqual(6); // each attempt: into mission_unknown and out, at most 3 attempts
    const after = (await rig.store.get(o.id))!;
    expect(after.missionId !== o.missionId || after.state === 'failed').toBe(true);
  });
});


describe.each(SQL_DATABASES)('events out of order, and hub clocks (fourth review, %s)', (kind) => {
  it('called home during an outage that began before take-off, its rtl replayed ahead of the take-off and landing: not a delivery', async () => {
    rig = await OrderTestRig.open(kind);
    const o = await rig.assignedOrder('medical');
    await rig.ack(o.missionCommandId!, 'done', 'mission accepted');
    rig.hubOffline(ORIGIN);
    const t0 = rig.now;
    for (let i = 0; i < 20; i++) { rig.now += 60_000; await rig.tick(); }
    rig.hubOffline(ORIGIN, false); rig.refreshHubs();
    const home = rig.regions.hub(ORIGIN)!.location;
    rig.droneAt(ORIGIN, o.droneId!, { ...home, flightState: 'idle', missionId: null }); // live: back home
    // backlog, in lane order: urgent (rtl) first, then events
    await sendEvent(o.droneId!, o.missionId!, 'rtl', t0 + 3 * 60_000);
    await sendEvent(o.droneId!, o.missionId!, 'takeoff', t0 + 1 * 60_000);
    await sendEvent(o.droneId!, o.missionId!, 'landed', t0 + 6 * 60_000);
    const after = (await rig.store.get(o.id))!;
    expect(after.state).not.toBe('in_locker');
  });

  it('delivered, then called home on the way back during an outage, the rtl replayed first: still delivered, no second drone', async () => {
    rig = await OrderTestRig.open(kind);
    const o = await rig.assignedOrder('medical');
    await rig.ack(o.missionCommandId!, 'done');
    await rig.droneEvent(ORIGIN, o.droneId!, o.missionId!, 'takeoff');
    rig.hubOffline(ORIGIN);
    const t0 = rig.now;
    rig.now += 20 * 60_000;
    rig.hubOffline(ORIGIN, false); rig.refreshHubs();
    const home = rig.regions.hub(ORIGIN)!.location;
    rig.droneAt(ORIGIN, o.droneId!, { ...home, flightState: 'idle', missionId: null });
    await sendEvent(o.droneId!, o.missionId!, 'rtl', t0 + 12 * 60_000);     // lane 0 first
    await sendEvent(o.droneId!, o.missionId!, 'landed', t0 + 8 * 60_000);   // at the destination (delivered)
    await sendEvent(o.droneId!, o.missionId!, 'landed', t0 + 17 * 60_000);  // home
    rig.now += 2_000; rig.refreshHubs();
    for (const d of rig.region.hubs.find((h) => h.id === ORIGIN)!.drones) rig.droneAt(ORIGIN, d.id, { ...home, flightState: 'idle', missionId: null });
    await rig.tick(); await rig.tick();
    const after = (await rig.store.get(o.id))!;
    expect(rig.missionsFor(o.id)).toHaveLength(1);
  });

  it('a hub clock 90 s behind: called home while armed, back on the pad, the order is planned again', async () => {
    rig = await OrderTestRig.open(kind);
    const o = await rig.assignedOrder('medical');
    const skew = -90_000;
    await sendEvent(o.droneId!, o.missionId!, 'armed', rig.now + skew, false);
    rig.now += 3_000;
    await sendEvent(o.droneId!, o.missionId!, 'rtl', rig.now + skew, false);
    const home = rig.regions.hub(ORIGIN)!.location;
    for (let i = 0; i < 50; i++) {
      rig.now += 60_000; rig.refreshHubs();
      reportSkewed(o.droneId!, { ...home, flightState: 'idle', missionId: null }, skew);
      await rig.tick();
    }
    const moves = (await rig.store.auditOf(o.id)).map((a) => `${a.from}->${a.to}: ${a.reason}`);
    expect(moves.some((m) => /in_flight->pending/.test(m))).toBe(true);
  });

  it('a hub clock 90 s behind: a drone on the pad with the mission after the agent timed out is planned again after the take-off timeout', async () => {
    rig = await OrderTestRig.open(kind);
    const o = await rig.assignedOrder('medical');
    await rig.ack(o.missionCommandId!, 'failed', TIMEOUT);
    const home = rig.regions.hub(ORIGIN)!.location;
    for (let i = 0; i < 50; i++) {
      rig.now += 60_000; rig.refreshHubs();
      reportSkewed(o.droneId!, { ...home, flightState: 'fault', missionId: o.missionId }, -90_000);
      await rig.tick();
      if ((await rig.store.get(o.id))!.missionId !== o.missionId) break;
    }
    const moves = (await rig.store.auditOf(o.id)).map((a) => `${a.from}->${a.to}: ${a.reason}`);
    expect(moves.some((m) => /mission_unknown->pending/.test(m))).toBe(true);
  });

  it('waiting in mission_unknown, its hub just back: a drone on the ground at the destination with the mission is not re-planned; the replayed take-off and landing deliver', async () => {
    rig = await OrderTestRig.open(kind);
    const o = await rig.assignedOrder('medical');
    await rig.ack(o.missionCommandId!, 'failed', TIMEOUT);
    await rig.tick();
    expect(await rig.state(o.id)).toBe('mission_unknown');
    rig.hubOffline(ORIGIN);
    const t0 = rig.now;
    for (let i = 0; i < 10; i++) { rig.now += 60_000; await rig.tick(); }
    rig.hubOffline(ORIGIN, false); rig.refreshHubs();
    const dest = rig.regions.hub(DEST)!.location;
    rig.droneAt(ORIGIN, o.droneId!, { ...dest, flightState: 'charging', missionId: o.missionId }); // charging at the destination for the way home
    await rig.tick();
    await sendEvent(o.droneId!, o.missionId!, 'takeoff', t0 + 60_000);
    await sendEvent(o.droneId!, o.missionId!, 'landed', t0 + 6 * 60_000);
    const after = (await rig.store.get(o.id))!;
    const moves = (await rig.store.auditOf(o.id)).map((a) => `${a.from}->${a.to}: ${a.reason}`);
    expect(after.state).toBe('in_locker');
  });
});

describe.each(SQL_DATABASES)('arrival by position waits for the hub\'s backlog (fifth review, %s)', (kind) => {
  it('a drone aborted during its hub\'s outage lands at the destination\'s hub: the round does not take its position for the delivery before the rtl in the backlog', async () => {
    rig = await OrderTestRig.open(kind);
    const o = await rig.assignedOrder('medical');
    await rig.ack(o.missionCommandId!, 'done');
    await rig.droneEvent(ORIGIN, o.droneId!, o.missionId!, 'takeoff');
    rig.hubOffline(ORIGIN);
    const t0 = rig.now;
    for (let i = 0; i < 10; i++) { rig.now += 60_000; await rig.tick(); }
    rig.hubOffline(ORIGIN, false); rig.refreshHubs();
    rig.droneAt(ORIGIN, o.droneId!, { ...rig.regions.hub(DEST)!.location, flightState: 'idle', missionId: null });
    await rig.tick(); // a round before the backlog is replayed
    await sendEvent(o.droneId!, o.missionId!, 'rtl', t0 + 3 * 60_000);
    await sendEvent(o.droneId!, o.missionId!, 'landed', t0 + 6 * 60_000);
    const after = (await rig.store.get(o.id))!;
    expect(after.state).not.toBe('in_locker');
    expect(after.pickupReveal).toBeNull();
  });

  it('a drone at the destination with no landing event is delivered by its position once its hub is settled (the fallback still works)', async () => {
    rig = await OrderTestRig.open(kind);
    const o = await rig.assignedOrder('medical');
    await rig.droneEvent(ORIGIN, o.droneId!, o.missionId!, 'takeoff');
    rig.now += 5 * 60_000; rig.refreshHubs();
    rig.droneAt(ORIGIN, o.droneId!, { ...rig.regions.hub(DEST)!.location, flightState: 'landed', missionId: o.missionId });
    await rig.tick();
    expect(await rig.state(o.id)).toBe('in_locker');
  });
});

describe.each(SQL_DATABASES)('locker reservations (%s)', (kind) => {
  it('a compartment still reserved for a cancelled order is asked to release again once its hub is back (the first release expired while it was offline), every 10 minutes at most', async () => {
    rig = await OrderTestRig.open(kind);
    const o = await rig.assignedOrder('medical');
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
    const o = await rig.assignedOrder('medical');
    const bank = rig.live.hubs.get(DEST)!.devices.get(o.lockerId!)!;
    const reported = bank.telemetry as LockerTelemetry;
    bank.telemetry = { ...reported, compartments: reported.compartments.map((c) => (c.id === o.compartmentId ? { ...c, reservedFor: o.id } : c)) };
    await rig.ack(o.missionCommandId!, 'done');
    for (let i = 0; i < 3; i++) { rig.now += 60_000; rig.refreshHubs(); await rig.tick(); }
    expect(rig.sent.filter((s) => s.command.command === 'locker.release')).toHaveLength(0);
  });
});
