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

/** Holds the password check of `username` until `release()`; `checking()` says it has begun. */
function holdCheck(cloud: TestCloud['cloud'], username: string): { checking: () => boolean; release: () => void } {
  const creds = cloud.credentials;
  const verify = creds.verify.bind(creds);
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let checking = false;
  creds.verify = async (name, password) => {
    if (name === username) {
      checking = true;
      await gate;
    }
    return verify(name, password);
  };
  return { checking: () => checking, release };
}

/** Hub C's agent logging in once (no reconnect): whether it got a CONNACK, its refusals, its close. */
function loginOf(url: string, cred: { username: string; password: string }) {
  const client = mqtt.connect(url, { username: cred.username, password: cred.password, clientId: `${C}.agent`, reconnectPeriod: 0, connectTimeout: 30_000 });
  const seen = { connack: false, refusals: [] as string[] };
  client.on('connect', () => (seen.connack = true));
  client.on('error', (err) => seen.refusals.push(err.message));
  const closed = new Promise<void>((resolve) => client.on('close', () => resolve()));
  return { client, seen, closed };
}

describe('the broker at shutdown', () => {
  it('refuses a login whose password check ends while the connections are being closed (CONNACK 3), and closes every hub', async () => {
    t = await startTestCloud();
    const cred = (h: string) => t!.credentials[h]!;
    const a = await connect(t.cloud.urls.mqtt, { username: cred(A).username, password: cred(A).password, clientId: `${A}.agent`, reconnectPeriod: 0 });
    await a.subscribeAsync(topics.hubSubscriptions(REGION, A), { qos: 1 });
    const b = await connect(t.cloud.urls.mqtt, { username: cred(B).username, password: cred(B).password, clientId: `${B}.agent`, reconnectPeriod: 0 });

    // C's password check is held until the shutdown has begun closing the other hubs' connections.
    const held = holdCheck(t.cloud, cred(C).username);
    const live = t.cloud.live;
    const connectionClosed = live.connectionClosed.bind(live);
    live.connectionClosed = (...args: Parameters<typeof connectionClosed>) => {
      held.release();
      return connectionClosed(...args);
    };

    const c = loginOf(t.cloud.urls.mqtt, cred(C));
    const aClosed = new Promise<void>((resolve) => a.on('close', () => resolve()));
    const bClosed = new Promise<void>((resolve) => b.on('close', () => resolve()));
    await expect.poll(held.checking).toBe(true);

    await t.cloud.close();
    await Promise.all([aClosed, bClosed, c.closed]);
    expect(c.seen.connack, 'the hub whose login was being checked got a CONNACK from a closing broker').toBe(false);
    // Refused with CONNACK 3 when its check came back in time; else its connection was simply closed.
    expect(c.seen.refusals.filter((m) => !/unavailable/i.test(m))).toEqual([]);
    c.client.end(true);
  }, 30_000);

  it('closes a connection whose password check has not come back by the end of close(): it keeps neither the hub nor the process waiting', async () => {
    t = await startTestCloud();
    const held = holdCheck(t.cloud, t.credentials[C]!.username);
    const c = loginOf(t.cloud.urls.mqtt, t.credentials[C]!);
    await expect.poll(held.checking).toBe(true);

    await t.cloud.close();
    await c.closed; // before: open until MQTT_PACKET_TIMEOUT_S (30 s) — this test's own timeout
    held.release(); // the check comes back after the database closed: nothing may be admitted then
    await new Promise((resolve) => setImmediate(resolve));
    expect(c.seen.connack).toBe(false);
    c.client.end(true);
  }, 20_000);
});
