import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { planDispatch, REASON_CODES, type DispatchInput, type DroneAssignment, type Reason, type ReasonCode } from './dispatch-engine.ts';
import { estimateStraightRoundTrip } from './energy-model.ts';
import { haversineM } from './geo.ts';
import { CENTRE, NOW, compartment, drone, hub, hubsWith, offset, order, outcomeOf, scenario, weather } from './dispatch-fixtures.ts';

const plan = (input: DispatchInput) => planDispatch(input, NOW);

function assigned(input: DispatchInput, orderId = 'o1'): DroneAssignment {
  const o = outcomeOf(plan(input), orderId);
  if (o.kind !== 'drone') throw new Error(`expected a drone for ${orderId}, got ${JSON.stringify(o)}`);
  return o;
}

function reasons(input: DispatchInput, orderId = 'o1'): Reason[] {
  const o = outcomeOf(plan(input), orderId);
  if (o.kind !== 'wait') throw new Error(`expected ${orderId} to wait, got ${JSON.stringify(o)}`);
  return o.reasons;
}

const codes = (rs: Reason[]): ReasonCode[] => rs.map((r) => r.code);

describe('planDispatch: a plain delivery', () => {
  it('assigns the drone, reserves the smallest fitting compartment, and reports energy, reserve and ETA', () => {
    const input = scenario();
    const a = assigned(input);
    expect(a).toMatchObject({ droneId: 'd1', compartmentId: 'A01', lockerId: 'locker-a', reservePct: 25, batteryPct: 100, late: false });
    expect(a.legs).toHaveLength(1);
    expect(a.distanceM).toBeCloseTo(1500, -1);
    // Wind 2 m/s from the west: tailwind out (east), headwind back.
    const e = estimateStraightRoundTrip({ distanceM: a.distanceM, payloadKg: 1.5, outboundHeadwindMps: -2, returnHeadwindMps: 2 });
    expect(e.ok && a.energyNeededPct).toBeCloseTo(e.ok ? e.energyPct : NaN, 3);
    expect(a.etaMs).toBe(NOW + Math.round((e.ok ? e.outboundArrivalS : NaN) * 1000));
    expect(a.returnMs).toBeGreaterThan(a.etaMs);
    expect(plan(input).stats).toEqual({ drone: 1, ground: 0, wait: 0 });
  });

  it('gives a larger compartment when the right size is taken, and the right temperature class', () => {
    const small = scenario({ hubs: hubsWith(scenario(), 'dest', (h) => ({ ...h, compartments: [compartment('A01', { size: 'S', status: 'occupied' }), compartment('A03', { size: 'L' })] })) });
    expect(assigned(small).compartmentId).toBe('A03');
    const chilled = scenario({ orders: [order('o1', { tempClass: 'chilled' })] });
    expect(assigned(chilled).compartmentId).toBe('C01');
  });

  it('derives the size from the weight when the order does not say (≤ 2 kg S, ≤ 4 kg M, else L)', () => {
    expect(assigned(scenario({ orders: [order('o1', { weightKg: 2 })] })).compartmentId).toBe('A01');
    expect(assigned(scenario({ orders: [order('o1', { weightKg: 2.1 })] })).compartmentId).toBe('A02');
    expect(assigned(scenario({ orders: [order('o1', { weightKg: 4.5 })] })).compartmentId).toBe('A03');
    expect(assigned(scenario({ orders: [order('o1', { weightKg: 0.5, size: 'L' })] })).compartmentId).toBe('A03');
  });

  it('uses a compartment already reserved for this very order', () => {
    const input = scenario({
      hubs: hubsWith(scenario(), 'dest', (h) => ({ ...h, compartments: [compartment('A01', { size: 'S', status: 'reserved', reservedFor: 'o1' }), compartment('A02', { size: 'S' })] })),
    });
    expect(assigned(input).compartmentId).toBe('A01');
  });

  it('flies to a landing site directly in normal mode, with no compartment', () => {
    const a = assigned(scenario({ orders: [order('o1', { destination: { type: 'site', siteId: 'shelter-1' } })] }));
    expect(a.compartmentId).toBeUndefined();
    expect(a.routeId).toBeUndefined();
    expect(a.distanceM).toBeCloseTo(1200, -1);
  });

  it('marks a mission that lands after the deadline as late (still flown)', () => {
    expect(assigned(scenario({ orders: [order('o1', { deadline: NOW + 60_000 })] })).late).toBe(true);
    expect(assigned(scenario({ orders: [order('o1', { deadline: NOW + 3_600_000 })] })).late).toBe(false);
  });

  it('throws on duplicate ids (a caller bug, not a reason)', () => {
    expect(() => plan(scenario({ orders: [order('o1'), order('o1')] }))).toThrow(/duplicate order id/);
    const h = scenario().hubs[0]!;
    expect(() => plan(scenario({ drones: [drone('d1', h), drone('d1', h)] }))).toThrow(/duplicate drone id/);
  });
});

