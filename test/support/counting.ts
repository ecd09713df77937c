import { expect } from 'vitest';
import type { TelemetryStore } from '../../cloud/telemetry/telemetry-store.ts';

const ALL_TIME: [number, number] = [0, 4_102_444_800_000];

/**
 * The count every fault test ends with: each message a device had acknowledged is in the cloud's
 * store, and nothing is stored twice (the tests publish sensor readings: one point per message).
 */
export async function expectExactlyOnce(store: TelemetryStore, hub: string, acked: Iterable<string>, allowMissing: ReadonlySet<string> = new Set()): Promise<number> {
  // (the hub's own status points are stored too; the returned count is the device's readings)
  const ids = new Set(await store.messageIds(hub, ...ALL_TIME));
  const missing = [...acked].filter((id) => !ids.has(id) && !allowMissing.has(id));
  expect(missing, `${missing.length} acknowledged messages missing in the cloud`).toEqual([]);
  const sensorIds = [...ids].filter((id) => id.startsWith('s-'));
  expect(await store.countPoints('sensor', hub, ...ALL_TIME), 'a message stored twice').toBe(sensorIds.length);
  return sensorIds.length;
}
