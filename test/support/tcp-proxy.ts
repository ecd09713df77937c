import net from 'node:net';

/**
 * A TCP proxy for fault tests, between a client (e.g. an edge agent) and a server (e.g. the cloud
 * broker): it cuts every connection on demand, stops and restarts listening on the same port (the
 * link is down: connections are refused), and throttles the link to a byte rate. Loopback only.
 *
 * Throttling is one token bucket per direction, shared by all connections — like one uplink —
 * with a burst of 1/20 s of the rate, so a transfer takes about `bytes / rate` seconds.
 */
export interface TcpProxyOptions {
  target: { host: string; port: number };
  /** Port to listen on (default: a free one, kept across `stop()`/`start()`). */
  listenPort?: number;
  /** Start throttled (default: unlimited). */
  bytesPerSecond?: number;
}

export interface TcpProxyStats {
  /** Connection pairs open now. */
  connections: number;
  /** Connections accepted since the proxy started. */
  accepted: number;
  /** Bytes forwarded client → target. */
  bytesUp: number;
  /** Bytes forwarded target → client. */
  bytesDown: number;
}

export interface TcpProxy {
  readonly port: number;
  /** e.g. `mqtt://127.0.0.1:<port>` */
  url(protocol?: string): string;
  /** Destroys every open connection pair now (both sockets), dropping whatever is queued. */
  cut(): void;
  /** Stops listening (new connections are refused) and cuts the open ones. */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
  /** Throttles both directions to `bytesPerSecond` each; null: unlimited. Applies to open connections too. */
  setRate(bytesPerSecond: number | null): void;
  stats(): TcpProxyStats;
}

const HOST = '127.0.0.1';
/** A direction stops reading from its source while this much waits to be forwarded. */
const HIGH_WATER_BYTES = 256 * 1024;

export async function startTcpProxy(opts: TcpProxyOptions): Promise<TcpProxy> {
  const up = new TokenBucket(opts.bytesPerSecond ?? null);
  const down = new TokenBucket(opts.bytesPerSecond ?? null);
  const pairs = new Set<Pair>();
  const counts = { accepted: 0, bytesUp: 0, bytesDown: 0 };

  // Half-open allowed on both sides, so a FIN is passed on after the data before it (not before).
  const server = net.createServer({ noDelay: true, allowHalfOpen: true }, (client) => {
    counts.accepted += 1;
    const upstream = net.connect({ host: opts.target.host, port: opts.target.port, noDelay: true, allowHalfOpen: true });
    const pair: Pair = {
      sockets: [client, upstream],
      pumps: [
        new Pump(client, upstream, up, (n) => (counts.bytesUp += n)),
        new Pump(upstream, client, down, (n) => (counts.bytesDown += n)),
      ],
    };
    pairs.add(pair);
    const destroy = (): void => {
      if (!pairs.delete(pair)) return;
      for (const p of pair.pumps) p.stop();
      for (const s of pair.sockets) s.destroy();
    };
    // Either side failing or going away ends the pair; a clean end (FIN) is passed on once the
    // data before it was forwarded (see Pump).
    for (const s of pair.sockets) {
      s.on('error', destroy);
      s.on('close', () => {
        const [a, b] = pair.sockets;
        if (a.destroyed && b.destroyed) destroy();
        else if (!pair.pumps.some((p) => p.source === s && p.ended)) destroy();
      });
    }
  });

  const listen = (port: number): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, HOST, () => {
        server.off('error', reject);
        resolve();
      });
    });

  await listen(opts.listenPort ?? 0);
  const port = (server.address() as net.AddressInfo).port;

  const cut = (): void => {
    for (const pair of [...pairs]) {
      pairs.delete(pair);
      for (const p of pair.pumps) p.stop();
      for (const s of pair.sockets) s.destroy();
    }
  };

  return {
    port,
    url: (protocol = 'mqtt') => `${protocol}://${HOST}:${port}`,
    cut,
    async stop() {
      const closed = server.listening ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
      cut();
      await closed;
    },
    async start() {
      if (!server.listening) await listen(port);
    },
    setRate(bytesPerSecond) {
      up.setRate(bytesPerSecond);
      down.setRate(bytesPerSecond);
      for (const pair of pairs) for (const p of pair.pumps) p.flush();
    },
    stats: () => ({ connections: pairs.size, ...counts }),
  };
}