/**
 * One scenario per reason code; typed as a Record so that adding a code without a scenario does not
 * compile, and checked against REASON_CODES below so the registry cannot drift.
 */
const REASON_SCENARIOS: Record<ReasonCode, { input: () => DispatchInput; expect: Partial<Reason> }> = {
  unknown_hub: { input: () => scenario({ orders: [order('o1', { destination: { type: 'locker', hub: 'nowhere' } })] }), expect: { hubId: 'nowhere' } },
  unregistered_site: { input: () => scenario({ orders: [order('o1', { destination: { type: 'site', siteId: 'somewhere' } })] }), expect: { siteId: 'somewhere' } },
  no_registered_route: {
    input: () => scenario({ mode: 'emergency', orders: [order('o1', { priority: 'relief', destination: { type: 'site', siteId: 'shelter-1' } })] }),
    expect: { originHub: 'origin', siteId: 'shelter-1' },
  },
  held_emergency: { input: () => scenario({ mode: 'emergency' }), expect: { hubId: 'origin' } },
  no_fly_zone: {
    input: () => scenario({ noFlyZones: [{ id: 'nfz-1', polygon: [offset(CENTRE, 700, -300), offset(CENTRE, 900, -300), offset(CENTRE, 900, 300), offset(CENTRE, 700, 300)] }] }),
    expect: { zoneIds: ['nfz-1'] },
  },
  no_compartment: {
    input: () => scenario({ hubs: hubsWith(scenario(), 'dest', (h) => ({ ...h, compartments: [compartment('A01', { status: 'occupied' }), compartment('A02', { status: 'fault' })] })) }),
    expect: { hubId: 'dest', size: 'S', tempClass: 'ambient' },
  },
  weather_unknown: { input: () => scenario({ hubs: hubsWith(scenario(), 'dest', (h) => ({ ...h, weather: weather({ observedAt: NOW - 11 * 60_000 }) })) }), expect: { hubId: 'dest' } },
  no_drone_at_origin: { input: () => scenario({ drones: [] }), expect: { hubId: 'origin' } },
  drone_busy: { input: () => scenario({ drones: [drone('d1', hub('origin', CENTRE), { state: { flightState: 'mission', missionId: 'm-9' } })] }), expect: { droneIds: ['d1'] } },
  drone_state_stale: { input: () => scenario({ drones: [drone('d1', hub('origin', CENTRE), { state: { observedAt: NOW - 5 * 60_000 } })] }), expect: { droneIds: ['d1'] } },
  over_payload: { input: () => scenario({ orders: [order('o1', { weightKg: 5.5 })] }), expect: { weightKg: 5.5, maxPayloadKg: 5, droneIds: ['d1'] } },
  wind_over_limit: {
    input: () => scenario({ hubs: hubsWith(scenario(), 'origin', (h) => ({ ...h, weather: weather({ windMps: 5, gustMps: 4.9 }) })) }),
    expect: { placeId: 'origin', windMps: 5, limitMps: 5, droneIds: ['d1'] },
  },
  gust_over_limit: {
    input: () => scenario({ hubs: hubsWith(scenario(), 'dest', (h) => ({ ...h, weather: weather({ windMps: 3, gustMps: 6.2 }) })) }),
    expect: { placeId: 'dest', gustMps: 6.2, limitMps: 5 },
  },
  rain_over_limit: { input: () => scenario({ hubs: hubsWith(scenario(), 'origin', (h) => ({ ...h, weather: weather({ rainMmPerH: 12 }) })) }), expect: { placeId: 'origin', rainMmPerH: 12, limitMmPerH: 10 } },
  headwind_too_strong: {
    // An operator whose own manual allows 15 m/s; 9 m/s from the east against a 10 m/s aircraft.
    input: () =>
      scenario({
        drones: [drone('d1', hub('origin', CENTRE), { limits: { windLimitMps: 15, gustLimitMps: 15 } })],
        hubs: scenario().hubs.map((h) => ({ ...h, weather: weather({ windMps: 9, gustMps: 10, windFromDeg: 90 }) })),
      }),
    expect: { minGroundSpeedMps: 2, droneIds: ['d1'] },
  },
  out_of_range: { input: () => scenario({ orders: [order('o1', { destination: { type: 'locker', hub: 'far' } })] }), expect: { usablePct: 75, droneIds: ['d1'] } },
  insufficient_battery: { input: () => scenario({ drones: [drone('d1', hub('origin', CENTRE), { state: { batteryPct: 40, flightState: 'charging' } })] }), expect: { availablePct: 15, reservePct: 25 } },
};

