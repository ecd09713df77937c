/**
 * Write throughput of the telemetry store adapters, in batches like the ingest group commit makes.
 *
 *   npx tsx scripts/bench-telemetry-store.ts [batches=100] [batchSize=1000]
 *
 * SQLite always (synchronous=full and =normal, in a temp dir). InfluxDB too: the one INFLUX_URL
 * (and INFLUX_DB, INFLUX_TOKEN, … as for the cloud) points at — use a scratch database, the bench
 * writes into it — or else a throw-away influxd started by test/support/influxd.ts.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { loadCloudConfig } from '../cloud/config.ts';
import { createInfluxTelemetryStore } from '../cloud/telemetry/influx-telemetry-store.ts';
import { pointsForMessage } from '../cloud/telemetry/points.ts';
import { createSqliteTelemetryStore } from '../cloud/telemetry/sqlite-telemetry-store.ts';
import type { TelemetryPoint, TelemetryStore } from '../cloud/telemetry/telemetry-store.ts';
import type { DroneTelemetry, LockerTelemetry, SensorTelemetry } from '../contract/index.ts';
import { createInfluxDatabase, startInfluxd } from '../test/support/influxd.ts';

const batches = Number(process.argv[2] ?? 100);
const batchSize = Number(process.argv[3] ?? 1_000);
const T0 = 1_764_000_000_000;

/** A realistic mix: per "tick", a drone fix, a 16-compartment locker bank and a weather station per hub. */
function makeBatches(): TelemetryPoint[][] {
  const all: TelemetryPoint[] = [];
  for (let seq = 0; all.length < batches * batchSize; seq++) {
    const hub = `hub-${seq % 20}`;
    const ts = T0 + seq * 100;
    const envelope = { v: 1 as const, ts, hub };
    const drone: DroneTelemetry = {
      ...envelope, type: 'drone.telemetry', id: `d-${seq}`, device: 'drone-1', lat: 36.39 + (seq % 1000) / 1e5, lon: 136.46, altM: 60,
      groundSpeedMps: 9.8, headingDeg: seq % 360, batteryPct: 100 - (seq % 100), batteryTimeRemainingS: 800, batteryVoltageV: 47.1,
      batteryTempC: 31, flightState: 'mission', payloadKg: 2.4, remoteIdActive: true, geofence: 'ok', missionId: 'mission-0007',
    };
    const locker: LockerTelemetry = {
      ...envelope, type: 'locker.telemetry', id: `l-${seq}`, device: 'locker-a',
      compartments: Array.from({ length: 16 }, (_, c) => ({
        id: `A${String(c + 1).padStart(2, '0')}`, size: 'M' as const, tempClass: 'chilled' as const, door: 'closed' as const,
        occupied: c % 3 === 0, reservedFor: c % 4 === 0 ? `order-${seq}-${c}` : null, tempC: 5 + (c % 3), fault: 'none' as const,
      })),
    };
    const sensor: SensorTelemetry = {
      ...envelope, type: 'sensor.telemetry', id: `s-${seq}`, device: 'wx', windSpeedMps: 3.4, windGustMps: 5.1, windDirDeg: 270,
      rainMmPerH: 0, airTempC: 11.8, gridPowerUp: true, backupBatteryPct: 100, linkQualityPct: 82,
    };
    for (const m of [drone, locker, sensor]) all.push(...pointsForMessage('ishikawa-nomi', m));
  }
  return Array.from({ length: batches }, (_, i) => all.slice(i * batchSize, (i + 1) * batchSize));
}

async function bench(label: string, store: TelemetryStore, data: TelemetryPoint[][]): Promise<void> {
  await store.write(data[0]!.slice(0, 10)); // warm-up (prepared statements, connections); re-written below, idempotently
  const latencies: number[] = [];
  const started = performance.now();
  for (const batch of data) {
    const t = performance.now();
    await store.write(batch);
    latencies.push(performance.now() - t);
  }
  const seconds = (performance.now() - started) / 1000;
  const points = data.reduce((n, b) => n + b.length, 0);
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!.toFixed(1);
  console.log(
    `${label.padEnd(28)} ${Math.round(points / seconds).toLocaleString('en').padStart(9)} points/s   ` +
      `(${points.toLocaleString('en')} points, batches of ${batchSize}: p50 ${pct(0.5)} ms, p99 ${pct(0.99)} ms per batch)`,
  );
}

const data = makeBatches();
console.log(`${os.cpus().length} CPUs, ${batches} batches of ${batchSize} points\n`);

const dir = await mkdtemp(path.join(os.tmpdir(), 'bench-telemetry-'));
try {
  for (const synchronous of ['full', 'normal'] as const) {
    const store = await createSqliteTelemetryStore({ path: path.join(dir, `${synchronous}.db`), synchronous });
    await bench(`sqlite synchronous=${synchronous}`, store, data);
    await store.close();
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}

const config = loadCloudConfig();
if (config.influx) {
  const store = await createInfluxTelemetryStore(config.influx);
  await bench(`influxdb ${config.influx.url}`, store, data);
  await store.close();
} else {
  const influxd = await startInfluxd();
  try {
    await createInfluxDatabase(influxd.url, 'bench');
    const store = await createInfluxTelemetryStore({ url: influxd.url, database: 'bench' });
    await bench('influxdb 1.6 (local influxd)', store, data);
    await store.close();
  } finally {
    await influxd.stop();
  }
}
