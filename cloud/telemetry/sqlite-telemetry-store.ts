import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import {
  MESSAGE_MEASUREMENTS,
  TelemetryStoreError,
  type Aggregate,
  type HistoryBucket,
  type HistoryQuery,
  type Measurement,
  type TelemetryPoint,
  type TelemetryStore,
  type TelemetryStoreLogger,
} from './telemetry-store.ts';

/**
 * The embedded default telemetry store: one SQLite file (better-sqlite3, WAL), one row per point.
 *
 * Dedupe: a re-sent message has the same (hub, device, msg_id), and within a message a measurement
 * has at most one point per locker compartment (`part`), so UNIQUE(hub, device, msg_id, measurement,
 * part) with INSERT OR IGNORE makes re-writes idempotent. The device is part of the key (issue 11,
 * schema version 2) so that one device cannot send another's next message ids first and have that
 * device's genuine readings dropped.
 */


export interface SqliteTelemetryStoreOptions {
  /** Database file (its directory is created). */
  path: string;
  /**
   * `full`: every write() is fsynced before it resolves (survives power loss).
   * `normal`: in WAL mode, survives a process crash but the last commits may be lost on power loss.
   */
  synchronous?: 'full' | 'normal';
  /** How long a write waits for another connection's lock. Default 5 s. */
  busyTimeoutMs?: number;
  logger?: TelemetryStoreLogger;
}

const SCHEMA_VERSION = 2;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS points (
  ts          INTEGER NOT NULL,  -- device timestamp, epoch ms
  measurement TEXT    NOT NULL,
  region      TEXT    NOT NULL,
  hub         TEXT    NOT NULL,
  device      TEXT    NOT NULL,
  part        TEXT    NOT NULL,  -- locker compartment, or '' (part of the dedupe key)
  tags        TEXT    NOT NULL,  -- JSON object: the full tag set
  fields      TEXT    NOT NULL,  -- JSON object
  msg_id      TEXT    NOT NULL,
  UNIQUE (hub, device, msg_id, measurement, part)
) STRICT;
CREATE INDEX IF NOT EXISTS points_series_ts ON points (hub, device, measurement, ts);
`;

/**
 * Version 1 → 2: the device joins the dedupe key. SQLite cannot change a table's UNIQUE constraint,
 * so the table is rebuilt (once; every row kept) in one transaction.
 */
const MIGRATE_V1_TO_V2 = `
DROP INDEX IF EXISTS points_series_ts;
ALTER TABLE points RENAME TO points_v1;
${SCHEMA}
INSERT INTO points (ts, measurement, region, hub, device, part, tags, fields, msg_id)
  SELECT ts, measurement, region, hub, device, part, tags, fields, msg_id FROM points_v1;
DROP TABLE points_v1;
`;

export async function createSqliteTelemetryStore(options: SqliteTelemetryStoreOptions): Promise<TelemetryStore> {
  const synchronous = options.synchronous ?? 'full';
  let db: Database.Database;
  try {
    if (options.path !== ':memory:') mkdirSync(path.dirname(path.resolve(options.path)), { recursive: true });
    db = new Database(options.path);
  } catch (err) {
    throw new TelemetryStoreError(`cannot open the SQLite telemetry database ${options.path}: ${(err as Error).message}: check DATA_DIR and its permissions`, 'config', {
      cause: err,
    });
  }
  try {
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
    db.pragma(`busy_timeout = ${Math.trunc(options.busyTimeoutMs ?? 5_000)}`);
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      throw new Error(`its schema version ${version} is newer than this software's (${SCHEMA_VERSION})`);
    }
    db.transaction(() => {
      db.exec(version === 1 ? MIGRATE_V1_TO_V2 : SCHEMA);
      db.pragma(`user_version = ${SCHEMA_VERSION}`);
    })();
  } catch (err) {
    db.close();
    throw new TelemetryStoreError(`cannot use the SQLite telemetry database ${options.path}: ${(err as Error).message}`, 'config', { cause: err });
  }
  options.logger?.info({ path: options.path, synchronous }, 'SQLite telemetry store open');
  if (options.path === ':memory:') {
    db.close();
    throw new TelemetryStoreError('the SQLite telemetry store needs a file: its writer thread opens its own connection', 'config');
  }
  return new SqliteTelemetryStore(db, { path: options.path, synchronous, busyTimeoutMs: Math.trunc(options.busyTimeoutMs ?? 5_000) }, options.logger);
}

interface PointRow {
  ts: number;
  measurement: string;
  region: string;
  hub: string;
  device: string;
  part: string;
  tags: string;
  fields: string;
  msg_id: string;
}

