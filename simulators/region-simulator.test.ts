import net from 'node:net';
import { Writable } from 'node:stream';
import { Aedes, type AuthenticateError, type Client } from 'aedes';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Command, CommandAck, HubStatus, LockerEvent, parseTopic, schemaForTopic, topics, type DeviceKind } from '../contract/index.ts';
import { loadDemoRegion, makeCommand } from './devices/test-region.ts';
import { DeviceControlError, startRegionSimulator, type HubCredentials, type RegionSimulator } from './region-simulator.ts';

const region = loadDemoRegion();
const HUBS = ['nomi-terai', 'rs-komatsu-kibagata', 'rs-megumi-hakusan'];
const credentials: Record<string, HubCredentials> = Object.fromEntries(
  HUBS.map((h) => [h, { username: `hub-${h}`, password: `pw-${h}-0123456789` }]),
);
const FAST = { droneHz: 2, lockerIntervalS: 1, sensorIntervalS: 1 };

interface Received {
  /** Hub whose credentials the publishing client used (null: the broker itself, e.g. a last will). */
  hub: string | null;
  topic: string;
  payload: Record<string, unknown>;
  retain: boolean;
}

/**
 * An in-memory aedes broker whose hooks play the cloud's policy: a hub logs in with its own
 * username/password and may publish only under its own topic prefix. `anonymous`: a hub's local
 * broker as an edge agent runs it, admitting devices without a login (the client id names the hub).
 */
async function startBroker(port = 0, { anonymous = false }: { anonymous?: boolean } = {}) {
  const hubOfClient = new Map<string, string>();
  const received: Received[] = [];
  const refusedLogins: string[] = [];
  const refusedPublishes: string[] = [];
  const logins: { clientId: string; username: string | null }[] = [];
  const subscriptions: { clientId: string; topic: string; qos: number }[] = [];
  const clients = new Map<string, Client>();
  const broker = await Aedes.createBroker({
    authenticate: (client, username, password, done) => {
      logins.push({ clientId: client.id, username: username ?? null });
      if (anonymous) {
        hubOfClient.set(client.id, client.id.replace(/\.sim$/, ''));
        done(null, true);
        return;
      }
      const hub = Object.keys(credentials).find((h) => credentials[h]!.username === username);
      if (!hub || password?.toString() !== credentials[hub]!.password) {
        refusedLogins.push(String(username));
        const err = Object.assign(new Error('bad username or password'), { returnCode: 4 }) as AuthenticateError;
        done(err, false);
        return;
      }
      hubOfClient.set(client.id, hub);
      done(null, true);
    },
    authorizePublish: (client, packet, done) => {
      const hub = client ? hubOfClient.get(client.id) : undefined;
      if (!hub || !packet.topic.startsWith(topics.hubPrefix(region.id, hub))) {
        refusedPublishes.push(packet.topic);
        done(new Error('not your topic'));
        return;
      }
      done(null);
    },
  });
  broker.on('client', (c) => clients.set(c.id, c));
  broker.on('subscribe', (subs, c) => subscriptions.push(...subs.map((x) => ({ clientId: c.id, topic: x.topic, qos: x.qos }))));
  broker.on('clientDisconnect', (c) => clients.delete(c.id));
  broker.on('publish', (packet, client) => {
    if (packet.topic.startsWith('$SYS')) return;
    received.push({
      hub: client ? (hubOfClient.get(client.id) ?? null) : null,
      topic: packet.topic,
      payload: parseJson(packet.payload.toString()),
      retain: packet.retain,
    });
  });
  const server = net.createServer(broker.handle);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const actualPort = (server.address() as net.AddressInfo).port;
  return {
    url: `mqtt://127.0.0.1:${actualPort}`,
    port: actualPort,
    received,
    refusedLogins,
    refusedPublishes,
    logins,
    subscriptions,
    clients,
    /** Publishes as the cloud would (QoS 1); `payload` is sent as JSON unless it is a string. */
    sendCommand(hub: string, kind: DeviceKind, device: string, payload: unknown): Promise<void> {
      const topic = topics.command(region.id, hub, kind, device);
      const body = Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload));
      return new Promise<void>((resolve, reject) =>
        broker.publish({ cmd: 'publish', topic, payload: body, qos: 1, retain: false, dup: false }, (err) => (err ? reject(err) : resolve())),
      );
    },
    /** Stops accepting connections and cuts the existing ones (the hubs see the broker vanish). */
    async close() {
      for (const c of clients.values()) c.conn.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => broker.close(() => resolve()));
    },
  };
}

type Broker = Awaited<ReturnType<typeof startBroker>>;

