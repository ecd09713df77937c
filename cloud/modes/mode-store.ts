import type { Mode } from '../../contract/index.ts';
import type { Database, FeatureMigrations } from '../db/database.ts';
import type { Sql, SqlValue } from '../db/sql.ts';
import { isNewerAck, type DesiredMode, type HubAck, type ModeConflict } from './mode-state.ts';

/**
 * Where disaster mode keeps its state: every version of each region's desired state (append-only),
 * the audit log (append-only: coordinators' switches and hubs' local switches), each hub's newest
 * acknowledgement, and the hubs' open conflicts. One port, two implementations — SQL (one for
 * SQLite and PostgreSQL, on the operational database) and in memory for unit tests — that pass one
 * shared test suite (mode-store.test.ts) on all three.
 *
 * Writes take an optional `tx` (a transaction of the same database) so a caller can combine them
 * with its own writes: ingest records acknowledgements inside its group commit, a switch writes its
 * version, audit entry and resolved conflicts together. The memory store ignores it.
 */

/** One line of the audit log: who did what, when and why. */
export interface AuditEntry {
  id: number;
  region: string;
  /** `switch`: a coordinator's switch (a new version); `local_switch`: hub staff switched a hub at the hub. */
  kind: 'switch' | 'local_switch';
  /** When it happened, epoch ms: cloud clock for a switch, the hub's clock for a local switch. */
  at: number;
  /** When the cloud recorded it, epoch ms. */
  recordedAt: number;
  /** The coordinator, or `hub staff at <hub>`. */
  by: string;
  mode: Mode;
  /** Hubs switched; null = the whole region. */
  hubs: string[] | null;
  reason: string;
  /** A switch: the version it produced. A local switch: the version the hub's state was based on. */
  version: number;
  /** A local switch: the desired state's version and mode for the hub when it was recorded. */
  desiredVersion: number | null;
  desiredMode: Mode | null;
  /** A local switch reported late, after the hub's link returned. */
  historical: boolean;
  /** One readable sentence. */
  summary: string;
  /** A local switch: the hub's message id (a re-sent copy is recorded once). */
  msgId: string | null;
}

export type NewAuditEntry = Omit<AuditEntry, 'id'>;

/**
 * The version is taken: another switch of the region — by another cloud process on the same
 * database, or a hub's adopted local switch — got there first. Nothing was written.
 */
export class ModeVersionTakenError extends Error {
  override readonly name = 'ModeVersionTakenError';
  constructor(
    readonly region: string,
    readonly version: number,
  ) {
    super(`version ${version} of region ${region} was already made by another switch`);
  }
}

export interface ModeStore {
  /** The newest version of the region's desired state, or null if it was never switched. */
  latest(region: string, tx?: Sql): Promise<DesiredMode | null>;
  /** The newest version of every region that was ever switched, by region id. */
  allLatest(): Promise<DesiredMode[]>;
  /**
   * Appends a new version and its audit entry in one transaction (`tx`'s, when given). Throws
   * `ModeVersionTakenError`, writing nothing, if that version of the region exists — also when
   * another writer made it at the same moment: each version is made exactly once.
   */
  appendVersion(d: DesiredMode, audit: NewAuditEntry, tx?: Sql): Promise<AuditEntry>;
  /** Appends an audit entry; a local switch with a (hub, msgId) already recorded is ignored (null), also between concurrent writers. */
  appendAudit(entry: NewAuditEntry, tx?: Sql): Promise<AuditEntry | null>;
  /** Newest first; entries with an id below `beforeId` only, when given. */
  history(region: string, q: { limit: number; beforeId?: number }): Promise<AuditEntry[]>;
  /** Keeps the acknowledgement if it is newer than the stored one (see `isNewerAck`); true when kept. */
  putAck(ack: HubAck, tx?: Sql): Promise<boolean>;
  /**
   * `putAck` for each, in order, as one write (one transaction, one statement per 500 hubs: a region
   * of thousands of hubs acknowledging a switch must not cost a commit or a round trip per hub). The
   * stored row is newest-wins whatever the order of concurrent writers.
   */
  putAcks(acks: readonly HubAck[], tx?: Sql): Promise<void>;
  /** Newest acknowledgement of each hub of the region. */
  acks(region: string): Promise<Map<string, HubAck>>;
  /** Every hub's newest acknowledgement (start-up). */
  allAcks(): Promise<HubAck[]>;
  /** Records a hub's open conflict (issue 12, defect 10), replacing an earlier one of the hub. */
  putConflict(c: ModeConflict, tx?: Sql): Promise<void>;
  /** Clears the open conflicts of these hubs of the region (null: every hub of it); returns how many. */
  clearConflicts(region: string, hubs: readonly string[] | null, tx?: Sql): Promise<number>;
  /** Open conflicts of the region's hubs. */
  conflicts(region: string): Promise<Map<string, ModeConflict>>;
  /** Every open conflict (start-up). */
  allConflicts(): Promise<ModeConflict[]>;
  /** Runs `fn` in one transaction of the store's database (the memory store has none: `tx` is undefined). */
  transaction<T>(fn: (tx: Sql | undefined) => Promise<T>): Promise<T>;
}

