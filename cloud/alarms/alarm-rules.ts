import { z } from 'zod';
import { DRONE_DEFAULTS, FlightState as FlightStateSchema, type Compartment, type DeviceMessage, type DroneEvent, type FlightState, type LockerEvent, type RegionFile } from '../../contract/index.ts';

/**
 * Alarm rules (issue 4, item 5) — pure: a stored device message, or a hub's link state, plus what the
 * rules need to know about the hub, in; raise/clear decisions out. No I/O; the clock is passed in.
 * `AlarmService` applies the decisions (dedupe, persistence, notifications).
 *
 * Two habits keep alarms honest:
 * - Telemetry marked `historical` (replayed from a hub's backlog) never raises or clears a
 *   condition alarm: it says how things were, not how they are. Events still raise, even replayed —
 *   a tamper or failsafe during an outage must reach a person.
 * - Conditions measured as a number clear with a small hysteresis (configurable, may be 0), so a
 *   reading that hovers around the limit does not open and close alarms every few seconds. The raise
 *   thresholds themselves are exact.
 */

/** Stable alarm codes: the API, dashboards and consoles key on them. */
export const ALARM_KINDS = [
  'door_open_too_long',
  'compartment_too_warm',
  'drone_battery_low_in_flight',
  'wind_over_limit_mission_planned',
  'hub_offline',
  'repeated_wrong_pickup_codes',
  'tamper',
  'drone_failsafe',
] as const;
export type AlarmKind = (typeof ALARM_KINDS)[number];

export const ALARM_SEVERITIES = ['warning', 'critical'] as const;
export type AlarmSeverity = (typeof ALARM_SEVERITIES)[number];

/** warning: someone should look soon; critical: act now (something or someone is at risk). */
export const ALARM_SEVERITY: Record<AlarmKind, AlarmSeverity> = {
  door_open_too_long: 'warning',
  compartment_too_warm: 'warning',
  drone_battery_low_in_flight: 'critical',
  wind_over_limit_mission_planned: 'warning',
  hub_offline: 'critical',
  repeated_wrong_pickup_codes: 'critical',
  tamper: 'critical',
  drone_failsafe: 'critical',
};

/**
 * What an alarm is about, as data (issue 13, item 4): the consoles render an alarm's headline from its
 * kind, its hub/device/compartment and these, through their catalogues (Japanese and English) — never
 * from `detail`, our English summary. Units are in the names. Which fields are present depends on what
 * raised the alarm (telemetry measures; an event may carry no reading), and alarms stored before
 * parameters existed have none, so every field is optional and a reader needs a text for the bare kind.
 */
export const AlarmParams = z
  .object({
    tempC: z.number().optional().describe('compartment_too_warm: the temperature measured, °C'),
    limitC: z.number().optional().describe('compartment_too_warm: the highest allowed temperature of its class, °C'),
    tempClass: z.enum(['chilled', 'frozen']).optional().describe('compartment_too_warm: the compartment\'s temperature class'),
    batteryPct: z.number().optional().describe('drone_battery_low_in_flight: battery charge, %'),
    limitPct: z.number().optional().describe('drone_battery_low_in_flight: the charge below which a drone in the air raises it, %'),
    flightTimeLeftS: z.number().optional().describe('drone_battery_low_in_flight: flight time left by the drone\'s estimate, s'),
    flightState: FlightStateSchema.optional().describe('Drone alarms: the drone\'s flight state when it was raised'),
    missionId: z.string().optional().describe('Drone alarms: the mission the drone was flying'),
    windMps: z.number().optional().describe('wind_over_limit_mission_planned: mean wind speed measured, m/s'),
    gustMps: z.number().optional().describe('wind_over_limit_mission_planned: gust measured, m/s'),
    windLimitMps: z.number().optional().describe('wind_over_limit_mission_planned: the hub\'s wind limit (strictest drone there), m/s'),
    gustLimitMps: z.number().optional().describe('wind_over_limit_mission_planned: the hub\'s gust limit, m/s'),
    offlineSince: z.string().optional().describe('hub_offline: ISO 8601, when the cloud last heard from the hub'),
    offlineS: z.number().optional().describe('hub_offline: seconds offline when it was raised'),
    wrongCodes: z.number().int().optional().describe('repeated_wrong_pickup_codes: wrong codes typed'),
    windowMin: z.number().optional().describe('repeated_wrong_pickup_codes: within this many minutes (absent when counted per order)'),
    orderId: z.string().optional().describe('repeated_wrong_pickup_codes: the order whose codes were wrong (when counted per order)'),
    locked: z.boolean().optional().describe('repeated_wrong_pickup_codes: true when the compartment was locked until staff check it'),
  })
  .strict()
  .describe('What the alarm is about, as data, for rendering it in any language; which fields appear depends on the kind and what raised it');
