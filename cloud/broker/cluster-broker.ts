import { createRequire } from 'node:module';
import type { Aedes, AedesPublishPacket } from 'aedes';
import type { Redis } from 'ioredis';
import MQEmitterRedis from 'mqemitter-redis';
import { pMapIterable, pMapSkip } from 'p-map';
import { parseTopic, TOPIC_ROOT } from '../../contract/index.ts';
import { openRedisConnection } from '../cluster/redis.ts';
import type { Logger } from '../logger.ts';
import { storedWillRefusal } from './access-policy.ts';
import { indexRetainedMessages, type RetainedIndex } from './retained-index.ts';

/**
 * The cloud broker in cluster mode (issue 15): aedes the way it is designed to be clustered —
 * `mqemitter-redis` as the message bus between nodes and `aedes-persistence-redis` for sessions
 * (subscriptions, queued QoS 1 messages) and last wills — with three changes, each for a measured or
 * read reason:
 *
 * 1. **Only what another node can deliver crosses Redis, on one Redis pattern per node.** aedes hands every PUBLISH to its emitter;
 *    with mqemitter-redis that is a Redis PUBLISH for every hub reading, and Redis matches each
 *    PUBLISH against every pattern subscription in the cluster (each hub's `cmd/#` is one). Hubs may
 *    subscribe only to their commands, their acks and their region's mode (access-policy.ts), and
 *    ingest runs in-process, so readings, events, statuses and acknowledgements from hubs are
 *    emitted locally only; commands, acks, region modes and aedes' `$SYS` traffic (heartbeats,
 *    client take-over, subscription broadcast) go through Redis.
 *
 * 2. **Retained messages: an in-memory RetainedIndex on every node, mirrored through Redis.**
 *    aedes-persistence-redis answers a SUBSCRIBE with a wildcard filter by HSCAN over the whole
 *    `retained` hash (10 entries per round trip): with one retained status per hub that is ~1,400
 *    round trips per `cmd/#` subscription at 13,800 hubs (figures in the issue-15 report). Here each
 *    node answers SUBSCRIBEs from its own index; a retained message stored on one node is written to
 *    the Redis hash (the durable copy a starting node loads) and announced to the other nodes on
 *    `$SYS/<node>/retained`. The hash is read again after every Redis reconnect (an announcement lost
 *    in the gap is then recovered); writes that failed while Redis was down are kept (newest per
 *    topic) and written when it is back, and what a node holds that Redis lacks (Redis restarted
 *    empty) is written back. A hub's own publish therefore never waits for Redis.
 *
 * 3. **Last wills of a dead node, published once.** aedes (1.2) publishes the wills of a broker whose
 *    heartbeat is missing for 3 × heartbeatInterval, checked every 4 × heartbeatInterval, on every
 *    surviving node: two survivors could both publish the same will. `streamWill` here claims each
 *    will (`SET NX PX`) before aedes publishes it, reads the whole will list (aedes-persistence-redis
 *    reads only its first 10,001 entries — fewer than a national fleet's hubs), and a node that
 *    starts publishes the wills its previous run (same NODE_ID) left behind: its heartbeat is back
 *    before the others would consider it dead, so nobody else would.
 *    With heartbeatInterval 2 s a dead node's wills go out 6–14 s after its death (≤ 15 s target).
 *
 * Guarantees and their limits (Redis pub/sub is at-most-once between nodes):
 *  - a command published on node A for a hub on node B is lost if Redis drops the message (B's
 *    subscriber connection broken at that moment, or Redis restarting). If A's PUBLISH fails, the
 *    command service keeps the command pending. Either way it is stored in PostgreSQL first and is
 *    re-sent when the hub subscribes again (every reconnect) and — here — to every hub connected to
 *    a node as soon as that node's Redis connection is back (onReconnect → the cloud's pending
 *    commands of each connected hub): within the reconnect back-off (≤ 2 s) after Redis answers;
 *  - a region mode message lost between nodes: after the reconnect each node re-reads the retained
 *    hash into its index and delivers the region modes it holds to its own hubs again (a hub
 *    ignores a version it has); a hub that connects later gets it on SUBSCRIBE. If the publishing
 *    node could not write it to Redis at all, it is written when Redis is back (unwritten above);
 *  - a client take-over message (`$SYS/<node>/new/clients`) lost: the old connection of the hub on
 *    the other node stays open until its keepalive expires (1.5 × the hub's keepalive);
 *  - a heartbeat lost: harmless unless three in a row (6 s) are, then the node is taken for dead and
 *    its hubs' wills are published while they are still connected (live state keeps the newer
 *    status by its timestamp, so the hub is not shown offline); the node stores those wills again
 *    once it runs or its Redis link is back (restoreWills in attach).
 *  - While Redis is down, connected hubs keep publishing (PUBACK after the durable write, nothing
 *    of it touches Redis); CONNECT and SUBSCRIBE need Redis (sessions, wills, subscriptions) and
 *    fail after two reconnect attempts: the hub is refused and reconnects with its back-off.
 */

