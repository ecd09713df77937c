import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';

export type OperationalDb = Database.Database;

/**
 * The cloud's operational database (SQLite, WAL): hub credentials, dead letters, the dedupe memory,
 * commands, and later orders and audit logs. Migrations are ordered SQL steps tracked by
 * `PRAGMA user_version`; append, never edit.
 */
export const LEGACY_SQLITE_MIGRATIONS: string[] = [
  `CREATE TABLE hub_credentials (
     hub_id     TEXT PRIMARY KEY,
     region     TEXT NOT NULL,
     username   TEXT NOT NULL UNIQUE,
     secret     TEXT NOT NULL,            -- scrypt$N$r$p$salt$hash (base64url)
     updated_at INTEGER NOT NULL
   );
   CREATE TABLE dead_letters (
     id          INTEGER PRIMARY KEY AUTOINCREMENT,
     received_at INTEGER NOT NULL,
     region      TEXT,
     hub         TEXT,
     client_id   TEXT,
     topic       TEXT NOT NULL,
     reason      TEXT NOT NULL,
     detail      TEXT NOT NULL,
     size        INTEGER NOT NULL,
     truncated   INTEGER NOT NULL,
     payload     BLOB NOT NULL
   );
   CREATE INDEX dead_letters_hub ON dead_letters (hub, id);
   CREATE INDEX dead_letters_reason ON dead_letters (reason, id);`,
  // Issue 3: messages with side effects (events, command and mode acknowledgements) already taken,
  // by (hub, message id), so a re-sent one is acknowledged but not applied twice.
  `CREATE TABLE seen_messages (
     hub     TEXT NOT NULL,
     msg_id  TEXT NOT NULL,
     seen_at INTEGER NOT NULL,          -- cloud receive time, epoch ms; pruned after DEDUPE_RETENTION_HOURS
     PRIMARY KEY (hub, msg_id)
   ) WITHOUT ROWID;
   CREATE INDEX seen_messages_seen_at ON seen_messages (seen_at);`,
  // Issue 3: commands from the cloud to hub devices and their results.
  `CREATE TABLE commands (
     id         TEXT PRIMARY KEY,
     hub        TEXT NOT NULL,
     region     TEXT NOT NULL,
     device     TEXT NOT NULL,
     kind       TEXT NOT NULL,
     command    TEXT NOT NULL,
     args       TEXT NOT NULL,          -- JSON object
     issued_at  INTEGER NOT NULL,
     expires_at INTEGER NOT NULL,
     state      TEXT NOT NULL CHECK (state IN ('pending', 'done', 'rejected', 'expired', 'failed', 'duplicate')),
     detail     TEXT,
     acked_at   INTEGER
   );
   CREATE INDEX commands_hub ON commands (hub, issued_at);
   CREATE INDEX commands_pending ON commands (hub, expires_at) WHERE state = 'pending';`,
];

export function openOperationalDb(dataDir: string, synchronous: 'full' | 'normal'): OperationalDb {
  fs.mkdirSync(dataDir, { recursive: true });
  const db = new Database(path.join(dataDir, 'cloud.db'));
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = ON');
  migrateLegacy(db);
  return db;
}

export function migrateLegacy(db: OperationalDb): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > LEGACY_SQLITE_MIGRATIONS.length) {
    throw new Error(`cloud.db schema version ${current} is newer than this software (${LEGACY_SQLITE_MIGRATIONS.length}); upgrade the software`);
  }
  for (let v = current; v < LEGACY_SQLITE_MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(LEGACY_SQLITE_MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}

/**
 * Migrations of one feature (orders, alarms, modes, …), kept in that feature's folder so features
 * can add tables without touching each other: ordered SQL steps, tracked per feature name in
 * `schema_migrations`. Append, never edit. Call it when the feature's store is created.
 */
export function migrateFeature(db: OperationalDb, feature: string, steps: readonly string[]): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (feature TEXT PRIMARY KEY, version INTEGER NOT NULL) WITHOUT ROWID');
  const row = db.prepare<[string], { version: number }>('SELECT version FROM schema_migrations WHERE feature = ?').get(feature);
  const current = row?.version ?? 0;
  if (current > steps.length) throw new Error(`cloud.db: ${feature} schema version ${current} is newer than this software (${steps.length}); upgrade the software`);
  for (let v = current; v < steps.length; v++) {
    db.transaction(() => {
      db.exec(steps[v]!);
      db.prepare('INSERT INTO schema_migrations (feature, version) VALUES (?, ?) ON CONFLICT (feature) DO UPDATE SET version = excluded.version').run(feature, v + 1);
    })();
  }
}
