import type { Mode } from '../../contract/index.ts';
import { migrateFeature, type OperationalDb } from '../db/operational-db.ts';
import { isNewerAck, type DesiredMode, type HubAck, type ModeConflict } from './mode-state.ts';

/**
 * Where disaster mode keeps its state: every version of each region's desired state (append-only),
 * the audit log (append-only: coordinators' switches and hubs' local switches), and each hub's
 * newest acknowledgement. One port, two implementations (SQLite in `cloud.db`, and in memory for
 * unit tests) that pass one shared test suite (mode-store.test.ts).
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

export interface ModeStore {
  /** The newest version of the region's desired state, or null if it was never switched. */
  latest(region: string): DesiredMode | null;
  /** The newest version of every region that was ever switched. */
  allLatest(): DesiredMode[];
  /** Appends a new version and its audit entry together; throws if that version exists. */
  appendVersion(d: DesiredMode, audit: NewAuditEntry): AuditEntry;
  /** Appends an audit entry; a local switch with a (hub, msgId) already recorded is ignored (null). */
  appendAudit(entry: NewAuditEntry): AuditEntry | null;
  /** Newest first; entries with an id below `beforeId` only, when given. */
  history(region: string, q: { limit: number; beforeId?: number }): AuditEntry[];
  /** Keeps the acknowledgement if it is newer than the stored one (see `isNewerAck`); true when kept. */
  putAck(ack: HubAck): boolean;
  /**
   * `putAck` for each, in order, as one write (one transaction: a region of thousands of hubs
   * acknowledging a switch must not cost one synced commit per hub). One result per acknowledgement.
   */
  putAcks(acks: readonly HubAck[]): boolean[];
  /** Newest acknowledgement of each hub of the region. */
  acks(region: string): Map<string, HubAck>;
  /** Records a hub's open conflict (issue 12, defect 10), replacing an earlier one of the hub. */
  putConflict(c: ModeConflict): void;
  /** Clears the open conflicts of these hubs of the region (null: every hub of it); returns how many. */
  clearConflicts(region: string, hubs: readonly string[] | null): number;
  /** Open conflicts of the region's hubs. */
  conflicts(region: string): Map<string, ModeConflict>;
}

/** `cloud.db` migrations of this feature; append, never edit. */
export const MODE_MIGRATIONS = [
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
] as const;

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