describe('planDispatch: every reason code', () => {
  for (const [code, s] of Object.entries(REASON_SCENARIOS) as [ReasonCode, (typeof REASON_SCENARIOS)[ReasonCode]][]) {
    it(`${code}: ${REASON_CODES[code].meaning}`, () => {
      const rs = reasons(s.input());
      const r = rs.find((x) => x.code === code);
      expect(r, JSON.stringify(rs)).toBeDefined();
      expect(r).toMatchObject(s.expect);
    });
  }

  it('the registry lists exactly the codes the engine produces, and the README documents each', () => {
    expect(Object.keys(REASON_CODES).sort()).toEqual(Object.keys(REASON_SCENARIOS).sort());
    const readme = readFileSync(new URL('./README.md', import.meta.url), 'utf8');
    for (const code of Object.keys(REASON_CODES)) expect(readme, code).toContain(`\`${code}\``);
  });
});

describe('planDispatch: drones', () => {
  it('only flies a drone idle or charging on its home pad, with no mission, not marked busy', () => {
    const origin = hub('origin', CENTRE);
    const base = scenario();
    expect(assigned({ ...base, drones: [drone('d1', origin, { state: { flightState: 'charging', batteryPct: 90 } })] }).droneId).toBe('d1');
    for (const state of [
      { flightState: 'landed' as const },
      { flightState: 'fault' as const },
      { missionId: 'm-1' },
      { busy: true },
      { position: offset(CENTRE, 300, 0) }, // not on the pad
    ]) {
      expect(codes(reasons({ ...base, drones: [drone('d1', origin, { state })] }))).toEqual(['drone_busy']);
    }
    // A drone based at another hub does not take this hub's orders, even when parked here.
    const other = hub('dest', offset(CENTRE, 1500, 0));
    expect(codes(reasons({ ...base, drones: [{ ...drone('d1', other), state: { ...drone('d1', other).state, position: CENTRE } }] }))).toEqual(['no_drone_at_origin']);
  });

  it('names the busy drones and the drone a higher-priority order took in this plan', () => {
    const origin = hub('origin', CENTRE);
    const input = scenario({
      drones: [drone('d1', origin), drone('d2', origin, { state: { flightState: 'rtl' } })],
      orders: [order('o1'), order('med', { priority: 'medical', createdAt: NOW - 1_000 })],
    });
    expect(assigned(input, 'med').droneId).toBe('d1');
    expect(reasons(input, 'o1')).toEqual([{ code: 'drone_busy', droneIds: ['d1', 'd2'] }]);
  });

  it('takes the drone with the least battery to spare (best fit), keeping full ones for longer trips', () => {
    const origin = hub('origin', CENTRE);
    const input = scenario({ drones: [drone('d-full', origin), drone('d-half', origin, { state: { batteryPct: 85 } })] });
    expect(assigned(input).droneId).toBe('d-half');
  });

  it('moves an earlier order to another drone to make room (augmenting path)', () => {
    // d-big carries 8 kg, d-small 5 kg. The medical order (2 kg) sorts first and best-fit would give it
    // d-big (less battery to spare); the 7 kg order can only go with d-big, so the medical order moves.
    const origin = hub('origin', CENTRE);
    const input = scenario({
      drones: [drone('d-big', origin, { limits: { maxPayloadKg: 8 }, state: { batteryPct: 90 } }), drone('d-small', origin)],
      orders: [order('med', { priority: 'medical', weightKg: 2 }), order('heavy', { weightKg: 7, size: 'L' })],
    });
    const p = plan(input);
    expect(outcomeOf(p, 'med')).toMatchObject({ kind: 'drone', droneId: 'd-small' });
    expect(outcomeOf(p, 'heavy')).toMatchObject({ kind: 'drone', droneId: 'd-big' });
  });

  it('moves an earlier order to another compartment to make room', () => {
    // Two compartments: S and L. The 1 kg order sorts first (medical) and gets S; the 4.5 kg needs L. Both fit.
    const origin = hub('origin', CENTRE);
    const input = scenario({
      hubs: hubsWith(scenario(), 'dest', (h) => ({ ...h, compartments: [compartment('A01', { size: 'S' }), compartment('A03', { size: 'L' })] })),
      drones: [drone('d1', origin), drone('d2', origin)],
      orders: [order('med', { priority: 'medical', weightKg: 1 }), order('big', { weightKg: 4.5 })],
    });
    const p = plan(input);
    expect(outcomeOf(p, 'med')).toMatchObject({ kind: 'drone', compartmentId: 'A01' });
    expect(outcomeOf(p, 'big')).toMatchObject({ kind: 'drone', compartmentId: 'A03' });
  });

  it('each drone and compartment at most once', () => {
    const origin = hub('origin', CENTRE);
    const input = scenario({ drones: [drone('d1', origin), drone('d2', origin)], orders: [order('a'), order('b'), order('c')] });
    const p = plan(input);
    const flights = p.outcomes.filter((o): o is DroneAssignment => o.kind === 'drone');
    expect(flights).toHaveLength(2);
    expect(new Set(flights.map((f) => f.droneId)).size).toBe(2);
    expect(new Set(flights.map((f) => f.compartmentId)).size).toBe(2);
    expect(outcomeOf(p, 'c')).toMatchObject({ kind: 'wait', reasons: [{ code: 'drone_busy' }] });
  });
});

