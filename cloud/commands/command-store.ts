import type { Command, DeviceKind } from '../../contract/index.ts';
import type { Database, FeatureMigrations } from '../db/database.ts';
import type { Sql } from '../db/sql.ts';

/**
 * Where commands to hub devices and their results are kept. One port, one SQL implementation for
 * SQLite and PostgreSQL (issue 14) and one in memory for unit tests, passing one shared test suite.
 *
 * A pending command whose expiry has passed is *shown* as `expired` (see `effectiveState`); the
 * stored state stays `pending`, so a hub's late acknowledgement of a command it did execute in time
 * still lands.
 */
export const COMMAND_STATES = ['pending', 'done', 'rejected', 'expired', 'failed', 'duplicate'] as const;
export type CommandState = (typeof COMMAND_STATES)[number];
export type CommandName = Command['command'];
export type CommandArgs = Command['args'];

export interface CommandRecord {
  id: string;
  hub: string;
  region: string;
  device: string;
  kind: DeviceKind;
  command: CommandName;
  args: CommandArgs;
  /** Epoch ms (cloud clock). */
  issuedAt: number;
  expiresAt: number;
  state: CommandState;
  detail: string | null;
  /** Hub timestamp of the acknowledgement that set the state, epoch ms. */
  ackedAt: number | null;
}

export interface CommandQuery {
  hub: string;
  /** Filter by state as shown at `now` (so `expired` includes pending commands past their expiry). */
  state?: CommandState;
  now: number;
  limit: number;
}

export interface CommandResult {
  state: CommandState;
  detail: string | null;
  ackedAt: number;
}

/** One result a command had, in the order they were recorded. */
export interface CommandResultEntry extends CommandResult {
  /** The state it replaced. */
  from: CommandState;
}

export interface CommandStore {
  insert(c: CommandRecord): Promise<void>;
  /** `tx`: read in the caller's transaction (e.g. ingest's group commit). */
  get(id: string, tx?: Sql): Promise<CommandRecord | null>;
  /** Newest first. */
  list(q: CommandQuery): Promise<CommandRecord[]>;
  /**
   * Pending commands of these hubs that have not expired at `now`: each hub's together, oldest first
   * (the order of the hubs is the database's), at most `limitPerHub` per hub. One query for many
   * hubs: a reconnect storm asks for thousands.
   */
  pendingFor(hubs: readonly string[], now: number, limitPerHub: number): Promise<CommandRecord[]>;
  /**
   * Sets the result only while the stored state is still `expected` (a conditional update, so of
   * two writers racing — two cloud processes on PostgreSQL — exactly one wins); true when set.
   */
  setResult(id: string, expected: CommandState, result: CommandResult, tx?: Sql): Promise<boolean>;
  /** Every result set, oldest first (append-only: a superseded result is kept). */
  history(id: string): Promise<CommandResultEntry[]>;
}

/**
 * Migrations of the feature `command-results`; append, never edit. On SQLite the `commands` table
 * comes from the legacy steps; on PostgreSQL the first step creates it with the history.
 */
export const COMMAND_MIGRATIONS: FeatureMigrations = {
  sqlite: [
    // Issue 12 (5): a provisional failure may be superseded by the device's late answer; keep both.
    `CREATE TABLE command_results (
       seq        INTEGER PRIMARY KEY AUTOINCREMENT,
       command_id TEXT NOT NULL,
       from_state TEXT NOT NULL,
       state      TEXT NOT NULL,
       detail     TEXT,
       acked_at   INTEGER NOT NULL
     );
     CREATE INDEX command_results_command ON command_results (command_id, seq);`,
  ],
  postgres: [
    `CREATE TABLE commands (
       id         TEXT PRIMARY KEY,
       hub        TEXT NOT NULL,
       region     TEXT NOT NULL,
       device     TEXT NOT NULL,
       kind       TEXT NOT NULL,
       command    TEXT NOT NULL,
       args       TEXT NOT NULL,
       issued_at  BIGINT NOT NULL,
       expires_at BIGINT NOT NULL,
       state      TEXT NOT NULL CHECK (state IN ('pending', 'done', 'rejected', 'expired', 'failed', 'duplicate')),
       detail     TEXT,
       acked_at   BIGINT
     );
     CREATE INDEX commands_hub ON commands (hub, issued_at);
     CREATE INDEX commands_pending ON commands (hub, expires_at) WHERE state = 'pending';
     CREATE TABLE command_results (
       seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
       command_id TEXT NOT NULL,
       from_state TEXT NOT NULL,
       state      TEXT NOT NULL,
       detail     TEXT,
       acked_at   BIGINT NOT NULL
     );
     CREATE INDEX command_results_command ON command_results (command_id, seq);`,
  ],
};

/** The state a command shows at `now`. */
export function effectiveState(c: Pick<CommandRecord, 'state' | 'expiresAt'>, now: number): CommandState {
  return c.state === 'pending' && now >= c.expiresAt ? 'expired' : c.state;
}

interface Row {
  id: string; hub: string; region: string; device: string; kind: string; command: string; args: string;
  issued_at: number; expires_at: number; state: string; detail: string | null; acked_at: number | null;
}

const fromRow = (r: Row): CommandRecord => ({
  id: r.id, hub: r.hub, region: r.region, device: r.device, kind: r.kind as DeviceKind, command: r.command as CommandName,
  args: JSON.parse(r.args) as CommandArgs, issuedAt: Number(r.issued_at), expiresAt: Number(r.expires_at), state: r.state as CommandState,
  detail: r.detail, ackedAt: r.acked_at === null ? null : Number(r.acked_at),
});

