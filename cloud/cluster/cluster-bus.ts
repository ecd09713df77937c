import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { AlarmChange } from '../alarms/alarm-service.ts';
import type { LiveChange, LiveState } from '../live/live-state.ts';
import type { Logger } from '../logger.ts';
import { openRedisConnection } from './redis.ts';

/**
 * Live state shared between cluster nodes (issue 15: "live state, the consoles' live feed and
 * /metrics show the whole deployment from any node"). Each node's LiveState is filled by its own
 * ingest and its own hub connections; this bus carries those changes to every other node over one
 * Redis pub/sub channel, and keeps in Redis what must survive a lost message:
 *
 *  - `<p>:node:<id>` — the node's heartbeat (value: its incarnation, a random id per start), set every
 *    `heartbeatTtlMs / 3` with a TTL of `heartbeatTtlMs`. A node whose key expired is dead: every node
 *    shows its hubs offline (unless they connected elsewhere), and the first to notice deletes its
 *    link record (atomically, only while the key is still missing). `<p>:nodes` lists node ids.
 *  - `<p>:links:<id>` — the node's authoritative link record: hub → `connections|region|at`, plus
 *    `_inc` and `_seq` (the incarnation and the sequence number of the last message whose link changes
 *    it holds). Written only by that node, in the same MULTI as the PUBLISH of the same changes, so a
 *    snapshot (HGETALL) and the message stream line up by `_seq`.
 *
 * Why per-node records and counts, not one "hub → node" field: a hub moving from node A to node B
 * (A's close arriving after B's open, or A's snapshot read after B's message) touches two different
 * entries — A's count and B's count — so no order of arrival can leave it offline while B holds it.
 * Messages of one node arrive in order (one Redis connection); across nodes no order is needed.
 *
 * Redis pub/sub is at-most-once. What recovers a lost message:
 *  - links: every message carries the node's incarnation and a sequence number; a gap, a new
 *    incarnation, a `hello` or a (re)subscription makes the receiver read that node's link record
 *    again (one HGETALL); the liveness check every second also reads any live node it does not know,
 *    and every node's record every `reconcileMs` (30 s: a lost last message before a silence);
 *  - mode acknowledgements: `onResync` (the cloud reads the stored acknowledgements again) when a
 *    loss is detected (a gap in a known sequence, a resubscription, a rate-limited drop), at most
 *    once per `lossNoticeMs`;
 *  - alarm pushes: on the same notice the live feed ends its streams; consoles reconnect (the feed's
 *    `retry: 2000`) and read the alarm list again, as they do at every (re)connect;
 *  - device readings and hub statuses: the next one (telemetry every few seconds, status every 10 s),
 *    as after a restart.
 *
 * Sending: link, status, mode and alarm changes go out every `flushMs` (50 ms), device readings
 * every `deviceFlushMs` (500 ms), only the newest per device — one PUBLISH per flush, in one MULTI
 * with the link record's update.
 *
 * Bounds: changes queue up to `maxQueuedChanges` (and as many devices) between flushes; a message is at most `maxMessageBytes`; a receiver takes at most
 * `maxBytesPerSecondPerNode` of one node's messages a second (checked before parsing, the node read
 * from the message's first bytes) and drops the rest unparsed (counted, then re-reads that node's
 * link record and notices a possible loss). Redis itself drops a subscriber that falls 32 MiB behind
 * (its default `client-output-buffer-limit pubsub`); the reconnect then resynchronises.
 */

