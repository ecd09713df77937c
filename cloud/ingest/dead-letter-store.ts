import type { OperationalDb } from '../db/operational-db.ts';
import type { RejectionReason } from './classify.ts';

/**
 * Rejected messages kept for inspection. Bounded twice, so a hostile hub can neither fill the disk
 * nor erase the evidence of everyone else (issue 11: one hub wrote 64 MB in 1.3 s and evicted every
 * other hub's dead letters):
 * - per hub (the authenticated sender, never a payload field): at most `maxRowsPerHub` rows and
 *   `maxBytesPerHub` stored bytes; beyond either, that hub's own oldest rows are deleted;
 * - in total: at most `maxRows` rows and `maxBytes` stored bytes; beyond either, the oldest rows of
 *   all are deleted (only many hubs together can reach that).
 * Evictions are returned so the caller counts them.
 */
export const KEPT_PAYLOAD_BYTES = 65_536;

export interface DeadLetterLimits {
  maxRows: number;
  maxBytes: number;
  maxRowsPerHub: number;
  maxBytesPerHub: number;
}

/** Bytes a row takes for the quota: the kept payload, the detail and the topic (UTF-8). */
const ROW_BYTES_SQL = `(min(size, ${KEPT_PAYLOAD_BYTES}) + length(CAST(detail AS BLOB)) + length(CAST(topic AS BLOB)))`;
/** The quota bucket of rows with no hub (a last will after its client left). */
const NO_HUB = '';

export interface DeadLetterInput {
  receivedAt: number;
  region: string | null;
  hub: string | null;
  clientId: string | null;
  topic: string;
  reason: RejectionReason;
  detail: string;
  payload: Buffer;
}

export interface DeadLetter {
  id: number;
  receivedAt: string;
  region: string | null;
  hub: string | null;
  clientId: string | null;
  topic: string;
  reason: RejectionReason;
  detail: string;
  size: number;
  truncated: boolean;
  /** The payload as UTF-8 text when it is valid UTF-8, else null (see payloadBase64). */
  payloadText: string | null;
  payloadBase64: string | null;
}

export interface DeadLetterQuery {
  hub?: string;
  reason?: RejectionReason;
  /** Only ids below this (for paging backwards). */
  beforeId?: number;
  limit: number;
}

export interface DeadLetterStore {
  /** Adds in one transaction; returns how many old rows were evicted to stay within the bounds. */
  addMany(items: readonly DeadLetterInput[]): number;
  list(q: DeadLetterQuery): DeadLetter[];
  count(): number;
  /** What one hub's dead letters take against its quota (null: those with no hub). */
  usage(hub: string | null): { rows: number; bytes: number };
  /** What all dead letters take. */
  totalUsage(): { rows: number; bytes: number };
}

interface Row {
  id: number; received_at: number; region: string | null; hub: string | null; client_id: string | null; topic: string;
  reason: string; detail: string; size: number; truncated: number; payload: Buffer;
}

const decoder = new TextDecoder('utf-8', { fatal: true });