export type AlarmParams = z.infer<typeof AlarmParams>;

/** What one alarm is about; at most one alarm that is not cleared exists per key. */
export interface AlarmKey {
  hub: string;
  device: string | null;
  compartment: string | null;
  kind: AlarmKind;
}

export type AlarmDecision =
  | {
      action: 'raise';
      key: AlarmKey;
      region: string;
      severity: AlarmSeverity;
      /** English summary for logs and older clients; device free text is quoted as text, never interpreted. */
      detail: string;
      /** The condition as data (consoles render their text from kind + params). */
      params: AlarmParams;
      /** The device's own free text, as it sent it (bounded); null when it sent none. */
      deviceDetail: string | null;
      sourceMsgId: string | null;
      /** When the condition was observed: device timestamp, or cloud time for link checks (epoch ms). */
      observedAt: number;
    }
  | {
      action: 'clear';
      key: AlarmKey;
      /** Why the condition ended, for people. */
      reason: string;
      /** An open alarm is cleared only by an observation at least as new as the last one that raised it. */
      observedAt: number;
    };

export interface AlarmRuleParams {
  /** Battery below this percentage while airborne raises `drone_battery_low_in_flight`. */
  batteryLowPct: number;
  /** Highest allowed temperature per class (DOMAIN.md: chilled ≤ 10 °C, frozen ≤ −15 °C); above it is too warm. */
  tempLimitC: { chilled: number; frozen: number };
  /** A too-warm compartment clears at or below limit − this. */
  tempClearHysteresisC: number;
  /** A wind alarm clears when wind and gust are below their limits − this. */
  windClearHysteresisMps: number;
  /** `pickup_code_rejected` events at one compartment within `pickupRejectWindowMs` that raise an alarm. */
  pickupRejectThreshold: number;
  pickupRejectWindowMs: number;
  /** A hub offline this long (cloud clock) raises `hub_offline`. */
  hubOfflineGraceMs: number;
}

export const DEFAULT_ALARM_RULE_PARAMS: AlarmRuleParams = {
  batteryLowPct: 20,
  tempLimitC: { chilled: 10, frozen: -15 },
  tempClearHysteresisC: 0.5,
  windClearHysteresisMps: 0.5,
  pickupRejectThreshold: 3,
  pickupRejectWindowMs: 10 * 60_000,
  hubOfflineGraceMs: 60_000,
};

/** Navigation states in which a drone is off the ground (PX4: takeoff, mission, hold, RTL, land). */
export const AIRBORNE_STATES: ReadonlySet<FlightState> = new Set(['takeoff', 'mission', 'hover', 'rtl', 'landing']);
/** States that mean the drone is on the ground; `fault` means neither (it may be either). */
export const GROUND_STATES: ReadonlySet<FlightState> = new Set(['idle', 'charging', 'armed', 'landed']);

export interface WindLimits {
  windMps: number;
  gustMps: number;
}

/** What the rules need to know beyond the message itself, as of the message. */
export interface DeviceRuleContext {
  /** The strictest limits of the drones that fly at the message's hub. */
  windLimits: WindLimits;
  /**
   * Whether a drone mission is planned to start or end at the message's hub. A function, asked only
   * when the answer matters (wind at or near the limit), because answering may cost a query.
   */
  missionPlanned: () => boolean;
  /** For drone events: the drone's flight state from its latest telemetry; null when unknown. */
  droneFlightState: FlightState | null;
  /** For locker events: the temperature class of the event's compartment; null when unknown. */
  compartmentClass: Compartment['tempClass'] | null;
  /**
   * For `pickup_code_rejected`: device timestamps of the compartment's rejections within the window,
   * this one included (see `slidePickupRejections`).
   */
  pickupRejections: readonly number[];
}