export interface ClusterBusOptions {
  redisUrl: string;
  nodeId: string;
  live: LiveState;
  registry: Registry;
  logger: Logger;
  /** A node whose heartbeat is older than this is dead (its hubs shown offline). */
  heartbeatTtlMs: number;
  /** How often every node checks the others' heartbeats (default 1000 ms). */
  checkIntervalMs?: number;
  /** How long link, status, mode and alarm changes are collected before one PUBLISH (default 50 ms). */
  flushMs?: number;
  /**
   * How long device readings are collected (default 500 ms): only a device's newest reading of that
   * window goes out, so a device reporting faster (a burst, a benchmark) costs the other nodes one
   * reading per window. Another node shows a reading at most this much later than the ingesting one.
   */
  deviceFlushMs?: number;
  maxMessageBytes?: number;
  maxQueuedChanges?: number;
  /** Bytes of one node's messages taken per second (default 8 MiB: ~25,000 readings, over 3× a node's ingest ceiling). */
  maxBytesPerSecondPerNode?: number;
  /** A change another node applied, after live state took it (e.g. a mode acknowledgement for the mode service). */
  onRemoteChange?: (node: string, c: LiveChange) => void;
  /** Messages may have been lost (a gap, a Redis reconnect): read again what the shared database holds. */
  onResync?: () => Promise<void>;
  /** Every live node's link record is read again this often (default 30 s): a lost message followed by silence shows no gap. */
  reconcileMs?: number;
  /** At most one `onResync` and loss notice per this interval (default 10 s). */
  lossNoticeMs?: number;
  /** Key and channel prefix (default `cloud`). */
  prefix?: string;
  now?: () => number;
}

interface WireMessage {
  /** Sender node id, incarnation, sequence number. */
  n: string;
  i: string;
  s: number;
  /** Live-state changes, in the order the sender applied them. */
  c?: LiveChange[];
  /** Alarm changes. */
  a?: AlarmChange[];
  /** The sender rewrote its link record: read it again. */
  h?: 1;
  /** Notices: something changed in the shared database that the others should read now (e.g. `modes`). */
  x?: string[];
}

interface Peer {
  incarnation: string;
  seq: number;
  /** A snapshot read is under way: link changes wait here (bounded) to be applied after it. */
  loading: boolean;
  waiting: WireMessage[];
  /** When its link record was last read (the periodic reconcile reads it again after `reconcileMs`). */
  readAt: number;
}

const DEFAULTS = { reconcileMs: 30_000, lossNoticeMs: 10_000, checkIntervalMs: 1000, flushMs: 50, deviceFlushMs: 500, maxMessageBytes: 256 * 1024, maxQueuedChanges: 50_000, maxBytesPerSecondPerNode: 8 * 1024 * 1024 };
const MAX_BUDGETS = 1000;
const MAX_WAITING = 1000;

/** The sender of a message from its first bytes (`{"n":"<id>",`), without parsing it; null if it does not start so. */
function senderOf(data: Buffer): string | null {
  const head = data.subarray(0, 200).toString('utf8');
  if (!head.startsWith('{"n":"')) return null;
  const end = head.indexOf('","i":"', 6);
  return end > 6 ? head.slice(6, end) : null;
}

// Deletes a dead node's link record only while its heartbeat is still missing (it may have come back).
const DROP_DEAD = `if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('DEL', KEYS[2]); redis.call('SREM', KEYS[3], ARGV[1]); return 1 end; return 0`;

export class ClusterBus {
  readonly nodeId: string;
  readonly incarnation = randomUUID();
  private readonly o: Required<Omit<ClusterBusOptions, 'onRemoteChange' | 'onResync'>> & Pick<ClusterBusOptions, 'onRemoteChange' | 'onResync'>;
  private readonly cmd: Redis;
  private readonly sub: Redis;
  private readonly log: Logger;
  private readonly channel: string;
  private readonly peers = new Map<string, Peer>();
  private readonly alarmListeners = new Set<(c: AlarmChange) => void>();
  private readonly lossListeners = new Set<() => void>();
  private readonly budgets = new Map<string, { tokens: number; at: number }>();
  private lossNoticeAt = -Infinity;
  private lossTimer: NodeJS.Timeout | null = null;
  /** Changes waiting for the next flush; device readings coalesced per device (newest kept). */
  private queue: LiveChange[] = [];
  /** Device readings by device (and event/telemetry): the newest of the window. */
  private deviceQueue = new Map<string, LiveChange>();
  private flushDueAt = Infinity;
  private alarmQueue: AlarmChange[] = [];
  private noticeQueue = new Set<string>();
  private readonly noticeListeners = new Set<(kind: string) => void>();
  private seq = 0;
  /** The link record in Redis may be stale (start, a failed write, expired heartbeat): rewrite it whole with the next flush. */
  private rewrite = true;
  private flushTimer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;
  private timers: NodeJS.Timeout[] = [];
  private unsubscribeLive: () => void = () => {};
  private liveNodes = new Set<string>();
  /** After a reconnect nobody is declared dead for one TTL: their heartbeats may not have been written again yet. */
  private graceUntil = 0;
  private closed = false;
  private readonly m;
  /** How every message of this node starts (`{"n":<id>,"i":<incarnation>`). */
  private readonly ownHead: Buffer;

