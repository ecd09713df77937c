import { DRONE_DEFAULTS, type Compartment, type FlightState, type Mode } from '../../contract/index.ts';
import type { EnergyModelParams } from './energy-model.ts';
import type { LatLon } from './geo.ts';

/**
 * Input and output of the dispatch engine (`planDispatch`). Plain data: the caller gathers it from
 * live state, the order store and the region file; the engine decides and returns a plan.
 * Times are epoch milliseconds; the engine never reads a clock (it is given `now`).
 */

export type { LatLon, Mode };
export type CompartmentSize = Compartment['size'];
export type TemperatureClass = Compartment['tempClass'];
export type Priority = 'normal' | 'medical' | 'relief';

// ------------------------------------------------------------------ fleet

/** Limits of an aircraft as its operator flies it. Missing fields take `DEFAULT_DRONE_LIMITS`. */
export interface DroneLimits {
  maxPayloadKg: number;
  /** Cruise airspeed, m/s. */
  cruiseMps: number;
  /** Flight time on a full battery at cruise, no payload, seconds. */
  enduranceS: number;
  /** No flight when the mean wind at either end is at or above this, m/s. */
  windLimitMps: number;
  /** No flight when the gust at either end is at or above this, m/s. */
  gustLimitMps: number;
  /** No flight when the rain at either end is at or above this, mm/h. */
  rainLimitMmPerH: number;
}

/**
 * Defaults: the contract's (DRONE_DEFAULTS, with their sources). The standard manual itself says not
 * to fly in rain, so an operator flying under it should lower the rain limit to a trace (e.g. 0.5 mm/h).
 */
export const DEFAULT_DRONE_LIMITS: Readonly<DroneLimits> = DRONE_DEFAULTS;

export interface DroneInput {
  id: string;
  /** Home hub: the drone takes missions from this hub's pad only. */
  hubId: string;
  limits?: Partial<DroneLimits>;
  /** Live state from telemetry. */
  state: {
    position: LatLon;
    flightState: FlightState;
    /** State of charge, percent. */
    batteryPct: number;
    /** Mission the drone is flying, if any (from telemetry or the mission store). */
    missionId?: string | null;
    /** Set by the caller when it knows the drone is taken (e.g. a command in flight). */
    busy?: boolean;
    /** When this state was measured; older than `maxDroneStateAgeMs` → not dispatched. */
    observedAt?: number;
  };
}

// ------------------------------------------------------------------ places

export interface Weather {
  windMps: number;
  gustMps: number;
  /** Where the wind blows FROM, degrees (meteorological convention). */
  windFromDeg: number;
  rainMmPerH: number;
  /** When measured; older than `maxWeatherAgeMs` counts as unknown. */
  observedAt: number;
}

export type CompartmentStatus = 'free' | 'occupied' | 'reserved' | 'fault';

export interface CompartmentInput {
  /** Locker bank (device) the compartment belongs to; compartment ids are unique per bank. */
  lockerId?: string;
  id: string;
  size: CompartmentSize;
  tempClass: TemperatureClass;
  status: CompartmentStatus;
  /** For `reserved`: the order it is reserved for. A compartment reserved for this very order is usable. */
  reservedFor?: string | null;
  /** Designated relief stock: only relief orders may use it, and only in emergency mode. */
  reliefStock?: boolean;
}

export interface HubInput {
  id: string;
  position: LatLon;
  /** Latest weather at the hub; missing → no flight from or to it. */
  weather?: Weather;
  compartments?: readonly CompartmentInput[];
}

/** A registered landing site (shelter 避難所 or isolated settlement 孤立集落) — no locker. */
export interface LandingSiteInput {
  id: string;
  kind: 'shelter' | 'isolated-settlement';
  position: LatLon;
  /** Weather at the site if someone reports it; otherwise the origin's weather stands for both ends. */
  weather?: Weather;
}

/** A pre-registered route from a hub to a landing site (DOMAIN.md: towns pre-register routes ≤ 8 km). */
export interface ReliefRouteInput {
  id: string;
  originHub: string;
  siteId: string;
  /** Points flown through between the hub and the site, in order; the way back is the reverse. */
  waypoints?: readonly LatLon[];
}

