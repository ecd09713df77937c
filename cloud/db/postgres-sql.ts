import pg from 'pg';
import { SqlDataError, type Sql, type SqlValue } from './sql.ts';

/** `?` placeholders → `$1…$n`, outside quoted strings and identifiers; remembered per text. */
const translated = new Map<string, string>();
export function toPostgresPlaceholders(text: string): string {
  const hit = translated.get(text);
  if (hit !== undefined) return hit;
  let out = '';
  let n = 0;
  let quote: string | null = null;
  for (const ch of text) {
    if (quote) {
      if (ch === quote) quote = null;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
    } else if (ch === '?') {
      out += `$${++n}`;
      continue;
    }
    out += ch;
  }
  if (translated.size < 10_000) translated.set(text, out);
  return out;
}

/** BIGINT (epoch ms, ids) and COUNT(*) come back as numbers, as on SQLite; every value we keep is below 2^53. */
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === pg.types.builtins.INT8 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
};

export interface PostgresPoolOptions {
  url: string;
  /** Connections in the pool (default 10). */
  max?: number;
  /** Name in pg_stat_activity. */
  applicationName?: string;
}

export function postgresPool(o: PostgresPoolOptions): pg.Pool {
  const pool = new pg.Pool({
    connectionString: o.url, max: o.max ?? 10, types, application_name: o.applicationName ?? 'chiiki-cloud',
    connectionTimeoutMillis: 10_000, idleTimeoutMillis: 30_000,
    // node-postgres's pipeline mode (pg ≥ 8.23): a statement is written at once instead of after the
    // previous one's answer, so a transaction's BEGIN travels with its first statement (see `transaction`).
    // Nothing here uses what pipeline mode refuses (cursors, `rows`, COPY streams).
    pipeline: true,
  });
  // An idle connection the server dropped (restart, failover) must not crash the process; the pool replaces it.
  pool.on('error', () => {});
  return pool;
}

type Queryable = pg.Pool | pg.PoolClient;

/**
 * A data exception (SQLSTATE class 22: U+0000 in TEXT is 22021 "invalid byte sequence for encoding
 * UTF8: 0x00", a number out of range 22003, …) as a `SqlDataError`, so callers tell a value the
 * database will never take from a database that is down; other errors as they came.
 */
function classified(err: unknown): unknown {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code.startsWith('22') && !(err instanceof SqlDataError)) {
    return new SqlDataError(code, `the database refused a value: ${(err as Error).message} (SQLSTATE ${code})`, { cause: err });
  }
  return err;
}

async function run(q: Queryable, text: string, params?: readonly SqlValue[]): Promise<pg.QueryResult> {
  try {
    return await q.query(text, params as unknown[] | undefined);
  } catch (err) {
    throw classified(err);
  }
}

function bound(q: Queryable, inTransaction: boolean): Sql {
  const query = async <R>(text: string, params?: readonly SqlValue[]): Promise<R[]> =>
    (await run(q, toPostgresPlaceholders(text), params)).rows as R[];
  const self: Sql = {
    dialect: 'postgres',
    forUpdate: ' FOR UPDATE',
    query,
    one: async (text, params) => (await query(text, params))[0] as never,
    run: async (text, params) => (await run(q, toPostgresPlaceholders(text), params)).rowCount ?? 0,
    exec: async (script) => void (await run(q, script)),
    transaction: async (fn) => {
      if (inTransaction) return fn(self);
      const client = await (q as pg.Pool).connect();
      let broken = false;
      try {
        // Not awaited: pipelined, BEGIN reaches the server with the transaction's first statement, one
        // round trip (one turn of a busy event loop) fewer per transaction — ingest's group commit is
        // BEGIN + dedupe ids + acknowledgements + COMMIT (issue 14, fan-out). Statements are executed
        // in the order written, so every statement of `fn` runs inside the transaction. BEGIN itself
        // fails only with the connection (then so does every later statement): its error is thrown
        // before COMMIT is sent, and the transaction rolled back.
        const begun = run(client, 'BEGIN');
        begun.catch(() => {}); // seen below
        try {
          const result = await fn(bound(client, true));
          await begun;
          await client.query('COMMIT');
          return result;
        } catch (err) {
          await client.query('ROLLBACK').catch(() => (broken = true));
          throw err;
        }
      } finally {
        client.release(broken);
      }
    },
  };
  return self;
}

/** `Sql` on a connection pool: every statement outside a transaction takes any free connection. */
export function postgresSql(pool: pg.Pool): Sql {
  return bound(pool, false);
}
