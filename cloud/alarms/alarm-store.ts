import type { Database, FeatureMigrations } from '../db/database.ts';
import type { Sql, SqlValue } from '../db/sql.ts';
import { AlarmParams, type AlarmKey, type AlarmKind, type AlarmSeverity } from './alarm-rules.ts';

/**
 * Where alarms are kept. One port, three implementations — one SQL adapter for SQLite (`cloud.db`)
 * and PostgreSQL (tables owned by this feature, see `ALARM_MIGRATIONS`), and one in memory for unit
 * tests — that pass one shared contract suite (`alarm-store.test.ts`).
 *
 * Lifecycle: open → acknowledged → cleared, or open → cleared. An alarm that is not cleared is
 * *active*; at most one active alarm exists per (hub, device, compartment, kind), which the SQL
 * adapter enforces with a partial unique index.
 *
 * Several cloud processes may write at once (PostgreSQL, issue 14): every change is one conditional
 * statement, never a read and then a write. `raise` is one `INSERT … ON CONFLICT` on the active key
 * (two processes raising the same condition give one alarm and a repeat, never two alarms);
 * `acknowledge` and `clear` update only from the state they leave (compare-and-set), so an
 * acknowledgement racing a clear ends in one state that agrees with what each of them answered.
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
  /** Only alarms at these hubs (a staff account's hubs); empty: none. */
  hubs?: readonly string[];
  /** Only alarms of these regions (a coordinator's regions, issue 14); empty: none. */
  regions?: readonly string[];
  severity?: AlarmSeverity;
  kind?: AlarmKind;
  limit: number;
}

export interface AlarmAction {
  at: number;
  /** Person (or system) acting; null for an automatic clear. */
  by: string | null;
  note: string | null;
}

/**
 * What `raise` did: `raised` a new alarm (the one given), counted a `repeated` observation on the
 * active alarm with its key, or nothing (`none`: the active alarm already holds this observation or a
 * newer one — a re-sent message). `alarm` is the active alarm as it is now; null only when there is
 * none after `none` (cleared in between by someone else).
 */
export interface RaiseResult {
  change: 'raised' | 'repeated' | 'none';
  alarm: AlarmRecord | null;
}

export class AlarmConflictError extends Error {
  override readonly name = 'AlarmConflictError';
}

export interface AlarmStore {
  /** Stores an alarm as given (any state). Throws AlarmConflictError when its id or, while active, its key is taken. */
  insert(a: AlarmRecord): Promise<void>;
  /**
   * Raises `a` (state open, count 1) or, when an alarm with its key is active, counts a repeat on that
   * one — count + 1, `lastSeenAt`, `lastObservedAt`, detail, params and device detail from `a` — but
   * only for a newer observation (`a.lastObservedAt` later than the stored one). One atomic statement.
   */
  raise(a: AlarmRecord): Promise<RaiseResult>;
  /**
   * `raise` for several alarms of distinct keys in one statement per few hundred (a link check that
   * raises thousands of hub_offline alarms); results in the order given. Throws when two share a key.
   */
  raiseMany(alarms: readonly AlarmRecord[]): Promise<RaiseResult[]>;
  get(id: string): Promise<AlarmRecord | null>;
  /** Every active alarm (open or acknowledged), oldest first. */
  active(): Promise<AlarmRecord[]>;
  /** Newest raised first. */
  list(q: AlarmQuery): Promise<AlarmRecord[]>;
  /** open → acknowledged (compare-and-set): the alarm when it changed, else null. */
  acknowledge(id: string, a: AlarmAction): Promise<AlarmRecord | null>;
  /** open or acknowledged → cleared (compare-and-set): the alarm when it changed, else null. */
  clear(id: string, a: AlarmAction): Promise<AlarmRecord | null>;
  /** `clear` for several alarms (distinct ids) in one statement per few hundred; results in the order given. */
  clearMany(clears: readonly { id: string; action: AlarmAction }[]): Promise<(AlarmRecord | null)[]>;
  /** Active alarms by severity. */
  countActive(): Promise<Record<AlarmSeverity, number>>;
  /**
   * Runs `fn` as one write, all or nothing, on the store it is given (one synced commit for a link
   * check that raises or clears thousands of hub_offline alarms). Use only that store inside.
   */
  transaction<T>(fn: (store: AlarmStore) => Promise<T>): Promise<T>;
  /** Holds nothing of its own (the database is closed by whoever opened it). */
  close(): Promise<void>;
  /** The SQL it writes through (inside `transaction`: that transaction), for a lease fence in the same transaction (issue 15); none in memory. */
  readonly sql?: Sql;
}

