import { regionLease, type Leases } from '../cluster/leases.ts';
import type { Regions } from '../hubs/regions.ts';
import type { Logger } from '../logger.ts';
import type { CloudMetrics } from '../metrics.ts';
import { ALARM_SEVERITIES, type AlarmSeverity } from '../alarms/alarm-rules.ts';
import type { Priority } from '../dispatch/dispatch-types.ts';
import { ORDER_STATES, type OrderState } from '../orders/order-lifecycle.ts';
import type { FieldValue, TelemetryPoint, TelemetryStore } from '../telemetry/telemetry-store.ts';

/**
 * Operational figures the dashboards need but no hub message carries — ingest counters, store write
 * latency, open alarms, hub modes, orders and deliveries — written every few seconds as points of the
 * OPS_MEASUREMENTS through the same TelemetryStore port, so Grafana reads everything from one
 * InfluxDB with InfluxQL (dashboards/).
 *
 * Every figure is written on every tick, zeros included, so a count that drops to zero shows as zero
 * and not as a gap. Tags stay bounded: region, registered hubs, alarm severities, order states and
 * priorities, rejection reasons.
 *
 * One cloud serves several regions (issue 14): every tick writes each region's figures tagged with
 * that region, the regions read from `Regions` at the tick, so a region added while running shows up
 * on the next one. The dashboards select a region; the cloud's own figures (ingest counters, store
 * writes), which belong to no region, are written into every region's `cloud_stats` alike, with the
 * region's own hubs online beside them. A source that fails (a database away) is logged and its
 * figures left out of that tick — a gap, not a false zero — and the rest is written.
 */

export const PRIORITIES: readonly Priority[] = ['normal', 'medical', 'relief'];

/** One reading of every source, taken at one tick (pure data: `opsStatsPoints` turns it into points). */
export interface OpsSnapshot {
  cloud: {
    ingestAcceptedTotal: number;
    ingestRejectedTotal: number;
    ingestPending: number;
    hubsOnline: number;
    /** Store writes (group commits) since the previous tick, with their latency; null before the first tick. */
    storeWrites: { count: number; meanMs: number | null; p50Ms: number | null; p95Ms: number | null } | null;
  };
  /** Cumulative rejections per reason. */
  rejections: ReadonlyMap<string, number>;
  /** Active (open or acknowledged) alarms; null when they could not be read this tick (none written). */
  alarms: readonly { hub: string; severity: AlarmSeverity }[] | null;
  modes: readonly { hub: string; emergency: boolean; acknowledged: boolean; version: number }[] | null;
  orders: readonly { state: OrderState; priority: Priority; count: number }[] | null;
  deliveries: readonly { priority: Priority; delivered: number; onTime: number }[] | null;
}

/** Pure: the points of one region's snapshot at time `now` (epoch ms). */
export function opsStatsPoints(region: string, hubs: readonly string[], s: OpsSnapshot, now: number): TelemetryPoint[] {
  const points: TelemetryPoint[] = [];
  // Region-level points have no hub or device: empty tags are left out by InfluxDB (an absent tag).
  // The region is part of the id: the SQLite store's dedupe key (hub, id, measurement) would take a
  // second region's region-level point for a repeat.
  const add = (measurement: TelemetryPoint['measurement'], hub: string, extra: Record<string, string>, fields: Record<string, FieldValue>): void => {
    const key = [measurement, hub, ...Object.values(extra)].join('-');
    points.push({ measurement, tags: { region, hub, device: hub === '' ? '' : 'hub', ...extra }, fields, ts: now, msgId: `ops-${now}-${region}-${key}` });
  };

  const c = s.cloud;
  const cloudFields: Record<string, FieldValue> = {
    ingest_accepted_total: c.ingestAcceptedTotal, ingest_rejected_total: c.ingestRejectedTotal,
    ingest_pending: c.ingestPending, hubs_online: c.hubsOnline,
  };
  if (c.storeWrites) {
    cloudFields.store_writes = c.storeWrites.count;
    if (c.storeWrites.meanMs !== null) cloudFields.store_write_mean_ms = round3(c.storeWrites.meanMs);
    if (c.storeWrites.p50Ms !== null) cloudFields.store_write_p50_ms = round3(c.storeWrites.p50Ms);
    if (c.storeWrites.p95Ms !== null) cloudFields.store_write_p95_ms = round3(c.storeWrites.p95Ms);
  }
  add('cloud_stats', '', {}, cloudFields);

  for (const [reason, count] of [...s.rejections].sort(([a], [b]) => a.localeCompare(b))) add('ingest_rejections', '', { reason }, { count });

  if (s.alarms) {
    // Counted once (a filter per hub and severity was hubs × alarms: seconds per tick in a national outage).
    const open = new Map<string, number>();
    for (const a of s.alarms) open.set(`${a.hub}\u0000${a.severity}`, (open.get(`${a.hub}\u0000${a.severity}`) ?? 0) + 1);
    for (const hub of hubs) {
      for (const severity of ALARM_SEVERITIES) {
        add('alarms_open', hub, { severity }, { count: open.get(`${hub}\u0000${severity}`) ?? 0 });
      }
    }
  }

  for (const m of s.modes ?? []) {
    add('hub_mode', m.hub, {}, { emergency: m.emergency ? 1 : 0, acknowledged: m.acknowledged ? 1 : 0, version: m.version });
  }

  if (s.orders) {
    for (const state of ORDER_STATES) {
      for (const priority of PRIORITIES) {
        const count = s.orders.find((o) => o.state === state && o.priority === priority)?.count ?? 0;
        add('orders', '', { state, priority }, { count });
      }
    }
  }

  if (s.deliveries) {
    for (const priority of PRIORITIES) {
      const d = s.deliveries.find((x) => x.priority === priority);
      add('deliveries', '', { priority }, { delivered: d?.delivered ?? 0, on_time: d?.onTime ?? 0 });
    }
  }
  return points;
}

