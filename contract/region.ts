import { z } from 'zod';
import { DeviceId, HubId, RegionId } from './ids.ts';
import { CompartmentSize, TemperatureClass } from './messages.ts';

/**
 * A region file describes one 地域生活圏: its hubs and their devices. The cloud loads it to know
 * which hubs exist (and their names and positions); the simulator uses it to play the devices.
 */
const LatLon = z.object({ lat: z.number().min(-90).max(90), lon: z.number().min(-180).max(180) }).strict();

export const HubKind = z.enum(['community-hall', 'roadside-station']).describe('公民館 mobility hub, or 道の駅 roadside station');

export const DroneSpec = z
  .object({
    id: DeviceId,
    model: z.string().min(1).max(64),
    maxPayloadKg: z.number().positive().max(50).default(5),
    cruiseMps: z.number().positive().max(40).default(10),
    enduranceS: z.number().int().positive().default(1080),
  })
  .strict();

export const LockerBankSpec = z
  .object({
    id: DeviceId,
    compartments: z
      .array(z.object({ id: z.string().regex(/^[A-Z0-9][A-Z0-9-]{0,7}$/), size: CompartmentSize, tempClass: TemperatureClass }).strict())
      .min(1)
      .max(64),
  })
  .strict();

export const HubSpec = z
  .object({
    id: HubId,
    kind: HubKind,
    name: z.object({ ja: z.string().min(1).max(100), en: z.string().min(1).max(100) }).strict(),
    municipality: z.string().max(100).optional(),
    location: LatLon,
    drones: z.array(DroneSpec).default([]),
    lockers: z.array(LockerBankSpec).default([]),
    sensors: z.array(DeviceId).default([]).describe('Sensor set ids (weather, power, link)'),
  })
  .strict();

export const RegionFile = z
  .object({
    id: RegionId,
    name: z.object({ ja: z.string(), en: z.string() }).strict(),
    hubs: z.array(HubSpec).min(1),
  })
  .passthrough() // later issues add landing sites, shelters, no-fly zones, routes
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
    }
  });

export type HubSpec = z.infer<typeof HubSpec>;
export type RegionFile = z.infer<typeof RegionFile>;
export type DroneSpec = z.infer<typeof DroneSpec>;
export type LockerBankSpec = z.infer<typeof LockerBankSpec>;
