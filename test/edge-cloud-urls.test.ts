import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createSqliteTelemetryStore } from '../cloud/telemetry/sqlite-telemetry-store.ts';
import { EXAMPLES, topics } from '../contract/index.ts';
import { firstCloudUrlIndex } from '../edge/uplink.ts';
import { spawnCloud, startTestCloud, tempDir, testCloudEnv, type CloudProcess, type TestCloud } from './support/cloud-harness.ts';
import { deviceLogin, startTestEdge, testEdgeEnv } from './support/edge-harness.ts';
import { freePort, waitFor } from './support/ports.ts';
import { startResendingDevice } from './support/resending-device.ts';

/**
 * The edge agent's own list of cloud URLs (issue 15: hubs reach a cluster through a load balancer or
 * through this list). The clouds here are single processes that share nothing — each test counts
 * by message id across them; a cluster's nodes would also share the dedupe, which this does not need.
 */
const REGION = 'ishikawa-nomi';
const sensor = EXAMPLES.find((e) => e.name === 'sensor.telemetry')!.payload;
const ALL_TIME = [0, 4_102_444_800_000] as const;

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function reading(hub: string, id: string, ts: number): [string, string, string] {
  return [id, topics.device(REGION, hub, 'sensor', 'wx', 'telemetry'), JSON.stringify({ ...sensor, hub, device: 'wx', id, ts })];
}

/** `urls` placed so that the hub's starting point (a hash of its id) is `urls[0]`, the next `urls[1]`, … */
function inHubOrder(hub: string, urls: string[]): string {
  const start = firstCloudUrlIndex(hub, urls.length);
  const list: string[] = new Array<string>(urls.length);
  urls.forEach((u, i) => (list[(start + i) % urls.length] = u));
  return list.join(',');
}

async function startEdgeFor(t: TestCloud, hub: string, cloudUrl: string, extra: Record<string, string> = {}) {
  const dir = tempDir('edge-urls');
  const agent = await startTestEdge(testEdgeEnv({ hub, cloudUrl, password: t.credentials[hub]!.password, dataDir: dir, extra }));
  cleanups.push(() => agent.close(), () => fs.rmSync(dir, { recursive: true, force: true }));
  return agent;
}

/** Ids of `hub`'s sensor readings in a store, and whether any is stored twice (one point per reading). */
async function readings(store: Awaited<ReturnType<typeof createSqliteTelemetryStore>>, hub: string): Promise<{ ids: Set<string>; points: number }> {
  const ids = new Set((await store.messageIds(hub, ...ALL_TIME)).filter((id) => id.startsWith('s-')));
  return { ids, points: await store.countPoints('sensor', hub, ...ALL_TIME) };
}

/** A sensor at the hub sending `perTick` readings every 20 ms (ids s-0, s-1, …) until stopped. */
function startReadings(agent: Awaited<ReturnType<typeof startEdgeFor>>, hub: string, perTick: number) {
  const device = startResendingDevice(agent.localMqttUrl, deviceLogin(agent, 'wx'));
  let seq = 0;
  const base = Date.now() - 600_000;
  const timer = setInterval(() => {
    for (let i = 0; i < perTick; i++) device.publish(...reading(hub, `s-${seq}`, base + seq++));
  }, 20);
  cleanups.push(() => clearInterval(timer));
  return { device, sent: () => seq, stop: () => clearInterval(timer) };
}

