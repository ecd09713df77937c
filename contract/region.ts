import { z } from 'zod';
import { DeviceId, HubId, RegionId } from './ids.ts';
import { CompartmentSize, TemperatureClass } from './messages.ts';

/**
 * A region file describes one 地域生活圏: its hubs and their devices. The cloud loads it to know
 * which hubs exist (and their names and positions); the simulator uses it to play the devices.
 */
const LatLon = z.object({ lat: z.number().min(-90).max(90), lon: z.number().min(-180).max(180) }).strict();

const Name = z.object({ ja: z.string().min(1).max(100), en: z.string().min(1).max(100) }).strict();

/**
 * What people read for a device (配送ドローン1号機 / Delivery drone 1): the consoles show it instead of the
 * id (issue 13, item 5). Optional: a device without one is shown by its id.
 */
const DisplayName = Name.describe('Display name of the device in Japanese and English, shown by the consoles instead of its id');

export const HubKind = z.enum(['community-hall', 'roadside-station']).describe('公民館 mobility hub, or 道の駅 roadside station');

/**
 * A drone's figures and flight limits when the region file says nothing — the one place they are
 * written (dispatch, alarm rules, the simulated weather and the dashboards take them from here).
 * Wind: the MLIT standard manual (航空局標準マニュアル) forbids flight at ≥ 5 m/s unless the
 * operator's own manual allows more; gusts count, so the gust limit defaults to the same figure.
 * Rain 10 mm/h is an aircraft rating (IP43-class delivery drones). Payload 5 kg covers ~95 % of
 * demand; cruise ~10 m/s; endurance ~18 min (DOMAIN.md).
 */
export const DRONE_DEFAULTS = Object.freeze({
  maxPayloadKg: 5,
  cruiseMps: 10,
  enduranceS: 1080,
  windLimitMps: 5,
  gustLimitMps: 5,
  rainLimitMmPerH: 10,
});

export const DroneSpec = z
  .object({
    id: DeviceId,
    name: DisplayName.optional(),
    model: z.string().min(1).max(64),
    maxPayloadKg: z.number().positive().max(50).default(DRONE_DEFAULTS.maxPayloadKg),
    cruiseMps: z.number().positive().max(40).default(DRONE_DEFAULTS.cruiseMps),
    enduranceS: z.number().int().positive().default(DRONE_DEFAULTS.enduranceS),
    windLimitMps: z.number().positive().max(20).default(DRONE_DEFAULTS.windLimitMps).describe('Operator/aircraft limit: no flight at or above this mean wind'),
    gustLimitMps: z.number().positive().max(25).default(DRONE_DEFAULTS.gustLimitMps).describe('No flight at or above this gust'),
    rainLimitMmPerH: z.number().min(0).max(100).default(DRONE_DEFAULTS.rainLimitMmPerH).describe('No flight at or above this rain rate'),
  })
  .strict();

export const LockerBankSpec = z
  .object({
    id: DeviceId,
    name: DisplayName.optional(),
    compartments: z
      .array(
        z
          .object({
            id: z.string().regex(/^[A-Z0-9][A-Z0-9-]{0,7}$/),
            size: CompartmentSize,
            tempClass: TemperatureClass,
            reliefStock: z.boolean().default(false).describe('Held for relief supplies: usable by relief orders in emergency mode only'),
          })
          .strict(),
      )
      .min(1)
      .max(64),
  })
  .strict();

/** A sensor set with a display name; the file may also list a sensor by its id alone ("wx"). */
export const SensorSpec = z.object({ id: DeviceId, name: DisplayName.optional() }).strict();

export const HubSpec = z
  .object({
    id: HubId,
    kind: HubKind,
    name: z.object({ ja: z.string().min(1).max(100), en: z.string().min(1).max(100) }).strict(),
    municipality: z.string().max(100).optional(),
    location: LatLon,
    drones: z.array(DroneSpec).default([]),
    lockers: z.array(LockerBankSpec).default([]),
    sensors: z
      .array(z.union([DeviceId, SensorSpec]))
      .default([])
      .describe('Sensor sets (weather, power, link): an id, or an object with the id and a display name'),
    sensorNames: z
      .record(DeviceId, DisplayName)
      .default({})
      .describe('Display names of the sensors by id: how a parsed region file writes them (a file may give them in `sensors` instead)'),
  })
  .strict()
  // Everything that plays or watches sensors works with their ids, so the parsed hub keeps `sensors` as
  // ids (files written before display names existed read the same) and puts the names beside them.
  // A parsed hub is itself valid input, so a region handed on after parsing reads back the same.
  .transform(({ sensors, sensorNames, ...hub }) => ({
    ...hub,
    sensors: sensors.map((s) => (typeof s === 'string' ? s : s.id)),
    sensorNames: { ...sensorNames, ...Object.fromEntries(sensors.flatMap((s) => (typeof s !== 'string' && s.name ? [[s.id, s.name]] : []))) } as Record<string, z.infer<typeof Name>>,
  }));

