import type {
  CompartmentInput,
  DispatchInput,
  DroneInput,
  GroundRoundInput,
  HubInput,
  LandingSiteInput,
  LatLon,
  NoFlyZoneInput,
  OrderInput,
  ReliefRouteInput,
} from './dispatch-types.ts';
import { haversineM } from './geo.ts';

/**
 * A seeded synthetic 地域生活圏 for the benchmark and the scale test: hubs on a jittered grid (a
 * region of ~100,000 people spans 10–20 km), drones and locker compartments at every hub, landing
 * sites with registered routes, some no-fly zones, bus rounds, and pending orders — most of them to
 * hubs within drone range, as a dispatcher would see them.
 */

export interface SyntheticSize {
  hubs: number;
  drones: number;
  orders: number;
  compartmentsPerHub?: number;
  sites?: number;
  zones?: number;
  /** Region side, metres (default 12 km). */
  sideM?: number;
  seed?: number;
  mode?: DispatchInput['mode'];
  /** Put every drone and every order at the first hub (stresses the per-hub allocation). */
  oneHub?: boolean;
  /** Bus rounds between random hubs (default 20), each with departures 1, 3 and 5 h from now. */
  busRounds?: number;
  /** Seat capacity of each departure, kg (default 30). */
  busCapacityKg?: number;
  /** Share of medical/relief orders (default 0.15). */
  priorityShare?: number;
  /** Drones' state of charge, uniform in [lo, hi] percent (default [30, 100]). */
  batteryPct?: readonly [number, number];
  /** Share of windy hubs (default 0.1). */
  windyShare?: number;
}

/** mulberry32: small, fast, seeded (also used by the benchmarks' synthetic regions). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ORIGIN: LatLon = { lat: 36.4, lon: 136.45 };
const at = (eastM: number, northM: number): LatLon => ({
  lat: ORIGIN.lat + northM / 111_195,
  lon: ORIGIN.lon + eastM / (111_195 * Math.cos((ORIGIN.lat * Math.PI) / 180)),
});

export function syntheticDispatch(size: SyntheticSize, now: number): DispatchInput {
  const r = rng(size.seed ?? 1);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const side = size.sideM ?? 12_000;
  const cols = Math.ceil(Math.sqrt(size.hubs));
  const cell = side / cols;

  const hubs: HubInput[] = Array.from({ length: size.hubs }, (_, i) => {
    // 10 % of hubs windy (at or over the 5 m/s limit now and then); the crowded hub of `oneHub` is calm.
    const windy = r() < (size.windyShare ?? 0.1) && !(size.oneHub && i === 0);
    const wind = windy ? 4 + r() * 6 : r() * 4;
    const compartments: CompartmentInput[] = Array.from({ length: size.compartmentsPerHub ?? 20 }, (_, k) => ({
      lockerId: `locker-${String.fromCharCode(97 + Math.floor(k / 16))}`,
      id: `C${String(k % 16).padStart(2, '0')}`,
      size: (['S', 'M', 'L'] as const)[k % 3]!,
      tempClass: k % 8 === 6 ? 'chilled' : k % 8 === 7 ? 'frozen' : 'ambient',
      status: r() < 0.6 ? 'free' : pick(['occupied', 'occupied', 'reserved', 'fault'] as const),
      reliefStock: k % 10 === 9,
    }));
    return {
      id: `hub-${i}`,
      position: at((i % cols) * cell + r() * cell * 0.5, Math.floor(i / cols) * cell + r() * cell * 0.5),
      weather: { windMps: wind, gustMps: wind + r() * 2, windFromDeg: Math.floor(r() * 360), rainMmPerH: r() < 0.05 ? 12 : 0, observedAt: now - Math.floor(r() * 120_000) },
      compartments,
    };
  });

  const drones: DroneInput[] = Array.from({ length: size.drones }, (_, i) => {
    const home = size.oneHub ? hubs[0]! : hubs[i % hubs.length]!;
    const state = r() < 0.8 ? pick(['idle', 'charging'] as const) : pick(['mission', 'rtl', 'landing'] as const);
    return {
      id: `drone-${i}`,
      hubId: home.id,
      state: { position: home.position, flightState: state, batteryPct: (size.batteryPct?.[0] ?? 30) + r() * ((size.batteryPct?.[1] ?? 100) - (size.batteryPct?.[0] ?? 30)), missionId: state === 'idle' || state === 'charging' ? null : `m-${i}`, observedAt: now - 1000 },
    };
  });

  const sites: LandingSiteInput[] = Array.from({ length: size.sites ?? 20 }, (_, i) => ({
    id: `site-${i}`,
    kind: i % 2 ? 'shelter' : 'isolated-settlement',
    position: at(r() * side, r() * side),
  }));
  const nearestHub = (p: LatLon): HubInput => hubs.reduce((b, h) => (haversineM(h.position, p) < haversineM(b.position, p) ? h : b));
  const reliefRoutes: ReliefRouteInput[] = sites.map((s, i) => ({ id: `route-${i}`, originHub: nearestHub(s.position).id, siteId: s.id }));

  const noFlyZones: NoFlyZoneInput[] = Array.from({ length: size.zones ?? 10 }, (_, i) => {
    const c = { e: r() * side, n: r() * side };
    const rad = 150 + r() * 400;
    return { id: `nfz-${i}`, polygon: Array.from({ length: 6 }, (_, k) => at(c.e + rad * Math.sin((k * Math.PI) / 3), c.n + rad * Math.cos((k * Math.PI) / 3))) };
  });

  const groundRounds: GroundRoundInput[] = Array.from({ length: size.busRounds ?? 20 }, (_, i) => ({
    id: `bus-${i}`,
    fromHub: pick(hubs).id,
    toHub: pick(hubs).id,
    departures: [1, 3, 5].map((h) => ({ departsAt: now + h * 3_600_000, capacityKg: size.busCapacityKg ?? 30 })),
  }));

  // Destinations: mostly a hub within ~3 km of the origin (what a planner would offer to drones).
  const near = new Map(hubs.map((h) => [h.id, hubs.filter((x) => x !== h && haversineM(x.position, h.position) < 3000)]));
  const orders: OrderInput[] = Array.from({ length: size.orders }, (_, i) => {
    const origin = size.oneHub ? hubs[0]! : pick(hubs);
    const u = r();
    const destination: OrderInput['destination'] =
      u < 0.1 ? { type: 'site', siteId: pick(sites).id } : { type: 'locker', hub: (u < 0.85 && near.get(origin.id)!.length > 0 ? pick(near.get(origin.id)!) : pick(hubs)).id };
    const priority = r() < (size.priorityShare ?? 0.15) ? pick(['medical', 'relief'] as const) : 'normal';
    return {
      id: `order-${i}`,
      originHub: origin.id,
      destination,
      weightKg: Math.round((0.2 + r() * 5.3) * 10) / 10,
      tempClass: r() < 0.8 ? 'ambient' : pick(['chilled', 'frozen'] as const),
      priority,
      ...(r() < 0.4 ? { deadline: now + Math.floor(r() * 6 * 3_600_000) } : {}),
      createdAt: now - Math.floor(r() * 86_400_000),
    };
  });

  return { hubs, drones, sites, reliefRoutes, noFlyZones, groundRounds, orders, mode: size.mode ?? 'normal' };
}

/**
 * Medium instance families for the MILP yardstick (dispatch-milp.ts): a town of 6 hubs over
 * 4 × 4 km (neighbours within drone range), 20–60 pending orders, 5–20 drones charged 60–100 %,
 * 4–12 locker compartments a hub (60 % free), 4 landing sites, 2 no-fly zones, 5 % of hubs windy —
 * drones and compartments are what orders compete for; bus rounds or none; normal mode,
 * emergency mode (60 % of the orders medical/relief; normal ones held) or everything at one hub.
 * Each instance draws its sizes from its own seed, so a family is a spread of instances.
 */
