import crypto from 'node:crypto';
import net from 'node:net';
import mqtt, { type MqttClient } from 'mqtt';
import { hubClientId, topics, type HubStatus } from '../contract/index.ts';
import { backoffDelayMs } from '../shared/backoff.ts';
import type { Logger } from '../shared/logger.ts';
import type { Outbox, OutboxEntry } from './outbox/outbox.ts';

/**
 * The hub's link to the cloud broker. It sends the outbox in priority order with up to `window`
 * messages in flight and removes each message only when the cloud acknowledged it (PUBACK).
 *
 * - Reconnects with jittered exponential back-off ("full jitter": a random delay up to
 *   min(ceiling, 0.5 s × 2^attempt)), so a region of hubs returning after an outage spreads out.
 * - Several cloud URLs (a cluster's nodes, issue 15): each connection lost or refused moves the next
 *   attempt to the next URL, round the list, with the same back-off (reset by a successful connect).
 *   Each hub starts at its own place in the list (a hash of the hub id), so the hubs of a region are
 *   spread over the nodes instead of all landing on the first. mqtt.js's own `servers` rotation is
 *   not used: it rotates only inside mqtt.js's reconnect loop, which has a fixed period and no
 *   jitter (this uplink runs its own, shared/backoff.ts), and it takes host/port/protocol only — no
 *   WebSocket path — where a URL here is used exactly as a single CLOUD_MQTT_URL is.
 * - Birth and death: a retained `hub.status` "online" (with outbox depth and oldest unsent age) on
 *   connect and every `statusIntervalMs`; a retained "offline" last will.
 * - Replay is marked: a message accepted while the link was down, or older than `historicalAfterMs`
 *   when sent, carries `"historical": true` and its original timestamp.
 * - Poison isolation: messages in flight when the link drops become suspects and are re-sent one at a
 *   time. A suspect is quarantined only after `maxSoloFailures` explicit refusals by the cloud
 *   (issue 12; see `isRefusal`), and the rest flows on. Link drops and cloud restarts never count
 *   against a message.
 *
 * What counts as an explicit refusal. The cloud speaks MQTT 3.1.1 to hubs, which has no negative
 * PUBACK: the cloud refuses a publish by closing the connection (a packet over its size limit is cut
 * at its header; a publish its policy denies is closed in authorizePublish), at once. So a close is a
 * refusal of the suspect only when all of these hold:
 *  1. the suspect was alone in flight (so the close can only be about it);
 *  2. the cloud had proven itself up and storing on this connection: it acknowledged the hub status
 *     published on connect (which goes through its store) before the suspect was sent — suspects
 *     wait for that proof, so a cloud whose store is stalled, or that is restarting, is never sent one;
 *  3. the connection ended within `refusalWindowMs` of the suspect being sent (a refusal is
 *     immediate; a cut link or a stalled cloud ends a connection later, by keep-alive or restart).
 * Anything else is a link drop: the message stays in the outbox and is sent again.
 * Accepted risk: a link that breaks within that window after the proof, three times in a row for the
 * same message, quarantines it; quarantined messages are listed and can be re-sent by hub staff
 * (`GET /quarantine`, `POST /quarantine/:seq/resend`).
 */
export interface UplinkOptions {
  /** The cloud broker's URL, or several (a cluster's nodes): see the class comment. */
  urls: readonly string[];
  username: string;
  password: string;
  ca?: Buffer;
  region: string;
  hubId: string;
  agent: string;
  window: number;
  backoffMaxMs: number;
  historicalAfterMs: number;
  statusIntervalMs: number;
  outbox: Outbox;
  logger: Logger;
  /** Called for every message from the cloud (commands, region mode, acks). */
  onMessage: (topic: string, payload: Buffer) => void;
  maxSoloFailures?: number;
  /** A storage (SQLite) error inside one of the uplink's timers or socket handlers: reported, never thrown [issue 12]. */
  onStorageError?: (where: string, err: unknown) => void;
  /** A close this soon after a lone suspect was sent is the cloud refusing it (see above). Default 1 s. */
  refusalWindowMs?: number;
  /**
   * With several URLs: after this long connected to another node than its own (the first it tries,
   * `firstCloudUrlIndex`), plus up to as much again at random, the agent moves back to its own if
   * that node accepts TCP connections again — so a cluster's hubs spread out again after a failover
   * instead of staying piled on the survivors. 0 or absent: never.
   */
  homeReturnMs?: number;
  now?: () => number;
}