export const alarmKeyOf = (a: Pick<AlarmRecord, 'hub' | 'device' | 'compartment' | 'kind'>): AlarmKey => ({
  hub: a.hub, device: a.device, compartment: a.compartment, kind: a.kind,
});

/**
 * Append, never edit (see `Database.migrate`). The SQLite steps are those `cloud.db` files already
 * carry; PostgreSQL starts at the newest schema in one step. Same tables and columns on both.
 */
export const ALARM_MIGRATIONS: FeatureMigrations = {
  sqlite: [
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
  // Issue 14: listing by region (a coordinator's regions).
  `CREATE INDEX alarms_region ON alarms (region, raised_at, id);`,
  ],
  postgres: [
    `CREATE TABLE alarms (
       id               TEXT PRIMARY KEY,
       region           TEXT NOT NULL,
       hub              TEXT NOT NULL,
       device           TEXT NOT NULL,       -- '' when the alarm is about the hub (unique indexes treat NULLs as distinct)
       compartment      TEXT NOT NULL,       -- '' when not about a compartment
       kind             TEXT NOT NULL,
       severity         TEXT NOT NULL CHECK (severity IN ('warning', 'critical')),
       state            TEXT NOT NULL CHECK (state IN ('open', 'acknowledged', 'cleared')),
       raised_at        BIGINT NOT NULL,
       last_seen_at     BIGINT NOT NULL,
       count            BIGINT NOT NULL,
       observed_at      BIGINT NOT NULL,
       last_observed_at BIGINT NOT NULL,
       acknowledged_at  BIGINT,
       acknowledged_by  TEXT,
       ack_note         TEXT,
       cleared_at       BIGINT,
       cleared_by       TEXT,
       clear_note       TEXT,
       detail           TEXT NOT NULL,
       source_msg_id    TEXT,
       params           TEXT NOT NULL DEFAULT '{}',
       device_detail    TEXT
     );
     CREATE UNIQUE INDEX alarms_one_active_per_key ON alarms (hub, device, compartment, kind) WHERE state <> 'cleared';
     CREATE INDEX alarms_raised ON alarms (raised_at, id);
     CREATE INDEX alarms_hub ON alarms (hub, raised_at, id);
     CREATE INDEX alarms_active ON alarms (state, raised_at) WHERE state <> 'cleared';
     CREATE INDEX alarms_region ON alarms (region, raised_at, id);`,
  ],
};

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

const COLUMNS = `id, region, hub, device, compartment, kind, severity, state, raised_at, last_seen_at, count, observed_at, last_observed_at,
  acknowledged_at, acknowledged_by, ack_note, cleared_at, cleared_by, clear_note, detail, source_msg_id, params, device_detail`;
const VALUES = `(${Array(23).fill('?').join(', ')})`;
const valuesOf = (a: AlarmRecord): SqlValue[] => [
  a.id, a.region, a.hub, a.device ?? '', a.compartment ?? '', a.kind, a.severity, a.state, a.raisedAt, a.lastSeenAt, a.count, a.observedAt,
  a.lastObservedAt, a.acknowledgedAt, a.acknowledgedBy, a.ackNote, a.clearedAt, a.clearedBy, a.clearNote, a.detail, a.sourceMsgId,
  JSON.stringify(a.params), a.deviceDetail,
];

const INSERT = `INSERT INTO alarms (${COLUMNS}) VALUES ${VALUES}`;
// The conflict target names the partial index of active alarms; a repeat only for a newer observation,
// so a re-sent message (same observation) changes nothing and returns no row.
const raiseStatement = (rows: number) => `INSERT INTO alarms (${COLUMNS}) VALUES ${Array(rows).fill(VALUES).join(', ')}
  ON CONFLICT (hub, device, compartment, kind) WHERE state <> 'cleared'
  DO UPDATE SET count = alarms.count + 1, last_seen_at = excluded.last_seen_at, last_observed_at = excluded.last_observed_at,
    detail = excluded.detail, params = excluded.params, device_detail = excluded.device_detail
  WHERE excluded.last_observed_at > alarms.last_observed_at
  RETURNING *`;