/** The raise/clear decisions for one stored device message. */
export function evaluateDeviceMessage(
  msg: DeviceMessage,
  region: string,
  ctx: DeviceRuleContext,
  p: AlarmRuleParams = DEFAULT_ALARM_RULE_PARAMS,
): AlarmDecision[] {
  const out: AlarmDecision[] = [];
  const key = (kind: AlarmKind, compartment: string | null = null): AlarmKey => ({ hub: msg.hub, device: msg.device, compartment, kind });
  const raise = (k: AlarmKey, detail: string, params: AlarmParams = {}, deviceText?: string): void => {
    out.push({
      action: 'raise', key: k, region, severity: ALARM_SEVERITY[k.kind], detail: withDeviceText(detail, deviceText), params, deviceDetail: deviceDetailOf(deviceText),
      sourceMsgId: msg.id, observedAt: msg.ts,
    });
  };
  const clear = (k: AlarmKey, reason: string): void => {
    out.push({ action: 'clear', key: k, reason, observedAt: msg.ts });
  };
  const live = msg.historical !== true;

  switch (msg.type) {
    case 'drone.telemetry': {
      if (!live) break;
      const k = key('drone_battery_low_in_flight');
      if (AIRBORNE_STATES.has(msg.flightState) && msg.batteryPct < p.batteryLowPct) {
        const mission = msg.missionId ? ` on mission ${msg.missionId}` : '';
        raise(k, `battery ${msg.batteryPct} % (below ${p.batteryLowPct} %) while ${msg.flightState}${mission}; about ${msg.batteryTimeRemainingS} s of flight left`, {
          batteryPct: msg.batteryPct, limitPct: p.batteryLowPct, flightTimeLeftS: msg.batteryTimeRemainingS, flightState: msg.flightState,
          ...(msg.missionId ? { missionId: msg.missionId } : {}),
        });
      } else if (GROUND_STATES.has(msg.flightState)) {
        clear(k, `drone on the ground (${msg.flightState}) with battery ${msg.batteryPct} %`);
      }
      break;
    }
    case 'drone.event': {
      const params: AlarmParams = {
        ...(ctx.droneFlightState ? { flightState: ctx.droneFlightState } : {}),
        ...(msg.missionId ? { missionId: msg.missionId } : {}),
      };
      if (msg.event === 'battery_low' && isAirborne(msg, ctx.droneFlightState)) {
        raise(key('drone_battery_low_in_flight'), 'the drone reports a low battery in flight', { ...params, limitPct: p.batteryLowPct }, msg.detail);
      } else if (msg.event === 'failsafe') {
        raise(key('drone_failsafe'), 'the drone triggered a failsafe', params, msg.detail);
      }
      break;
    }
    case 'locker.telemetry': {
      if (!live) break;
      for (const c of msg.compartments) {
        if (c.door === 'closed') clear(key('door_open_too_long', c.id), `door of ${c.id} closed`);
        if (c.tempClass !== 'ambient' && c.tempC !== null) {
          const limit = p.tempLimitC[c.tempClass];
          const k = key('compartment_too_warm', c.id);
          if (c.tempC > limit) raise(k, `${c.tempClass} compartment ${c.id} at ${c.tempC} °C (limit ${limit} °C)`, { tempC: c.tempC, limitC: limit, tempClass: c.tempClass });
          else if (c.tempC <= limit - p.tempClearHysteresisC) clear(k, `${c.id} back at ${c.tempC} °C (limit ${limit} °C)`);
        }
        if (c.fault === 'tamper') raise(key('tamper', c.id), `compartment ${c.id} reports a tamper fault`);
      }
      break;
    }
    case 'locker.event':
      evaluateLockerEvent(msg, ctx, p, key, raise, clear);
      break;
    case 'sensor.telemetry': {
      if (!live) break;
      const k = key('wind_over_limit_mission_planned');
      const { windMps, gustMps } = ctx.windLimits;
      // MLIT standard manual: no flight at or above the limit, so reaching it counts as over.
      const over = msg.windSpeedMps >= windMps || msg.windGustMps >= gustMps;
      const calm = msg.windSpeedMps < windMps - p.windClearHysteresisMps && msg.windGustMps < gustMps - p.windClearHysteresisMps;
      if (calm) {
        clear(k, `wind ${msg.windSpeedMps} m/s, gust ${msg.windGustMps} m/s: below the limits again`);
      } else if (!ctx.missionPlanned()) {
        clear(k, 'no mission planned at the hub any more');
      } else if (over) {
        raise(k, `wind ${msg.windSpeedMps} m/s, gust ${msg.windGustMps} m/s (drone limits ${windMps} / ${gustMps} m/s) with a mission planned at the hub`, {
          windMps: msg.windSpeedMps, gustMps: msg.windGustMps, windLimitMps: windMps, gustLimitMps: gustMps,
        });
      }
      break;
    }
    case 'sensor.event': {
      // The sensor's own threshold may differ from the drones' limits: trust its reading, not its verdict.
      if (msg.event === 'wind_over_limit' && (msg.value === undefined || msg.value >= ctx.windLimits.windMps) && ctx.missionPlanned()) {
        const reading = msg.value === undefined ? '' : ` (${msg.value} m/s, limit ${ctx.windLimits.windMps} m/s)`;
        const params: AlarmParams = msg.value === undefined ? { windLimitMps: ctx.windLimits.windMps } : { windMps: msg.value, windLimitMps: ctx.windLimits.windMps };
        raise(key('wind_over_limit_mission_planned'), `the sensor reports wind over the limit${reading} with a mission planned at the hub`, params, msg.detail);
      }
      break;
    }
  }
  return out;
}

