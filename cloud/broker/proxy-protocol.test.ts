import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { execFileSync } from 'node:child_process';
import fc from 'fast-check';
import { generate } from 'mqtt-packet';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, loadCloudConfig } from '../config.ts';
import {
  encodeV2, isTrustedProxyEntry, MAX_V1_HEADER_BYTES, MAX_V2_HEADER_BYTES, parseProxyHeader, peerKey, proxiedListener, readProxyHeader,
  TrustedProxies, V2_SIGNATURE, type Proxied, type ProxyRefusal,
} from './proxy-protocol.ts';

const v1 = (s: string) => Buffer.from(s, 'latin1');
const connect = generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'hub-x', keepalive: 30 });

describe('parseProxyHeader: v1', () => {
  it('reads TCP4 and TCP6 lines and says how long the header is', () => {
    const line = 'PROXY TCP4 203.0.113.7 192.0.2.1 51234 1883\r\n';
    expect(parseProxyHeader(Buffer.concat([v1(line), connect]))).toEqual({
      state: 'done', length: line.length,
      header: { version: 1, command: 'proxy', source: { address: '203.0.113.7', port: 51234 }, destination: { address: '192.0.2.1', port: 1883 } },
    });
    const r = parseProxyHeader(v1('PROXY TCP6 2001:db8::7 2001:db8::1 65535 1883\r\n'));
    expect(r).toMatchObject({ state: 'done', header: { source: { address: '2001:db8::7', port: 65535 } } });
  });

  it('takes UNKNOWN as "use the connection\'s own address"', () => {
    expect(parseProxyHeader(v1('PROXY UNKNOWN\r\n'))).toEqual({ state: 'done', length: 15, header: { version: 1, command: 'local' } });
    expect(parseProxyHeader(v1('PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n'))).toMatchObject({ state: 'done', header: { command: 'local' } });
  });

  it('waits for the rest of a line that is still within 107 bytes', () => {
    const line = v1('PROXY TCP4 203.0.113.7 192.0.2.1 51234 1883\r\n');
    for (let n = 1; n < line.length; n++) expect(parseProxyHeader(line.subarray(0, n)).state).toBe('incomplete');
  });

  it('refuses a line without CRLF within 107 bytes (too_long), and malformed lines (invalid)', () => {
    expect(parseProxyHeader(v1(`PROXY TCP4 ${'1'.repeat(MAX_V1_HEADER_BYTES)}`))).toMatchObject({ state: 'invalid', reason: 'too_long' });
    expect(parseProxyHeader(v1(`PROXY TCP4 1.2.3.4 5.6.7.8 1 ${'2'.repeat(80)}\r\n`))).toMatchObject({ state: 'invalid' });
    for (const bad of [
      'PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n', // a field missing
      'PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n',
      'PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n', // family mismatch
      'PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n',
      'PROXY TCP4 1.2.3.400 5.6.7.8 1 2\r\n',
      'PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n',
      'PROXY TCP4 1.2.3.4 5.6.7.8 0123 2\r\n', // leading zero
      'PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n',
      'PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n', // double space
    ]) expect({ bad, r: parseProxyHeader(v1(bad)).state }).toEqual({ bad, r: 'invalid' });
    // A byte that can never be part of a line is refused before 107 bytes arrive.
    expect(parseProxyHeader(v1('PROXY TCP4 1.2.3.4\n'))).toMatchObject({ state: 'invalid', reason: 'invalid' });
    expect(parseProxyHeader(Buffer.concat([v1('PROXY TCP4 '), Buffer.from([0x00])]))).toMatchObject({ state: 'invalid', reason: 'invalid' });
  });
});

