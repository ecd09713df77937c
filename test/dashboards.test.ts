import fs from 'node:fs';
import path from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { topics } from '../contract/index.ts';
import { loadRegionFile } from '../cloud/hubs/region-loader.ts';
import { NUMERIC_FIELDS } from '../cloud/telemetry/points.ts';
import { MEASUREMENTS, type Measurement } from '../cloud/telemetry/telemetry-store.ts';
import { allDashboards, generatedFiles } from '../dashboards/src/all-dashboards.ts';
import { startRegionSimulator, type RegionSimulator } from '../simulators/region-simulator.ts';
import { REGION_FILE, ROOT, startTestCloud, type TestCloud } from './support/cloud-harness.ts';
import { influxAdminQuery, startInfluxd, type Influxd } from './support/influxd.ts';
import { waitFor } from './support/ports.ts';

/**
 * The Grafana dashboards (dashboards/): the committed JSON is what the generator produces, every
 * query names a measurement and field the system writes, and every query — with Grafana's macros and
 * template variables filled in as Grafana would — returns data from a real influxd holding simulator
 * data and the cloud's ops stats. (No Grafana server runs here: rendering is not exercised.)
 */

/** String fields of the hub measurements (cloud/telemetry/points.ts); numeric ones are NUMERIC_FIELDS. */
const STRING_FIELDS: Partial<Record<Measurement, readonly string[]>> = {
  drone: ['flight_state', 'geofence', 'mission_id', 'msg_id'],
  locker: ['fault', 'order_id', 'msg_id'],
  event: ['detail', 'mission_id', 'order_id', 'msg_id'],
};

interface PanelQuery {
  dashboard: string;
  panel: string;
  refId: string;
  query: string;
}

function panelQueries(): PanelQuery[] {
  const out: PanelQuery[] = [];
  for (const d of allDashboards()) {
    for (const p of d.panels ?? []) {
      const panel = p as { title?: string; targets?: { refId?: string; query?: string }[] };
      for (const t of panel.targets ?? []) out.push({ dashboard: d.uid!, panel: panel.title ?? '?', refId: t.refId ?? '?', query: t.query ?? '' });
    }
  }
  return out;
}