const SiteId = z.string().regex(/^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$/);

export const LandingSite = z
  .object({
    id: SiteId,
    kind: z.enum(['shelter', 'isolated-settlement']).describe('避難所, or a settlement that may be cut off (孤立集落)'),
    name: Name,
    location: LatLon,
    municipality: z.string().max(100).optional(),
  })
  .strict()
  .describe('A registered landing point: a route cannot be flown until its landing point is known');

export const NoFlyZone = z
  .object({ id: SiteId, name: Name, polygon: z.array(LatLon).min(3).max(200).describe('Closed polygon, WGS84 vertices') })
  .strict();

export const ReliefRoute = z
  .object({
    id: SiteId,
    fromHub: HubId,
    toSite: SiteId,
    waypoints: z.array(LatLon).max(20).default([]),
    maxPayloadKg: z.number().positive().max(50).default(5),
  })
  .strict()
  .describe('A pre-registered relief route (towns register them in advance: ≤ 8 km, 5 kg)');

export const GroundRound = z
  .object({
    id: SiteId,
    name: Name,
    stops: z.array(HubId).min(2).describe('Hubs the community bus / truck serves, in order'),
    departures: z.array(z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/)).min(1).describe('Departure times from the first stop, HH:MM Japan time'),
    capacityKg: z.number().positive().max(2000),
  })
  .strict()
  .describe('A scheduled community bus or truck round that also carries parcels (貨客混載)');

export const RegionFile = z
  .object({
    id: RegionId,
    name: z.object({ ja: z.string(), en: z.string() }).strict(),
    hubs: z.array(HubSpec).min(1),
    landingSites: z.array(LandingSite).default([]),
    noFlyZones: z.array(NoFlyZone).default([]),
    reliefRoutes: z.array(ReliefRoute).default([]),
    groundRounds: z.array(GroundRound).default([]),
  })
  .strict()
  .superRefine((r, ctx) => {
    const ids = new Set<string>();
    for (const [i, h] of r.hubs.entries()) {
      if (ids.has(h.id)) ctx.addIssue({ code: 'custom', path: ['hubs', i, 'id'], message: `duplicate hub id ${h.id}` });
      ids.add(h.id);
      const devices = new Set<string>();
      for (const d of [...h.drones.map((x) => x.id), ...h.lockers.map((x) => x.id), ...h.sensors]) {
        if (devices.has(d)) ctx.addIssue({ code: 'custom', path: ['hubs', i], message: `duplicate device id ${d} at hub ${h.id}` });
        devices.add(d);
      }
      for (const named of Object.keys(h.sensorNames)) {
        if (!h.sensors.includes(named)) ctx.addIssue({ code: 'custom', path: ['hubs', i, 'sensorNames', named], message: `display name for unknown sensor ${named} at hub ${h.id}` });
      }
    }
    const sites = new Set(r.landingSites.map((x) => x.id));
    for (const [i, route] of r.reliefRoutes.entries()) {
      if (!ids.has(route.fromHub)) ctx.addIssue({ code: 'custom', path: ['reliefRoutes', i, 'fromHub'], message: `unknown hub ${route.fromHub}` });
      if (!sites.has(route.toSite)) ctx.addIssue({ code: 'custom', path: ['reliefRoutes', i, 'toSite'], message: `unknown landing site ${route.toSite}` });
    }
    for (const [i, round] of r.groundRounds.entries()) {
      for (const stop of round.stops) if (!ids.has(stop)) ctx.addIssue({ code: 'custom', path: ['groundRounds', i, 'stops'], message: `unknown hub ${stop}` });
    }
  });

export type HubSpec = z.infer<typeof HubSpec>;
export type RegionFile = z.infer<typeof RegionFile>;
export type DroneSpec = z.infer<typeof DroneSpec>;
export type LockerBankSpec = z.infer<typeof LockerBankSpec>;
export type SensorSpec = z.infer<typeof SensorSpec>;
export type LandingSite = z.infer<typeof LandingSite>;
export type NoFlyZone = z.infer<typeof NoFlyZone>;
export type ReliefRoute = z.infer<typeof ReliefRoute>;
export type GroundRound = z.infer<typeof GroundRound>;