/** Migrations of this feature; append, never edit. SQLite: the steps `cloud.db` files already carry. */
const SQLITE_STEPS = [
  `CREATE TABLE mode_versions (
     region    TEXT NOT NULL,
     version   INTEGER NOT NULL,
     mode      TEXT NOT NULL CHECK (mode IN ('normal', 'emergency')),
     hubs      TEXT NOT NULL,            -- JSON object: per-hub overrides
     reason    TEXT NOT NULL,
     by        TEXT NOT NULL,
     at        INTEGER NOT NULL,         -- cloud clock, epoch ms
     PRIMARY KEY (region, version)
   ) WITHOUT ROWID;
   CREATE TABLE mode_audit (
     id              INTEGER PRIMARY KEY AUTOINCREMENT,
     region          TEXT NOT NULL,
     kind            TEXT NOT NULL CHECK (kind IN ('switch', 'local_switch')),
     at              INTEGER NOT NULL,
     recorded_at     INTEGER NOT NULL,
     by              TEXT NOT NULL,
     mode            TEXT NOT NULL,
     hubs            TEXT,               -- JSON array, NULL = the whole region
     reason          TEXT NOT NULL,
     version         INTEGER NOT NULL,
     desired_version INTEGER,
     desired_mode    TEXT,
     historical      INTEGER NOT NULL,
     summary         TEXT NOT NULL,
     hub             TEXT,               -- local switches: the hub, for the dedupe key below
     msg_id          TEXT
   );
   CREATE INDEX mode_audit_region ON mode_audit (region, id);
   CREATE UNIQUE INDEX mode_audit_hub_msg ON mode_audit (hub, msg_id) WHERE msg_id IS NOT NULL;
   CREATE TABLE mode_hub_acks (
     hub         TEXT PRIMARY KEY,
     region      TEXT NOT NULL,
     version     INTEGER NOT NULL,
     mode        TEXT NOT NULL,
     source      TEXT NOT NULL,
     reason      TEXT,
     ts          INTEGER NOT NULL,       -- hub clock
     received_at INTEGER NOT NULL,       -- cloud clock
     msg_id      TEXT NOT NULL,
     historical  INTEGER NOT NULL
   ) WITHOUT ROWID;
   CREATE INDEX mode_hub_acks_region ON mode_hub_acks (region);`,
  // Issue 12, defect 10: a local switch and a coordinator's switch that did not see each other.
  `CREATE TABLE mode_conflicts (
     hub     TEXT PRIMARY KEY,
     region  TEXT NOT NULL,
     body    TEXT NOT NULL               -- JSON: ModeConflict
   ) WITHOUT ROWID;
   CREATE INDEX mode_conflicts_region ON mode_conflicts (region);`,
];