function parseJson(text: string): Record<string, unknown> {
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    return { notJson: text };
  }
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function setUp(opts: { creds?: Record<string, HubCredentials>; maxPendingPerHub?: number; logger?: pino.Logger } = {}) {
  const broker = await startBroker();
  cleanups.push(() => broker.close());
  const sim = await startRegionSimulator({
    brokerUrl: broker.url,
    region,
    credentials: opts.creds ?? credentials,
    hubs: HUBS,
    rates: FAST,
    timeScale: 10,
    seed: 1,
    logger: opts.logger,
    maxPendingPerHub: opts.maxPendingPerHub,
  });
  cleanups.push(() => sim.stop());
  return { broker, sim };
}

async function waitForAcks(sim: RegionSimulator, hubs: string[], n: number): Promise<void> {
  await vi.waitFor(
    () => {
      for (const h of hubs) expect(sim.stats().byHub[h]!.acked, h).toBeGreaterThanOrEqual(n);
    },
    { timeout: 15_000, interval: 100 },
  );
}

async function waitForCommandSubscription(broker: Broker, hub: string): Promise<void> {
  await vi.waitFor(
    () => expect(broker.subscriptions).toContainEqual({ clientId: `${hub}.sim`, topic: `v1/${region.id}/${hub}/cmd/#`, qos: 1 }),
    { timeout: 10_000, interval: 50 },
  );
}

/** Waits for the hub's acknowledgement of `commandId` and checks it against the contract. */
async function waitForAck(broker: Broker, hub: string, commandId: string): Promise<CommandAck> {
  const topic = topics.commandAck(region.id, hub);
  const r = await vi.waitFor(
    () => {
      const got = broker.received.find((x) => x.topic === topic && x.payload.commandId === commandId);
      expect(got, `ack of ${commandId}`).toBeDefined();
      return got!;
    },
    { timeout: 5000, interval: 20 },
  );
  expect(r.hub).toBe(hub);
  expect(r.retain).toBe(false);
  return CommandAck.parse(r.payload);
}

function lastStatus(broker: Broker, hub: string): HubStatus | undefined {
  const statusTopic = topics.status(region.id, hub);
  const all = broker.received.filter((r) => r.topic === statusTopic);
  return all.length ? HubStatus.parse(all[all.length - 1]!.payload) : undefined;
}

