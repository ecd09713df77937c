import dns from 'node:dns';
import net from 'node:net';

/**
 * The PROXY protocol (HAProxy's spec, versions 1 and 2) on the MQTT listeners (issue 15): behind a TCP
 * load balancer every connection comes from the balancer's address, so the broker's per-address limits
 * (connections not logged in yet, the login throttle) and its logs would see one address for the whole
 * country. HAProxy with `send-proxy-v2` prefixes each connection with a header naming the client's
 * address; a listener in `required` mode reads it before a single byte reaches aedes (or the TLS or
 * HTTP/WebSocket server) and uses that address instead.
 *
 * Parsed by hand, not with a package: the npm parsers (`proxy-protocol-js`, `@balena/proxy-protocol-parser`)
 * decode a header already cut out of the stream; the part that matters here — knowing from the first
 * bytes how long the header is, waiting for the rest across TCP segments within a byte and time bound,
 * and handing the bytes after it on untouched — would be ours either way, and the v2 header is 16 bytes
 * plus a fixed address block.
 *
 * Default deny: in `required` mode a connection from an address not in MQTT_TRUSTED_PROXIES is closed at
 * once (a header from anyone else would let them claim any address), and so is a connection from a
 * trusted proxy without a valid header within the bounds. Nothing here trusts the header's destination.
 */

/** v2 signature: \r\n\r\n\0\r\nQUIT\n. */
export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
/** v1: the whole line, CRLF included, is at most 107 bytes (spec 2.1). */
export const MAX_V1_HEADER_BYTES = 107;
/**
 * v2: 16 bytes and the announced length. The spec allows 64 KiB of TLVs; we accept up to 536 bytes in
 * all (the spec's minimum a receiver must take at once), which holds the addresses and HAProxy's usual
 * TLVs (ALPN, authority, unique id ≤ 128, SSL info); a longer one is refused as `too_long`.
 */
export const MAX_V2_HEADER_BYTES = 536;

export interface Endpoint {
  address: string;
  port: number;
}

export type ProxyHeader =
  /** The proxy relays a client: `source` is its address (null: a family we do not use, e.g. UNIX or UDP — the connection's own address counts). */
  | { version: 1 | 2; command: 'proxy'; source: Endpoint | null; destination: Endpoint | null }
  /** v2 LOCAL (HAProxy's own health check) or v1 `PROXY UNKNOWN`: the connection's own address counts. */
  | { version: 1 | 2; command: 'local' };

export type HeaderInvalid = 'missing' | 'invalid' | 'too_long';

export type ParseResult =
  | { state: 'incomplete' }
  | { state: 'done'; header: ProxyHeader; length: number }
  | { state: 'invalid'; reason: HeaderInvalid; detail: string };

const startsLike = (buf: Buffer, prefix: Buffer) => {
  const n = Math.min(buf.length, prefix.length);
  return buf.subarray(0, n).equals(prefix.subarray(0, n));
};

/**
 * Parses a PROXY header (v1 or v2) at the start of `buf`, which holds every byte received so far.
 * `incomplete`: more bytes are needed (never returned once the bound of its version is reached);
 * `missing`: the bytes do not start like either version (e.g. a client speaking MQTT directly).
 */
export function parseProxyHeader(buf: Buffer): ParseResult {
  if (buf.length === 0) return { state: 'incomplete' };
  if (startsLike(buf, V2_SIGNATURE)) return buf.length < V2_SIGNATURE.length ? { state: 'incomplete' } : parseV2(buf);
  if (startsLike(buf, V1_PREFIX)) return buf.length < V1_PREFIX.length ? { state: 'incomplete' } : parseV1(buf);
  return { state: 'invalid', reason: 'missing', detail: `first byte 0x${buf[0]!.toString(16).padStart(2, '0')} starts no PROXY header` };
}

const invalid = (detail: string, reason: HeaderInvalid = 'invalid'): ParseResult => ({ state: 'invalid', reason, detail });

