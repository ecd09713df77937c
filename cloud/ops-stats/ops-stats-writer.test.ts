import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { RegionFile } from '../../contract/index.ts';
import { createRegions, type Regions } from '../hubs/regions.ts';
import { createMetrics } from '../metrics.ts';
import { NUMERIC_FIELDS } from '../telemetry/points.ts';
import { OPS_MEASUREMENTS, type TelemetryPoint, type TelemetryStore } from '../telemetry/telemetry-store.ts';
import { quantileBetween, startOpsStatsWriter, type OpsStatsSources } from './ops-stats-writer.ts';

/** A TelemetryStore that keeps what it is given. */
function recordingStore(): TelemetryStore & { points: TelemetryPoint[] } {
  const points: TelemetryPoint[] = [];
  return {
    kind: 'memory', points,
    write: async (p) => void points.push(...p),
    history: async () => [],
    messageIds: async () => [],
    countPoints: async () => 0,
    close: async () => {},
  };
}

const HUBS = ['hub-a', 'hub-b'];
const logger = pino({ level: 'silent' });
/** Only what the writer reads of a region file: its id and its hubs' ids. */
const region = (id: string, hubs: string[]) => ({ id, hubs: hubs.map((h) => ({ id: h })) }) as unknown as RegionFile;

function setup(regions: Regions = createRegions([region('r1', HUBS)])) {
  const metrics = createMetrics({ hubLinks: () => [{ hub: 'hub-a', online: true, outboxDepth: null, oldestUnsentAgeS: null }, { hub: 'hub-b', online: false, outboxDepth: null, oldestUnsentAgeS: null }] as never });
  // Answered later, as a database would.
  const sources: OpsStatsSources = {
    metrics,
    activeAlarms: async () => [{ hub: 'hub-a', severity: 'critical' }, { hub: 'hub-a', severity: 'critical' }, { hub: 'hub-b', severity: 'warning' }],
    modes: async (r) => (r === 'r1' ? [{ hub: 'hub-a', emergency: true, acknowledged: false, version: 3 }, { hub: 'hub-b', emergency: false, acknowledged: true, version: 3 }] : []),
    orderCounts: async (r) => (r === 'r1' ? [{ state: 'pending', priority: 'relief', count: 2 }, { state: 'delivered', priority: 'relief', count: 5 }] : []),
    deliveries: (r) => (r === 'r1' ? [{ priority: 'relief', delivered: 5, onTime: 4 }] : []),
  };
  const store = recordingStore();
  let t = 1_000_000;
  const writer = startOpsStatsWriter({ store, regions, sources, intervalMs: 3_600_000, now: () => (t += 10_000), logger });
  const at = (ts: number) => store.points.filter((p) => p.ts === ts);
  const one = (ts: number, measurement: string, tags: Record<string, string> = {}) => {
    const found = at(ts).filter((p) => p.measurement === measurement && Object.entries(tags).every(([k, v]) => p.tags[k] === v));
    expect(found, `${measurement} ${JSON.stringify(tags)}`).toHaveLength(1);
    return found[0]!;
  };
  return { metrics, sources, store, writer, one, at };
}

