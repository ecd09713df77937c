import fc from 'fast-check';
import type {
  CompartmentInput,
  DispatchInput,
  DispatchOptions,
  DroneInput,
  GroundRoundInput,
  HubInput,
  LandingSiteInput,
  ModeInput,
  NoFlyZoneInput,
  OrderInput,
  ReliefRouteInput,
  Weather,
} from './dispatch-types.ts';
import { CENTRE, NOW, offset } from './dispatch-fixtures.ts';

/**
 * fast-check generators of whole dispatch problems: random regions (hubs, weather, lockers,
 * landing sites, no-fly zones, registered routes, ground rounds), fleets and orders. Values cluster
 * around the limits (wind exactly 5 m/s, batteries near the reserve, payloads near 5 kg) so the
 * rules are exercised at their edges, and a few references are dangling on purpose.
 */

export interface RegionShape {
  hubs: [number, number];
  drones: [number, number];
  orders: [number, number];
  zones: [number, number];
  /** Hubs, sites and zones lie within ± this many metres of the centre. */
  spreadM: number;
  /** Add unknown hubs/sites, stale data, odd drone states and random options. */
  chaos: boolean;
  /** Compartments per hub (default 0–6). */
  compartments?: [number, number];
  /** Weather well inside the limits everywhere (to study allocation rather than refusals). */
  calm?: boolean;
}

export const BIG: RegionShape = { hubs: [2, 6], drones: [0, 12], orders: [0, 14], zones: [0, 3], spreadM: 1500, chaos: true };
/** Fewer obstacles: every reference resolves, data is fresh, drones sit on their pads — most plans fly. */
export const FAIR: RegionShape = { hubs: [2, 4], drones: [2, 12], orders: [1, 8], zones: [0, 2], spreadM: 1200, chaos: false };

const SIZES = ['S', 'M', 'L'] as const;
const TEMPS = ['ambient', 'chilled', 'frozen'] as const;

const pick = <T>(xs: readonly T[]): fc.Arbitrary<T> => fc.constantFrom(...xs);
const maybe = <T>(arb: fc.Arbitrary<T>, freq = 0.5): fc.Arbitrary<T | undefined> =>
  fc.oneof({ weight: Math.round(freq * 100), arbitrary: arb }, { weight: Math.round((1 - freq) * 100), arbitrary: fc.constant(undefined) });

const point = (spreadM: number) =>
  fc.record({ e: fc.integer({ min: -spreadM, max: spreadM }), n: fc.integer({ min: -spreadM, max: spreadM }) }).map(({ e, n }) => offset(CENTRE, e, n));

const windSpeed = fc.oneof(
  { weight: 8, arbitrary: fc.double({ min: 0, max: 4, noNaN: true }) },
  { weight: 2, arbitrary: fc.constantFrom(3, 4.999, 5, 5.001, 8, 12) }, // at the limits the generator uses
  { weight: 1, arbitrary: fc.double({ min: 4, max: 12, noNaN: true }) },
);

const weatherArb = (chaos: boolean, calm = false): fc.Arbitrary<Weather | undefined> => {
  const w = fc
    .record({
      windMps: calm ? fc.double({ min: 0, max: 3, noNaN: true }) : windSpeed,
      gustExtra: calm ? fc.double({ min: 0, max: 1, noNaN: true }) : fc.oneof({ weight: 4, arbitrary: fc.double({ min: 0, max: 0.9, noNaN: true }) }, { weight: 1, arbitrary: fc.double({ min: 0, max: 4, noNaN: true }) }),
      windFromDeg: fc.integer({ min: 0, max: 359 }),
      rainMmPerH: calm ? fc.constant(0) : fc.oneof({ weight: 12, arbitrary: fc.constant(0) }, { weight: 2, arbitrary: fc.double({ min: 0, max: 20, noNaN: true }) }, { weight: 1, arbitrary: fc.constant(10) }),
      ageMs: chaos ? fc.oneof({ weight: 24, arbitrary: fc.integer({ min: 0, max: 5 * 60_000 }) }, { weight: 1, arbitrary: fc.constantFrom(10 * 60_000, 10 * 60_000 + 1) }) : fc.constant(1000),
    })
    .map(({ windMps, gustExtra, windFromDeg, rainMmPerH, ageMs }) => ({ windMps, gustMps: windMps + gustExtra, windFromDeg, rainMmPerH, observedAt: NOW - ageMs }));
  return chaos ? maybe(w, 0.96) : w;
};

