import { describe, expect, it } from 'vitest';
import { DroneEvent, DroneTelemetry, type Command, type HubSpec } from '../../contract/index.ts';
import { DroneModel } from './drone-model.ts';
import { haversineM as distanceM } from '../../shared/great-circle.ts';
import { MessageIds } from './message-ids.ts';
import { createRng, seedFor } from './seeded-rng.ts';
import { loadDemoRegion, makeCommand, T0 } from './test-region.ts';

const region = loadDemoRegion();
const hubById = new Map(region.hubs.map((h) => [h.id, h]));

function makeDrone(hub: HubSpec, droneIndex = 0, seed = 1): DroneModel {
  const spec = hub.drones[droneIndex]!;
  return new DroneModel({
    hubId: hub.id,
    spec,
    home: { id: hub.id, location: hub.location },
    destinations: region.hubs.filter((h) => h.id !== hub.id).map((h) => ({ id: h.id, location: h.location })),
    rng: createRng(seedFor(seed, hub.id, spec.id)),
    ids: new MessageIds('boot1'),
  });
}

/** Flies a drone for `hours` simulated hours, 1 s steps, telemetry every second. */
function fly(drone: DroneModel, hours: number): { telemetry: DroneTelemetry[]; events: DroneEvent[] } {
  const telemetry: DroneTelemetry[] = [];
  const events: DroneEvent[] = [];
  for (let s = 1; s <= hours * 3600; s++) {
    const now = T0 + s * 1000;
    events.push(...drone.step(now, 1));
    telemetry.push(drone.telemetry(now));
  }
  return { telemetry, events };
}

const kibagata = hubById.get('rs-komatsu-kibagata')!;