describe('ops stats writer', () => {
  it('writes ingest counters, hubs online, open alarms, modes, orders and deliveries', async () => {
    const { metrics, writer, one, store } = setup();
    await writer.stop(); // the first tick ran at start; drive the rest by hand
    store.points.length = 0;
    metrics.accepted.inc({ type: 'sensor.telemetry' }, 7);
    metrics.accepted.inc({ type: 'drone.telemetry' }, 3);
    metrics.rejected.inc({ reason: 'schema' }, 2);
    metrics.ingestPending.set(4);
    await writer.writeOnce();
    const ts = store.points[0]!.ts;

    const cloud = one(ts, 'cloud_stats');
    expect(cloud.tags).toEqual({ region: 'r1', hub: '', device: '' });
    expect(cloud.fields).toMatchObject({ ingest_accepted_total: 10, ingest_rejected_total: 2, ingest_pending: 4, hubs_online: 1 });
    expect(one(ts, 'ingest_rejections', { reason: 'schema' }).fields).toEqual({ count: 2 });
    expect(one(ts, 'ingest_rejections', { reason: 'too_large' }).fields).toEqual({ count: 0 });

    expect(one(ts, 'alarms_open', { hub: 'hub-a', severity: 'critical' }).fields).toEqual({ count: 2 });
    expect(one(ts, 'alarms_open', { hub: 'hub-a', severity: 'warning' }).fields).toEqual({ count: 0 }); // zeros too: no gaps
    expect(one(ts, 'alarms_open', { hub: 'hub-b', severity: 'warning' }).fields).toEqual({ count: 1 });

    expect(one(ts, 'hub_mode', { hub: 'hub-a' }).fields).toEqual({ emergency: 1, acknowledged: 0, version: 3 });
    expect(one(ts, 'hub_mode', { hub: 'hub-b' }).fields).toEqual({ emergency: 0, acknowledged: 1, version: 3 });

    expect(one(ts, 'orders', { state: 'pending', priority: 'relief' }).fields).toEqual({ count: 2 });
    expect(one(ts, 'orders', { state: 'held', priority: 'normal' }).fields).toEqual({ count: 0 });
    expect(one(ts, 'deliveries', { priority: 'relief' }).fields).toEqual({ delivered: 5, on_time: 4 });
    expect(one(ts, 'deliveries', { priority: 'normal' }).fields).toEqual({ delivered: 0, on_time: 0 });
  });

  it('reports store write latency over the interval since the previous tick', async () => {
    const { metrics, writer, one, store } = setup();
    await writer.stop();
    await writer.writeOnce();
    for (const s of [0.002, 0.003, 0.004, 0.2]) metrics.storeWriteSeconds.observe({ store: 'influxdb' }, s);
    store.points.length = 0;
    await writer.writeOnce();
    const f = one(store.points[0]!.ts, 'cloud_stats').fields;
    expect(f.store_writes).toBe(4);
    expect(f.store_write_mean_ms).toBeCloseTo(52.25, 2);
    expect(f.store_write_p50_ms as number).toBeGreaterThan(2.5);
    expect(f.store_write_p50_ms as number).toBeLessThanOrEqual(5);
    expect(f.store_write_p95_ms as number).toBeGreaterThan(100);
    expect(f.store_write_p95_ms as number).toBeLessThanOrEqual(250);

    store.points.length = 0; // no writes since: a count of 0 and no latency
    await writer.writeOnce();
    const idle = one(store.points[0]!.ts, 'cloud_stats').fields;
    expect(idle.store_writes).toBe(0);
    expect(idle).not.toHaveProperty('store_write_p95_ms');
  });

  it('writes only measurements and numeric fields the store declares, with unique ids per point', async () => {
    const { writer, store } = setup();
    await writer.stop();
    await writer.writeOnce();
    for (const p of store.points) {
      expect(OPS_MEASUREMENTS).toContain(p.measurement);
      for (const field of Object.keys(p.fields)) expect(NUMERIC_FIELDS[p.measurement], `${p.measurement}.${field}`).toContain(field);
    }
    const keys = store.points.map((p) => `${p.tags.hub}|${p.msgId}|${p.measurement}`);
    expect(new Set(keys).size).toBe(keys.length); // the SQLite store's dedupe key would drop a repeat
  });

  it('keeps ticking after a failed write and stops cleanly', async () => {
    const { metrics } = setup();
    let calls = 0;
    const store = recordingStore();
    const failing: TelemetryStore = { ...store, write: async (p) => { if (++calls === 1) throw new Error('down'); await store.write(p); } };
    const sources: OpsStatsSources = { metrics, activeAlarms: () => [], modes: () => [], orderCounts: () => [], deliveries: () => [] };
    const writer = startOpsStatsWriter({ store: failing, regions: createRegions([region('r1', HUBS)]), sources, intervalMs: 20, logger });
    await expect.poll(() => store.points.length, { timeout: 2_000 }).toBeGreaterThan(0);
    await writer.stop();
    const n = store.points.length;
    await new Promise((r) => setTimeout(r, 60));
    expect(store.points.length).toBe(n);
  });
});

