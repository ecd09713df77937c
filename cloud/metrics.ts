import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { REJECTION_REASONS } from './ingest/classify.ts';
import type { HubLinkSample } from './live/live-state.ts';

export interface MetricsSources {
  /** Read at every scrape, so the per-hub gauges are always current. */
  hubLinks?: () => Iterable<HubLinkSample>;
  /** Hubs with at least one MQTT connection, read at every scrape. */
  hubsConnected?: () => number;
  /** Resolution of the event-loop delay histogram (prom-client's monitorEventLoopDelay), ms; default 10. */
  eventLoopResolutionMs?: number;
}

/** Every Prometheus metric of the cloud, on one registry per cloud instance (tests run several). */
export function createMetrics(sources: MetricsSources = {}) {
  const hubLinks = sources.hubLinks ?? (() => []);
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: sources.eventLoopResolutionMs ?? 10 });
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
    duplicates: new Counter({
      name: 'ingest_duplicates_total', help: 'Re-sent messages (same hub and message id) acknowledged without storing or applying them again, by message type',
      labelNames: ['type'] as const, registers: [registry],
    }),
    deadLettersEvicted: new Counter({
      name: 'ingest_dead_letters_evicted_total', help: 'Oldest dead letters deleted to stay within a hub\'s quota (DEAD_LETTER_MAX_ROWS_PER_HUB, DEAD_LETTER_MAX_BYTES_PER_HUB) or the total bound (DEAD_LETTER_MAX_ROWS, DEAD_LETTER_MAX_BYTES)', registers: [registry],
    }),
    unacknowledged: new Counter({
      name: 'ingest_messages_unacknowledged_total',
      help: 'Messages left unacknowledged (the publisher re-sends them) because recording them failed: dead_letter_failed (the store refused it and the dead-letter write failed), mode_ack_store_failed',
      labelNames: ['reason'] as const, registers: [registry],
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
    hubsConnected: new Gauge({
      name: 'hubs_connected', help: 'Hubs with at least one live MQTT connection', registers: [registry],
      collect() {
        if (sources.hubsConnected) this.set(sources.hubsConnected());
      },
    }),
    hubOnline: new Gauge({
      name: 'hub_online', help: 'Hub link: 1 while the hub is connected and its status is not "offline", else 0 (hubs of the region file and hubs that connected)',
      labelNames: ['hub'] as const, registers: [registry],
      collect() {
        this.reset();
        for (const h of hubLinks()) this.set({ hub: h.hub }, h.online ? 1 : 0);
      },
    }),
    hubOutboxDepth: new Gauge({
      name: 'hub_outbox_depth', help: 'Messages waiting in the hub\'s outbox, as last reported by its hub.status (absent until a hub reports)',
      labelNames: ['hub'] as const, registers: [registry],
      collect() {
        this.reset();
        for (const h of hubLinks()) if (h.outboxDepth !== null) this.set({ hub: h.hub }, h.outboxDepth);
      },
    }),
    hubOldestUnsentAge: new Gauge({
      name: 'hub_oldest_unsent_age_seconds', help: 'Age of the oldest message in the hub\'s outbox when the hub last reported it (absent until a hub reports)',
      labelNames: ['hub'] as const, registers: [registry],
      collect() {
        this.reset();
        for (const h of hubLinks()) if (h.oldestUnsentAgeS !== null) this.set({ hub: h.hub }, h.oldestUnsentAgeS);
      },
    }),
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
    stalledPackets: new Counter({
      name: 'mqtt_stalled_packets_total', help: 'Connections closed for not completing an MQTT packet within MQTT_PACKET_TIMEOUT_S of its first byte', registers: [registry],
    }),
    pickupCodes: new Counter({
      name: 'pickup_codes_total', help: 'Pickup codes typed at lockers, by result (rejected = wrong code; locked = refused on a locked compartment)',
      labelNames: ['result'] as const, registers: [registry],
    }),
    missionEventsRefused: new Counter({
      name: 'mission_events_refused_total', help: "Drone events naming a mission that is not the sending drone's (another hub's or another drone's order); ignored", registers: [registry],
    }),
    inflightExceeded: new Counter({
      name: 'mqtt_inflight_exceeded_total', help: 'Connections closed for exceeding MQTT_MAX_INFLIGHT_PER_CLIENT', registers: [registry],
    }),
  };
  for (const reason of REJECTION_REASONS) m.rejected.inc({ reason }, 0);
  return m;
}

export type CloudMetrics = ReturnType<typeof createMetrics>;