describe('startRegionSimulator against an in-process MQTT broker', () => {
  it('connects each hub with its own credentials and publishes contract messages on its own topics only', async () => {
    const { broker, sim } = await setUp();
    await waitForAcks(sim, HUBS, 15);

    expect(broker.refusedLogins).toEqual([]);
    expect(broker.refusedPublishes).toEqual([]);
    for (const hub of HUBS) {
      // Birth message: retained "online" on the hub's status topic.
      const birth = broker.received.find((r) => r.topic === topics.status(region.id, hub));
      expect(birth?.retain).toBe(true);
      expect(HubStatus.parse(birth!.payload)).toMatchObject({ hub, state: 'online' });

      const mine = broker.received.filter((r) => r.hub === hub);
      const kinds = new Set<string>();
      for (const r of mine) {
        const parsed = parseTopic(r.topic);
        expect(parsed, r.topic).not.toBeNull();
        expect(schemaForTopic(parsed!).safeParse(r.payload).error, r.topic).toBeUndefined();
        expect(r.payload.hub).toBe(hub);
        if (parsed!.route === 'device') kinds.add(`${parsed!.kind}.${parsed!.channel}`);
      }
      for (const k of ['drone.telemetry', 'locker.telemetry', 'sensor.telemetry']) expect(kinds, `${hub} ${k}`).toContain(k);

      // Acked ids: unique, all published by this hub, all seen by the broker from this hub.
      const acked = sim.ackedIds(hub);
      expect(new Set(acked).size).toBe(acked.length);
      const published = new Set(sim.publishedIds(hub));
      const seen = new Set(mine.map((r) => r.payload.id));
      for (const id of acked) {
        expect(published.has(id)).toBe(true);
        expect(seen.has(id)).toBe(true);
      }
    }
    const stats = sim.stats();
    expect(stats.acked).toBe(HUBS.reduce((s, h) => s + stats.byHub[h]!.acked, 0));
    expect(stats.skipped).toBe(0);
  });

  it('raises a forced locker event and resolves once it is acknowledged', async () => {
    const { broker, sim } = await setUp();
    await waitForAcks(sim, ['nomi-terai'], 1);
    await sim.raise('nomi-terai', { kind: 'locker', device: 'locker-a', event: 'door_open_too_long', compartment: 'A03' });
    const topic = topics.device(region.id, 'nomi-terai', 'locker', 'locker-a', 'event');
    const got = broker.received.filter((r) => r.topic === topic && r.payload.event === 'door_open_too_long' && r.payload.compartment === 'A03');
    expect(got).toHaveLength(1);
    expect(got[0]!.hub).toBe('nomi-terai');
    expect(sim.ackedIds('nomi-terai')).toContain(got[0]!.payload.id);
    await expect(sim.raise('nomi-terai', { kind: 'locker', device: 'locker-z', event: 'tamper', compartment: 'A01' })).rejects.toThrow(/no locker/);
    await expect(sim.raise('nomi-neagari', { kind: 'sensor', device: 'wx', event: 'grid_down' })).rejects.toThrow(/not simulated/);
  });

  it('leaves a retained "offline" status when stopped', async () => {
    const { broker, sim } = await setUp();
    await waitForAcks(sim, HUBS, 1);
    await sim.stop();
    for (const hub of HUBS) {
      expect(lastStatus(broker, hub)).toMatchObject({ hub, state: 'offline' });
      expect(sim.stats().byHub[hub]!.connected).toBe(false);
    }
  });

  it('refuses to connect a hub with wrong credentials, logs it as an error, and keeps the others running', async () => {
    const lines: { level: number; msg: string; hub?: string }[] = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
        cb();
      },
    });
    const creds = { ...credentials, 'rs-megumi-hakusan': { username: 'hub-rs-megumi-hakusan', password: 'wrong' } };
    const { broker, sim } = await setUp({ creds, logger: pino({ level: 'info' }, sink) });
    await waitForAcks(sim, ['nomi-terai', 'rs-komatsu-kibagata'], 10);
    expect(broker.refusedLogins).toContain('hub-rs-megumi-hakusan');
    expect(sim.stats().byHub['rs-megumi-hakusan']).toMatchObject({ connected: false, acked: 0 });
    expect(broker.received.some((r) => r.topic.includes('/rs-megumi-hakusan/'))).toBe(false);
    const refused = lines.filter((l) => l.msg === 'broker refused the hub credentials');
    expect(refused.length).toBe(1); // logged once, not on every retry
    expect(refused[0]).toMatchObject({ level: 50, hub: 'rs-megumi-hakusan' });
  });

  it('publishes the last will "offline" when the link dies, then reconnects and says "online" again', async () => {
    const { broker, sim } = await setUp();
    await waitForAcks(sim, HUBS, 1);
    const client = [...broker.clients.values()].find((c) => c.id === 'nomi-terai.sim')!;
    client.conn.destroy();
    await vi.waitFor(() => expect(lastStatus(broker, 'nomi-terai')?.state).toBe('offline'), { timeout: 5000 });
    const will = broker.received.filter((r) => r.topic === topics.status(region.id, 'nomi-terai')).at(-1)!;
    expect(will.retain).toBe(true);
    await vi.waitFor(() => expect(lastStatus(broker, 'nomi-terai')?.state).toBe('online'), { timeout: 10_000 });
    expect(sim.stats().byHub['nomi-terai']!.connects).toBe(2);
    const before = sim.stats().byHub['nomi-terai']!.acked;
    await vi.waitFor(() => expect(sim.stats().byHub['nomi-terai']!.acked).toBeGreaterThan(before + 5), { timeout: 10_000 });
  });

  it('bounds what it queues while the broker is away, counts what it skips, and delivers the queue on reconnect', async () => {
    let broker = await startBroker();
    const port = broker.port;
    const sim = await startRegionSimulator({
      brokerUrl: broker.url,
      region,
      credentials,
      hubs: ['rs-komatsu-kibagata'],
      rates: { droneHz: 5, lockerIntervalS: 1, sensorIntervalS: 1 },
      seed: 2,
      maxPendingPerHub: 20,
    });
    cleanups.push(() => sim.stop());
    await waitForAcks(sim, ['rs-komatsu-kibagata'], 5);
    await broker.close();

    await vi.waitFor(() => expect(sim.stats().skipped).toBeGreaterThan(20), { timeout: 15_000 });
    const away = sim.stats().byHub['rs-komatsu-kibagata']!;
    expect(away.connected).toBe(false);
    expect(away.pending).toBeLessThanOrEqual(40); // telemetry stops at 20; events may use up to 40

    broker = await startBroker(port);
    cleanups.push(() => broker.close());
    await vi.waitFor(() => expect(sim.stats().byHub['rs-komatsu-kibagata']).toMatchObject({ connected: true, pending: 0 }), { timeout: 15_000 });
    // The queued messages arrived after the reconnect.
    const queuedIds = sim.publishedIds('rs-komatsu-kibagata').slice(away.published - away.pending, away.published);
    const seen = new Set(broker.received.map((r) => r.payload.id));
    for (const id of queuedIds) expect(seen.has(id), id).toBe(true);
  });

  it('answers each command with a contract hub.command-ack: done, rejected or expired, after the events it caused', async () => {
    const { broker, sim } = await setUp();
    await waitForCommandSubscription(broker, 'nomi-terai');
    const hub = 'nomi-terai';

    const unlock = makeCommand(hub, 'locker-a', 'locker.unlock', { compartment: 'A07' }, { ts: Date.now(), expiresAt: Date.now() + 60_000 });
    await broker.sendCommand(hub, 'locker', 'locker-a', unlock);
    const ack = await waitForAck(broker, hub, unlock.id);
    expect(ack).toMatchObject({ type: 'hub.command-ack', hub, device: 'locker-a', commandId: unlock.id, result: 'done' });
    expect(ack.id).not.toBe(unlock.id);
    // The door_opened event went out before the acknowledgement, on the hub's own topic.
    const events = broker.received.filter((r) => r.topic === topics.device(region.id, hub, 'locker', 'locker-a', 'event'));
    const opened = events.map((r) => LockerEvent.parse(r.payload)).find((e) => e.event === 'door_opened' && e.detail?.includes(unlock.id));
    expect(opened).toMatchObject({ compartment: 'A07' });
    const order = (id: string) => broker.received.findIndex((r) => r.payload.id === id);
    expect(order(opened!.id)).toBeLessThan(order(ack.id));

    const cases: [string, DeviceKind, string, Command, CommandAck['result'], RegExp][] = [
      ['expired', 'locker', 'locker-a', makeCommand(hub, 'locker-a', 'locker.unlock', { compartment: 'A01' }, { ts: Date.now() - 60_000, expiresAt: Date.now() - 1000 }), 'expired', /not executed/],
      ['unknown device', 'drone', 'drone-7', makeCommand(hub, 'drone-7', 'drone.rtl', {}, { expiresAt: Date.now() + 60_000 }), 'rejected', /no drone "drone-7"/],
      ['unknown compartment', 'locker', 'locker-a', makeCommand(hub, 'locker-a', 'locker.unlock', { compartment: 'Q1' }, { expiresAt: Date.now() + 60_000 }), 'rejected', /no compartment Q1/],
      ['wrong topic', 'drone', 'drone-1', makeCommand(hub, 'locker-a', 'locker.unlock', { compartment: 'A01' }, { expiresAt: Date.now() + 60_000 }), 'rejected', /differs from drone-1 in the topic/],
    ];
    for (const [what, kind, device, c, result, detail] of cases) {
      await broker.sendCommand(hub, kind, device, c);
      expect(await waitForAck(broker, hub, c.id), what).toMatchObject({ result, detail: expect.stringMatching(detail) });
    }

    // A payload that breaks the contract but has an id is rejected with the reason; one without an id is dropped.
    await broker.sendCommand(hub, 'locker', 'locker-a', { v: 1, type: 'hub.command', id: 'bad-1', command: 'locker.explode' });
    expect(await waitForAck(broker, hub, 'bad-1')).toMatchObject({ result: 'rejected', device: 'locker-a', detail: expect.stringMatching(/^invalid command: /) });
    await broker.sendCommand(hub, 'locker', 'locker-a', 'not json at all');
    // The same command again (the edge agent dedupes; the device must only survive it), then the hub still works.
    await broker.sendCommand(hub, 'locker', 'locker-a', unlock);
    const again = makeCommand(hub, 'locker-a', 'locker.release', { compartment: 'A07' }, { expiresAt: Date.now() + 60_000 });
    await broker.sendCommand(hub, 'locker', 'locker-a', again);
    expect(await waitForAck(broker, hub, again.id)).toMatchObject({ result: 'done' });
    await vi.waitFor(() => expect(sim.stats().byHub[hub]).toMatchObject({ commands: 9, commandAcks: 8 }), { timeout: 5000 });
  });

  it('publishes each hub to its own local broker, anonymously and without status messages, and answers commands there', async () => {
    const cloud = await startBroker();
    cleanups.push(() => cloud.close());
    const local = await startBroker(0, { anonymous: true });
    cleanups.push(() => local.close());
    const sim = await startRegionSimulator({
      brokerUrl: cloud.url,
      brokerUrlFor: (hub) => (hub === 'nomi-terai' ? local.url : cloud.url),
      region,
      credentials: { 'rs-komatsu-kibagata': credentials['rs-komatsu-kibagata']! },
      hubs: ['nomi-terai', 'rs-komatsu-kibagata'],
      publishStatus: false,
      rates: FAST,
      seed: 3,
    });
    cleanups.push(() => sim.stop());
    await waitForAcks(sim, ['nomi-terai', 'rs-komatsu-kibagata'], 5);
    await waitForCommandSubscription(local, 'nomi-terai');

    expect(local.logins).toEqual([{ clientId: 'nomi-terai.sim', username: null }]);
    expect(cloud.logins.map((l) => l.username)).toEqual(['hub-rs-komatsu-kibagata']);
    expect(local.received.every((r) => r.topic.startsWith(topics.hubPrefix(region.id, 'nomi-terai')))).toBe(true);
    expect(cloud.received.some((r) => r.topic.includes('/nomi-terai/'))).toBe(false);

    const c = makeCommand('nomi-terai', 'drone-1', 'drone.rtl', {}, { expiresAt: Date.now() + 60_000 });
    await local.sendCommand('nomi-terai', 'drone', 'drone-1', c);
    expect(await waitForAck(local, 'nomi-terai', c.id)).toMatchObject({ result: 'done', device: 'drone-1' });

    await sim.stop();
    for (const b of [local, cloud]) expect(b.received.filter((r) => r.topic.endsWith('/status'))).toEqual([]);
  });

  it('plays the drill\'s device changes: imposed weather and grid outage, drones out of service and back', async () => {
    const { broker, sim } = await setUp();
    const hub = 'rs-komatsu-kibagata';
    await waitForAcks(sim, [hub], 5);
    const latest = (type: string, device: string) => broker.received.filter((r) => r.hub === hub && r.payload.type === type && r.payload.device === device).at(-1)?.payload;

    expect(sim.control({ kind: 'weather', hub, weather: { windMps: 14, gustMps: 19, rainMmPerH: 30 } })).toMatchObject({ weather: { windMps: 14, gustMps: 19, rainMmPerH: 30 } });
    sim.control({ kind: 'power', hub, power: { backupDrainPctPerH: 50 } });
    await vi.waitFor(() => expect(latest('sensor.telemetry', 'wx')).toMatchObject({ windSpeedMps: 14, windGustMps: 19, rainMmPerH: 30, gridPowerUp: false }), { timeout: 10_000, interval: 100 });
    expect(broker.received.some((r) => r.hub === hub && r.payload.event === 'wind_over_limit')).toBe(true);
    expect(broker.received.some((r) => r.hub === hub && r.payload.event === 'grid_down')).toBe(true);

    expect(sim.control({ kind: 'fleet', hub, drones: ['drone-2'], inService: false }).outOfService).toEqual(['drone-2']);
    await vi.waitFor(() => expect(latest('drone.telemetry', 'drone-2')).toMatchObject({ flightState: 'fault', failsafe: ['out_of_service'] }), { timeout: 10_000, interval: 100 });
    expect(broker.received.some((r) => r.hub === hub && r.payload.device === 'drone-2' && r.payload.event === 'fault')).toBe(true);
    await waitForCommandSubscription(broker, hub);
    const mission = makeCommand(hub, 'drone-2', 'drone.mission', { to: 'nomi-terai', payloadKg: 1 }, { ts: Date.now(), expiresAt: Date.now() + 60_000 });
    await broker.sendCommand(hub, 'drone', 'drone-2', mission);
    expect(await waitForAck(broker, hub, mission.id)).toMatchObject({ result: 'rejected', detail: 'drone-2 is out of service' });

    expect(sim.control({ kind: 'fleet', hub, inService: true }).outOfService).toEqual([]);
    const since = broker.received.length;
    await vi.waitFor(() => {
      const t = broker.received.slice(since).filter((r) => r.payload.type === 'drone.telemetry' && r.payload.device === 'drone-2').at(-1)?.payload;
      expect(t?.flightState).not.toBe('fault');
    }, { timeout: 10_000, interval: 100 });
    sim.control({ kind: 'weather', hub, weather: null });
    sim.control({ kind: 'power', hub, power: null });
    await vi.waitFor(() => expect(broker.received.some((r) => r.hub === hub && r.payload.event === 'grid_restored')).toBe(true), { timeout: 10_000, interval: 100 });

    expect(() => sim.control({ kind: 'weather', hub: 'nomi-wake', weather: null })).toThrow(DeviceControlError);
    expect(() => sim.control({ kind: 'fleet', hub, drones: ['drone-9'], inService: false })).toThrow(/no drone "drone-9"/);
  });
});
