import crypto from 'node:crypto';
import type { IPublishPacket } from 'mqtt-packet';
import { hubClientId, topics } from '../../contract/index.ts';
import { firstCloudUrlIndex } from '../../edge/uplink.ts';
import { backoffDelayMs, type Backoff } from '../../shared/backoff.ts';
import { serveWorker } from '../lib/procs.ts';
import { epochMs, RawMqtt } from '../lib/mqtt-raw.ts';

/**
 * Load generator (a child process, see `startWorker`): up to ~19,000 hub connections that behave on
 * the wire like edge agents (edge/uplink.ts, edge/agent.ts) —
 *   CONNECT clean session, keepalive 30 s, client id `edge-<hub>`, last will "offline" (retained, QoS 1);
 *   SUBSCRIBE QoS 1 to `topics.hubSubscriptions` (its commands, its acks, the region mode);
 *   PUBLISH its birth status "online" (retained, QoS 1);
 *   on a region mode message with a higher version: PUBLISH `hub.mode-ack` (QoS 1) with the payload the
 *   agent builds (id `agent-<boot>-<seq>`, ts, hub, version, mode, source "cloud", reason).
 * A PINGREQ every 25 s per connection (spread over time) keeps them alive. Times are epoch ms
 * (`performance.timeOrigin + performance.now()`), comparable with the parent's clock.
 *
 * With `reconnect` (the reconnect benchmark), a hub whose connection ends reconnects as the edge
 * agent's uplink does (edge/uplink.ts): after a delay from the shared back-off formula
 * (shared/backoff.ts) with the agent's parameters, the attempt counter growing with every failed try
 * and reset at CONNACK, a try given up after the agent's connect timeout (10 s); once back it
 * subscribes and publishes its birth status again, and keeps the mode version it had (the agent's is
 * on disk), so it acknowledges only a newer one — as the agent does. With `ports` (several cloud
 * nodes), a hub starts at the node its id hashes to and moves to the next one after every lost or
 * refused connection — the agent's list of cloud URLs (edge/uplink.ts, firstCloudUrlIndex).
 */
export type HubClientsRequest =
  | {
      op: 'connect';
      port: number;
      /** Several cloud nodes' ports (used instead of `port`): see above. */
      ports?: number[];
      region: string;
      hubs: string[];
      /** Password per hub; a hub missing here uses `password` (null: no username/password at all). */
      passwords?: Record<string, string>;
      password: string | null;
      /** Connections being set up at once. */
      concurrency?: number;
      /** Reconnect like the edge agent when a connection ends (default: stay closed). */
      reconnect?: ReconnectPolicy;
    }
  /** Clears the reconnect record (before a restart). */
  | { op: 'resetReconnects' }
  /** Changes every hub's reconnect policy (from its next loss on). */
  | { op: 'setReconnect'; reconnect: ReconnectPolicy }
  /** Resolves when every hub with a reconnect policy that lost its link since the reset is connected again and re-announced (or at the timeout). */
  | { op: 'waitReconnected'; lost: number; timeoutMs: number }
  /** Starts recording a round: the mode message with this version, expected at `expect` hubs. */
  | { op: 'arm'; version: number; expect: number }
  /** Resolves when every expected hub got the PUBACK of its mode-ack for the armed version (or at the timeout). */
  | { op: 'wait'; timeoutMs: number }
  | { op: 'count' }
  /** Connected hubs per cloud node port (several nodes: where the hubs are now). */
  | { op: 'placement' }
  /** DISCONNECT every connection (wills discarded) and forget them. */
  | { op: 'close' };

export interface ConnectReply {
  connected: number;
  failed: number;
  errors: string[];
  ms: number;
  /** CONNECT → CONNACK per hub, ms (only when fewer than 20 hubs were connected in the call). */
  connackMs: Record<string, number>;
}

export interface RoundReply {
  version: number;
  expect: number;
  /** Hubs that received the mode message / sent their mode-ack / got its PUBACK. */
  received: number;
  acked: number;
  pubacked: number;
  firstReceivedAt: number | null;
  lastReceivedAt: number | null;
  lastAckSentAt: number | null;
  lastPubackAt: number | null;
  timedOut: boolean;
}