describe('DroneModel', () => {
  const { telemetry, events } = fly(makeDrone(kibagata), 2);

  it('emits only messages that pass the contract schemas', () => {
    for (const m of telemetry) expect(DroneTelemetry.safeParse(m).error).toBeUndefined();
    for (const m of events) expect(DroneEvent.safeParse(m).error).toBeUndefined();
    const ids = [...telemetry, ...events].map((m) => m.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('flies missions to other hubs: climbs to ~60 m, cruises at ~10 m/s and lands there', () => {
    const landedAt = events.filter((e) => e.event === 'landed').map((e) => e.detail);
    const elsewhere = landedAt.filter((d) => d !== `at ${kibagata.id}`);
    expect(elsewhere.length).toBeGreaterThan(0);
    expect(events.some((e) => e.event === 'mission_complete')).toBe(true);

    // On the ground at another hub: exactly at its position, altitude 0.
    const landedAway = telemetry.filter((t) => t.flightState === 'landed' && distanceM(t, kibagata.location) > 1000);
    expect(landedAway.length).toBeGreaterThan(0);
    for (const t of landedAway) {
      expect(t.altM).toBe(0);
      const nearest = Math.min(...region.hubs.map((h) => distanceM(t, h.location)));
      expect(nearest).toBeLessThan(1);
    }

    const cruise = telemetry.filter((t) => t.flightState === 'mission');
    expect(cruise.length).toBeGreaterThan(300);
    expect(Math.max(...cruise.map((t) => t.altM))).toBeCloseTo(60, 0);
    for (let i = 1; i < telemetry.length; i++) {
      const [a, b] = [telemetry[i - 1]!, telemetry[i]!];
      if (a.flightState === 'mission' && b.flightState === 'mission') {
        const moved = distanceM(a, b);
        expect(moved).toBeGreaterThan(8.5);
        expect(moved).toBeLessThan(11.5);
      }
    }
    const climbs = telemetry.filter((t) => t.flightState === 'takeoff').map((t) => t.altM);
    expect(Math.min(...climbs)).toBeLessThanOrEqual(3.1); // 3 m/s climb sampled every second
  });

  it('keeps the battery in 0–100, draining in flight and charging on the pad', () => {
    for (const t of telemetry) {
      expect(t.batteryPct).toBeGreaterThanOrEqual(0);
      expect(t.batteryPct).toBeLessThanOrEqual(100);
    }
    let drained = 0;
    let charged = 0;
    for (let i = 1; i < telemetry.length; i++) {
      const [a, b] = [telemetry[i - 1]!, telemetry[i]!];
      if (a.flightState === 'mission' && b.flightState === 'mission') {
        expect(b.batteryPct).toBeLessThanOrEqual(a.batteryPct);
        drained += a.batteryPct - b.batteryPct;
      }
      if (a.flightState === 'charging' && b.flightState === 'charging') {
        expect(b.batteryPct).toBeGreaterThanOrEqual(a.batteryPct);
        charged += b.batteryPct - a.batteryPct;
      }
    }
    expect(drained).toBeGreaterThan(20);
    expect(charged).toBeGreaterThan(10);
  });

  it('carries 0–5 kg, keeps Remote ID on and never plans a flight below the reserve', () => {
    expect(telemetry.every((t) => t.remoteIdActive)).toBe(true);
    expect(telemetry.every((t) => t.payloadKg >= 0 && t.payloadKg <= 5)).toBe(true);
    expect(telemetry.some((t) => t.flightState === 'mission' && t.payloadKg > 0)).toBe(true);
    // Legs are planned with a 30 % reserve; wind may eat into it, but a drone never runs flat.
    expect(Math.min(...telemetry.map((t) => t.batteryPct))).toBeGreaterThan(10);
  });

  it('drains faster with a heavier payload', () => {
    const rates = new Map<string, number[]>();
    for (let i = 1; i < telemetry.length; i++) {
      const [a, b] = [telemetry[i - 1]!, telemetry[i]!];
      if (a.flightState !== 'mission' || b.flightState !== 'mission') continue;
      const key = a.payloadKg > 2.5 ? 'heavy' : a.payloadKg === 0 ? 'empty' : 'light';
      rates.set(key, [...(rates.get(key) ?? []), a.batteryPct - b.batteryPct]);
    }
    const mean = (xs: number[] | undefined) => (xs && xs.length ? xs.reduce((s, x) => s + x, 0) / xs.length : NaN);
    const empty = mean(rates.get('empty'));
    // 100 % per endurance empty (the demo aircraft: 40 min → ~0.042 %/s); wind factor ±15 %.
    const perS = 100 / region.hubs.flatMap((h) => h.drones)[0]!.enduranceS;
    expect(empty).toBeGreaterThan(perS * 0.8);
    expect(empty).toBeLessThan(perS * 1.3);
  });

  it('every drone of the demo region flies at least one mission in 2 hours', () => {
    for (const hub of region.hubs) {
      for (let i = 0; i < hub.drones.length; i++) {
        const drone = makeDrone(hub, i, 7);
        expect(drone.destinations.length, `${hub.id}/${hub.drones[i]!.id} has no reachable hub`).toBeGreaterThan(0);
        const run = fly(drone, 2);
        expect(run.events.filter((e) => e.event === 'mission_started').length, `${hub.id}/${drone.device}`).toBeGreaterThan(0);
      }
    }
  });

  it('gives the same output for the same seed, and different output for another seed', () => {
    const a = fly(makeDrone(kibagata, 1, 42), 0.5);
    const b = fly(makeDrone(kibagata, 1, 42), 0.5);
    const c = fly(makeDrone(kibagata, 1, 43), 0.5);
    expect(b).toEqual(a);
    expect(c.telemetry).not.toEqual(a.telemetry);
  });

  it('gives the same flight whatever the step size', () => {
    const fine = makeDrone(kibagata, 0, 5);
    const coarse = makeDrone(kibagata, 0, 5);
    for (let s = 1; s <= 1800; s++) fine.step(T0 + s * 1000, 1);
    for (let s = 1; s <= 180; s++) coarse.step(T0 + s * 10_000, 10);
    const [f, c] = [fine.telemetry(T0), coarse.telemetry(T0)];
    expect({ ...c, id: '' }).toEqual({ ...f, id: '' });
  });

  it('forces an event on demand', () => {
    const drone = makeDrone(kibagata);
    const e = drone.force(T0, 'geofence_breach', 'entered no-fly zone');
    expect(DroneEvent.parse(e)).toMatchObject({ event: 'geofence_breach', severity: 'warning', detail: 'entered no-fly zone' });
  });
});

describe('DroneModel commands', () => {
  /** Drone 1 at Kibagata that never starts a mission by itself. */
  const quietDrone = (initialBatteryPct = 100): DroneModel =>
    new DroneModel({
      hubId: kibagata.id,
      spec: kibagata.drones[0]!,
      home: { id: kibagata.id, location: kibagata.location },
      destinations: region.hubs.filter((h) => h.id !== kibagata.id).map((h) => ({ id: h.id, location: h.location })),
      rng: createRng(11),
      ids: new MessageIds('boot1'),
      params: { meanIdleS: 1e12 },
      initialBatteryPct,
    });
  const cmd = (command: Command['command'], args: Command['args'] = {}) => makeCommand(kibagata.id, 'drone-1', command, args);
  /** Steps `seconds` simulated seconds from `t` (ms), collecting events and 1 Hz telemetry. */
  const advance = (drone: DroneModel, fromMs: number, seconds: number) => {
    const events: DroneEvent[] = [];
    const telemetry: DroneTelemetry[] = [];
    for (let s = 1; s <= seconds; s++) {
      events.push(...drone.step(fromMs + s * 1000, 1));
      telemetry.push(drone.telemetry(fromMs + s * 1000));
    }
    return { events, telemetry, endMs: fromMs + seconds * 1000 };
  };
  const kokufu = hubById.get('nomi-kokufu')!; // 4.5 km from Kibagata

  it('starts a commanded mission at once and flies it to the end', () => {
    const drone = quietDrone();
    const out = drone.handle(T0, cmd('drone.mission', { to: kokufu.id, payloadKg: 2 }));
    expect(out).toMatchObject({ result: 'done', changed: true });
    expect(out.events.map((e) => DroneEvent.parse(e).event)).toEqual(['armed']);
    const missionId = out.events[0]!.missionId!;
    expect(out.detail).toBe(`mission ${missionId} to ${kokufu.id}`);
    expect(drone.telemetry(T0)).toMatchObject({ flightState: 'armed', payloadKg: 2, missionId });

    const flight = advance(drone, T0, 3 * 3600);
    expect(flight.events.find((e) => e.event === 'landed')!.detail).toBe(`at ${kokufu.id}`);
    const complete = flight.events.filter((e) => e.event === 'mission_complete');
    expect(complete).toHaveLength(1);
    expect(complete[0]!.missionId).toBe(missionId);
  });

  it('rejects a mission it cannot fly, saying why, and stays on the pad', () => {
    const cases: [DroneModel, Command['args'], RegExp][] = [
      [quietDrone(50), { to: kokufu.id, payloadKg: 0 }, /battery 50 % is too low: 4\.5 km with 0 kg needs \d+(\.\d)? % plus the 30 % reserve/],
      [quietDrone(), { to: 'hakusan-chiyono' }, /hakusan-chiyono is out of range/],
      [quietDrone(), { to: 'atlantis' }, /unknown hub atlantis/],
      [quietDrone(), { to: kibagata.id }, /already at rs-komatsu-kibagata/],
      [quietDrone(), { to: kokufu.id, payloadKg: 9 }, /over the maximum of 5 kg/],
      [quietDrone(), { to: 'Not A Hub' }, /args\.to/],
      [quietDrone(), { payloadKg: 1 }, /either `to`/],
    ];
    for (const [drone, args, reason] of cases) {
      const out = drone.handle(T0, cmd('drone.mission', args));
      expect(out, JSON.stringify(args)).toMatchObject({ result: 'rejected', events: [], changed: false });
      expect(out.detail).toMatch(reason);
      expect(drone.telemetry(T0)).toMatchObject({ flightState: expect.stringMatching(/^(idle|charging)$/), missionId: null });
    }
  });

  it('rejects a second mission while busy, and answers a repeated command without crashing', () => {
    const drone = quietDrone();
    const first = cmd('drone.mission', { to: kokufu.id });
    expect(drone.handle(T0, first).result).toBe('done');
    expect(drone.handle(T0, first)).toMatchObject({ result: 'rejected', detail: expect.stringMatching(/^busy: armed on mission /) });
    advance(drone, T0, 60);
    expect(drone.handle(T0 + 60_000, cmd('drone.mission', { to: 'nomi-wake' })).detail).toMatch(/^busy: takeoff|^busy: mission/);
  });

  it('rtl in the air turns back home: flight state rtl, lands at home, no mission_complete', () => {
    const drone = quietDrone();
    drone.handle(T0, cmd('drone.mission', { to: kokufu.id, payloadKg: 2 }));
    const out1 = advance(drone, T0, 120); // armed 3 s, climb 20 s, ~1 km of cruise
    expect(out1.telemetry.at(-1)!.flightState).toBe('mission');
    const rtl = drone.handle(out1.endMs, cmd('drone.rtl'));
    expect(rtl).toMatchObject({ result: 'done', detail: `returning to ${kibagata.id}` });
    expect(rtl.events.map((e) => [e.event, e.severity])).toEqual([['rtl', 'warning']]);
    const back = advance(drone, out1.endMs, 600);
    expect(back.telemetry[0]).toMatchObject({ flightState: 'rtl', payloadKg: 2 }); // the undelivered parcel comes back
    expect(back.events.filter((e) => e.event === 'landed').map((e) => e.detail)).toEqual([`at ${kibagata.id}`]);
    expect(back.events.some((e) => e.event === 'mission_complete' || e.event === 'mission_started')).toBe(false);
    const end = back.telemetry.at(-1)!;
    expect(end).toMatchObject({ altM: 0, missionId: null, payloadKg: 0 });
    expect(distanceM(end, kibagata.location)).toBeLessThan(1);
    // A second rtl on the pad is harmless.
    expect(drone.handle(back.endMs, cmd('drone.rtl'))).toMatchObject({ result: 'done', events: [] });
  });

  it('abort before take-off cancels the mission on the pad', () => {
    const drone = quietDrone();
    drone.handle(T0, cmd('drone.mission', { to: kokufu.id, payloadKg: 3 }));
    const out = drone.handle(T0 + 1000, cmd('drone.abort'));
    expect(out).toMatchObject({ result: 'done', detail: expect.stringMatching(/cancelled before take-off/) });
    expect(out.events.map((e) => e.event)).toEqual(['rtl']);
    expect(drone.telemetry(T0 + 1000)).toMatchObject({ flightState: expect.stringMatching(/^(idle|charging)$/), missionId: null, payloadKg: 0 });
    expect(advance(drone, T0 + 1000, 300).events).toEqual([]);
  });

  it('abort in the air lands at the nearest hub; the drone flies home later without completing the mission', () => {
    const drone = quietDrone();
    drone.handle(T0, cmd('drone.mission', { to: kokufu.id }));
    const out1 = advance(drone, T0, 400); // ~3.8 km out: the destination is now the nearest hub
    const abort = drone.handle(out1.endMs, cmd('drone.abort'));
    expect(abort).toMatchObject({ result: 'done', detail: `already bound for ${kokufu.id}, the nearest hub` });
    const rest = advance(drone, out1.endMs, 3 * 3600);
    expect(rest.events.filter((e) => e.event === 'landed').map((e) => e.detail)).toEqual([`at ${kokufu.id}`, `at ${kibagata.id}`]);
    expect(rest.events.some((e) => e.event === 'mission_complete')).toBe(false);
    expect(rest.telemetry.at(-1)).toMatchObject({ missionId: null });

    // Close to home, the nearest hub is home.
    const early = quietDrone();
    early.handle(T0, cmd('drone.mission', { to: kokufu.id }));
    const e1 = advance(early, T0, 60);
    expect(early.handle(e1.endMs, cmd('drone.abort'))).toMatchObject({ result: 'done', detail: `returning to ${kibagata.id}` });
    const e2 = advance(early, e1.endMs, 600);
    expect(e2.events.filter((e) => e.event === 'landed').map((e) => e.detail)).toEqual([`at ${kibagata.id}`]);
  });

  it('rtl while unloading at the destination sends it home as soon as the battery allows', () => {
    const drone = quietDrone();
    drone.handle(T0, cmd('drone.mission', { to: kokufu.id }));
    let t = T0;
    let landed = false;
    while (!landed) {
      t += 1000;
      landed = drone.step(t, 1).some((e) => e.event === 'landed');
    }
    const out = drone.handle(t, cmd('drone.rtl'));
    expect(out).toMatchObject({ result: 'done', detail: `at ${kokufu.id}; flies home as soon as the battery allows` });
    const rest = advance(drone, t, 3 * 3600);
    expect(rest.events.filter((e) => e.event === 'landed').map((e) => e.detail)).toEqual([`at ${kibagata.id}`]);
    expect(rest.events.some((e) => e.event === 'mission_complete')).toBe(false);
  });

  it('refuses locker commands', () => {
    expect(quietDrone().handle(T0, makeCommand(kibagata.id, 'drone-1', 'locker.unlock', { compartment: 'A01' }))).toMatchObject({ result: 'rejected' });
  });
});
