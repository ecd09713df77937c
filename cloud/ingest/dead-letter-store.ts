import { printable } from '../../contract/validate-message.ts';
import type { Database, FeatureMigrations } from '../db/database.ts';
import type { Sql } from '../db/sql.ts';
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
 *
 * What each hub's rows take is kept in `dead_letter_usage` (and the sum in `dead_letter_totals`),
 * updated in the transaction that adds or evicts rows, so every cloud process sharing a PostgreSQL
 * database sees the same figures (issue 14). Every addition locks the totals row first, then the
 * hubs' rows in key order: writers take turns and cannot deadlock.
 */
export const KEPT_PAYLOAD_BYTES = 65_536;

export interface DeadLetterLimits {
  maxRows: number;
  maxBytes: number;
  maxRowsPerHub: number;
  maxBytesPerHub: number;
}

/** The quota bucket of rows with no hub (a last will after its client left). */
const NO_HUB = '';

/** Bytes a row takes for the quota: the kept payload, the detail and the topic (UTF-8). */
const rowBytesSql = (sql: Sql) =>
  sql.dialect === 'sqlite'
    ? `(min(size, ${KEPT_PAYLOAD_BYTES}) + length(CAST(detail AS BLOB)) + length(CAST(topic AS BLOB)))`
    : `(LEAST(size, ${KEPT_PAYLOAD_BYTES}) + octet_length(detail) + octet_length(topic))`;
const SQLITE_ROW_BYTES = `(min(size, ${KEPT_PAYLOAD_BYTES}) + length(CAST(detail AS BLOB)) + length(CAST(topic AS BLOB)))`;

/** Migrations of the dead letters; append, never edit. On SQLite the table comes from the legacy steps. */
export const DEAD_LETTER_MIGRATIONS: FeatureMigrations = {
  sqlite: [
    // Issue 14: usage per hub and in total kept in tables, so several writers share one account.
    `CREATE TABLE dead_letter_usage (
       hub        TEXT PRIMARY KEY,       -- '' for rows with no hub
       row_count  INTEGER NOT NULL,
       byte_count INTEGER NOT NULL
     ) WITHOUT ROWID;
     INSERT INTO dead_letter_usage (hub, row_count, byte_count)
       SELECT coalesce(hub, ''), count(*), sum(${SQLITE_ROW_BYTES}) FROM dead_letters GROUP BY 1;
     CREATE TABLE dead_letter_totals (
       id         INTEGER PRIMARY KEY CHECK (id = 1),
       row_count  INTEGER NOT NULL,
       byte_count INTEGER NOT NULL
     );
     INSERT INTO dead_letter_totals (id, row_count, byte_count)
       SELECT 1, count(*), coalesce(sum(${SQLITE_ROW_BYTES}), 0) FROM dead_letters;`,
  ],
  postgres: [
    `CREATE TABLE dead_letters (
       id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
       received_at BIGINT NOT NULL,
       region      TEXT,
       hub         TEXT,
       client_id   TEXT,
       topic       TEXT NOT NULL,
       reason      TEXT NOT NULL,
       detail      TEXT NOT NULL,
       size        BIGINT NOT NULL,
       truncated   INTEGER NOT NULL,
       payload     BYTEA NOT NULL
     );
     CREATE INDEX dead_letters_hub ON dead_letters (hub, id);
     CREATE INDEX dead_letters_reason ON dead_letters (reason, id);
     CREATE TABLE dead_letter_usage (
       hub        TEXT PRIMARY KEY,
       row_count  BIGINT NOT NULL,
       byte_count BIGINT NOT NULL
     );
     CREATE TABLE dead_letter_totals (
       id         INTEGER PRIMARY KEY CHECK (id = 1),
       row_count  BIGINT NOT NULL,
       byte_count BIGINT NOT NULL
     );
     INSERT INTO dead_letter_totals (id, row_count, byte_count) VALUES (1, 0, 0);`,
  ],
};

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
  /** Only rows of these regions (a coordinator's, issue 14); empty: none. */
  regions?: readonly string[];
  reason?: RejectionReason;
  /** Only ids below this (for paging backwards). */
  beforeId?: number;
  limit: number;
}

export interface Usage {
  rows: number;
  bytes: number;
}

export interface DeadLetterStore {
  /**
   * Adds in one transaction (`tx` when given: the caller's, e.g. ingest's group commit); resolves
   * with how many old rows were evicted to stay within the bounds.
   */
  addMany(items: readonly DeadLetterInput[], tx?: Sql): Promise<number>;
  list(q: DeadLetterQuery): Promise<DeadLetter[]>;
  /** Rows kept (of these regions only, when given; empty: none). */
  count(q?: { regions?: readonly string[] }): Promise<number>;
  /** What one hub's dead letters take against its quota (null: those with no hub). */
  usage(hub: string | null): Promise<Usage>;
  /** What all dead letters take. */
  totalUsage(): Promise<Usage>;
}