const compartmentArb = (i: number, chaos: boolean, orderIds: readonly string[]): fc.Arbitrary<CompartmentInput> =>
  fc
    .record({
      lockerId: fc.constantFrom('locker-a', 'locker-b'),
      size: pick(SIZES),
      tempClass: fc.oneof({ weight: 8, arbitrary: fc.constant('ambient' as const) }, { weight: 2, arbitrary: pick(TEMPS) }),
      status: fc.oneof({ weight: 8, arbitrary: fc.constant('free' as const) }, { weight: 3, arbitrary: pick(['occupied', 'reserved', 'fault'] as const) }),
      reliefStock: fc.boolean().map((b) => b && chaos),
      reservedFor: orderIds.length > 0 ? maybe(pick(orderIds), 0.5) : fc.constant(undefined),
    })
    .map((c) => ({ id: `C${String(i).padStart(2, '0')}`, ...c, reservedFor: c.status === 'reserved' ? (c.reservedFor ?? null) : null }));

const zoneArb = (i: number, spreadM: number): fc.Arbitrary<NoFlyZoneInput> =>
  fc
    .record({
      centre: fc.record({ e: fc.integer({ min: -spreadM, max: spreadM }), n: fc.integer({ min: -spreadM, max: spreadM }) }),
      radii: fc.array(fc.integer({ min: 80, max: 900 }), { minLength: 3, maxLength: 6 }),
      turn: fc.double({ min: 0, max: 2 * Math.PI, noNaN: true }),
      window: fc.oneof(
        { weight: 6, arbitrary: fc.constant({}) },
        { weight: 1, arbitrary: fc.constant({ activeFrom: NOW + 60_000 }) },
        { weight: 1, arbitrary: fc.constant({ activeUntil: NOW }) },
        { weight: 1, arbitrary: fc.constant({ activeFrom: NOW - 60_000, activeUntil: NOW + 60_000 }) },
      ),
    })
    .map(({ centre, radii, turn, window }) => ({
      id: `z${i}`,
      // A star-shaped polygon (possibly concave) around the centre.
      polygon: radii.map((r, k) => {
        const θ = turn + (2 * Math.PI * k) / radii.length;
        return offset(CENTRE, centre.e + r * Math.sin(θ), centre.n + r * Math.cos(θ));
      }),
      ...window,
    }));

const limitsArb: fc.Arbitrary<DroneInput['limits']> = fc.record(
  {
    maxPayloadKg: fc.constantFrom(2, 3, 5, 8),
    cruiseMps: fc.integer({ min: 8, max: 16 }),
    enduranceS: fc.integer({ min: 900, max: 2400 }),
    windLimitMps: fc.constantFrom(3, 5, 8, 12),
    gustLimitMps: fc.constantFrom(5, 10, 14),
    rainLimitMmPerH: fc.constantFrom(0.5, 5, 10, 20),
  },
  { requiredKeys: [] },
);

