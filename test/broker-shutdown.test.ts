import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { topics } from '../contract/index.ts';
import { startTestCloud, type TestCloud } from './support/cloud-harness.ts';
import { connect } from './support/mqtt-client.ts';

/**
 * A graceful shutdown closes the hubs' connections itself, newest first, before aedes.close()
 * (cloud/broker/cloud-broker.ts, issue 17 item 3). A login whose password check ends while those
 * connections are being closed must be refused: admitted then, the hub would stay connected to a
 * process that is going away (found by review: in cluster mode it outlived close() and held the
 * process until its 20-s forced exit). And a login whose check has not come back at all by then is
 * closed with the rest (found by this test on PostgreSQL: its connection stayed open).
 */
const REGION = 'ishikawa-nomi';
const [A, B, C] = ['nomi-terai', 'nomi-neagari', 'nomi-wake'];
let t: TestCloud | null = null;
afterEach(async () => {
  await t?.stop().catch(() => undefined);
  t = null;
});

describe('the broker at shutdown', () => {
  it('refuses a login whose password check ends while the connections are being closed (CONNACK 3), and closes every hub', async () => {
    t = await startTestCloud();
    const cred = (h: string) => t!.credentials[h]!;
    const a = await connect(t.cloud.urls.mqtt, { username: cred(A).username, password: cred(A).password, clientId: `${A}.agent`, reconnectPeriod: 0 });
    await a.subscribeAsync(topics.hubSubscriptions(REGION, A), { qos: 1 });
    const b = await connect(t.cloud.urls.mqtt, { username: cred(B).username, password: cred(B).password, clientId: `${B}.agent`, reconnectPeriod: 0 });

    // C's password check is held until the shutdown has begun closing the other hubs' connections.
    const creds = t.cloud.credentials;
    const verify = creds.verify.bind(creds);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let checking = false;
    creds.verify = async (username, password) => {
      if (username === cred(C).username) {
        checking = true;
        await gate;
      }
      return verify(username, password);
    };
    const live = t.cloud.live;
    const connectionClosed = live.connectionClosed.bind(live);
    live.connectionClosed = (...args: Parameters<typeof connectionClosed>) => {
      release();
      return connectionClosed(...args);
    };

    const c = mqtt.connect(t.cloud.urls.mqtt, { username: cred(C).username, password: cred(C).password, clientId: `${C}.agent`, reconnectPeriod: 0, connectTimeout: 30_000 });
    let connack = false;
    const refusals: string[] = [];
    c.on('connect', () => (connack = true));
    c.on('error', (err) => refusals.push(err.message));
    const cClosed = new Promise<void>((resolve) => c.on('close', () => resolve()));
    const aClosed = new Promise<void>((resolve) => a.on('close', () => resolve()));
    const bClosed = new Promise<void>((resolve) => b.on('close', () => resolve()));
    await expect.poll(() => checking).toBe(true);

    await t.cloud.close();
    await Promise.all([aClosed, bClosed, cClosed]);
    expect(connack, 'the hub whose login was being checked got a CONNACK from a closing broker').toBe(false);
    // Refused with CONNACK 3 when its check came back in time; else its connection was simply closed.
    expect(refusals.filter((m) => !/unavailable/i.test(m))).toEqual([]);
    c.end(true);
  }, 30_000);

  it('closes a connection whose password check has not come back by the end of close(): it keeps neither the hub nor the process waiting', async () => {
    t = await startTestCloud();
    const cred = t.credentials[C]!;
    const creds = t.cloud.credentials;
    const verify = creds.verify.bind(creds);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let checking = false;
    creds.verify = async (username, password) => {
      checking = true;
      await gate;
      return verify(username, password);
    };
    const c = mqtt.connect(t.cloud.urls.mqtt, { username: cred.username, password: cred.password, clientId: `${C}.agent`, reconnectPeriod: 0, connectTimeout: 30_000 });
    let connack = false;
    c.on('connect', () => (connack = true));
    c.on('error', () => undefined);
    const cClosed = new Promise<void>((resolve) => c.on('close', () => resolve()));
    await expect.poll(() => checking).toBe(true);

    await t.cloud.close();
    await cClosed; // before: open until MQTT_PACKET_TIMEOUT_S (30 s) — this test's own timeout
    release(); // the check comes back after the database closed: nothing may be admitted then
    await new Promise((resolve) => setImmediate(resolve));
    expect(connack).toBe(false);
    c.end(true);
  }, 20_000);
});