  private constructor(o: ClusterBusOptions) {
    this.o = { ...DEFAULTS, prefix: 'cloud', now: Date.now, ...o };
    this.nodeId = o.nodeId;
    this.log = o.logger.child({ component: 'cluster-bus', nodeId: o.nodeId });
    this.channel = `${this.o.prefix}:live`;
    this.ownHead = Buffer.from(`{"n":${JSON.stringify(o.nodeId)},"i":"${this.incarnation}"`);
    // Commands fail after ~2 reconnect attempts (a flush then counts its changes lost and rewrites the record later).
    this.cmd = openRedisConnection(o.redisUrl, `${o.nodeId}:live`, this.log);
    this.sub = openRedisConnection(o.redisUrl, `${o.nodeId}:live-sub`, this.log);
    const registers = [o.registry];
    this.m = {
      published: new Counter({ name: 'cloud_cluster_bus_messages_published_total', help: 'Messages this node published on the cluster bus (live-state changes to the other nodes)', registers }),
      publishedBytes: new Counter({ name: 'cloud_cluster_bus_published_bytes_total', help: 'Bytes this node published on the cluster bus', registers }),
      publishedChanges: new Counter({ name: 'cloud_cluster_bus_changes_published_total', help: 'Live-state and alarm changes this node published on the cluster bus', registers }),
      received: new Counter({ name: 'cloud_cluster_bus_changes_received_total', help: 'Changes from other nodes applied here', registers }),
      dropped: new Counter({
        name: 'cloud_cluster_bus_dropped_total', help: 'Changes not sent or not applied: queue_full, too_large, publish_failed (sender), malformed (receiver); rate_limited counts whole messages dropped unparsed (receiver)',
        labelNames: ['reason'] as const, registers,
      }),
      resyncs: new Counter({ name: 'cloud_cluster_bus_resyncs_total', help: 'Times another node\'s link record was read again (start, gap, reconnect, a node back)', registers }),
      nodes: new Gauge({ name: 'cloud_cluster_live_nodes', help: 'Nodes with a live heartbeat, as this node last saw them', registers, aggregator: 'max' }),
    };
  }

  /** Connects, subscribes, writes this node's heartbeat and link record, and loads every live node's. */
  static async start(o: ClusterBusOptions): Promise<ClusterBus> {
    const bus = new ClusterBus(o);
    try {
      await bus.begin();
    } catch (err) {
      await bus.close();
      throw err;
    }
    return bus;
  }

  private async begin(): Promise<void> {
    this.sub.on('messageBuffer', (_channel: Buffer, data: Buffer) => this.receive(data));
    // The first 'ready' of each connection is the start; later ones are reconnects.
    let subReady = this.sub.status === 'ready';
    let cmdReady = this.cmd.status === 'ready';
    this.sub.on('ready', () => {
      if (!subReady) return void (subReady = true);
      // Resubscribed after a lost connection: whatever was published meanwhile is lost.
      this.log.warn('cluster bus: subscription restored; reading every node\'s link record again');
      this.graceUntil = this.o.now() + this.o.heartbeatTtlMs;
      this.resyncAll();
    });
    this.cmd.on('ready', () => {
      if (!cmdReady) return void (cmdReady = true);
      this.graceUntil = this.o.now() + this.o.heartbeatTtlMs;
      this.rewrite = true;
      void this.heartbeat();
    });
    await this.sub.subscribe(this.channel);
    await this.heartbeat();
    this.unsubscribeLive = this.o.live.onChange((c) => this.enqueue(c));
    await this.flush(); // the link record (empty at start) and a hello
    await this.checkNodes();
    const every = (ms: number, fn: () => Promise<void>) => this.timers.push(setInterval(() => void fn().catch((err: unknown) => this.log.warn({ err }, 'cluster bus: periodic step failed')), ms).unref());
    every(Math.max(100, Math.floor(this.o.heartbeatTtlMs / 3)), () => this.heartbeat());
    every(this.o.checkIntervalMs, () => this.checkNodes());
  }