export interface UplinkStats {
  connected: boolean;
  /** The cloud URL of the current connection, or of the attempt under way or next. */
  url: string;
  since: number | null;
  connects: number;
  lastError: string | null;
  sent: number;
  acked: number;
  /** Of `acked`: sent marked `"historical": true` (accepted while the link was down, or old when sent). */
  ackedHistorical: number;
  /**
   * Of `acked`: kept through an outage — accepted while the link was down, or waiting in the outbox
   * (unsent or unacknowledged) when it went down — and acknowledged on a later connection.
   */
  ackedReplayed: number;
  inFlight: number;
  quarantined: number;
  /** Closes by the cloud in answer to a lone suspect (explicit refusals). */
  refusals: number;
  /** Moves back to the hub's own node after a failover (`homeReturnMs`). */
  homeReturns: number;
  /** Checks of its own node that found it still unreachable (the agent stayed where it was). */
  homeChecksFailed: number;
}

const MARKABLE = /\/(telemetry|event|cmd-ack|mode-ack)$/;

export class Uplink {
  private client: MqttClient | null = null;
  private readonly inflight = new Map<number, OutboxEntry>();
  private solo: number | null = null;
  /** When the lone suspect was sent. */
  private soloSentAt = 0;
  /** The cloud acknowledged this connection's status publish: it is up and storing. */
  private proven = false;
  private attempt = 0;
  /** Index into `urls` of the current (or next) connection. */
  private urlIndex: number;
  /** The hub's own node: where it starts (see `homeReturnMs`). */
  private readonly homeIndex: number;
  private homeTimer: NodeJS.Timeout | null = null;
  /** Moving back to the home node: nothing new is sent until the move is done or given up. */
  private returning = false;
  private stopped = false;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private statusTimer: NodeJS.Timeout | null = null;
  /** When the link last went down (at start: the link is down until the first connection). */
  private linkLostAt: number | null = null;
  private ackedSeqs: number[] = [];
  private removeScheduled = false;
  private readonly now: () => number;
  private readonly log: Logger;
  private readonly s: Omit<UplinkStats, 'url'> = { connected: false, since: null, connects: 0, lastError: null, sent: 0, acked: 0, ackedHistorical: 0, ackedReplayed: 0, inFlight: 0, quarantined: 0, refusals: 0, homeReturns: 0, homeChecksFailed: 0 };

  constructor(private readonly o: UplinkOptions) {
    if (o.urls.length === 0) throw new Error('Uplink needs at least one cloud URL');
    this.urlIndex = firstCloudUrlIndex(o.hubId, o.urls.length);
    this.homeIndex = this.urlIndex;
    this.now = o.now ?? Date.now;
    this.log = o.logger.child({ component: 'uplink' });
  }

  /** Runs an outbox operation at an event boundary: a storage error is reported, not thrown. */
  private guard<T>(where: string, fn: () => T): T | undefined {
    try {
      return fn();
    } catch (err) {
      if (this.o.onStorageError) this.o.onStorageError(where, err);
      else this.log.error({ err, where }, 'uplink storage error');
      return undefined;
    }
  }

  start(): void {
    // The link is down until the first connection: what the outbox holds now (an earlier run's
    // unacknowledged messages) was kept through that outage too.
    this.linkLostAt = this.now();
    this.o.outbox.setInFlightSource(() => new Set([...this.inflight.keys(), ...this.ackedSeqs])); // acked, removal pending: not droppable either
    this.open();
  }

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  stats(): UplinkStats {
    return { ...this.s, connected: this.connected, url: this.url, inFlight: this.inflight.size };
  }

