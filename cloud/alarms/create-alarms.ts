import { randomUUID } from 'node:crypto';
import type { Registry } from 'prom-client';
import type { OperationalDb } from '../db/operational-db.ts';
import type { LiveState } from '../live/live-state.ts';
import type { Logger } from '../logger.ts';
import { registerAlarmMetrics } from './alarm-metrics.ts';
import { AlarmService, type AlarmHubView } from './alarm-service.ts';
import { createSqliteAlarmStore } from './alarm-store.ts';

export interface CreateAlarmsOptions {
  db: OperationalDb;
  live: LiveState;
  registry: Registry;
  logger: Logger;
  /** A hub offline this long raises `hub_offline` (ALARM_HUB_OFFLINE_GRACE_S). */
  hubOfflineGraceMs: number;
  now?: () => number;
}

/**
 * The alarm feature as the cloud runs it: alarms in `cloud.db`, hubs seen through live state, metrics
 * on the cloud's registry. Call `start()` for the link checks once the broker runs.
 */
export function createAlarms(o: CreateAlarmsOptions): AlarmService {
  const store = createSqliteAlarmStore(o.db);
  const service = new AlarmService({
    store, region: o.live.region, hubs: liveHubView(o.live), now: o.now ?? Date.now, newId: () => `alm-${randomUUID()}`, logger: o.logger,
    metrics: registerAlarmMetrics(o.registry, () => store.countActive()),
    params: { hubOfflineGraceMs: o.hubOfflineGraceMs },
  });
  return service;
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
