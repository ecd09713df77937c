import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Command, EXAMPLES, topics, type CommandAck, type HubStatus, type ModeAck } from '../contract/index.ts';
import { startTestCloud, type TestCloud } from './support/cloud-harness.ts';
import { connect } from './support/mqtt-client.ts';

/**
 * Issue 3, cloud side, as an operator and a hub's agent meet it over real sockets: commands down to
 * hub devices and their results, re-delivery when a hub comes back, expiry, dedupe of re-sent
 * messages, per-hub link gauges and mode acknowledgements.
 */
const REGION = 'ishikawa-nomi';
let t: TestCloud;
const clients: MqttClient[] = [];

beforeAll(async () => {
  t = await startTestCloud();
});
afterAll(async () => {
  for (const c of clients) c.end(true);
  await t?.stop();
});

async function api(method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await t.api(`${path}`, {
    method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

async function hubClient(hub: string): Promise<MqttClient> {
  const cred = t.credentials[hub]!;
  const c = await connect(t.cloud.urls.mqtt, { username: cred.username, password: cred.password, clientId: `${hub}.agent-${clients.length}` });
  clients.push(c);
  return c;
}

/** Resolves with the first command the client receives (parsed with the contract schema). */
function nextCommand(c: MqttClient, timeoutMs = 5000): Promise<{ topic: string; command: Command }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no command received')), timeoutMs);
    c.on('message', function onMessage(topic, payload) {
      if (!topic.includes('/cmd/')) return;
      clearTimeout(timer);
      c.off('message', onMessage);
      resolve({ topic, command: Command.parse(JSON.parse(payload.toString('utf8'))) });
    });
  });
}

async function waitFor<T>(what: string, probe: () => Promise<T | null | undefined | false>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function ackFor(cmd: Command, result: CommandAck['result'], id: string, detail?: string): CommandAck {
  return { v: 1, type: 'hub.command-ack', id, ts: Date.now(), hub: cmd.hub, device: cmd.device, commandId: cmd.id, result, ...(detail ? { detail } : {}) };
}

const metricValue = (text: string, series: string): number | null => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? null : Number(line.slice(series.length + 1));
};

// Issued first so its five seconds pass while the other tests run; checked last.
let expiring: { id: string; issuedAt: number };
beforeAll(async () => {
  const r = await api('POST', '/api/v1/hubs/hakusan-tsurugi/commands', { device: 'locker-a', command: 'locker.release', args: { compartment: 'A01' }, ttlS: 5 });
  expect(r.status).toBe(202);
  expiring = { id: r.body.id, issuedAt: Date.parse(r.body.issuedAt) };
});