/** Cumulative histogram buckets (prom-client `le` upper bounds, the last one +Inf). */
export interface Bucket {
  le: number;
  count: number;
}

/**
 * The q-quantile of the observations between two readings of a cumulative histogram, interpolated
 * linearly inside its bucket (as Prometheus' histogram_quantile does); null without observations.
 */
export function quantileBetween(before: readonly Bucket[], after: readonly Bucket[], q: number): number | null {
  const delta = after.map((b) => ({ le: b.le, count: b.count - (before.find((x) => x.le === b.le)?.count ?? 0) }));
  const total = delta.at(-1)?.count ?? 0;
  if (total <= 0) return null;
  const rank = q * total;
  let lowerLe = 0;
  let lowerCount = 0;
  for (const b of delta) {
    if (b.count >= rank) {
      // Beyond the last finite bound nothing better than that bound is known.
      if (!Number.isFinite(b.le)) return lowerLe;
      const inBucket = b.count - lowerCount;
      return inBucket <= 0 ? b.le : lowerLe + ((b.le - lowerLe) * (rank - lowerCount)) / inBucket;
    }
    lowerLe = b.le;
    lowerCount = b.count;
  }
  return lowerLe;
}

type Awaitable<T> = T | Promise<T>;

/** What the writer reads; the cloud passes its services, a test passes fakes. Any source may answer later (a database) or fail. */
export interface OpsStatsSources {
  metrics: Pick<CloudMetrics, 'accepted' | 'rejected' | 'ingestPending' | 'hubOnline' | 'storeWriteSeconds'>;
  /** The active alarms of every region (read once per tick; each region counts its own hubs'). */
  activeAlarms(): Awaitable<readonly { hub: string; severity: AlarmSeverity }[]>;
  modes(region: string): Awaitable<NonNullable<OpsSnapshot['modes']>>;
  orderCounts(region: string): Awaitable<NonNullable<OpsSnapshot['orders']>>;
  deliveries(region: string): Awaitable<NonNullable<OpsSnapshot['deliveries']>>;
}

export interface OpsStatsWriterOptions {
  store: TelemetryStore;
  /** The regions served, read at every tick. */
  regions: Regions;
  sources: OpsStatsSources;
  /** Default 10 s (OPS_STATS_INTERVAL_S). */
  intervalMs?: number;
  now?: () => number;
  logger: Logger;
  /**
   * Issue 15: in a cluster each region's figures are written by the node holding its lease only (one
   * series per region, not one per node). Not fenced: the points go to the telemetry store, not the
   * operational database — a node that lost the lease during a tick may write that tick's points; they
   * are true figures read from the database at a distinct time, a gauge sample more, never a count
   * added twice. Default: every region (a single process).
   */
  leases?: Pick<Leases, 'holds'>;
}

export interface OpsStatsWriter {
  /** Takes one snapshot and writes it (also what every tick does). */
  writeOnce(): Promise<void>;
  /** Stops the timer and waits for a write under way. Idempotent. */
  stop(): Promise<void>;
}