/** The PostgreSQL schema: the newest SQLite one, same tables and columns (a copy moves them column by column). */
const POSTGRES_SCHEMA = `CREATE TABLE mode_versions (
     region    TEXT NOT NULL,
     version   BIGINT NOT NULL,
     mode      TEXT NOT NULL CHECK (mode IN ('normal', 'emergency')),
     hubs      TEXT NOT NULL,
     reason    TEXT NOT NULL,
     by        TEXT NOT NULL,
     at        BIGINT NOT NULL,
     PRIMARY KEY (region, version)
   );
   CREATE TABLE mode_audit (
     id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
     region          TEXT NOT NULL,
     kind            TEXT NOT NULL CHECK (kind IN ('switch', 'local_switch')),
     at              BIGINT NOT NULL,
     recorded_at     BIGINT NOT NULL,
     by              TEXT NOT NULL,
     mode            TEXT NOT NULL,
     hubs            TEXT,
     reason          TEXT NOT NULL,
     version         BIGINT NOT NULL,
     desired_version BIGINT,
     desired_mode    TEXT,
     historical      INTEGER NOT NULL,
     summary         TEXT NOT NULL,
     hub             TEXT,
     msg_id          TEXT
   );
   CREATE INDEX mode_audit_region ON mode_audit (region, id);
   CREATE UNIQUE INDEX mode_audit_hub_msg ON mode_audit (hub, msg_id) WHERE msg_id IS NOT NULL;
   CREATE TABLE mode_hub_acks (
     hub         TEXT PRIMARY KEY,
     region      TEXT NOT NULL,
     version     BIGINT NOT NULL,
     mode        TEXT NOT NULL,
     source      TEXT NOT NULL,
     reason      TEXT,
     ts          BIGINT NOT NULL,
     received_at BIGINT NOT NULL,
     msg_id      TEXT NOT NULL,
     historical  INTEGER NOT NULL
   );
   CREATE INDEX mode_hub_acks_region ON mode_hub_acks (region);
   CREATE TABLE mode_conflicts (
     hub     TEXT PRIMARY KEY,
     region  TEXT NOT NULL,
     body    TEXT NOT NULL
   );
   CREATE INDEX mode_conflicts_region ON mode_conflicts (region);`;

export const MODE_MIGRATIONS: FeatureMigrations = { sqlite: SQLITE_STEPS, postgres: [POSTGRES_SCHEMA] };

interface VersionRow { region: string; version: number; mode: Mode; hubs: string; reason: string; by: string; at: number }
interface AuditRow {
  id: number; region: string; kind: AuditEntry['kind']; at: number; recorded_at: number; by: string; mode: Mode; hubs: string | null;
  reason: string; version: number; desired_version: number | null; desired_mode: Mode | null; historical: number; summary: string;
  hub: string | null; msg_id: string | null;
}
interface AckRow {
  hub: string; region: string; version: number; mode: Mode; source: HubAck['source']; reason: string | null; ts: number; received_at: number;
  msg_id: string; historical: number;
}

const fromVersionRow = (r: VersionRow): DesiredMode => ({
  region: r.region, version: r.version, mode: r.mode, hubs: JSON.parse(r.hubs) as Record<string, Mode>, reason: r.reason, by: r.by, at: r.at,
});
const fromAuditRow = (r: AuditRow): AuditEntry => ({
  id: r.id, region: r.region, kind: r.kind, at: r.at, recordedAt: r.recorded_at, by: r.by, mode: r.mode,
  hubs: r.hubs === null ? null : (JSON.parse(r.hubs) as string[]), reason: r.reason, version: r.version, desiredVersion: r.desired_version,
  desiredMode: r.desired_mode, historical: r.historical === 1, summary: r.summary, msgId: r.msg_id,
});
const fromAckRow = (r: AckRow): HubAck => ({
  hub: r.hub, region: r.region, version: r.version, mode: r.mode, source: r.source, reason: r.reason, ts: r.ts, receivedAt: r.received_at,
  msgId: r.msg_id, historical: r.historical === 1,
});

/** The hub a local switch is about (the dedupe key of local switches is hub + message id). */
const auditHub = (e: NewAuditEntry): string | null => (e.kind === 'local_switch' ? (e.hubs?.[0] ?? null) : null);

