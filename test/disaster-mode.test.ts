import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RegionFile, RegionMode, topics } from '../contract/index.ts';
import type { EdgeAgent } from '../edge/agent.ts';
import { REGION_FILE, startTestCloud, tempDir } from './support/cloud-harness.ts';
import { staffToken, startTestEdge, testEdgeEnv } from './support/edge-harness.ts';
import { connect } from './support/mqtt-client.ts';
import { waitFor } from './support/ports.ts';
import { startTcpProxy } from './support/tcp-proxy.ts';

/**
 * Disaster mode end to end (issue 4): a real cloud and one real edge agent per hub for a region of
 * three hubs, one of them behind a TCP proxy that plays its 4G link. A coordinator switches the
 * region to emergency while that hub is cut off; its staff switch it locally; the link returns.
 */
const REGION = 'ishikawa-nomi';
const [HALL, STATION, CUT_OFF] = ['nomi-terai', 'rs-komatsu-kibagata', 'hakusan-tsurugi'] as const;
const HUBS = [HALL, STATION, CUT_OFF];

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** The demo region cut down to the three hubs the test runs agents for (relief routes and rounds kept where they still fit). */
function threeHubRegion(dir: string): string {
  const full = RegionFile.parse(JSON.parse(fs.readFileSync(REGION_FILE, 'utf8')));
  const keep = new Set<string>(HUBS);
  const region = {
    ...full,
    hubs: full.hubs.filter((h) => keep.has(h.id)),
    reliefRoutes: full.reliefRoutes.filter((r) => keep.has(r.fromHub)),
    groundRounds: full.groundRounds.filter((g) => g.stops.every((s) => keep.has(s))),
  };
  const file = path.join(dir, 'region.json');
  fs.writeFileSync(file, JSON.stringify(region));
  return file;
}

interface ModeView {
  desired: { version: number; mode: string; hubs: Record<string, string>; at: string | null };
  hubs: {
    hub: string; desired: string; status: string; acknowledged: { version: number; mode: string; source: string; historical: boolean; at: string; receivedAt: string } | null;
    conflict: { winner: string; local: { mode: string; at: string; reason: string; version: number }; coordinator: { version: number; mode: string; at: string; by: string; reason: string } } | null;
  }[];
  counts: { total: number; acknowledged: number; pending: number; timedOut: number; diverged: number; conflict: number };
  allAcknowledged: boolean;
  lastAcknowledgedAt: string | null;
}
interface AuditView { kind: string; by: string; mode: string; hubs: string[] | null; version: number; historical: boolean; reason: string; summary: string; at: string }

