import fs from 'node:fs';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { openPostgresDatabase, SchemaTooNewError } from './database.ts';
import { LEGACY_SQLITE_MIGRATIONS } from './operational-db.ts';
import { migrateAll, SCHEMA } from './schema.ts';
import type { Sql, SqlValue } from './sql.ts';

/**
 * Moves an embedded installation's operational state (`cloud.db`) into PostgreSQL (issue 14, item 4):
 * every table of the schema registry, column by column (both databases use the same table and column
 * names), in one transaction on the target — it holds everything or nothing. The source is read in one
 * read transaction (a consistent snapshot even while a cloud still has it open; stop the cloud first,
 * or what it writes afterwards is not copied) and is never written.
 *
 * The target is migrated to this software's schema first and must hold no operational state: a copy
 * into a database a cloud has already used is refused, unless `force`, which replaces its contents
 * (audit logs included). Identity columns (ids from SQLite's AUTOINCREMENT) keep their values
 * (`OVERRIDING SYSTEM VALUE`) and their sequences are moved past the highest id SQLite ever handed
 * out, so new rows never reuse one. Row counts are compared per table before the commit.
 *
 * SQLite keeps U+0000 in TEXT, PostgreSQL refuses it (an old dead letter's detail could hold one): such
 * characters become U+FFFD, counted per table and column and reported, so one value never aborts the move.
 */
export interface CopyOptions {
  /** A DATA_DIR (holding `cloud.db`) or the `cloud.db` file. */
  from: string;
  /** `postgres://…` of the target. */
  to: string;
  /** Replace whatever the target holds. */
  force?: boolean;
  /** Most rows per INSERT (default 500; fewer for wide tables: at most 60,000 parameters a statement). */
  batchRows?: number;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

export interface TableCopied {
  table: string;
  rows: number;
  /** Rows the target held before (only with `force`, or rows the migration seeds). */
  replaced: number;
  /** Per column: text values whose U+0000 characters became U+FFFD (PostgreSQL refuses U+0000 in TEXT); empty when none. */
  nulReplaced: Record<string, number>;
}

export class CopyRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CopyRefusedError';
  }
}

const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;

/** The `cloud.db` a `--from` names. */
export function sourceFile(from: string): string {
  const file = fs.existsSync(from) && fs.statSync(from).isDirectory() ? path.join(from, 'cloud.db') : from;
  if (!fs.existsSync(file)) throw new CopyRefusedError(`no SQLite database at ${file} (--from takes the DATA_DIR or its cloud.db)`);
  return file;
}

export async function copySqliteToPostgres(o: CopyOptions): Promise<TableCopied[]> {
  const log = o.log ?? (() => {});
  const file = sourceFile(o.from);
  const source = new BetterSqlite3(file, { readonly: true, fileMustExist: true });
  try {
    source.pragma('busy_timeout = 5000');
    // One snapshot for every table (WAL: a running cloud's later writes are not seen).
    source.exec('BEGIN');
    checkSourceSchema(source, file);
    const target = await openPostgresDatabase(o.to, { max: 2, applicationName: 'chiiki-db-copy' });
    try {
      log(`from: sqlite ${file}`);
      log(`to:   postgres ${target.target}`);
      for (const m of await migrateAll(target)) {
        if (m.before !== m.after) log(`migrated the target: ${m.feature} ${m.before} → ${m.after}`);
      }
      const copied = await target.sql.transaction((tx) => copyTables(source, tx, o, log));
      log(`copied ${copied.reduce((n, t) => n + t.rows, 0)} rows in ${copied.length} tables; row counts verified and committed`);
      return copied;
    } finally {
      await target.close();
    }
  } finally {
    if (source.inTransaction) source.exec('COMMIT');
    source.close();
  }
}

