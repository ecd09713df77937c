import type { OperationalDb } from '../db/operational-db.ts';
import type { RejectionReason } from './classify.ts';

/**
 * Rejected messages kept for inspection. Bounded: beyond `maxRows` the oldest are deleted (and
 * counted by the caller's metrics), so a hostile hub cannot fill the disk.
 */
export const KEPT_PAYLOAD_BYTES = 65_536;

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
  /** Adds in one transaction; returns how many old rows were evicted to stay within the bound. */
  addMany(items: readonly DeadLetterInput[]): number;
  list(q: DeadLetterQuery): DeadLetter[];
  count(): number;
}

interface Row {
  id: number; received_at: number; region: string | null; hub: string | null; client_id: string | null; topic: string;
  reason: string; detail: string; size: number; truncated: number; payload: Buffer;
}

const decoder = new TextDecoder('utf-8', { fatal: true });

export function createDeadLetterStore(db: OperationalDb, maxRows: number): DeadLetterStore {
  const insert = db.prepare(
    `INSERT INTO dead_letters (received_at, region, hub, client_id, topic, reason, detail, size, truncated, payload)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const countStmt = db.prepare<[], { n: number }>('SELECT count(*) AS n FROM dead_letters');
  const evict = db.prepare('DELETE FROM dead_letters WHERE id <= (SELECT max(id) FROM dead_letters) - ?');
  let rows = countStmt.get()!.n;

  const addAll = db.transaction((items: readonly DeadLetterInput[]) => {
    for (const d of items) {
      const kept = d.payload.subarray(0, KEPT_PAYLOAD_BYTES);
      insert.run(d.receivedAt, d.region, d.hub, d.clientId, d.topic.slice(0, 512), d.reason, d.detail.slice(0, 2000),
        d.payload.length, kept.length < d.payload.length ? 1 : 0, kept);
    }
    rows += items.length;
    let evicted = 0;
    if (rows > maxRows) {
      evicted = evict.run(maxRows).changes;
      rows -= evicted;
    }
    return evicted;
  });

  return {
    addMany(items) {
      return items.length === 0 ? 0 : addAll(items);
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