describe('planDispatch: weather limits (≥ limit is forbidden)', () => {
  const at = (w: Partial<Parameters<typeof weather>[0]>, limits?: NonNullable<Parameters<typeof drone>[2]>['limits']): DispatchInput =>
    scenario({
      hubs: hubsWith(scenario(), 'origin', (h) => ({ ...h, weather: weather(w) })),
      drones: [drone('d1', hub('origin', CENTRE), limits ? { limits } : {})],
    });

  it('flies just under the limit and not at it', () => {
    expect(assigned(at({ windMps: 4.9, gustMps: 4.9 })).droneId).toBe('d1');
    expect(codes(reasons(at({ windMps: 5, gustMps: 5 })))).toEqual(['wind_over_limit', 'gust_over_limit']);
    expect(codes(reasons(at({ rainMmPerH: 10 })))).toEqual(['rain_over_limit']);
  });

  it('applies each operator/aircraft limit', () => {
    expect(assigned(at({ windMps: 6, gustMps: 8 }, { windLimitMps: 10, gustLimitMps: 12 })).droneId).toBe('d1');
    const origin = hub('origin', CENTRE);
    const mixed = scenario({
      hubs: hubsWith(scenario(), 'origin', (h) => ({ ...h, weather: weather({ windMps: 6, gustMps: 7 }) })),
      drones: [drone('d-std', origin), drone('d-rated', origin, { limits: { windLimitMps: 8, gustLimitMps: 10 } })],
    });
    expect(assigned(mixed).droneId).toBe('d-rated');
  });

  it('checks the destination too, and a landing site when it reports weather', () => {
    const dest = scenario({ hubs: hubsWith(scenario(), 'dest', (h) => ({ ...h, weather: weather({ windMps: 6 }) })) });
    expect(reasons(dest)).toContainEqual(expect.objectContaining({ code: 'wind_over_limit', placeId: 'dest' }));
    const siteOrder = order('o1', { destination: { type: 'site', siteId: 'shelter-1' } });
    const windySite = scenario({ orders: [siteOrder], sites: [{ id: 'shelter-1', kind: 'shelter', position: offset(CENTRE, 0, 1200), weather: weather({ gustMps: 8 }) }] });
    expect(reasons(windySite)).toContainEqual(expect.objectContaining({ code: 'gust_over_limit', placeId: 'shelter-1' }));
  });

  it('refuses to fly without a recent measurement at a hub', () => {
    const none = scenario({ hubs: hubsWith(scenario(), 'origin', (h) => ({ id: h.id, position: h.position, compartments: h.compartments ?? [] })) });
    expect(reasons(none)).toContainEqual({ code: 'weather_unknown', hubId: 'origin' });
  });

  it('costs more energy flying into the wind', () => {
    const calm = assigned(scenario({ hubs: scenario().hubs.map((h) => ({ ...h, weather: weather({ windMps: 0, gustMps: 0 }) })) }));
    const head = assigned(scenario({ hubs: scenario().hubs.map((h) => ({ ...h, weather: weather({ windMps: 4, gustMps: 4.5, windFromDeg: 90 }) })) }));
    expect(head.energyNeededPct).toBeGreaterThan(calm.energyNeededPct);
  });
});

