import { migrateFeature, type OperationalDb } from '../db/operational-db.ts';
import { AlarmParams, type AlarmKey, type AlarmKind, type AlarmSeverity } from './alarm-rules.ts';

/**
 * Where alarms are kept. One port, two implementations — SQLite in `cloud.db` (tables owned by this
 * feature, see `ALARM_MIGRATIONS`) and in memory for unit tests — that pass one shared test suite
 * (`alarm-store.test.ts`).
 *
 * Lifecycle: open → acknowledged → cleared, or open → cleared. An alarm that is not cleared is
 * *active*; at most one active alarm exists per (hub, device, compartment, kind), which the SQLite
 * store enforces with a partial unique index.
 */
export const ALARM_STATES = ['open', 'acknowledged', 'cleared'] as const;
export type AlarmState = (typeof ALARM_STATES)[number];

export interface AlarmRecord {
  id: string;
  region: string;
  hub: string;
  device: string | null;
  compartment: string | null;
  kind: AlarmKind;
  severity: AlarmSeverity;
  state: AlarmState;
  /** When the cloud raised it (cloud clock, epoch ms). */
  raisedAt: number;
  /** When the condition was last reported again (cloud clock). */
  lastSeenAt: number;
  /** How many observations reported the condition (1 when raised). */
  count: number;
  /** When the condition was first and last observed (device clock; cloud clock for hub links). */
  observedAt: number;
  lastObservedAt: number;
  acknowledgedAt: number | null;
  acknowledgedBy: string | null;
  ackNote: string | null;
  clearedAt: number | null;
  /** Who cleared it; null when it cleared itself because the condition ended. */
  clearedBy: string | null;
  /** The note of whoever cleared it, or why the condition ended. */
  clearNote: string | null;
  /** English summary (latest description of the condition, the device's text quoted); consoles render `kind` + `params` instead. */
  detail: string;
  /** The condition as data, latest observation (`{}` for alarms stored before parameters existed). */
  params: AlarmParams;
  /** The device's own free text, latest observation; null when it sent none. */
  deviceDetail: string | null;
  /** Id of the hub message that raised it (null for link checks and direct raises). */
  sourceMsgId: string | null;
}

export interface AlarmQuery {
  /** `active`: open or acknowledged. */
  state?: AlarmState | 'active';
  hub?: string;
  severity?: AlarmSeverity;
  kind?: AlarmKind;
  limit: number;
}

export interface AlarmRepeat {
  lastSeenAt: number;
  lastObservedAt: number;
  detail: string;
  params: AlarmParams;
  deviceDetail: string | null;
}

export interface AlarmAction {
  at: number;
  /** Person (or system) acting; null for an automatic clear. */
  by: string | null;
  note: string | null;
}

export class AlarmConflictError extends Error {
  override readonly name = 'AlarmConflictError';
}

export interface AlarmStore {
  /** Throws AlarmConflictError when an active alarm with the same key exists. */
  insert(a: AlarmRecord): void;
  get(id: string): AlarmRecord | null;
  /** Every active alarm (open or acknowledged), oldest first. */
  active(): AlarmRecord[];
  /** Newest raised first. */
  list(q: AlarmQuery): AlarmRecord[];
  /** While active: count + 1, the new times, detail, params and device detail. True when recorded. */
  recordRepeat(id: string, r: AlarmRepeat): boolean;
  /** open → acknowledged (compare-and-set); true when it changed. */
  acknowledge(id: string, a: AlarmAction): boolean;
  /** open or acknowledged → cleared (compare-and-set); true when it changed. */
  clear(id: string, a: AlarmAction): boolean;
  /** Active alarms by severity. */
  countActive(): Record<AlarmSeverity, number>;
  /**
   * Runs `fn` as one write: in SQLite one transaction (one synced commit for a whole link check that
   * raises or clears thousands of hub_offline alarms, and all or nothing); in memory just `fn()`.
   */
  transaction<T>(fn: () => T): T;
}

