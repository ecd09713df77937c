import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Aedes } from 'aedes';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { LANE } from './outbox/lanes.ts';
import { Outbox } from './outbox/outbox.ts';
import { firstCloudUrlIndex, markHistorical, Uplink } from './uplink.ts';

const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

/** The broker's loopback URL and an outbox in a temp dir, both closed after the test. */
async function brokerAndOutbox(broker: Aedes, maxMessages: number): Promise<{ url: string; outbox: Outbox }> {
  const server = net.createServer(broker.handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise<void>((r) => broker.close(() => server.close(() => r()))));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uplink-'));
  closers.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  const outbox = new Outbox(path.join(dir, 'outbox.db'), { maxMessages, thinThreshold: maxMessages, thinIntervalMs: 60_000 });
  closers.push(() => outbox.close());
  return { url: `mqtt://127.0.0.1:${(server.address() as net.AddressInfo).port}`, outbox };
}

describe('markHistorical', () => {
  const parsed = (b: Buffer) => JSON.parse(b.toString('utf8')) as Record<string, unknown>;

  it('adds "historical": true to a JSON object, keeping every other field', () => {
    const payload = Buffer.from('{"v":1,"type":"sensor.telemetry","id":"wx-1","ts":1,"detail":"a } in a string"}');
    expect(parsed(markHistorical(payload))).toEqual({ ...parsed(payload), historical: true });
  });

  it('copes with whitespace, an empty object and a payload that already has the field', () => {
    expect(parsed(markHistorical(Buffer.from('{"id":"x"}\n  ')))).toEqual({ id: 'x', historical: true });
    expect(parsed(markHistorical(Buffer.from('{ }')))).toEqual({ historical: true });
    const marked = markHistorical(Buffer.from('{"id":"x","historical":false}'));
    expect(parsed(marked)).toEqual({ id: 'x', historical: true });
    expect(marked.toString('utf8').match(/historical/g)).toHaveLength(1);
  });
});