  private get url(): string {
    return this.o.urls[this.urlIndex]!;
  }

  private status(state: 'online' | 'offline'): HubStatus {
    // Reading the age may fail on a broken disk; the depth is kept in memory.
    const oldest = this.guard('uplink_status', () => this.o.outbox.stats().oldestAcceptedAt) ?? null;
    return {
      v: 1, type: 'hub.status', hub: this.o.hubId, state, ts: this.now(), agent: this.o.agent,
      outboxDepth: this.o.outbox.depth, oldestUnsentAgeS: oldest === null ? 0 : Math.max(0, Math.round((this.now() - oldest) / 1000)),
    };
  }

  private open(): void {
    if (this.stopped) return;
    const statusTopic = topics.status(this.o.region, this.o.hubId);
    const url = this.url;
    const client = mqtt.connect(url, {
      username: this.o.username, password: this.o.password, ca: this.o.ca, clientId: hubClientId(this.o.hubId, 'edge'),
      protocolVersion: 4, clean: true, keepalive: 30, connectTimeout: 10_000, reconnectPeriod: 0,
      will: { topic: statusTopic, payload: Buffer.from(JSON.stringify(this.status('offline'))), qos: 1, retain: true },
    });
    this.client = client;
    client.on('connect', () => {
      this.attempt = 0;
      this.s.connects++;
      this.s.since = this.now();
      this.s.lastError = null;
      this.log.info({ url, outboxDepth: this.o.outbox.depth }, 'connected to the cloud');
      client.subscribe(topics.hubSubscriptions(this.o.region, this.o.hubId), { qos: 1 }, (err) => {
        if (err) this.log.error({ err }, 'subscribing to commands and mode failed');
      });
      this.proven = false;
      this.publishStatus();
      this.statusTimer = setInterval(() => this.publishStatus(), this.o.statusIntervalMs);
      this.scheduleReturnHome();
      this.pump();
    });
    client.on('message', (topic, payload) => {
      try {
        this.o.onMessage(topic, payload);
      } catch (err) {
        this.log.error({ err, topic }, 'handling a message from the cloud failed');
      }
    });
    client.on('error', (err) => {
      this.s.lastError = err.message;
      this.log.debug({ err: err.message }, 'uplink error');
    });
    client.on('close', () => {
      if (this.client !== client) return;
      this.client = null;
      client.end(true);
      this.guard('uplink_link_down', () => this.onLinkDown());
      if (this.stopped) return;
      // Lost or refused: the next attempt goes to the next node (a node that is down, or restarting,
      // is not tried again before the others).
      this.urlIndex = (this.urlIndex + 1) % this.o.urls.length;
      const delay = backoffDelayMs({ ...UPLINK_BACKOFF, maxMs: this.o.backoffMaxMs }, this.attempt);
      this.attempt++;
      this.log.info({ lost: url, next: this.url, retryInMs: Math.round(delay), outboxDepth: this.o.outbox.depth }, 'cloud link down; reconnecting');
      this.reconnectTimer = setTimeout(() => this.guard('uplink_connect', () => this.open()), delay);
    });
  }