describe('ops stats writer with several regions (issue 14)', () => {
  it('writes each region\'s figures tagged with it, and a region added while running from the next tick on', async () => {
    const regions = createRegions([region('r1', HUBS)]);
    const { writer, store, one } = setup(regions);
    await writer.stop();
    regions.add(region('r2', ['hub-c']));
    store.points.length = 0;
    await writer.writeOnce();
    const ts = store.points[0]!.ts;
    expect(new Set(store.points.map((p) => p.tags.region))).toEqual(new Set(['r1', 'r2']));
    expect(one(ts, 'cloud_stats', { region: 'r1' }).fields).toMatchObject({ hubs_online: 1 });
    expect(one(ts, 'cloud_stats', { region: 'r2' }).fields).toMatchObject({ hubs_online: 0 });
    expect(one(ts, 'alarms_open', { region: 'r2', hub: 'hub-c', severity: 'critical' }).fields).toEqual({ count: 0 });
    expect(store.points.filter((p) => p.measurement === 'alarms_open' && p.tags.region === 'r2').map((p) => p.tags.hub)).toEqual(['hub-c', 'hub-c']);
    expect(one(ts, 'alarms_open', { region: 'r1', hub: 'hub-a', severity: 'critical' }).fields).toEqual({ count: 2 });
    expect(one(ts, 'orders', { region: 'r2', state: 'pending', priority: 'relief' }).fields).toEqual({ count: 0 });
    expect(one(ts, 'orders', { region: 'r1', state: 'pending', priority: 'relief' }).fields).toEqual({ count: 2 });
    const keys = store.points.map((p) => `${p.tags.hub}|${p.msgId}|${p.measurement}`);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('leaves out a failing source\'s figures for that tick (logged), writes the rest, and keeps going', async () => {
    const regions = createRegions([region('r1', HUBS), region('r2', ['hub-c'])]);
    const { writer, store, sources, one } = setup(regions);
    await writer.stop();
    const warnings: unknown[] = [];
    const logged = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(JSON.parse(line)) });
    const failing: OpsStatsSources = {
      ...sources,
      activeAlarms: async () => { throw new Error('database away'); },
      modes: (r) => { if (r === 'r2') throw new Error('mode view broke'); return sources.modes(r); },
    };
    const w = startOpsStatsWriter({ store, regions, sources: failing, intervalMs: 3_600_000, logger: logged });
    await w.stop();
    store.points.length = 0;
    await w.writeOnce();
    const ts = store.points[0]!.ts;
    expect(store.points.filter((p) => p.measurement === 'alarms_open')).toEqual([]); // a gap, not a false zero
    expect(one(ts, 'hub_mode', { region: 'r1', hub: 'hub-a' }).fields).toMatchObject({ emergency: 1 });
    expect(one(ts, 'cloud_stats', { region: 'r2' })).toBeDefined();
    expect(one(ts, 'orders', { region: 'r2', state: 'pending', priority: 'relief' })).toBeDefined();
    expect(warnings).toEqual(expect.arrayContaining([
      expect.objectContaining({ source: 'alarms', msg: expect.stringContaining('left out of this tick') }),
      expect.objectContaining({ source: 'modes', region: 'r2' }),
    ]));
  });
});

describe('ops stats writer in a cluster (issue 15)', () => {
  it('writes the figures of the regions whose lease this node holds, only', async () => {
    const { sources } = setup();
    const store = recordingStore();
    const held = new Set(['region:r2']);
    const w = startOpsStatsWriter({
      store, regions: createRegions([region('r1', HUBS), region('r2', ['hub-c'])]), sources, intervalMs: 3_600_000, logger, leases: { holds: (n) => held.has(n) },
    });
    await w.stop();
    store.points.length = 0;
    await w.writeOnce();
    expect(new Set(store.points.map((p) => p.tags.region))).toEqual(new Set(['r2']));
    held.clear();
    store.points.length = 0;
    await w.writeOnce();
    expect(store.points).toEqual([]);
  });
});

describe('quantileBetween', () => {
  const b = (counts: number[]) => [0.01, 0.1, Infinity].map((le, i) => ({ le, count: counts[i]! }));
  it('interpolates inside the bucket of the rank', () => {
    expect(quantileBetween(b([0, 0, 0]), b([10, 10, 10]), 0.5)).toBeCloseTo(0.005);
    expect(quantileBetween(b([10, 10, 10]), b([10, 20, 20]), 0.5)).toBeCloseTo(0.055);
  });
  it('is null without observations and the last finite bound beyond it', () => {
    expect(quantileBetween(b([1, 2, 3]), b([1, 2, 3]), 0.95)).toBeNull();
    expect(quantileBetween(b([0, 0, 0]), b([0, 0, 5]), 0.95)).toBe(0.1);
  });
});
