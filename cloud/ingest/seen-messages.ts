import { migrateFeature, type OperationalDb } from '../db/operational-db.ts';
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

/** `cloud.db` migrations of the dedupe memory; append, never edit. */
export const SEEN_MESSAGE_MIGRATIONS = [
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

export interface SeenMessageStore {
  has(hub: string, device: string, msgId: string): boolean;
  /** Records in one transaction; an entry already present keeps its first time. */
  recordMany(entries: readonly SeenMessage[]): void;
  /** Deletes at most `limit` entries seen before `before` (oldest first); returns how many. */
  prune(before: number, limit: number): number;
  count(): number;
}

export function createSeenMessageStore(db: OperationalDb): SeenMessageStore {
  migrateFeature(db, 'seen_messages', SEEN_MESSAGE_MIGRATIONS);
  const hasStmt = db.prepare<[string, string, string], { one: number }>(
    `SELECT 1 AS one FROM seen_messages WHERE hub = ? AND msg_id = ? AND device IN (?, '${LEGACY_DEVICE}') LIMIT 1`,
  );
  const insert = db.prepare('INSERT OR IGNORE INTO seen_messages (hub, device, msg_id, seen_at) VALUES (?, ?, ?, ?)');
  const pruneStmt = db.prepare(
    `DELETE FROM seen_messages WHERE (hub, msg_id, device) IN
       (SELECT hub, msg_id, device FROM seen_messages WHERE seen_at < ? ORDER BY seen_at LIMIT ?)`,
  );
  const countStmt = db.prepare<[], { n: number }>('SELECT count(*) AS n FROM seen_messages');
  const recordAll = db.transaction((entries: readonly SeenMessage[]) => {
    for (const e of entries) insert.run(e.hub, e.device, e.msgId, e.seenAt);
  });
  return {
    has: (hub, device, msgId) => hasStmt.get(hub, msgId, device) !== undefined,
    recordMany: (entries) => {
      if (entries.length > 0) recordAll(entries);
    },
    prune: (before, limit) => pruneStmt.run(before, limit).changes,
    count: () => countStmt.get()!.n,
  };
}

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
}): SeenMessagePruning {
  const chunk = o.chunk ?? 5_000;
  const maxPerPass = o.maxPerPass ?? 100_000;
  let running: Promise<number> | null = null;
  let stopped = false;
  const pass = async (): Promise<number> => {
    const before = o.now() - o.retentionMs;
    let deleted = 0;
    while (deleted < maxPerPass && !stopped) {
      const n = o.store.prune(before, Math.min(chunk, maxPerPass - deleted));
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