/** Hubs per acknowledgement statement: 10 parameters each, far below both databases' limits. */
const ACK_CHUNK = 500;
const VERSION_COLUMNS = 'region, version, mode, hubs, reason, by, at';
const AUDIT_COLUMNS = 'id, region, kind, at, recorded_at, by, mode, hubs, reason, version, desired_version, desired_mode, historical, summary, hub, msg_id';
const ACK_COLUMNS = 'hub, region, version, mode, source, reason, ts, received_at, msg_id, historical';
/** The values of `ACK_COLUMNS`, in that order. */
const ACK_FIELDS: readonly ((a: HubAck) => SqlValue)[] = [
  (a) => a.hub, (a) => a.region, (a) => a.version, (a) => a.mode, (a) => a.source, (a) => a.reason, (a) => a.ts, (a) => a.receivedAt, (a) => a.msgId, (a) => (a.historical ? 1 : 0),
];

/** The store on the operational database (SQLite or PostgreSQL): migrates this feature's tables. */
export async function openModeStore(db: Database): Promise<ModeStore> {
  await db.migrate('modes', MODE_MIGRATIONS);
  const sql = db.sql;
  const inTx = <T>(tx: Sql | undefined, fn: (q: Sql) => Promise<T>): Promise<T> => (tx ? fn(tx) : sql.transaction(fn));

  const insertAudit = async (q: Sql, e: NewAuditEntry): Promise<AuditEntry | null> => {
    // A local switch re-sent (or taken by two cloud processes at once) hits the unique (hub, msg_id) index: nothing is written.
    const row = await q.one<{ id: number }>(
      `INSERT INTO mode_audit (region, kind, at, recorded_at, by, mode, hubs, reason, version, desired_version, desired_mode, historical, summary, hub, msg_id)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id`,
      [
        e.region, e.kind, e.at, e.recordedAt, e.by, e.mode, e.hubs === null ? null : JSON.stringify(e.hubs), e.reason, e.version,
        e.desiredVersion, e.desiredMode, e.historical ? 1 : 0, e.summary, auditHub(e), e.msgId,
      ],
    );
    return row ? { ...e, hubs: e.hubs ? [...e.hubs] : null, id: row.id } : null;
  };

  const appendVersion = async (q: Sql, d: DesiredMode, e: NewAuditEntry): Promise<AuditEntry> => {
    // A conditional insert, not read-then-write: of two writers making the same version on
    // PostgreSQL, the second waits for the first's commit and then inserts nothing.
    const inserted = await q.run(
      `INSERT INTO mode_versions (${VERSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (region, version) DO NOTHING`,
      [d.region, d.version, d.mode, JSON.stringify(d.hubs), d.reason, d.by, d.at],
    );
    if (inserted === 0) throw new ModeVersionTakenError(d.region, d.version);
    const entry = await insertAudit(q, e);
    if (!entry) throw new Error('audit entry of a switch not recorded');
    return entry;
  };

  /**
   * Newest-wins per hub: each hub's newest acknowledgement of the batch is upserted with the rule in
   * the upsert's WHERE, so a concurrent writer's newer row is never overwritten. One statement per
   * 500 hubs and nothing read back: an emergency switch is one acknowledgement per hub of the region,
   * and reading every stored row back (10 columns a hub, parsed on the cloud's main thread) was the
   * largest cost PostgreSQL added to the fan-out (issue 14). `RETURNING hub` names the hubs whose row
   * was written, for `putAck`'s answer. Rows go in hub order: two writers on PostgreSQL take the rows'
   * locks in the same order and cannot deadlock.
   */
  const putAcks = async (q: Sql, acks: readonly HubAck[], returning: boolean): Promise<Set<string>> => {
    const batchNewest = new Map<string, HubAck>();
    for (const a of acks) if (isNewerAck(a, batchNewest.get(a.hub) ?? null)) batchNewest.set(a.hub, a);
    const rows = [...batchNewest.values()].sort((a, b) => (a.hub < b.hub ? -1 : a.hub > b.hub ? 1 : 0));
    const written = new Set<string>();
    for (let i = 0; i < rows.length; i += ACK_CHUNK) {
      const chunk = rows.slice(i, i + ACK_CHUNK);
      // PostgreSQL: ten arrays and one short statement text, whatever the number of rows — a VALUES list
      // of 500 rows was 5,000 parameters and ~30 KB of SQL that the server parsed and planned every
      // group commit (issue 14: most of its CPU in a fan-out, and bytes written over loopback).
      const pg = q.dialect === 'postgres';
      const params: SqlValue[] = pg
        ? ACK_FIELDS.map((f) => chunk.map(f) as (string | number | null)[])
        : chunk.flatMap((a) => ACK_FIELDS.map((f) => f(a)));
      const rowsSql = pg
        ? 'SELECT * FROM unnest(?::text[], ?::text[], ?::bigint[], ?::text[], ?::text[], ?::text[], ?::bigint[], ?::bigint[], ?::text[], ?::int[])'
        : `VALUES ${chunk.map(() => '(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}`;
      const upsert = `INSERT INTO mode_hub_acks (${ACK_COLUMNS}) ${rowsSql}
         ON CONFLICT (hub) DO UPDATE SET region = excluded.region, version = excluded.version, mode = excluded.mode, source = excluded.source,
           reason = excluded.reason, ts = excluded.ts, received_at = excluded.received_at, msg_id = excluded.msg_id, historical = excluded.historical
         WHERE excluded.version > mode_hub_acks.version OR (excluded.version = mode_hub_acks.version AND excluded.ts > mode_hub_acks.ts)`;
      if (!returning) {
        await q.run(upsert, params);
        continue;
      }
      for (const r of await q.query<{ hub: string }>(`${upsert} RETURNING hub`, params)) written.add(r.hub);
    }
    return written;
  };

  const clearConflicts = async (q: Sql, region: string, hubs: readonly string[] | null): Promise<number> => {
    if (hubs === null) return q.run('DELETE FROM mode_conflicts WHERE region = ?', [region]);
    if (hubs.length === 0) return 0;
    return q.run(`DELETE FROM mode_conflicts WHERE region = ? AND hub IN (${hubs.map(() => '?').join(', ')})`, [region, ...hubs]);
  };

  return {
    latest: async (region, tx) => {
      const r = await (tx ?? sql).one<VersionRow>(`SELECT ${VERSION_COLUMNS} FROM mode_versions WHERE region = ? ORDER BY version DESC LIMIT 1`, [region]);
      return r ? fromVersionRow(r) : null;
    },
    allLatest: async () =>
      (await sql.query<VersionRow>(
        `SELECT v.region, v.version, v.mode, v.hubs, v.reason, v.by, v.at FROM mode_versions v
         JOIN (SELECT region, max(version) AS version FROM mode_versions GROUP BY region) m ON m.region = v.region AND m.version = v.version
         ORDER BY v.region`,
      )).map(fromVersionRow),
    appendVersion: async (d, e, tx) => {
      if (d.by === null || d.at === null) throw new Error('a stored version needs `by` and `at`');
      return inTx(tx, (q) => appendVersion(q, d, e));
    },
    appendAudit: (e, tx) => insertAudit(tx ?? sql, e),
    history: async (region, q) =>
      (await sql.query<AuditRow>(
        `SELECT ${AUDIT_COLUMNS} FROM mode_audit WHERE region = ? AND id < ? ORDER BY id DESC LIMIT ?`,
        [region, q.beforeId ?? Number.MAX_SAFE_INTEGER, q.limit],
      )).map(fromAuditRow),
    putAck: async (a, tx) => (await putAcks(tx ?? sql, [a], true)).has(a.hub),
    putAcks: async (acks, tx) => void (acks.length > 0 && (await inTx(tx, (q) => putAcks(q, acks, false)))),
    acks: async (region) =>
      new Map((await sql.query<AckRow>(`SELECT ${ACK_COLUMNS} FROM mode_hub_acks WHERE region = ?`, [region])).map((r) => [r.hub, fromAckRow(r)])),
    allAcks: async () => (await sql.query<AckRow>(`SELECT ${ACK_COLUMNS} FROM mode_hub_acks ORDER BY hub`)).map(fromAckRow),
    putConflict: async (c, tx) =>
      void (await (tx ?? sql).run(
        'INSERT INTO mode_conflicts (hub, region, body) VALUES (?, ?, ?) ON CONFLICT (hub) DO UPDATE SET region = excluded.region, body = excluded.body',
        [c.hub, c.region, JSON.stringify(c)],
      )),
    clearConflicts: (region, hubs, tx) => clearConflicts(tx ?? sql, region, hubs),
    conflicts: async (region) =>
      new Map((await sql.query<{ hub: string; body: string }>('SELECT hub, body FROM mode_conflicts WHERE region = ?', [region]))
        .map((r) => [r.hub, JSON.parse(r.body) as ModeConflict])),
    allConflicts: async () =>
      (await sql.query<{ body: string }>('SELECT body FROM mode_conflicts ORDER BY hub')).map((r) => JSON.parse(r.body) as ModeConflict),
    transaction: (fn) => sql.transaction(fn),
  };
}

