import crypto from 'node:crypto';
import type { IPublishPacket } from 'mqtt-packet';
import { hubClientId, topics } from '../../contract/index.ts';
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
 */
export type HubClientsRequest =
  | {
      op: 'connect';
      port: number;
      region: string;
      hubs: string[];
      /** Password per hub; a hub missing here uses `password` (null: no username/password at all). */
      passwords?: Record<string, string>;
      password: string | null;
      /** Connections being set up at once. */
      concurrency?: number;
    }
  /** Starts recording a round: the mode message with this version, expected at `expect` hubs. */
  | { op: 'arm'; version: number; expect: number }
  /** Resolves when every expected hub got the PUBACK of its mode-ack for the armed version (or at the timeout). */
  | { op: 'wait'; timeoutMs: number }
  | { op: 'count' }
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

interface Hub {
  id: string;
  client: RawMqtt;
  version: number;
  seq: number;
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
  const sent = h.client.publish(topics.modeAck(region, h.id), JSON.stringify(ack), { qos: 1 });
  if (!counted) return;
  round.acked++;
  round.lastAckSentAt = epochMs();
  const r = round;
  void sent.then(() => {
    if (r !== round) return;
    r.pubacked++;
    r.lastPubackAt = epochMs();
    if (r.pubacked >= r.expect) roundDone?.();
  });
}

async function connectOne(port: number, region: string, hub: string, password: string | null): Promise<{ hub: Hub; connackMs: number }> {
  const t0 = epochMs();
  const client = await RawMqtt.connect({
    port, clientId: hubClientId(hub, 'edge'), clean: true, keepalive: 30, timeoutMs: 60_000,
    ...(password !== null ? { username: hub, password } : {}),
    will: { topic: topics.status(region, hub), payload: status(hub, 'offline'), qos: 1, retain: true },
  });
  const connackMs = epochMs() - t0;
  const h: Hub = { id: hub, client, version: 0, seq: 0 };
  const modeTopic = topics.regionMode(region);
  client.onPublish = (p) => {
    if (p.topic === modeTopic) onRegionMode(h, region, p);
  };
  const granted = await client.subscribe(topics.hubSubscriptions(region, hub), 1);
  if (granted.some((g) => g === 128)) throw new Error(`${hub}: subscription refused (${granted.join(',')})`);
  await client.publish(topics.status(region, hub), status(hub, 'online'), { qos: 1, retain: true });
  return { hub: h, connackMs };
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
        const r = await connectOne(req.port, req.region, hub, req.passwords?.[hub] ?? req.password);
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
    case 'close': {
      const all = hubs.splice(0);
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
