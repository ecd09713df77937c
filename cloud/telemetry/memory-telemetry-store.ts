import { MESSAGE_MEASUREMENTS, type FieldValue, type HistoryBucket, type Measurement, type TelemetryPoint, type TelemetryStore } from './telemetry-store.ts';

/**
 * A TelemetryStore in memory, for tests of code that writes or reads telemetry (ingest, the ops
 * statistics). It passes the same contract suite as the InfluxDB and SQLite adapters
 * (telemetry-store.contract.ts; issue 14: the fakes were never checked against it), so a test on it
 * cannot rely on behaviour the real stores do not have. A point's identity is InfluxDB's: measurement,
 * tag set and timestamp; writing it again replaces its fields.
 */
export interface MemoryTelemetryStore extends TelemetryStore {
  /** The values of a string field, oldest first (the contract's raw read). */
  readStrings(q: { measurement: Measurement; hub: string; field: string; from: number; to: number }): Promise<string[]>;
}

const MESSAGE = new Set<string>(MESSAGE_MEASUREMENTS);

export function createMemoryTelemetryStore(kind = 'memory'): MemoryTelemetryStore {
  /** By point identity; insertion order is write order. */
  const points = new Map<string, TelemetryPoint>();
  const identity = (p: TelemetryPoint) =>
    JSON.stringify([p.measurement, p.ts, Object.entries(p.tags).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))]);
  const select = (measurement: Measurement, hub: string, from: number, to: number) =>
    [...points.values()].filter((p) => p.measurement === measurement && p.tags.hub === hub && p.ts >= from && p.ts < to);
  return {
    kind,
    async write(list) {
      for (const p of list) {
        const key = identity(p);
        points.delete(key); // re-inserted: a rewrite counts as the latest write
        points.set(key, { ...p, tags: { ...p.tags }, fields: { ...p.fields } });
      }
    },
    async history(q) {
      const buckets = new Map<number, { ts: number; value: number }[]>();
      for (const p of select(q.measurement, q.hub, q.from, q.to)) {
        if (p.tags.device !== q.device) continue;
        if (q.where && Object.entries(q.where).some(([k, v]) => p.tags[k] !== v)) continue;
        const value: FieldValue | undefined = p.fields[q.field];
        if (typeof value !== 'number') continue;
        const t = Math.floor(p.ts / q.bucketMs) * q.bucketMs;
        const b = buckets.get(t) ?? [];
        b.push({ ts: p.ts, value });
        buckets.set(t, b);
      }
      const out: HistoryBucket[] = [];
      for (const t of [...buckets.keys()].sort((a, b) => a - b)) {
        const b = buckets.get(t)!;
        const values = b.map((s) => s.value);
        const value =
          q.aggregate === 'mean' ? values.reduce((n, v) => n + v, 0) / values.length
            : q.aggregate === 'min' ? Math.min(...values)
              : q.aggregate === 'max' ? Math.max(...values)
                : q.aggregate === 'count' ? values.length
                  : b.reduce((last, s) => (s.ts >= last.ts ? s : last)).value;
        out.push({ t, value });
      }
      return out;
    },
    async messageIds(hub, from, to) {
      const ids = new Set<string>();
      for (const p of points.values()) if (MESSAGE.has(p.measurement) && p.tags.hub === hub && p.ts >= from && p.ts < to) ids.add(p.msgId);
      return [...ids].sort();
    },
    async countPoints(measurement, hub, from, to) {
      return select(measurement, hub, from, to).length;
    },
    async readStrings(q) {
      return select(q.measurement, q.hub, q.from, q.to)
        .sort((a, b) => a.ts - b.ts)
        .flatMap((p) => (typeof p.fields[q.field] === 'string' ? [p.fields[q.field] as string] : []));
    },
    async close() {},
  };
}