describe('parseProxyHeader: v2', () => {
  it('reads a PROXY command for TCP over IPv4 and IPv6', () => {
    const h4 = encodeV2({ address: '203.0.113.7', port: 51234 }, { address: '192.0.2.1', port: 1883 });
    expect(h4.length).toBe(28);
    expect(parseProxyHeader(Buffer.concat([h4, connect]))).toEqual({
      state: 'done', length: 28,
      header: { version: 2, command: 'proxy', source: { address: '203.0.113.7', port: 51234 }, destination: { address: '192.0.2.1', port: 1883 } },
    });
    const h6 = encodeV2({ address: '2001:db8:0:0:0:0:0:7', port: 4000 }, { address: '2001:db8::1', port: 8883 });
    expect(h6.length).toBe(52);
    expect(parseProxyHeader(h6)).toMatchObject({ state: 'done', length: 52, header: { source: { address: '2001:db8::7', port: 4000 }, destination: { address: '2001:db8::1', port: 8883 } } });
    // IPv4-mapped, as Node would report the peer (the broker's addressKey folds it to IPv4).
    expect(parseProxyHeader(encodeV2({ address: '::ffff:c000:0207', port: 1 }))).toMatchObject({ header: { source: { address: '::ffff:192.0.2.7' } } });
  });

  it('skips TLVs after the addresses', () => {
    const tlv = Buffer.from([0x05, 0x00, 0x04, 0x61, 0x62, 0x63, 0x64]); // PP2_TYPE_UNIQUE_ID "abcd"
    const h = encodeV2({ address: '198.51.100.9', port: 7 }, undefined, tlv);
    expect(parseProxyHeader(Buffer.concat([h, connect]))).toMatchObject({ state: 'done', length: 28 + tlv.length, header: { source: { address: '198.51.100.9' } } });
  });

  it('takes the LOCAL command (HAProxy\'s own health check) as "use the connection\'s own address", skipping its length', () => {
    expect(parseProxyHeader(encodeV2())).toEqual({ state: 'done', length: 16, header: { version: 2, command: 'local' } });
    const withBody = encodeV2(undefined, undefined, Buffer.alloc(12, 9));
    expect(parseProxyHeader(Buffer.concat([withBody, connect]))).toEqual({ state: 'done', length: 28, header: { version: 2, command: 'local' } });
  });

  it('ignores the address of families it does not use (UNIX, UDP), as the spec says', () => {
    const h = encodeV2({ address: '198.51.100.9', port: 7 });
    h[13] = 0x12; // UDP over IPv4
    expect(parseProxyHeader(h)).toEqual({ state: 'done', length: 28, header: { version: 2, command: 'proxy', source: null, destination: null } });
  });

  it('waits for every byte of a truncated header', () => {
    const h = Buffer.concat([encodeV2({ address: '2001:db8::7', port: 1 }), Buffer.alloc(30)]);
    h.writeUInt16BE(36 + 30, 14);
    for (let n = 1; n < h.length; n++) expect(parseProxyHeader(h.subarray(0, n)).state).toBe('incomplete');
    expect(parseProxyHeader(h).state).toBe('done');
  });

  it('refuses an announced length over 536 bytes at once (too_long), and a bad version, command, family or short address block', () => {
    const big = encodeV2({ address: '198.51.100.9', port: 7 });
    big.writeUInt16BE(MAX_V2_HEADER_BYTES - 16 + 1, 14);
    expect(parseProxyHeader(big.subarray(0, 16))).toMatchObject({ state: 'invalid', reason: 'too_long' });
    const at = (i: number, v: number) => {
      const h = encodeV2({ address: '198.51.100.9', port: 7 });
      h[i] = v;
      return parseProxyHeader(h);
    };
    expect(at(12, 0x11)).toMatchObject({ state: 'invalid', reason: 'invalid' }); // version 1 in a v2 header
    expect(at(12, 0x22)).toMatchObject({ state: 'invalid' }); // command 2
    expect(at(13, 0x41)).toMatchObject({ state: 'invalid' }); // family 4
    const short = encodeV2({ address: '198.51.100.9', port: 7 }).subarray(0, 24);
    short.writeUInt16BE(8, 14);
    expect(parseProxyHeader(short)).toMatchObject({ state: 'invalid', reason: 'invalid' });
  });
});