export interface BrokerClusterOptions {
  nodeId: string;
  redisUrl: string;
  logger: Logger;
  /** aedes' emitter concurrency (as the single process). */
  concurrency: number;
  /** A stored will skipped because it may not speak for the hub its topic names (storedWillRefusal): counted. */
  onWillRefused?: (reason: 'not_status' | 'foreign_client_id') => void;
}

/** aedes broker heartbeat in cluster mode; see the comment above (single process: 60 s, unchanged). */
export const CLUSTER_HEARTBEAT_INTERVAL_MS = 2_000;
/** How long a node's claim on a dead node's will holds (it publishes within; else another node may). */
const WILL_CLAIM_MS = 60_000;
const WILLS = 'will';
const RETAINED = 'retained';
const WILL_PAGE = 1_000;
/** Wills claimed (a dead node's) or published (this node's previous run's, at start-up) at once; see streamWill and attach. */
const WILLS_IN_FLIGHT = 64;
/** Periodic re-read of the retained hash (see reload below). 13,800 entries: one HGETALL of ~2 MB. */
const RETAINED_RELOAD_MS = 5 * 60_000;
/** A second reload this long after a reconnect's (see settleLater). */
const RESYNC_SETTLE_MS = 3_000;

const requireFromPersistence = createRequire(createRequire(import.meta.url).resolve('aedes-persistence-redis'));
/** The async class aedes 1.x expects (the package's main export wraps it in the callback API of aedes 0.x). */
const AsyncRedisPersistence = requireFromPersistence('./asyncPersistence.js') as new (opts: { conn: Redis; maxSessionDelivery?: number }) => ClusterPersistence;
const msgpack = requireFromPersistence('msgpack-lite') as { encode(v: unknown): Buffer; decode(b: Buffer): unknown };

interface StoredWill extends AedesPublishPacket {
  clientId: string;
  brokerId: string;
}

interface ClusterPersistence {
  setup(broker: Aedes): Promise<void>;
  subscriptionsByTopic(topic: string): Promise<{ clientId: string; topic: string; qos: number }[]>;
  outgoingEnqueueCombi(subs: { clientId: string; topic: string; qos: number }[], packet: AedesPublishPacket): Promise<void>;
  putWill(client: { id: string }, packet: AedesPublishPacket): Promise<void>;
  storeRetained(packet: AedesPublishPacket): Promise<void>;
  delWill(client: { id: string; brokerId: string }): Promise<unknown>;
  streamWill(brokers: Record<string, number>): AsyncIterable<StoredWill>;
  destroy(): Promise<void>;
}

export interface BrokerCluster {
  /** aedes options: `id`, `mq`, `persistence`, `heartbeatInterval`. */
  readonly aedesOptions: { id: string; mq: unknown; persistence: unknown; heartbeatInterval: number };
  /** After Aedes.createBroker, before any listener: retained mirror, leftover wills of this node. */
  attach(aedes: Aedes, authorizePublish: (packet: AedesPublishPacket) => Promise<void>): Promise<void>;
  /**
   * Called after a Redis connection of this node is back (and the retained index re-read): messages
   * from other nodes may have been lost meanwhile (Redis pub/sub is at-most-once).
   */
  onReconnect(listener: () => void): void;
  /** The retained index (for tests). */
  readonly retained: () => RetainedIndex<unknown> | null;
  /** Closes the Redis connections (after aedes.close(), which closes the emitter). */
  close(): Promise<void>;
}

/** Whether a topic can have a subscriber on another node: the routes hubs may subscribe to, and aedes' $SYS traffic. */
export function crossesNodes(topic: string): boolean {
  if (topic.startsWith('$SYS/')) return true;
  const route = parseTopic(topic)?.route;
  return route === 'command' || route === 'ack' || route === 'region-mode';
}

const willKeyParts = (key: string) => {
  // will:<brokerId>:<encodeURIComponent(clientId)> — the client id part has no ':'.
  const last = key.lastIndexOf(':');
  return { brokerId: key.slice(WILLS.length + 1, last), clientId: decodeURIComponent(key.slice(last + 1)) };
};