export function createDeadLetterStore(db: OperationalDb, limits: DeadLetterLimits): DeadLetterStore {
  const insert = db.prepare<unknown[], { bytes: number }>(
    `INSERT INTO dead_letters (received_at, region, hub, client_id, topic, reason, detail, size, truncated, payload)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING ${ROW_BYTES_SQL} AS bytes`,
  );
  const countStmt = db.prepare<[], { n: number }>('SELECT count(*) AS n FROM dead_letters');
  const oldestOfAll = db.prepare<[], { id: number; hub: string | null; bytes: number }>(
    `SELECT id, hub, ${ROW_BYTES_SQL} AS bytes FROM dead_letters ORDER BY id LIMIT 256`,
  );
  // (hub, id) is indexed: the oldest rows of one hub are found without a scan.
  const oldestOf = db.prepare<[string], { id: number; bytes: number }>(
    `SELECT id, ${ROW_BYTES_SQL} AS bytes FROM dead_letters WHERE hub = ? ORDER BY id LIMIT 256`,
  );
  const oldestWithoutHub = db.prepare<[], { id: number; bytes: number }>(
    `SELECT id, ${ROW_BYTES_SQL} AS bytes FROM dead_letters WHERE hub IS NULL ORDER BY id LIMIT 256`,
  );
  const oldestOfHub = (hub: string) => (hub === NO_HUB ? oldestWithoutHub.all() : oldestOf.all(hub));
  const deleteOne = db.prepare<[number]>('DELETE FROM dead_letters WHERE id = ?');
  // Usage per hub and in total, kept in memory (one entry per hub that has dead letters); read from
  // the table at start, and again should a transaction fail (its changes were rolled back).
  const perHub = new Map<string, { rows: number; bytes: number }>();
  const usageStmt = db.prepare<[], { hub: string; rows: number; bytes: number }>(
    `SELECT coalesce(hub, '${NO_HUB}') AS hub, count(*) AS rows, sum(${ROW_BYTES_SQL}) AS bytes FROM dead_letters GROUP BY 1`,
  );
  let rows = 0;
  let bytes = 0;
  const readUsage = () => {
    perHub.clear();
    rows = 0;
    bytes = 0;
    for (const r of usageStmt.all()) {
      perHub.set(r.hub, { rows: r.rows, bytes: r.bytes });
      rows += r.rows;
      bytes += r.bytes;
    }
  };
  readUsage();
  const usageOf = (hub: string) => {
    let u = perHub.get(hub);
    if (!u) perHub.set(hub, (u = { rows: 0, bytes: 0 }));
    return u;
  };
  const evict = (id: number, hub: string, rowBytes: number) => {
    deleteOne.run(id);
    const u = usageOf(hub);
    u.rows--;
    u.bytes -= rowBytes;
    rows--;
    bytes -= rowBytes;
    if (u.rows <= 0) perHub.delete(hub);
  };
  const overQuota = (u: { rows: number; bytes: number }) => u.rows > limits.maxRowsPerHub || u.bytes > limits.maxBytesPerHub;

  const addAll = db.transaction((items: readonly DeadLetterInput[]) => {
    const touched = new Set<string>();
    for (const d of items) {
      const kept = d.payload.subarray(0, KEPT_PAYLOAD_BYTES);
      const row = insert.get(d.receivedAt, d.region, d.hub, d.clientId, d.topic.slice(0, 512), d.reason, d.detail.slice(0, 2000),
        d.payload.length, kept.length < d.payload.length ? 1 : 0, kept)!;
      const hub = d.hub ?? NO_HUB;
      const u = usageOf(hub);
      u.rows++;
      u.bytes += row.bytes;
      rows++;
      bytes += row.bytes;
      touched.add(hub);
    }
    let evicted = 0;
    // A hub over its quota loses its own oldest rows, never anyone else's.
    for (const hub of touched) {
      while (overQuota(usageOf(hub))) {
        const oldest = oldestOfHub(hub);
        for (const o of oldest) {
          if (!overQuota(usageOf(hub))) break;
          evict(o.id, hub, o.bytes);
          evicted++;
        }
        if (oldest.length === 0) break;
      }
    }
    const overall = () => rows > limits.maxRows || bytes > limits.maxBytes;
    while (overall()) {
      const oldest = oldestOfAll.all();
      for (const o of oldest) {
        if (!overall()) break;
        evict(o.id, o.hub ?? NO_HUB, o.bytes);
        evicted++;
      }
      if (oldest.length === 0) break;
    }
    return evicted;
  });

  return {
    addMany(items) {
      if (items.length === 0) return 0;
      try {
        return addAll(items);
      } catch (err) {
        readUsage(); // the transaction was rolled back: so are the figures
        throw err;
      }
    },
    list(q) {
      const where: string[] = [];
      const args: (string | number)[] = [];
      if (q.hub) { where.push('hub = ?'); args.push(q.hub); }
      if (q.reason) { where.push('reason = ?'); args.push(q.reason); }
      if (q.beforeId) { where.push('id < ?'); args.push(q.beforeId); }
      const sql = `SELECT * FROM dead_letters ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`;
      return (db.prepare(sql).all(...args, q.limit) as Row[]).map(toDeadLetter);
    },
    count() {
      return countStmt.get()!.n;
    },
    usage(hub) {
      const u = perHub.get(hub ?? NO_HUB);
      return u ? { ...u } : { rows: 0, bytes: 0 };
    },
    totalUsage: () => ({ rows, bytes }),
  };
}

function toDeadLetter(r: Row): DeadLetter {
  let text: string | null = null;
  try {
    text = decoder.decode(r.payload);
  } catch {
    text = null;
  }
  return {
    id: r.id, receivedAt: new Date(r.received_at).toISOString(), region: r.region, hub: r.hub, clientId: r.client_id,
    topic: r.topic, reason: r.reason as RejectionReason, detail: r.detail, size: r.size, truncated: r.truncated === 1,
    payloadText: text, payloadBase64: text === null ? r.payload.toString('base64') : null,
  };
}
