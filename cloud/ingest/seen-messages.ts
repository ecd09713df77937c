import type { Database, FeatureMigrations } from '../db/database.ts';
import type { Sql } from '../db/sql.ts';
import type { Logger } from '../logger.ts';

/**
 * The dedupe memory: which messages with side effects (device events, command and mode
 * acknowledgements) the cloud has already taken, by (hub, device, message id) — the contract's dedupe
 * key. The device is part of it (issue 11) so that one device on a hub's LAN cannot send another
 * device's next message ids first and have its genuine messages dropped as copies; messages of the
 * hub itself (mode acknowledgements) use `HUB_LEVEL_DEVICE`.
 * A hub re-sends a message whose PUBACK it never saw; the second copy must be acknowledged but not
 * applied again (issue 3, "exactly once"). Telemetry is not recorded here: its storage keys make
 * it idempotent on their own, and recording ~15,000 telemetry messages/s would double the writes.
 *
 * Entries are forgotten after a retention period (DEDUPE_RETENTION_HOURS), far longer than any
 * hub's outbox keeps a message, so a re-send never outlives the memory of its first copy.
 */
export interface SeenMessage {
  hub: string;
  /** The device the message is about, or `HUB_LEVEL_DEVICE`. */
  device: string;
  msgId: string;
  /** Cloud receive time, epoch ms. */
  seenAt: number;
}

/** Device part of the key for messages about no device: never a valid device id (contract DeviceId). */
export const HUB_LEVEL_DEVICE = '';
/** Device part of entries remembered before the key had one: they match any device until pruned. */
const LEGACY_DEVICE = '*';

/** SQLite migrations of the dedupe memory (the table itself comes from the legacy steps); append, never edit. */
const SQLITE_STEPS = [
  // Issue 11: the device joins the key. Entries remembered under the old key keep their meaning
  // (a re-sent copy of a message taken before the upgrade is still recognised) until pruned.
  `CREATE TABLE seen_messages_v2 (
     hub     TEXT NOT NULL,
     device  TEXT NOT NULL,             -- '' for hub-level messages, '*' for entries from before the device was in the key
     msg_id  TEXT NOT NULL,
     seen_at INTEGER NOT NULL,          -- cloud receive time, epoch ms; pruned after DEDUPE_RETENTION_HOURS
     PRIMARY KEY (hub, msg_id, device)
   ) WITHOUT ROWID;
   INSERT INTO seen_messages_v2 (hub, device, msg_id, seen_at) SELECT hub, '${LEGACY_DEVICE}', msg_id, seen_at FROM seen_messages;
   DROP TABLE seen_messages;
   ALTER TABLE seen_messages_v2 RENAME TO seen_messages;
   CREATE INDEX seen_messages_seen_at ON seen_messages (seen_at);`,
];

/** The dedupe memory's PostgreSQL schema: the newest SQLite one (the table is created here, not by the legacy steps). */
const POSTGRES_SCHEMA = `CREATE TABLE seen_messages (
     hub     TEXT NOT NULL,
     device  TEXT NOT NULL,
     msg_id  TEXT NOT NULL,
     seen_at BIGINT NOT NULL,
     PRIMARY KEY (hub, msg_id, device)
   );
   CREATE INDEX seen_messages_seen_at ON seen_messages (seen_at);`;

export const SEEN_MESSAGE_MIGRATIONS: FeatureMigrations = { sqlite: SQLITE_STEPS, postgres: [POSTGRES_SCHEMA] };

export interface SeenMessageStore {
  /**
   * Records the entries — in `tx` when given, so they commit with the batch's side effects — and
   * tells, per entry, whether it was new (`true`) or a copy of one already remembered (an entry with
   * the same key earlier in the same call included). A copy keeps the first entry's time. One
   * statement per 1,000 entries: ingest calls it once per group commit, never per message.
   */
  recordNew(entries: readonly SeenMessage[], tx?: Sql): Promise<boolean[]>;
  has(hub: string, device: string, msgId: string): Promise<boolean>;
  /** The `limit` entries seen last, oldest of them first (ingest's memory of recent copies after a restart). */
  newest(limit: number): Promise<SeenMessage[]>;
  /** Deletes at most `limit` entries seen before `before` (oldest first); returns how many. */
  prune(before: number, limit: number): Promise<number>;
  count(): Promise<number>;
}

