import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadRegionFile } from '../cloud/hubs/region-loader.ts';
import { startRegionSimulator, type RegionSimulator } from '../simulators/region-simulator.ts';
import { REGION_FILE, startTestCloud, tempDir, type TestCloud } from './support/cloud-harness.ts';
import { freePort, waitFor } from './support/ports.ts';

/**
 * The whole backbone over real sockets: the simulated region publishes with each hub's own login →
 * broker → ingest → store → the API shows it. Then the cloud restarts under the simulator's feet.
 */
const region = loadRegionFile(REGION_FILE);
const dataDir = tempDir('e2e');
let ports: Record<string, string>;
let t: TestCloud;
let sim: RegionSimulator;

interface HubsBody { hubs: { id: string; link: { online: boolean; lastSeen: string | null } }[] }
interface HubBody { deviceStates: { device: string; kind: string; telemetry: Record<string, unknown> | null; lastEvent: Record<string, unknown> | null }[] }

const get = async <T>(path: string): Promise<T> => (await (await t.api(`${path}`)).json()) as T;

beforeAll(async () => {
  ports = { HTTP_PORT: String(await freePort()), MQTT_PORT: String(await freePort()), MQTT_WS_PORT: 'off' };
  t = await startTestCloud(ports, dataDir);
  sim = await startRegionSimulator({
    brokerUrl: t.cloud.urls.mqtt, region, credentials: t.credentials, seed: 7, timeScale: 30,
    rates: { droneHz: 2, lockerIntervalS: 1, sensorIntervalS: 1 },
  });
});

afterAll(async () => {
  await sim?.stop();
  await t?.stop();
});

describe('simulated region → cloud → API', () => {
  it('shows every hub online within seconds', async () => {
    const body = await waitFor('every hub online', async () => {
      const b = await get<HubsBody>('/api/v1/hubs');
      return b.hubs.every((h) => h.link.online) ? b : null;
    }, 10_000);
    expect(body.hubs).toHaveLength(region.hubs.length);
    expect(body.hubs.every((h) => h.link.lastSeen !== null)).toBe(true);
  });

  it('shows live telemetry of every drone, locker bank and sensor set', async () => {
    for (const hub of region.hubs) {
      const body = await waitFor(`live telemetry of every device at ${hub.id}`, async () => {
        const b = await get<HubBody>(`/api/v1/hubs/${hub.id}`);
        return b.deviceStates.every((d) => d.telemetry !== null) ? b : null;
      }, 15_000);
      const kinds = new Set(body.deviceStates.map((d) => d.kind));
      expect(kinds.has('locker') && kinds.has('sensor')).toBe(true);
      expect(body.deviceStates.length).toBe(hub.drones.length + hub.lockers.length + hub.sensors.length);
    }
    const depot = await get<HubBody>('/api/v1/hubs/rs-komatsu-kibagata');
    const drone = depot.deviceStates.find((d) => d.kind === 'drone')!.telemetry!;
    expect(drone).toMatchObject({ type: 'drone.telemetry', remoteIdActive: true });
    expect(drone.batteryPct).toBeGreaterThanOrEqual(0);
  });

  it('serves history of what the simulator sent', async () => {
    const series = await waitFor('a battery series', async () => {
      const b = await get<{ points: { value: number }[] }>('/api/v1/hubs/rs-komatsu-kibagata/history?device=drone-1&field=battery_pct&bucket=1s&from=' + (Date.now() - 600_000));
      return b.points.length >= 2 ? b : null;
    });
    expect(series.points.every((p) => p.value >= 0 && p.value <= 100)).toBe(true);
  });

  it('shows an event the simulator raises within a few seconds', async () => {
    const started = Date.now();
    await sim.raise('nomi-terai', { kind: 'locker', device: 'locker-a', event: 'door_open_too_long', compartment: 'A01', detail: 'open for 180 s' });
    const seen = await waitFor('the event in live state', async () => {
      const b = await get<HubBody>('/api/v1/hubs/nomi-terai');
      const ev = b.deviceStates.find((d) => d.device === 'locker-a')!.lastEvent;
      return ev?.event === 'door_open_too_long' ? ev : null;
    }, 5_000);
    expect(seen).toMatchObject({ compartment: 'A01', severity: expect.any(String) });
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('keeps going when the cloud restarts, and stores every acknowledged message', async () => {
    const before = sim.stats().acked;
    await t.cloud.close();
    t = await startTestCloud(ports, dataDir);
    await waitFor('the simulator to publish into the restarted cloud', () => sim.stats().acked > before + 200, 20_000);
    await sim.stop();
    for (const hub of region.hubs) {
      const stored = new Set(await t.cloud.store.messageIds(hub.id, 0, 4_102_444_800_000));
      const acked = sim.ackedIds(hub.id);
      expect(acked.length).toBeGreaterThan(3);
      expect(acked.filter((id) => !stored.has(id)), hub.id).toEqual([]);
    }
    const after = await waitFor('hubs offline after the simulator stopped', async () => {
      const b = await get<HubsBody>('/api/v1/hubs');
      return b.hubs.every((h) => !h.link.online) ? b : null;
    });
    expect(after.hubs.length).toBe(region.hubs.length);
  });
});