// Several clears with one action (a link check: the same time and reason for every hub back online) in one statement.
const clearStatement = (rows: number) =>
  `UPDATE alarms SET state = 'cleared', cleared_at = ?, cleared_by = ?, clear_note = ? WHERE id IN (${Array(rows).fill('?').join(', ')}) AND state <> 'cleared' RETURNING *`;
/** Rows per raise statement: 23 parameters each, well under SQLite's 32,766 and PostgreSQL's 65,535. */
const RAISE_CHUNK = 500;
const CLEAR_CHUNK = 5000;
const storedKey = (a: { hub: string; device: string | null; compartment: string | null; kind: string }) =>
  `${a.hub}\u0000${a.device ?? ''}\u0000${a.compartment ?? ''}\u0000${a.kind}`;
const ACTIVE_OF_KEY = `SELECT * FROM alarms WHERE hub = ? AND device = ? AND compartment = ? AND kind = ? AND state <> 'cleared'`;
const ACK = `UPDATE alarms SET state = 'acknowledged', acknowledged_at = ?, acknowledged_by = ?, ack_note = ? WHERE id = ? AND state = 'open' RETURNING *`;
const CLEAR = `UPDATE alarms SET state = 'cleared', cleared_at = ?, cleared_by = ?, clear_note = ? WHERE id = ? AND state <> 'cleared' RETURNING *`;

const isConstraintError = (err: unknown): boolean => {
  const code = (err as { code?: string } | null)?.code;
  return code === '23505' || (typeof code === 'string' && code.startsWith('SQLITE_CONSTRAINT'));
};

/** The alarm store on the operational database (SQLite or PostgreSQL); migrates the alarm tables. */
export async function openAlarmStore(db: Database): Promise<AlarmStore> {
  await db.migrate('alarms', ALARM_MIGRATIONS);
  return sqlAlarmStore(db.sql);
}