/**
 * A stored packet sent again as a new publish (not retained: the hubs hold it as their current mode):
 * the id and next counter of `by` (this node, or its re-send source), not the id and counter of the
 * first publish. aedes drops a packet for a client unless its counter is above the
 * highest that client has had from that broker (lib/client.js `dedupe`): the old counter sent again
 * made a hub that had had anything newer from that node drop the copy — and after that node restarted
 * (counting from its start again), made the hub drop every command from it until its count passed the
 * old one (found in review: a command through a restarted node left pending).
 */
export function resent(p: AedesPublishPacket, by: { id: string; counter: number }): AedesPublishPacket {
  return { cmd: 'publish', topic: p.topic, payload: p.payload, qos: p.qos, retain: false, dup: false, brokerId: by.id, brokerCounter: ++by.counter } as AedesPublishPacket;
}

/**
 * Where a node's aedes starts counting its packets: its start time in µs. A restarted node (same
 * NODE_ID) then counts above anything its previous run sent — fewer than 1,000 packets a millisecond
 * over its life — so a hub that missed its `birth` announcement (which resets what clients remember
 * of a broker; pub/sub is at most once) does not drop its commands as old. Exact: 2^53 µs is 285 years.
 */
export const startCounter = (nowMs: number) => nowMs * 1000;