describe('planDispatch: battery', () => {
  it('needs energy ≤ charge − reserve, with the higher reserve in emergency mode', () => {
    const origin = hub('origin', CENTRE);
    const needed = assigned(scenario()).energyNeededPct;
    const justEnough = 25 + needed + 0.01;
    const withBattery = (pct: number, mode: DispatchInput['mode'], priority: 'normal' | 'medical' = 'normal') =>
      scenario({ mode, drones: [drone('d1', origin, { state: { batteryPct: pct } })], orders: [order('o1', { priority })] });
    expect(assigned(withBattery(justEnough, 'normal')).reservePct).toBe(25);
    expect(codes(reasons(withBattery(justEnough - 0.02, 'normal')))).toEqual(['insufficient_battery']);
    expect(codes(reasons(withBattery(justEnough, 'emergency', 'medical')))).toEqual(['insufficient_battery']);
    expect(assigned(withBattery(justEnough + 10, 'emergency', 'medical')).reservePct).toBe(35);
  });

  it('takes the reserves from the options', () => {
    const input = scenario({ options: { reservePct: { normal: 40 } } });
    expect(assigned(input).reservePct).toBe(40);
  });
});

describe('planDispatch: no-fly zones', () => {
  const zone = [offset(CENTRE, 700, -300), offset(CENTRE, 900, -300), offset(CENTRE, 900, 300), offset(CENTRE, 700, 300)];

  it('ignores a temporary zone outside its active window', () => {
    expect(assigned(scenario({ noFlyZones: [{ id: 'tmp', polygon: zone, activeFrom: NOW + 60_000 }] })).droneId).toBe('d1');
    expect(assigned(scenario({ noFlyZones: [{ id: 'tmp', polygon: zone, activeUntil: NOW }] })).droneId).toBe('d1');
    expect(codes(reasons(scenario({ noFlyZones: [{ id: 'tmp', polygon: zone, activeFrom: NOW - 1, activeUntil: NOW + 1 }] })))).toContain('no_fly_zone');
  });

  it('keeps the configured margin', () => {
    const north = [offset(CENTRE, 700, 40), offset(CENTRE, 900, 40), offset(CENTRE, 900, 300), offset(CENTRE, 700, 300)];
    expect(assigned(scenario({ noFlyZones: [{ id: 'z', polygon: north }] })).droneId).toBe('d1');
    expect(codes(reasons(scenario({ noFlyZones: [{ id: 'z', polygon: north }], options: { noFlyMarginM: 50 } })))).toContain('no_fly_zone');
  });

  it('takes a registered route around a zone to a landing site', () => {
    const site = { id: 'shelter-1', kind: 'shelter' as const, position: offset(CENTRE, 1500, 0) };
    const input = scenario({
      mode: 'emergency',
      sites: [site],
      noFlyZones: [{ id: 'z', polygon: zone }],
      reliefRoutes: [
        { id: 'r-direct', originHub: 'origin', siteId: 'shelter-1' },
        { id: 'r-north', originHub: 'origin', siteId: 'shelter-1', waypoints: [offset(CENTRE, 800, 600)] },
      ],
      orders: [order('o1', { priority: 'relief', destination: { type: 'site', siteId: 'shelter-1' } })],
    });
    const a = assigned(input);
    expect(a.routeId).toBe('r-north');
    expect(a.legs).toHaveLength(2);
    expect(a.distanceM).toBeCloseTo(haversineM(CENTRE, offset(CENTRE, 800, 600)) + haversineM(offset(CENTRE, 800, 600), site.position), 3);
    expect(a.reservePct).toBe(35);
  });
});