export const alarmKeyOf = (a: Pick<AlarmRecord, 'hub' | 'device' | 'compartment' | 'kind'>): AlarmKey => ({
  hub: a.hub, device: a.device, compartment: a.compartment, kind: a.kind,
});

/** Append, never edit (see `migrateFeature`). */
export const ALARM_MIGRATIONS: readonly string[] = [
  `CREATE TABLE alarms (
     id               TEXT PRIMARY KEY,
     region           TEXT NOT NULL,
     hub              TEXT NOT NULL,
     device           TEXT NOT NULL,       -- '' when the alarm is about the hub (unique indexes treat NULLs as distinct)
     compartment      TEXT NOT NULL,       -- '' when not about a compartment
     kind             TEXT NOT NULL,
     severity         TEXT NOT NULL CHECK (severity IN ('warning', 'critical')),
     state            TEXT NOT NULL CHECK (state IN ('open', 'acknowledged', 'cleared')),
     raised_at        INTEGER NOT NULL,
     last_seen_at     INTEGER NOT NULL,
     count            INTEGER NOT NULL,
     observed_at      INTEGER NOT NULL,
     last_observed_at INTEGER NOT NULL,
     acknowledged_at  INTEGER,
     acknowledged_by  TEXT,
     ack_note         TEXT,
     cleared_at       INTEGER,
     cleared_by       TEXT,
     clear_note       TEXT,
     detail           TEXT NOT NULL,
     source_msg_id    TEXT
   );
   CREATE UNIQUE INDEX alarms_one_active_per_key ON alarms (hub, device, compartment, kind) WHERE state <> 'cleared';
   CREATE INDEX alarms_raised ON alarms (raised_at, id);
   CREATE INDEX alarms_hub ON alarms (hub, raised_at, id);
   CREATE INDEX alarms_active ON alarms (state, raised_at) WHERE state <> 'cleared';`,
  // Issue 13: the condition as data (JSON) and the device's own text apart from ours. Alarms stored
  // before keep reading: no params ('{}'), and the device text is taken out of the English detail,
  // where it was quoted as `…; device says: "<text>"` (a detail cut at 1000 characters is left alone).
  `ALTER TABLE alarms ADD COLUMN params TEXT NOT NULL DEFAULT '{}';
   ALTER TABLE alarms ADD COLUMN device_detail TEXT;
   UPDATE alarms SET device_detail = substr(detail, instr(detail, '; device says: "') + 16, length(detail) - instr(detail, '; device says: "') - 16)
     WHERE instr(detail, '; device says: "') > 0 AND detail LIKE '%"';`,
];

interface Row {
  id: string; region: string; hub: string; device: string; compartment: string; kind: string; severity: string; state: string;
  raised_at: number; last_seen_at: number; count: number; observed_at: number; last_observed_at: number;
  acknowledged_at: number | null; acknowledged_by: string | null; ack_note: string | null;
  cleared_at: number | null; cleared_by: string | null; clear_note: string | null; detail: string; source_msg_id: string | null;
  params: string; device_detail: string | null;
}

/**
 * Params as stored, keeping only the fields this version knows with the type it expects: a row written
 * by a newer version (a field added) or edited by hand must not fail the whole list — the API checks
 * every answer against `AlarmParams` (strict), and one bad row was a 500 for every alarm. A row whose
 * JSON cannot be read shows no params.
 */
function paramsOf(json: string): AlarmParams {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    return {};
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return {};
  const whole = AlarmParams.safeParse(v);
  if (whole.success) return whole.data;
  const known: Record<string, unknown> = {};
  for (const [field, schema] of Object.entries(AlarmParams.shape)) {
    const one = schema.safeParse((v as Record<string, unknown>)[field]);
    if (one.success && one.data !== undefined) known[field] = one.data;
  }
  return known as AlarmParams;
}