interface Row {
  id: number; received_at: number; region: string | null; hub: string | null; client_id: string | null; topic: string;
  reason: string; detail: string; size: number; truncated: number; payload: Buffer;
}

const decoder = new TextDecoder('utf-8', { fatal: true });
/** Rows per INSERT statement (10 parameters each). */
const INSERT_CHUNK = 200;
/** Oldest rows looked at per eviction query. */
const EVICT_CHUNK = 256;

export async function openDeadLetterStore(db: Database, limits: DeadLetterLimits): Promise<DeadLetterStore> {
  await db.migrate('dead_letters', DEAD_LETTER_MIGRATIONS);
  const sql = db.sql;
  const rowBytes = rowBytesSql(sql);
  const overQuota = (u: Usage) => u.rows > limits.maxRowsPerHub || u.bytes > limits.maxBytesPerHub;
  const overall = (u: Usage) => u.rows > limits.maxRows || u.bytes > limits.maxBytes;

  const addAll = async (tx: Sql, items: readonly DeadLetterInput[]): Promise<number> => {
    const rows = items.map((d) => {
      const kept = d.payload.subarray(0, KEPT_PAYLOAD_BYTES);
      // Text columns get printable text only: what a publisher sent may hold U+0000, which PostgreSQL
      // refuses in TEXT — one such row would fail the whole group commit (issue 14). The payload keeps its bytes.
      const topic = printable(d.topic.slice(0, 512));
      const detail = printable(d.detail.slice(0, 2000));
      const clientId = d.clientId === null ? null : printable(d.clientId);
      return {
        hub: d.hub ?? NO_HUB, bytes: kept.length + Buffer.byteLength(topic) + Buffer.byteLength(detail),
        params: [d.receivedAt, d.region, d.hub, clientId, topic, d.reason, detail, d.payload.length, kept.length < d.payload.length ? 1 : 0, kept],
      };
    });
    const added = new Map<string, Usage>();
    for (const r of rows) {
      const u = added.get(r.hub) ?? { rows: 0, bytes: 0 };
      u.rows++;
      u.bytes += r.bytes;
      added.set(r.hub, u);
    }
    // Lock order: the totals row, then the hubs' rows in key order.
    const total = toUsage((await tx.one<{ row_count: number; byte_count: number }>(
      'UPDATE dead_letter_totals SET row_count = row_count + ?, byte_count = byte_count + ? WHERE id = 1 RETURNING row_count, byte_count',
      [rows.length, rows.reduce((n, r) => n + r.bytes, 0)],
    ))!);
    const perHub = new Map<string, Usage>();
    for (const hub of [...added.keys()].sort()) {
      const a = added.get(hub)!;
      perHub.set(hub, toUsage((await tx.one<{ row_count: number; byte_count: number }>(
        `INSERT INTO dead_letter_usage (hub, row_count, byte_count) VALUES (?, ?, ?)
         ON CONFLICT (hub) DO UPDATE SET row_count = dead_letter_usage.row_count + excluded.row_count, byte_count = dead_letter_usage.byte_count + excluded.byte_count
         RETURNING row_count, byte_count`,
        [hub, a.rows, a.bytes],
      ))!));
    }
    for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
      const chunk = rows.slice(i, i + INSERT_CHUNK);
      await tx.run(
        `INSERT INTO dead_letters (received_at, region, hub, client_id, topic, reason, detail, size, truncated, payload)
         VALUES ${chunk.map(() => '(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}`,
        chunk.flatMap((r) => r.params),
      );
    }

    // Evicted rows, to be taken off the figures at the end.
    const evictedOf = new Map<string, Usage>();
    let evicted = 0;
    const evict = async (victims: { id: number; hub: string | null; bytes: number }[]) => {
      await tx.run(`DELETE FROM dead_letters WHERE id IN (${victims.map(() => '?').join(', ')})`, victims.map((v) => v.id));
      for (const v of victims) {
        const hub = v.hub ?? NO_HUB;
        const e = evictedOf.get(hub) ?? { rows: 0, bytes: 0 };
        e.rows++;
        e.bytes += Number(v.bytes);
        evictedOf.set(hub, e);
        const u = perHub.get(hub);
        if (u) {
          u.rows--;
          u.bytes -= Number(v.bytes);
        }
        total.rows--;
        total.bytes -= Number(v.bytes);
        evicted++;
      }
    };
    // A hub over its quota loses its own oldest rows, never anyone else's.
    for (const [hub, u] of perHub) {
      while (overQuota(u)) {
        const oldest = await tx.query<{ id: number; hub: string | null; bytes: number }>(
          `SELECT id, hub, ${rowBytes} AS bytes FROM dead_letters WHERE ${hub === NO_HUB ? 'hub IS NULL' : 'hub = ?'} ORDER BY id LIMIT ${EVICT_CHUNK}`,
          hub === NO_HUB ? [] : [hub],
        );
        if (oldest.length === 0) break;
        const victims: typeof oldest = [];
        const left = { ...u };
        for (const o of oldest) {
          if (!overQuota(left)) break;
          victims.push(o);
          left.rows--;
          left.bytes -= Number(o.bytes);
        }
        await evict(victims);
      }
    }
    // Then the bounds of all: the oldest rows of anyone (only many hubs together reach them).
    while (overall(total)) {
      const oldest = await tx.query<{ id: number; hub: string | null; bytes: number }>(`SELECT id, hub, ${rowBytes} AS bytes FROM dead_letters ORDER BY id LIMIT ${EVICT_CHUNK}`);
      if (oldest.length === 0) break;
      const victims: typeof oldest = [];
      const left = { ...total };
      for (const o of oldest) {
        if (!overall(left)) break;
        victims.push(o);
        left.rows--;
        left.bytes -= Number(o.bytes);
      }
      await evict(victims);
    }
    if (evicted > 0) {
      let rowsOut = 0;
      let bytesOut = 0;
      for (const hub of [...evictedOf.keys()].sort()) {
        const e = evictedOf.get(hub)!;
        rowsOut += e.rows;
        bytesOut += e.bytes;
        await tx.run('UPDATE dead_letter_usage SET row_count = row_count - ?, byte_count = byte_count - ? WHERE hub = ?', [e.rows, e.bytes, hub]);
      }
      await tx.run('DELETE FROM dead_letter_usage WHERE row_count <= 0');
      await tx.run('UPDATE dead_letter_totals SET row_count = row_count - ?, byte_count = byte_count - ? WHERE id = 1', [rowsOut, bytesOut]);
    }
    return evicted;
  };

  return {
    async addMany(items, tx) {
      if (items.length === 0) return 0;
      return tx ? addAll(tx, items) : sql.transaction((t) => addAll(t, items));
    },
    async list(q) {
      const where: string[] = [];
      const args: (string | number)[] = [];
      if (q.hub) { where.push('hub = ?'); args.push(q.hub); }
      if (q.regions) {
        if (q.regions.length === 0) return [];
        where.push(`region IN (${q.regions.map(() => '?').join(', ')})`);
        args.push(...q.regions);
      }
      if (q.reason) { where.push('reason = ?'); args.push(q.reason); }
      if (q.beforeId) { where.push('id < ?'); args.push(q.beforeId); }
      const text = `SELECT * FROM dead_letters ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`;
      return (await sql.query<Row>(text, [...args, q.limit])).map(toDeadLetter);
    },
    async count(q) {
      if (!q?.regions) return Number((await sql.one<{ n: number }>('SELECT count(*) AS n FROM dead_letters'))!.n);
      if (q.regions.length === 0) return 0;
      return Number((await sql.one<{ n: number }>(`SELECT count(*) AS n FROM dead_letters WHERE region IN (${q.regions.map(() => '?').join(', ')})`, [...q.regions]))!.n);
    },
    async usage(hub) {
      const r = await sql.one<{ row_count: number; byte_count: number }>('SELECT row_count, byte_count FROM dead_letter_usage WHERE hub = ?', [hub ?? NO_HUB]);
      return r ? toUsage(r) : { rows: 0, bytes: 0 };
    },
    async totalUsage() {
      return toUsage((await sql.one<{ row_count: number; byte_count: number }>('SELECT row_count, byte_count FROM dead_letter_totals WHERE id = 1'))!);
    },
  };
}

const toUsage = (r: { row_count: number; byte_count: number }): Usage => ({ rows: Number(r.row_count), bytes: Number(r.byte_count) });

function toDeadLetter(r: Row): DeadLetter {
  let text: string | null = null;
  try {
    text = decoder.decode(r.payload);
  } catch {
    text = null;
  }
  return {
    id: Number(r.id), receivedAt: new Date(r.received_at).toISOString(), region: r.region, hub: r.hub, clientId: r.client_id,
    topic: r.topic, reason: r.reason as RejectionReason, detail: r.detail, size: Number(r.size), truncated: Number(r.truncated) === 1,
    payloadText: text, payloadBase64: text === null ? r.payload.toString('base64') : null,
  };
}
