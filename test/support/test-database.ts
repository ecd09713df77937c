import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { inject } from 'vitest';
import { openPostgresDatabase, openSqliteDatabase, type Database } from '../../cloud/db/database.ts';

/** The databases every store's contract suite runs on (issue 14). */
export const SQL_DATABASES = ['sqlite', 'postgres'] as const;
export type SqlDatabaseKind = (typeof SQL_DATABASES)[number];

let n = 0;
/** A new, empty database in the run's shared PostgreSQL cluster (see postgres-global-setup.ts); its URL. */
export async function freshPostgresUrl(): Promise<string> {
  const admin = inject('postgresUrl');
  const name = `t_${process.pid}_${Date.now().toString(36)}_${n++}`;
  const client = new pg.Client({ connectionString: admin });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE "${name}"`);
  } finally {
    await client.end();
  }
  return admin.replace(/\/[^/]*$/, `/${name}`);
}

export interface TestDatabase {
  readonly db: Database;
  /** SQLite: the data dir holding `cloud.db`; PostgreSQL: the URL. */
  readonly where: string;
  /** Opens the same database again (a restart). */
  reopen(): Promise<Database>;
  /** Closes every handle it opened and deletes it. */
  cleanup(): Promise<void>;
}

/** An empty operational database of the kind, ready for stores. */
export async function openTestDatabase(kind: SqlDatabaseKind): Promise<TestDatabase> {
  const opened: Database[] = [];
  if (kind === 'sqlite') {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chiiki-sql-'));
    const open = () => {
      const db = openSqliteDatabase(path.join(dir, 'cloud.db'), 'normal');
      opened.push(db);
      return db;
    };
    return {
      db: open(), where: dir, reopen: async () => open(),
      cleanup: async () => {
        for (const d of opened) await d.close().catch(() => {});
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  const url = await freshPostgresUrl();
  const open = async () => {
    const db = await openPostgresDatabase(url, { max: 8 });
    opened.push(db);
    return db;
  };
  return {
    db: await open(), where: url, reopen: open,
    cleanup: async () => {
      for (const d of opened) await d.close().catch(() => {});
    },
  };
}