  /** For /healthz: whether both Redis connections are up, and the nodes seen alive. */
  health(): { nodeId: string; redisConnected: boolean; liveNodes: number } {
    return { nodeId: this.nodeId, redisConnected: this.cmd.status === 'ready' && this.sub.status === 'ready', liveNodes: this.liveNodes.size };
  }

  /** Nodes with a live heartbeat (this one included), as last checked. */
  nodes(): string[] {
    return [...this.liveNodes].sort();
  }

  /** The Redis connection for other cluster parts of this node (e.g. /metrics); do not close it. */
  get redis(): Redis {
    return this.cmd;
  }

  get prefix(): string {
    return this.o.prefix;
  }

  /** An alarm changed on this node: every other node's consoles hear of it. */
  publishAlarm(change: AlarmChange): void {
    if (this.closed) return;
    if (this.alarmQueue.length >= this.o.maxQueuedChanges) {
      this.m.dropped.inc({ reason: 'queue_full' });
      return;
    }
    this.alarmQueue.push(change);
    this.scheduleFlush();
  }

  /**
   * Tells the other nodes at once (no batching window) that something they cache from the shared
   * database changed, e.g. `modes` after a switch: the PUBLISH leaves before anything this node sends
   * afterwards on its other connections (the broker's retained region mode).
   */
  publishNotice(kind: string): void {
    if (this.closed || kind.length > 64 || this.noticeQueue.size >= 16) return;
    this.noticeQueue.add(kind);
    void this.flush();
  }

  /** Notices from other nodes (`publishNotice`). */
  onNotice(fn: (kind: string) => void): () => void {
    this.noticeListeners.add(fn);
    return () => void this.noticeListeners.delete(fn);
  }

  /** Alarm changes made on other nodes. */
  onAlarm(fn: (c: AlarmChange) => void): () => void {
    this.alarmListeners.add(fn);
    return () => void this.alarmListeners.delete(fn);
  }

