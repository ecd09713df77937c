import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { EXAMPLES, topics } from '../contract/index.ts';
import { startTestCloud, tempDir } from './support/cloud-harness.ts';
import { expectExactlyOnce } from './support/counting.ts';
import { deviceLogin, spawnEdge, startTestEdge, testEdgeEnv } from './support/edge-harness.ts';
import { waitFor } from './support/ports.ts';
import { startResendingDevice } from './support/resending-device.ts';
import { startTcpProxy } from './support/tcp-proxy.ts';

/**
 * The hub's 4G link, played by a TCP proxy between the edge agent and the cloud that can cut every
 * connection, go away and come back, or throttle to a few kilobytes per second.
 */
const REGION = 'ishikawa-nomi';
const HUB = 'komatsu-awazu';
const sensor = EXAMPLES.find((e) => e.name === 'sensor.telemetry')!.payload;
const lockerEvent = EXAMPLES.find((e) => e.name === 'locker.event')!.payload;

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function reading(id: string, ts: number, device = 'wx'): [string, string, string] {
  return [id, topics.device(REGION, HUB, 'sensor', device, 'telemetry'), JSON.stringify({ ...sensor, hub: HUB, device, id, ts })];
}

describe('edge agent over a bad link', () => {
  it('link cut repeatedly mid-stream and gone for a while: every reading arrives once', async () => {
    const t = await startTestCloud();
    cleanups.push(() => t.stop());
    const proxy = await startTcpProxy({ target: { host: '127.0.0.1', port: Number(new URL(t.cloud.urls.mqtt).port) } });
    cleanups.push(() => proxy.stop());
    const dir = tempDir('link-cut');
    const agent = await startTestEdge(testEdgeEnv({ hub: HUB, cloudUrl: proxy.url('mqtt'), password: t.credentials[HUB]!.password, dataDir: dir }));
    cleanups.push(() => agent.close(), () => fs.rmSync(dir, { recursive: true, force: true }));
    const device = startResendingDevice(agent.localMqttUrl, deviceLogin(agent, 'wx'));
    let seq = 0;
    const base = Date.now() - 600_000;
    const timer = setInterval(() => {
      for (let i = 0; i < 20; i++) device.publish(...reading(`s-${seq}`, base + seq++));
    }, 20);
    cleanups.push(() => clearInterval(timer));
    await waitFor('traffic', () => agent.uplink.stats().acked > 300);
    // Three cuts, each once the agent is back (a fixed pause let a slower login — the operational
    // database on PostgreSQL — fold two cuts into one reconnect).
    for (let i = 0; i < 3; i++) {
      const before = agent.uplink.stats().connects;
      proxy.cut();
      await waitFor('the agent reconnected after a cut', () => agent.uplink.stats().connects > before, 20_000);
    }
    await proxy.stop();
    await new Promise((r) => setTimeout(r, 1500));
    await proxy.start();
    await new Promise((r) => setTimeout(r, 500));
    clearInterval(timer);
    await waitFor('device done', () => device.unacked === 0);
    await waitFor('outbox drained', () => agent.outbox.depth === 0, 30_000);
    await device.close();
    expect(agent.uplink.stats().connects).toBeGreaterThanOrEqual(4);
    expect(await expectExactlyOnce(t.cloud.store, HUB, device.acked)).toBe(device.published);
  }, 60_000);

  it('a burst far beyond the uplink rate: agent memory stays bounded and the bound policy is applied as documented', async () => {
    const t = await startTestCloud();
    cleanups.push(() => t.stop());
    const proxy = await startTcpProxy({ target: { host: '127.0.0.1', port: Number(new URL(t.cloud.urls.mqtt).port) }, bytesPerSecond: 20_000 });
    cleanups.push(() => proxy.stop());
    const dir = tempDir('burst');
    const edge = await spawnEdge(testEdgeEnv({
      hub: HUB, cloudUrl: proxy.url('mqtt'), password: t.credentials[HUB]!.password, dataDir: dir,
      // One bench client plays five devices (four sensor sets and a locker bank) on one connection:
      // that needs the bench-only anonymous escape hatch. This test measures memory and the bound
      // policy; device logins are tested in edge-security.test.ts.
      extra: { OUTBOX_MAX_MESSAGES: '6000', OUTBOX_THIN_THRESHOLD: '3000', OUTBOX_THIN_INTERVAL_S: '10', LOCAL_ALLOW_ANONYMOUS: 'true' },
    }));
    cleanups.push(() => edge.kill('SIGKILL'), () => fs.rmSync(dir, { recursive: true, force: true }));
    let peakRss = 0;
    const sampler = setInterval(() => {
      const kb = Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${edge.child.pid}/status`, 'utf8'))?.[1] ?? 0);
      peakRss = Math.max(peakRss, kb * 1024);
    }, 100);
    cleanups.push(() => clearInterval(sampler));

    // 4 sensor sets report every 100 ms of device time for 1,000 s: 40,000 readings, plus 100 alarms —
    // about 16 MB, pushed in seconds into an uplink of 20 kB/s.
    const device = startResendingDevice(edge.urls.mqtt, { clientId: 'burst' });
    const base = Date.now() - 3_600_000;
    const events: string[] = [];
    for (let i = 0; i < 10_000; i++) {
      for (const d of ['wx', 'wx-2', 'wx-3', 'wx-4']) device.publish(...reading(`s-${d}-${i}`, base + i * 100, d));
      if (i % 100 === 0) {
        const id = `alarm-${i}`;
        events.push(id);
        device.publish(id, topics.device(REGION, HUB, 'locker', 'locker-a', 'event'), JSON.stringify({ ...lockerEvent, hub: HUB, id, ts: base + i * 100 }));
      }
      if (i % 500 === 0) await waitFor('the agent keeping up with the device', () => device.unacked < 4000, 30_000);
    }
    await waitFor('the agent accepted the burst', () => device.unacked === 0, 60_000);
    const status = (await (await fetch(`${edge.urls.http}/status`)).json()) as { outbox: { depth: number; dropped: Record<string, number> } };
    clearInterval(sampler);
    expect(status.outbox.depth).toBeLessThanOrEqual(6000);
    expect(status.outbox.dropped.thinned).toBeGreaterThan(0);
    expect(peakRss).toBeLessThan(250 * 1024 * 1024);

    proxy.setRate(null); // the link recovers
    await waitFor('outbox drained', async () => ((await (await fetch(`${edge.urls.http}/status`)).json()) as { outbox: { depth: number } }).outbox.depth === 0, 60_000);
    const final = (await (await fetch(`${edge.urls.http}/status`)).json()) as { outbox: { dropped: Record<string, number> } };
    const stored = new Set(await t.cloud.store.messageIds(HUB, 0, 4_102_444_800_000));
    const telemetryStored = [...stored].filter((id) => id.startsWith('s-')).length;
    const dropped = final.outbox.dropped.thinned! + final.outbox.dropped.overflow_telemetry! + final.outbox.dropped.refused_telemetry!;
    // Every reading is either in the cloud or counted as dropped by the documented policy…
    expect(telemetryStored + dropped).toBe(40_000);
    // …and every alarm arrived.
    expect(events.filter((id) => !stored.has(id))).toEqual([]);
    await device.close();
    console.info(`[edge-link] burst: 40,000 readings + ${events.length} alarms; dropped ${JSON.stringify(final.outbox.dropped)}; agent peak RSS ${Math.round(peakRss / 1048576)} MiB`);
  }, 120_000);

  it('an alarm raised during a long replay reaches the cloud before the backlog finishes', async () => {
    const t = await startTestCloud();
    cleanups.push(() => t.stop());
    const proxy = await startTcpProxy({ target: { host: '127.0.0.1', port: Number(new URL(t.cloud.urls.mqtt).port) } });
    cleanups.push(() => proxy.stop());
    const dir = tempDir('alarm');
    const agent = await startTestEdge(testEdgeEnv({ hub: HUB, cloudUrl: proxy.url('mqtt'), password: t.credentials[HUB]!.password, dataDir: dir }));
    cleanups.push(() => agent.close(), () => fs.rmSync(dir, { recursive: true, force: true }));
    await waitFor('connected', () => agent.uplink.connected);
    await proxy.stop(); // an outage: 8,000 readings pile up at the hub
    const device = startResendingDevice(agent.localMqttUrl, deviceLogin(agent, 'wx'));
    const lockerBank = startResendingDevice(agent.localMqttUrl, deviceLogin(agent, 'locker-a'));
    cleanups.push(() => lockerBank.close());
    const base = Date.now() - 9_000_000; // 8,000 readings 1 s apart, all in the past (the cloud refuses future timestamps)
    for (let i = 0; i < 8000; i++) device.publish(...reading(`s-${i}`, base + i * 1000));
    await waitFor('backlog at the hub', () => device.unacked === 0, 30_000);
    expect(agent.outbox.depth).toBe(8000);

    proxy.setRate(40_000); // the link comes back slow: replay takes minutes
    await proxy.start();
    await waitFor('replay under way', () => agent.uplink.stats().acked > 100, 20_000);
    const alarmId = 'alarm-door-1';
    lockerBank.publish(alarmId, topics.device(REGION, HUB, 'locker', 'locker-a', 'event'), JSON.stringify({ ...lockerEvent, hub: HUB, id: alarmId, ts: Date.now() }));
    const raised = Date.now();
    await waitFor('the alarm in the cloud', async () => (await t.cloud.store.messageIds(HUB, Date.now() - 60_000, Date.now() + 60_000)).includes(alarmId), 20_000);
    const alarmLatency = Date.now() - raised;
    const backlogLeft = agent.outbox.depth;
    expect(backlogLeft).toBeGreaterThan(2000);

    proxy.setRate(null);
    await waitFor('outbox drained', () => agent.outbox.depth === 0, 60_000);
    await device.close();
    await expectExactlyOnce(t.cloud.store, HUB, new Set([...device.acked, ...lockerBank.acked]));
    console.info(`[edge-link] alarm reached the cloud ${alarmLatency} ms after it was raised, with ${backlogLeft} of 8,000 backlog messages still waiting`);
  }, 120_000);
});