  private onLinkDown(): void {
    if (this.statusTimer) clearInterval(this.statusTimer);
    this.statusTimer = null;
    if (this.homeTimer) clearTimeout(this.homeTimer);
    this.homeTimer = null;
    this.s.since = this.now();
    this.linkLostAt = this.s.since;
    // In-memory state first: a storage error below must not leave the uplink believing a message is
    // still in flight.
    const seqs = [...this.inflight.keys()];
    this.inflight.clear();
    const solo = this.solo;
    const refused = solo !== null && seqs.length === 1 && seqs[0] === solo && this.now() - this.soloSentAt <= (this.o.refusalWindowMs ?? 1000);
    this.solo = null;
    this.proven = false;
    this.flushRemovals();
    if (refused) {
      this.s.refusals++;
      const attempts = this.o.outbox.recordFailedAttempt(solo);
      if (attempts > (this.o.maxSoloFailures ?? 3)) {
        this.o.outbox.quarantine(solo, `the cloud closed the connection in answer to this message ${attempts - 1} times (refused)`);
        this.s.quarantined++;
        this.log.error({ seq: solo }, 'message refused by the cloud moved aside (quarantine); the rest of the outbox flows on');
      } else {
        this.log.warn({ seq: solo, attempts: attempts - 1 }, 'the cloud closed the connection in answer to a message; it is tried again alone');
      }
    } else if (seqs.length > 0) {
      this.o.outbox.markSuspect(seqs); // a link drop: sent again, one at a time, never counted against them
    }
  }

