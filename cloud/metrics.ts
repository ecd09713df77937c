import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { REJECTION_REASONS } from './ingest/classify.ts';

/** Every Prometheus metric of the cloud, on one registry per cloud instance (tests run several). */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const m = {
    registry,
    accepted: new Counter({
      name: 'ingest_messages_accepted_total', help: 'Messages that passed validation and were stored, by message type',
      labelNames: ['type'] as const, registers: [registry],
    }),
    rejected: new Counter({
      name: 'ingest_messages_rejected_total', help: 'Messages rejected and dead-lettered, by reason',
      labelNames: ['reason'] as const, registers: [registry],
    }),
    deadLettersEvicted: new Counter({
      name: 'ingest_dead_letters_evicted_total', help: 'Oldest dead letters deleted to stay within DEAD_LETTER_MAX_ROWS', registers: [registry],
    }),
    ingestPending: new Gauge({ name: 'ingest_pending_messages', help: 'Messages received but not yet durably written', registers: [registry] }),
    storeWriteSeconds: new Histogram({
      name: 'store_write_duration_seconds', help: 'Telemetry store write (one group commit) latency',
      labelNames: ['store'] as const, buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [registry],
    }),
    storeBatchPoints: new Histogram({
      name: 'store_write_batch_points', help: 'Points per group commit', labelNames: ['store'] as const,
      buckets: [1, 10, 50, 100, 500, 1000, 2500, 5000, 10000], registers: [registry],
    }),
    storeWriteFailures: new Counter({
      name: 'store_write_failures_total', help: 'Failed telemetry store writes (each retried)', labelNames: ['store'] as const, registers: [registry],
    }),
    mqttConnections: new Gauge({ name: 'mqtt_connected_clients', help: 'Authenticated MQTT connections', registers: [registry] }),
    hubsConnected: new Gauge({ name: 'hubs_connected', help: 'Hubs with at least one live MQTT connection', registers: [registry] }),
    authFailures: new Counter({
      name: 'mqtt_auth_failures_total', help: 'Refused MQTT connections, by reason', labelNames: ['reason'] as const, registers: [registry],
    }),
    publishDenied: new Counter({
      name: 'mqtt_publish_denied_total', help: 'Publishes refused by the access policy (the connection is closed)', labelNames: ['reason'] as const, registers: [registry],
    }),
    subscribeDenied: new Counter({
      name: 'mqtt_subscribe_denied_total', help: 'Subscriptions refused by the access policy (SUBACK 0x80)', registers: [registry],
    }),
    oversizedPackets: new Counter({
      name: 'mqtt_oversized_packets_total', help: 'Connections closed for sending an MQTT packet over MQTT_MAX_PACKET_BYTES', registers: [registry],
    }),
    inflightExceeded: new Counter({
      name: 'mqtt_inflight_exceeded_total', help: 'Connections closed for exceeding MQTT_MAX_INFLIGHT_PER_CLIENT', registers: [registry],
    }),
  };
  for (const reason of REJECTION_REASONS) m.rejected.inc({ reason }, 0);
  return m;
}

export type CloudMetrics = ReturnType<typeof createMetrics>;
