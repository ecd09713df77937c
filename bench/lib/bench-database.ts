import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import pg from 'pg';
import { openAccountStore } from '../../cloud/accounts/account-store.ts';
import { openPostgresDatabase, openSqliteDatabase, type Database } from '../../cloud/db/database.ts';
import { migrateAll } from '../../cloud/db/schema.ts';
import { startPostgresCluster, type PostgresCluster } from '../../test/support/postgres.ts';
import { cpuSeconds } from './procs.ts';

/**
 * The cloud's operational database in the benchmarks (issue 14): the embedded SQLite (`DATA_DIR/cloud.db`,
 * the default) or PostgreSQL (`DATABASE_URL`). The sections that touch the operational database on their
 * hot path (ingest, alarm, fan-out) measure both in the same invocation.
 *
 * PostgreSQL: one cluster per `npm run bench` invocation (PostgreSQL 15, durable like a deployment:
 * fsync and synchronous_commit on, as SQLITE_SYNC=full fsyncs every SQLite group commit), on loopback
 * TCP; each cloud under test gets its own database in it. Stopped by `stopBenchPostgres()` (run.ts).
 */
export type BenchDatabaseKind = 'sqlite' | 'postgres';
export const BENCH_DATABASES: readonly BenchDatabaseKind[] = ['sqlite', 'postgres'];
export const DATABASE_LABEL: Record<BenchDatabaseKind, string> = { sqlite: 'SQLite', postgres: 'PostgreSQL' };

let cluster: Promise<PostgresCluster> | null = null;

/** The invocation's PostgreSQL cluster (started on first use). */
export function benchPostgres(): Promise<PostgresCluster> {
  if (!cluster) {
    cluster = startPostgresCluster({ durable: true });
    cluster.then((c) => process.once('exit', () => void c.stop({ crash: true })), () => undefined);
  }
  return cluster;
}

export async function stopBenchPostgres(): Promise<void> {
  const c = cluster;
  cluster = null;
  if (c) await (await c).destroy();
}

/** CPU seconds of the PostgreSQL server so far (postmaster and its live backends). */
export async function postgresCpuSeconds(): Promise<number> {
  if (!cluster) return 0;
  const { port } = await cluster;
  try {
    const main = execFileSync('pgrep', ['-f', '--', `-p ${port} -h 127.0.0.1`], { encoding: 'utf8' }).trim().split('\n').map(Number);
    const children = main.flatMap((p) => {
      try {
        return execFileSync('pgrep', ['-P', String(p)], { encoding: 'utf8' }).trim().split('\n').map(Number);
      } catch {
        return [];
      }
    });
    return [...main, ...children].reduce((n, p) => n + cpuSeconds(p), 0);
  } catch {
    return 0;
  }
}

/**
 * Transactions committed in a PostgreSQL database so far (pg_stat_database.xact_commit: every commit,
 * including each statement run outside a transaction), rows inserted, and the time its sessions spent
 * executing statements (active) and waiting for the client inside a transaction (idle in transaction:
 * round trips and the client's own delays) — what needs no pg_stat_statements. A backend reports its counts at most once a second while busy, and within
 * 10 s once idle: read the end figure after the cloud has been idle that long.
 */
export async function postgresCommits(url: string): Promise<{ commits: number; inserted: number; activeMs: number; idleInTransactionMs: number }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const r = await client.query<{ c: string; i: string; a: number; t: number }>(
      'SELECT xact_commit AS c, tup_inserted AS i, active_time AS a, idle_in_transaction_time AS t FROM pg_stat_database WHERE datname = current_database()',
    );
    return { commits: Number(r.rows[0]!.c), inserted: Number(r.rows[0]!.i), activeMs: Number(r.rows[0]!.a), idleInTransactionMs: Number(r.rows[0]!.t) };
  } finally {
    await client.end();
  }
}

export interface HubSecret {
  hubId: string;
  username: string;
  /** The stored secret, as cloud/hubs/hub-credentials.ts keeps it (`hmac-sha256$key$digest`, or a legacy `scrypt$N$r$p$salt$hash`). */
  secret: string;
}

export interface PreparedDatabase {
  kind: BenchDatabaseKind;
  /** Environment for the cloud process: DATABASE_URL for PostgreSQL, nothing for SQLite (DATA_DIR's cloud.db). */
  env: Record<string, string>;
  /** Bearer token of the seeded admin account. */
  adminToken: string;
  /** cloud.db or the database URL. */
  where: string;
}

/**
 * Creates the operational database a cloud of `kind` will use (SQLite: `<dataDir>/cloud.db`;
 * PostgreSQL: a new database in the invocation's cluster), brings every feature's schema up to date and
 * seeds what `npm run hub-credentials` and `npm run accounts` would: the hubs' credentials (batched:
 * 1,000 rows a statement, all in one transaction — 13,800 hubs in well under a second) and an admin
 * account with an API token.
 */
export async function prepareCloudDatabase(kind: BenchDatabaseKind, dataDir: string, region: string, hubs: readonly HubSecret[], admin = 'bench-admin'): Promise<PreparedDatabase> {
  let db: Database;
  let env: Record<string, string> = {};
  let where: string;
  if (kind === 'sqlite') {
    where = path.join(dataDir, 'cloud.db');
    db = openSqliteDatabase(where, 'normal');
  } else {
    const url = await (await benchPostgres()).createDatabase(`bench_${Date.now().toString(36)}_${crypto.randomBytes(3).toString('hex')}`);
    where = url;
    env = { DATABASE_URL: url };
    db = await openPostgresDatabase(url, { max: 2 });
  }
  try {
    await migrateAll(db);
    const now = Date.now();
    const perStatement = 1_000;
    await db.sql.transaction(async (tx) => {
      for (let i = 0; i < hubs.length; i += perStatement) {
        const chunk = hubs.slice(i, i + perStatement);
        await tx.run(
          `INSERT INTO hub_credentials (hub_id, region, username, secret, updated_at) VALUES ${chunk.map(() => '(?, ?, ?, ?, ?)').join(', ')}
           ON CONFLICT (hub_id) DO UPDATE SET region = excluded.region, username = excluded.username, secret = excluded.secret, updated_at = excluded.updated_at`,
          chunk.flatMap((h) => [h.hubId, region, h.username, h.secret, now]),
        );
      }
    });
    const accounts = await openAccountStore(db);
    if (!(await accounts.get(admin))) await accounts.create({ username: admin, role: 'admin', displayName: admin, password: crypto.randomBytes(18).toString('base64url') });
    const adminToken = (await accounts.createApiToken(admin, 'benchmark')).token;
    return { kind, env, adminToken, where };
  } finally {
    await db.close();
  }
}

/** "PostgreSQL at 93 % of SQLite" and whether that is within `tolerance` (0.1: 10 %); `higherIsBetter` for rates, not for times. */
export function versusSqlite(postgres: number, sqlite: number, higherIsBetter: boolean, tolerance = 0.1): { comparison: string; met: boolean; target: string } {
  const pct = (100 * postgres) / sqlite;
  const fmtPct = pct >= 10 ? pct.toFixed(0) : pct.toFixed(1);
  return higherIsBetter
    ? { comparison: `PostgreSQL at ${fmtPct} % of SQLite`, met: postgres >= sqlite * (1 - tolerance), target: `≥ ${100 - 100 * tolerance} % of SQLite` }
    : { comparison: `PostgreSQL at ${fmtPct} % of SQLite's time`, met: postgres <= sqlite * (1 + tolerance), target: `≤ ${100 + 100 * tolerance} % of SQLite's time` };
}
