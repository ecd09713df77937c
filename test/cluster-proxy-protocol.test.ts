import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Writable } from 'node:stream';
import { generate } from 'mqtt-packet';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hubClientId } from '../contract/index.ts';
import { connect as mqttConnect } from './support/mqtt-client.ts';
import { startCloud, type Cloud } from '../cloud/cloud.ts';
import { loadCloudConfig } from '../cloud/config.ts';
import { encodeV2 } from '../cloud/broker/proxy-protocol.ts';
import { readCredentials, tempDir, testCloudEnv, type Credentials } from './support/cloud-harness.ts';
import { startHaproxy, type Haproxy } from './support/haproxy.ts';
import { freePort } from './support/ports.ts';

/**
 * Issue 15: the PROXY protocol behind HAProxy. A cloud node with MQTT_PROXY_PROTOCOL=required behind
 * Debian's HAProxy (`send-proxy-v2`), clients on two loopback source addresses (127.0.0.2 floods,
 * 127.0.0.3 is a genuine hub): the node's per-address limits and its logs see each client's own address,
 * not HAProxy's; a connection without the header, or with a header from an address not trusted, is
 * refused and counted.
 */
const FLOODER = '127.0.0.2';
const GENUINE = '127.0.0.3';
const IDLER = '127.0.0.4';
const MAX_FAILURES = 3;
const MAX_UNAUTHENTICATED = 4;

let cloud: Cloud;
let dataDir: string;
let credentials: Credentials;
let haproxy: Haproxy;
/** More HAProxies in front of the node's MQTT-over-WebSocket and MQTTS ports (the helper makes one frontend each). */
let haproxyWs: Haproxy;
let haproxyTls: Haproxy;
let certDir: string;
let nodePort: number;
const logLines: Record<string, unknown>[] = [];
const sockets: net.Socket[] = [];

beforeAll(async () => {
  dataDir = tempDir('proxy-protocol');
  certDir = tempDir('proxy-protocol-tls');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost', '-keyout', path.join(certDir, 'key.pem'), '-out', path.join(certDir, 'cert.pem'),
  ], { stdio: 'ignore' });
  const config = loadCloudConfig(testCloudEnv(dataDir, {
    MQTT_WS_PORT: '0', MQTTS_PORT: String(await freePort()), MQTT_TLS_CERT: path.join(certDir, 'cert.pem'), MQTT_TLS_KEY: path.join(certDir, 'key.pem'),
    MQTT_PROXY_PROTOCOL: 'required', MQTT_TRUSTED_PROXIES: '127.0.0.1', MQTT_PROXY_HEADER_TIMEOUT_S: '2',
    MQTT_LOGIN_MAX_FAILURES_PER_ADDRESS: String(MAX_FAILURES), MQTT_MAX_UNAUTHENTICATED_PER_ADDRESS: String(MAX_UNAUTHENTICATED),
  }));
  // The broker's log lines, to see which address it names.
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) logLines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  cloud = await startCloud(config, pino({ level: 'info' }, sink));
  credentials = readCredentials(dataDir);
  nodePort = Number(new URL(cloud.urls.mqtt).port);
  haproxy = await startHaproxy([{ name: 'node-1', port: nodePort, checkPort: Number(new URL(cloud.urls.http).port) }], { sendProxy: 'v2' });
  await haproxy.waitForStatus('node-1', 'UP');
  haproxyWs = await startHaproxy([{ name: 'node-1', port: Number(new URL(cloud.urls.ws!).port), checkPort: Number(new URL(cloud.urls.http).port) }], { sendProxy: 'v2' });
  await haproxyWs.waitForStatus('node-1', 'UP');
  haproxyTls = await startHaproxy([{ name: 'node-1', port: Number(new URL(cloud.urls.mqtts!).port), checkPort: Number(new URL(cloud.urls.http).port) }], { sendProxy: 'v2' });
  await haproxyTls.waitForStatus('node-1', 'UP');
}, 40_000);

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await haproxy?.stop();
  await haproxyWs?.stop();
  await haproxyTls?.stop();
  await cloud?.close();
  for (const d of [dataDir, certDir]) if (d) fs.rmSync(d, { recursive: true, force: true });
});