function parseV1(buf: Buffer): ParseResult {
  const window = buf.subarray(0, MAX_V1_HEADER_BYTES);
  const cr = window.indexOf('\r\n', 0, 'latin1');
  if (cr < 0) {
    // A lone LF or any byte outside printable ASCII can never become a valid line.
    for (const b of window) if (b === 0x0a || (b !== 0x0d && (b < 0x20 || b > 0x7e))) return invalid('v1 line holds a byte outside printable ASCII');
    return buf.length >= MAX_V1_HEADER_BYTES ? invalid(`v1 line without CRLF within ${MAX_V1_HEADER_BYTES} bytes`, 'too_long') : { state: 'incomplete' };
  }
  const line = window.toString('latin1', 0, cr);
  if (!/^[\x20-\x7e]*$/.test(line)) return invalid('v1 line holds a byte outside printable ASCII');
  const length = cr + 2;
  const parts = line.split(' ');
  if (parts[1] === 'UNKNOWN') return { state: 'done', header: { version: 1, command: 'local' }, length };
  if (parts.length !== 6) return invalid('v1 line is not "PROXY TCP4|TCP6 <src> <dst> <sport> <dport>"');
  const [, family, src, dst, sport, dport] = parts as [string, string, string, string, string, string];
  const want = family === 'TCP4' ? 4 : family === 'TCP6' ? 6 : 0;
  if (want === 0) return invalid(`v1 protocol "${family.slice(0, 16)}" is not TCP4, TCP6 or UNKNOWN`);
  if (net.isIP(src) !== want || net.isIP(dst) !== want) return invalid(`v1 addresses are not ${family}`);
  const port = (p: string) => (/^(0|[1-9]\d{0,4})$/.test(p) && Number(p) <= 65_535 ? Number(p) : null);
  const sp = port(sport);
  const dp = port(dport);
  if (sp === null || dp === null) return invalid('v1 ports are not decimal 0–65535');
  return { state: 'done', header: { version: 1, command: 'proxy', source: { address: src, port: sp }, destination: { address: dst, port: dp } }, length };
}

function parseV2(buf: Buffer): ParseResult {
  if (buf.length < 16) return { state: 'incomplete' };
  const verCmd = buf[12]!;
  if (verCmd >> 4 !== 2) return invalid(`v2 version ${verCmd >> 4} is not 2`);
  const cmd = verCmd & 0x0f;
  if (cmd > 1) return invalid(`v2 command ${cmd} is neither LOCAL nor PROXY`);
  const fam = buf[13]!;
  const len = buf.readUInt16BE(14);
  const length = 16 + len;
  if (length > MAX_V2_HEADER_BYTES) return invalid(`v2 header of ${length} bytes is over ${MAX_V2_HEADER_BYTES}`, 'too_long');
  if (buf.length < length) return { state: 'incomplete' };
  if (cmd === 0) return { state: 'done', header: { version: 2, command: 'local' }, length };
  const af = fam >> 4;
  const proto = fam & 0x0f;
  if (af > 3 || proto > 2) return invalid(`v2 family byte 0x${fam.toString(16)} is not defined`);
  // Only TCP over IPv4/IPv6 carries an address we use; the spec says to ignore the others' addresses.
  if (proto !== 1 || (af !== 1 && af !== 2)) return { state: 'done', header: { version: 2, command: 'proxy', source: null, destination: null }, length };
  const need = af === 1 ? 12 : 36;
  if (len < need) return invalid(`v2 address block of ${len} bytes is shorter than ${need}`);
  const a = buf.subarray(16, 16 + need);
  const ip = (b: Buffer) => (af === 1 ? [...b].join('.') : ipv6(b));
  const half = af === 1 ? 4 : 16;
  return {
    state: 'done',
    header: {
      version: 2,
      command: 'proxy',
      source: { address: ip(a.subarray(0, half)), port: a.readUInt16BE(2 * half) },
      destination: { address: ip(a.subarray(half, 2 * half)), port: a.readUInt16BE(2 * half + 2) },
    },
    length,
  };
}

