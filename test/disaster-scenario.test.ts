import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadRegionFile } from '../cloud/hubs/region-loader.ts';
import type { EdgeAgent } from '../edge/agent.ts';
import { startRegionSimulator, type RegionSimulator } from '../simulators/region-simulator.ts';
import { REGION_FILE, startTestCloud, tempDir, type TestCloud } from './support/cloud-harness.ts';
import { deviceLoginsOf, staffToken, startTestEdge, testEdgeEnv } from './support/edge-harness.ts';
import { waitFor } from './support/ports.ts';
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy.ts';

/**
 * The disaster scenario end to end: a roadside station (depot with drones), a community hall with
 * lockers, and a hall cut off from the cloud. The coordinator switches the region to emergency:
 * connected hubs acknowledge; relief goes out first, along a registered route, to a shelter; a normal
 * order is held (kept); the cut-off hall's staff switch it locally and it reconciles when its link
 * returns; after the switch back the normal order resumes.
 */
const REGION = 'ishikawa-nomi';
const DEPOT = 'rs-komatsu-kibagata';
const HALL = 'nomi-kokufu';
const CUT_OFF = 'komatsu-awazu';
const region = loadRegionFile(REGION_FILE);
let t: TestCloud;
let proxy: TcpProxy;
let sim: RegionSimulator;
const agents = new Map<string, EdgeAgent>();
const dir = tempDir('disaster');

interface OrderBody { id: string; state: string; reason: string | null; waitReasons: { code: string }[] | null; audit?: { from: string | null; to: string; reason: string }[] }
interface ModeBody { hubs: { hub: string; status: string }[] }

async function api<T>(path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await t.api(`${path}`, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as T };
}
const order = async (id: string) => (await api<OrderBody>(`/api/v1/orders/${id}`)).body;
const hubStatus = async (hub: string) => (await api<ModeBody>(`/api/v1/regions/${REGION}/mode`)).body.hubs.find((h) => h.hub === hub)!.status;

beforeAll(async () => {
  t = await startTestCloud({ MODE_ACK_TIMEOUT_S: '3' });
  proxy = await startTcpProxy({ target: { host: '127.0.0.1', port: Number(new URL(t.cloud.urls.mqtt).port) } });
  for (const hub of [DEPOT, HALL, CUT_OFF]) {
    const cloudUrl = hub === CUT_OFF ? proxy.url('mqtt') : t.cloud.urls.mqtt;
    agents.set(hub, await startTestEdge(testEdgeEnv({ hub, cloudUrl, password: t.credentials[hub]!.password, dataDir: `${dir}/${hub}` })));
  }
  const urls = Object.fromEntries([...agents].map(([hub, a]) => [hub, a.localMqttUrl]));
  sim = await startRegionSimulator({
    brokerUrl: t.cloud.urls.mqtt, brokerUrlFor: (hub) => urls[hub]!, region, hubs: [DEPOT, HALL], publishStatus: false, seed: 9, timeScale: 40,
    deviceLogins: deviceLoginsOf(agents.values()),
    rates: { droneHz: 2, lockerIntervalS: 1, sensorIntervalS: 1 },
    params: { drone: { meanIdleS: 1e12 }, sensor: { meanWindMps: 2, windSdMps: 0.3, windySpellsPerHour: 0, rainEpisodesPerHour: 0 }, locker: { reservationsPerHour: 0 } },
  });
  await waitFor('every agent connected and the depot reporting', async () =>
    [...agents.values()].every((a) => a.uplink.connected) &&
    (await api<{ deviceStates: { telemetry: unknown }[] }>(`/api/v1/hubs/${DEPOT}`)).body.deviceStates.every((d) => d.telemetry), 20_000);
}, 60_000);

afterAll(async () => {
  await sim?.stop();
  for (const a of agents.values()) await a.close();
  await proxy?.stop();
  await t?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('disaster scenario', () => {
  let normalId: string;

  it('emergency: connected hubs acknowledge, the cut-off hub is pending; relief goes first along a registered route; normal orders are held', async () => {
    await proxy.stop(); // the hall's 4G link is gone
    await waitFor('cut off', () => !agents.get(CUT_OFF)!.uplink.connected);
    const sw = await api<{ version: number }>(`/api/v1/regions/${REGION}/mode`, { mode: 'emergency', reason: '震度6強: relief operations', by: 'bousai-komatsu' });
    expect(sw.status).toBe(202);
    await waitFor('the connected hubs acknowledged', async () => (await hubStatus(DEPOT)) === 'acknowledged' && (await hubStatus(HALL)) === 'acknowledged', 10_000);
    expect(await hubStatus(CUT_OFF)).toMatch(/pending|timed_out/);

    const normal = await api<OrderBody>('/api/v1/orders', { originHub: DEPOT, destination: { type: 'locker', hub: HALL }, weightKg: 1, priority: 'normal', by: 'shop' });
    normalId = normal.body.id;
    const relief = await api<OrderBody>('/api/v1/orders', { originHub: DEPOT, destination: { type: 'site', siteId: 'kibagata-park-shelter' }, weightKg: 3, priority: 'relief', by: 'bousai-komatsu' });
    expect(relief.status).toBe(201);

    const held = await waitFor('the normal order held', async () => ((await order(normalId)).state === 'held' ? order(normalId) : null), 10_000);
    expect(held.waitReasons!.map((r) => r.code)).toContain('held_emergency');
    const delivered = await waitFor('relief delivered at the shelter', async () => {
      const o = await order(relief.body.id);
      if (o.state === 'failed') throw new Error(`relief failed: ${o.reason}`);
      return o.state === 'delivered' ? o : null;
    }, 60_000);
    expect(delivered.audit!.find((a) => a.to === 'assigned')!.reason).toContain('registered route kibagata-park');
    expect((await order(normalId)).state).toBe('held'); // still kept, not failed
  }, 90_000);

  it('the cut-off hall, switched locally by its staff, reconciles when its link returns', async () => {
    const local = await fetch(`${agents.get(CUT_OFF)!.localHttpUrl}/mode`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${staffToken(agents.get(CUT_OFF)!)}` }, body: JSON.stringify({ mode: 'emergency', reason: '道路寸断' }) });
    expect(local.status).toBe(200);
    await proxy.start();
    await waitFor('reconciled', async () => (await hubStatus(CUT_OFF)) === 'acknowledged', 20_000);
    const history = (await api<{ entries: { kind: string; hubs: string[] | null }[] }>(`/api/v1/regions/${REGION}/mode/history`)).body.entries;
    expect(history.some((e) => e.kind === 'local_switch' && e.hubs?.includes(CUT_OFF))).toBe(true);
  }, 30_000);

  it('after the switch back, the held normal order resumes', async () => {
    await api(`/api/v1/regions/${REGION}/mode`, { mode: 'normal', reason: 'relief operations over', by: 'bousai-komatsu' });
    const resumed = await waitFor('the normal order no longer held', async () => {
      const o = await order(normalId);
      return o.state !== 'held' ? o : null;
    }, 20_000);
    // Straight to a drone when one is ready, else back to pending with the reason.
    const leftHold = resumed.audit!.find((a) => a.from === 'held')!;
    expect(leftHold.to === 'assigned' || leftHold.reason === 'emergency mode ended').toBe(true);
    expect(['pending', 'assigned', 'in_flight', 'in_locker']).toContain(resumed.state);
  }, 30_000);
});