function sqlAlarmStore(sql: Sql): AlarmStore {
  const store: AlarmStore = {
    async insert(a) {
      try {
        await sql.run(INSERT, valuesOf(a));
      } catch (err) {
        if (isConstraintError(err)) throw new AlarmConflictError(`alarm ${a.id} conflicts with a stored one: ${(err as Error).message}`);
        throw err;
      }
    },
    async raise(a) {
      return (await store.raiseMany([a]))[0]!;
    },
    async raiseMany(alarms) {
      const results: RaiseResult[] = [];
      for (let i = 0; i < alarms.length; i += RAISE_CHUNK) {
        const chunk = alarms.slice(i, i + RAISE_CHUNK);
        if (new Set(chunk.map(storedKey)).size < chunk.length) throw new Error('raiseMany: two alarms with one key');
        const rows = await sql.query<Row>(raiseStatement(chunk.length), chunk.flatMap((a) => valuesOf({ ...a, state: 'open', count: 1 })));
        // Rows come back in no particular order, one per alarm raised or repeated; none for an observation not newer.
        const byKey = new Map(rows.map((r) => [storedKey({ ...r, device: r.device === '' ? null : r.device, compartment: r.compartment === '' ? null : r.compartment }), r]));
        for (const a of chunk) {
          const row = byKey.get(storedKey(a));
          if (row) {
            results.push({ change: row.id === a.id ? 'raised' : 'repeated', alarm: fromRow(row) });
            continue;
          }
          const current = await sql.one<Row>(ACTIVE_OF_KEY, [a.hub, a.device ?? '', a.compartment ?? '', a.kind]);
          results.push({ change: 'none', alarm: current ? fromRow(current) : null });
        }
      }
      return results;
    },
    async get(id) {
      const r = await sql.one<Row>('SELECT * FROM alarms WHERE id = ?', [id]);
      return r ? fromRow(r) : null;
    },
    async active() {
      return (await sql.query<Row>(`SELECT * FROM alarms WHERE state <> 'cleared' ORDER BY raised_at, id`)).map(fromRow);
    },
    async list(q) {
      const where: string[] = [];
      const args: SqlValue[] = [];
      const oneOf = (column: string, values: readonly string[]) => {
        if (values.length === 0) where.push('1 = 0');
        else {
          where.push(`${column} IN (${values.map(() => '?').join(', ')})`);
          args.push(...values);
        }
      };
      if (q.state === 'active') where.push(`state <> 'cleared'`);
      else if (q.state) {
        where.push('state = ?');
        args.push(q.state);
      }
      if (q.hub !== undefined) {
        where.push('hub = ?');
        args.push(q.hub);
      }
      if (q.hubs) oneOf('hub', q.hubs);
      if (q.regions) oneOf('region', q.regions);
      if (q.severity) {
        where.push('severity = ?');
        args.push(q.severity);
      }
      if (q.kind) {
        where.push('kind = ?');
        args.push(q.kind);
      }
      const text = `SELECT * FROM alarms ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY raised_at DESC, id DESC LIMIT ?`;
      return (await sql.query<Row>(text, [...args, q.limit])).map(fromRow);
    },
    async acknowledge(id, a) {
      const [row] = await sql.query<Row>(ACK, [a.at, a.by, a.note, id]);
      return row ? fromRow(row) : null;
    },
    async clear(id, a) {
      const [row] = await sql.query<Row>(CLEAR, [a.at, a.by, a.note, id]);
      return row ? fromRow(row) : null;
    },
    async clearMany(clears) {
      // Grouped by action: one statement per (time, who, note) and few hundred ids.
      const groups = new Map<string, { action: AlarmAction; ids: string[] }>();
      for (const c of clears) {
        const k = JSON.stringify([c.action.at, c.action.by, c.action.note]);
        let g = groups.get(k);
        if (!g) groups.set(k, (g = { action: c.action, ids: [] }));
        g.ids.push(c.id);
      }
      const byId = new Map<string, AlarmRecord>();
      for (const { action, ids } of groups.values()) {
        for (let i = 0; i < ids.length; i += CLEAR_CHUNK) {
          const chunk = ids.slice(i, i + CLEAR_CHUNK);
          const rows = await sql.query<Row>(clearStatement(chunk.length), [action.at, action.by, action.note, ...chunk]);
          for (const r of rows) byId.set(r.id, fromRow(r));
        }
      }
      return clears.map((c) => byId.get(c.id) ?? null);
    },
    async countActive() {
      const counts: Record<AlarmSeverity, number> = { warning: 0, critical: 0 };
      const rows = await sql.query<{ severity: string; n: number }>(`SELECT severity, COUNT(*) AS n FROM alarms WHERE state <> 'cleared' GROUP BY severity`);
      for (const r of rows) counts[r.severity as AlarmSeverity] = Number(r.n);
      return counts;
    },
    transaction: (fn) => sql.transaction((tx) => fn(sqlAlarmStore(tx))),
    close: async () => {},
    sql,
  };
  return store;
}