describe('planDispatch: priority and emergency mode', () => {
  it('orders medical and relief first, then earliest deadline, no deadline last, then oldest', () => {
    const origin = hub('origin', CENTRE);
    const input = scenario({
      drones: [drone('d1', origin)],
      orders: [
        order('normal-old', { createdAt: NOW - 999_000 }),
        order('normal-deadline', { deadline: NOW + 7_200_000 }),
        order('relief-late', { priority: 'relief', deadline: NOW + 3_600_000 }),
        order('medical-soon', { priority: 'medical', deadline: NOW + 1_800_000 }),
        order('medical-none-old', { priority: 'medical', createdAt: NOW - 500_000 }),
        order('medical-none-new', { priority: 'medical', createdAt: NOW - 1_000 }),
      ],
    });
    expect(plan(input).outcomes.map((o) => o.orderId)).toEqual(['medical-soon', 'relief-late', 'medical-none-old', 'medical-none-new', 'normal-deadline', 'normal-old']);
    expect(outcomeOf(plan(input), 'medical-soon').kind).toBe('drone');
  });

  it('holds normal orders while the origin or the destination hub is in emergency mode, and flies them again after', () => {
    expect(reasons(scenario({ mode: { mode: 'normal', hubs: { dest: 'emergency' } } }))).toEqual([{ code: 'held_emergency', hubId: 'dest' }]);
    expect(reasons(scenario({ mode: { mode: 'emergency', hubs: { origin: 'emergency' } } }))).toEqual([{ code: 'held_emergency', hubId: 'origin' }]);
    expect(assigned(scenario({ mode: { mode: 'emergency', hubs: { origin: 'normal', dest: 'normal' } } })).droneId).toBe('d1');
    // Held, not sent by ground either.
    const withBus = scenario({ mode: 'emergency', groundRounds: [{ id: 'bus', fromHub: 'origin', toHub: 'dest', departures: [{ departsAt: NOW + 600_000, capacityKg: 50 }] }] });
    expect(outcomeOf(plan(withBus), 'o1').kind).toBe('wait');
  });

  it("'after-priority' lets normal orders go once no relief/medical order is left waiting", () => {
    const origin = hub('origin', CENTRE);
    const opts = { emergencyNormalOrders: 'after-priority' as const };
    const served = scenario({ mode: 'emergency', options: opts, drones: [drone('d1', origin), drone('d2', origin)], orders: [order('o1'), order('med', { priority: 'medical' })] });
    expect(outcomeOf(plan(served), 'med').kind).toBe('drone');
    expect(outcomeOf(plan(served), 'o1').kind).toBe('drone');
    const waiting = { ...served, drones: [drone('d1', origin)], orders: [order('o1'), order('med', { priority: 'medical' }), order('med2', { priority: 'medical' })] };
    expect(outcomeOf(plan(waiting), 'med2')).toMatchObject({ kind: 'wait', reasons: [{ code: 'drone_busy' }] });
    expect(reasons(waiting, 'o1')).toEqual([{ code: 'held_emergency', hubId: 'origin' }]);
    // A relief order that waiting cannot help (an unregistered site) does not hold everything.
    const hopeless = { ...served, orders: [order('o1'), order('r', { priority: 'relief', destination: { type: 'site', siteId: 'nowhere' } })] };
    expect(outcomeOf(plan(hopeless), 'o1').kind).toBe('drone');
  });

  it('relief to a landing site in emergency mode flies only a registered route', () => {
    const reliefToSite = order('o1', { priority: 'relief', destination: { type: 'site', siteId: 'shelter-1' } });
    const registered = scenario({ mode: 'emergency', orders: [reliefToSite], reliefRoutes: [{ id: 'r1', originHub: 'origin', siteId: 'shelter-1' }] });
    expect(assigned(registered).routeId).toBe('r1');
    expect(codes(reasons(scenario({ mode: 'emergency', orders: [reliefToSite], reliefRoutes: [{ id: 'r1', originHub: 'dest', siteId: 'shelter-1' }] })))).toEqual(['no_registered_route']);
  });

  it('opens relief-stock compartments only to relief orders in emergency mode', () => {
    const stockOnly = (mode: DispatchInput['mode'], priority: 'normal' | 'medical' | 'relief') =>
      scenario({
        mode,
        hubs: hubsWith(scenario(), 'dest', (h) => ({ ...h, compartments: [compartment('R01', { size: 'L', reliefStock: true })] })),
        orders: [order('o1', { priority })],
      });
    expect(assigned(stockOnly('emergency', 'relief')).compartmentId).toBe('R01');
    expect(codes(reasons(stockOnly('emergency', 'medical')))).toEqual(['no_compartment']);
    expect(codes(reasons(stockOnly('normal', 'relief')))).toEqual(['no_compartment']);
    // Ordinary compartments go first, so relief stock stays for what only it can take.
    const both = scenario({
      mode: 'emergency',
      hubs: hubsWith(scenario(), 'dest', (h) => ({ ...h, compartments: [compartment('R01', { size: 'L', reliefStock: true }), compartment('A03', { size: 'L' })] })),
      orders: [order('o1', { priority: 'relief' })],
    });
    expect(assigned(both).compartmentId).toBe('A03');
  });
});