export function createBrokerCluster(o: BrokerClusterOptions): BrokerCluster {
  if (o.nodeId.includes(':')) throw new Error(`NODE_ID must not contain ':' (it is part of Redis keys): ${o.nodeId}`);
  if (o.nodeId.includes('~')) throw new Error(`NODE_ID must not contain '~' (<node>~resent is the id of a node's re-sent modes): ${o.nodeId}`);
  const log = o.logger.child({ component: 'broker-cluster', nodeId: o.nodeId });
  const pub = openRedisConnection(o.redisUrl, `${o.nodeId}:mq-pub`, log);
  const sub = openRedisConnection(o.redisUrl, `${o.nodeId}:mq-sub`, log);
  const db = openRedisConnection(o.redisUrl, `${o.nodeId}:sessions`, log);
  const mq = MQEmitterRedis({ pubConn: pub, subConn: sub, concurrency: o.concurrency, matchEmptyLevels: true } as never) as unknown as MqRedis;
  // mqemitter-redis reports connection errors on `state`; unheard, an 'error' event would end the process.
  mq.state.on('error', (err: Error) => log.debug({ err: err.message }, 'mqemitter-redis error'));
  // mqemitter-redis decodes every message on its subscriber unguarded: one malformed PUBLISH on a
  // channel the nodes share (`PUBLISH '$SYS/x/heartbeat' hello` → assert, '' → BUFFER_SHORTAGE) threw
  // out of the Redis handler and ended every node at once (found by F1 after the red-team review).
  // Its listeners are wrapped: such a message is logged (at most once per 10 s, with the count) and dropped.
  let undecodable = 0;
  let undecodableLoggedAt = 0;
  for (const event of ['messageBuffer', 'pmessageBuffer'] as const) {
    for (const listener of sub.listeners(event) as ((...args: unknown[]) => void)[]) {
      sub.off(event, listener);
      sub.on(event, (...args: unknown[]) => {
        try {
          listener(...args);
        } catch (err) {
          undecodable++;
          if (Date.now() - undecodableLoggedAt > 10_000) {
            undecodableLoggedAt = Date.now();
            log.warn({ err: (err as Error).message, channel: String(args[event === 'messageBuffer' ? 0 : 1]).slice(0, 200), undecodable }, 'a message on the MQTT bus in Redis could not be decoded; dropped');
          }
        }
      });
    }
  }
  const emitThroughRedis = mq.emit.bind(mq);
  mq.emit = (msg, done) => (crossesNodes(msg.topic) ? emitThroughRedis(msg, done) : mq._emit(msg, done));
  // One Redis pattern per node for every hub topic, not one per SUBSCRIBE filter: mqemitter-redis
  // PSUBSCRIBEs each hub's `cmd/#`, and Redis tests every PUBLISH against every pattern of every
  // connection — measured 1.08 ms of Redis CPU per PUBLISH with 13,800 patterns (0.4 µs with 3):
  // a reconnect storm of 13,800 hubs (≥ 2 PUBLISHes each: $SYS new/clients and sub/add) would be
  // ~30 s of Redis CPU. Only commands, acks and modes cross Redis (above), so every node receiving
  // all of them and matching locally (mqemitter's trie) is cheap.
  const hubTopics = `${TOPIC_ROOT}/`;
  const redisOn = mq.on.bind(mq);
  const redisOff = mq.removeListener.bind(mq);
  mq.on = (topic, listener, done) => {
    if (!topic.startsWith(hubTopics)) return redisOn(topic, listener, done);
    return mq._on(topic, listener, done);
  };
  mq.removeListener = (topic, listener, done) => (topic.startsWith(hubTopics) ? mq._removeListener(topic, listener, done) : redisOff(topic, listener, done));

  // aedes-persistence-redis issues some commands without awaiting them (putWill's and delWill's
  // LREM/RPUSH, the LREM of a vanished key): while Redis is down they reject unobserved, and an
  // unhandled rejection ends a Node process. Marked handled here; callers that await still see it.
  for (const name of ['lrem', 'rpush'] as const) {
    const original = db[name].bind(db) as (...args: unknown[]) => Promise<unknown>;
    (db as unknown as Record<string, unknown>)[name] = (...args: unknown[]) => {
      const p = original(...args);
      p.catch((err: Error) => log.debug({ err: err.message, command: name }, 'redis command failed'));
      return p;
    };
  }
  const persistence = new AsyncRedisPersistence({ conn: db });
  const inner = {
    delWill: persistence.delWill.bind(persistence),
  };
  const claim = async (key: string) => (await db.set(`will-claim:${key}`, o.nodeId, 'PX', WILL_CLAIM_MS, 'NX')) === 'OK';
  const readWill = async (key: string): Promise<StoredWill | null> => {
    const buf = await db.getBuffer(key);
    return buf ? (msgpack.decode(buf) as StoredWill) : null;
  };
  /** Every will key in the list, a page at a time. */
  async function* willKeys(): AsyncGenerator<string> {
    for (let start = 0; ; start += WILL_PAGE) {
      const page = await db.lrange(WILLS, start, start + WILL_PAGE - 1);
      yield* page;
      if (page.length < WILL_PAGE) return;
    }
  }
  /**
   * Brokers heard from (birth or heartbeat) within 3 heartbeats. aedes counts heartbeats only: a node
   * that started less than one heartbeat ago is unknown to it, and its hubs' wills would be taken
   * for a dead node's (seen in the kill -9 test: wills published 2 s after a fresh node's clients
   * connected... and would be for a live one too).
   */
  const lastHeard = new Map<string, number>();
  const alive = (brokerId: string) => (lastHeard.get(brokerId) ?? -Infinity) + 3 * CLUSTER_HEARTBEAT_INTERVAL_MS >= Date.now();
  const heard = (msg: { payload?: Buffer | string }, done: () => void) => {
    if (msg.payload !== undefined) lastHeard.set(msg.payload.toString(), Date.now());
    done();
  };
  mq.on('$SYS/+/birth', heard);
  mq.on('$SYS/+/heartbeat', heard);
  /**
   * A will about to be published without its connection speaks for the hub its topic names: one whose
   * client id is not that hub's (stored by a version that did not check wills at login, or written into
   * Redis) is skipped, counted and deleted — handed to aedes it would either forge that hub's status or,
   * refused by authorizePublish, fail aedes' whole round of dead nodes' wills again every round.
   */
  const refused = async (key: string, will: StoredWill, clientId: string, brokerId: string): Promise<boolean> => {
    // The packet's client id is what aedes looks the client up by; the key's is what the will is stored under.
    const reason = storedWillRefusal({ topic: will.topic, clientId: will.clientId }) ?? (will.clientId === clientId ? null : 'foreign_client_id');
    if (!reason) return false;
    o.onWillRefused?.(reason);
    log.warn({ clientId: clientId.slice(0, 128), brokerId, topic: String(will.topic).slice(0, 300), reason }, 'stored last will not published: it does not belong to the hub its topic names; deleted');
    await db.del(key);
    await db.lrem(WILLS, 0, key);
    return true;
  };
  /** The will under a key this node has claimed, to be published (null: it is gone, or refused and deleted). */
  const claimedWill = async (key: string): Promise<StoredWill | null> => {
    const { brokerId, clientId } = willKeyParts(key);
    const will = await readWill(key);
    if (!will) await db.lrem(WILLS, 0, key);
    return will && !(await refused(key, will, clientId, brokerId)) ? will : null;
  };
  /**
   * Claimed WILLS_IN_FLIGHT at a time (p-map's pMapIterable): aedes publishes what this yields in
   * batches, but one claim and one read after the other — each a turn of an event loop busy with the
   * dead node's reconnecting hubs — held its 4,600 wills back.
   */
  persistence.streamWill = async function* (brokers) {
    const seen = new Set<string>();
    async function* deadNodesKeys() {
      for await (const key of willKeys()) {
        if (seen.has(key)) continue;
        seen.add(key);
        const { brokerId } = willKeyParts(key);
        if (brokers[brokerId] === undefined && !alive(brokerId)) yield key; // else its broker is alive
      }
    }
    const claimed = pMapIterable(deadNodesKeys(), async (key) => ((await claim(key)) && (await claimedWill(key))) || pMapSkip, { concurrency: WILLS_IN_FLIGHT });
    for await (const will of claimed) yield will;
  };

  /**
   * A graceful close: this node's hubs' wills went out in-process as their connections closed, and
   * aedes deletes each stored copy only once its publish is done — after ingest's commit, by then
   * usually after this node's Redis connections are closed. A copy left behind was published again
   * by the next start of this node or by another node taking it for dead: a second "offline" in the
   * hub's history. Deleted here (DEL only: the list entry is dropped by the next reader, which finds
   * the key gone; an LREM per key would scan the whole list once per hub).
   */
  const dropOwnWills = async () => {
    const own: string[] = [];
    for await (const key of willKeys()) if (willKeyParts(key).brokerId === o.nodeId) own.push(key);
    for (let i = 0; i < own.length; i += WILL_PAGE) await db.del(...own.slice(i, i + WILL_PAGE));
    if (own.length > 0) log.info({ wills: own.length }, 'last wills of this node\'s hubs deleted from Redis (published as their connections closed)');
  };

  let index: RetainedIndex<unknown> | null = null;
  /** Retained changes not yet written to Redis (newest per topic). */
  const unwritten = new Map<string, AedesPublishPacket>();
  const retainedTopic = `$SYS/${o.nodeId}/retained`;
  let flushing: Promise<void> | null = null;
  let again = false;
  /**
   * Unwritten topics that are only copies this node held when Redis lacked them (see `load`), not
   * messages stored here: written only if Redis still lacks them. Two nodes that restore after Redis
   * came back empty must not overwrite the newer message another node stored meanwhile (a CI run of
   * cluster-broker.test.ts: node B's older region mode, written back after node A's, replaced it).
   */
  const restoreOnly = new Set<string>();
  const writeUnwritten = async () => {
    for (const [topic, packet] of unwritten) {
      if (packet.payload.length === 0) await db.hdel(RETAINED, topic);
      else if (restoreOnly.has(topic)) await db.hsetnx(RETAINED, topic, msgpack.encode(packet));
      else await db.hset(RETAINED, topic, msgpack.encode(packet));
      if (unwritten.get(topic) === packet) {
        unwritten.delete(topic);
        restoreOnly.delete(topic);
      }
    }
  };
  /** Writes the unwritten changes; one writer at a time, a call during a run makes it run once more. */
  const flush = (): Promise<void> => {
    if (flushing) {
      again = true;
      return flushing;
    }
    const run = (async () => {
      try {
        do {
          again = false;
          await writeUnwritten();
        } while (again && unwritten.size > 0);
      } catch (err) {
        log.debug({ err: (err as Error).message, unwritten: unwritten.size }, 'retained messages not written to Redis yet; written when it is back');
      }
    })();
    flushing = run;
    void run.finally(() => {
      if (flushing !== run) return;
      flushing = null;
      if (again && unwritten.size > 0) void flush(); // a call that came after the last pass
    });
    return run;
  };
  /**
   * Topics stored or announced while a load's read of the hash is under way, one set per load: the
   * read may predate them (the hash and the announcements travel on different connections), so the
   * load leaves them as they are rather than put an older copy back — and deliver that older region
   * mode to the hubs again (a CI run of cluster-broker.test.ts: a mode written back after a Redis
   * outage reached this node's hubs, then the mode it replaced did).
   */
  const changedDuringLoads = new Set<Set<string>>();
  const changed = (topic: string) => {
    for (const s of changedDuringLoads) s.add(topic);
  };
  /** The Redis hash into the index, with this node's unwritten changes on top. */
  const load = async () => {
    if (!index) return;
    const newer = new Set<string>();
    changedDuringLoads.add(newer);
    let all: Record<string, Buffer>;
    try {
      all = await db.hgetallBuffer(RETAINED);
    } finally {
      changedDuringLoads.delete(newer);
    }
    const fresh = new Map<string, unknown>();
    for (const [topic, buf] of Object.entries(all)) fresh.set(topic, msgpack.decode(buf));
    for (const [topic, packet] of unwritten) {
      if (packet.payload.length === 0) fresh.delete(topic);
      else fresh.set(topic, packet);
    }
    for (const [topic, packet] of unwritten) if (packet.payload.length === 0) index.delete(topic);
    // What Redis holds wins; what only this node holds is written back (a Redis that restarted
    // without its data, or a store that never got through). So a deletion (empty retained payload)
    // announced by another node while this one was cut off is undone here — rare: hub statuses and
    // region modes are replaced, never deleted.
    const current = [...index.match('#'), ...index.match('$SYS/#')] as AedesPublishPacket[];
    let restored = 0;
    for (const p of current) {
      if (fresh.has(p.topic) || unwritten.has(p.topic) || newer.has(p.topic)) continue;
      unwritten.set(p.topic, p);
      restoreOnly.add(p.topic);
      restored++;
    }
    for (const [topic, packet] of fresh) if (!newer.has(topic)) index.set(topic, packet);
    if (restored > 0) {
      log.warn({ restored }, 'Redis lacked retained messages this node holds (restarted without its data?): writing them back');
      void flush();
    }
    log.debug({ retained: index.size }, 'retained messages loaded from Redis');
  };
  let loaded = false;
  const gapListeners: (() => void)[] = [];
  /** The pause watch of attach() (restoreWills), and whether close() has begun. */
  let willWatch: ReturnType<typeof setInterval> | undefined;
  let closing = false;
  /** After a reconnect: the region modes this node holds, to its own hubs again (one may have been lost). */
  /** The region modes this node holds (retained). */
  const regionModes = (): AedesPublishPacket[] =>
    index ? ([...index.match(`${TOPIC_ROOT}/+/+`)] as AedesPublishPacket[]).filter((p) => parseTopic(p.topic)?.route === 'region-mode') : [];
  /** This node's aedes (attach). */
  let broker: (Aedes & { counter: number; persistence: ClusterPersistence; clients: Record<string, unknown> }) | null = null;
  /**
   * The id and counter of this node's re-sent region modes: their own, not the node's. A re-send takes
   * its counter before its queue is written (the Redis key holds it), so a publish of the node to the
   * same hub meanwhile — the pending commands sent right after the same reconnect — got a higher count,
   * arrived first, and made aedes drop the mode (found in review). Re-sends count among themselves only:
   * a later one (the same or a newer mode) overtaking an earlier one loses nothing.
   */
  let resender: { id: string; counter: number } | null = null;
  /**
   * A region mode to this node's own hubs again. As aedes.publish does for QoS 1, a hub with a
   * persistent session gets it queued first (only the hubs on this node: it is emitted here only),
   * so that its PUBACK clears it: delivered unqueued, aedes-persistence-redis kept the packet and a
   * count of -1 in Redis for good (found in review).
   */
  const deliverMode = (p: AedesPublishPacket) => {
    const b = broker;
    if (!b || !resender) return;
    const packet = resent(p, resender);
    void b.persistence.subscriptionsByTopic(packet.topic)
      .then((subs) => {
        const here = subs.filter((sub) => b.clients[sub.clientId] !== undefined);
        return here.length > 0 ? b.persistence.outgoingEnqueueCombi(here, packet) : undefined;
      })
      .then(() => mq._emit(packet as never), (err: unknown) => log.warn({ err: (err as Error).message, topic: packet.topic }, 'region mode not sent again: its queue for persistent sessions could not be written; the next reconnect sends it'));
  };
  const redeliverModes = () => {
    const modes = regionModes();
    for (const p of modes) deliverMode(p);
    if (modes.length > 0) log.info({ modes: modes.length }, 'region modes delivered again to this node\'s hubs after a Redis reconnect');
  };
  /** Retained messages stored here whose announcement failed (Redis down): their publish reached no hub either. */
  const unannounced = new Set<string>();
  const announce = (packet: AedesPublishPacket) => {
    mq.emit({ topic: retainedTopic, packet: { ...packet, cmd: 'publish' } } as never, (err?: Error) => {
      if (!err) return;
      unannounced.add(packet.topic);
      log.debug({ err: err.message, topic: packet.topic }, 'retained message not announced to the other nodes; announced and delivered again after the reconnect');
    });
  };
  /** After a reconnect: announce what could not be, and deliver region modes whose publish failed to every node's hubs. */
  const reannounce = () => {
    if (!index) return;
    for (const topic of [...unannounced]) {
      unannounced.delete(topic);
      const packet = [...index.match(topic)][0] as AedesPublishPacket | undefined;
      if (!packet) continue;
      announce(packet);
      // A publish of its own (every node's hubs, queued for persistent sessions as any publish).
      if (parseTopic(topic)?.route === 'region-mode') broker?.publish(resent(packet, broker), () => undefined);
    }
  };
  const resync = () => {
    if (!loaded) return;
    void flush()
      .then(load)
      .then(() => {
        redeliverModes();
        reannounce();
        for (const l of gapListeners) l();
        settleLater();
      })
      .catch((err: unknown) => log.warn({ err: (err as Error).message }, 'reloading retained messages from Redis failed; next reconnect retries'));
  };
  /**
   * Once more, RESYNC_SETTLE_MS after the last reconnect's reload: the other nodes write back what
   * they stored while Redis was out as their own connections return, and their announcement may have
   * reached this node before its subscriptions were back (pub/sub is at most once). A region mode that
   * changed since is delivered to this node's hubs.
   */
  let settleTimer: ReturnType<typeof setTimeout> | undefined;
  const settleLater = () => {
    clearTimeout(settleTimer);
    settleTimer = setTimeout(() => {
      if (closing || !index) return;
      const text = (p: AedesPublishPacket) => Buffer.from(p.payload as Uint8Array).toString('utf8');
      const before = new Map(regionModes().map((p) => [p.topic, text(p)]));
      void flush()
        .then(load)
        .then(() => {
          for (const p of regionModes()) if (before.get(p.topic) !== text(p)) deliverMode(p);
        })
        .catch((err: unknown) => log.debug({ err: (err as Error).message }, 'settling reload of retained messages failed; the periodic reload retries'));
    }, RESYNC_SETTLE_MS);
    settleTimer.unref();
  };
  // After a reconnect of any connection an announcement may have been lost: the hash is the truth.
  // The subscriber's re-read comes after its subscriptions are in force: ioredis sends them again as
  // it becomes ready, but the hash is read on another connection, which Redis may serve first; a
  // retained message written and announced in between would go unseen here until the 5-min reload.
  // A PING on the subscriber, queued behind those subscriptions, answers once they are in force.
  db.on('ready', resync);
  pub.on('ready', resync);
  sub.on('ready', () => {
    process.nextTick(() => {
      sub.ping().then(resync, (err: unknown) => log.debug({ err: (err as Error).message }, 'Redis subscriber gone again before its subscriptions were back; its next reconnect re-reads'));
    });
  });
  // Two nodes storing the same retained topic at once can leave a third with the older copy (the
  // announcements carry no version): a periodic re-read bounds that to RETAINED_RELOAD_MS.
  const reload = setInterval(() => {
    if (loaded && db.status === 'ready') void flush().then(load).catch((err: unknown) => log.debug({ err: (err as Error).message }, 'periodic retained reload failed'));
  }, RETAINED_RELOAD_MS);
  reload.unref();

  return {
    aedesOptions: { id: o.nodeId, mq, persistence, heartbeatInterval: CLUSTER_HEARTBEAT_INTERVAL_MS },
    retained: () => index,
    onReconnect: (listener) => gapListeners.push(listener),
    async attach(aedes, authorizePublish) {
      const b = aedes as unknown as NonNullable<typeof broker>;
      b.counter = startCounter(Date.now());
      broker = b;
      resender = { id: `${o.nodeId}~resent`, counter: startCounter(Date.now()) };
      // Subscribed before any hub connects; ioredis subscribes it again after every reconnect.
      await sub.psubscribe(`${TOPIC_ROOT}/*`);
      index = indexRetainedMessages(aedes);
      const local = persistence.storeRetained.bind(persistence); // the index's, installed just now
      const idx = index;
      persistence.storeRetained = async (packet) => {
        changed(packet.topic);
        await local(packet);
        unwritten.set(packet.topic, { ...packet });
        restoreOnly.delete(packet.topic);
        void flush();
        announce(packet);
      };
      mq.on('$SYS/+/retained', (msg: { topic: string; packet?: AedesPublishPacket }, done: () => void) => {
        const p = msg.packet;
        if (p && msg.topic !== retainedTopic && typeof p.topic === 'string') {
          const payload = Buffer.isBuffer(p.payload) ? p.payload : Buffer.from(p.payload ?? '');
          changed(p.topic);
          if (payload.length === 0) idx.delete(p.topic);
          else idx.set(p.topic, { ...p, payload });
        }
        done();
      });
      await load();
      loaded = true;
      // Wills this node's previous run (same NODE_ID) left: its connections are gone. Published
      // WILLS_IN_FLIGHT at a time, so ingest takes them in group commits: one after the other
      // (each waiting for its commit) a node restarted within seconds of a kill -9 — before the others
      // publish its wills — spent > 30 s on 4,591 wills before it listened (cluster benchmark).
      let published = 0;
      const publishLeftover = async (key: string) => {
        const { brokerId, clientId } = willKeyParts(key);
        if (brokerId !== o.nodeId || !(await claim(key))) return;
        const will = await claimedWill(key);
        if (will) {
          try {
            await authorizePublish(will);
            await new Promise<void>((resolve, reject) => aedes.publish(will, (err?: Error) => (err ? reject(err) : resolve())));
            published++;
          } catch (err) {
            log.warn({ err: (err as Error).message, clientId }, 'publishing a last will left by this node\'s previous run failed');
          }
        }
        await inner.delWill({ id: clientId, brokerId });
      };
      // A Redis error ends start-up, as it did one will at a time.
      for await (const _ of pMapIterable(willKeys(), publishLeftover, { concurrency: WILLS_IN_FLIGHT }));
      if (published > 0) log.info({ published }, 'published the last wills of this node\'s previous run');

      // A node that did not run (SIGSTOP, a VM or GC pause) or could not reach Redis for 3 heartbeats
      // is taken for dead: another node publishes and deletes its hubs' wills while the hubs stay
      // connected here. Once it runs again (a gap in a 1 s timer) or its Redis link is back, the wills
      // of its connected clients that are gone from Redis are stored again, and the claim on them
      // dropped, so its next death announces them; once more 2 heartbeats later, in case the other
      // node's delete of a will it was publishing came after the first pass. Their retained status
      // meanwhile reads "offline" until the hub's next status (the reference agent: every 10 s); live
      // state keeps the newer "online" by its timestamp.
      const restoreWills = async () => {
        const clients = Object.values((aedes as unknown as { clients: Record<string, WillClient | undefined> }).clients)
          .filter((c): c is WillClient => !!c && !!c.will && c.connected && !c.closed);
        if (clients.length === 0) return;
        const key = (c: WillClient) => `${WILLS}:${o.nodeId}:${encodeURIComponent(c.id)}`;
        const exists = await db.pipeline(clients.map((c) => ['exists', key(c)])).exec();
        let restored = 0;
        for (const [i, c] of clients.entries()) {
          if (exists?.[i]?.[1] === 1 || !c.will || c.closed) continue;
          await persistence.putWill(c, c.will);
          await db.del(`will-claim:${key(c)}`);
          restored++;
        }
        if (restored > 0) log.warn({ restored }, 'last wills of connected hubs were gone from Redis (this node was taken for dead): stored again');
      };
      let restoring = false;
      const restore = (why: string) => {
        if (restoring || closing) return;
        restoring = true;
        log.info({ why }, 'checking that the last wills of this node\'s hubs are still stored');
        void restoreWills()
          .then(() => new Promise((r) => setTimeout(r, 2 * CLUSTER_HEARTBEAT_INTERVAL_MS).unref()))
          .then(restoreWills)
          .catch((err: unknown) => log.warn({ err: (err as Error).message }, 'storing the last wills again failed; next pause or reconnect retries'))
          .finally(() => (restoring = false));
      };
      let tick = performance.now();
      willWatch = setInterval(() => {
        const now = performance.now();
        const gapMs = now - tick;
        tick = now;
        if (gapMs >= 2 * CLUSTER_HEARTBEAT_INTERVAL_MS) restore(`this node did not run for ${Math.round(gapMs)} ms`);
      }, 1_000);
      willWatch.unref();
      gapListeners.push(() => restore('Redis link back'));
    },
    async close() {
      closing = true;
      clearInterval(willWatch);
      clearInterval(reload);
      clearTimeout(settleTimer);
      await flush().catch(() => undefined);
      await dropOwnWills().catch((err: unknown) => log.warn({ err: (err as Error).message }, 'deleting this node\'s last wills from Redis failed: the next start of this node, or another node, publishes them again'));
      // aedes.close() closed the emitter (quit on pub/sub) and the persistence is not destroyed by
      // aedes: disconnect what is left.
      await persistence.destroy().catch(() => undefined);
      for (const r of [pub, sub, db]) r.disconnect();
    },
  };
}

/** The part of an aedes client that storing its will again needs. */
interface WillClient {
  id: string;
  will: AedesPublishPacket | null;
  connected: boolean;
  closed: boolean;
}

interface MqRedis {
  state: NodeJS.EventEmitter;
  _on(topic: string, listener: (msg: never, done: () => void) => void, done?: () => void): unknown;
  _removeListener(topic: string, listener: (msg: never, done: () => void) => void, done?: () => void): unknown;
  removeListener(topic: string, listener: (msg: never, done: () => void) => void, done?: () => void): unknown;
  emit(msg: { topic: string }, done?: (err?: Error) => void): void;
  _emit(msg: { topic: string }, done?: (err?: Error) => void): void;
  on(topic: string, listener: (msg: never, done: () => void) => void, done?: () => void): unknown;
}