export interface ReconnectPolicy {
  backoff: Backoff;
  /** A try with no CONNACK after this long is given up (the agent: mqtt.js connectTimeout 10 s). */
  connectTimeoutMs: number;
}

/** What the hubs did since the last `resetReconnects`; times are epoch ms, one entry per hub that lost its link. */
export interface ReconnectReply {
  /** Links lost (a hub that lost its link again after being back counts twice). */
  lost: number;
  /** The hub of each entry below. */
  hubs: string[];
  /** Of those, connected again (CONNACK) and re-announced (SUBACK and the PUBACK of the birth status). */
  reconnected: number;
  lostAt: number[];
  /** Start of the try that brought each hub back (its back-off wait ends here). */
  tryAt: number[];
  /** CONNACK of the connection that brought each hub back. */
  connackAt: number[];
  /** Its SUBACK and birth-status PUBACK (the hub is fully back). */
  readyAt: number[];
  /** Tries per hub until it was back (1: the first try after the loss worked). */
  tries: number[];
  /** Failed tries, by what ended them (ECONNREFUSED, no CONNACK in time, CONNACK with a refusal code, …). */
  failures: Record<string, number>;
  /** Mode-acks sent again after a reconnect because their link ended before the PUBACK. */
  ackResends: number;
  timedOut: boolean;
}

interface PendingAck {
  topic: string;
  payload: string;
  version: number;
  /** The connection it was last sent on. */
  sentOn?: RawMqtt;
}

interface Hub {
  id: string;
  region: string;
  /** The cloud nodes' ports, and the one it uses or tries next. */
  ports: number[];
  portIndex: number;
  password: string | null;
  client: RawMqtt;
  version: number;
  seq: number;
  reconnect: ReconnectPolicy | null;
  /** Failed tries since the link was last up (the uplink's `attempt`). */
  attempt: number;
  stopped: boolean;
  /** Current outage: when it began and the tries so far. */
  outage: { lostAt: number; tries: number } | null;
  /** A mode-ack not acknowledged yet (sent again after a reconnect), and the last version counted. */
  pendingAck: PendingAck | null;
  countedVersion: number;
}

const AGENT = 'chiiki-edge/0.1.0';
const bootId = `${Date.now().toString(36)}${crypto.randomBytes(2).toString('hex')}`;
const hubs: Hub[] = [];
let round: RoundReply = emptyRound(0, 0);
let roundDone: (() => void) | null = null;

function emptyRound(version: number, expect: number): RoundReply {
  return { version, expect, received: 0, acked: 0, pubacked: 0, firstReceivedAt: null, lastReceivedAt: null, lastAckSentAt: null, lastPubackAt: null, timedOut: false };
}

const status = (hub: string, state: 'online' | 'offline') =>
  JSON.stringify({ v: 1, type: 'hub.status', hub, state, ts: Date.now(), agent: AGENT, outboxDepth: 0, oldestUnsentAgeS: 0 });

function onRegionMode(h: Hub, region: string, p: IPublishPacket): void {
  const at = epochMs();
  let rm: { region?: string; version?: number; mode?: string; hubs?: Record<string, string>; reason?: string };
  try {
    rm = JSON.parse(p.payload.toString());
  } catch {
    return;
  }
  if (rm.region !== region || typeof rm.version !== 'number' || rm.version <= h.version) return;
  h.version = rm.version;
  const mode = rm.hubs?.[h.id] ?? rm.mode;
  const reason = typeof rm.reason === 'string' && rm.reason ? { reason: rm.reason.slice(0, 500) } : {};
  const ack = { v: 1, type: 'hub.mode-ack', id: `agent-${bootId}-${++h.seq}`, ts: Date.now(), hub: h.id, version: rm.version, mode, source: 'cloud', ...reason };
  const counted = rm.version === round.version;
  if (counted) {
    round.received++;
    round.firstReceivedAt ??= at;
    round.lastReceivedAt = at;
  }
  const pending = { topic: topics.modeAck(region, h.id), payload: JSON.stringify(ack), version: rm.version };
  if (counted) {
    round.acked++;
    round.lastAckSentAt = epochMs();
  }
  sendAck(h, pending);
}

/**
 * Publishes a mode-ack (QoS 1) and keeps it until its PUBACK — the agent's outbox: a link lost before
 * the PUBACK sends it again on the next connection (see `retry`). Counted once per hub and round.
 */
