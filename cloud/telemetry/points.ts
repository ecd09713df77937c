import type { DeviceMessage, HubStatus } from '../../contract/index.ts';
import type { FieldValue, Measurement, TelemetryPoint } from './telemetry-store.ts';

/**
 * Maps validated contract messages to storage points (see telemetry-store.ts for the model).
 * Pure: no I/O. Booleans become 0/1; nulls and absent optionals are left out.
 */

/** Numeric fields per measurement that the history API may aggregate. */
export const NUMERIC_FIELDS: Record<Measurement, readonly string[]> = {
  drone: [
    'lat', 'lon', 'alt_m', 'ground_speed_mps', 'heading_deg', 'battery_pct', 'battery_time_remaining_s',
    'battery_voltage_v', 'battery_temp_c', 'payload_kg', 'remote_id_active',
  ],
  locker: ['temp_c', 'occupied', 'door_open', 'reserved', 'faulted'],
  sensor: [
    'wind_speed_mps', 'wind_gust_mps', 'wind_dir_deg', 'rain_mm_per_h', 'air_temp_c', 'grid_up',
    'backup_battery_pct', 'link_quality_pct',
  ],
  event: ['value', 'temp_c'],
  hub_status: ['online', 'outbox_depth', 'oldest_unsent_age_s'],
  // Written by the cloud about itself (cloud/ops-stats/ops-stats.ts), not from hub messages.
  cloud_stats: [
    'ingest_accepted_total', 'ingest_rejected_total', 'ingest_pending', 'hubs_online', 'store_writes',
    'store_write_mean_ms', 'store_write_p50_ms', 'store_write_p95_ms',
  ],
  ingest_rejections: ['count'],
  alarms_open: ['count'],
  hub_mode: ['emergency', 'acknowledged', 'version'],
  orders: ['count'],
  deliveries: ['delivered', 'on_time'],
};

const b = (x: boolean): number => (x ? 1 : 0);

function put(fields: Record<string, FieldValue>, key: string, value: FieldValue | null | undefined): void {
  if (value !== null && value !== undefined) fields[key] = value;
}

export function pointsForMessage(region: string, msg: DeviceMessage): TelemetryPoint[] {
  // Tag keys in sorted order: line protocol wants them sorted, and the InfluxDB adapter then need not sort.
  const base = { device: msg.device, hub: msg.hub, region };
  switch (msg.type) {
    case 'drone.telemetry': {
      const fields: Record<string, FieldValue> = {
        msg_id: msg.id, lat: msg.lat, lon: msg.lon, alt_m: msg.altM, ground_speed_mps: msg.groundSpeedMps,
        heading_deg: msg.headingDeg, battery_pct: msg.batteryPct, battery_time_remaining_s: msg.batteryTimeRemainingS,
        flight_state: msg.flightState, payload_kg: msg.payloadKg, remote_id_active: b(msg.remoteIdActive),
      };
      put(fields, 'battery_voltage_v', msg.batteryVoltageV);
      put(fields, 'battery_temp_c', msg.batteryTempC);
      put(fields, 'geofence', msg.geofence);
      put(fields, 'mission_id', msg.missionId);
      return [{ measurement: 'drone', tags: base, fields, ts: msg.ts, msgId: msg.id }];
    }
    case 'locker.telemetry':
      return msg.compartments.map((c) => {
        const fields: Record<string, FieldValue> = {
          msg_id: msg.id, occupied: b(c.occupied), door_open: b(c.door === 'open'), reserved: b(c.reservedFor !== null),
          faulted: b(c.fault !== 'none'), fault: c.fault,
        };
        put(fields, 'temp_c', c.tempC);
        put(fields, 'order_id', c.reservedFor);
        return {
          measurement: 'locker' as const,
          tags: { compartment: c.id, ...base, size: c.size, temp_class: c.tempClass },
          fields, ts: msg.ts, msgId: msg.id,
        };
      });
    case 'sensor.telemetry':
      return [{
        measurement: 'sensor', tags: base, ts: msg.ts, msgId: msg.id,
        fields: {
          msg_id: msg.id, wind_speed_mps: msg.windSpeedMps, wind_gust_mps: msg.windGustMps, wind_dir_deg: msg.windDirDeg,
          rain_mm_per_h: msg.rainMmPerH, air_temp_c: msg.airTempC, grid_up: b(msg.gridPowerUp),
          backup_battery_pct: msg.backupBatteryPct, link_quality_pct: msg.linkQualityPct,
        },
      }];
    case 'drone.event':
    case 'locker.event':
    case 'sensor.event': {
      const kind = msg.type.slice(0, msg.type.indexOf('.'));
      const tags: TelemetryPoint['tags'] = { device: msg.device, event: msg.event, hub: msg.hub, kind, region, severity: msg.severity };
      const fields: Record<string, FieldValue> = { msg_id: msg.id };
      put(fields, 'detail', msg.detail);
      if (msg.type === 'drone.event') put(fields, 'mission_id', msg.missionId);
      if (msg.type === 'locker.event') {
        tags.compartment = msg.compartment;
        put(fields, 'order_id', msg.orderId);
        put(fields, 'temp_c', msg.tempC);
        // pickupCode is deliberately never stored: it is a secret typed by a resident.
      }
      if (msg.type === 'sensor.event') put(fields, 'value', msg.value);
      return [{ measurement: 'event', tags, fields, ts: msg.ts, msgId: msg.id }];
    }
  }
}

export function pointForHubStatus(region: string, status: HubStatus, msgId: string): TelemetryPoint {
  const fields: Record<string, FieldValue> = { msg_id: msgId, online: b(status.state === 'online') };
  put(fields, 'outbox_depth', status.outboxDepth);
  put(fields, 'oldest_unsent_age_s', status.oldestUnsentAgeS);
  return { measurement: 'hub_status', tags: { device: 'hub', hub: status.hub, region }, fields, ts: status.ts, msgId };
}