/** In memory, for unit tests of code that uses alarms; passes the same suite as the SQL store. */
export function createMemoryAlarmStore(): AlarmStore {
  const rows = new Map<string, AlarmRecord>();
  // Params are an object: a caller changing the one it got back must not change what is stored (as in SQL).
  const copy = (a: AlarmRecord): AlarmRecord => ({ ...a, params: { ...a.params } });
  const isActive = (a: AlarmRecord) => a.state !== 'cleared';
  const sameKey = (a: AlarmRecord, b: AlarmRecord) => a.hub === b.hub && a.device === b.device && a.compartment === b.compartment && a.kind === b.kind;
  const oldestFirst = (a: AlarmRecord, b: AlarmRecord) => a.raisedAt - b.raisedAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  // Transactions one at a time; a failed one undoes its own writes only (as the SQL store's rollback),
  // not those made meanwhile outside it — a single write goes without a transaction (alarm-service.ts).
  let tail: Promise<unknown> = Promise.resolve();
  /** The store; inside a transaction, `journal` keeps each touched alarm's value from before it. */
  const bound = (journal: Map<string, AlarmRecord | undefined> | null): AlarmStore => {
    const put = (id: string, a: AlarmRecord) => {
      if (journal && !journal.has(id)) journal.set(id, rows.get(id));
      rows.set(id, a);
    };
    const update = (id: string, when: (a: AlarmRecord) => boolean, change: (a: AlarmRecord) => AlarmRecord): AlarmRecord | null => {
      const a = rows.get(id);
      if (!a || !when(a)) return null;
      const changed = change(a);
      put(id, changed);
      return copy(changed);
    };
    const store: AlarmStore = {
      async insert(a) {
        if (rows.has(a.id)) throw new AlarmConflictError(`alarm ${a.id} exists`);
        if (isActive(a) && [...rows.values()].some((b) => isActive(b) && sameKey(a, b))) throw new AlarmConflictError(`an active alarm with the key of ${a.id} exists`);
        put(a.id, copy(a));
      },
      async raise(a) {
        const current = [...rows.values()].find((b) => isActive(b) && sameKey(a, b));
        if (!current) {
          const raised: AlarmRecord = { ...copy(a), state: 'open', count: 1 };
          put(a.id, raised);
          return { change: 'raised', alarm: copy(raised) };
        }
        if (a.lastObservedAt <= current.lastObservedAt) return { change: 'none', alarm: copy(current) };
        const repeated: AlarmRecord = {
          ...current, count: current.count + 1, lastSeenAt: a.lastSeenAt, lastObservedAt: a.lastObservedAt, detail: a.detail,
          params: { ...a.params }, deviceDetail: a.deviceDetail,
        };
        put(current.id, repeated);
        return { change: 'repeated', alarm: copy(repeated) };
      },
      async raiseMany(alarms) {
        if (new Set(alarms.map(storedKey)).size < alarms.length) throw new Error('raiseMany: two alarms with one key');
        const results: RaiseResult[] = [];
        for (const a of alarms) results.push(await store.raise(a));
        return results;
      },
      async get(id) {
        const a = rows.get(id);
        return a ? copy(a) : null;
      },
      async active() {
        return [...rows.values()].filter(isActive).sort(oldestFirst).map(copy);
      },
      async list(q) {
        return [...rows.values()]
          .filter((a) => (q.state === 'active' ? isActive(a) : q.state === undefined || a.state === q.state))
          .filter((a) => (q.hub === undefined || a.hub === q.hub) && (q.severity === undefined || a.severity === q.severity) && (q.kind === undefined || a.kind === q.kind))
          .filter((a) => (q.hubs === undefined || q.hubs.includes(a.hub)) && (q.regions === undefined || q.regions.includes(a.region)))
          .sort((a, b) => -oldestFirst(a, b))
          .slice(0, q.limit)
          .map(copy);
      },
      async acknowledge(id, x) {
        return update(id, (a) => a.state === 'open', (a) => ({ ...a, state: 'acknowledged', acknowledgedAt: x.at, acknowledgedBy: x.by, ackNote: x.note }));
      },
      async clear(id, x) {
        return update(id, isActive, (a) => ({ ...a, state: 'cleared', clearedAt: x.at, clearedBy: x.by, clearNote: x.note }));
      },
      async clearMany(clears) {
        const results: (AlarmRecord | null)[] = [];
        for (const c of clears) results.push(await store.clear(c.id, c.action));
        return results;
      },
      async countActive() {
        const counts: Record<AlarmSeverity, number> = { warning: 0, critical: 0 };
        for (const a of rows.values()) if (isActive(a)) counts[a.severity]++;
        return counts;
      },
      transaction(fn) {
        if (journal) return fn(store); // already in one
        const run = tail.then(async () => {
          const mine = new Map<string, AlarmRecord | undefined>();
          try {
            return await fn(bound(mine));
          } catch (err) {
            for (const [id, before] of mine) {
              if (before === undefined) rows.delete(id);
              else rows.set(id, before);
            }
            throw err;
          }
        });
        tail = run.catch(() => {});
        return run;
      },
      close: async () => {},
    };
    return store;
  };
  return bound(null);
}