function sendAck(h: Hub, ack: PendingAck): void {
  h.pendingAck = ack;
  ack.sentOn = h.client;
  const r = round;
  void h.client.publish(ack.topic, ack.payload, { qos: 1 }).then(() => {
    if (h.pendingAck === ack) h.pendingAck = null;
    if (r !== round || ack.version !== r.version || h.countedVersion === ack.version) return;
    h.countedVersion = ack.version;
    r.pubacked++;
    r.lastPubackAt = epochMs();
    if (r.pubacked >= r.expect) roundDone?.();
  });
}

const dial = (port: number, region: string, hub: string, password: string | null, timeoutMs: number) =>
  RawMqtt.connect({
    port, clientId: hubClientId(hub, 'edge'), clean: true, keepalive: 30, timeoutMs,
    ...(password !== null ? { username: hub, password } : {}),
    will: { topic: topics.status(region, hub), payload: status(hub, 'offline'), qos: 1, retain: true },
  });

/** After CONNACK, what the agent does on every connect: subscribe, then publish its birth status. */
async function announce(h: Hub, client: RawMqtt): Promise<void> {
  const modeTopic = topics.regionMode(h.region);
  client.onPublish = (p) => {
    if (p.topic === modeTopic) onRegionMode(h, h.region, p);
  };
  const granted = await client.subscribe(topics.hubSubscriptions(h.region, h.id), 1);
  if (granted.some((g) => g === 128)) throw new Error(`${h.id}: subscription refused (${granted.join(',')})`);
  await client.publish(topics.status(h.region, h.id), status(h.id, 'online'), { qos: 1, retain: true });
}

async function connectOne(ports: number[], region: string, hub: string, password: string | null, reconnect: ReconnectPolicy | null): Promise<{ hub: Hub; connackMs: number }> {
  const t0 = epochMs();
  const portIndex = firstCloudUrlIndex(hub, ports.length);
  const client = await dial(ports[portIndex]!, region, hub, password, 60_000);
  const connackMs = epochMs() - t0;
  const h: Hub = { id: hub, region, ports, portIndex, password, client, version: 0, seq: 0, reconnect, attempt: 0, stopped: false, outage: null, pendingAck: null, countedVersion: 0 };
  await announce(h, client);
  if (reconnect) watch(h);
  return { hub: h, connackMs };
}

// ------------------------------------------------------------------ reconnects (edge/uplink.ts)
let record: ReconnectReply = emptyRecord();
let reconnectWaiter: { lost: number; done: () => void } | null = null;
/** Hubs with a reconnect policy that are between a loss and being back. */
let openOutages = 0;
const allBack = (lost: number) => record.reconnected >= lost && openOutages === 0;

function emptyRecord(): ReconnectReply {
  return { lost: 0, reconnected: 0, hubs: [], lostAt: [], tryAt: [], connackAt: [], readyAt: [], tries: [], failures: {}, ackResends: 0, timedOut: false };
}

const failureKind = (err: Error): string => {
  const m = err.message;
  if ((err as NodeJS.ErrnoException).code) return (err as NodeJS.ErrnoException).code!;
  if (/no CONNACK/.test(m)) return 'connack_timeout';
  if (/return code (\d+)/.test(m)) return `connack_${/return code (\d+)/.exec(m)![1]}`;
  if (/closed before CONNACK/.test(m)) return 'closed_before_connack';
  return 'other';
};

/** On the end of the hub's link: the uplink's `close` handler — the next node, a delay from the back-off, then a new try. */
function watch(h: Hub): void {
  h.client.onClose = () => {
    if (h.stopped) return;
    if (!h.outage) {
      h.outage = { lostAt: epochMs(), tries: 0 };
      openOutages++;
      record.lost++;
    }
    schedule(h);
  };
}

function schedule(h: Hub): void {
  h.portIndex = (h.portIndex + 1) % h.ports.length;
  const delay = backoffDelayMs(h.reconnect!.backoff, h.attempt);
  h.attempt++;
  setTimeout(() => void retry(h), delay);
}

