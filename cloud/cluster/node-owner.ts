import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from '../logger.ts';
import { openRedisConnection } from './redis.ts';

/**
 * One process per NODE_ID in a cluster (issue 15). Everything a node keeps in the shared Redis is
 * named by its NODE_ID: aedes' broker id (its wills `will:<NODE_ID>:<client>`, its heartbeat on
 * `$SYS/<NODE_ID>/heartbeat`) and the cluster bus' heartbeat and link record (`cloud:node:<NODE_ID>`).
 * A second process started with the NODE_ID of a live node (a copy-pasted configuration) would take
 * the live node's hubs' wills for the leftovers of its own previous run — publish and delete them at
 * start (cluster-broker.ts attach) — and the two would overwrite each other's heartbeats. So before
 * anything of the broker or the bus touches Redis, the node claims its NODE_ID:
 *
 *  - `SET cloud:node-owner:<NODE_ID> <instance> NX PX <ttl>` (instance: a random id per start);
 *  - renewed every ttl/3 (the cluster bus' heartbeat period) only while the value is still this
 *    instance (a Lua compare-and-pexpire; a key gone missing — Redis restarted empty, or this process
 *    paused past the TTL and nobody claimed meanwhile — is claimed again);
 *  - released at a clean shutdown (compare-and-del), so a restart after a clean stop claims at once.
 *
 * A claim held by someone else at start: the holder is live if it renews (the key's expiry moves
 * forward, checked every `pollMs`) or another instance takes it meanwhile — start-up fails at once then
 * (NodeIdInUseError), after at most one renewal period (ttl/3). A holder that does not renew is a
 * process that was killed (kill -9, a crashed machine: nothing released its claim): start-up waits for
 * its claim to expire — at most `ttl` after its last renewal — and goes on. So a node restarted after
 * kill -9 starts by itself within LEASE_TTL_S, and a duplicate is refused within ttl/3 (+ `pollMs`).
 *
 * A renewal that finds the key held by another instance (this process was paused or cut off from Redis
 * longer than the TTL and a duplicate started meanwhile) calls `onLost`: the cloud ends the process at
 * once (cloud.ts); see there why not gracefully. Renewals that fail because Redis does not answer are
 * logged and tried again: the node keeps serving through a Redis outage, as the broker does.
 */
