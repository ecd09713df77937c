import type { Logger } from '../logger.ts';

/**
 * Cluster mode (issue 15): N identical cloud nodes share PostgreSQL (operational state, leases) and
 * Redis (the MQTT message bus, sessions, retained messages and wills; live state between nodes).
 * The single process — the embedded default — gets the local forms of everything here: it holds every
 * lease (token 1, never fenced) and has no peers.
 *
 * Parts (each in its own file of this folder):
 *  - `leases.ts`: per-region leases with fencing tokens in PostgreSQL — work that must happen once
 *    (mode-ack timeouts, hub-offline alarms, dispatch rounds, ops stats, dedupe pruning);
 *  - `redis.ts`: Redis connections (ioredis) with the options every part uses;
 *  - the broker's Redis emitter and persistence live in `../broker/`;
 *  - `cluster-bus.ts`: live state and figures shared between nodes.
 */
export interface ClusterInfo {
  /** This node's name (logs, lease holder, aedes broker id, /metrics label). */
  readonly nodeId: string;
  /** Whether other nodes may exist (cluster mode). */
  readonly clustered: boolean;
  /** Redis URL in cluster mode; null on a single process. */
  readonly redisUrl: string | null;
  /** Cluster: how long a lease lasts without renewal. */
  readonly leaseTtlMs: number;
}

export function clusterInfo(config: { cluster: { redisUrl: string; nodeId: string; leaseTtlMs: number } | null; influx?: unknown }, logger: Logger): ClusterInfo {
  if (!config.cluster) return { nodeId: 'single', clustered: false, redisUrl: null, leaseTtlMs: 0 };
  if (!config.influx) {
    // Each node would keep the telemetry its own hubs sent in its own DATA_DIR/telemetry.db: a hub that
    // moved between nodes has its history split, and a node's API shows only its share.
    logger.warn({ nodeId: config.cluster.nodeId }, 'cluster mode without INFLUX_URL: telemetry stays in this node\'s own telemetry.db; set INFLUX_URL so every node writes to and reads from one store');
  }
  logger.info({ nodeId: config.cluster.nodeId, leaseTtlMs: config.cluster.leaseTtlMs }, 'cluster mode: sharing PostgreSQL and Redis with other nodes');
  return { nodeId: config.cluster.nodeId, clustered: true, redisUrl: config.cluster.redisUrl, leaseTtlMs: config.cluster.leaseTtlMs };
}