describe('planDispatch: ground fallback (貨客混載)', () => {
  const bus = (departures: { departsAt: number; capacityKg: number }[], tempClasses?: ('ambient' | 'chilled' | 'frozen')[]) => ({
    id: 'bus-1',
    fromHub: 'origin',
    toHub: 'dest',
    departures,
    ...(tempClasses ? { tempClasses } : {}),
  });

  it('puts an order no drone can take on the earliest round with room that leaves before the deadline', () => {
    const input = scenario({
      drones: [],
      groundRounds: [bus([{ departsAt: NOW - 60_000, capacityKg: 100 }, { departsAt: NOW + 3_600_000, capacityKg: 2 }, { departsAt: NOW + 1_800_000, capacityKg: 100 }])],
      orders: [order('o1', { deadline: NOW + 7_200_000 })],
    });
    expect(outcomeOf(plan(input), 'o1')).toEqual({ kind: 'ground', orderId: 'o1', roundId: 'bus-1', departsAt: NOW + 1_800_000, reasons: [{ code: 'no_drone_at_origin', hubId: 'origin' }] });
  });

  it('respects capacity, the deadline and the temperature class', () => {
    const base = { drones: [], groundRounds: [bus([{ departsAt: NOW + 600_000, capacityKg: 3 }])] };
    const p = plan(scenario({ ...base, orders: [order('a', { weightKg: 2 }), order('b', { weightKg: 2 })] }));
    expect(p.stats).toEqual({ drone: 0, ground: 1, wait: 1 });
    expect(outcomeOf(plan(scenario({ ...base, orders: [order('o1', { deadline: NOW + 600_000 })] })), 'o1').kind).toBe('wait');
    expect(outcomeOf(plan(scenario({ ...base, orders: [order('o1', { tempClass: 'chilled' })] })), 'o1').kind).toBe('wait');
    const cold = scenario({ drones: [], groundRounds: [bus([{ departsAt: NOW + 600_000, capacityKg: 3 }], ['ambient', 'chilled'])], orders: [order('o1', { tempClass: 'chilled' })] });
    expect(outcomeOf(plan(cold), 'o1').kind).toBe('ground');
  });

  it('does not replace a drone that can fly', () => {
    expect(outcomeOf(plan(scenario({ groundRounds: [bus([{ departsAt: NOW + 60_000, capacityKg: 10 }])] })), 'o1').kind).toBe('drone');
  });
});

describe('planDispatch: determinism', () => {
  it('gives the same plan whatever order the input lists things in', () => {
    const origin = hub('origin', CENTRE);
    const input = scenario({
      drones: [drone('d1', origin, { state: { batteryPct: 80 } }), drone('d2', origin, { state: { batteryPct: 80 } }), drone('d3', origin)],
      orders: [order('a'), order('b', { priority: 'relief' }), order('c', { weightKg: 3 }), order('d')],
    });
    const reversed = { ...input, drones: [...input.drones].reverse(), orders: [...input.orders].reverse(), hubs: [...input.hubs].reverse() };
    expect(plan(reversed)).toEqual(plan(input));
  });
});