const CHUNK = 1_000;

export async function openSeenMessageStore(db: Database): Promise<SeenMessageStore> {
  await db.migrate('seen_messages', SEEN_MESSAGE_MIGRATIONS);
  const sql = db.sql;
  // Entries from before the device was in the key (SQLite installations, or copied from one) match any
  // device. Looked for only while some may exist: they are pruned after the retention period.
  const anyLegacy = async () => (await sql.one(`SELECT 1 AS one FROM seen_messages WHERE device = '${LEGACY_DEVICE}' LIMIT 1`)) !== undefined;
  let legacy = await anyLegacy();

  const recordChunk = async (q: Sql, entries: readonly SeenMessage[]): Promise<Set<string>> => {
    // PostgreSQL: four arrays and one short statement text (not a VALUES list of 4,000 parameters the
    // server parses and plans every group commit; issue 14, fan-out). unnest keeps the entries' order.
    const pg = q.dialect === 'postgres';
    const rowsSql = pg ? 'SELECT * FROM unnest(?::text[], ?::text[], ?::text[], ?::bigint[])' : `VALUES ${entries.map(() => '(?, ?, ?, ?)').join(', ')}`;
    const params = pg
      ? [entries.map((e) => e.hub), entries.map((e) => e.device), entries.map((e) => e.msgId), entries.map((e) => e.seenAt)]
      : entries.flatMap((e) => [e.hub, e.device, e.msgId, e.seenAt]);
    const rows = await q.query<{ hub: string; device: string; msg_id: string }>(
      `INSERT INTO seen_messages (hub, device, msg_id, seen_at) ${rowsSql}
       ON CONFLICT (hub, msg_id, device) DO NOTHING RETURNING hub, device, msg_id`,
      params,
    );
    const fresh = new Set(rows.map((r) => dedupeKeyOf(r.hub, r.device, r.msg_id)));
    if (legacy && fresh.size > 0) {
      const candidates = entries.filter((e) => fresh.has(dedupeKeyOf(e.hub, e.device, e.msgId)));
      const old = await q.query<{ hub: string; msg_id: string }>(
        `SELECT hub, msg_id FROM seen_messages WHERE device = '${LEGACY_DEVICE}' AND (${candidates.map(() => '(hub = ? AND msg_id = ?)').join(' OR ')})`,
        candidates.flatMap((e) => [e.hub, e.msgId]),
      );
      const before = new Set(old.map((r) => `${r.hub}\u0000${r.msg_id}`));
      for (const e of candidates) if (before.has(`${e.hub}\u0000${e.msgId}`)) fresh.delete(dedupeKeyOf(e.hub, e.device, e.msgId));
    }
    return fresh;
  };

  const recordAll = async (q: Sql, entries: readonly SeenMessage[]): Promise<boolean[]> => {
    // One row per key, in key order: two writers on PostgreSQL then take the keys' locks in the same
    // order and cannot deadlock.
    const first = new Map<string, SeenMessage>();
    for (const e of entries) {
      const k = dedupeKeyOf(e.hub, e.device, e.msgId);
      if (!first.has(k)) first.set(k, e);
    }
    const unique = [...first.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, e]) => e);
    const fresh = new Set<string>();
    for (let i = 0; i < unique.length; i += CHUNK) {
      for (const k of await recordChunk(q, unique.slice(i, i + CHUNK))) fresh.add(k);
    }
    // The first entry of a key is new when its row was; later ones in the call are copies of it.
    return entries.map((e) => fresh.delete(dedupeKeyOf(e.hub, e.device, e.msgId)));
  };

  return {
    recordNew: async (entries, tx) => {
      if (entries.length === 0) return [];
      return tx ? recordAll(tx, entries) : sql.transaction((t) => recordAll(t, entries));
    },
    has: async (hub, device, msgId) =>
      (await sql.one(`SELECT 1 AS one FROM seen_messages WHERE hub = ? AND msg_id = ? AND device IN (?, '${LEGACY_DEVICE}') LIMIT 1`, [hub, msgId, device])) !== undefined,
    newest: async (limit) => {
      const rows = await sql.query<{ hub: string; device: string; msg_id: string; seen_at: number }>(
        'SELECT hub, device, msg_id, seen_at FROM seen_messages ORDER BY seen_at DESC LIMIT ?', [limit],
      );
      return rows.reverse().map((r) => ({ hub: r.hub, device: r.device, msgId: r.msg_id, seenAt: Number(r.seen_at) }));
    },
    prune: async (before, limit) => {
      const n = await sql.run(
        `DELETE FROM seen_messages WHERE (hub, msg_id, device) IN
           (SELECT hub, msg_id, device FROM seen_messages WHERE seen_at < ? ORDER BY seen_at LIMIT ?)`,
        [before, limit],
      );
      if (n > 0 && legacy) legacy = await anyLegacy();
      return n;
    },
    count: async () => Number((await sql.one<{ n: number }>('SELECT count(*) AS n FROM seen_messages'))!.n),
  };
}