/** 16 bytes → the canonical text form (zeros compressed), as Node reports `remoteAddress`. */
function ipv6(b: Buffer): string {
  const groups = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(2 * i).toString(16)).join(':');
  // The URL parser writes the canonical form (RFC 5952: lower case, longest zero run as "::"), but an
  // IPv4-mapped address in hex (::ffff:c000:207).
  const canonical = new URL(`http://[${groups}]/`).hostname.slice(1, -1);
  // Node reports an IPv4-mapped peer as ::ffff:a.b.c.d; do the same so addressKey() folds it to IPv4.
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical);
  if (mapped) {
    const hi = parseInt(mapped[1]!, 16);
    const lo = parseInt(mapped[2]!, 16);
    return `::ffff:${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
  }
  return canonical;
}

/** Builds a v2 header (tests, benchmarks): PROXY for a TCP client, LOCAL when `source` is omitted. */
export function encodeV2(source?: Endpoint, destination?: Endpoint, tlvs: Buffer = Buffer.alloc(0)): Buffer {
  if (!source) {
    const head = Buffer.alloc(16);
    V2_SIGNATURE.copy(head);
    head[12] = 0x20;
    head[13] = 0x00;
    head.writeUInt16BE(tlvs.length, 14);
    return Buffer.concat([head, tlvs]);
  }
  const v6 = net.isIPv6(source.address);
  const dst = destination ?? { address: v6 ? '::1' : '127.0.0.1', port: 1883 };
  const addr = (a: string) => (v6 ? ipv6Bytes(a) : Buffer.from(a.split('.').map(Number)));
  const block = Buffer.concat([addr(source.address), addr(dst.address), Buffer.alloc(4)]);
  block.writeUInt16BE(source.port, block.length - 4);
  block.writeUInt16BE(dst.port, block.length - 2);
  const head = Buffer.alloc(16);
  V2_SIGNATURE.copy(head);
  head[12] = 0x21;
  head[13] = v6 ? 0x21 : 0x11;
  head.writeUInt16BE(block.length + tlvs.length, 14);
  return Buffer.concat([head, block, tlvs]);
}

function ipv6Bytes(a: string): Buffer {
  const [head = '', tail = ''] = a.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = a.includes('::') ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right] : left;
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), 2 * i));
  return out;
}

/**
 * Who may send a PROXY header: addresses and CIDRs (node's BlockList), and host names (e.g. the compose
 * service `haproxy`), resolved when first needed and again — at most once a second — when a connection
 * comes from an address not on the list, so a balancer re-created with a new address is found again.
 */
export class TrustedProxies {
  private readonly list = new net.BlockList();
  private readonly hosts: string[] = [];
  private resolved = new Set<string>();
  private readonly perHost = new Map<string, string[]>();
  private resolvedAt = Number.NEGATIVE_INFINITY;
  private resolving: Promise<void> | null = null;

  constructor(
    entries: readonly string[],
    private readonly lookup: (host: string) => Promise<string[]> = async (host) => (await dns.promises.lookup(host, { all: true })).map((r) => r.address),
    private readonly now: () => number = Date.now,
  ) {
    for (const raw of entries) {
      const e = raw.trim();
      if (!e) continue;
      const [ip, bits] = e.split('/') as [string, string | undefined];
      const family = net.isIP(ip);
      if (family === 0) {
        this.hosts.push(e);
        continue;
      }
      const type = family === 4 ? 'ipv4' : 'ipv6';
      if (bits === undefined) this.list.addAddress(ip, type);
      else this.list.addSubnet(ip, Number(bits), type);
    }
  }

  /** Whether the address (as Node reports a peer) is a trusted proxy. */
  async trusts(remote: string | undefined): Promise<boolean> {
    if (!remote) return false;
    const address = normalise(remote);
    if (this.matchesList(address)) return true;
    if (this.hosts.length === 0) return false;
    if (this.resolved.has(address)) return true;
    if (this.now() - this.resolvedAt >= 1_000) await this.refresh();
    return this.resolved.has(address);
  }

  private matchesList(address: string): boolean {
    const family = net.isIP(address);
    return family !== 0 && this.list.check(address, family === 4 ? 'ipv4' : 'ipv6');
  }

  private refresh(): Promise<void> {
    this.resolving ??= (async () => {
      const next = new Set<string>();
      for (const h of this.hosts) {
        // A failed lookup (DNS down) keeps the host's last addresses rather than locking the balancer out.
        const found = await this.lookup(h).then((list) => list.map(normalise), () => this.perHost.get(h) ?? []);
        this.perHost.set(h, found);
        for (const a of found) next.add(a);
      }
      this.resolved = next;
      this.resolvedAt = this.now();
    })().finally(() => {
      this.resolving = null;
    });
    return this.resolving;
  }
}

/** ::ffff:a.b.c.d → a.b.c.d, so an IPv4 CIDR matches a dual-stack listener's peers. */
const normalise = (a: string) => /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a)?.[1] ?? a;

/** Whether an entry of MQTT_TRUSTED_PROXIES is an address, a CIDR or a host name (for the config check). */
export function isTrustedProxyEntry(e: string): boolean {
  const [ip, bits, more] = e.split('/');
  const family = net.isIP(ip!);
  if (family !== 0) return more === undefined && (bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128)));
  return bits === undefined && /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(e);
}

export interface ProxyProtocolOptions {
  trusted: TrustedProxies;
  /** The header must be complete within this time of the connection (a slow-loris on the header is closed). */
  timeoutMs: number;
}

export type ProxyRefusal = 'untrusted' | 'timeout' | HeaderInvalid;

export interface Proxied {
  /** The client's address: the header's source, or the connection's own for LOCAL/UNKNOWN/other families. */
  address: string;
  port: number;
  header: ProxyHeader;
  /** The proxy's own address (the TCP peer). */
  peer: string;
  /** Bytes received after the header (already taken off the socket: see `handOver`). */
  rest: Buffer;
}

/**
 * Reads the PROXY header off a freshly accepted socket, bounded in bytes (by version, see above) and in
 * time, then calls `ready` with the socket paused and the bytes after the header in `rest`; or closes
 * the socket and calls `refused`. Nothing is written to the socket.
 */
export function readProxyHeader(
  socket: net.Socket,
  o: ProxyProtocolOptions,
  ready: (p: Proxied) => void,
  refused: (reason: ProxyRefusal, peer: string, detail: string) => void,
): void {
  const peer = socket.remoteAddress ?? 'unknown';
  let done = false;
  let chunks: Buffer = Buffer.alloc(0);
  const finish = () => {
    done = true;
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('close', onClose);
  };
  const refuse = (reason: ProxyRefusal, detail: string) => {
    if (done) return;
    finish();
    socket.destroy();
    refused(reason, peer, detail);
  };
  const onClose = () => {
    if (!done) finish(); // gone before its header: nothing to count
  };
  const onData = (d: Buffer) => {
    chunks = chunks.length === 0 ? d : Buffer.concat([chunks, d]);
    const r = parseProxyHeader(chunks);
    if (r.state === 'incomplete') return;
    if (r.state === 'invalid') return refuse(r.reason, r.detail);
    finish();
    socket.pause();
    const h = r.header;
    const src = h.command === 'proxy' ? h.source : null;
    ready({ address: src?.address ?? peer, port: src?.port ?? socket.remotePort ?? 0, header: h, peer, rest: chunks.subarray(r.length) });
  };
  const timer = setTimeout(() => refuse('timeout', `no complete PROXY header within ${o.timeoutMs} ms (${chunks.length} bytes received)`), o.timeoutMs);
  socket.on('error', () => undefined);
  socket.once('close', onClose);
  socket.pause();
  void o.trusted.trusts(peer).then((ok) => {
    if (done || socket.destroyed) return finish();
    if (!ok) return refuse('untrusted', 'connection from an address not in MQTT_TRUSTED_PROXIES');
    socket.on('data', onData);
    socket.resume();
  });
}

/**
 * Serves a listener through `readProxyHeader`: accepted sockets are handed on only after their header,
 * with the client's address filed in `addresses` under the socket's peer address and port (which a TLS
 * socket wrapping it reports too, and an HTTP request's `req.socket` is). How they are handed on:
 *  - `mqtt`: `serve(socket, rest)` — the caller feeds `rest` through the socket's own `push` once its
 *    MQTT frame limiter is installed (bytes put back with unshift() would skip the limiter's scan);
 *  - `tls`: the bytes after the header are put back (a TLS socket takes its wrapped socket's buffered
 *    bytes first), then `serve(socket)` — `tlsServer.emit('connection', socket)`;
 *  - `http`: `serve(socket)` — `httpServer.emit('connection', socket)` — then the bytes after the header
 *    are emitted as 'data': the HTTP server reads its socket's handle directly, bypassing the stream's
 *    buffer, so unshifted bytes would never reach it; it parses what the socket emits.
 */
export function proxiedListener(
  o: ProxyProtocolOptions,
  addresses: Map<string, string>,
  kind: 'mqtt' | 'tls' | 'http',
  serve: (socket: net.Socket, rest: Buffer) => void,
  refused: (reason: ProxyRefusal, peer: string, detail: string) => void,
): net.Server {
  /** Connections still sending their header: handed to no one yet, so only the listener can end them. */
  const waiting = new Set<net.Socket>();
  const server = net.createServer({ pauseOnConnect: true }, (socket) => {
    waiting.add(socket);
    socket.once('close', () => waiting.delete(socket));
    readProxyHeader(
      socket,
      o,
      (p) => {
        waiting.delete(socket);
        const key = peerKey(socket);
        addresses.set(key, p.address);
        socket.once('close', () => addresses.delete(key));
        if (kind === 'mqtt') return serve(socket, p.rest);
        if (kind === 'tls') {
          if (p.rest.length > 0) socket.unshift(p.rest);
          return serve(socket, Buffer.alloc(0));
        }
        serve(socket, Buffer.alloc(0));
        if (p.rest.length > 0) socket.emit('data', p.rest);
      },
      refused,
    );
  });
  // Closing the listener (the cloud shutting down) ends them too: a connection that had not finished its
  // header kept the process alive until the header timeout (MQTT_PROXY_HEADER_TIMEOUT_S, up to 60 s).
  const close = server.close.bind(server);
  server.close = ((cb?: (err?: Error) => void) => {
    for (const socket of waiting) socket.destroy();
    waiting.clear();
    return close(cb);
  }) as typeof server.close;
  return server;
}

/** The key `proxiedListener` files a connection's client address under. */
export const peerKey = (s: { remoteAddress?: string | undefined; remotePort?: number | undefined }) => `${s.remoteAddress}|${s.remotePort}`;