describe('parseProxyHeader: no header', () => {
  it('says "missing" for anything that starts like neither version (MQTT, TLS, HTTP, garbage)', () => {
    for (const b of [connect, Buffer.from([0x16, 0x03, 0x01]), v1('GET /mqtt HTTP/1.1\r\n'), v1('PROXZ'), Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x01])]) {
      expect(parseProxyHeader(b)).toMatchObject({ state: 'invalid', reason: 'missing' });
    }
    expect(parseProxyHeader(Buffer.alloc(0)).state).toBe('incomplete');
    expect(parseProxyHeader(V2_SIGNATURE.subarray(0, 5)).state).toBe('incomplete');
  });

  it('never throws and never waits past its bound on arbitrary bytes (property)', () => {
    fc.assert(fc.property(fc.oneof(fc.uint8Array({ maxLength: 700 }), fc.uint8Array({ maxLength: 700 }).map((b) => Buffer.concat([V2_SIGNATURE, b])), fc.string({ maxLength: 200 }).map((s) => v1(`PROXY ${s}`))), (bytes) => {
      const r = parseProxyHeader(Buffer.from(bytes));
      if (r.state === 'incomplete') expect(bytes.length).toBeLessThan(MAX_V2_HEADER_BYTES);
      if (r.state === 'done') expect(r.length).toBeLessThanOrEqual(Math.max(MAX_V1_HEADER_BYTES, MAX_V2_HEADER_BYTES));
    }), { numRuns: 2000 });
  });
});

describe('TrustedProxies', () => {
  it('matches addresses and CIDRs, IPv4-mapped peers included, and nothing else', async () => {
    const t = new TrustedProxies(['127.0.0.1', '10.1.0.0/16', 'fd00::/8']);
    expect(await t.trusts('127.0.0.1')).toBe(true);
    expect(await t.trusts('::ffff:127.0.0.1')).toBe(true);
    expect(await t.trusts('10.1.200.3')).toBe(true);
    expect(await t.trusts('fd12::5')).toBe(true);
    for (const a of ['127.0.0.2', '10.2.0.1', 'fe80::1', '::1', undefined]) expect(await t.trusts(a)).toBe(false);
  });

  it('resolves host names, and again (at most once a second) when an unknown address connects', async () => {
    let now = 0;
    let answer = ['172.20.0.5'];
    let lookups = 0;
    const t = new TrustedProxies(['haproxy'], async () => {
      lookups++;
      return answer;
    }, () => now);
    expect(await t.trusts('172.20.0.5')).toBe(true);
    answer = ['172.20.0.9']; // the balancer was re-created with a new address
    expect(await t.trusts('172.20.0.9')).toBe(false); // resolved less than a second ago
    now = 1_000;
    expect(await t.trusts('172.20.0.9')).toBe(true);
    expect(await t.trusts('172.20.0.5')).toBe(false);
    expect(lookups).toBe(2);
  });

  it('keeps a host\'s last addresses while its lookup fails (DNS down)', async () => {
    let now = 0;
    let fail = false;
    const t = new TrustedProxies(['haproxy'], async () => {
      if (fail) throw new Error('EAI_AGAIN');
      return ['172.20.0.5'];
    }, () => now);
    expect(await t.trusts('172.20.0.5')).toBe(true);
    fail = true;
    now = 5_000;
    expect(await t.trusts('172.20.0.77')).toBe(false); // an unknown peer makes it look again, which fails
    expect(await t.trusts('172.20.0.5')).toBe(true);
  });

  it('the config check accepts addresses, CIDRs and host names only', () => {
    for (const e of ['127.0.0.1', '10.0.0.0/8', '::1', 'fd00::/8', 'haproxy', 'lb-1.example.jp']) expect({ e, ok: isTrustedProxyEntry(e) }).toEqual({ e, ok: true });
    for (const e of ['10.0.0.0/33', 'fd00::/129', '1.2.3.4/8/1', 'ha proxy', '-x', 'a/8', '*']) expect({ e, ok: isTrustedProxyEntry(e) }).toEqual({ e, ok: false });
  });
});

