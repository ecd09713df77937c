import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createSqliteTelemetryStore } from '../cloud/telemetry/sqlite-telemetry-store.ts';
import { EXAMPLES, topics } from '../contract/index.ts';
import { ROOT, startTestCloud, tempDir, type TestCloud } from './support/cloud-harness.ts';
import { deviceLogin, startTestEdge, testEdgeEnv } from './support/edge-harness.ts';
import { freePort, waitFor } from './support/ports.ts';
import { startResendingDevice } from './support/resending-device.ts';

/**
 * The committed deploy/haproxy/haproxy.cfg (the compose profile `cluster`), run by Debian's haproxy on
 * loopback in front of real clouds: only the addresses are changed (the compose service names become
 * loopback ports). Issue 15: "hubs reach the cluster through a TCP load balancer with health checks".
 * The clouds are single processes that share nothing (same hub login on each); counts are by message id
 * across them. The cluster fault tests run HAProxy in front of a real cluster.
 */
const REGION = 'ishikawa-nomi';
const HUB = 'hakusan-tsurugi';
const HAPROXY = fs.existsSync('/usr/sbin/haproxy') ? '/usr/sbin/haproxy' : 'haproxy';
const sensor = EXAMPLES.find((e) => e.name === 'sensor.telemetry')!.payload;
const ALL_TIME = [0, 4_102_444_800_000] as const;

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A node's ports by the port the compose file gives it (1883 MQTT, 8883 MQTTS, 8083 WebSocket, 8080 HTTP). */
type NodePorts = Record<1883 | 8883 | 8083 | 8080, number>;

async function nodePorts(t: TestCloud | null): Promise<NodePorts> {
  const port = (url: string | null | undefined) => (url ? Number(new URL(url).port) : null);
  const dead = async () => freePort(); // nothing listens there
  return {
    1883: port(t?.cloud.urls.mqtt) ?? (await dead()),
    8883: port(t?.cloud.urls.mqtts) ?? (await dead()),
    8083: port(t?.cloud.urls.ws) ?? (await dead()),
    8080: port(t?.cloud.urls.http) ?? (await dead()),
  };
}

/** The committed configuration with every `bind :<port>` on a free loopback port and `cloud-N` at the given ports. */
async function localConfig(nodes: Record<string, NodePorts>): Promise<{ text: string; front: Record<number, number> }> {
  const cfg = fs.readFileSync(path.join(ROOT, 'deploy/haproxy/haproxy.cfg'), 'utf8');
  const front: Record<number, number> = {};
  for (const m of cfg.matchAll(/^\s+bind :(\d+)$/gm)) front[Number(m[1])] = await freePort();
  const text = cfg
    .replace(/^(\s+bind ):(\d+)$/gm, (_, b: string, p: string) => `${b}127.0.0.1:${front[Number(p)]}`)
    .replace(/^(\s+server (cloud-\d) )cloud-\d:(\d+)(.*)$/gm, (_, head: string, node: string, p: string, rest: string) => {
      const ports = nodes[node]!;
      const checkPort = rest.replace(/port (\d+)/, (_x, cp: string) => `port ${ports[Number(cp) as keyof NodePorts]}`);
      return `${head}127.0.0.1:${ports[Number(p) as keyof NodePorts]}${checkPort}`;
    });
  return { text, front };
}