class SqliteTelemetryStore implements TelemetryStore {
  readonly kind = 'sqlite';
  private writer: Worker | null = null;
  private nextWriteId = 1;
  private readonly waiting = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();
  private closed = false;
  private readonly selectMessageIds: Database.Statement<[string, number, number], { msg_id: string }>;
  private readonly selectCount: Database.Statement<[string, string, number, number], { n: number }>;
  /** history() statements by shape (aggregate, field, tag keys); the values are bound. */
  private readonly historyStatements = new Map<string, Database.Statement<[Record<string, unknown>], { t: number; value: number }>>();

  constructor(
    private readonly db: Database.Database,
    private readonly writerData: { path: string; synchronous: 'full' | 'normal'; busyTimeoutMs: number },
    private readonly logger?: TelemetryStoreLogger,
  ) {
    this.selectMessageIds = db.prepare(
      `SELECT DISTINCT msg_id FROM points WHERE hub = ? AND ts >= ? AND ts < ? AND measurement IN (${MESSAGE_MEASUREMENTS.map((m) => `'${m}'`).join(', ')}) ORDER BY msg_id`,
    );
    this.selectCount = db.prepare('SELECT count(*) AS n FROM points WHERE hub = ? AND measurement = ? AND ts >= ? AND ts < ?');
  }

  /**
   * Writes go to a worker thread that owns the write connection (see sqlite-writer.worker.mjs); this
   * thread keeps a connection for queries. WAL lets them run side by side.
   */
  async write(points: readonly TelemetryPoint[]): Promise<void> {
    if (points.length === 0) return;
    if (this.closed) throw new TelemetryStoreError('SQLite telemetry write failed: the store is closed', 'unavailable');
    const rows: (string | number)[] = [];
    for (const p of points) {
      const r = toRow(p);
      rows.push(r.ts, r.measurement, r.region, r.hub, r.device, r.part, r.tags, r.fields, r.msg_id);
    }
    const id = this.nextWriteId++;
    const done = new Promise<void>((resolve, reject) => this.waiting.set(id, { resolve, reject }));
    this.worker().postMessage({ id, rows });
    await done;
    this.logger?.debug({ points: points.length }, 'points written to SQLite');
  }

  private worker(): Worker {
    if (this.writer) return this.writer;
    const w = new Worker(new URL('./sqlite-writer.worker.mjs', import.meta.url), { workerData: this.writerData });
    w.on('message', (m: { id: number; ok: boolean; message?: string; code?: string }) => {
      const waiter = this.waiting.get(m.id);
      if (!waiter) return;
      this.waiting.delete(m.id);
      if (m.ok) waiter.resolve();
      else waiter.reject(sqliteFailure(Object.assign(new Error(m.message), { code: m.code }), 'write'));
    });
    const fail = (why: string) => {
      if (this.writer === w) this.writer = null;
      const err = new TelemetryStoreError(`SQLite telemetry write failed: the writer thread ${why}`, 'unavailable');
      for (const waiter of this.waiting.values()) waiter.reject(err);
      this.waiting.clear();
    };
    w.on('error', (err) => {
      this.logger?.error({ err }, 'SQLite writer thread failed; a new one starts with the next write');
      fail(`failed: ${err.message}`);
    });
    w.on('exit', () => fail('exited'));
    this.writer = w;
    return w;
  }

