import type { RegionFile } from '../../contract/index.ts';
import type { ScenarioEvent } from '../../contract/scenario.ts';
import { haversineM } from '../../cloud/dispatch/geo.ts';
import { createRng, seedFor } from '../../simulators/devices/seeded-rng.ts';

/**
 * Requests of a scenario's demand events (issue 16): Poisson arrivals from the seeded generator
 * (simulators/devices/seeded-rng.ts), one stream per event and asker, so adding an event does not
 * change the others' arrivals.
 *  - normal: from each listed hub to a locker of another hub, drawn uniformly from the event's
 *    `destinations` (default: every other hub with lockers);
 *  - relief and medical: to the asking site, from a hub with a registered relief route to it (the
 *    first listed in the region file), else from the nearest hub that stations drones.
 */
export interface Arrival {
  at: number;
  priority: 'normal' | 'relief' | 'medical';
  originHub: string;
  destination: { type: 'locker'; hub: string } | { type: 'site'; siteId: string };
  weightKg: number;
  tempClass: 'ambient' | 'chilled' | 'frozen';
  deadlineMs: number | null;
}

export function arrivalsOf(events: readonly ScenarioEvent[], region: RegionFile, seed: number, at: (o: string | number) => number): Arrival[] {
  const out: Arrival[] = [];
  const lockerHubs = region.hubs.filter((h) => h.lockers.length > 0).map((h) => h.id);
  const droneHubs = region.hubs.filter((h) => h.drones.length > 0);
  for (const [i, e] of events.entries()) {
    if (e.type !== 'demand') continue;
    const from = at(e.from);
    const until = at(e.until);
    const ratePerMs = e.perHour / 3_600_000;
    const askers = e.kind === 'normal' ? (e.hubs === undefined || e.hubs === 'all' ? region.hubs.map((h) => h.id) : e.hubs) : e.sites!;
    for (const asker of askers) {
      const rng = createRng(seedFor(seed, 'demand', String(i), asker));
      if (ratePerMs <= 0) continue;
      for (let t = from - Math.log(1 - rng.next()) / ratePerMs; t < until; t += -Math.log(1 - rng.next()) / ratePerMs) {
        const weightKg = Math.round(rng.uniform(e.weightKg[0], e.weightKg[1]) * 10) / 10;
        let originHub: string;
        let destination: Arrival['destination'];
        if (e.kind === 'normal') {
          const others = (e.destinations ?? lockerHubs).filter((h) => h !== asker);
          if (others.length === 0) continue;
          originHub = asker;
          destination = { type: 'locker', hub: rng.pick(others) };
        } else {
          originHub = originFor(region, asker, droneHubs);
          destination = { type: 'site', siteId: asker };
        }
        out.push({ at: Math.round(t), priority: e.kind, originHub, destination, weightKg, tempClass: e.tempClass, deadlineMs: e.deadlineMin === undefined ? null : e.deadlineMin * 60_000 });
      }
    }
  }
  return out.sort((a, b) => a.at - b.at);
}

function originFor(region: RegionFile, siteId: string, droneHubs: RegionFile['hubs']): string {
  const route = region.reliefRoutes.find((r) => r.toSite === siteId);
  if (route) return route.fromHub;
  const site = region.landingSites.find((s) => s.id === siteId);
  if (!site || droneHubs.length === 0) throw new Error(`no hub to send relief to ${siteId} from`);
  return droneHubs.reduce((best, h) => (haversineM(h.location, site.location) < haversineM(best.location, site.location) ? h : best)).id;
}
