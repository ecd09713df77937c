import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXAMPLES, topics } from '../contract/index.ts';
import { startTestCloud, tempDir, type TestCloud } from './support/cloud-harness.ts';
import { connect } from './support/mqtt-client.ts';
import { freePort } from './support/ports.ts';

/** Hubs reach the cloud over public 4G: MQTT over TLS and over WebSocket must work like TCP. */
const HUB = 'rs-komatsu-kibagata';
let t: TestCloud;
let certDir: string;

beforeAll(async () => {
  certDir = tempDir('tls');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-keyout', path.join(certDir, 'key.pem'), '-out', path.join(certDir, 'cert.pem'),
  ], { stdio: 'ignore' });
  t = await startTestCloud({
    MQTTS_PORT: String(await freePort()),
    MQTT_TLS_CERT: path.join(certDir, 'cert.pem'),
    MQTT_TLS_KEY: path.join(certDir, 'key.pem'),
  });
});

afterAll(async () => {
  await t?.stop();
  fs.rmSync(certDir, { recursive: true, force: true });
});

const drone = EXAMPLES.find((e) => e.name === 'drone.telemetry')!.payload;
const droneTopic = topics.device('ishikawa-nomi', HUB, 'drone', 'drone-1', 'telemetry');

describe('transports', () => {
  it('accepts MQTT over TLS with a certificate the client verifies, and stores the message', async () => {
    const cred = t.credentials[HUB]!;
    const c = await connect(t.cloud.urls.mqtts!, { username: cred.username, password: cred.password, clientId: `${HUB}.tls`, ca: fs.readFileSync(path.join(certDir, 'cert.pem')), servername: 'localhost' });
    await c.publishAsync(droneTopic, JSON.stringify({ ...drone, hub: HUB, id: 'tls-1', ts: Date.now() }), { qos: 1 });
    await c.endAsync();
    expect(await t.cloud.store.messageIds(HUB, 0, Date.now() + 60_000)).toContain('tls-1');
  });

  it('refuses a TLS client that does not trust the certificate (no silent downgrade)', async () => {
    const cred = t.credentials[HUB]!;
    await expect(connect(t.cloud.urls.mqtts!, { username: cred.username, password: cred.password })).rejects.toThrow(/self.signed|certificate/i);
  });

  it('accepts MQTT over WebSocket at /mqtt', async () => {
    const cred = t.credentials[HUB]!;
    const c = await connect(t.cloud.urls.ws!, { username: cred.username, password: cred.password, clientId: `${HUB}.ws` });
    await c.publishAsync(droneTopic, JSON.stringify({ ...drone, hub: HUB, id: 'ws-1', ts: Date.now() }), { qos: 1 });
    await c.endAsync();
    expect(await t.cloud.store.messageIds(HUB, 0, Date.now() + 60_000)).toContain('ws-1');
  });

  it('publishes the retained hub status and the last will "offline" when the link dies', async () => {
    const cred = t.credentials[HUB]!;
    const status = topics.status('ishikawa-nomi', HUB);
    const will = JSON.stringify({ v: 1, type: 'hub.status', hub: HUB, state: 'offline', ts: Date.now() });
    const c = await connect(t.cloud.urls.mqtt, { username: cred.username, password: cred.password, clientId: `${HUB}.will`, will: { topic: status, payload: Buffer.from(will), qos: 1, retain: true } });
    await c.publishAsync(status, JSON.stringify({ v: 1, type: 'hub.status', hub: HUB, state: 'online', ts: Date.now() }), { qos: 1, retain: true });
    const hubUrl = `/api/v1/hubs/${HUB}`;
    const online = (await (await t.api(hubUrl)).json()) as { link: { online: boolean } };
    expect(online.link.online).toBe(true);
    c.stream.destroy(); // the 4G link dies: no DISCONNECT, so the broker publishes the will
    const deadline = Date.now() + 5000;
    let link = online.link;
    while (Date.now() < deadline && link.online) {
      await new Promise((r) => setTimeout(r, 50));
      link = ((await (await t.api(hubUrl)).json()) as { link: { online: boolean } }).link;
    }
    expect(link.online).toBe(false);
    expect(await t.cloud.store.countPoints('hub_status', HUB, 0, Date.now() + 60_000)).toBeGreaterThanOrEqual(2);
    c.end(true);
  });
});