  /** Stops publishing and checking, removes this node's heartbeat and link record (its hubs go offline elsewhere at once), closes Redis. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribeLive();
    for (const t of this.timers) clearInterval(t);
    if (this.flushTimer) clearTimeout(this.flushTimer);
    if (this.lossTimer) clearTimeout(this.lossTimer);
    await this.flushing?.catch(() => undefined);
    try {
      if (this.cmd.status === 'ready') {
        // A graceful stop: the other nodes need not wait for the heartbeat to expire.
        await this.cmd.multi().del(this.key('node', this.nodeId), this.key('links', this.nodeId)).srem(this.key('nodes'), this.nodeId)
          .publish(this.channel, JSON.stringify({ n: this.nodeId, i: this.incarnation, s: ++this.seq, h: 1 } satisfies WireMessage)).exec(); // (key order: n, i first)
      }
    } catch (err) {
      this.log.warn({ err }, 'cluster bus: removing this node\'s records at shutdown failed; they expire');
    }
    this.cmd.disconnect();
    this.sub.disconnect();
  }

  private key(...parts: string[]): string {
    return [this.o.prefix, ...parts].join(':');
  }

  // ---- sending ----

  private enqueue(c: LiveChange): void {
    if (this.closed) return;
    if (c.t === 'device') {
      const k = `${c.msg.hub}\u0000${c.msg.device}\u0000${c.msg.type.endsWith('.event') ? 'e' : 't'}`;
      if (!this.deviceQueue.has(k) && this.deviceQueue.size >= this.o.maxQueuedChanges) {
        this.m.dropped.inc({ reason: 'queue_full' });
        return;
      }
      this.deviceQueue.set(k, c); // only the newest reading of a device within one window goes out
      this.scheduleFlush(this.o.deviceFlushMs);
      return;
    }
    if (this.queue.length >= this.o.maxQueuedChanges) {
      // A status or a mode acknowledgement is lost (their next one, or onResync, recovers it); links come from the rewritten record.
      this.m.dropped.inc({ reason: 'queue_full' });
      this.rewrite = true;
      return;
    }
    this.queue.push(c);
    this.scheduleFlush(this.o.flushMs);
  }

  /** A flush within `delayMs` (an earlier one already scheduled stands). */
  private scheduleFlush(delayMs: number = this.o.flushMs): void {
    if (this.closed) return;
    const due = this.o.now() + delayMs;
    if (this.flushTimer) {
      if (due >= this.flushDueAt) return;
      clearTimeout(this.flushTimer);
    }
    this.flushDueAt = due;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = null;
      this.flushDueAt = Infinity;
      void this.flush();
    }, delayMs);
  }

  private flush(): Promise<void> {
    if (this.flushing) {
      // One flush at a time (messages of one node must go out in order); what queued meanwhile goes next.
      return this.flushing.then(() => {
        if (this.queue.length > 0 || this.alarmQueue.length > 0 || this.noticeQueue.size > 0 || this.rewrite) return this.flush();
        if (this.deviceQueue.size > 0) this.scheduleFlush(this.o.deviceFlushMs);
      });
    }
    this.flushing = this.flushNow().finally(() => (this.flushing = null));
    return this.flushing;
  }

  private async flushNow(): Promise<void> {
    const changes = [...this.queue, ...this.deviceQueue.values()];
    const alarms = this.alarmQueue;
    const notices = [...this.noticeQueue];
    this.queue = [];
    this.deviceQueue = new Map();
    this.alarmQueue = [];
    this.noticeQueue = new Set();
    const rewrite = this.rewrite;
    this.rewrite = false;
    // Chunks of at most maxMessageBytes, each one PUBLISH with its own sequence number.
    const chunks: { parts: string[]; alarms: string[]; links: Extract<LiveChange, { t: 'link' }>[]; bytes: number }[] = [];
    let chunk = { parts: [] as string[], alarms: [] as string[], links: [] as Extract<LiveChange, { t: 'link' }>[], bytes: 0 };
    const add = (json: string, into: 'parts' | 'alarms', link: Extract<LiveChange, { t: 'link' }> | null) => {
      if (json.length + 200 > this.o.maxMessageBytes) {
        this.m.dropped.inc({ reason: 'too_large' });
        if (link) this.rewrite = true;
        return;
      }
      if (chunk.bytes + json.length + 200 > this.o.maxMessageBytes) {
        chunks.push(chunk);
        chunk = { parts: [], alarms: [], links: [], bytes: 0 };
      }
      chunk[into].push(json);
      chunk.bytes += json.length + 1;
      if (link) chunk.links.push(link);
    };
    for (const c of changes) add(JSON.stringify(c), 'parts', c.t === 'link' ? c : null);
    for (const a of alarms) add(JSON.stringify(a), 'alarms', null);
    if (chunk.parts.length > 0 || chunk.alarms.length > 0 || chunks.length === 0) chunks.push(chunk);
    if (chunks.length === 1 && chunk.parts.length === 0 && chunk.alarms.length === 0 && notices.length === 0 && !rewrite) return;

    const linksKey = this.key('links', this.nodeId);
    for (let i = 0; i < chunks.length; i++) {
      const ch = chunks[i]!;
      const s = ++this.seq;
      const hello = rewrite && i === 0;
      const notice = i === 0 && notices.length > 0 ? `,"x":${JSON.stringify(notices)}` : '';
      const body = `{"n":${JSON.stringify(this.nodeId)},"i":"${this.incarnation}","s":${s}${ch.parts.length ? `,"c":[${ch.parts.join(',')}]` : ''}${ch.alarms.length ? `,"a":[${ch.alarms.join(',')}]` : ''}${hello ? ',"h":1' : ''}${notice}}`;
      const tx = this.cmd.multi();
      if (hello) {
        tx.del(linksKey);
        const all: string[] = [];
        for (const [hub, region, n] of this.o.live.localLinks()) all.push(hub, `${n}|${region}|${this.o.now()}`);
        if (all.length > 0) tx.hset(linksKey, ...all);
      } else {
        for (const l of ch.links) {
          if (l.connections > 0) tx.hset(linksKey, l.hub, `${l.connections}|${l.region}|${l.at}`);
          else tx.hdel(linksKey, l.hub);
        }
      }
      // `_inc` only with a whole record: after Redis lost its data, a change written before this node noticed
      // (its next heartbeat) leaves a partial record without it, which readers do not take for the node's links.
      if (hello) tx.hset(linksKey, '_inc', this.incarnation, '_seq', String(s));
      else tx.hset(linksKey, '_seq', String(s));
      tx.publish(this.channel, body);
      try {
        const res = await tx.exec();
        const failed = res?.find(([err]) => err !== null);
        if (!res || failed) throw failed?.[0] ?? new Error('transaction discarded');
        this.m.published.inc();
        this.m.publishedBytes.inc(Buffer.byteLength(body));
        this.m.publishedChanges.inc(ch.parts.length + ch.alarms.length);
      } catch (err) {
        // Lost: the receivers see the gap in the sequence; the link record is rewritten whole with the next flush.
        this.m.dropped.inc({ reason: 'publish_failed' }, ch.parts.length + ch.alarms.length);
        this.rewrite = true;
        this.log.warn({ err, changes: ch.parts.length, alarms: ch.alarms.length }, 'cluster bus: publishing live-state changes failed; the link record is rewritten once Redis answers');
      }
    }
  }

  private async heartbeat(): Promise<void> {
    if (this.closed) return;
    const hb = this.key('node', this.nodeId);
    const [[, before]] = (await this.cmd.multi().set(hb, this.incarnation, 'PX', this.o.heartbeatTtlMs, 'GET').sadd(this.key('nodes'), this.nodeId).exec()) as [[Error | null, string | null], unknown];
    if (before !== this.incarnation) {
      // First beat, or the key expired (paused, Redis restarted or unreachable): the others dropped our record.
      if (before !== null) this.log.warn({ before }, 'cluster bus: another incarnation of this node id had a heartbeat');
      this.rewrite = true;
      await this.flush();
    }
  }

  // ---- receiving ----

  private receive(data: Buffer): void {
    if (this.closed) return;
    if (data.length > this.o.maxMessageBytes + 4096) {
      this.m.dropped.inc({ reason: 'too_large' });
      return;
    }
    // This node's own messages come back on the channel: recognised by their first bytes, never parsed.
    if (data.subarray(0, this.ownHead.length).equals(this.ownHead)) return;
    // One node's flood cannot take this one's CPU: over its byte budget, a message is dropped unparsed.
    const sender = senderOf(data);
    if (sender !== null && !this.withinBudget(sender, data.length)) {
      this.m.dropped.inc({ reason: 'rate_limited' });
      if (this.peers.has(sender)) void this.resync(sender);
      this.possibleLoss('rate_limited');
      return;
    }
    let m: WireMessage;
    try {
      m = JSON.parse(data.toString('utf8')) as WireMessage;
      if (typeof m.n !== 'string' || typeof m.i !== 'string' || typeof m.s !== 'number') throw new Error('not a bus message');
      // Every list the loops below walk, checked here: one malformed message (a bug, a mixed-version
      // rolling upgrade) once threw out of this handler and ended every node at once (red-team H7).
      if (m.c !== undefined && !(Array.isArray(m.c) && m.c.every(isChange))) throw new Error('changes (c) are not a list of changes');
      if (m.a !== undefined && !(Array.isArray(m.a) && m.a.every(isObject))) throw new Error('alarms (a) are not a list of objects');
    } catch (err) {
      this.m.dropped.inc({ reason: 'malformed' });
      this.log.warn({ err }, 'cluster bus: a malformed message ignored');
      return;
    }
    if (m.n === this.nodeId) return;
    const now = this.o.now();
    let peer = this.peers.get(m.n);
    if (!peer) {
      peer = { incarnation: m.i, seq: 0, loading: false, waiting: [], readAt: 0 };
      this.peers.set(m.n, peer);
      void this.resync(m.n);
    }
    // Readings, statuses, acknowledgements and alarms are newest-wins or idempotent: applied at once, whatever the order.
    for (const c of m.c ?? []) if (c.t !== 'link') this.applyChange(m.n, c);
    for (const a of m.a ?? []) this.emitAlarm(a);
    for (const kind of Array.isArray(m.x) ? m.x.slice(0, 16) : []) {
      for (const fn of this.noticeListeners) {
        try {
          fn(String(kind));
        } catch (err) {
          this.log.warn({ err }, 'cluster bus: a notice listener failed');
        }
      }
    }
    if (peer.loading) {
      if (peer.waiting.length < MAX_WAITING) peer.waiting.push(m);
      else void this.resync(m.n, true);
      return;
    }
    if (m.h === 1 || m.i !== peer.incarnation || m.s !== peer.seq + 1) {
      // A gap in a known incarnation's sequence: messages were lost (not a start, a hello or a restart).
      if (m.h !== 1 && m.i === peer.incarnation && peer.seq > 0) this.possibleLoss('gap');
      peer.waiting.push(m);
      void this.resync(m.n);
      return;
    }
    this.applyLinks(m.n, m);
    peer.seq = m.s;
  }

  /** Token bucket in bytes per sending node (the map bounded: ids come from messages). */
  private withinBudget(node: string, bytes: number): boolean {
    const now = this.o.now();
    const rate = this.o.maxBytesPerSecondPerNode;
    let b = this.budgets.get(node);
    if (!b) {
      if (this.budgets.size >= MAX_BUDGETS) this.budgets.clear();
      this.budgets.set(node, (b = { tokens: rate, at: now }));
    }
    b.tokens = Math.min(rate, b.tokens + ((now - b.at) * rate) / 1000);
    b.at = now;
    if (bytes > b.tokens) return false;
    b.tokens -= bytes;
    return true;
  }

  private applyLinks(node: string, m: WireMessage): void {
    for (const c of m.c ?? []) if (c.t === 'link') this.applyChange(node, c);
  }

  private applyChange(node: string, c: LiveChange): void {
    try {
      this.o.live.applyRemote(node, c);
      this.o.onRemoteChange?.(node, c);
      this.m.received.inc();
    } catch (err) {
      this.m.dropped.inc({ reason: 'malformed' });
      this.log.warn({ err, node, change: c.t }, 'cluster bus: a change from another node could not be applied');
    }
  }

  private emitAlarm(a: AlarmChange): void {
    this.m.received.inc();
    for (const fn of this.alarmListeners) {
      try {
        fn(a);
      } catch (err) {
        this.log.warn({ err }, 'cluster bus: an alarm listener failed');
      }
    }
  }

  private resyncAll(): void {
    for (const node of this.peers.keys()) void this.resync(node, true);
    void this.checkNodes().catch(() => undefined);
    this.possibleLoss('resubscribed');
  }

  /** Changes that do not come back by themselves may have been lost (alarm pushes, mode acknowledgements): hear of it. */
  onPossibleLoss(fn: () => void): () => void {
    this.lossListeners.add(fn);
    return () => void this.lossListeners.delete(fn);
  }

  /**
   * Messages of another node may be lost: the stored state is read again (`onResync`) and listeners
   * hear of it (the live feed makes consoles read the alarms again) — at most once per
   * `lossNoticeMs`, the last notice of a burst kept for the end of the interval.
   */
  private possibleLoss(why: string): void {
    if (this.closed) return;
    const now = this.o.now();
    if (now < this.lossNoticeAt + this.o.lossNoticeMs) {
      this.lossTimer ??= setTimeout(() => {
        this.lossTimer = null;
        this.possibleLoss(why);
      }, this.lossNoticeAt + this.o.lossNoticeMs - now);
      this.lossTimer.unref();
      return;
    }
    this.lossNoticeAt = now;
    this.log.warn({ why }, 'cluster bus: messages from another node may have been lost; reading the stored state again');
    void this.o.onResync?.().catch((err: unknown) => this.log.warn({ err }, 'cluster bus: reading the stored state again failed'));
    for (const fn of this.lossListeners) {
      try {
        fn();
      } catch (err) {
        this.log.warn({ err }, 'cluster bus: a loss listener failed');
      }
    }
  }

  /**
   * Reads a node's link record and makes it the node's part of the link view here; its messages
   * that arrived meanwhile are applied after it if they are newer (`_seq`). A node without a
   * heartbeat is dead: its hubs are shown offline here.
   */
  private async resync(node: string, force = false): Promise<void> {
    let peer = this.peers.get(node);
    if (!peer) {
      peer = { incarnation: '', seq: 0, loading: false, waiting: [], readAt: 0 };
      this.peers.set(node, peer);
    }
    if (peer.loading && !force) return;
    peer.loading = true;
    this.m.resyncs.inc();
    try {
      const res = await this.cmd.multi().get(this.key('node', node)).hgetall(this.key('links', node)).exec();
      if (!res || res.some(([err]) => err)) throw res?.find(([err]) => err)?.[0] ?? new Error('transaction discarded');
      // Dropped or replaced while reading (e.g. its heartbeat found missing meanwhile): that decision is newer.
      if (this.peers.get(node) !== peer) return;
      const alive = res[0]![1] as string | null;
      const record = res[1]![1] as Record<string, string>;
      if (alive === null) {
        if (this.o.now() >= this.graceUntil) this.dropNode(node);
        else if (this.peers.get(node) === peer) this.peers.delete(node); // just reconnected: its heartbeat may not be back yet
        return;
      }
      if (record._inc !== alive) {
        // Alive, but its record is not (yet) of this incarnation (Redis came back empty, the node is
        // rewriting it): what is shown stays until its hello or the next check reads it again.
        if (this.peers.get(node) === peer) this.peers.delete(node);
        return;
      }
      const incarnation = alive;
      const seq = Number(record._seq ?? 0);
      const now = this.o.now();
      const shown = this.o.live.remoteLinksOf(node);
      for (const [hub, value] of Object.entries(record)) {
        if (hub.startsWith('_')) continue;
        const [n, region, at] = value.split('|');
        const connections = Number(n);
        if (!Number.isSafeInteger(connections) || connections < 0) continue;
        shown.delete(hub);
        this.o.live.setRemoteConnections(node, hub, region ?? '', connections, Number(at) || now);
      }
      for (const hub of shown.keys()) this.o.live.setRemoteConnections(node, hub, this.o.live.hubs.get(hub)?.region ?? '', 0, now);
      peer.incarnation = incarnation;
      peer.seq = seq;
      peer.readAt = this.o.now();
      const waiting = peer.waiting.splice(0);
      peer.loading = false;
      for (const m of waiting) {
        if (m.i !== incarnation || m.s <= peer.seq) continue;
        this.applyLinks(node, m); // newer than the record (in order: one node's messages arrive in order)
        peer.seq = m.s;
      }
    } catch (err) {
      this.log.warn({ err, node }, 'cluster bus: reading another node\'s link record failed; tried again at the next check');
      this.peers.delete(node); // unknown again: the next message or check reads it
    } finally {
      peer.loading = false;
    }
  }

  /** A dead node: its hubs shown offline here (unless held elsewhere), its record deleted if it is still dead. */
  private dropNode(node: string): void {
    const now = this.o.now();
    const shown = this.o.live.remoteLinksOf(node);
    for (const hub of shown.keys()) this.o.live.setRemoteConnections(node, hub, this.o.live.hubs.get(hub)?.region ?? '', 0, now);
    this.peers.delete(node);
    if (shown.size > 0) this.log.warn({ node, hubs: shown.size }, 'cluster bus: node without heartbeat; its hubs are shown offline');
    void (this.cmd.eval(DROP_DEAD, 3, this.key('node', node), this.key('links', node), this.key('nodes'), node) as Promise<unknown>)
      .catch((err: unknown) => this.log.debug({ err, node }, 'cluster bus: deleting a dead node\'s record failed'));
  }

  /** Every second: which nodes have a heartbeat. Dead ones are dropped; live ones not known here are read. */
  private async checkNodes(): Promise<void> {
    if (this.closed) return;
    const members = await this.cmd.smembers(this.key('nodes'));
    const ids = [...new Set([...members, ...this.peers.keys()])].filter((n) => n !== this.nodeId);
    const beats = ids.length > 0 ? await this.cmd.mget(...ids.map((n) => this.key('node', n))) : [];
    const alive = new Set([this.nodeId]);
    const now = this.o.now();
    const reads: Promise<void>[] = [];
    ids.forEach((node, i) => {
      const incarnation = beats[i] ?? null;
      const peer = this.peers.get(node);
      if (incarnation === null) {
        if (now >= this.graceUntil) this.dropNode(node);
        return;
      }
      alive.add(node);
      // Unknown, another incarnation, or not read for `reconcileMs`: a lost last message of a quiet node shows no gap.
      if (!peer || (!peer.loading && (peer.incarnation !== incarnation || now - peer.readAt >= this.o.reconcileMs))) reads.push(this.resync(node));
    });
    this.liveNodes = alive;
    this.m.nodes.set(alive.size);
    await Promise.all(reads); // at start: the node shows every live node's hubs before it serves
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isChange(v: unknown): boolean {
  return isObject(v) && typeof v.t === 'string';
}