async function startHaproxy(text: string): Promise<{ child: ChildProcess; output: string[] }> {
  const dir = tempDir('haproxy');
  const file = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(file, text);
  // -db: stay in the foreground, logs to stdout (the configuration's `log stdout`).
  const child = spawn(HAPROXY, ['-db', '-f', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  child.stdout!.on('data', (d: Buffer) => output.push(d.toString()));
  child.stderr!.on('data', (d: Buffer) => output.push(d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { child, output };
}

const monitor = async (port: number) => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => null))?.status ?? 0;

describe('deploy/haproxy/haproxy.cfg in front of cloud nodes', () => {
  it('routes a hub past a dead node, moves it to another node when its node stops (nothing lost), and reports itself down when no node is left', async () => {
    // The committed configuration sends the PROXY protocol (send-proxy-v2) to the MQTT ports, as the compose nodes require it.
    const behindHaproxy = { MQTT_PROXY_PROTOCOL: 'required', MQTT_TRUSTED_PROXIES: '127.0.0.1' };
    const a = await startTestCloud(behindHaproxy);
    const b = await startTestCloud(behindHaproxy);
    for (const t of [a, b]) cleanups.push(() => t.stop());
    await b.cloud.credentials.set(HUB, REGION, HUB, a.credentials[HUB]!.password);
    // cloud-3 is down from the start.
    const { text, front } = await localConfig({ 'cloud-1': await nodePorts(a), 'cloud-2': await nodePorts(b), 'cloud-3': await nodePorts(null) });
    const haproxy = await startHaproxy(text);
    await waitFor('HAProxy up, a node taking MQTT', async () => (await monitor(front[8404]!)) === 200, 15_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${haproxy.output.join('')}`);
    });
    // The API through HAProxy (HTTP mode) reaches a node.
    expect((await fetch(`http://127.0.0.1:${front[8080]}/healthz`)).status).toBe(200);

    const dir = tempDir('edge-haproxy');
    const agent = await startTestEdge(testEdgeEnv({ hub: HUB, cloudUrl: `mqtt://127.0.0.1:${front[1883]}`, password: a.credentials[HUB]!.password, dataDir: dir }));
    cleanups.push(() => agent.close(), () => fs.rmSync(dir, { recursive: true, force: true }));
    const device = startResendingDevice(agent.localMqttUrl, deviceLogin(agent, 'wx'));
    let seq = 0;
    const base = Date.now() - 600_000;
    const timer = setInterval(() => {
      for (let i = 0; i < 20; i++) {
        const id = `s-${seq}`;
        device.publish(id, topics.device(REGION, HUB, 'sensor', 'wx', 'telemetry'), JSON.stringify({ ...sensor, hub: HUB, device: 'wx', id, ts: base + seq++ }));
      }
    }, 20);
    cleanups.push(() => clearInterval(timer));
    await waitFor('traffic through HAProxy', () => agent.uplink.stats().acked > 300, 20_000);

    // The node the hub is on: the one storing its readings (one MQTT connection, one node).
    const stored = async (t: TestCloud) => (await t.cloud.store.messageIds(HUB, ...ALL_TIME)).length;
    const onA = (await stored(a)) > 0;
    expect(onA !== (await stored(b)) > 0).toBe(true);
    const [gone, other] = onA ? [a, b] : [b, a];
    const connectsBefore = agent.uplink.stats().connects;
    const ackedBefore = agent.uplink.stats().acked;
    const stoppedAt = Date.now();
    await gone.cloud.close(); // its data dir stays: counted below
    await waitFor('the agent reconnected through HAProxy', () => agent.uplink.stats().connected && agent.uplink.stats().connects > connectsBefore, 20_000);
    const reconnectMs = Date.now() - stoppedAt;
    await waitFor('forwarding goes on, to the other node', async () => agent.uplink.stats().acked > ackedBefore + 300 && (await stored(other)) > 0, 20_000);
    clearInterval(timer);
    await waitFor('device done', () => device.unacked === 0);
    await waitFor('outbox drained', () => agent.outbox.depth === 0, 30_000);
    await device.close();

    const goneStore = await createSqliteTelemetryStore({ path: path.join(gone.dataDir, 'telemetry.db') });
    const idsGone = new Set((await goneStore.messageIds(HUB, ...ALL_TIME)).filter((id) => id.startsWith('s-')));
    const pointsGone = await goneStore.countPoints('sensor', HUB, ...ALL_TIME);
    await goneStore.close();
    const idsOther = new Set((await other.cloud.store.messageIds(HUB, ...ALL_TIME)).filter((id) => id.startsWith('s-')));
    expect(pointsGone, 'a reading stored twice by the stopped node').toBe(idsGone.size);
    expect(await other.cloud.store.countPoints('sensor', HUB, ...ALL_TIME), 'a reading stored twice by the other node').toBe(idsOther.size);
    expect([...device.acked].filter((id) => !idsGone.has(id) && !idsOther.has(id)), 'acknowledged readings on neither node').toEqual([]);
    expect(device.acked.size).toBe(device.published);

    // The health checks took the stopped node out; with the last one stopped HAProxy reports itself down.
    expect(await monitor(front[8404]!)).toBe(200);
    await agent.close();
    await other.cloud.close();
    await waitFor('HAProxy down with no node left (2 failed checks, 2 s apart)', async () => (await monitor(front[8404]!)) === 503, 15_000);
    expect(haproxy.child.exitCode).toBeNull();
    console.info(`[haproxy-config] ${device.published} readings through HAProxy: ${idsGone.size} to the stopped node, ${idsOther.size} to the other; back on the other node ${reconnectMs} ms after the stop began`);
  }, 120_000);
});