export interface NoFlyZoneInput {
  id: string;
  polygon: readonly LatLon[];
  /** Temporary zones (e.g. 緊急用務空域 declared during a disaster): active from/until, epoch ms. */
  activeFrom?: number;
  activeUntil?: number;
}

/** A scheduled ground round (community bus, truck — 貨客混載) from one hub to another. */
export interface GroundRoundInput {
  id: string;
  fromHub: string;
  toHub: string;
  departures: readonly { departsAt: number; capacityKg: number }[];
  /** Temperature classes it can carry (default: ambient only). */
  tempClasses?: readonly TemperatureClass[];
}

/** Weight booked on one departure of a round (`departsAt` as in `GroundRoundInput.departures`). */
export interface GroundBooking {
  roundId: string;
  departsAt: number;
  weightKg: number;
}

// ------------------------------------------------------------------ orders

export type Destination = { type: 'locker'; hub: string } | { type: 'site'; siteId: string };

export interface OrderInput {
  id: string;
  originHub: string;
  destination: Destination;
  weightKg: number;
  tempClass: TemperatureClass;
  /** Compartment size needed; when absent: ≤ 2 kg S, ≤ 4 kg M, else L. */
  size?: CompartmentSize;
  priority: Priority;
  deadline?: number;
  createdAt: number;
}

/** Region-wide mode with per-hub overrides — the same shape as the contract's `region.mode`. */
export type ModeInput = Mode | { mode: Mode; hubs?: Readonly<Record<string, Mode>> };

export interface DispatchOptions {
  /** Battery reserve, percent (default 25 normal / 35 emergency). */
  reservePct?: Partial<{ normal: number; emergency: number }>;
  /** Weather older than this counts as unknown (default 10 min). */
  maxWeatherAgeMs?: number;
  /** Drone state older than this is not trusted (default 2 min). */
  maxDroneStateAgeMs?: number;
  /** A drone counts as on its pad within this distance of its hub (default 100 m). */
  padRadiusM?: number;
  /** Legs must keep this far from no-fly polygons (default 0: only touching or crossing is refused). */
  noFlyMarginM?: number;
  /**
   * Normal orders in emergency mode:
   *  - 'hold' (default, issue 4): held until the mode ends;
   *  - 'after-priority': held only while some relief/medical order from an emergency-mode hub
   *    waits for a reason that could clear (weather, battery, drones…); otherwise dispatched.
   */
  emergencyNormalOrders?: 'hold' | 'after-priority';
  energy?: Partial<EnergyModelParams>;
}

export interface DispatchInput {
  drones: readonly DroneInput[];
  hubs: readonly HubInput[];
  sites?: readonly LandingSiteInput[];
  noFlyZones?: readonly NoFlyZoneInput[];
  reliefRoutes?: readonly ReliefRouteInput[];
  groundRounds?: readonly GroundRoundInput[];
  /**
   * Weight already on a round departure from earlier planning rounds (orders assigned to it and not
   * yet delivered, failed or back to pending): a departure's capacity is reserved until the round
   * ends, so later planning only fills what is left (issue 12 (2)).
   */
  groundBookings?: readonly GroundBooking[];
  orders: readonly OrderInput[];
  mode: ModeInput;
  options?: DispatchOptions;
}

// ------------------------------------------------------------------ output

export interface RouteLeg {
  from: LatLon;
  to: LatLon;
  distanceM: number;
  bearingDeg: number;
}

export interface DroneAssignment {
  kind: 'drone';
  orderId: string;
  droneId: string;
  /** Locker destination: the compartment reserved for the order. */
  compartmentId?: string;
  lockerId?: string;
  /** Registered relief route flown, if any. */
  routeId?: string;
  /** Outbound legs; the drone returns the same way, reversed. */
  legs: RouteLeg[];
  /** One way, metres. */
  distanceM: number;
  /** Round trip, percent of a full battery. */
  energyNeededPct: number;
  reservePct: number;
  batteryPct: number;
  /** Expected landing at the destination, epoch ms. */
  etaMs: number;
  /** Expected landing back at the origin, epoch ms. */
  returnMs: number;
  /** The ETA is after the order's deadline. */
  late: boolean;
}

export interface GroundAssignment {
  kind: 'ground';
  orderId: string;
  roundId: string;
  departsAt: number;
  /** Why no drone took it. */
  reasons: Reason[];
}

export interface Wait {
  kind: 'wait';
  orderId: string;
  reasons: Reason[];
}

