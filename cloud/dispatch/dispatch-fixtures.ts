import type {
  CompartmentInput,
  DispatchInput,
  DispatchPlan,
  DroneInput,
  HubInput,
  LatLon,
  OrderInput,
  Outcome,
  Weather,
} from './dispatch-types.ts';

/**
 * Builders for dispatch tests: a small region around Nomi (能美市) where hubs are close enough for
 * the default aircraft (≈ 3.2 km radius with the 25 % reserve).
 */

export const NOW = Date.UTC(2025, 0, 15, 3, 0, 0); // 12:00 JST
export const CENTRE: LatLon = { lat: 36.44, lon: 136.46 };

/** A point `eastM` metres east and `northM` metres north of `p`. */
export function offset(p: LatLon, eastM: number, northM: number): LatLon {
  return { lat: p.lat + northM / 111_195, lon: p.lon + eastM / (111_195 * Math.cos((p.lat * Math.PI) / 180)) };
}

export function weather(over: Partial<Weather> = {}): Weather {
  return { windMps: 2, gustMps: 3, windFromDeg: 270, rainMmPerH: 0, observedAt: NOW - 30_000, ...over };
}

export function compartment(id: string, over: Partial<CompartmentInput> = {}): CompartmentInput {
  return { lockerId: 'locker-a', id, size: 'M', tempClass: 'ambient', status: 'free', ...over };
}

export function hub(id: string, position: LatLon, over: Partial<HubInput> = {}): HubInput {
  return {
    id,
    position,
    weather: weather(),
    compartments: [compartment('A01', { size: 'S' }), compartment('A02', { size: 'M' }), compartment('A03', { size: 'L' }), compartment('C01', { size: 'M', tempClass: 'chilled' })],
    ...over,
  };
}

export function drone(id: string, home: HubInput, over: { state?: Partial<DroneInput['state']>; limits?: DroneInput['limits'] } = {}): DroneInput {
  return {
    id,
    hubId: home.id,
    ...(over.limits ? { limits: over.limits } : {}),
    state: { position: home.position, flightState: 'idle', batteryPct: 100, missionId: null, observedAt: NOW - 2_000, ...over.state },
  };
}

export function order(id: string, over: Partial<OrderInput> = {}): OrderInput {
  return {
    id,
    originHub: 'origin',
    destination: { type: 'locker', hub: 'dest' },
    weightKg: 1.5,
    tempClass: 'ambient',
    priority: 'normal',
    createdAt: NOW - 60_000,
    ...over,
  };
}

/** Origin hub, a destination hub 1.5 km east, a far hub 10 km north, one drone at the origin, one order. */
export function scenario(over: Partial<DispatchInput> = {}): DispatchInput {
  const origin = hub('origin', CENTRE);
  const dest = hub('dest', offset(CENTRE, 1500, 0));
  const far = hub('far', offset(CENTRE, 0, 10_000));
  return {
    hubs: [origin, dest, far],
    drones: [drone('d1', origin)],
    sites: [{ id: 'shelter-1', kind: 'shelter', position: offset(CENTRE, 0, 1200) }],
    orders: [order('o1')],
    mode: 'normal',
    ...over,
  };
}

export function outcomeOf(plan: DispatchPlan, orderId: string): Outcome {
  const o = plan.outcomes.find((x) => x.orderId === orderId);
  if (!o) throw new Error(`no outcome for ${orderId}`);
  return o;
}

export function hubsWith(input: DispatchInput, id: string, change: (h: HubInput) => HubInput): HubInput[] {
  return input.hubs.map((h) => (h.id === id ? change(h) : h));
}