function droneArb(i: number, hubs: readonly HubInput[], chaos: boolean): fc.Arbitrary<DroneInput> {
  return fc
    .record({
      hub: pick(hubs),
      flightState: chaos
        ? fc.oneof({ weight: 8, arbitrary: pick(['idle', 'charging'] as const) }, { weight: 2, arbitrary: pick(['mission', 'rtl', 'landed', 'fault', 'armed'] as const) })
        : pick(['idle', 'charging'] as const),
      batteryPct: fc.oneof({ weight: 1, arbitrary: fc.double({ min: 0, max: 100, noNaN: true }) }, { weight: 1, arbitrary: fc.double({ min: 60, max: 100, noNaN: true }) }, { weight: 1, arbitrary: fc.constant(100) }),
      offPadM: chaos ? fc.oneof({ weight: 9, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 50, max: 600 }) }) : fc.constant(0),
      missionId: chaos ? maybe(fc.constant('m-x'), 0.1) : fc.constant(undefined),
      busy: chaos ? fc.oneof({ weight: 9, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }) : fc.constant(false),
      ageMs: chaos ? fc.oneof({ weight: 9, arbitrary: fc.integer({ min: 0, max: 60_000 }) }, { weight: 1, arbitrary: fc.integer({ min: 150_000, max: 600_000 }) }) : fc.constant(1000),
      limits: maybe(limitsArb, chaos ? 0.4 : 0.2),
    })
    .map(({ hub, flightState, batteryPct, offPadM, missionId, busy, ageMs, limits }) => ({
      id: `d${i}`,
      hubId: hub.id,
      ...(limits ? { limits } : {}),
      state: { position: offset(hub.position, offPadM, 0), flightState, batteryPct, missionId: missionId ?? null, busy, observedAt: NOW - ageMs },
    }));
}

function orderArb(id: string, hubIds: readonly string[], siteIds: readonly string[], chaos: boolean): fc.Arbitrary<OrderInput> {
  const hubRef = chaos ? fc.oneof({ weight: 30, arbitrary: pick(hubIds) }, { weight: 1, arbitrary: fc.constant('ghost-hub') }) : pick(hubIds);
  const siteRef = chaos || siteIds.length === 0 ? fc.oneof({ weight: 8, arbitrary: siteIds.length ? pick(siteIds) : fc.constant('ghost-site') }, { weight: 1, arbitrary: fc.constant('ghost-site') }) : pick(siteIds);
  return fc
    .record({
      originHub: pick(hubIds),
      destination: fc.oneof(
        { weight: 3, arbitrary: hubRef.map((hub) => ({ type: 'locker' as const, hub })) },
        { weight: 1, arbitrary: siteRef.map((siteId) => ({ type: 'site' as const, siteId })) },
      ),
      weightKg: fc.oneof({ weight: 4, arbitrary: fc.double({ min: 0.1, max: 5, noNaN: true }) }, { weight: 1, arbitrary: fc.constantFrom(2, 4, 5, 5.01, 7.5) }),
      tempClass: fc.oneof({ weight: 8, arbitrary: fc.constant('ambient' as const) }, { weight: 2, arbitrary: pick(TEMPS) }),
      size: maybe(pick(SIZES), 0.3),
      priority: pick(['normal', 'normal', 'medical', 'relief'] as const),
      deadline: maybe(fc.integer({ min: NOW - 600_000, max: NOW + 4 * 3_600_000 }), 0.4),
      createdAt: fc.integer({ min: NOW - 86_400_000, max: NOW }),
    })
    .map(({ size, deadline, ...o }) => ({ id, ...o, ...(size ? { size } : {}), ...(deadline !== undefined ? { deadline } : {}) }));
}

const modeArb = (hubIds: readonly string[]): fc.Arbitrary<ModeInput> =>
  fc.oneof(
    pick(['normal', 'emergency'] as const),
    fc.record({ mode: pick(['normal', 'emergency'] as const), hubs: fc.dictionary(pick(hubIds), pick(['normal', 'emergency'] as const), { maxKeys: hubIds.length }) }),
  );

const optionsArb = (chaos: boolean): fc.Arbitrary<DispatchOptions | undefined> =>
  chaos
    ? maybe(
        fc.record(
          {
            reservePct: fc.record({ normal: fc.integer({ min: 10, max: 40 }), emergency: fc.integer({ min: 20, max: 50 }) }, { requiredKeys: [] }),
            emergencyNormalOrders: pick(['hold', 'after-priority'] as const),
            noFlyMarginM: fc.constantFrom(0, 30, 100),
          },
          { requiredKeys: [] },
        ),
        0.5,
      )
    : fc.constant(undefined);