describe('configuration', () => {
  const base = { DATA_DIR: os.tmpdir() };
  it('is off by default; required needs MQTT_TRUSTED_PROXIES, and a bad entry is named', () => {
    expect(loadCloudConfig(base).mqtt.proxyProtocol).toBeNull();
    expect(loadCloudConfig({ ...base, MQTT_PROXY_PROTOCOL: 'required', MQTT_TRUSTED_PROXIES: '10.0.0.5, haproxy', MQTT_PROXY_HEADER_TIMEOUT_S: '2' }).mqtt.proxyProtocol)
      .toEqual({ trustedProxies: ['10.0.0.5', 'haproxy'], headerTimeoutMs: 2000 });
    expect(() => loadCloudConfig({ ...base, MQTT_PROXY_PROTOCOL: 'required' })).toThrow(/MQTT_TRUSTED_PROXIES=""/);
    expect(() => loadCloudConfig({ ...base, MQTT_PROXY_PROTOCOL: 'required', MQTT_TRUSTED_PROXIES: '10.0.0.0/40' })).toThrow(ConfigError);
    expect(() => loadCloudConfig({ ...base, MQTT_PROXY_PROTOCOL: 'on', MQTT_TRUSTED_PROXIES: '10.0.0.5' })).toThrow(/MQTT_PROXY_PROTOCOL="on"/);
    expect(() => loadCloudConfig({ ...base, MQTT_TRUSTED_PROXIES: '10.0.0.5' })).toThrow(/MQTT_TRUSTED_PROXIES="10.0.0.5": set only with MQTT_PROXY_PROTOCOL=required/);
  });
});

// Real sockets on loopback: the header as it arrives over TCP.
const servers: net.Server[] = [];
const sockets: net.Socket[] = [];
afterEach(() => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of servers.splice(0)) s.close();
});
const listen = (server: net.Server) => new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
const dial = (port: number, localAddress = '127.0.0.1') => {
  const s = net.connect({ port, host: '127.0.0.1', localAddress });
  s.on('error', () => undefined);
  sockets.push(s);
  return new Promise<net.Socket>((resolve) => s.once('connect', () => resolve(s)));
};

interface Outcome {
  proxied?: Proxied;
  refused?: { reason: ProxyRefusal; peer: string };
  /** Every byte the served socket delivered after the header. */
  after: Buffer[];
  closed: Promise<void>;
}

/** A listener reading headers (trusted: 127.0.0.1 only); `next()` is the next accepted socket's outcome once settled. */
async function headerServer(timeoutMs = 10_000) {
  const settled: Promise<Outcome>[] = [];
  const resolvers: ((o: Outcome) => void)[] = [];
  const slot = (i: number) => {
    while (settled.length <= i) settled.push(new Promise<Outcome>((r) => resolvers.push(r)));
    return i;
  };
  let accepted = 0;
  let taken = 0;
  const server = net.createServer({ pauseOnConnect: true }, (socket) => {
    const i = slot(accepted++);
    let closedResolve!: () => void;
    const o: Outcome = { after: [], closed: new Promise((r) => (closedResolve = r)) };
    socket.once('close', () => closedResolve());
    readProxyHeader(socket, { trusted: new TrustedProxies(['127.0.0.1']), timeoutMs }, (p) => {
      o.proxied = p;
      o.after.push(p.rest);
      socket.on('data', (d: Buffer) => o.after.push(d));
      socket.resume();
      resolvers[i]!(o);
    }, (reason, peer) => {
      o.refused = { reason, peer };
      resolvers[i]!(o);
    });
  });
  servers.push(server);
  const port = await listen(server);
  return { port, next: () => settled[slot(taken++)]! };
}