const [HUB, OTHER] = ['nomi-terai', 'nomi-wake'];

async function metric(series: string): Promise<number> {
  const text = await (await fetch(`${cloud.urls.http}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

interface Attempt {
  /** The CONNACK return code, or 'closed' when the connection ended without one. */
  code: number | 'closed';
  socket: net.Socket;
}

/** A raw MQTT login from `localAddress` to `port` (HAProxy's or the node's); `prefix` goes first in the same write. */
function login(port: number, localAddress: string, hub: string, password: string, prefix: Buffer = Buffer.alloc(0)): Promise<Attempt> {
  const connect = generate({
    cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 60,
    clientId: hubClientId(hub, `pp-${Math.random().toString(36).slice(2, 8)}`), username: credentials[hub]!.username, password: Buffer.from(password),
  });
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress }, () => socket.write(Buffer.concat([prefix, connect])));
    sockets.push(socket);
    socket.on('error', () => undefined);
    socket.once('data', (d: Buffer) => resolve({ code: d[0] === 0x20 ? d[3]! : -1, socket }));
    socket.once('close', () => resolve({ code: 'closed', socket }));
  });
}

describe('behind HAProxy with send-proxy-v2', () => {
  it('a flooding address is throttled on its own address while a hub on another address still logs in, and the logs name each client', async () => {
    const before = await metric('mqtt_auth_failures_total{reason="address_failures"}');
    // Wrong passwords from 127.0.0.2 until that address is refused before any check (CONNACK 3).
    const codes: (number | 'closed')[] = [];
    for (let i = 0; i < MAX_FAILURES + 2; i++) codes.push((await login(haproxy.port, FLOODER, HUB, 'not-the-password')).code);
    expect(codes).toEqual([...Array<number>(MAX_FAILURES).fill(4), 3, 3]);
    expect(await metric('mqtt_auth_failures_total{reason="address_failures"}')).toBe(before + 2);
    // The same hub's correct password from the flooding address is refused too: the limit is that address's.
    expect((await login(haproxy.port, FLOODER, OTHER, credentials[OTHER]!.password)).code).toBe(3);
    // Through the same HAProxy, a hub on 127.0.0.3 logs in (before the PROXY protocol it shared HAProxy's address, and was locked out).
    const ok = await login(haproxy.port, GENUINE, HUB, credentials[HUB]!.password);
    expect(ok.code).toBe(0);
    await expect.poll(() => cloud.live.hubs.get(HUB)!.link.online).toBe(true);
    expect(logLines.filter((l) => l.msg === 'hub connected' && l.hub === HUB).map((l) => l.address)).toEqual([GENUINE]);
    expect(new Set(logLines.filter((l) => l.msg === 'MQTT login refused: wrong username or password').map((l) => l.address))).toEqual(new Set([FLOODER]));
    expect(new Set(logLines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('MQTT login refused before its password check')).map((l) => l.address))).toEqual(new Set([FLOODER]));
    ok.socket.destroy();
    await expect.poll(() => cloud.live.hubs.get(HUB)!.link.online).toBe(false);
  });

  it('connections not logged in yet are counted per client address', async () => {
    const before = await metric('mqtt_auth_failures_total{reason="address_connections"}');
    const idle = await Promise.all(Array.from({ length: MAX_UNAUTHENTICATED + 2 }, () => new Promise<net.Socket>((resolve) => {
      const s = net.connect({ port: haproxy.port, host: '127.0.0.1', localAddress: IDLER }, () => resolve(s));
      sockets.push(s);
      s.on('error', () => undefined);
    })));
    let closedEarly = 0;
    for (const s of idle) s.once('close', () => closedEarly++);
    await expect.poll(() => closedEarly, { timeout: 5_000 }).toBe(2);
    expect(await metric('mqtt_auth_failures_total{reason="address_connections"}')).toBe(before + 2);
    // Another address is not affected.
    const ok = await login(haproxy.port, GENUINE, OTHER, credentials[OTHER]!.password);
    expect(ok.code).toBe(0);
    ok.socket.destroy();
    for (const s of idle) s.destroy();
  });
  it('MQTT over WebSocket through HAProxy logs in under the client\'s address too', async () => {
    const client = await mqttConnect(`ws://127.0.0.1:${haproxyWs.port}/mqtt`, {
      clientId: hubClientId(HUB, 'pp-ws'), username: credentials[HUB]!.username, password: credentials[HUB]!.password,
      wsOptions: { localAddress: '127.0.0.5' },
    });
    try {
      await expect.poll(() => logLines.filter((l) => l.msg === 'hub connected' && l.clientId === hubClientId(HUB, 'pp-ws')).map((l) => l.address)).toEqual(['127.0.0.5']);
    } finally {
      await client.endAsync();
    }
  });

  it('MQTT over TLS (passed through HAProxy) logs in under the client\'s address too', async () => {
    const client = await mqttConnect(`mqtts://localhost:${haproxyTls.port}`, {
      clientId: hubClientId(HUB, 'pp-tls'), username: credentials[HUB]!.username, password: credentials[HUB]!.password,
      ca: fs.readFileSync(path.join(certDir, 'cert.pem')), host: '127.0.0.1', servername: 'localhost', localAddress: '127.0.0.6',
    } as Parameters<typeof mqttConnect>[1]);
    try {
      await expect.poll(() => logLines.filter((l) => l.msg === 'hub connected' && l.clientId === hubClientId(HUB, 'pp-tls')).map((l) => l.address)).toEqual(['127.0.0.6']);
    } finally {
      await client.endAsync();
    }
  });
});