describe('commands to hubs', () => {
  it('delivers a command to the hub\'s agent and shows the result it acknowledges', async () => {
    const hub = 'nomi-terai';
    const agent = await hubClient(hub);
    await agent.subscribeAsync(topics.hubSubscriptions(REGION, hub)[0]!, { qos: 1 });
    const received = nextCommand(agent);
    const posted = await api('POST', `/api/v1/hubs/${hub}/commands`, { device: 'locker-a', command: 'locker.unlock', args: { compartment: 'A02' }, ttlS: 120 });
    expect(posted.status).toBe(202);
    expect(posted.body).toMatchObject({ hub, region: REGION, device: 'locker-a', kind: 'locker', command: 'locker.unlock', args: { compartment: 'A02' }, state: 'pending', ackedAt: null });
    expect(posted.body.id).toMatch(/^cmd-/);

    const { topic, command } = await received;
    expect(topic).toBe(topics.command(REGION, hub, 'locker', 'locker-a'));
    expect(command).toMatchObject({ id: posted.body.id, hub, device: 'locker-a', command: 'locker.unlock', args: { compartment: 'A02' } });
    expect(command.expiresAt - command.ts).toBe(120_000);

    await agent.publishAsync(topics.commandAck(REGION, hub), JSON.stringify(ackFor(command, 'done', 'ack-1', 'compartment A02 opened')), { qos: 1 });
    const done = await api('GET', `/api/v1/commands/${command.id}`);
    expect(done.body).toMatchObject({ state: 'done', detail: 'compartment A02 opened' });
    expect(done.body.ackedAt).not.toBeNull();

    // The hub sees the id again (e.g. re-delivered) and answers "duplicate": the result stays.
    await agent.publishAsync(topics.commandAck(REGION, hub), JSON.stringify(ackFor(command, 'duplicate', 'ack-2')), { qos: 1 });
    expect((await api('GET', `/api/v1/commands/${command.id}`)).body.state).toBe('done');
    const list = await api('GET', `/api/v1/hubs/${hub}/commands?state=done`);
    expect(list.body.commands.map((c: { id: string }) => c.id)).toEqual([command.id]);
  });

  it('delivers a command issued while the hub was offline once the hub connects and subscribes', async () => {
    const hub = 'kawakita-chuo';
    const posted = await api('POST', `/api/v1/hubs/${hub}/commands`, { device: 'drone-1', command: 'drone.rtl', args: {} });
    expect(posted.body).toMatchObject({ state: 'pending' });
    expect(Date.parse(posted.body.expiresAt) - Date.parse(posted.body.issuedAt)).toBe(300_000);

    const agent = await hubClient(hub);
    const received = nextCommand(agent);
    await agent.subscribeAsync(topics.hubSubscriptions(REGION, hub)[0]!, { qos: 1 });
    const { command } = await received;
    expect(command.id).toBe(posted.body.id);
    await agent.publishAsync(topics.commandAck(REGION, hub), JSON.stringify(ackFor(command, 'rejected', 'ack-rtl', 'drone is on the pad')), { qos: 1 });
    expect((await api('GET', `/api/v1/commands/${command.id}`)).body).toMatchObject({ state: 'rejected', detail: 'drone is on the pad' });
  });

  it('refuses commands for an unknown hub or device, the wrong kind of device, and bad bodies', async () => {
    expect(await api('POST', '/api/v1/hubs/no-such-hub/commands', { device: 'locker-a', command: 'locker.unlock', args: {} })).toMatchObject({ status: 404, body: { error: { code: 'hub_not_found' } } });
    expect(await api('POST', '/api/v1/hubs/nomi-wake/commands', { device: 'locker-z', command: 'locker.unlock', args: {} })).toMatchObject({ status: 404, body: { error: { code: 'device_not_found' } } });
    expect(await api('POST', '/api/v1/hubs/nomi-wake/commands', { device: 'wx', command: 'drone.abort', args: {} })).toMatchObject({ status: 400, body: { error: { code: 'wrong_device_kind' } } });
    expect(await api('POST', '/api/v1/hubs/nomi-wake/commands', { device: 'locker-a', command: 'locker.explode', args: {} })).toMatchObject({ status: 400, body: { error: { code: 'validation' } } });
    expect(await api('POST', '/api/v1/hubs/nomi-wake/commands', { device: 'locker-a', command: 'locker.unlock', ttlS: 1 })).toMatchObject({ status: 400, body: { error: { code: 'validation' } } });
    expect(await api('GET', '/api/v1/commands/cmd-nope')).toMatchObject({ status: 404, body: { error: { code: 'command_not_found' } } });
    expect((await api('GET', '/api/v1/hubs/nomi-wake/commands')).body.commands).toEqual([]);
    // An id in the body is not the client's to choose (the order service fixes its missions' ids): ignored.
    const chosen = { device: 'locker-a', command: 'locker.unlock', args: { compartment: 'A01' }, id: 'cmd-m-chosen-1' };
    const a = await api('POST', '/api/v1/hubs/nomi-wake/commands', chosen);
    const b = await api('POST', '/api/v1/hubs/nomi-wake/commands', chosen);
    expect([a.status, b.status]).toEqual([202, 202]);
    expect(a.body.id).not.toBe('cmd-m-chosen-1');
    expect(b.body.id).not.toBe(a.body.id);
    expect(await api('GET', '/api/v1/commands/cmd-m-chosen-1')).toMatchObject({ status: 404 });
  });
});

describe('dedupe of re-sent messages', () => {
  it('stores an event sent twice (same hub and id) once and counts the copy in ingest_duplicates_total', async () => {
    const hub = 'rs-megumi-hakusan';
    const event = { ...EXAMPLES.find((e) => e.name === 'drone.event')!.payload, hub, id: 'drone-1-boot7-000099', ts: Date.now() };
    const before = metricValue((await (await t.api(`/metrics`)).text()), 'ingest_duplicates_total{type="drone.event"}') ?? 0;
    const c = await hubClient(hub);
    const topic = topics.device(REGION, hub, 'drone', 'drone-1', 'event');
    await c.publishAsync(topic, JSON.stringify(event), { qos: 1 });
    await c.publishAsync(topic, JSON.stringify(event), { qos: 1 }); // the PUBACK was "lost": the agent re-sends
    expect(await t.cloud.store.countPoints('event', hub, event.ts - 1, event.ts + 1)).toBe(1);
    const after = metricValue(await (await t.api(`/metrics`)).text(), 'ingest_duplicates_total{type="drone.event"}');
    expect(after! - before).toBe(1);
  });
});

