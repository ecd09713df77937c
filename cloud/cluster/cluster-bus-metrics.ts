import type { Redis } from 'ioredis';
import { AggregatorRegistry, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../logger.ts';

/**
 * `/metrics` of the whole cluster from any node (issue 15). Every node writes its prom-client
 * registry as JSON (`getMetricsAsJSON`) to Redis every `intervalMs`, with a TTL of three intervals
 * (a dead node's figures leave the sum then); a scrape merges this node's current figures with the
 * others' last ones by prom-client's `AggregatorRegistry.aggregate` — the library's own merge, made
 * for this (workers of one machine), which applies each metric's `aggregator`:
 *
 *  - counters, histograms and per-process gauges (ingest, MQTT connections, `hubs_connected` — each
 *    node counts its own connections —, process CPU and memory): summed over the nodes;
 *  - the per-hub link gauges (`hub_online`, `hub_outbox_depth`, `hub_oldest_unsent_age_seconds`):
 *    every node's live state already shows the whole deployment (cluster bus), so they are this
 *    node's values, not sent to Redis at all (13,800 hubs would be ~1 MB per node per interval);
 *  - prom-client's own choices for its default metrics (e.g. `nodejs_version_info`: first).
 *
 * Added at the scrape: `cloud_cluster_nodes` (nodes whose figures are in the sum) and
 * `cloud_cluster_node_up{node}` (1 per such node). A scrape is therefore at most `intervalMs` behind
 * for the other nodes. Figures of one node larger than `maxBytes` are left out (logged).
 */
export const CLUSTER_WIDE_VIEW = new Set(['hub_online', 'hub_outbox_depth', 'hub_oldest_unsent_age_seconds']);

export interface ClusterMetricsOptions {
  redis: Redis;
  prefix: string;
  nodeId: string;
  registry: Registry;
  /** Nodes with a live heartbeat (the cluster bus knows). */
  nodes: () => string[];
  logger: Logger;
  intervalMs?: number;
  maxBytes?: number;
}

export interface ClusterMetrics {
  contentType: string;
  /** The cluster's figures in the Prometheus text format. */
  text(): Promise<string>;
  /** Writes this node's figures now (tests; the timer does it every interval). */
  publish(): Promise<void>;
  stop(): Promise<void>;
}

export function startClusterMetrics(o: ClusterMetricsOptions): ClusterMetrics {
  const intervalMs = o.intervalMs ?? 5000;
  const maxBytes = o.maxBytes ?? 4 * 1024 * 1024;
  const key = (node: string) => `${o.prefix}:metrics:${node}`;
  const log = o.logger.child({ component: 'cluster-metrics' });
  const own = async () => (await o.registry.getMetricsAsJSON());
  const publish = async () => {
    // Metric by metric (what getMetricsAsJSON does, without default labels, which no registry here has), so
    // the per-hub gauges' collect() over every hub is not run just to be left out.
    const shared = await Promise.all(o.registry.getMetricsAsArray().filter((m) => !CLUSTER_WIDE_VIEW.has(m.name)).map((m) => (m as unknown as { get(): Promise<unknown> }).get()));
    const json = JSON.stringify(shared);
    if (json.length > maxBytes) {
      log.warn({ bytes: json.length, maxBytes }, 'this node\'s figures are too large to share; /metrics of other nodes leave them out');
      return;
    }
    await o.redis.set(key(o.nodeId), json, 'PX', intervalMs * 3);
  };
  const timer = setInterval(() => void publish().catch((err: unknown) => log.warn({ err }, 'sharing this node\'s figures failed')), intervalMs);
  timer.unref();
  void publish().catch(() => undefined);
  return {
    contentType: o.registry.contentType,
    publish,
    async text() {
      const others = o.nodes().filter((n) => n !== o.nodeId);
      const values = others.length > 0 ? await o.redis.mget(...others.map(key)).catch((err: unknown) => {
        log.warn({ err }, 'reading other nodes\' figures failed; /metrics shows this node only');
        return others.map(() => null);
      }) : [];
      const sets: Awaited<ReturnType<typeof own>>[] = [await own()];
      const merged = [o.nodeId];
      values.forEach((v, i) => {
        if (v === null || v.length > maxBytes) return;
        try {
          sets.push(JSON.parse(v) as Awaited<ReturnType<typeof own>>);
          merged.push(others[i]!);
        } catch (err) {
          log.warn({ err, node: others[i] }, 'another node\'s figures could not be read');
        }
      });
      const registry = AggregatorRegistry.aggregate(sets);
      new Gauge({ name: 'cloud_cluster_nodes', help: 'Cluster nodes whose figures this scrape sums', registers: [registry] }).set(merged.length);
      const up = new Gauge({ name: 'cloud_cluster_node_up', help: 'Nodes whose figures this scrape sums (1 each)', labelNames: ['node'] as const, registers: [registry] });
      for (const n of merged) up.set({ node: n }, 1);
      return registry.metrics();
    },
    async stop() {
      clearInterval(timer);
      await o.redis.del(key(o.nodeId)).catch(() => undefined);
    },
  };
}