export interface DispatchFamily {
  name: string;
  busRounds: number;
  mode?: DispatchInput['mode'];
  oneHub?: boolean;
  priorityShare?: number;
  /** Bus seat capacity per departure, kg. */
  busCapacityKg?: number;
}

export const MEDIUM_FAMILIES: readonly DispatchFamily[] = [
  { name: 'drones + compartments, no bus rounds', busRounds: 0 },
  { name: 'drones, compartments + bus rounds', busRounds: 12, busCapacityKg: 12 },
  { name: 'emergency mode + bus rounds', busRounds: 12, busCapacityKg: 12, mode: 'emergency', priorityShare: 0.6 },
  { name: 'all at one hub + bus rounds', busRounds: 12, busCapacityKg: 12, oneHub: true },
];

export function mediumInstance(family: DispatchFamily, seed: number, now: number): DispatchInput {
  const r = rng(0x5eed + seed * 7919);
  const between = (lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));
  return syntheticDispatch(
    {
      hubs: 6,
      drones: between(5, 20),
      orders: between(20, 60),
      compartmentsPerHub: between(4, 12),
      sites: 4,
      zones: 2,
      sideM: 4_000,
      batteryPct: [60, 100],
      windyShare: 0.05,
      seed,
      busRounds: family.busRounds,
      ...(family.busCapacityKg === undefined ? {} : { busCapacityKg: family.busCapacityKg }),
      ...(family.mode === undefined ? {} : { mode: family.mode }),
      ...(family.oneHub ? { oneHub: true } : {}),
      ...(family.priorityShare === undefined ? {} : { priorityShare: family.priorityShare }),
    },
    now,
  );
}