describe('edge agent with a list of cloud URLs', () => {
  it('skips a dead node (closed port) and connects to the next, over TLS or WebSocket as with a single URL', async () => {
    const certDir = tempDir('tls');
    cleanups.push(() => fs.rmSync(certDir, { recursive: true, force: true }));
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout', path.join(certDir, 'key.pem'), '-out', path.join(certDir, 'cert.pem'),
    ], { stdio: 'ignore' });
    const t = await startTestCloud({ MQTTS_PORT: String(await freePort()), MQTT_TLS_CERT: path.join(certDir, 'cert.pem'), MQTT_TLS_KEY: path.join(certDir, 'key.pem') });
    cleanups.push(() => t.stop());
    const dead = `mqtt://127.0.0.1:${await freePort()}`; // nothing listens there: refused

    const cases: { hub: string; live: string; extra: Record<string, string> }[] = [
      { hub: 'nomi-terai', live: t.cloud.urls.mqtts!, extra: { CLOUD_CA_FILE: path.join(certDir, 'cert.pem') } },
      { hub: 'nomi-wake', live: t.cloud.urls.ws!, extra: {} },
    ];
    for (const c of cases) {
      const agent = await startEdgeFor(t, c.hub, inHubOrder(c.hub, [dead, c.live]), c.extra);
      await waitFor(`${c.hub} connected to ${c.live}`, () => agent.uplink.stats().connected);
      expect(agent.uplink.stats()).toMatchObject({ url: c.live, connects: 1 });
      const device = startResendingDevice(agent.localMqttUrl, deviceLogin(agent, 'wx'));
      for (let i = 0; i < 50; i++) device.publish(...reading(c.hub, `s-${i}`, Date.now() - 60_000 + i));
      await waitFor('device done', () => device.unacked === 0);
      await waitFor('outbox drained', () => agent.outbox.depth === 0);
      await device.close();
      const ids = new Set(await t.cloud.store.messageIds(c.hub, ...ALL_TIME));
      expect([...device.acked].filter((id) => !ids.has(id))).toEqual([]);
    }
  }, 60_000);

  it('moves to the other cloud when the one it is connected to stops, and keeps forwarding: every acknowledged reading arrives', async () => {
    const hub = 'komatsu-awazu';
    const clouds = [await startTestCloud(), await startTestCloud()];
    for (const c of clouds) cleanups.push(() => c.stop());
    // Same hub login on both (as on a cluster's nodes, which share it in PostgreSQL).
    await clouds[1]!.cloud.credentials.set(hub, REGION, hub, clouds[0]!.credentials[hub]!.password);
    clouds[1]!.credentials[hub] = clouds[0]!.credentials[hub]!;

    const agent = await startEdgeFor(clouds[0]!, hub, clouds.map((c) => c.cloud.urls.mqtt).join(','));
    const { device, stop } = startReadings(agent, hub, 20);
    await waitFor('traffic', () => agent.uplink.stats().acked > 300);

    const first = clouds.findIndex((c) => c.cloud.urls.mqtt === agent.uplink.stats().url);
    expect(first).toBeGreaterThanOrEqual(0);
    const [gone, other] = [clouds[first]!, clouds[1 - first]!];
    const ackedBefore = agent.uplink.stats().acked;
    await gone.cloud.close(); // its data dir stays: counted below
    await waitFor('the agent moved to the other cloud', () => agent.uplink.stats().connected && agent.uplink.stats().url === other.cloud.urls.mqtt, 20_000);
    await waitFor('forwarding goes on', () => agent.uplink.stats().acked > ackedBefore + 300, 20_000);
    stop();
    await waitFor('device done', () => device.unacked === 0);
    await waitFor('outbox drained', () => agent.outbox.depth === 0, 30_000);
    await device.close();

    const goneStore = await createSqliteTelemetryStore({ path: path.join(gone.dataDir, 'telemetry.db') });
    const a = await readings(goneStore, hub);
    await goneStore.close();
    const b = await readings(other.cloud.store, hub);
    // Each cloud stored each reading once; together they hold every reading the device had acknowledged.
    expect(a.points, 'a reading stored twice by the stopped cloud').toBe(a.ids.size);
    expect(b.points, 'a reading stored twice by the other cloud').toBe(b.ids.size);
    expect([...device.acked].filter((id) => !a.ids.has(id) && !b.ids.has(id)), 'acknowledged readings in neither cloud').toEqual([]);
    expect(device.acked.size).toBe(device.published);
    expect(b.ids.size).toBeGreaterThan(300);
    // Shared-nothing clouds: only a reading in flight when the first stopped can be in both.
    const both = [...a.ids].filter((id) => b.ids.has(id)).length;
    expect(both).toBeLessThanOrEqual(200); // UPLINK_WINDOW
    console.info(`[edge-cloud-urls] ${device.published} readings: ${a.ids.size} to the stopped cloud, ${b.ids.size} to the other, ${both} in both (in flight at the stop)`);
  }, 90_000);
  it('moves back to its own node once that node is back (CLOUD_HOME_RETURN_S), losing nothing; stays put while it is down', async () => {
    const hub = 'nomi-tatsunokuchi';
    const homePort = await freePort();
    const homeUrl = `mqtt://127.0.0.1:${homePort}`;
    const home = await startTestCloud({ MQTT_PORT: String(homePort) });
    const other = await startTestCloud();
    cleanups.push(() => other.stop(), () => fs.rmSync(home.dataDir, { recursive: true, force: true }));
    const password = home.credentials[hub]!.password;
    await other.cloud.credentials.set(hub, REGION, hub, password);

    const agent = await startEdgeFor(home, hub, inHubOrder(hub, [homeUrl, other.cloud.urls.mqtt]), { CLOUD_HOME_RETURN_S: '1' });
    const { device, sent, stop } = startReadings(agent, hub, 10);
    await waitFor('traffic to its own node', () => agent.uplink.stats().url === homeUrl && agent.uplink.stats().acked > 200, 20_000);

    await home.cloud.close(); // its data dir stays: counted below
    await waitFor('the agent moved to the other node', () => agent.uplink.stats().connected && agent.uplink.stats().url === other.cloud.urls.mqtt, 20_000);
    const connectsAfterMove = agent.uplink.stats().connects;
    // Its own node is down: each check finds it so, and the agent keeps its link (no reconnects).
    await waitFor('two checks found its own node down', () => agent.uplink.stats().homeChecksFailed >= 2, 20_000);
    expect(agent.uplink.stats()).toMatchObject({ connected: true, url: other.cloud.urls.mqtt, connects: connectsAfterMove, homeReturns: 0 });
    const ackedOnOther = agent.uplink.stats().acked;

    // The node comes back: a new process on its data (its hub logins there from the start, as a
    // cluster's nodes have them in PostgreSQL) and its address.
    const back = await startTestCloud({ MQTT_PORT: String(homePort) }, home.dataDir);
    cleanups.push(() => back.stop());
    await waitFor('back on its own node', () => agent.uplink.stats().connected && agent.uplink.stats().url === homeUrl, 20_000);
    const seqAtReturn = sent();
    expect(agent.uplink.stats()).toMatchObject({ homeReturns: 1, connects: connectsAfterMove + 1 });
    expect(agent.uplink.stats().acked).toBeGreaterThan(ackedOnOther);
    const ackedAtReturn = agent.uplink.stats().acked;
    await waitFor('forwarding goes on there', () => agent.uplink.stats().acked > ackedAtReturn + 300, 20_000);
    // Home now: no more checks or moves.
    const checks = agent.uplink.stats().homeChecksFailed;
    stop();
    await waitFor('device done', () => device.unacked === 0);
    await waitFor('outbox drained', () => agent.outbox.depth === 0, 30_000);
    await device.close();
    expect(agent.uplink.stats()).toMatchObject({ homeReturns: 1, homeChecksFailed: checks, url: homeUrl });
    const metrics = await (await fetch(`${agent.localHttpUrl}/metrics`)).text();
    expect(metrics).toMatch(/edge_uplink_home_returns_total\{result="moved"\} 1\b/);

    const counted = [await readings(back.cloud.store, hub), await readings(other.cloud.store, hub)];
    for (const [i, c] of counted.entries()) expect(c.points, `a reading stored twice by cloud ${i}`).toBe(c.ids.size);
    expect([...device.acked].filter((id) => !counted.some((c) => c.ids.has(id))), 'acknowledged readings in no cloud').toEqual([]);
    expect(device.acked.size).toBe(device.published);
    // A clean move: readings sent once it was back home went there only; only those in flight at the stop are in both.
    expect([...counted[1]!.ids].filter((id) => Number(id.slice(2)) >= seqAtReturn)).toEqual([]);
    const both = [...counted[0]!.ids].filter((id) => counted[1]!.ids.has(id)).length;
    expect(both).toBeLessThanOrEqual(200); // UPLINK_WINDOW
    console.info(`[edge-cloud-urls] home return: ${device.published} readings, ${counted[0]!.ids.size} to its own node (before it stopped and after it was back), ${counted[1]!.ids.size} to the other, ${both} in both; ${checks} checks found it down`);
  }, 120_000);

  it('moves to the other cloud when the one it is connected to is killed (kill -9): every acknowledged reading arrives', async () => {
    const hub = 'rs-megumi-hakusan';
    // Two cloud processes with the same hub login: each data dir is prepared by an in-process cloud
    // (its database and the login), then served by the real entry point, which can be killed.
    const prepared: TestCloud[] = [];
    for (let i = 0; i < 2; i++) {
      const t = await startTestCloud();
      if (i > 0) await t.cloud.credentials.set(hub, REGION, hub, prepared[0]!.credentials[hub]!.password);
      await t.cloud.close();
      prepared.push(t);
      cleanups.push(() => fs.rmSync(t.dataDir, { recursive: true, force: true }));
    }
    const procs: CloudProcess[] = [];
    for (const t of prepared) {
      const p = await spawnCloud(testCloudEnv(t.dataDir));
      procs.push(p);
      cleanups.push(() => p.kill('SIGKILL'));
    }
    const agent = await startEdgeFor(prepared[0]!, hub, procs.map((p) => p.urls.mqtt).join(','));
    const { device, stop } = startReadings(agent, hub, 20);
    await waitFor('traffic', () => agent.uplink.stats().acked > 300, 20_000);

    const first = procs.findIndex((p) => p.urls.mqtt === agent.uplink.stats().url);
    expect(first).toBeGreaterThanOrEqual(0);
    const ackedBefore = agent.uplink.stats().acked;
    const killedAt = Date.now();
    await procs[first]!.kill('SIGKILL');
    await waitFor('the agent moved to the other cloud', () => agent.uplink.stats().connected && agent.uplink.stats().url === procs[1 - first]!.urls.mqtt, 20_000);
    const movedMs = Date.now() - killedAt;
    await waitFor('forwarding goes on', () => agent.uplink.stats().acked > ackedBefore + 300, 20_000);
    stop();
    await waitFor('device done', () => device.unacked === 0);
    await waitFor('outbox drained', () => agent.outbox.depth === 0, 30_000);
    await device.close();
    await agent.close();
    await procs[1 - first]!.kill('SIGTERM');

    const counted: Awaited<ReturnType<typeof readings>>[] = [];
    for (const t of prepared) {
      const store = await createSqliteTelemetryStore({ path: path.join(t.dataDir, 'telemetry.db') });
      counted.push(await readings(store, hub));
      await store.close();
    }
    for (const [i, c] of counted.entries()) expect(c.points, `a reading stored twice by cloud ${i}`).toBe(c.ids.size);
    expect([...device.acked].filter((id) => !counted.some((c) => c.ids.has(id))), 'acknowledged readings in neither cloud').toEqual([]);
    expect(device.acked.size).toBe(device.published);
    console.info(`[edge-cloud-urls] kill -9: ${device.published} readings, ${counted[first]!.ids.size} to the killed cloud, ${counted[1 - first]!.ids.size} to the other; connected to the other ${movedMs} ms after the kill`);
  }, 120_000);
});