const fromRow = (r: Row): AlarmRecord => ({
  id: r.id, region: r.region, hub: r.hub, device: r.device === '' ? null : r.device, compartment: r.compartment === '' ? null : r.compartment,
  kind: r.kind as AlarmKind, severity: r.severity as AlarmSeverity, state: r.state as AlarmState,
  raisedAt: r.raised_at, lastSeenAt: r.last_seen_at, count: r.count, observedAt: r.observed_at, lastObservedAt: r.last_observed_at,
  acknowledgedAt: r.acknowledged_at, acknowledgedBy: r.acknowledged_by, ackNote: r.ack_note,
  clearedAt: r.cleared_at, clearedBy: r.cleared_by, clearNote: r.clear_note, detail: r.detail, params: paramsOf(r.params), deviceDetail: r.device_detail,
  sourceMsgId: r.source_msg_id,
});

export function createSqliteAlarmStore(db: OperationalDb): AlarmStore {
  migrateFeature(db, 'alarms', ALARM_MIGRATIONS);
  const insertStmt = db.prepare(
    `INSERT INTO alarms (id, region, hub, device, compartment, kind, severity, state, raised_at, last_seen_at, count, observed_at, last_observed_at,
       acknowledged_at, acknowledged_by, ack_note, cleared_at, cleared_by, clear_note, detail, source_msg_id, params, device_detail)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const getStmt = db.prepare<[string], Row>('SELECT * FROM alarms WHERE id = ?');
  const activeStmt = db.prepare<[], Row>(`SELECT * FROM alarms WHERE state <> 'cleared' ORDER BY raised_at, id`);
  const repeatStmt = db.prepare(
    `UPDATE alarms SET count = count + 1, last_seen_at = ?, last_observed_at = MAX(last_observed_at, ?), detail = ?, params = ?, device_detail = ?
     WHERE id = ? AND state <> 'cleared'`,
  );
  const ackStmt = db.prepare(`UPDATE alarms SET state = 'acknowledged', acknowledged_at = ?, acknowledged_by = ?, ack_note = ? WHERE id = ? AND state = 'open'`);
  const clearStmt = db.prepare(`UPDATE alarms SET state = 'cleared', cleared_at = ?, cleared_by = ?, clear_note = ? WHERE id = ? AND state <> 'cleared'`);
  const countStmt = db.prepare<[], { severity: string; n: number }>(`SELECT severity, COUNT(*) AS n FROM alarms WHERE state <> 'cleared' GROUP BY severity`);
  return {
    insert(a) {
      try {
        insertStmt.run(
          a.id, a.region, a.hub, a.device ?? '', a.compartment ?? '', a.kind, a.severity, a.state, a.raisedAt, a.lastSeenAt, a.count, a.observedAt,
          a.lastObservedAt, a.acknowledgedAt, a.acknowledgedBy, a.ackNote, a.clearedAt, a.clearedBy, a.clearNote, a.detail, a.sourceMsgId,
          JSON.stringify(a.params), a.deviceDetail,
        );
      } catch (err) {
        if ((err as { code?: string }).code?.startsWith('SQLITE_CONSTRAINT')) throw new AlarmConflictError(`alarm ${a.id} conflicts with a stored one: ${(err as Error).message}`);
        throw err;
      }
    },
    get(id) {
      const r = getStmt.get(id);
      return r ? fromRow(r) : null;
    },
    active() {
      return activeStmt.all().map(fromRow);
    },
    list(q) {
      const where: string[] = [];
      const args: (string | number)[] = [];
      if (q.state === 'active') where.push(`state <> 'cleared'`);
      else if (q.state) {
        where.push('state = ?');
        args.push(q.state);
      }
      if (q.hub !== undefined) {
        where.push('hub = ?');
        args.push(q.hub);
      }
      if (q.severity) {
        where.push('severity = ?');
        args.push(q.severity);
      }
      if (q.kind) {
        where.push('kind = ?');
        args.push(q.kind);
      }
      const sql = `SELECT * FROM alarms ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY raised_at DESC, id DESC LIMIT ?`;
      return (db.prepare(sql).all(...args, q.limit) as Row[]).map(fromRow);
    },
    recordRepeat(id, r) {
      return repeatStmt.run(r.lastSeenAt, r.lastObservedAt, r.detail, JSON.stringify(r.params), r.deviceDetail, id).changes === 1;
    },
    acknowledge(id, a) {
      return ackStmt.run(a.at, a.by, a.note, id).changes === 1;
    },
    clear(id, a) {
      return clearStmt.run(a.at, a.by, a.note, id).changes === 1;
    },
    countActive() {
      const counts: Record<AlarmSeverity, number> = { warning: 0, critical: 0 };
      for (const r of countStmt.all()) counts[r.severity as AlarmSeverity] = r.n;
      return counts;
    },
    transaction: (fn) => db.transaction(fn)(),
  };
}

/** In memory, for unit tests of code that uses alarms; passes the same suite as the SQLite store. */
export function createMemoryAlarmStore(): AlarmStore {
  const rows = new Map<string, AlarmRecord>();
  // Params are an object: a caller changing the one it got back must not change what is stored (as in SQLite).
  const copy = (a: AlarmRecord): AlarmRecord => ({ ...a, params: { ...a.params } });
  const isActive = (a: AlarmRecord) => a.state !== 'cleared';
  const sameKey = (a: AlarmRecord, b: AlarmRecord) => a.hub === b.hub && a.device === b.device && a.compartment === b.compartment && a.kind === b.kind;
  const oldestFirst = (a: AlarmRecord, b: AlarmRecord) => a.raisedAt - b.raisedAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  const update = (id: string, when: (a: AlarmRecord) => boolean, change: (a: AlarmRecord) => AlarmRecord): boolean => {
    const a = rows.get(id);
    if (!a || !when(a)) return false;
    rows.set(id, change(a));
    return true;
  };
  return {
    insert(a) {
      if (rows.has(a.id)) throw new AlarmConflictError(`alarm ${a.id} exists`);
      if (isActive(a) && [...rows.values()].some((b) => isActive(b) && sameKey(a, b))) throw new AlarmConflictError(`an active alarm with the key of ${a.id} exists`);
      rows.set(a.id, copy(a));
    },
    get(id) {
      const a = rows.get(id);
      return a ? copy(a) : null;
    },
    active() {
      return [...rows.values()].filter(isActive).sort(oldestFirst).map(copy);
    },
    list(q) {
      return [...rows.values()]
        .filter((a) => (q.state === 'active' ? isActive(a) : q.state === undefined || a.state === q.state))
        .filter((a) => (q.hub === undefined || a.hub === q.hub) && (q.severity === undefined || a.severity === q.severity) && (q.kind === undefined || a.kind === q.kind))
        .sort((a, b) => -oldestFirst(a, b))
        .slice(0, q.limit)
        .map(copy);
    },
    recordRepeat(id, r) {
      return update(id, isActive, (a) => ({
        ...a, count: a.count + 1, lastSeenAt: r.lastSeenAt, lastObservedAt: Math.max(a.lastObservedAt, r.lastObservedAt), detail: r.detail,
        params: { ...r.params }, deviceDetail: r.deviceDetail,
      }));
    },
    acknowledge(id, x) {
      return update(id, (a) => a.state === 'open', (a) => ({ ...a, state: 'acknowledged', acknowledgedAt: x.at, acknowledgedBy: x.by, ackNote: x.note }));
    },
    clear(id, x) {
      return update(id, isActive, (a) => ({ ...a, state: 'cleared', clearedAt: x.at, clearedBy: x.by, clearNote: x.note }));
    },
    countActive() {
      const counts: Record<AlarmSeverity, number> = { warning: 0, critical: 0 };
      for (const a of rows.values()) if (isActive(a)) counts[a.severity]++;
      return counts;
    },
    transaction: (fn) => fn(),
  };
}
