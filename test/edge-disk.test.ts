import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { EXAMPLES, topics } from '../contract/index.ts';
import { startTestCloud, tempDir } from './support/cloud-harness.ts';
import { expectExactlyOnce } from './support/counting.ts';
import { deviceLogin, startTestEdge, testEdgeEnv } from './support/edge-harness.ts';
import { connect } from './support/mqtt-client.ts';
import { waitFor } from './support/ports.ts';
import { startResendingDevice } from './support/resending-device.ts';
import { startTcpProxy } from './support/tcp-proxy.ts';
import { stallSqliteStore } from './support/store-stall.ts';

/**
 * A full disk at the hub [issue 12]: the outbox file is capped with SQLite's max_page_count (the
 * test-only `sqliteMaxPageCount`), which makes SQLite fail with SQLITE_FULL exactly like a full disk.
 */
const REGION = 'ishikawa-nomi';
const HUB = 'hakusan-chiyono';
const sensor = EXAMPLES.find((e) => e.name === 'sensor.telemetry')!.payload;
const sensorTopic = topics.device(REGION, HUB, 'sensor', 'wx', 'telemetry');

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Status { uplink: { connected: boolean }; outbox: { depth: number }; storage: { ok: boolean; errors: number; lastError: string | null } }

/** A test cloud, a TCP proxy in front of its MQTT port (to cut the link) and an agent behind it. */
async function agentBehindProxy(name: string, commandTimeoutS: number) {
  const t = await startTestCloud();
  cleanups.push(() => t.stop());
  const proxy = await startTcpProxy({ target: { host: '127.0.0.1', port: Number(new URL(t.cloud.urls.mqtt).port) } });
  cleanups.push(() => proxy.stop());
  const edgeDir = tempDir(name);
  cleanups.push(() => fs.rmSync(edgeDir, { recursive: true, force: true }));
  const agent = await startTestEdge(testEdgeEnv({ hub: HUB, cloudUrl: proxy.url('mqtt'), password: t.credentials[HUB]!.password, dataDir: edgeDir, extra: { COMMAND_TIMEOUT_S: String(commandTimeoutS) } }));
  cleanups.push(() => agent.close());
  const status = async () => (await (await fetch(`${agent.localHttpUrl}/status`)).json()) as Status;
  await waitFor('the agent connected', () => agent.uplink.connected);
  return { t, proxy, agent, status };
}

/** Small events from `device`, one at a time, until one finds no room in the outbox (refused, no PUBACK). */
async function fillUntilRefused(device: ReturnType<typeof startResendingDevice>, prefix: string, status: () => Promise<Status>): Promise<void> {
  for (let i = 0; ; i++) {
    const id = `${prefix}-${i}`;
    const errors = (await status()).storage.errors;
    device.publish(id, topics.device(REGION, HUB, 'sensor', 'wx', 'event'), JSON.stringify({ v: 1, type: 'sensor.event', id, ts: Date.now(), hub: HUB, device: 'wx', event: 'wind_over_limit', severity: 'info', value: 1 }));
    const outcome = await waitFor(`event ${id} stored or refused`, async () => (device.acked.has(id) ? 'stored' : (await status()).storage.errors > errors ? 'refused' : null));
    if (outcome === 'refused') return;
  }
}

