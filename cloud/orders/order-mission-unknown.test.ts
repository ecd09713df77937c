import { afterEach, describe, expect, it } from 'vitest';
import { SQL_DATABASES } from '../../test/support/test-database.ts';
import { ORIGIN, OrderTestRig } from './order-test-rig.ts';

/** Defect 5 of issue 12: a drone that answers its mission after the hub agent's timeout. */
let rig: OrderTestRig;
afterEach(async () => rig?.close());

const TIMEOUT = 'the device did not answer within 10 s'; // what the hub agent sends (edge/agent.ts)


describe.each(SQL_DATABASES)('a mission answered after the agent timed out (%s)', (kind) => {
  it('waits in mission_unknown (no second mission), and the late done is recorded as done with its history', async () => {
    rig = await OrderTestRig.open(kind);
    const o = await rig.assignedOrder();
    rig.now += 10_000;
    await rig.ack(o.missionCommandId!, 'failed', TIMEOUT);
    await rig.tick();
    expect((await rig.store.get(o.id))!.state).toBe('mission_unknown');
    for (let i = 0; i < 10; i++) {
      rig.now += 60_000;
      await rig.tick();
    }
    expect(rig.missionsFor(o.id)).toHaveLength(1);
    expect((await rig.store.get(o.id))!.state).toBe('mission_unknown');

    await rig.ack(o.missionCommandId!, 'done', 'mission accepted');
    expect(await rig.commands.get(o.missionCommandId!)).toMatchObject({ state: 'done', detail: 'mission accepted' });
    expect((await rig.commands.history(o.missionCommandId!)).map((h) => h.state)).toEqual(['failed', 'done']);
    await rig.tick();
    expect((await rig.store.get(o.id))!.state).toBe('assigned');
    await rig.droneEvent(ORIGIN, o.droneId!, o.missionId!, 'takeoff');
    expect((await rig.store.get(o.id))!.state).toBe('in_flight');
    expect(rig.missionsFor(o.id)).toHaveLength(1);
  });

  it('is settled by the drone\'s telemetry showing the mission in the air', async () => {
    rig = await OrderTestRig.open(kind);
    const o = await rig.assignedOrder();
    await rig.ack(o.missionCommandId!, 'failed', TIMEOUT);
    await rig.tick();
    rig.now += 30_000;
    rig.droneAt(ORIGIN, o.droneId!, { lat: 36.39, lon: 136.482, altM: 60, flightState: 'mission', missionId: o.missionId });
    await rig.tick();
    expect((await rig.store.get(o.id))!.state).toBe('in_flight');
    expect(rig.missionsFor(o.id)).toHaveLength(1);
  });

  it('after a flight\'s worth of silence: retried only if the drone was seen on the ground without it, otherwise failed for staff to check', async () => {
    rig = await OrderTestRig.open(kind);
    const o = await rig.assignedOrder();
    await rig.ack(o.missionCommandId!, 'failed', TIMEOUT);
    await rig.tick();
    rig.now += 46 * 60_000;
    rig.droneAt(ORIGIN, o.droneId!, { lat: 36.376, lon: 136.48, flightState: 'idle', missionId: null });
    await rig.tick();
    expect((await rig.store.get(o.id))!.attempts).toBe(1);
    expect(['pending', 'assigned']).toContain((await rig.store.get(o.id))!.state);

    const other = await OrderTestRig.open(kind);
    try {
      const rig1 = rig;
      rig = other;
      const p = await rig.assignedOrder();
      await rig.ack(p.missionCommandId!, 'failed', TIMEOUT);
      await rig.tick();
      rig.now += 46 * 60_000; // no telemetry at all since
      await rig.tick();
      expect((await rig.store.get(p.id))!.state).toBe('failed');
      expect(rig.missionsFor(p.id)).toHaveLength(1);
      rig = rig1;
    } finally {
      await other.close();
    }
  });
});