function evaluateLockerEvent(
  msg: LockerEvent,
  ctx: DeviceRuleContext,
  p: AlarmRuleParams,
  key: (kind: AlarmKind, compartment?: string | null) => AlarmKey,
  raise: (k: AlarmKey, detail: string, params?: AlarmParams, deviceText?: string) => void,
  clear: (k: AlarmKey, reason: string) => void,
): void {
  const c = msg.compartment;
  switch (msg.event) {
    case 'door_open_too_long':
      raise(key('door_open_too_long', c), `door of compartment ${c} open too long`, {}, msg.detail);
      break;
    case 'door_closed':
      clear(key('door_open_too_long', c), `door of ${c} closed`);
      break;
    case 'temperature_out_of_range': {
      // "Out of range" may also mean too cold; with the class and reading known, check it is too warm.
      const limit = ctx.compartmentClass === null || ctx.compartmentClass === 'ambient' ? null : p.tempLimitC[ctx.compartmentClass];
      if (ctx.compartmentClass === 'ambient') break;
      if (limit !== null && msg.tempC !== undefined && msg.tempC <= limit) break;
      const reading = msg.tempC === undefined ? '' : ` at ${msg.tempC} °C${limit === null ? '' : ` (limit ${limit} °C)`}`;
      const params: AlarmParams = {
        ...(msg.tempC === undefined ? {} : { tempC: msg.tempC }),
        ...(limit === null ? {} : { limitC: limit }),
        ...(ctx.compartmentClass === 'chilled' || ctx.compartmentClass === 'frozen' ? { tempClass: ctx.compartmentClass } : {}),
      };
      raise(key('compartment_too_warm', c), `compartment ${c} too warm${reading}`, params, msg.detail);
      break;
    }
    case 'pickup_code_rejected':
      // The typed code is never copied into the alarm (README: pickup codes are never stored).
      if (ctx.pickupRejections.length >= p.pickupRejectThreshold) {
        const windowMin = Math.round(p.pickupRejectWindowMs / 60_000);
        raise(key('repeated_wrong_pickup_codes', c), `${ctx.pickupRejections.length} wrong pickup codes at compartment ${c} within ${windowMin} min`, {
          wrongCodes: ctx.pickupRejections.length, windowMin,
        });
      }
      break;
    case 'tamper':
      raise(key('tamper', c), `tamper detected at compartment ${c}`, {}, msg.detail);
      break;
    default:
      break;
  }
}

