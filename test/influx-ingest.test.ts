import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXAMPLES, topics } from '../contract/index.ts';
import { loadRegionFile } from '../cloud/hubs/region-loader.ts';
import { startRegionSimulator } from '../simulators/region-simulator.ts';
import { REGION_FILE, startTestCloud, type TestCloud } from './support/cloud-harness.ts';
import { startInfluxd, type Influxd } from './support/influxd.ts';
import { waitFor } from './support/ports.ts';
import { startResendingDevice } from './support/resending-device.ts';

/**
 * Ingest into a real InfluxDB (Debian's influxd 1.6.7 over the v1-compatible API). When the store
 * fails, ingest holds acknowledgements — the devices keep their messages — and nothing is lost.
 */
const HUB = 'nomi-wake';
let influx: Influxd;
let t: TestCloud;

beforeAll(async () => {
  influx = await startInfluxd();
  t = await startTestCloud({ INFLUX_URL: influx.url, INFLUX_DB: 'chiiki_test', INFLUX_CREATE_DB: 'true' });
});

afterAll(async () => {
  await t?.stop();
  await influx?.stop();
});

async function health(): Promise<number> {
  return (await t.api(`/healthz`)).status;
}

describe('ingest into InfluxDB', () => {
  it('holds acknowledgements while InfluxDB is down and stores every message once it is back', async () => {
    const cred = t.credentials[HUB]!;
    const device = startResendingDevice(t.cloud.urls.mqtt, { username: cred.username, password: cred.password, clientId: `${HUB}.influx-outage` });
    const sensor = EXAMPLES.find((e) => e.name === 'sensor.telemetry')!.payload;
    const topic = topics.device('ishikawa-nomi', HUB, 'sensor', 'wx', 'telemetry');
    let seq = 0;
    const base = Date.now() - 600_000; // one distinct millisecond per reading: InfluxDB keys a point by series and time
    const timer = setInterval(() => {
      for (let i = 0; i < 10; i++) {
        const id = `outage-${seq++}`;
        device.publish(id, topic, JSON.stringify({ ...sensor, hub: HUB, id, ts: base + seq }));
      }
    }, 20);
    try {
      await waitFor('acknowledged messages before the outage', () => device.acked.size > 300);
      expect(await health()).toBe(200);

      await influx.kill();
      await new Promise((r) => setTimeout(r, 500)); // let writes already in the air fail
      const ackedDuringOutage = device.acked.size;
      await waitFor('/healthz to report the store failing', async () => (await health()) === 503, 10_000);
      await new Promise((r) => setTimeout(r, 1000));
      expect(device.acked.size).toBe(ackedDuringOutage); // nothing acknowledged that is not stored
      expect(device.unacked).toBeGreaterThan(50);

      await influx.restart();
      clearInterval(timer);
      await waitFor('every message acknowledged after InfluxDB came back', () => device.unacked === 0, 40_000);
      expect(await health()).toBe(200);
    } finally {
      clearInterval(timer);
      await device.close();
    }
    const stored = new Set(await t.cloud.store.messageIds(HUB, Date.now() - 3_600_000, Date.now() + 60_000));
    expect([...device.acked].filter((id) => !stored.has(id))).toEqual([]);
    expect(device.acked.size).toBe(device.published);
    const failures = await (await t.api(`/metrics`)).text();
    expect(failures).toMatch(/store_write_failures_total\{store="influxdb"\} [1-9]/);
  }, 90_000);

  it('receives drone, locker and sensor telemetry and events from the simulated region', async () => {
    const region = loadRegionFile(REGION_FILE);
    const since = Date.now() - 60_000;
    const sim = await startRegionSimulator({
      brokerUrl: t.cloud.urls.mqtt, region, credentials: t.credentials, seed: 11, timeScale: 30,
      rates: { droneHz: 2, lockerIntervalS: 1, sensorIntervalS: 1 },
    });
    try {
      await sim.raise('rs-komatsu-kibagata', { kind: 'drone', device: 'drone-1', event: 'battery_low', detail: '残量 24 %, "RTL"' });
      const depot = 'rs-komatsu-kibagata';
      const counts = await waitFor('all three kinds in InfluxDB', async () => {
        const c = {
          drone: await t.cloud.store.countPoints('drone', depot, since, Date.now() + 60_000),
          locker: await t.cloud.store.countPoints('locker', depot, since, Date.now() + 60_000),
          sensor: await t.cloud.store.countPoints('sensor', depot, since, Date.now() + 60_000),
          event: await t.cloud.store.countPoints('event', depot, since, Date.now() + 60_000),
        };
        return c.drone > 0 && c.locker >= 24 && c.sensor > 0 && c.event > 0 ? c : null; // a bank report is one point per compartment (24 in locker-a)
      }, 15_000);
      expect(counts.locker).toBeGreaterThanOrEqual(24);
    } finally {
      await sim.stop();
    }
    for (const hub of region.hubs) {
      const stored = new Set(await t.cloud.store.messageIds(hub.id, since, Date.now() + 60_000));
      expect(sim.ackedIds(hub.id).filter((id) => !stored.has(id)), hub.id).toEqual([]);
    }
  }, 60_000);
});