describe('the node itself (MQTT_PROXY_PROTOCOL=required)', () => {
  it('refuses a direct connection without the header, even from the trusted address', async () => {
    const before = await metric('mqtt_auth_failures_total{reason="proxy_missing"}');
    expect((await login(nodePort, '127.0.0.1', HUB, credentials[HUB]!.password)).code).toBe('closed');
    expect(await metric('mqtt_auth_failures_total{reason="proxy_missing"}')).toBe(before + 1);
  });

  it('refuses a header from an address that is not a trusted proxy (it could claim any address)', async () => {
    const before = await metric('mqtt_auth_failures_total{reason="proxy_untrusted"}');
    const header = encodeV2({ address: '198.51.100.1', port: 40_000 });
    expect((await login(nodePort, GENUINE, HUB, credentials[HUB]!.password, header)).code).toBe('closed');
    expect(await metric('mqtt_auth_failures_total{reason="proxy_untrusted"}')).toBe(before + 1);
  });

  it('takes a header from the trusted proxy sent in one segment with the CONNECT (v1 and v2), under the header\'s address', async () => {
    const v2 = await login(nodePort, '127.0.0.1', HUB, credentials[HUB]!.password, encodeV2({ address: '198.51.100.7', port: 40_001 }));
    expect(v2.code).toBe(0);
    v2.socket.destroy();
    const v1 = await login(nodePort, '127.0.0.1', OTHER, credentials[OTHER]!.password, Buffer.from('PROXY TCP6 2001:db8::9 ::1 40002 1883\r\n'));
    expect(v1.code).toBe(0);
    v1.socket.destroy();
    await expect.poll(() => logLines.filter((l) => l.msg === 'hub connected').map((l) => l.address)).toEqual(expect.arrayContaining(['198.51.100.7', '2001:db8:0:0::/64']));
  });

  it('closes a connection whose header does not arrive within MQTT_PROXY_HEADER_TIMEOUT_S', async () => {
    const before = await metric('mqtt_auth_failures_total{reason="proxy_timeout"}');
    const s = net.connect({ port: nodePort, host: '127.0.0.1' });
    sockets.push(s);
    s.on('error', () => undefined);
    s.write(encodeV2({ address: '198.51.100.8', port: 1 }).subarray(0, 20));
    await new Promise((r) => s.once('close', r));
    expect(await metric('mqtt_auth_failures_total{reason="proxy_timeout"}')).toBe(before + 1);
  });
});