describe('edge agent on a full disk', () => {
  it('does not crash, refuses device messages without PUBACK, reports it in /status, and recovers when space returns, losing nothing it acknowledged', async () => {
    const { t, proxy, agent, status } = await agentBehindProxy('disk-edge', 1);

    // The link goes down, and the disk fills up while the device keeps publishing.
    await proxy.stop();
    await waitFor('the link down', () => !agent.uplink.connected);
    agent.outbox.setSqliteMaxPageCount(1); // no room beyond the pages the file has now
    const device = startResendingDevice(agent.localMqttUrl, { ...deviceLogin(agent, 'wx'), retryMs: 200 });
    cleanups.push(() => device.close());
    let seq = 0;
    const base = Date.now() - 600_000;
    const publish = (n: number) => {
      for (let i = 0; i < n; i++) {
        const id = `s-${seq++}`;
        device.publish(id, sensorTopic, JSON.stringify({ ...sensor, hub: HUB, id, ts: base + seq }));
      }
    };
    const timer = setInterval(() => publish(20), 20);
    cleanups.push(() => clearInterval(timer));
    await waitFor('the agent reports the full disk', async () => !(await status()).storage.ok, 20_000);
    await waitFor('the device holds messages the agent did not acknowledge', () => device.unacked > 50);
    clearInterval(timer);
    // Down to the last bytes: small events one at a time until even one of those finds no room, so
    // that nothing the size of the agent's own results fits either.
    const small = startResendingDevice(agent.localMqttUrl, { ...deviceLogin(agent, 'wx', 'small'), retryMs: 200 });
    cleanups.push(() => small.close());
    await fillUntilRefused(small, 'e', status);

    // With the cloud's store stalled (nothing acknowledged, nothing leaves the outbox), the link
    // returns and a command arrives that no device answers: its timeout result cannot be stored.
    const stall = stallSqliteStore(t.dataDir);
    cleanups.push(() => stall.close());
    await proxy.start();
    await waitFor('the link back', () => agent.uplink.connected);
    const res = await t.api(`/api/v1/hubs/${HUB}/commands`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ device: 'locker-a', command: 'locker.unlock', args: { compartment: 'A01' } }),
    });
    expect(res.status, await res.clone().text()).toBe(202);
    const cmd = (await res.json()) as { id: string };
    const errorsBefore = (await status()).storage.errors;
    // The agent's own messages leaving the outbox (the cloud acknowledges what does not go to the
    // stalled store) free a few pages, which the device's resends fill again: `ok` can read true for a
    // moment in between (CI saw it), so the report is read from one snapshot that shows both.
    const full = await waitFor('the timeout result failing to be stored, reported', async () => {
      const s = await status();
      return s.storage.errors > errorsBefore + 2 && !s.storage.ok ? s : null;
    }, 10_000);
    expect(full.storage.ok).toBe(false);
    expect(full.storage.lastError).toMatch(/SQLITE_FULL|full/i);
    const metrics = await (await fetch(`${agent.localHttpUrl}/metrics`)).text();
    expect(metrics).toMatch(/^edge_storage_ok 0$/m);
    expect(metrics).toMatch(/^edge_storage_errors_total\{where="outbox_append"\} [1-9]/m);

    // Space returns: everything the device holds is taken, the command result goes out, all drains.
    agent.outbox.setSqliteMaxPageCount(1_000_000_000);
    stall.release();
    await waitFor('the device has no unacknowledged message', () => device.unacked === 0, 20_000);
    await waitFor('the outbox drained', () => agent.outbox.depth === 0, 20_000);
    expect((await status()).storage.ok).toBe(true);
    const command = await waitFor('the command answered', async () => {
      const c = (await (await t.api(`/api/v1/commands/${cmd.id}`)).json()) as { state: string; detail: string | null };
      // 'duplicate' is the agent's answer to a re-delivery of a command it already holds; its own result
      // (stored once space returned) follows and replaces it. At load the re-delivery can come first.
      return c.state === 'pending' || c.state === 'sent' || c.state === 'duplicate' ? null : c;
    });
    expect(command.state).toBe('failed');
    expect(command.detail).toMatch(/did not answer/);
    await waitFor('the small events all acknowledged', () => small.unacked === 0);
    const stored = await expectExactlyOnce(t.cloud.store, HUB, [...device.acked, ...small.acked]);
    expect(stored).toBe(device.published);
    console.info(`[edge-disk] ${device.published} readings and ${small.published} small events published, ${full.storage.errors} storage errors while full; all ${stored} stored once after space returned`);
  }, 90_000);

  it('a device\'s command answer refused for a full disk leaves the command open: the agent\'s timeout result still goes out', async () => {
    const { t, proxy, agent, status } = await agentBehindProxy('disk-answer', 2);
    const locker = await connect(agent.localMqttUrl, deviceLogin(agent, 'locker-a'));
    cleanups.push(() => locker.end(true));
    const commandsIn: string[] = [];
    locker.on('message', (_topic, payload) => commandsIn.push((JSON.parse(payload.toString()) as { id: string }).id));
    await locker.subscribeAsync(topics.command(REGION, HUB, 'locker', 'locker-a'), { qos: 1 });
    const res = await t.api(`/api/v1/hubs/${HUB}/commands`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ device: 'locker-a', command: 'locker.unlock', args: { compartment: 'A01' } }),
    });
    const cmd = (await res.json()) as { id: string };
    await waitFor('the command at the locker', () => commandsIn.includes(cmd.id));

    // Link down, disk full (as the first test: small events until one finds no room).
    await proxy.stop();
    await waitFor('the link down', () => !agent.uplink.connected);
    agent.outbox.setSqliteMaxPageCount(1);
    const filler = startResendingDevice(agent.localMqttUrl, { ...deviceLogin(agent, 'wx', 'fill'), retryMs: 200 });
    cleanups.push(() => filler.close());
    await fillUntilRefused(filler, 'f', status);
    filler.close();

    // The locker answers once and is gone before it could send it again (no PUBACK came).
    let acked = false;
    locker.publish(topics.commandAck(REGION, HUB), JSON.stringify({ v: 1, type: 'hub.command-ack', id: 'locker-answer-1', ts: Date.now(), hub: HUB, device: 'locker-a', commandId: cmd.id, result: 'done' }), { qos: 1 }, (err) => (acked = !err));
    await waitFor('the answer refused: the connection closed without PUBACK', () => !locker.connected);
    locker.end(true);
    expect(acked).toBe(false);

    // Space and the link return: the command does not stay pending — the agent's timeout says nobody answered.
    agent.outbox.setSqliteMaxPageCount(1_000_000_000);
    await proxy.start();
    const command = await waitFor('the command settled', async () => {
      const c = (await (await t.api(`/api/v1/commands/${cmd.id}`)).json()) as { state: string; detail: string | null };
      // 'duplicate' is the agent's answer to the re-delivery on reconnect (it holds the command); its result follows.
      return c.state === 'pending' || c.state === 'duplicate' ? null : c;
    }, 20_000).catch(async () => (await t.api(`/api/v1/commands/${cmd.id}`)).json() as Promise<{ state: string; detail: string | null }>);
    expect(command.state).toBe('failed');
    expect(command.detail).toMatch(/did not answer/);
  }, 60_000);

  it('a state write failing as a device\'s answer settles its command is reported, and the answer, already in the outbox, is acknowledged', async () => {
    const dir = tempDir('disk-state');
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const agent = await startTestEdge(testEdgeEnv({ hub: HUB, cloudUrl: 'mqtt://127.0.0.1:9', password: 'x'.repeat(32), dataDir: dir }));
    cleanups.push(() => agent.close());
    const rejections: unknown[] = [];
    const onRejection = (r: unknown) => rejections.push(r);
    process.on('unhandledRejection', onRejection);
    cleanups.push(() => process.off('unhandledRejection', onRejection));
    agent.state.addCommand('cmd-1', 'locker-a', 'locker.unlock', Date.now(), Date.now() + 60_000, 'relayed', null);
    (agent.state as unknown as { setCommand: () => void }).setCommand = () => {
      throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
    };
    const locker = await connect(agent.localMqttUrl, deviceLogin(agent, 'locker-a'));
    cleanups.push(() => locker.end(true));
    await locker.publishAsync(topics.commandAck(REGION, HUB), JSON.stringify({ v: 1, type: 'hub.command-ack', id: 'answer-1', ts: Date.now(), hub: HUB, device: 'locker-a', commandId: 'cmd-1', result: 'done' }), { qos: 1 });
    const status = (await (await fetch(`${agent.localHttpUrl}/status`)).json()) as Status;
    expect(status.storage.lastError).toMatch(/command_ack: SQLITE_FULL/);
    expect(agent.outbox.depth).toBe(1);
    expect(rejections).toEqual([]);
  }, 20_000);

  it('a device\'s answer whose state write fails: the command\'s timeout does not also report that nobody answered', async () => {
    const { t, agent } = await agentBehindProxy('disk-timer', 1);
    const locker = await connect(agent.localMqttUrl, deviceLogin(agent, 'locker-a'));
    cleanups.push(() => locker.end(true));
    const commandsIn: string[] = [];
    locker.on('message', (_topic, payload) => commandsIn.push((JSON.parse(payload.toString()) as { id: string }).id));
    await locker.subscribeAsync(topics.command(REGION, HUB, 'locker', 'locker-a'), { qos: 1 });
    const cmd = await t.cloud.commands.issue({ hub: HUB, device: 'locker-a', command: 'locker.unlock', args: { compartment: 'A01' }, ttlS: 300 });
    await waitFor('the command at the locker', () => commandsIn.includes(cmd.id));
    (agent.state as unknown as { setCommand: () => void }).setCommand = () => {
      throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
    };
    await locker.publishAsync(topics.commandAck(REGION, HUB), JSON.stringify({ v: 1, type: 'hub.command-ack', id: 'answer-t', ts: Date.now(), hub: HUB, device: 'locker-a', commandId: cmd.id, result: 'done' }), { qos: 1 });
    await waitFor('the answer in the cloud', async () => (await t.cloud.commands.get(cmd.id)).state === 'done');
    const acks = async () => (await t.cloud.metrics.registry.getSingleMetric('ingest_messages_accepted_total')!.get()).values.find((v) => v.labels.type === 'hub.command-ack')?.value ?? 0;
    const answered = await acks();
    // The agent's 1-s timeout has passed and its outbox drained: no "did not answer" was sent after the answer
    // (the cloud would keep 'done' either way; the hub would have told it something false).
    await new Promise((r) => setTimeout(r, 1_500));
    await waitFor('the outbox drained', () => agent.outbox.depth === 0);
    expect(await acks()).toBe(answered);
    expect((await t.cloud.commands.get(cmd.id)).state).toBe('done');
  }, 20_000);
});