export function createSqliteModeStore(db: OperationalDb): ModeStore {
  migrateFeature(db, 'modes', MODE_MIGRATIONS);
  const latestStmt = db.prepare<[string], VersionRow>('SELECT * FROM mode_versions WHERE region = ? ORDER BY version DESC LIMIT 1');
  const allLatestStmt = db.prepare<[], VersionRow>(
    'SELECT v.* FROM mode_versions v JOIN (SELECT region, max(version) AS version FROM mode_versions GROUP BY region) m USING (region, version) ORDER BY region',
  );
  const insertVersion = db.prepare('INSERT INTO mode_versions (region, version, mode, hubs, reason, by, at) VALUES (?, ?, ?, ?, ?, ?, ?)');
  const insertAudit = db.prepare(
    `INSERT INTO mode_audit (region, kind, at, recorded_at, by, mode, hubs, reason, version, desired_version, desired_mode, historical, summary, hub, msg_id)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
  );
  const historyStmt = db.prepare<[string, number, number], AuditRow>('SELECT * FROM mode_audit WHERE region = ? AND id < ? ORDER BY id DESC LIMIT ?');
  // One statement per acknowledgement: the upsert's WHERE is `isNewerAck` (version first, then hub
  // time), so `changes` says whether it was kept — no read before the write.
  const upsertAck = db.prepare(
    `INSERT INTO mode_hub_acks (hub, region, version, mode, source, reason, ts, received_at, msg_id, historical) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (hub) DO UPDATE SET region = excluded.region, version = excluded.version, mode = excluded.mode, source = excluded.source,
       reason = excluded.reason, ts = excluded.ts, received_at = excluded.received_at, msg_id = excluded.msg_id, historical = excluded.historical
     WHERE excluded.version > mode_hub_acks.version OR (excluded.version = mode_hub_acks.version AND excluded.ts > mode_hub_acks.ts)`,
  );
  const acksStmt = db.prepare<[string], AckRow>('SELECT * FROM mode_hub_acks WHERE region = ?');
  const putConflictStmt = db.prepare('INSERT INTO mode_conflicts (hub, region, body) VALUES (?, ?, ?) ON CONFLICT (hub) DO UPDATE SET region = excluded.region, body = excluded.body');
  const clearRegionConflicts = db.prepare<[string]>('DELETE FROM mode_conflicts WHERE region = ?');
  const clearHubConflict = db.prepare<[string, string]>('DELETE FROM mode_conflicts WHERE region = ? AND hub = ?');
  const conflictsStmt = db.prepare<[string], { hub: string; body: string }>('SELECT hub, body FROM mode_conflicts WHERE region = ?');
  const clearConflicts = db.transaction((region: string, hubs: readonly string[] | null): number =>
    hubs === null ? clearRegionConflicts.run(region).changes : hubs.reduce((n, h) => n + clearHubConflict.run(region, h).changes, 0));

  const audit = (e: NewAuditEntry): AuditEntry | null => {
    const r = insertAudit.run(
      e.region, e.kind, e.at, e.recordedAt, e.by, e.mode, e.hubs === null ? null : JSON.stringify(e.hubs), e.reason, e.version,
      e.desiredVersion, e.desiredMode, e.historical ? 1 : 0, e.summary, auditHub(e), e.msgId,
    );
    return r.changes === 1 ? { ...e, id: Number(r.lastInsertRowid) } : null;
  };
  const appendVersion = db.transaction((d: DesiredMode, e: NewAuditEntry): AuditEntry => {
    insertVersion.run(d.region, d.version, d.mode, JSON.stringify(d.hubs), d.reason, d.by, d.at);
    const entry = audit(e);
    if (!entry) throw new Error('audit entry of a switch not recorded');
    return entry;
  });
  const keepAck = (a: HubAck): boolean =>
    upsertAck.run(a.hub, a.region, a.version, a.mode, a.source, a.reason, a.ts, a.receivedAt, a.msgId, a.historical ? 1 : 0).changes === 1;
  const putAck = keepAck;
  const putAcks = db.transaction((acks: readonly HubAck[]): boolean[] => acks.map(keepAck));

  return {
    latest(region) {
      const r = latestStmt.get(region);
      return r ? fromVersionRow(r) : null;
    },
    allLatest: () => allLatestStmt.all().map(fromVersionRow),
    appendVersion: (d, e) => {
      if (d.by === null || d.at === null) throw new Error('a stored version needs `by` and `at`');
      return appendVersion(d, e);
    },
    appendAudit: (e) => audit(e),
    history: (region, q) => historyStmt.all(region, q.beforeId ?? Number.MAX_SAFE_INTEGER, q.limit).map(fromAuditRow),
    putAck: (a) => putAck(a),
    putAcks: (acks) => (acks.length === 0 ? [] : putAcks(acks)),
    acks: (region) => new Map(acksStmt.all(region).map((r) => [r.hub, fromAckRow(r)])),
    putConflict: (c) => void putConflictStmt.run(c.hub, c.region, JSON.stringify(c)),
    clearConflicts: (region, hubs) => clearConflicts(region, hubs),
    conflicts: (region) => new Map(conflictsStmt.all(region).map((r) => [r.hub, JSON.parse(r.body) as ModeConflict])),
  };
}

/** In memory, for unit tests of code that uses modes; passes the same suite as the SQLite store. */
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
  return {
    latest(region) {
      const list = versions.get(region);
      return list?.length ? copyD(list.at(-1)!) : null;
    },
    allLatest: () => [...versions.keys()].sort().map((r) => copyD(versions.get(r)!.at(-1)!)),
    appendVersion(d, e) {
      if (d.by === null || d.at === null) throw new Error('a stored version needs `by` and `at`');
      const list = versions.get(d.region) ?? [];
      if (list.some((x) => x.version === d.version)) throw new Error(`version ${d.version} of ${d.region} exists`);
      list.push(copyD(d));
      list.sort((a, b) => a.version - b.version);
      versions.set(d.region, list);
      return audit(e)!;
    },
    appendAudit: audit,
    history: (region, q) =>
      log
        .filter((e) => e.region === region && e.id < (q.beforeId ?? Number.MAX_SAFE_INTEGER))
        .reverse()
        .slice(0, q.limit)
        .map(copyE),
    putAck,
    putAcks: (acks) => acks.map(putAck),
    acks: (region) => new Map([...ackByHub.values()].filter((a) => a.region === region).map((a) => [a.hub, { ...a }])),
    putConflict: (c) => void conflictByHub.set(c.hub, structuredClone(c)),
    clearConflicts(region, hubs) {
      let n = 0;
      for (const [hub, c] of conflictByHub) {
        if (c.region === region && (hubs === null || hubs.includes(hub))) n += conflictByHub.delete(hub) ? 1 : 0;
      }
      return n;
    },
    conflicts: (region) => new Map([...conflictByHub.values()].filter((c) => c.region === region).map((c) => [c.hub, structuredClone(c)])),
  };
}