export interface NodeOwnerOptions {
  redisUrl: string;
  nodeId: string;
  /** How long a claim lasts without renewal (the cloud: LEASE_TTL_S); renewed every third of it. */
  ttlMs: number;
  logger: Logger;
  /** Another instance holds the claim now: this process must stop serving. Called once. */
  onLost: (lost: { nodeId: string; holder: string; instance: string }) => void;
  /** Key prefix (default `cloud:`, as the cluster bus' keys). */
  prefix?: string;
  /** How often start-up looks at another holder's claim (default 100 ms). */
  pollMs?: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

export interface NodeOwner {
  readonly nodeId: string;
  /** This process's random instance id (the key's value while it holds the claim). */
  readonly instance: string;
  readonly key: string;
  /** How long start-up waited for a killed predecessor's claim to expire (0: free at once). */
  readonly waitedMs: number;
  /** Stops renewing and deletes the key if it is still this instance's. Idempotent. */
  release(): Promise<void>;
}

/** The NODE_ID is claimed by another running process: start-up refused. */
export class NodeIdInUseError extends Error {
  constructor(
    readonly nodeId: string,
    readonly holder: string,
    readonly key: string,
    readonly ttlMs: number,
    why: string,
  ) {
    const s = (ms: number) => `${+(ms / 1000).toFixed(1)} s`;
    super(
      `NODE_ID "${nodeId}" is in use: another running cloud process holds it (instance ${holder}, Redis key ${key}; ${why}). ` +
        `Two processes with one NODE_ID would take each other's hubs' last wills and sessions in Redis: give every node its own NODE_ID. ` +
        `A claim lasts ${s(ttlMs)} (LEASE_TTL_S) after its holder stops renewing it; a node restarted after kill -9 waits that long for its old claim by itself, so this refusal means the holder is alive.`,
    );
    this.name = 'NodeIdInUseError';
  }
}

// 1: renewed; 2: the key was gone and is claimed again; otherwise the value of whoever holds it.
const RENEW = `local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]); return 1 end
if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]); return 2 end
return v`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end; return 0`;

/**
 * Claims NODE_ID for this process (see above). Resolves once held; rejects with NodeIdInUseError when
 * another live process holds it, or with Redis' error when Redis does not answer.
 */
export async function claimNodeId(o: NodeOwnerOptions): Promise<NodeOwner> {
  const now = o.now ?? Date.now;
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const pollMs = o.pollMs ?? 100;
  const key = `${o.prefix ?? 'cloud:'}node-owner:${o.nodeId}`;
  const instance = randomUUID();
  const log = o.logger.child({ component: 'node-owner', nodeId: o.nodeId });
  const redis = openRedisConnection(o.redisUrl, `${o.nodeId}:owner`, log);
  const renewEveryMs = Math.max(100, Math.floor(o.ttlMs / 3));
  // A renewal moves the expiry forward by about renewEveryMs; a read's own error is its round trip.
  const slackMs = Math.max(50, Math.min(250, Math.floor(renewEveryMs / 3)));
  let waitedMs = 0;
  try {
    const t0 = now();
    let seen: { holder: string; expiresAt: number } | null = null;
    for (;;) {
      if ((await redis.set(key, instance, 'PX', o.ttlMs, 'NX')) === 'OK') break;
      const [[getErr, holder], [pttlErr, pttl]] = (await redis.multi().get(key).pttl(key).exec()) as [[Error | null, string | null], [Error | null, number]];
      if (getErr || pttlErr) throw getErr ?? pttlErr;
      if (holder === null) continue; // expired between the two commands
      const refuse = (why: string) => new NodeIdInUseError(o.nodeId, holder, key, o.ttlMs, why);
      if (pttl < 0) throw refuse('the key never expires: someone set it by hand; delete it if no process uses this NODE_ID');
      const expiresAt = now() + pttl;
      if (seen && holder !== seen.holder) throw refuse('another process claimed it while this one waited');
      if (seen && expiresAt > seen.expiresAt + slackMs) throw refuse(`its holder renewed the claim while this process waited ${now() - t0} ms`);
      // Waited longer than a claim can last without being renewed, yet still there: a holder this check misses.
      if (now() - t0 > o.ttlMs + renewEveryMs) throw refuse(`still held after ${now() - t0} ms`);
      if (!seen) {
        seen = { holder, expiresAt };
        log.warn({ holder, expiresInMs: pttl }, 'NODE_ID still claimed by another instance: waiting for it to expire (a node killed without a clean stop) or to be renewed (a live duplicate: refused)');
      }
      await sleep(Math.min(pollMs, Math.max(1, pttl)));
    }
    waitedMs = seen ? now() - t0 : 0;
  } catch (err) {
    redis.disconnect();
    throw err;
  }
  log.info({ key, instance, ttlMs: o.ttlMs, waitedMs }, waitedMs > 0 ? 'NODE_ID claimed after the previous claim expired' : 'NODE_ID claimed');

  let stopped = false;
  let lost = false;
  let failing = false;
  const renew = async () => {
    if (stopped || lost) return;
    let res: unknown;
    try {
      res = await redis.eval(RENEW, 1, key, instance, String(o.ttlMs));
    } catch (err) {
      if (!failing) log.warn({ err }, 'renewing the NODE_ID claim failed (Redis unreachable?); trying again every renewal');
      failing = true;
      return;
    }
    if (failing) log.info('NODE_ID claim renewed again');
    failing = false;
    if (stopped) return;
    if (res === 2) {
      // Paused or cut off past the TTL (or Redis restarted empty) and nobody claimed it meanwhile.
      log.warn({ key }, 'the NODE_ID claim had expired; claimed again');
    } else if (typeof res === 'string') {
      lost = true;
      clearInterval(timer);
      o.onLost({ nodeId: o.nodeId, holder: res, instance });
    }
  };
  const timer = setInterval(() => void renew(), renewEveryMs);
  timer.unref();
  let releasing: Promise<void> | null = null;
  return {
    nodeId: o.nodeId, instance, key, waitedMs,
    release: () =>
      (releasing ??= (async () => {
        stopped = true;
        clearInterval(timer);
        try {
          if (!lost) await redis.eval(RELEASE, 1, key, instance);
        } catch (err) {
          log.warn({ err, key }, 'releasing the NODE_ID claim failed; it expires by itself within LEASE_TTL_S');
        } finally {
          redis.disconnect();
        }
      })()),
  };
}