  /**
   * New entries are waiting. Many arrive per tick (a burst from devices, a batch of PUBACKs), so
   * the outbox is read once per tick, not once per message.
   */
  requestPump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }
  private pumpScheduled = false;

  /** Sends what the window allows. */
  pump(): void {
    this.guard('uplink_send', () => this.pumpNow());
  }

  private pumpNow(): void {
    const client = this.client;
    if (!client?.connected || this.solo !== null || this.returning) return;
    const room = this.o.window - this.inflight.size;
    if (room <= 0) return;
    // Acknowledged entries whose removal is still pending (flushRemovals runs on the next tick) are
    // still in the outbox: a pump in between (requestPump after a new append) must not send them again.
    const entries = this.o.outbox.next(room, new Set([...this.inflight.keys(), ...this.ackedSeqs]));
    const suspect = entries.find((e) => e.attempts > 0);
    if (suspect) {
      // Send a suspect alone, so that if the cloud refuses it we know which message it was — and only
      // once the cloud has proven itself up on this connection (see the class comment).
      if (this.inflight.size === 0 && this.proven) {
        this.solo = suspect.seq;
        this.soloSentAt = this.now();
        this.send(client, suspect);
      }
      return;
    }
    for (const e of entries) this.send(client, e);
  }

  private send(client: MqttClient, e: OutboxEntry): void {
    this.inflight.set(e.seq, e);
    this.s.sent++;
    let payload = e.payload;
    const historical = (e.offline || this.now() - e.acceptedAt > this.o.historicalAfterMs) && MARKABLE.test(e.topic);
    // Still in the outbox after the link last went down: it was there (accepted, not yet acknowledged) then.
    const replayed = e.offline || (this.linkLostAt !== null && e.acceptedAt <= this.linkLostAt);
    if (historical) payload = markHistorical(e.payload);
    client.publish(e.topic, payload, { qos: 1 }, (err) => {
      if (err || this.client !== client || !this.inflight.has(e.seq)) return; // re-sent after reconnect
      this.inflight.delete(e.seq);
      if (this.solo === e.seq) this.solo = null;
      this.proven = true; // the cloud acknowledged a message on this connection: it is up and storing
      this.s.acked++;
      if (historical) this.s.ackedHistorical++;
      if (replayed) this.s.ackedReplayed++;
      this.ackedSeqs.push(e.seq);
      if (!this.removeScheduled) {
        this.removeScheduled = true;
        setImmediate(() => this.flushRemovals());
      }
    });
  }

  private flushRemovals(): void {
    this.removeScheduled = false;
    const seqs = this.ackedSeqs.splice(0);
    if (seqs.length > 0) {
      try {
        this.o.outbox.remove(seqs);
      } catch (err) {
        // Still acknowledged, still excluded from sending: removed on a later try.
        this.ackedSeqs.unshift(...seqs);
        this.o.onStorageError?.('uplink_remove', err);
        if (!this.removeScheduled && !this.stopped) {
          this.removeScheduled = true;
          setTimeout(() => this.flushRemovals(), 1000).unref();
        }
      }
    }
    this.pump();
  }

  /** Publishes a message directly (not through the outbox), if connected. */
  publishNow(topic: string, payload: string, retain = false): void {
    this.client?.publish(topic, payload, { qos: 1, retain });
  }

  /**
   * The retained "online" status. Its PUBACK (the cloud stores statuses) is the proof that the cloud
   * is up and storing on this connection, which a lone suspect waits for (see the class comment);
   * it is published on connect and every `statusIntervalMs`, so a cloud that was stalled proves
   * itself again once it recovers.
   */
  publishStatus(): void {
    const client = this.client;
    if (!client?.connected) return;
    client.publish(topics.status(this.o.region, this.o.hubId), JSON.stringify(this.status('online')), { qos: 1, retain: true }, (err) => {
      if (err || this.client !== client || this.proven) return;
      this.proven = true;
      this.pump();
    });
  }

  private scheduleReturnHome(): void {
    const every = this.o.homeReturnMs ?? 0;
    if (every <= 0 || this.urlIndex === this.homeIndex || this.stopped) return;
    if (this.homeTimer) clearTimeout(this.homeTimer);
    // Spread over [every, 2·every): the hubs of a node that came back do not all move in one burst.
    this.homeTimer = setTimeout(() => {
      this.homeTimer = null;
      void this.returnHome().catch((err: unknown) => {
        this.log.warn({ err }, 'moving back to its own cloud node failed');
        if (this.client?.connected) this.scheduleReturnHome();
      });
    }, every * (1 + Math.random()));
  }

  /**
   * Moves the link back to the hub's own node: once nothing is in flight (new sends wait meanwhile,
   * at most 5 s), if the node accepts a TCP connection, the current connection is ended cleanly
   * (DISCONNECT: the cloud publishes no last will, so no "offline" status) and the next one opened
   * there at once. If that connection then fails, the usual failover takes over from there.
   */
  private async returnHome(): Promise<void> {
    const client = this.client;
    if (this.stopped || !client?.connected || this.urlIndex === this.homeIndex) return;
    const home = this.o.urls[this.homeIndex]!;
    if (!(await reachable(home, 3_000))) {
      this.s.homeChecksFailed++;
      this.log.debug({ home }, 'own cloud node still unreachable; staying');
      if (this.client === client) this.scheduleReturnHome();
      return;
    }
    this.returning = true;
    try {
      // Nothing unacknowledged on the link, the status publishes included: a clean end then need not
      // wait for any PUBACK (mqtt.js's end() waits for them, forever if the link drops meanwhile).
      const quiet = () => this.inflight.size === 0 && this.solo === null && Object.keys(client.outgoing).length === 0;
      const quietBy = performance.now() + 5_000;
      while (this.client === client && client.connected && !quiet() && performance.now() < quietBy) {
        await new Promise((r) => setTimeout(r, 20));
      }
      if (this.stopped || this.client !== client || !client.connected || !quiet()) {
        if (this.client === client) this.scheduleReturnHome();
        return;
      }
      const from = this.url;
      this.client = null; // its close is a move, not a lost link
      if (this.statusTimer) clearInterval(this.statusTimer);
      this.statusTimer = null;
      this.urlIndex = this.homeIndex;
      this.attempt = 0;
      this.s.homeReturns++;
      this.log.info({ from, to: home }, 'moving back to its own cloud node');
      // DISCONNECT, so the cloud publishes no last will; bounded, should the link break meanwhile.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          client.stream?.destroy();
          resolve();
        }, 3_000);
        client.end(false, {}, () => {
          clearTimeout(timer);
          resolve();
        });
      });
      if (!this.stopped) this.open();
    } finally {
      this.returning = false;
    }
  }

  /** Graceful stop: announces "offline" (retained) and disconnects. Unsent messages stay in the outbox. */
  async close(): Promise<void> {
    this.stopped = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.homeTimer) clearTimeout(this.homeTimer);
    if (this.statusTimer) clearInterval(this.statusTimer);
    const client = this.client;
    this.client = null;
    this.flushRemovals();
    if (client?.connected) {
      await client.publishAsync(topics.status(this.o.region, this.o.hubId), JSON.stringify(this.status('offline')), { qos: 1, retain: true }).catch(() => undefined);
      await client.endAsync();
    } else {
      client?.end(true);
    }
  }
}

