/**
 * The one interface every operational store is written against (issue 14): asynchronous SQL with
 * `?` placeholders, served by SQLite (better-sqlite3, embedded default) or PostgreSQL (`pg`).
 *
 * A store is written once in the SQL both databases share (`INSERT … ON CONFLICT … DO UPDATE`,
 * `RETURNING`, partial indexes, conditional updates) and branches on `dialect` only where they
 * differ (DDL in migrations, `FOR UPDATE`). Values: numbers (BIGINT comes back as a JS number),
 * strings, null and Buffers (BLOB/BYTEA); booleans are stored as 0/1 integers on both.
 */
export type Dialect = 'sqlite' | 'postgres';

export type SqlValue = string | number | bigint | null | Buffer | boolean | SqlArray;
/** PostgreSQL only: an array parameter (e.g. for `unnest(?::text[])`, one short statement for many rows); SQLite refuses it. */
export type SqlArray = readonly (string | number | null)[];

export interface Sql {
  readonly dialect: Dialect;
  /** The rows of a query (or of a statement with `RETURNING`). Placeholders: `?`. */
  query<R = Record<string, unknown>>(text: string, params?: readonly SqlValue[]): Promise<R[]>;
  /** The first row, or undefined. */
  one<R = Record<string, unknown>>(text: string, params?: readonly SqlValue[]): Promise<R | undefined>;
  /** Runs a statement; resolves to the number of rows it changed. */
  run(text: string, params?: readonly SqlValue[]): Promise<number>;
  /** Runs a script of several statements without parameters (migrations). */
  exec(script: string): Promise<void>;
  /**
   * Runs `fn` in one transaction: committed when it resolves, rolled back when it throws. Everything
   * `fn` does must go through the `tx` it is given (on PostgreSQL that is one pooled connection; on
   * SQLite other callers wait until the transaction ends). A transaction inside a transaction is
   * part of the outer one.
   */
  transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T>;
  /** ` FOR UPDATE` on PostgreSQL (row lock in a transaction), nothing on SQLite (one writer at a time). */
  readonly forUpdate: string;
}

/** Thrown for a unique-key violation on either database. */
export function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string } | null;
  return e?.code === '23505' || e?.code === 'SQLITE_CONSTRAINT_UNIQUE' || e?.code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

/**
 * A value the database refuses (PostgreSQL SQLSTATE class 22, "data exception": U+0000 in TEXT 22021,
 * a number out of range 22003, a string too long 22001, …; SQLite: SQLITE_TOOBIG, SQLITE_MISMATCH).
 * Permanent: the same values fail the same way however often they are sent again. `code` is the
 * database's own (SQLSTATE or SQLite code).
 */
export class SqlDataError extends Error {
  override readonly name = 'SqlDataError';
  constructor(readonly code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Whether a database error is about the values sent (permanent), not the database's state (worth retrying). */
export function isDataError(err: unknown): boolean {
  if (err instanceof SqlDataError) return true;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (/^22[0-9A-Z]{3}$/.test(code) || code === 'SQLITE_TOOBIG' || code === 'SQLITE_MISMATCH');
}