/** In memory, for unit tests of code that uses modes; passes the same suite as the SQL store. */
export function createMemoryModeStore(): ModeStore {
  const versions = new Map<string, DesiredMode[]>();
  const log: AuditEntry[] = [];
  const ackByHub = new Map<string, HubAck>();
  const conflictByHub = new Map<string, ModeConflict>();
  const copyD = (d: DesiredMode): DesiredMode => ({ ...d, hubs: { ...d.hubs } });
  const copyE = (e: AuditEntry): AuditEntry => ({ ...e, hubs: e.hubs ? [...e.hubs] : null });
  const putAck = (a: HubAck): boolean => {
    if (!isNewerAck(a, ackByHub.get(a.hub) ?? null)) return false;
    ackByHub.set(a.hub, { ...a });
    return true;
  };
  const audit = (e: NewAuditEntry): AuditEntry | null => {
    const hub = auditHub(e);
    if (e.msgId !== null && log.some((x) => x.msgId === e.msgId && auditHub(x) === hub)) return null;
    const entry = { ...e, hubs: e.hubs ? [...e.hubs] : null, id: log.length + 1 };
    log.push(entry);
    return copyE(entry);
  };
  const latest = (region: string): DesiredMode | null => {
    const list = versions.get(region);
    return list?.length ? copyD(list.at(-1)!) : null;
  };
  return {
    latest: async (region) => latest(region),
    allLatest: async () => [...versions.keys()].sort().map((r) => latest(r)!),
    appendVersion: async (d, e) => {
      if (d.by === null || d.at === null) throw new Error('a stored version needs `by` and `at`');
      const list = versions.get(d.region) ?? [];
      if (list.some((x) => x.version === d.version)) throw new ModeVersionTakenError(d.region, d.version);
      list.push(copyD(d));
      list.sort((a, b) => a.version - b.version);
      versions.set(d.region, list);
      return audit(e)!;
    },
    appendAudit: async (e) => audit(e),
    history: async (region, q) =>
      log
        .filter((e) => e.region === region && e.id < (q.beforeId ?? Number.MAX_SAFE_INTEGER))
        .reverse()
        .slice(0, q.limit)
        .map(copyE),
    putAck: async (a) => putAck(a),
    putAcks: async (acks) => void acks.forEach(putAck),
    acks: async (region) => new Map([...ackByHub.values()].filter((a) => a.region === region).map((a) => [a.hub, { ...a }])),
    allAcks: async () => [...ackByHub.values()].sort((a, b) => (a.hub < b.hub ? -1 : 1)).map((a) => ({ ...a })),
    putConflict: async (c) => void conflictByHub.set(c.hub, structuredClone(c)),
    clearConflicts: async (region, hubs) => {
      let n = 0;
      for (const [hub, c] of conflictByHub) {
        if (c.region === region && (hubs === null || hubs.includes(hub))) n += conflictByHub.delete(hub) ? 1 : 0;
      }
      return n;
    },
    conflicts: async (region) => new Map([...conflictByHub.values()].filter((c) => c.region === region).map((c) => [c.hub, structuredClone(c)])),
    allConflicts: async () => [...conflictByHub.values()].sort((a, b) => (a.hub < b.hub ? -1 : 1)).map((c) => structuredClone(c)),
    transaction: (fn) => fn(undefined),
  };
}