/** In memory, for unit tests of ingest; passes the same suite as the SQL store. */
export function createMemorySeenMessageStore(): SeenMessageStore {
  const entries = new Map<string, number>();
  return {
    recordNew: async (list) =>
      list.map((e) => {
        const k = dedupeKeyOf(e.hub, e.device, e.msgId);
        if (entries.has(k)) return false;
        entries.set(k, e.seenAt);
        return true;
      }),
    has: async (hub, device, msgId) => entries.has(dedupeKeyOf(hub, device, msgId)),
    newest: async (limit) =>
      [...entries]
        .sort((a, b) => a[1] - b[1])
        .slice(-limit)
        .map(([k, seenAt]) => {
          const [hub, device, msgId] = k.split('\u0000') as [string, string, string];
          return { hub, device, msgId, seenAt };
        }),
    prune: async (before, limit) => {
      const old = [...entries].filter(([, at]) => at < before).sort((a, b) => a[1] - b[1]).slice(0, limit);
      for (const [k] of old) entries.delete(k);
      return old.length;
    },
    count: async () => entries.size,
  };
}

/** One string per dedupe key (hub, device, message id). */
export const dedupeKeyOf = (hub: string, device: string, msgId: string) => `${hub}\u0000${device}\u0000${msgId}`;

export interface SeenMessagePruning {
  /** Runs one pruning pass now (also run by the timer); resolves with the number of entries deleted. */
  runOnce(): Promise<number>;
  stop(): void;
}

/**
 * Forgets entries older than `retentionMs`, every `intervalMs`. Each pass deletes in chunks of
 * `chunk` rows, yielding to the event loop between chunks, and stops after `maxPerPass` rows so a
 * large backlog (e.g. after the retention was shortened) never stalls ingest; the next pass goes on.
 */
export function startSeenMessagePruning(o: {
  store: SeenMessageStore;
  retentionMs: number;
  intervalMs: number;
  now: () => number;
  logger: Logger;
  chunk?: number;
  maxPerPass?: number;
  /**
   * Issue 15: in a cluster only the node holding the global lease prunes (the others' passes do
   * nothing). Deleting entries older than the retention is idempotent — two passes at once delete
   * each row once — so it is not fenced. Default: always (a single process).
   */
  mayRun?: () => boolean;
}): SeenMessagePruning {
  const chunk = o.chunk ?? 5_000;
  const maxPerPass = o.maxPerPass ?? 100_000;
  let running: Promise<number> | null = null;
  let stopped = false;
  const pass = async (): Promise<number> => {
    if (o.mayRun && !o.mayRun()) return 0;
    const before = o.now() - o.retentionMs;
    let deleted = 0;
    while (deleted < maxPerPass && !stopped && (o.mayRun?.() ?? true)) {
      const n = await o.store.prune(before, Math.min(chunk, maxPerPass - deleted));
      deleted += n;
      if (n < chunk) break;
      await new Promise((resolve) => setImmediate(resolve));
    }
    if (deleted > 0) o.logger.debug({ deleted, before }, 'dedupe memory pruned');
    return deleted;
  };
  const runOnce = () =>
    (running ??= pass()
      .catch((err: unknown) => {
        o.logger.warn({ err }, 'pruning the dedupe memory failed; retrying on the next pass');
        return 0;
      })
      .finally(() => (running = null)));
  const timer = setInterval(() => void runOnce(), o.intervalMs);
  timer.unref();
  return {
    runOnce,
    stop: () => {
      stopped = true;
      clearInterval(timer);
    },
  };
}