export type Outcome = DroneAssignment | GroundAssignment | Wait;

export interface DispatchPlan {
  /** Exactly one outcome per order, in dispatch priority order. */
  outcomes: Outcome[];
  stats: { drone: number; ground: number; wait: number };
}

// ------------------------------------------------------------------ reasons

/**
 * Why an order was not given a drone. Every code is listed in `REASON_CODES` (a test keeps the
 * list and the engine in sync); details name the hub, drones and figures so a person can act.
 */
export type Reason =
  | { code: 'unknown_hub'; hubId: string }
  | { code: 'unregistered_site'; siteId: string }
  | { code: 'no_registered_route'; originHub: string; siteId: string }
  | { code: 'held_emergency'; hubId: string }
  | { code: 'no_fly_zone'; zoneIds: string[] }
  | { code: 'no_compartment'; hubId: string; size: CompartmentSize; tempClass: TemperatureClass }
  | { code: 'weather_unknown'; hubId: string }
  | { code: 'no_drone_at_origin'; hubId: string }
  | { code: 'drone_busy'; droneIds: string[] }
  | { code: 'drone_state_stale'; droneIds: string[] }
  | { code: 'over_payload'; weightKg: number; maxPayloadKg: number; droneIds: string[] }
  | { code: 'wind_over_limit'; placeId: string; windMps: number; limitMps: number; droneIds: string[] }
  | { code: 'gust_over_limit'; placeId: string; gustMps: number; limitMps: number; droneIds: string[] }
  | { code: 'rain_over_limit'; placeId: string; rainMmPerH: number; limitMmPerH: number; droneIds: string[] }
  | { code: 'headwind_too_strong'; groundSpeedMps: number; minGroundSpeedMps: number; droneIds: string[] }
  | { code: 'out_of_range'; neededPct: number; usablePct: number; droneIds: string[] }
  | { code: 'insufficient_battery'; neededPct: number; availablePct: number; reservePct: number; droneIds: string[] };

export type ReasonCode = Reason['code'];

/** Every reason code, what it means, and whether waiting alone can clear it. */
export const REASON_CODES: Readonly<Record<ReasonCode, { meaning: string; clearsByWaiting: boolean }>> = Object.freeze({
  unknown_hub: { meaning: 'The origin or destination hub is not in the region', clearsByWaiting: false },
  unregistered_site: { meaning: 'The landing site is not registered; no flight to an unknown landing point', clearsByWaiting: false },
  no_registered_route: { meaning: 'Emergency mode: no pre-registered route from the origin hub to the landing site', clearsByWaiting: false },
  held_emergency: { meaning: 'Normal order held while the hub is in emergency mode (kept, resumes when the mode ends)', clearsByWaiting: true },
  no_fly_zone: { meaning: 'The route touches or crosses an active no-fly zone', clearsByWaiting: true },
  no_compartment: { meaning: 'No free, working compartment of the size and temperature class at the destination', clearsByWaiting: true },
  weather_unknown: { meaning: 'No recent weather at the origin or destination hub', clearsByWaiting: true },
  no_drone_at_origin: { meaning: 'No drone is based at the origin hub', clearsByWaiting: false },
  drone_busy: { meaning: 'Every drone at the origin is flying, not idle/charging on its pad, or taken by an earlier order in this plan', clearsByWaiting: true },
  drone_state_stale: { meaning: 'No recent telemetry from the drone', clearsByWaiting: true },
  over_payload: { meaning: 'The parcel is heavier than the drone may carry', clearsByWaiting: false },
  wind_over_limit: { meaning: 'Mean wind at or above the operator/aircraft limit (default 5 m/s, MLIT standard manual)', clearsByWaiting: true },
  gust_over_limit: { meaning: 'Gust at or above the operator/aircraft limit', clearsByWaiting: true },
  rain_over_limit: { meaning: 'Rain at or above the aircraft limit', clearsByWaiting: true },
  headwind_too_strong: { meaning: 'Ground speed on a leg would be at or below the minimum', clearsByWaiting: true },
  out_of_range: { meaning: 'Even a full battery would not cover the round trip plus the reserve', clearsByWaiting: false },
  insufficient_battery: { meaning: 'The drone must charge first: energy needed > state of charge − reserve', clearsByWaiting: true },
});