export async function openCommandStore(db: Database): Promise<CommandStore> {
  await db.migrate('command-results', COMMAND_MIGRATIONS);
  const sql = db.sql;
  const setResultIn = async (tx: Sql, id: string, expected: CommandState, r: CommandResult): Promise<boolean> => {
    if ((await tx.run('UPDATE commands SET state = ?, detail = ?, acked_at = ? WHERE id = ? AND state = ?', [r.state, r.detail, r.ackedAt, id, expected])) !== 1) return false;
    await tx.run('INSERT INTO command_results (command_id, from_state, state, detail, acked_at) VALUES (?, ?, ?, ?, ?)', [id, expected, r.state, r.detail, r.ackedAt]);
    return true;
  };
  return {
    async insert(c) {
      await sql.run(
        `INSERT INTO commands (id, hub, region, device, kind, command, args, issued_at, expires_at, state, detail, acked_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        [c.id, c.hub, c.region, c.device, c.kind, c.command, JSON.stringify(c.args), c.issuedAt, c.expiresAt, c.state, c.detail, c.ackedAt],
      );
    },
    async get(id, tx) {
      const r = await (tx ?? sql).one<Row>('SELECT * FROM commands WHERE id = ?', [id]);
      return r ? fromRow(r) : null;
    },
    async list(q) {
      const where = ['hub = ?'];
      const args: (string | number)[] = [q.hub];
      if (q.state === 'expired') {
        where.push(`(state = 'expired' OR (state = 'pending' AND expires_at <= ?))`);
        args.push(q.now);
      } else if (q.state === 'pending') {
        where.push(`state = 'pending' AND expires_at > ?`);
        args.push(q.now);
      } else if (q.state) {
        where.push('state = ?');
        args.push(q.state);
      }
      const text = `SELECT * FROM commands WHERE ${where.join(' AND ')} ORDER BY issued_at DESC, id DESC LIMIT ?`;
      return (await sql.query<Row>(text, [...args, q.limit])).map(fromRow);
    },
    async pendingFor(hubs, now, limitPerHub) {
      if (hubs.length === 0) return [];
      // The hubs as one parameter (a JSON text on SQLite, an array on PostgreSQL): one statement text
      // for any number of hubs, and the partial index commands_pending serves each hub.
      const pg = sql.dialect === 'postgres';
      const inHubs = pg ? 'hub = ANY(?::text[])' : 'hub IN (SELECT value FROM json_each(?))';
      const rows = await sql.query<Row>(
        `SELECT * FROM (
           SELECT *, ROW_NUMBER() OVER (PARTITION BY hub ORDER BY issued_at, id) AS nth FROM commands
           WHERE ${inHubs} AND state = 'pending' AND expires_at > ?
         ) AS p WHERE nth <= ? ORDER BY hub, issued_at, id`,
        [pg ? [...hubs] : JSON.stringify(hubs), now, limitPerHub],
      );
      return rows.map(fromRow);
    },
    setResult(id, expected, r, tx) {
      // The update and its history entry together (in the caller's transaction when given); the
      // update's condition decides between racing writers.
      return (tx ?? sql).transaction((t) => setResultIn(t, id, expected, r));
    },
    async history(id) {
      const rows = await sql.query<{ from_state: string; state: string; detail: string | null; acked_at: number }>(
        'SELECT from_state, state, detail, acked_at FROM command_results WHERE command_id = ? ORDER BY seq', [id],
      );
      return rows.map((h) => ({ from: h.from_state as CommandState, state: h.state as CommandState, detail: h.detail, ackedAt: Number(h.acked_at) }));
    },
  };
}

/** In memory, for unit tests of code that uses commands; passes the same suite as the SQL store. */
export function createMemoryCommandStore(): CommandStore {
  const rows = new Map<string, CommandRecord>();
  const results = new Map<string, CommandResultEntry[]>();
  const copy = (c: CommandRecord): CommandRecord => ({ ...c, args: { ...c.args } });
  const newestFirst = (a: CommandRecord, b: CommandRecord) => b.issuedAt - a.issuedAt || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
  return {
    async insert(c) {
      if (rows.has(c.id)) throw new Error(`command ${c.id} exists`);
      rows.set(c.id, copy(c));
    },
    async get(id) {
      const c = rows.get(id);
      return c ? copy(c) : null;
    },
    async list(q) {
      return [...rows.values()]
        .filter((c) => c.hub === q.hub && (q.state === undefined || effectiveState(c, q.now) === q.state))
        .sort(newestFirst)
        .slice(0, q.limit)
        .map(copy);
    },
    async pendingFor(hubs, now, limitPerHub) {
      return [...new Set(hubs)].flatMap((hub) =>
        [...rows.values()]
          .filter((c) => c.hub === hub && effectiveState(c, now) === 'pending')
          .sort((a, b) => -newestFirst(a, b))
          .slice(0, limitPerHub)
          .map(copy));
    },
    async setResult(id, expected, r) {
      const c = rows.get(id);
      if (!c || c.state !== expected) return false;
      rows.set(id, { ...c, state: r.state, detail: r.detail, ackedAt: r.ackedAt });
      results.set(id, [...(results.get(id) ?? []), { from: expected, ...r }]);
      return true;
    },
    async history(id) {
      return (results.get(id) ?? []).map((h) => ({ ...h }));
    },
  };
}