/** A whole dispatch problem. */
export function dispatchInputArb(shape: RegionShape = BIG): fc.Arbitrary<DispatchInput> {
  return fc
    .record({
      nHubs: fc.integer({ min: shape.hubs[0], max: shape.hubs[1] }),
      nSites: fc.integer({ min: 0, max: 3 }),
      nOrders: fc.integer({ min: shape.orders[0], max: shape.orders[1] }),
    })
    .chain(({ nHubs, nSites, nOrders }) => {
      const hubIds = Array.from({ length: nHubs }, (_, i) => `h${i}`);
      const siteIds = Array.from({ length: nSites }, (_, i) => `s${i}`);
      const orderIds = Array.from({ length: nOrders }, (_, i) => `o${i}`);
      const hubs = fc.tuple(
        ...hubIds.map((id) =>
          fc
            .record({
              position: point(shape.spreadM),
              weather: weatherArb(shape.chaos, shape.calm),
              compartments: fc.integer({ min: shape.compartments?.[0] ?? 0, max: shape.compartments?.[1] ?? 6 }).chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => compartmentArb(i, shape.chaos, orderIds)))),
            })
            .map(({ position, weather, compartments }): HubInput => ({ id, position, ...(weather ? { weather } : {}), compartments })),
        ),
      );
      const sites = fc.tuple(
        ...siteIds.map((id) =>
          fc
            .record({ position: point(shape.spreadM), kind: pick(['shelter', 'isolated-settlement'] as const), weather: maybe(weatherArb(false), 0.3) })
            .map(({ position, kind, weather }): LandingSiteInput => ({ id, kind, position, ...(weather ? { weather } : {}) })),
        ),
      );
      return fc.tuple(hubs, sites).chain(([hubList, siteList]) =>
        fc.record({
          hubs: fc.constant(hubList as HubInput[]),
          sites: fc.constant(siteList as LandingSiteInput[]),
          drones: fc.integer({ min: shape.drones[0], max: shape.drones[1] }).chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => droneArb(i, hubList, shape.chaos)))),
          orders: fc.tuple(...orderIds.map((id) => orderArb(id, hubIds, siteIds, shape.chaos))),
          noFlyZones: fc.integer({ min: shape.zones[0], max: shape.zones[1] }).chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => zoneArb(i, shape.spreadM)))),
          reliefRoutes:
            siteIds.length === 0
              ? fc.constant([] as ReliefRouteInput[])
              : fc.array(
                  fc.record({ originHub: pick(hubIds), siteId: pick(siteIds), waypoints: fc.array(point(shape.spreadM), { maxLength: 2 }) }),
                  { maxLength: 4 },
                ).map((rs) => rs.map((r, i): ReliefRouteInput => ({ id: `r${i}`, ...r }))),
          groundRounds: fc
            .array(
              fc.record({
                fromHub: pick(hubIds),
                toHub: pick(hubIds),
                departures: fc.array(fc.record({ departsAt: fc.integer({ min: NOW - 3_600_000, max: NOW + 4 * 3_600_000 }), capacityKg: fc.integer({ min: 0, max: 12 }) }), {
                  minLength: 1,
                  maxLength: 3,
                }),
                tempClasses: maybe(fc.subarray([...TEMPS], { minLength: 1 }), 0.5),
              }),
              { maxLength: 2 },
            )
            .map((gs) => gs.map(({ tempClasses, ...g }, i): GroundRoundInput => ({ id: `g${i}`, ...g, ...(tempClasses ? { tempClasses } : {}) }))),
          mode: modeArb(hubIds),
          options: optionsArb(shape.chaos),
        }),
      );
    })
    .map(({ options, ...rest }) => ({ ...rest, ...(options ? { options } : {}) }));
}