describe('dashboards as code', () => {
  it('commits exactly what the generator produces', () => {
    const dir = path.join(ROOT, 'dashboards/generated');
    const expected = generatedFiles();
    const committed = fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
    expect(committed, 'run npm run dashboards:generate').toEqual([...expected.keys()].sort());
    for (const [name, content] of expected) expect(fs.readFileSync(path.join(dir, name), 'utf8'), `${name} is stale: run npm run dashboards:generate`).toBe(content);
  });

  it('has the six dashboards, each with $region and $hub, every panel with a raw InfluxQL query on the provisioned data source', () => {
    const dashboards = allDashboards();
    expect(dashboards.map((d) => d.uid)).toEqual(['chiiki-region-overview', 'chiiki-fleet', 'chiiki-lockers', 'chiiki-weather', 'chiiki-deliveries', 'chiiki-data-health']);
    const provisioned = fs.readFileSync(path.join(ROOT, 'dashboards/provisioning/datasources/influxdb.yaml'), 'utf8');
    expect(provisioned).toMatch(/uid: chiiki-influx/);
    for (const d of dashboards) {
      expect(d.templating?.list?.map((v) => v.name)).toEqual(['region', 'hub']);
      for (const p of d.panels ?? []) {
        const targets = (p as { targets?: { rawQuery?: boolean; datasource?: { uid?: string } }[] }).targets ?? [];
        expect(targets.length, `${d.uid}: ${(p as { title?: string }).title}`).toBeGreaterThan(0);
        for (const t of targets) {
          expect(t.rawQuery).toBe(true);
          expect(t.datasource?.uid).toBe('chiiki-influx');
        }
      }
    }
  });

  it('queries only measurements and fields the system writes', () => {
    for (const q of panelQueries()) {
      const where = `${q.dashboard} / ${q.panel} / ${q.refId}`;
      const measurements = [...q.query.matchAll(/FROM "([^"]+)"/g)].map((m) => m[1]!);
      expect(measurements.length, where).toBeGreaterThan(0);
      for (const m of measurements) expect(MEASUREMENTS, where).toContain(m);
      const aliases = new Set([...q.query.matchAll(/AS "([^"]+)"/g)].map((m) => m[1]!));
      const known = new Set(measurements.flatMap((m) => [...NUMERIC_FIELDS[m as Measurement], ...(STRING_FIELDS[m as Measurement] ?? [])]));
      const fields = [...q.query.matchAll(/[a-z_]+\("([^"]+)"\)/g)].map((m) => m[1]!);
      expect(fields.length, where).toBeGreaterThan(0);
      for (const f of fields) expect(known.has(f) || aliases.has(f), `${where}: field "${f}"`).toBe(true);
    }
  });
});

describe('every dashboard query against a real influxd with simulator data', () => {
  const region = loadRegionFile(REGION_FILE);
  const DB = 'chiiki_dash';
  let influx: Influxd;
  let t: TestCloud;
  let sim: RegionSimulator;

  beforeAll(async () => {
    influx = await startInfluxd();
    t = await startTestCloud({ INFLUX_URL: influx.url, INFLUX_DB: DB, INFLUX_CREATE_DB: 'true', OPS_STATS_INTERVAL_S: '1' });
    sim = await startRegionSimulator({
      brokerUrl: t.cloud.urls.mqtt, region, credentials: t.credentials, timeScale: 30, seed: 6,
      rates: { droneHz: 2, lockerIntervalS: 1, sensorIntervalS: 1 },
    });
  }, 60_000);

  afterAll(async () => {
    await sim?.stop();
    await t?.stop();
    await influx?.stop();
  });

  it('returns series for every panel query', async () => {
    const withLockers = region.hubs.find((h) => h.lockers.length > 0)!;
    const destination = region.hubs.find((h) => h.id !== withLockers.id && h.lockers.length > 0)!;
    // An order (orders, deliveries) and an alarm (alarms_open) so those figures are not all zero.
    const order = await t.api(`/api/v1/orders`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ originHub: withLockers.id, destination: { type: 'locker', hub: destination.id }, weightKg: 0.5, tempClass: 'ambient', priority: 'relief', by: 'dashboards-test' }),
    });
    expect(order.status).toBe(201);
    const locker = withLockers.lockers[0]!;
    await sim.raise(withLockers.id, { kind: 'locker', device: locker.id, event: 'door_open_too_long', compartment: locker.compartments[0]!.id });
    // Edge agents report their outbox backlog in hub.status; the bare simulator does not, so one hub says it here.
    const backlogHub = region.hubs.at(-1)!;
    const cred = t.credentials[backlogHub.id]!;
    const client = await mqtt.connectAsync(t.cloud.urls.mqtt, { username: cred.username, password: cred.password, clientId: `${backlogHub.id}.dashboards-test` });
    await client.publishAsync(topics.status(region.id, backlogHub.id), JSON.stringify({
      v: 1, type: 'hub.status', hub: backlogHub.id, state: 'online', ts: Date.now(), agent: 'dashboards-test', outboxDepth: 12, oldestUnsentAgeS: 42.5,
    }), { qos: 1, retain: true });
    await client.endAsync();

    await waitFor('an open alarm', async () => (await t.cloud.alarms.list({ state: 'active', limit: 10 })).length > 0, 10_000);
    await waitFor('simulator data and a few ops-stats ticks', async () => {
      const r = (await influxAdminQuery(influx.url, `SELECT count("ingest_accepted_total") FROM "${DB}".."cloud_stats"`)) as InfluxResult;
      // 12 ticks of 1 s span two 10 s buckets, so rate (derivative) queries have two points whatever the clock.
      return ((r.results[0]?.series?.[0]?.values[0]?.[1] as number | undefined) ?? 0) >= 12 && sim.stats().acked > 500;
    }, 30_000, 250);

    const hubs = region.hubs.map((h) => h.id);
    const substitute = (q: string) =>
      q.replaceAll('$timeFilter', 'time > now() - 1h').replaceAll('$__interval', '10s').replaceAll('$region', region.id).replaceAll('$hub', `(${hubs.join('|')})`);

    // The template variables' own queries list the region and its hubs.
    for (const v of allDashboards()[0]!.templating!.list!) {
      const values = (await run(substitute(String(v.query)))).flatMap((s) => s.values.map((row) => row[1]));
      expect(values, `variable $${v.name}`).toContain(v.name === 'region' ? region.id : hubs[0]);
    }

    const empty: string[] = [];
    for (const q of panelQueries()) {
      const series = await run(substitute(q.query));
      const withValues = series.filter((s) => s.values.some((row) => row.slice(1).some((x) => x !== null)));
      // On-time share is undefined until an order has arrived (the query filters delivered > 0 rather than show 0 %);
      // a mission takes longer than this test, so it must run cleanly and may be empty only while nothing arrived.
      const undefinedYet = q.panel === 'On-time share' && t.cloud.orders && (await deliveredSoFar()) === 0;
      if (withValues.length === 0 && !undefinedYet) empty.push(`${q.dashboard} / ${q.panel} / ${q.refId}: ${q.query}`);
    }
    expect(empty, 'queries that returned no series').toEqual([]);
  }, 60_000);

  interface InfluxResult {
    results: { error?: string; series?: { name: string; tags?: Record<string, string>; columns: string[]; values: unknown[][] }[] }[];
  }

  async function deliveredSoFar(): Promise<number> {
    const series = await run(`SELECT last("delivered") FROM "deliveries" WHERE time > now() - 1h GROUP BY "priority"`);
    return series.reduce((n, s) => n + Number(s.values[0]?.[1] ?? 0), 0);
  }

  async function run(q: string) {
    const res = await fetch(`${influx.url}/query?${new URLSearchParams({ db: DB, q, epoch: 'ms' })}`);
    const body = (await res.json()) as InfluxResult & { error?: string };
    const error = body.error ?? body.results[0]?.error;
    if (error) throw new Error(`influxd refused ${q}: ${error}`);
    return body.results[0]?.series ?? [];
  }
});