async function retry(h: Hub): Promise<void> {
  if (h.stopped) return;
  const outage = h.outage!;
  outage.tries++;
  const tryAt = epochMs();
  let client: RawMqtt;
  try {
    client = await dial(h.ports[h.portIndex]!, h.region, h.id, h.password, h.reconnect!.connectTimeoutMs);
  } catch (err) {
    const kind = failureKind(err as Error);
    record.failures[kind] = (record.failures[kind] ?? 0) + 1;
    return schedule(h);
  }
  const connackAt = epochMs();
  h.attempt = 0; // the uplink's 'connect' handler
  h.client = client;
  watch(h);
  try {
    await announce(h, client);
  } catch {
    return; // the link ended while announcing: its close handler schedules the next try
  }
  if (h.pendingAck && h.pendingAck.sentOn !== client) {
    record.ackResends++;
    sendAck(h, h.pendingAck);
  }
  if (h.outage !== outage || !client.connected) return;
  h.outage = null;
  openOutages--;
  record.reconnected++;
  record.hubs.push(h.id);
  record.lostAt.push(outage.lostAt);
  record.tryAt.push(tryAt);
  record.connackAt.push(connackAt);
  record.readyAt.push(epochMs());
  record.tries.push(outage.tries);
  if (reconnectWaiter && allBack(reconnectWaiter.lost)) reconnectWaiter.done();
}

async function connectMany(req: Extract<HubClientsRequest, { op: 'connect' }>): Promise<ConnectReply> {
  const t0 = epochMs();
  const queue = [...req.hubs];
  const errors: string[] = [];
  const connackMs: Record<string, number> = {};
  let connected = 0;
  let failed = 0;
  const lane = async () => {
    for (let hub = queue.shift(); hub !== undefined; hub = queue.shift()) {
      try {
        const r = await connectOne(req.ports ?? [req.port], req.region, hub, req.passwords?.[hub] ?? req.password, req.reconnect ?? null);
        hubs.push(r.hub);
        if (req.hubs.length < 20) connackMs[hub] = r.connackMs;
        connected++;
      } catch (err) {
        failed++;
        if (errors.length < 5) errors.push((err as Error).message);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(req.concurrency ?? 200, req.hubs.length) }, lane));
  return { connected, failed, errors, ms: epochMs() - t0, connackMs };
}

// Keepalive: every 500 ms a fiftieth of the connections sends PINGREQ, so each pings every 25 s.
let tick = 0;
setInterval(() => {
  const slot = tick++ % 50;
  for (let i = slot; i < hubs.length; i += 50) hubs[i]!.client.ping();
}, 500).unref();

serveWorker<HubClientsRequest, unknown>(async (req) => {
  switch (req.op) {
    case 'connect':
      return connectMany(req);
    case 'arm':
      roundDone = null;
      round = emptyRound(req.version, req.expect);
      return null;
    case 'wait': {
      const r = round;
      if (r.pubacked < r.expect) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            r.timedOut = true;
            resolve();
          }, req.timeoutMs);
          roundDone = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
      roundDone = null;
      return { ...r };
    }
    case 'count':
      return hubs.filter((h) => h.client.connected).length;
    case 'placement': {
      const at: Record<number, number> = {};
      for (const h of hubs) if (h.client.connected) at[h.ports[h.portIndex]!] = (at[h.ports[h.portIndex]!] ?? 0) + 1;
      return at;
    }
    case 'resetReconnects':
      record = emptyRecord();
      return null;
    case 'setReconnect':
      for (const h of hubs) if (h.reconnect) h.reconnect = req.reconnect;
      return null;
    case 'waitReconnected': {
      if (!allBack(req.lost)) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            record.timedOut = true;
            resolve();
          }, req.timeoutMs);
          reconnectWaiter = {
            lost: req.lost,
            done: () => {
              clearTimeout(timer);
              resolve();
            },
          };
        });
      }
      reconnectWaiter = null;
      return { ...record };
    }
    case 'close': {
      const all = hubs.splice(0);
      for (const h of all) h.stopped = true;
      openOutages = 0;
      await Promise.all(all.map((h) => new Promise<void>((resolve) => {
        if (!h.client.connected) return resolve();
        h.client.socket.once('close', () => resolve());
        h.client.disconnect();
        setTimeout(() => (h.client.destroy(), resolve()), 5_000).unref();
      })));
      return all.length;
    }
  }
});
