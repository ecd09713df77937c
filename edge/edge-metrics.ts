import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { DROP_REASONS, type OutboxStats } from './outbox/outbox.ts';
import type { StorageStatus } from './storage-health.ts';
import type { UplinkStats } from './uplink.ts';

/** The agent's Prometheus metrics (served on its local HTTP endpoint at /metrics). */
export function createEdgeMetrics(outbox: () => OutboxStats, uplink: () => UplinkStats, now: () => number, storage: () => StorageStatus) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const m = {
    registry,
    accepted: new Counter({ name: 'edge_device_messages_total', help: 'Device messages by outbox outcome', labelNames: ['outcome'] as const, registers: [registry] }),
    rejected: new Counter({ name: 'edge_device_messages_refused_total', help: 'Device messages refused locally, by reason', labelNames: ['reason'] as const, registers: [registry] }),
    commands: new Counter({ name: 'edge_commands_total', help: 'Commands from the cloud, by what the agent did', labelNames: ['result'] as const, registers: [registry] }),
    localAuthFailures: new Counter({ name: 'edge_local_auth_failures_total', help: 'Refused logins at the local broker, by reason', labelNames: ['reason'] as const, registers: [registry] }),
    refusedPackets: new Counter({
      name: 'edge_local_packets_refused_total', help: 'Local MQTT connections closed for a packet over the size limit, malformed or stalled half-sent', labelNames: ['reason'] as const, registers: [registry],
    }),
    refusedConnections: new Counter({
      name: 'edge_local_connections_refused_total', help: 'Local MQTT connections closed on arrival: over LOCAL_MAX_CONNECTIONS (total) or LOCAL_MAX_CONNECTIONS_PER_ADDRESS (per_address)', labelNames: ['reason'] as const, registers: [registry],
    }),
    storageErrors: new Counter({
      name: 'edge_storage_errors_total', help: 'Storage (SQLite) errors caught at an event boundary, e.g. a full disk, by where they happened', labelNames: ['where'] as const, registers: [registry],
    }),
    httpUnauthorized: new Counter({ name: 'edge_http_unauthorized_total', help: 'Local HTTP requests refused for a missing or wrong staff token', registers: [registry] }),
  };
  new Gauge({
    name: 'edge_outbox_depth', help: 'Messages waiting to be sent, by lane', labelNames: ['lane'] as const, registers: [registry],
    collect() {
      const s = outbox();
      for (const [lane, n] of Object.entries(s.byLane)) this.set({ lane }, n);
    },
  });
  new Gauge({
    name: 'edge_outbox_oldest_unsent_age_seconds', help: 'Age of the oldest unsent message', registers: [registry],
    collect() {
      const s = outbox();
      this.set(s.oldestAcceptedAt === null ? 0 : (now() - s.oldestAcceptedAt) / 1000);
    },
  });
  new Gauge({
    name: 'edge_outbox_dropped_total', help: 'Messages dropped by the bound policy, by reason (persisted across restarts)', labelNames: ['reason'] as const, registers: [registry],
    collect() {
      const d = outbox().dropped;
      for (const r of DROP_REASONS) this.set({ reason: r }, d[r]);
    },
  });
  new Gauge({ name: 'edge_storage_ok', help: '1 while the agent can write to its disk (0 after a storage error until the next successful write)', registers: [registry], collect() { this.set(storage().ok ? 1 : 0); } });
  new Gauge({ name: 'edge_outbox_bytes', help: 'Payload bytes of the waiting messages (bounded by OUTBOX_MAX_BYTES)', registers: [registry], collect() { this.set(outbox().bytes); } });
  new Gauge({ name: 'edge_outbox_file_bytes', help: 'Outbox database size on disk', registers: [registry], collect() { this.set(outbox().fileBytes); } });
  new Gauge({ name: 'edge_uplink_connected', help: '1 while connected to the cloud', registers: [registry], collect() { this.set(uplink().connected ? 1 : 0); } });
  new Gauge({ name: 'edge_uplink_connects_total', help: 'Successful connections to the cloud', registers: [registry], collect() { this.set(uplink().connects); } });
  new Gauge({
    name: 'edge_uplink_home_returns_total', help: 'Moves back to the hub\'s own cloud node after a failover (CLOUD_HOME_RETURN_S), and checks that found it still unreachable', labelNames: ['result'] as const, registers: [registry],
    collect() {
      const u = uplink();
      this.set({ result: 'moved' }, u.homeReturns);
      this.set({ result: 'unreachable' }, u.homeChecksFailed);
    },
  });
  new Gauge({
    name: 'edge_uplink_acked_total', help: 'Messages the cloud acknowledged, by whether they were sent marked historical', labelNames: ['marked'] as const, registers: [registry],
    collect() {
      const u = uplink();
      this.set({ marked: 'historical' }, u.ackedHistorical);
      this.set({ marked: 'live' }, u.acked - u.ackedHistorical);
    },
  });
  return m;
}

export type EdgeMetrics = ReturnType<typeof createEdgeMetrics>;
