import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from '../logger.ts';

export interface RedisConnectionOptions {
  /**
   * How often a command waits through a reconnect before it fails (ioredis `maxRetriesPerRequest`).
   *  - a number (default 2): a command issued while Redis is down waits for about two reconnect
   *    attempts (≈ 0.3 s with the back-off below, longer when connects time out) and then fails.
   *    Callers on a request path (an MQTT CONNECT, SUBSCRIBE, a cloud publish) get an error soon and
   *    retry on their own terms (the hub reconnects with its back-off; commands are redelivered)
   *    instead of piling up behind an outage of unknown length;
   *  - `null`: wait for Redis however long it takes — only for a connection whose commands must not
   *    be dropped and whose queue is bounded by its caller. Subscriber connections do not need it:
   *    ioredis re-subscribes by itself after a reconnect.
   */
  maxRetriesPerRequest?: number | null;
  /** More ioredis options (override the defaults here). */
  extra?: RedisOptions;
}

/** Reconnect back-off: 100, 200, 400, 800, 1,600, then every 2,000 ms, forever (a node outlives a Redis outage). */
export function redisRetryDelay(times: number): number {
  return Math.min(100 * 2 ** Math.min(times - 1, 5), 2000);
}

/**
 * One ioredis connection as the cluster's parts use it (cluster mode, issue 15): named (`CLIENT LIST`
 * on the Redis server shows `<node>:<purpose>`), reconnecting forever with a capped back-off, never
 * crashing the process on a connection error (logged at debug: an outage logs once per state change
 * via 'reconnecting'/'ready' below, not once per attempt at warn level).
 * Commands queue while disconnected (ioredis offline queue) and fail after `maxRetriesPerRequest`
 * reconnect attempts, see RedisConnectionOptions.
 */
export function openRedisConnection(url: string, name: string, logger: Logger, o: RedisConnectionOptions = {}): Redis {
  const log = logger.child({ component: 'redis', connection: name });
  const r = new Redis(url, {
    connectionName: name.replace(/[^\w.:-]/g, '_'),
    maxRetriesPerRequest: o.maxRetriesPerRequest === undefined ? 2 : o.maxRetriesPerRequest,
    enableOfflineQueue: true,
    retryStrategy: redisRetryDelay,
    // A connect that hangs (a paused or unreachable Redis) is given up and retried instead of waiting
    // for the kernel's TCP timeout.
    connectTimeout: 5_000,
    // Loopback / LAN: detect a dead peer on an idle connection.
    keepAlive: 10_000,
    ...o.extra,
  });
  let down = false;
  r.on('error', (err: Error) => log.debug({ err: err.message }, 'redis connection error'));
  r.on('reconnecting', () => {
    if (!down) log.warn('redis connection lost; reconnecting');
    down = true;
  });
  r.on('ready', () => {
    if (down) log.info('redis connection back');
    down = false;
  });
  return r;
}