interface Pair {
  sockets: [net.Socket, net.Socket];
  pumps: [Pump, Pump];
}

/** Bytes per second with a small burst; `null` rate = unlimited. */
class TokenBucket {
  private rate: number | null = null;
  private capacity = 0;
  private tokens = 0;
  private last = 0;

  constructor(rate: number | null) {
    this.setRate(rate);
  }

  setRate(rate: number | null): void {
    if (rate !== null && !(Number.isFinite(rate) && rate > 0)) throw new Error(`bytesPerSecond must be a positive number or null, got ${rate}`);
    this.rate = rate;
    this.capacity = rate === null ? 0 : Math.max(64, Math.round(rate / 20));
    this.tokens = Math.min(this.tokens, this.capacity);
    this.last = performance.now();
  }

  /** Takes up to `wanted` bytes' worth; returns how many it may send now. */
  take(wanted: number): number {
    if (this.rate === null) return wanted;
    this.refill();
    const n = Math.min(wanted, Math.floor(this.tokens));
    this.tokens -= n;
    return n;
  }

  /** Milliseconds until `wanted` bytes (at most one burst) can be sent. */
  waitMs(wanted: number): number {
    if (this.rate === null) return 0;
    this.refill();
    const need = Math.min(wanted, this.capacity) - this.tokens;
    return Math.max(1, Math.ceil((need / this.rate) * 1000));
  }

  private refill(): void {
    const now = performance.now();
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.last) / 1000) * this.rate!);
    this.last = now;
  }
}

/** Forwards one direction of a pair through a token bucket, with back-pressure on both ends. */
class Pump {
  /** The source sent FIN; the destination is ended once the queue is forwarded. */
  ended = false;
  private readonly queue: Buffer[] = [];
  private queued = 0;
  private timer: NodeJS.Timeout | null = null;
  private waitingForDrain = false;
  private stopped = false;

  constructor(
    readonly source: net.Socket,
    private readonly dest: net.Socket,
    private readonly bucket: TokenBucket,
    private readonly onForwarded: (bytes: number) => void,
  ) {
    source.on('data', (chunk: Buffer) => {
      this.queue.push(chunk);
      this.queued += chunk.length;
      if (this.queued >= HIGH_WATER_BYTES) source.pause();
      this.flush();
    });
    source.on('end', () => {
      this.ended = true;
      this.flush();
    });
    dest.on('drain', () => {
      this.waitingForDrain = false;
      this.flush();
    });
    // The upstream socket is still connecting: writes are buffered by net until it connects.
  }

  flush(): void {
    if (this.stopped || this.waitingForDrain) return;
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    while (this.queue.length > 0) {
      if (this.dest.destroyed) return;
      const head = this.queue[0]!;
      const n = this.bucket.take(head.length);
      if (n === 0) {
        this.timer = setTimeout(() => {
          this.timer = null;
          this.flush();
        }, this.bucket.waitMs(head.length));
        return;
      }
      const part = n === head.length ? head : head.subarray(0, n);
      if (n === head.length) this.queue.shift();
      else this.queue[0] = head.subarray(n);
      this.queued -= n;
      this.onForwarded(n);
      if (!this.dest.write(part)) {
        this.waitingForDrain = true;
        break;
      }
    }
    if (this.queued < HIGH_WATER_BYTES / 2 && this.source.isPaused()) this.source.resume();
    if (this.ended && this.queue.length === 0 && !this.dest.destroyed) this.dest.end();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.queue.length = 0;
    this.queued = 0;
  }
}