describe('Uplink', () => {
  it('never sends an acknowledged message again while its removal from the outbox is pending', async () => {
    // A broker that counts every copy it receives.
    const broker = await Aedes.createBroker();
    const copies = new Map<string, number>();
    broker.on('publish', (packet, client) => {
      if (!client || !packet.topic.endsWith('/telemetry')) return;
      const id = (JSON.parse(packet.payload.toString()) as { id: string }).id;
      copies.set(id, (copies.get(id) ?? 0) + 1);
    });
    const { url, outbox } = await brokerAndOutbox(broker, 100_000);
    const n = 3_000;
    await Promise.all(Array.from({ length: n }, (_, i) => outbox.append({
      lane: LANE.telemetry, topic: 'v1/r/h/sensor/wx/telemetry', payload: Buffer.from(JSON.stringify({ id: `m-${i}`, ts: i })),
      msgId: `m-${i}`, device: 'wx', deviceTs: i, offline: true,
    })));

    const uplink = new Uplink({
      urls: [url], username: 'h', password: 'p', region: 'r', hubId: 'h', agent: 'test',
      window: 200, backoffMaxMs: 1_000, historicalAfterMs: 30_000, statusIntervalMs: 60_000, outbox, logger: pino({ level: 'silent' }), onMessage: () => undefined,
    });
    closers.push(() => uplink.close());
    // New device messages keep arriving during the replay: each asks for a pump, often between a
    // PUBACK and the removal of its entry on the next tick.
    let busy = true;
    const poke = () => {
      uplink.requestPump();
      if (busy) setImmediate(poke);
    };
    uplink.start();
    poke();
    const deadline = Date.now() + 30_000;
    while (outbox.depth > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    busy = false;
    expect(outbox.depth).toBe(0);
    expect(copies.size).toBe(n);
    expect([...copies.values()].filter((c) => c > 1)).toEqual([]);
    expect(uplink.stats()).toMatchObject({ sent: n, acked: n, ackedHistorical: n });
  }, 40_000);
});

describe('Uplink replay count', () => {
  it('counts as replayed a message that was in flight when the link went down and was acknowledged after it came back, though it is not marked historical', async () => {
    // A broker that holds telemetry without PUBACK while `stall` is set.
    const broker = await Aedes.createBroker();
    let stall = true;
    const held: string[] = [];
    broker.authorizePublish = (_client, packet, cb) => {
      if (stall && packet.topic.endsWith('/telemetry')) {
        held.push(packet.payload.toString());
        return; // never answered: no PUBACK
      }
      cb(null);
    };
    const { url, outbox } = await brokerAndOutbox(broker, 1_000);
    const uplink = new Uplink({
      urls: [url], username: 'h', password: 'p', region: 'r', hubId: 'h', agent: 'test',
      window: 10, backoffMaxMs: 200, historicalAfterMs: 60_000, statusIntervalMs: 60_000, outbox, logger: pino({ level: 'silent' }), onMessage: () => undefined,
    });
    closers.push(() => uplink.close());
    uplink.start();
    await expect.poll(() => uplink.connected).toBe(true);
    // Accepted while the link is up (not offline), sent, never acknowledged: the link then drops.
    await outbox.append({ lane: LANE.telemetry, topic: 'v1/r/h/sensor/wx/telemetry', payload: Buffer.from('{"id":"m-1","ts":1}'), msgId: 'm-1', device: 'wx', deviceTs: 1, offline: false });
    uplink.requestPump();
    await expect.poll(() => held.length).toBe(1);
    stall = false;
    for (const c of Object.values((broker as unknown as { clients: Record<string, { conn: net.Socket }> }).clients)) c.conn.destroy();
    await expect.poll(() => outbox.depth, { timeout: 10_000 }).toBe(0);
    // A message accepted and acknowledged on the new connection is live, not replayed.
    await outbox.append({ lane: LANE.telemetry, topic: 'v1/r/h/sensor/wx/telemetry', payload: Buffer.from('{"id":"m-2","ts":2}'), msgId: 'm-2', device: 'wx', deviceTs: 2, offline: false });
    uplink.requestPump();
    await expect.poll(() => uplink.stats().acked).toBe(2);
    expect(uplink.stats()).toMatchObject({ acked: 2, ackedReplayed: 1, ackedHistorical: 0 });
  });
});

describe('moving back to the hub\'s own node (homeReturnMs)', () => {
  it('waits while anything is unacknowledged on the link (a status included), then moves with a clean DISCONNECT: no last will published', async () => {
    const hub = 'h';
    const free = net.createServer();
    await new Promise<void>((r) => free.listen(0, '127.0.0.1', r));
    const homePort = (free.address() as net.AddressInfo).port;
    await new Promise((r) => free.close(r));
    const other = await Aedes.createBroker();
    let stallStatus = false;
    const stalled: (() => void)[] = [];
    other.authorizePublish = (_c, packet, cb) => {
      if (stallStatus && packet.topic.includes('status')) stalled.push(() => cb(null));
      else cb(null);
    };
    const wills: string[] = [];
    other.on('publish', (packet) => {
      if (packet.topic.includes('status') && packet.payload.toString().includes('"offline"')) wills.push(packet.payload.toString()); // the will says offline
    });
    const { url: otherUrl, outbox } = await brokerAndOutbox(other, 1000);
    const homeUrl = `mqtt://127.0.0.1:${homePort}`;
    const urls = firstCloudUrlIndex(hub, 2) === 0 ? [homeUrl, otherUrl] : [otherUrl, homeUrl];
    const uplink = new Uplink({
      urls, username: hub, password: 'p', region: 'r', hubId: hub, agent: 't', window: 10, backoffMaxMs: 500,
      historicalAfterMs: 60_000, statusIntervalMs: 100, homeReturnMs: 200, outbox, logger: pino({ level: 'silent' }), onMessage: () => undefined,
    });
    closers.push(() => uplink.close());
    uplink.start();
    await expect.poll(() => uplink.connected && uplink.stats().url === otherUrl, { timeout: 10_000 }).toBe(true);
    await expect.poll(() => uplink.stats().homeChecksFailed, { timeout: 10_000 }).toBeGreaterThanOrEqual(1); // home is down: it stays

    const home = await Aedes.createBroker();
    const server = net.createServer(home.handle);
    await new Promise<void>((r) => server.listen(homePort, '127.0.0.1', r));
    closers.push(() => new Promise<void>((r) => home.close(() => server.close(() => r()))));
    stallStatus = true; // the node it is on is slow to store statuses: one is always unacknowledged
    const checksBefore = uplink.stats().homeChecksFailed;
    await expect.poll(() => stalled.length, { timeout: 10_000 }).toBeGreaterThanOrEqual(5); // > 2 return periods
    expect(uplink.stats()).toMatchObject({ url: otherUrl, connected: true, homeReturns: 0, homeChecksFailed: checksBefore });

    stallStatus = false;
    for (const ack of stalled.splice(0)) ack();
    await expect.poll(() => uplink.connected && uplink.stats().url === homeUrl, { timeout: 10_000 }).toBe(true);
    expect(uplink.stats().homeReturns).toBe(1);
    await expect.poll(() => Object.keys((other as unknown as { clients: Record<string, unknown> }).clients).length, { timeout: 5_000 }).toBe(0);
    expect(wills).toEqual([]);
    await uplink.close(); // before the home broker's closer (pushed after the uplink's) waits for its connections
  }, 30_000);
});