describe('readProxyHeader on a socket', () => {
  it('reads a v2 header split across TCP packets and hands on every byte after it untouched', async () => {
    const { port, next } = await headerServer();
    const s = await dial(port);
    s.setNoDelay(true);
    const bytes = Buffer.concat([encodeV2({ address: '2001:db8::42', port: 40000 }), connect]);
    const outcome = next();
    for (let i = 0; i < bytes.length; i += 5) {
      s.write(bytes.subarray(i, i + 5));
      await new Promise((r) => setTimeout(r, 5));
    }
    const o = await outcome;
    expect(o.proxied).toMatchObject({ address: '2001:db8::42', port: 40000, peer: '127.0.0.1', header: { version: 2, command: 'proxy' } });
    await expect.poll(() => Buffer.concat(o.after).equals(connect)).toBe(true);
  });

  it('reads a v1 header that arrives with the first MQTT packet in one segment', async () => {
    const { port, next } = await headerServer();
    const s = await dial(port);
    const outcome = next();
    s.write(Buffer.concat([v1('PROXY TCP4 198.51.100.20 127.0.0.1 1234 1883\r\n'), connect]));
    const o = await outcome;
    expect(o.proxied).toMatchObject({ address: '198.51.100.20', port: 1234 });
    await expect.poll(() => Buffer.concat(o.after).equals(connect)).toBe(true);
  });

  it('a LOCAL header (HAProxy\'s health check) keeps the proxy\'s own address', async () => {
    const { port, next } = await headerServer();
    const s = await dial(port);
    const outcome = next();
    s.write(encodeV2());
    expect((await outcome).proxied).toMatchObject({ address: '127.0.0.1', header: { command: 'local' } });
  });

  it('closes a connection from an address not trusted, reading nothing from it', async () => {
    const { port, next } = await headerServer();
    const s = await dial(port, '127.0.0.2');
    const outcome = next();
    s.write(Buffer.concat([encodeV2({ address: '198.51.100.1', port: 1 }), connect]));
    const o = await outcome;
    expect(o.refused).toEqual({ reason: 'untrusted', peer: '127.0.0.2' });
    await o.closed;
  });

  it('closes a trusted connection that speaks MQTT without a header (missing), or sends garbage', async () => {
    const { port, next } = await headerServer();
    for (const [bytes, reason] of [[connect, 'missing'], [v1('PROXY TCP4 nonsense here at all\r\n'), 'invalid'], [Buffer.alloc(600, 0x50), 'missing']] as const) {
      const s = await dial(port);
      const outcome = next();
      s.write(bytes);
      const o = await outcome;
      expect(o.refused?.reason).toBe(reason);
      await o.closed;
    }
  });

  it('closes an oversized header once its bound is passed, without waiting for the rest', async () => {
    const { port, next } = await headerServer();
    const s = await dial(port);
    const outcome = next();
    const big = encodeV2({ address: '198.51.100.1', port: 1 });
    big.writeUInt16BE(60_000, 14);
    s.write(big);
    expect((await outcome).refused?.reason).toBe('too_long');
    const s1 = await dial(port);
    const outcome1 = next();
    s1.write(v1(`PROXY TCP4 ${' '.repeat(200)}`));
    expect((await outcome1).refused?.reason).toBe('too_long');
  });

  it('closes a connection whose header is still incomplete when the timeout passes (slow-loris)', async () => {
    const { port, next } = await headerServer(300);
    const s = await dial(port);
    const outcome = next();
    const h = encodeV2({ address: '198.51.100.1', port: 1 });
    s.write(h.subarray(0, 10)); // and then nothing
    const o = await outcome;
    expect(o.refused?.reason).toBe('timeout');
    await o.closed;
    // A client that sends nothing at all is closed the same way.
    await dial(port);
    expect((await next()).refused?.reason).toBe('timeout');
  });

  it('hands on the same address and bytes however header and payload are cut into writes (property)', async () => {
    const { port, next } = await headerServer();
    const payload = Buffer.concat([connect, generate({ cmd: 'pingreq' })]);
    await fc.assert(fc.asyncProperty(fc.boolean(), fc.uniqueArray(fc.integer({ min: 1, max: 27 + payload.length }), { maxLength: 6 }), async (useV1, cutsRaw) => {
      const header = useV1 ? v1('PROXY TCP4 192.0.2.33 127.0.0.1 6000 1883\r\n') : encodeV2({ address: '192.0.2.33', port: 6000 });
      const bytes = Buffer.concat([header, payload]);
      const cuts = [0, ...cutsRaw.filter((c) => c < bytes.length).sort((a, b) => a - b), bytes.length];
      const s = await dial(port);
      s.setNoDelay(true);
      const outcome = next();
      for (let i = 1; i < cuts.length; i++) {
        s.write(bytes.subarray(cuts[i - 1], cuts[i]));
        await new Promise((r) => setImmediate(r));
      }
      const o = await outcome;
      expect(o.proxied?.address).toBe('192.0.2.33');
      await expect.poll(() => Buffer.concat(o.after).equals(payload)).toBe(true);
      s.destroy();
    }), { numRuns: 25 });
  });
});