  async history(q: HistoryQuery): Promise<HistoryBucket[]> {
    if (!Number.isSafeInteger(q.bucketMs) || q.bucketMs <= 0) throw new RangeError(`bucketMs must be a positive integer, got ${q.bucketMs}`);
    const where = Object.entries(q.where ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const key = JSON.stringify([q.aggregate, q.field, where.map(([k]) => k)]);
    let stmt = this.historyStatements.get(key);
    if (!stmt) {
      stmt = this.db.prepare(historySql(q.aggregate, where.length));
      if (this.historyStatements.size > 500) this.historyStatements.clear(); // bounded: shapes come from API callers
      this.historyStatements.set(key, stmt);
    }
    const params: Record<string, unknown> = {
      bucket: q.bucketMs, field: jsonPath(q.field), hub: q.hub, device: q.device, measurement: q.measurement, from: q.from, to: q.to,
    };
    where.forEach(([k, v], i) => {
      params[`tag${i}`] = jsonPath(k);
      params[`value${i}`] = v;
    });
    try {
      return stmt.all(params).map((r) => ({ t: r.t, value: r.value }));
    } catch (err) {
      throw sqliteFailure(err, 'history query');
    }
  }

  async messageIds(hub: string, from: number, to: number): Promise<string[]> {
    try {
      return this.selectMessageIds.all(hub, from, to).map((r) => r.msg_id);
    } catch (err) {
      throw sqliteFailure(err, 'message id query');
    }
  }

  async countPoints(measurement: Measurement, hub: string, from: number, to: number): Promise<number> {
    try {
      return this.selectCount.get(hub, measurement, from, to)?.n ?? 0;
    } catch (err) {
      throw sqliteFailure(err, 'count query');
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const w = this.writer;
    if (w) {
      // The port is ordered: writes posted earlier are committed (and answered) before the close.
      const exited = new Promise((r) => w.once('exit', r));
      w.postMessage({ close: true });
      await exited;
    }
    if (this.db.open) this.db.close();
  }
}

const SQL_AGGREGATE: Record<Exclude<Aggregate, 'last'>, string> = { mean: 'avg', min: 'min', max: 'max', count: 'count' };

/**
 * Named parameters: bucket, field (a JSON path), hub, device, measurement, from, to, then tagN/valueN per
 * extra tag filter. Only numeric field values take part, like InfluxDB's numeric aggregates.
 */
function historySql(aggregate: Aggregate, extraTags: number): string {
  const value = 'json_extract(fields, @field)';
  // 'last': SQLite gives bare columns of a max() aggregate the values of the row holding the maximum
  // (https://www.sqlite.org/lang_select.html#bare_columns_in_an_aggregate_query), i.e. the latest point.
  const select = aggregate === 'last' ? `${value} AS value, max(ts) AS latest` : `${SQL_AGGREGATE[aggregate]}(${value}) AS value`;
  let sql =
    // better-sqlite3 binds JS numbers as REAL; the cast keeps the division an integer (floor) division.
    `SELECT (ts / CAST(@bucket AS INTEGER)) * CAST(@bucket AS INTEGER) AS t, ${select} FROM points ` +
    'WHERE hub = @hub AND device = @device AND measurement = @measurement AND ts >= @from AND ts < @to ' +
    "AND json_type(fields, @field) IN ('integer', 'real')";
  for (let i = 0; i < extraTags; i++) sql += ` AND json_extract(tags, @tag${i}) = @value${i}`;
  return `${sql} GROUP BY t ORDER BY t`;
}

/** JSON path of one object key, quoted so any key works (SQLite ≥ 3.45 honours \" and \\ in labels). */
function jsonPath(key: string): string {
  return `$."${key.replace(/[\\"]/g, '\\$&')}"`;
}

function toRow(p: TelemetryPoint): PointRow {
  if (!Number.isSafeInteger(p.ts)) {
    throw new TelemetryStoreError(`cannot store point ${p.measurement} of ${p.tags.hub}/${p.tags.device} (message ${p.msgId}): timestamp ${p.ts} is not an integer`, 'rejected');
  }
  for (const [key, value] of Object.entries(p.fields)) {
    if (typeof value === 'number' && !Number.isFinite(value)) {
      throw new TelemetryStoreError(`cannot store point ${p.measurement} of ${p.tags.hub}/${p.tags.device} (message ${p.msgId}): field ${key} is ${value}`, 'rejected');
    }
  }
  return {
    ts: p.ts,
    measurement: p.measurement,
    region: p.tags.region,
    hub: p.tags.hub,
    device: p.tags.device,
    part: p.tags.compartment ?? '',
    tags: JSON.stringify(p.tags),
    fields: JSON.stringify(p.fields),
    msg_id: p.msgId,
  };
}

function sqliteFailure(err: unknown, what: string): TelemetryStoreError {
  if (err instanceof TelemetryStoreError) return err;
  const code = (err as { code?: string }).code ?? '';
  const message = `SQLite telemetry ${what} failed: ${(err as Error).message}`;
  // Locks, a full disk and I/O errors can pass; anything else (constraint, misuse) will not.
  const transient = /^SQLITE_(BUSY|LOCKED|FULL|IOERR|CANTOPEN|PROTOCOL)/.test(code) || /not open/.test((err as Error).message);
  return new TelemetryStoreError(message, transient ? 'unavailable' : 'rejected', { cause: err });
}

/**
 * Values of one string field in [from, to), oldest first. The port has no read for strings; this is
 * for tests and operator tooling, on its own read-only connection.
 */
export async function readFieldStrings(
  dbPath: string,
  q: { measurement: Measurement; hub: string; field: string; from: number; to: number },
): Promise<string[]> {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    const rows = db
      .prepare<unknown[], { value: string }>(
        `SELECT json_extract(fields, ?) AS value FROM points
         WHERE hub = ? AND measurement = ? AND ts >= ? AND ts < ? AND json_type(fields, ?) = 'text' ORDER BY ts, rowid`,
      )
      .all(jsonPath(q.field), q.hub, q.measurement, q.from, q.to, jsonPath(q.field));
    return rows.map((r) => r.value);
  } finally {
    db.close();
  }
}