/** The source must be at exactly this software's schema: column lists then match the target's. */
function checkSourceSchema(source: BetterSqlite3.Database, file: string): void {
  const legacy = source.pragma('user_version', { simple: true }) as number;
  const hasVersions = source.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").get() !== undefined;
  const versions = new Map(
    hasVersions ? source.prepare<[], { feature: string; version: number }>('SELECT feature, version FROM schema_migrations').all().map((r) => [r.feature, r.version]) : [],
  );
  const behind: string[] = [];
  if (legacy > LEGACY_SQLITE_MIGRATIONS.length) throw new SchemaTooNewError(file, 'legacy (user_version)', legacy, LEGACY_SQLITE_MIGRATIONS.length);
  if (legacy < LEGACY_SQLITE_MIGRATIONS.length) behind.push(`legacy tables at ${legacy} of ${LEGACY_SQLITE_MIGRATIONS.length}`);
  for (const f of SCHEMA) {
    const found = versions.get(f.feature) ?? 0;
    const known = f.steps.sqlite.length;
    if (found > known) throw new SchemaTooNewError(file, f.feature, found, known);
    if (found < known) behind.push(`${f.feature} at ${found} of ${known}`);
  }
  if (behind.length > 0) {
    throw new CopyRefusedError(
      `${file} is at an older schema than this software (${behind.join(', ')}); bring it up to date first — ` +
        `DATA_DIR=${path.dirname(file)} npm run db:migrate — then copy`,
    );
  }
}

async function copyTables(source: BetterSqlite3.Database, tx: Sql, o: CopyOptions, log: (line: string) => void): Promise<TableCopied[]> {
  const seeded = new Set(SCHEMA.flatMap((f) => f.seeded ?? []));
  const tables = SCHEMA.flatMap((f) => f.tables);

  // What the target holds already.
  const before = new Map<string, number>();
  for (const t of tables) before.set(t, await countRows(tx, t));
  const occupied = tables.filter((t) => !seeded.has(t) && before.get(t)! > 0);
  if (occupied.length > 0 && !o.force) {
    throw new CopyRefusedError(
      `the target already holds operational state (${occupied.map((t) => `${t}: ${before.get(t)} rows`).join(', ')}); ` +
        'copy into an empty database, or pass --force to replace what it holds',
    );
  }
  if (occupied.length > 0) {
    log(`--force: replacing ${occupied.map((t) => `${t} (${before.get(t)} rows)`).join(', ')}`);
    // All of them in one TRUNCATE (a table may only be emptied together with those whose foreign keys
    // point at it). Append-only audit tables refuse TRUNCATE through a trigger: off for this
    // transaction only — the copy replaces the log as a whole.
    for (const t of tables) await tx.exec(`ALTER TABLE ${quote(t)} DISABLE TRIGGER USER`);
    await tx.exec(`TRUNCATE ${tables.map(quote).join(', ')} RESTART IDENTITY`);
    for (const t of tables) await tx.exec(`ALTER TABLE ${quote(t)} ENABLE TRIGGER USER`);
  } else {
    // Rows the migration seeded give way to the source's.
    for (const t of tables.filter((t) => seeded.has(t) && before.get(t)! > 0)) await tx.run(`DELETE FROM ${quote(t)}`);
  }

  const result: TableCopied[] = [];
  for (const table of tables) {
    const { rows, nulReplaced } = await copyTable(source, tx, table, o.batchRows ?? 500).catch((err: Error) => {
      throw new Error(`copying ${table}: ${err.message}`, { cause: err });
    });
    const replacedNul = Object.entries(nulReplaced).map(([column, n]) => `${column}: ${n}`).join(', ');
    log(`  ${table.padEnd(20)} ${String(rows).padStart(9)} rows${replacedNul ? `; U+0000 replaced by U+FFFD in ${replacedNul} values` : ''}`);
    result.push({ table, rows, replaced: before.get(table)!, nulReplaced });
  }

  // Verified inside the transaction: a mismatch rolls everything back.
  const mismatched: string[] = [];
  for (const { table, rows } of result) {
    const inSource = (source.prepare(`SELECT count(*) AS n FROM ${quote(table)}`).get() as { n: number }).n;
    const inTarget = await countRows(tx, table);
    if (inSource !== rows || inTarget !== rows) mismatched.push(`${table}: ${inSource} in the source, ${inTarget} in the target`);
  }
  if (mismatched.length > 0) throw new Error(`row counts differ after the copy (rolled back): ${mismatched.join('; ')}`);
  return result;
}