describe('proxiedListener in front of the HTTP (WebSocket) and TLS servers', () => {
  it('ends the connections still sending their header when the listener closes (shutdown), without waiting for the header timeout', async () => {
    const front = proxiedListener({ trusted: new TrustedProxies(['127.0.0.1']), timeoutMs: 60_000 }, new Map(), 'mqtt', () => undefined, () => undefined);
    const port = await listen(front);
    const silent = await dial(port); // connected, sends nothing
    const partial = await dial(port);
    partial.write(encodeV2({ address: '198.51.100.1', port: 1 }).subarray(0, 10));
    const ended = (s: net.Socket) => new Promise<void>((resolve) => (s.destroyed ? resolve() : s.once('close', () => resolve())));
    const closed = new Promise<void>((resolve) => front.close(() => resolve()));
    const outcome = await Promise.race([
      Promise.all([ended(silent), ended(partial), closed]).then(() => 'ended'),
      new Promise((r) => setTimeout(r, 3_000)).then(() => 'still open after 3 s'),
    ]);
    expect(outcome).toBe('ended');
  });

  it('serves HTTP after a header, with the bytes that came with it, and files the client address', async () => {
    const addresses = new Map<string, string>();
    const httpServer = http.createServer((req, res) => res.end(`${addresses.get(peerKey(req.socket))} ${req.url}`));
    const front = proxiedListener({ trusted: new TrustedProxies(['127.0.0.1']), timeoutMs: 5_000 }, addresses, 'http', (s) => httpServer.emit('connection', s), () => undefined);
    servers.push(front);
    const port = await listen(front);
    const s = await dial(port);
    const body = new Promise<string>((resolve) => {
      let out = '';
      s.on('data', (d: Buffer) => (out += d.toString()));
      s.once('close', () => resolve(out));
    });
    s.write(Buffer.concat([encodeV2({ address: '192.0.2.77', port: 5 }), v1('GET /mqtt HTTP/1.1\r\nHo')]));
    await new Promise((r) => setTimeout(r, 20));
    s.write('st: x\r\nConnection: close\r\n\r\n');
    expect(await body).toMatch(/\r\n\r\n192\.0\.2\.77 \/mqtt$/);
  });

  it('serves TLS after a header that arrived in the same segment as the ClientHello', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'proxy-tls-'));
    try {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', path.join(dir, 'k.pem'), '-out', path.join(dir, 'c.pem'), '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
      const addresses = new Map<string, string>();
      const secure = tls.createServer({ key: fs.readFileSync(path.join(dir, 'k.pem')), cert: fs.readFileSync(path.join(dir, 'c.pem')) }, (t) => t.end(`${addresses.get(peerKey(t))}`));
      const front = proxiedListener({ trusted: new TrustedProxies(['127.0.0.1']), timeoutMs: 5_000 }, addresses, 'tls', (s) => secure.emit('connection', s), () => undefined);
      servers.push(front);
      const port = await listen(front);
      // A relay that puts the header in front of the client's first segment (the ClientHello), in one write.
      const relay = net.createServer((c) => {
        const up = net.connect(port, '127.0.0.1');
        let first = true;
        c.on('data', (d: Buffer) => {
          up.write(first ? Buffer.concat([encodeV2({ address: '192.0.2.88', port: 9 }), d]) : d);
          first = false;
        });
        up.on('data', (d: Buffer) => c.write(d));
        up.on('close', () => c.destroy());
        c.on('error', () => undefined);
        up.on('error', () => undefined);
      });
      servers.push(relay);
      const relayPort = await listen(relay);
      const client = tls.connect({ port: relayPort, host: '127.0.0.1', rejectUnauthorized: false });
      client.on('error', () => undefined);
      const text = await new Promise<string>((resolve) => {
        let out = '';
        client.on('data', (d: Buffer) => (out += d.toString()));
        client.once('close', () => resolve(out));
      });
      expect(text).toBe('192.0.2.88');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