/** Airborne by the drone's latest telemetry; without telemetry, a mission id on the event says so. */
function isAirborne(msg: DroneEvent, flightState: FlightState | null): boolean {
  if (flightState !== null) return AIRBORNE_STATES.has(flightState);
  return msg.missionId !== undefined && msg.missionId !== null;
}

/**
 * The rejection window after a `pickup_code_rejected` at `ts` (device time): previous rejections
 * of the compartment younger than `windowMs`, plus this one, oldest first.
 */
export function slidePickupRejections(previous: readonly number[], ts: number, windowMs: number): number[] {
  return [...previous, ts].filter((t) => t > ts - windowMs && t <= ts).sort((a, b) => a - b);
}

/** A hub's link as the cloud sees it (live state). `since`: when `online` last changed; null: never connected. */
export interface HubLinkView {
  hub: string;
  region: string;
  online: boolean;
  since: number | null;
}

/**
 * `hub_offline`: raised once the hub has been offline for the grace period (a reconnect within it —
 * a 4G hiccup — raises nothing), cleared when it is online. A hub not seen since the cloud started
 * raises nothing: the cloud cannot tell how long it has been gone (an alarm raised before a restart
 * is kept in the store and clears when the hub connects).
 */
export function evaluateHubLink(link: HubLinkView, now: number, p: Pick<AlarmRuleParams, 'hubOfflineGraceMs'> = DEFAULT_ALARM_RULE_PARAMS): AlarmDecision | null {
  const key: AlarmKey = { hub: link.hub, device: null, compartment: null, kind: 'hub_offline' };
  if (link.online) return { action: 'clear', key, reason: 'hub online again', observedAt: now };
  if (link.since === null || now - link.since < p.hubOfflineGraceMs) return null;
  const offlineSince = new Date(link.since).toISOString();
  const offlineS = Math.round((now - link.since) / 1000);
  return {
    action: 'raise', key, region: link.region, severity: ALARM_SEVERITY.hub_offline,
    detail: `no link to the hub since ${offlineSince} (${offlineS} s)`, params: { offlineSince, offlineS }, deviceDetail: null,
    sourceMsgId: null, observedAt: link.since,
  };
}

/**
 * The strictest wind limits of the drones based at each hub of the region. A hub without drones
 * (a destination) gets the strictest limits of the region's drones, or the contract defaults (5 m/s,
 * MLIT standard manual) when the region has none.
 */
export function windLimitsByHub(region: RegionFile): { byHub: ReadonlyMap<string, WindLimits>; fallback: WindLimits } {
  const defaults = { windMps: DRONE_DEFAULTS.windLimitMps, gustMps: DRONE_DEFAULTS.gustLimitMps };
  const strictest = (drones: readonly { windLimitMps: number; gustLimitMps: number }[], base: WindLimits): WindLimits =>
    drones.length === 0
      ? base
      : { windMps: Math.min(...drones.map((d) => d.windLimitMps)), gustMps: Math.min(...drones.map((d) => d.gustLimitMps)) };
  const fallback = strictest(region.hubs.flatMap((h) => h.drones), defaults);
  return { byHub: new Map(region.hubs.map((h) => [h.id, strictest(h.drones, fallback)])), fallback };
}

const MAX_DETAIL = 1000;
/** The contract bounds a device's `detail` to 500 characters; bounded again in case a message skipped it. */
const MAX_DEVICE_DETAIL = 500;

/** The device's own text as it sent it, for people to read as text; null when it sent none. */
function deviceDetailOf(deviceText: string | undefined): string | null {
  if (deviceText === undefined || deviceText.trim() === '') return null;
  return deviceText.length > MAX_DEVICE_DETAIL ? `${deviceText.slice(0, MAX_DEVICE_DETAIL - 1)}…` : deviceText;
}

/** Our description, plus the device's free text quoted (kept as plain text, bounded): the English `detail`. */
export function withDeviceText(description: string, deviceText: string | undefined): string {
  const text = deviceText === undefined || deviceText.trim() === '' ? description : `${description}; device says: "${deviceText}"`;
  return text.length > MAX_DETAIL ? `${text.slice(0, MAX_DETAIL - 1)}…` : text;
}