async function countRows(tx: Sql, table: string): Promise<number> {
  return (await tx.one<{ n: number }>(`SELECT count(*) AS n FROM ${quote(table)}`))!.n;
}

/** Copies one table in batches; its row count and, per column, the values whose U+0000 was replaced. */
async function copyTable(source: BetterSqlite3.Database, tx: Sql, table: string, batchRows: number): Promise<{ rows: number; nulReplaced: Record<string, number> }> {
  const targetColumns = await tx.query<{ name: string; is_identity: string }>(
    `SELECT column_name AS name, is_identity FROM information_schema.columns
     WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position`,
    [table],
  );
  if (targetColumns.length === 0) throw new Error(`the target has no table ${table}`);
  const sourceColumns = source.prepare<[string], { name: string }>('SELECT name FROM pragma_table_info(?)').all(table).map((c) => c.name);
  if (sourceColumns.length === 0) throw new Error(`the source has no table ${table}`);
  const names = targetColumns.map((c) => c.name);
  const onlyTarget = names.filter((n) => !sourceColumns.includes(n));
  const onlySource = sourceColumns.filter((n) => !names.includes(n));
  if (onlyTarget.length > 0 || onlySource.length > 0) {
    throw new Error(`columns differ between the databases (only in SQLite: ${onlySource.join(', ') || 'none'}; only in PostgreSQL: ${onlyTarget.join(', ') || 'none'})`);
  }
  const identity = targetColumns.filter((c) => c.is_identity === 'YES').map((c) => c.name);
  const columnList = names.map(quote).join(', ');
  const perStatement = Math.max(1, Math.min(batchRows, Math.floor(60_000 / names.length)));
  const rowPlaceholder = `(${names.map(() => '?').join(', ')})`;
  const insert = (n: number) =>
    `INSERT INTO ${quote(table)} (${columnList})${identity.length > 0 ? ' OVERRIDING SYSTEM VALUE' : ''} VALUES ${Array(n).fill(rowPlaceholder).join(', ')}`;

  let copied = 0;
  let batch: SqlValue[] = [];
  let inBatch = 0;
  const flush = async () => {
    if (inBatch === 0) return;
    await tx.run(insert(inBatch), batch);
    copied += inBatch;
    batch = [];
    inBatch = 0;
  };
  const nulReplaced: Record<string, number> = {};
  // Raw rows, values in `names` order.
  for (const row of source.prepare(`SELECT ${columnList} FROM ${quote(table)}`).raw(true).iterate() as IterableIterator<SqlValue[]>) {
    for (let i = 0; i < row.length; i++) {
      const v = row[i];
      if (typeof v === 'string' && v.includes('\u0000')) {
        row[i] = v.replaceAll('\u0000', '\uFFFD');
        nulReplaced[names[i]!] = (nulReplaced[names[i]!] ?? 0) + 1;
      }
    }
    batch.push(...row);
    if (++inBatch === perStatement) await flush();
  }
  await flush();

  // Identity sequences past every id SQLite handed out (AUTOINCREMENT's high-water mark, kept in sqlite_sequence, can exceed the highest id left).
  for (const column of identity) {
    const high = (await tx.one<{ n: number | null }>(`SELECT max(${quote(column)}) AS n FROM ${quote(table)}`))?.n ?? 0;
    const hasSequence = source.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'").get() !== undefined;
    const seq = hasSequence ? ((source.prepare<[string], { seq: number }>('SELECT seq FROM sqlite_sequence WHERE name = ?').get(table))?.seq ?? 0) : 0;
    const next = Math.max(high, seq);
    if (next > 0) await tx.query(`SELECT setval(pg_get_serial_sequence(?, ?), ?)`, [quote(table), column, next]);
  }
  return { rows: copied, nulReplaced };
}