export function startOpsStatsWriter(o: OpsStatsWriterOptions): OpsStatsWriter {
  const log = o.logger.child({ component: 'ops-stats' });
  const now = o.now ?? Date.now;
  let previousBuckets: Bucket[] | null = null;
  let previousSum = 0;
  let running: Promise<void> | null = null;
  let stopped = false;

  /** The cloud's own figures (no region's): ingest counters, store writes since the last tick, hubs online. */
  const cloudFigures = async () => {
    const m = o.sources.metrics;
    const [accepted, rejected, pending, online, writes] = await Promise.all([
      m.accepted.get(), m.rejected.get(), m.ingestPending.get(), m.hubOnline.get(), m.storeWriteSeconds.get(),
    ]);
    const sum = (values: readonly { value: number }[]) => values.reduce((acc, v) => acc + v.value, 0);
    const rejections = new Map<string, number>();
    for (const v of rejected.values) {
      const reason = String(v.labels.reason ?? 'unknown');
      rejections.set(reason, (rejections.get(reason) ?? 0) + v.value);
    }
    // The histogram has a label (store) but one store per cloud: add up its series bound by bound.
    const buckets = new Map<number, number>();
    let writeSum = 0;
    for (const v of writes.values) {
      if (v.metricName?.endsWith('_bucket')) {
        const bound = (v.labels as Record<string, string | number | undefined>).le;
        const le = bound === '+Inf' ? Infinity : Number(bound);
        buckets.set(le, (buckets.get(le) ?? 0) + v.value);
      } else if (v.metricName?.endsWith('_sum')) {
        writeSum += v.value;
      }
    }
    const current = [...buckets].map(([le, count]) => ({ le, count })).sort((a, b) => a.le - b.le);
    let storeWrites: OpsSnapshot['cloud']['storeWrites'] = null;
    if (previousBuckets) {
      const count = (current.at(-1)?.count ?? 0) - (previousBuckets.at(-1)?.count ?? 0);
      const p50 = quantileBetween(previousBuckets, current, 0.5);
      const p95 = quantileBetween(previousBuckets, current, 0.95);
      storeWrites = {
        count,
        meanMs: count > 0 ? ((writeSum - previousSum) / count) * 1000 : null,
        p50Ms: p50 === null ? null : p50 * 1000,
        p95Ms: p95 === null ? null : p95 * 1000,
      };
    }
    previousBuckets = current;
    previousSum = writeSum;
    const onlineHubs = new Set(online.values.filter((v) => v.value === 1).map((v) => String(v.labels.hub)));
    return {
      ingestAcceptedTotal: sum(accepted.values), ingestRejectedTotal: sum(rejected.values), ingestPending: sum(pending.values),
      onlineHubs, storeWrites, rejections,
    };
  };

  /** A source's answer, or null (logged) when it fails: its figures are left out of this tick. */
  const read = async <T>(source: string, region: string | null, get: () => Awaitable<T>): Promise<T | null> => {
    try {
      return await get();
    } catch (err) {
      log.warn({ err, source, region }, 'an ops stats source failed; its figures are left out of this tick');
      return null;
    }
  };

  const writeOnce = async (): Promise<void> => {
    const c = await cloudFigures();
    const s = o.sources;
    const regions = o.regions.all().filter((r) => o.leases?.holds(regionLease(r.id)) ?? true);
    if (regions.length === 0) return;
    const alarms = await read('alarms', null, () => s.activeAlarms());
    const at = now();
    const perRegion = await Promise.all(regions.map(async ({ id: region }) => {
      const hubs = o.regions.hubIds(region);
      const [modes, orders, deliveries] = await Promise.all([
        read('modes', region, () => s.modes(region)),
        read('orders', region, () => s.orderCounts(region)),
        read('deliveries', region, () => s.deliveries(region)),
      ]);
      const snapshot: OpsSnapshot = {
        cloud: {
          ingestAcceptedTotal: c.ingestAcceptedTotal, ingestRejectedTotal: c.ingestRejectedTotal, ingestPending: c.ingestPending,
          hubsOnline: hubs.filter((h) => c.onlineHubs.has(h)).length, storeWrites: c.storeWrites,
        },
        rejections: c.rejections, alarms, modes, orders, deliveries,
      };
      return opsStatsPoints(region, hubs, snapshot, at);
    }));
    const points = perRegion.flat();
    await o.store.write(points);
    log.debug({ points: points.length, regions: regions.length }, 'ops stats written');
  };

  const tick = (): void => {
    if (running || stopped) return; // a slow store: skip a tick rather than pile writes up
    running = writeOnce()
      .catch((err: unknown) => log.warn({ err }, 'writing ops stats failed; next try at the next tick'))
      .finally(() => (running = null));
  };
  const timer = setInterval(tick, o.intervalMs ?? 10_000);
  timer.unref();
  tick();

  return {
    writeOnce,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;