describe('disaster mode with real edge agents', () => {
  it('switch with one hub cut off: connected hubs acknowledge within seconds, the local switch reconciles when the link returns', async () => {
    const dir = tempDir('disaster');
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const t = await startTestCloud({ REGION_FILE: threeHubRegion(dir), MODE_ACK_TIMEOUT_S: '2' });
    cleanups.push(() => t.stop());
    const proxy = await startTcpProxy({ target: { host: '127.0.0.1', port: Number(new URL(t.cloud.urls.mqtt).port) } });
    cleanups.push(() => proxy.stop());

    const agents = new Map<string, EdgeAgent>();
    for (const hub of HUBS) {
      const cloudUrl = hub === CUT_OFF ? proxy.url('mqtt') : t.cloud.urls.mqtt;
      const agent = await startTestEdge(testEdgeEnv({ hub, cloudUrl, password: t.credentials[hub]!.password, dataDir: path.join(dir, hub) }));
      cleanups.push(() => agent.close());
      agents.set(hub, agent);
    }
    const agent = (hub: string) => agents.get(hub)!;
    await waitFor('every agent connected', () => HUBS.every((h) => agent(h).uplink.connected));

    const get = async <T>(p: string): Promise<T> => {
      const res = await t.api(`${p}`);
      expect(res.status).toBe(200);
      return (await res.json()) as T;
    };
    const view = () => get<ModeView>(`/api/v1/regions/${REGION}/mode`);
    const history = async () => (await get<{ entries: AuditView[] }>(`/api/v1/regions/${REGION}/mode/history`)).entries;
    const hubView = (v: ModeView, hub: string) => v.hubs.find((h) => h.hub === hub)!;
    // The coordinator's account is what the audit log records as `by`.
    const coordinator = await t.tokenFor('bousai-nomi-1', 'coordinator');
    const post = (body: unknown) => t.api(`/api/v1/regions/${REGION}/mode`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${coordinator}` }, body: JSON.stringify(body),
    });

    // Before any switch: version 0, every hub normal, nothing to acknowledge.
    const before = await view();
    expect(before.desired).toMatchObject({ version: 0, mode: 'normal' });
    expect(before.counts).toMatchObject({ total: 3, acknowledged: 3 });

    // The cut-off hub loses its link.
    await proxy.stop();
    await waitFor('the cut-off hub noticed', () => !agent(CUT_OFF).uplink.connected);

    // ---- the coordinator switches the region to emergency
    const switchedAt = Date.now();
    const res = await post({ mode: 'emergency', reason: '能登半島で震度6強 — M7.0 earthquake, relief operations start', by: 'bousai-nomi-1' });
    expect(res.status).toBe(202);
    const sw = (await res.json()) as { version: number; published: boolean; at: string; changes: unknown[] };
    expect(sw).toMatchObject({ version: 1, published: true });
    expect(sw.changes).toHaveLength(3);

    const connected = await waitFor('the two connected hubs acknowledged', async () => {
      const v = await view();
      return v.counts.acknowledged === 2 ? v : null;
    }, 10_000, 10);
    const observedMs = Date.now() - switchedAt;
    const switchToLastAckMs = Date.parse(connected.lastAcknowledgedAt!) - Date.parse(sw.at);
    console.log(`disaster mode: switch → last acknowledgement of the connected hubs: ${switchToLastAckMs} ms (cloud clock); observed through the API after ${observedMs} ms`);
    expect(switchToLastAckMs).toBeLessThan(5_000);
    expect(hubView(connected, HALL)).toMatchObject({ status: 'acknowledged', desired: 'emergency', acknowledged: { version: 1, mode: 'emergency', source: 'cloud' } });
    expect(hubView(connected, STATION).status).toBe('acknowledged');
    expect(hubView(connected, CUT_OFF)).toMatchObject({ status: 'pending', acknowledged: null });
    for (const h of [HALL, STATION]) expect(agent(h).state.mode()).toMatchObject({ mode: 'emergency', version: 1, source: 'cloud' });

    // Pending turns timed_out after MODE_ACK_TIMEOUT_S (2 s here).
    await waitFor('the cut-off hub timed out', async () => hubView(await view(), CUT_OFF).status === 'timed_out', 10_000);

    // ---- meanwhile, the cut-off hub's staff switch it locally (the hub's own endpoint works without the cloud)
    const local = await fetch(`${agent(CUT_OFF).localHttpUrl}/mode`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${staffToken(agent(CUT_OFF))}` },
      body: JSON.stringify({ mode: 'emergency', reason: '道路寸断 — access road cut, hall opened as shelter' }),
    });
    expect(local.status).toBe(200);
    expect(await local.json()).toMatchObject({ mode: 'emergency', version: 0, source: 'local' });
    await new Promise((r) => setTimeout(r, 300));
    expect(hubView(await view(), CUT_OFF).status).toBe('timed_out'); // the cloud cannot know yet

    // ---- the link returns: the hub gets the retained desired state (version 1 > 0, applied) and replays its local switch
    await proxy.start();
    const reconciled = await waitFor('the cut-off hub reconciled', async () => {
      const v = await view();
      const entries = await history();
      return hubView(v, CUT_OFF).status === 'acknowledged' && entries.some((e) => e.kind === 'local_switch') ? { v, entries } : null;
    }, 20_000);
    expect(agent(CUT_OFF).state.mode()).toMatchObject({ mode: 'emergency', version: 1, source: 'cloud' });
    expect(hubView(reconciled.v, CUT_OFF).acknowledged).toMatchObject({ version: 1, mode: 'emergency', source: 'cloud' });
    expect(reconciled.v.allAcknowledged).toBe(true);
    const localEntry = reconciled.entries.find((e) => e.kind === 'local_switch')!;
    expect(localEntry).toMatchObject({ by: `hub staff at ${CUT_OFF}`, mode: 'emergency', hubs: [CUT_OFF], version: 0, historical: true, reason: '道路寸断 — access road cut, hall opened as shelter' });
    expect(localEntry.summary).toContain(`hub ${CUT_OFF} switched locally to emergency at ${localEntry.at}: 道路寸断`);
    // The hub's live entry shows the mode it acknowledged last.
    const hub = await get<{ mode: { version: number; mode: string } }>(`/api/v1/hubs/${CUT_OFF}`);
    expect(hub.mode).toMatchObject({ version: 1, mode: 'emergency' });

    // ---- staff at a connected hub switch it back locally: shown as diverged, nothing published
    const diverge = await fetch(`${agent(STATION).localHttpUrl}/mode`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${staffToken(agent(STATION))}` }, body: JSON.stringify({ mode: 'normal', reason: 'no damage here' }),
    });
    expect(diverge.status).toBe(200);
    const diverged = await waitFor('the station diverged', async () => {
      const v = await view();
      return hubView(v, STATION).status === 'diverged' ? v : null;
    });
    expect(diverged.desired.version).toBe(1);
    expect(hubView(diverged, STATION).acknowledged).toMatchObject({ version: 1, mode: 'normal', source: 'local', historical: false });
    expect(t.cloud.modes.modeOf(STATION)).toBe('emergency'); // the desired state stays authoritative

    // ---- the coordinator switches back to normal: every hub applies version 2 and acknowledges
    const backAt = Date.now();
    const back = await post({ mode: 'normal', reason: 'relief operations over', by: 'bousai-nomi-1' });
    expect(back.status).toBe(202);
    const done = await waitFor('every hub back to normal', async () => {
      const v = await view();
      return v.allAcknowledged && v.desired.version === 2 ? v : null;
    }, 10_000, 10);
    console.log(`disaster mode: switch back → last acknowledgement of all 3 hubs: ${Date.parse(done.lastAcknowledgedAt!) - Date.parse(done.desired.at!)} ms (observed after ${Date.now() - backAt} ms)`);
    for (const h of HUBS) {
      expect(hubView(done, h)).toMatchObject({ status: 'acknowledged', desired: 'normal', acknowledged: { version: 2, mode: 'normal', source: 'cloud' } });
      expect(agent(h).state.mode()).toMatchObject({ mode: 'normal', version: 2 });
    }

    // The audit log, newest first.
    const entries = await history();
    expect(entries.map((e) => [e.kind, e.by, e.mode, e.version])).toEqual([
      ['switch', 'bousai-nomi-1', 'normal', 2],
      ['local_switch', `hub staff at ${STATION}`, 'normal', 1],
      ['local_switch', `hub staff at ${CUT_OFF}`, 'emergency', 0],
      ['switch', 'bousai-nomi-1', 'emergency', 1],
    ]);
  }, 90_000);

  it('across a partition, a hub\'s local emergency later than a coordinator\'s switch to normal is kept, and the coordinator sees the conflict (issue 12, defect 10b)', async () => {
    const dir = tempDir('disaster-conflict');
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const t = await startTestCloud({ REGION_FILE: threeHubRegion(dir) });
    cleanups.push(() => t.stop());
    const proxy = await startTcpProxy({ target: { host: '127.0.0.1', port: Number(new URL(t.cloud.urls.mqtt).port) } });
    cleanups.push(() => proxy.stop());
    const cutOff = await startTestEdge(testEdgeEnv({ hub: CUT_OFF, cloudUrl: proxy.url('mqtt'), password: t.credentials[CUT_OFF]!.password, dataDir: path.join(dir, CUT_OFF) }));
    cleanups.push(() => cutOff.close());
    await waitFor('the hub connected', () => cutOff.uplink.connected);
    const coordinator = await t.tokenFor('bousai-nomi-1', 'coordinator');
    const view = async () => (await (await t.api(`/api/v1/regions/${REGION}/mode`, { headers: { authorization: `Bearer ${coordinator}` } })).json()) as ModeView;
    const hubView = (v: ModeView) => v.hubs.find((h) => h.hub === CUT_OFF)!;

    // The link is cut; the coordinator gives the all clear (version 1, normal) …
    await proxy.stop();
    await waitFor('the hub noticed', () => !cutOff.uplink.connected);
    const res = await t.api(`/api/v1/regions/${REGION}/mode`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${coordinator}` },
      body: JSON.stringify({ mode: 'normal', reason: 'all clear after the tremor' }),
    });
    expect(res.status).toBe(202);
    const { at: coordinatorAt } = (await res.json()) as { at: string };
    // … and after it (wall clock), the cut-off hub's staff switch it to emergency on the hub's own endpoint.
    await waitFor('the hub clock is past the coordinator\'s switch', () => Date.now() > Date.parse(coordinatorAt));
    const local = await fetch(`${cutOff.localHttpUrl}/mode`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${staffToken(cutOff)}` },
      body: JSON.stringify({ mode: 'emergency', reason: '土砂崩れ — landslide on the access road' }),
    });
    expect(local.status).toBe(200);

    // The link returns. The hub first applies the retained version 1 it missed (the edge applies any newer
    // version), replays its local switch; the cloud finds the conflict, keeps the later (the hub's) and publishes it.
    const modesSeen: string[] = [];
    const sampler = setInterval(() => {
      const m = cutOff.state.mode();
      const key = `${m.mode}@${m.version}`;
      if (modesSeen.at(-1) !== key) modesSeen.push(key);
    }, 5);
    cleanups.push(() => clearInterval(sampler));
    // Every mode the hub applies from here on: its own emergency must never give way, even for a moment.
    const applied: string[] = [];
    const setMode = cutOff.state.setMode.bind(cutOff.state);
    cutOff.state.setMode = (m) => {
      applied.push(`${m.mode}@${m.version}`);
      setMode(m);
    };
    const restoredAt = Date.now();
    await proxy.start();
    const settled = await waitFor('the hub back in its emergency and the conflict visible', async () => {
      const v = await view();
      const m = cutOff.state.mode();
      return m.mode === 'emergency' && m.version === 2 && hubView(v).status === 'conflict' ? v : null;
    }, 20_000, 10);
    clearInterval(sampler);
    console.log(`disaster mode conflict: link restored → hub in its emergency again as version 2: ${Date.now() - restoredAt} ms; hub modes seen: ${modesSeen.join(' → ')}`);
    expect(applied.filter((m) => !m.startsWith('emergency@'))).toEqual([]);
    expect(settled.desired).toMatchObject({ version: 2, mode: 'normal', hubs: { [CUT_OFF]: 'emergency' } });
    expect(hubView(settled)).toMatchObject({
      desired: 'emergency', status: 'conflict',
      conflict: {
        winner: 'hub', local: { mode: 'emergency', version: 0, reason: '土砂崩れ — landslide on the access road' },
        coordinator: { version: 1, mode: 'normal', at: coordinatorAt, by: 'bousai-nomi-1', reason: 'all clear after the tremor' },
      },
    });
    expect(settled.counts.conflict).toBe(1);
    expect(t.cloud.modes.modeOf(CUT_OFF)).toBe('emergency'); // dispatch follows the hub's emergency

    // A coordinator decides (here: back to normal for that hub): the conflict closes, the hub follows.
    const decide = await t.api(`/api/v1/regions/${REGION}/mode`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${coordinator}` },
      body: JSON.stringify({ mode: 'normal', hubs: [CUT_OFF], reason: 'road checked: passable' }),
    });
    expect(decide.status).toBe(202);
    await waitFor('the conflict closed and the hub acknowledged', async () => {
      const h = hubView(await view());
      return h.status === 'acknowledged' && h.conflict === null && cutOff.state.mode().mode === 'normal';
    }, 10_000, 10);
  }, 60_000);

  it('the whole demo region: an agent at each of its 13 hubs acknowledges the switch', async () => {
    const dir = tempDir('disaster-region');
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const t = await startTestCloud();
    cleanups.push(() => t.stop());
    const hubs = t.cloud.live.regions.all()[0]!.hubs.map((h) => h.id);
    const agents = await Promise.all(hubs.map((hub) =>
      startTestEdge(testEdgeEnv({ hub, cloudUrl: t.cloud.urls.mqtt, password: t.credentials[hub]!.password, dataDir: path.join(dir, hub) }))));
    cleanups.push(() => Promise.all(agents.map((a) => a.close())));
    await waitFor('every agent connected', () => agents.every((a) => a.uplink.connected));

    const res = await t.api(`/api/v1/regions/${REGION}/mode`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ mode: 'emergency', reason: '大雨特別警報 — heavy rain emergency warning', by: 'bousai-nomi-1' }),
    });
    expect(res.status).toBe(202);
    const { at } = (await res.json()) as { at: string };
    const done = await waitFor('all 13 hubs acknowledged', async () => {
      const v = (await (await t.api(`/api/v1/regions/${REGION}/mode`)).json()) as ModeView;
      return v.allAcknowledged && v.desired.version === 1 ? v : null;
    }, 15_000, 10);
    expect(done.counts).toMatchObject({ total: 13, acknowledged: 13 });
    console.log(`disaster mode: switch → last acknowledgement of all ${hubs.length} hubs of the demo region: ${Date.parse(done.lastAcknowledgedAt!) - Date.parse(at)} ms`);
  }, 60_000);

  it('validates switches, and a restarted cloud publishes the stored desired state again (retained)', async () => {
    const dataDir = tempDir('disaster-restart');
    let t = await startTestCloud({}, dataDir);
    cleanups.push(() => t.stop());
    const post = (body: unknown, region = REGION) =>
      t.api(`/api/v1/regions/${region}/mode`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const error = async (r: Response) => ({ status: r.status, code: ((await r.json()) as { error: { code: string } }).error.code });

    expect(await error(await post({ mode: 'emergency', reason: 'x', by: 'c' }, 'no-such-region'))).toEqual({ status: 404, code: 'region_not_found' });
    expect(await error(await post({ mode: 'emergency', hubs: ['no-such-hub'], reason: 'x', by: 'c' }))).toEqual({ status: 400, code: 'hub_not_in_region' });
    expect(await error(await post({ mode: 'emergency', by: 'c' }))).toEqual({ status: 400, code: 'validation' }); // reason is required
    expect(await error(await post({ mode: 'emergency', reason: 'x'.repeat(501), by: 'c' }))).toEqual({ status: 400, code: 'validation' });
    expect(await error(await post({ mode: 'panic', reason: 'x', by: 'c' }))).toEqual({ status: 400, code: 'validation' });
    // A reason the region mode message cannot carry to the hubs (a control character, e.g. pasted from a word
    // processor): 400 — it was taken (202) and every hub refused the message (found in review).
    expect(await error(await post({ mode: 'emergency', reason: 'quake\u000B area B', by: 'c' }))).toEqual({ status: 400, code: 'validation' });
    expect(await error(await t.api(`/api/v1/regions/no-such-region/mode`))).toEqual({ status: 404, code: 'region_not_found' });

    expect((await post({ mode: 'emergency', hubs: ['nomi-terai', 'nomi-wake'], reason: 'flood warning', by: 'c' })).status).toBe(202);
    expect((await post({ mode: 'emergency', hubs: ['rs-shirayamasan'], reason: 'landslide', by: 'c' })).status).toBe(202);

    // Restart on the same data directory: the broker starts empty, the cloud publishes version 2 again.
    await t.cloud.close();
    t = await startTestCloud({}, dataDir);
    const creds = t.credentials['nomi-terai']!;
    const client = await connect(t.cloud.urls.mqtt, { username: creds.username, password: creds.password, clientId: 'nomi-terai.mode-watch' });
    cleanups.push(() => client.endAsync());
    const retained = new Promise<{ message: RegionMode; retain: boolean }>((resolve) =>
      client.on('message', (_topic, payload, packet) => resolve({ message: RegionMode.parse(JSON.parse(payload.toString('utf8'))), retain: packet.retain })));
    await client.subscribeAsync(topics.regionMode(REGION), { qos: 1 });
    const got = await retained;
    expect(got.retain).toBe(true);
    expect(got.message).toMatchObject({ version: 2, mode: 'normal', hubs: { 'nomi-terai': 'emergency', 'nomi-wake': 'emergency', 'rs-shirayamasan': 'emergency' }, reason: 'landslide' });
    expect(t.cloud.modes.modeOf('rs-shirayamasan')).toBe('emergency');
    expect(t.cloud.modes.modeOf('nomi-kokufu')).toBe('normal');
  }, 60_000);
});
