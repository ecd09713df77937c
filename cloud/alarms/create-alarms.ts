import { randomUUID } from 'node:crypto';
import type { Registry } from 'prom-client';
import type { Leases } from '../cluster/leases.ts';
import type { Database } from '../db/database.ts';
import type { Regions } from '../hubs/regions.ts';
import type { LiveState } from '../live/live-state.ts';
import type { Logger } from '../logger.ts';
import { registerAlarmMetrics } from './alarm-metrics.ts';
import { AlarmService, type AlarmHubView } from './alarm-service.ts';
import { openAlarmStore } from './alarm-store.ts';

export interface CreateAlarmsOptions {
  /** The operational database (SQLite or PostgreSQL). */
  database: Database;
  regions: Regions;
  live: LiveState;
  registry: Registry;
  logger: Logger;
  /** A hub offline this long raises `hub_offline` (ALARM_HUB_OFFLINE_GRACE_S). */
  hubOfflineGraceMs: number;
  now?: () => number;
  /** Cluster (issue 15): link checks only for the regions whose lease this node holds, fenced. Default: every region. */
  leases?: Leases;
}

/**
 * The alarm feature as the cloud runs it: alarms in the operational database, hubs seen through live
 * state, metrics on the cloud's registry. Call `start()` for the link checks once the broker runs.
 */
export async function createAlarms(o: CreateAlarmsOptions): Promise<AlarmService> {
  const store = await openAlarmStore(o.database);
  const log = o.logger.child({ component: 'alarms' });
  return new AlarmService({
    store, regions: o.regions, hubs: liveHubView(o.live), now: o.now ?? Date.now, newId: () => `alm-${randomUUID()}`, logger: o.logger,
    metrics: registerAlarmMetrics(o.registry, () => store.countActive(), (err) => log.warn({ err }, 'counting active alarms for the metrics failed')),
    params: { hubOfflineGraceMs: o.hubOfflineGraceMs }, leases: o.leases,
  });
}

/** Hub links and drone flight states as live state shows them. */
export function liveHubView(live: LiveState): AlarmHubView {
  return {
    *links() {
      for (const h of live.hubs.values()) yield { hub: h.id, region: h.region, online: h.link.online, since: h.link.since };
    },
    droneFlightState(hub, device) {
      const t = live.hubs.get(hub)?.devices.get(device)?.telemetry;
      return t?.type === 'drone.telemetry' ? t.flightState : null;
    },
  };
}
