/**
 * The telemetry store port. Two adapters implement it — InfluxDB (v1-compatible HTTP API) and the
 * embedded SQLite default — and both must pass the shared suite in `telemetry-store.contract.ts`.
 *
 * Storage model (documented for operators in README "Telemetry storage"):
 *   measurement  one of MEASUREMENTS
 *   tags         region, hub, device (+ compartment, size, temp_class on `locker`; kind, event, severity
 *                on `event`). Every tag value comes from a bounded set: registered hubs and devices,
 *                ≤ 64 compartments per locker bank, contract enums. Free text never becomes a tag.
 *   fields       numbers (booleans stored as 0/1 so dashboards can sum and average them), a few
 *                enumerated strings, and `msg_id` (the message id, for dedupe and loss audits).
 *   time         the device timestamp, millisecond precision.
 * A point is identified by (measurement, tags, time), so re-writing a re-sent message is idempotent.
 */
/** Measurements written from hub messages (each point carries its message's id). */
export const MESSAGE_MEASUREMENTS = ['drone', 'locker', 'sensor', 'event', 'hub_status'] as const;
/**
 * Measurements the cloud writes about itself every few seconds (cloud/ops-stats/): ingest and store
 * figures, open alarms, hub modes, orders and deliveries — so dashboards read them from one store.
 * Their ids (`ops-…`) are no hub messages, so `messageIds` leaves them out.
 */
export const OPS_MEASUREMENTS = ['cloud_stats', 'ingest_rejections', 'alarms_open', 'hub_mode', 'orders', 'deliveries'] as const;
export const MEASUREMENTS = [...MESSAGE_MEASUREMENTS, ...OPS_MEASUREMENTS] as const;
export type Measurement = (typeof MEASUREMENTS)[number];

export type FieldValue = number | string;

export interface TelemetryPoint {
  measurement: Measurement;
  /** Always region, hub, device (device is "hub" for hub-level points); plus measurement-specific tags. */
  tags: Record<string, string> & { region: string; hub: string; device: string };
  fields: Record<string, FieldValue>;
  /** Device timestamp, epoch ms. */
  ts: number;
  /** Message id (unique per hub); several points may share one (a locker bank's compartments). */
  msgId: string;
}

export type Aggregate = 'mean' | 'min' | 'max' | 'last' | 'count';

export interface HistoryQuery {
  measurement: Measurement;
  hub: string;
  device: string;
  /** Extra tag filters, e.g. { compartment: 'A01' }. */
  where?: Record<string, string>;
  field: string;
  /** Inclusive start, epoch ms. */
  from: number;
  /** Exclusive end, epoch ms. */
  to: number;
  bucketMs: number;
  aggregate: Aggregate;
}

export interface HistoryBucket {
  /** Bucket start, epoch ms (aligned to multiples of bucketMs since the epoch). */
  t: number;
  value: number;
}

export interface TelemetryStore {
  /** A short name for logs and /healthz ("influxdb", "sqlite"). */
  readonly kind: string;
  /**
   * Durably stores the points. Resolves only when they are stored (the caller acknowledges the
   * messages after that); rejects with a descriptive error otherwise, storing all or nothing is not
   * required but re-writing the same points must be idempotent.
   */
  write(points: readonly TelemetryPoint[]): Promise<void>;
  /** Time-bucketed aggregate of one numeric field; buckets without data are omitted. */
  history(q: HistoryQuery): Promise<HistoryBucket[]>;
  /** Distinct message ids stored for a hub in [from, to) — for loss and duplicate audits (MESSAGE_MEASUREMENTS only). */
  messageIds(hub: string, from: number, to: number): Promise<string[]>;
  /** Number of stored points of a measurement for a hub in [from, to). */
  countPoints(measurement: Measurement, hub: string, from: number, to: number): Promise<number>;
  close(): Promise<void>;
}

/** What the adapters log through; any pino logger fits. */
export interface TelemetryStoreLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export class TelemetryStoreError extends Error {
  override readonly name = 'TelemetryStoreError';
  constructor(
    message: string,
    /** `unreachable` and `unavailable` are worth retrying; `auth`, `config` and `rejected` are not. */
    readonly code: 'unreachable' | 'unavailable' | 'auth' | 'config' | 'rejected',
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
  get retryable(): boolean {
    return this.code === 'unreachable' || this.code === 'unavailable';
  }
}