/**
 * Where in a list of `count` cloud URLs a hub starts: a hash of its id (stable across restarts, spread
 * evenly over the list), so the hubs of a region do not all connect to the first node.
 */
/**
 * The uplink's reconnect back-off (the ceiling is UPLINK_BACKOFF_MAX_S): 0.5 s doubling, "equal jitter"
 * — a delay uniform in [d/2, d). Issue 17 (reconnect storm): with "full jitter" ([0, d)) a hub whose
 * tries are refused at once while the cloud restarts can draw near-zero delays, burn through attempts
 * and climb to the 30 s ceiling within a second, so after a 1 s outage the last of 13,800 hubs came
 * back ~16 s later (simulated, no cloud cost); with equal jitter a hub's attempt count follows the time
 * it has been cut off (attempt k not before 0.25 s · (2^k − 1)), and the last one is back ~4 s later,
 * still spread over half of each window.
 */
export const UPLINK_BACKOFF = { initialMs: 500, jitter: 'equal' } as const;

/** Whether a broker URL's host accepts a TCP connection within `timeoutMs` (no MQTT spoken). */
function reachable(url: string, timeoutMs: number): Promise<boolean> {
  const u = new URL(url);
  const defaults: Record<string, number> = { 'mqtt:': 1883, 'mqtts:': 8883, 'ws:': 80, 'wss:': 443 };
  const port = Number(u.port || defaults[u.protocol]);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export function firstCloudUrlIndex(hubId: string, count: number): number {
  if (count <= 1) return 0;
  return crypto.createHash('sha256').update(hubId).digest().readUInt32BE(0) % count;
}

const CLOSE_BRACE = 0x7d;
const OPEN_BRACE = 0x7b;
const HISTORICAL_FIELD = Buffer.from(',"historical":true}');
const isJsonSpace = (b: number) => b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d;

/**
 * Whether a message still fits within `maxBytes` once marked `"historical": true` (18 bytes more, or
 * re-serialised on the slow path): a message replayed after an outage carries the mark, and the cloud
 * refuses a payload over the same limit — acknowledged here, it was then lost to a dead letter there
 * (found in review). Only a payload within ~20 bytes of the limit is marked to find out.
 */
export function fitsWhenMarked(topic: string, payload: Buffer, maxBytes: number): boolean {
  if (payload.length + HISTORICAL_FIELD.length <= maxBytes || !MARKABLE.test(topic)) return true;
  try {
    return markHistorical(payload).length <= maxBytes;
  } catch {
    return false;
  }
}

/**
 * The payload with `"historical": true` added. Payloads in the outbox are validated JSON objects, so
 * the field is spliced in before the closing brace instead of parsing and re-serialising the whole
 * message (a replay sends every message of the backlog this way). A payload that already names the
 * field, or does not end as expected, takes the slow, general path.
 */
export function markHistorical(payload: Buffer): Buffer {
  let end = payload.length - 1;
  while (end >= 0 && isJsonSpace(payload[end]!)) end--;
  let before = end - 1;
  while (before >= 0 && isJsonSpace(payload[before]!)) before--;
  if (end < 1 || payload[end] !== CLOSE_BRACE || payload[before] === OPEN_BRACE || payload.includes('"historical"')) {
    return Buffer.from(JSON.stringify({ ...JSON.parse(payload.toString('utf8')), historical: true }));
  }
  return Buffer.concat([payload.subarray(0, end), HISTORICAL_FIELD]);
}