describe('link state and mode, as the hub reports them', () => {
  it('shows online, outbox depth and oldest unsent age per hub in /metrics and the API', async () => {
    const hub = 'komatsu-awazu';
    const c = await hubClient(hub);
    const status: HubStatus = { v: 1, type: 'hub.status', hub, state: 'online', ts: Date.now(), agent: 'chiiki-edge/test', outboxDepth: 42, oldestUnsentAgeS: 17.5 };
    await c.publishAsync(topics.status(REGION, hub), JSON.stringify(status), { qos: 1, retain: true });
    const metrics = await (await t.api(`/metrics`)).text();
    expect(metricValue(metrics, `hub_online{hub="${hub}"}`)).toBe(1);
    expect(metricValue(metrics, `hub_outbox_depth{hub="${hub}"}`)).toBe(42);
    expect(metricValue(metrics, `hub_oldest_unsent_age_seconds{hub="${hub}"}`)).toBe(17.5);
    expect(metricValue(metrics, 'hub_online{hub="nomi-kokufu"}')).toBe(0); // in the region file, never connected
    expect(metricValue(metrics, 'hub_outbox_depth{hub="nomi-kokufu"}')).toBeNull(); // never reported
    const h = (await api('GET', `/api/v1/hubs/${hub}`)).body;
    expect(h.link).toMatchObject({ online: true, outboxDepth: 42, oldestUnsentAgeS: 17.5, agent: 'chiiki-edge/test', outboxReportedAt: new Date(status.ts).toISOString() });

    // The agent says goodbye while still connected: offline at once, not only when the socket closes.
    await c.publishAsync(topics.status(REGION, hub), JSON.stringify({ ...status, state: 'offline', ts: status.ts + 1 }), { qos: 1, retain: true });
    expect((await api('GET', `/api/v1/hubs/${hub}`)).body.link.online).toBe(false);
    expect(metricValue(await (await t.api(`/metrics`)).text(), `hub_online{hub="${hub}"}`)).toBe(0);
    await c.endAsync();
    expect((await api('GET', `/api/v1/hubs/${hub}`)).body.link).toMatchObject({ online: false, connections: 0, outboxDepth: 42 });
  });

  it('shows the mode a hub acknowledged in /api/v1/hubs', async () => {
    const hub = 'hakusan-chiyono';
    const c = await hubClient(hub);
    const ts = Date.now();
    // A local switch keeps the hub's current version: 0 before the cloud ever switched the region (a higher one would be refused).
    const ack: ModeAck = { v: 1, type: 'hub.mode-ack', id: 'agent-mode-1', ts, hub, version: 0, mode: 'emergency', source: 'local', reason: 'landslide on route 157' };
    await c.publishAsync(topics.modeAck(REGION, hub), JSON.stringify(ack), { qos: 1 });
    const { body } = await api('GET', '/api/v1/hubs');
    const h = body.hubs.find((x: { id: string }) => x.id === hub);
    expect(h.mode).toEqual({ mode: 'emergency', version: 0, source: 'local', reason: 'landslide on route 157', at: new Date(ts).toISOString() });
    expect(body.hubs.find((x: { id: string }) => x.id === 'nomi-wake').mode).toBeNull();
    expect((await api('GET', `/api/v1/hubs/${hub}`)).body.mode).toMatchObject({ mode: 'emergency', version: 0 });
  });
});

describe('expiry', () => {
  it('shows a command nobody acknowledged in time as expired, and does not deliver it any more', async () => {
    await waitFor('the command to expire', async () => Date.now() > expiring.issuedAt + 5_100, 10_000);
    expect((await api('GET', `/api/v1/commands/${expiring.id}`)).body.state).toBe('expired');
    const list = await api('GET', '/api/v1/hubs/hakusan-tsurugi/commands?state=expired');
    expect(list.body.commands.map((c: { id: string }) => c.id)).toEqual([expiring.id]);

    const agent = await hubClient('hakusan-tsurugi');
    const received = nextCommand(agent, 500).then(() => 'received', () => 'nothing');
    await agent.subscribeAsync(topics.hubSubscriptions(REGION, 'hakusan-tsurugi')[0]!, { qos: 1 });
    expect(await received).toBe('nothing');
  });
});
