import type BetterSqlite3 from 'better-sqlite3';
import type { Sql, SqlValue } from './sql.ts';

/**
 * `Sql` on one better-sqlite3 connection. Statements run synchronously (SQLite is in-process);
 * a transaction holds the connection until it ends, and statements from outside it wait, so they
 * never become part of someone else's transaction across an `await`.
 */
export function sqliteSql(db: BetterSqlite3.Database): Sql {
  const statements = new Map<string, BetterSqlite3.Statement>();
  const prepare = (text: string) => {
    let s = statements.get(text);
    if (!s) {
      s = db.prepare(text);
      statements.set(text, s);
    }
    return s;
  };
  const bind = (params: readonly SqlValue[] | undefined) =>
    params ? params.map((p) => (p === true ? 1 : p === false ? 0 : p)) : [];

  const query = <R>(text: string, params?: readonly SqlValue[]): R[] => {
    const s = prepare(text);
    if (s.reader) return s.all(...bind(params)) as R[];
    s.run(...bind(params));
    return [];
  };
  const run = (text: string, params?: readonly SqlValue[]): number => {
    const s = prepare(text);
    if (s.reader) {
      s.all(...bind(params));
      return 0;
    }
    return s.run(...bind(params)).changes;
  };

  // The transaction lock: a chain of waiters; `held` while one is open.
  let held = false;
  let tail: Promise<void> = Promise.resolve();
  const acquire = async (): Promise<() => void> => {
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const before = tail;
    tail = before.then(() => mine);
    await before;
    held = true;
    return () => {
      held = false;
      release();
    };
  };
  const idle = async () => {
    while (held) await tail;
  };

  const inTx: Sql = {
    dialect: 'sqlite',
    forUpdate: '',
    query: async (text, params) => query(text, params),
    one: async (text, params) => query(text, params)[0] as never,
    run: async (text, params) => run(text, params),
    exec: async (script) => void db.exec(script),
    transaction: (fn) => fn(inTx),
  };

  return {
    dialect: 'sqlite',
    forUpdate: '',
    query: async (text, params) => {
      if (held) await idle();
      return query(text, params);
    },
    one: async (text, params) => {
      if (held) await idle();
      return query(text, params)[0] as never;
    },
    run: async (text, params) => {
      if (held) await idle();
      return run(text, params);
    },
    exec: async (script) => {
      if (held) await idle();
      db.exec(script);
    },
    transaction: async (fn) => {
      const release = await acquire();
      try {
        db.exec('BEGIN IMMEDIATE');
        try {
          const result = await fn(inTx);
          db.exec('COMMIT');
          return result;
        } catch (err) {
          if (db.inTransaction) db.exec('ROLLBACK');
          throw err;
        }
      } finally {
        release();
      }
    },
  };
}
