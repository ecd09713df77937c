import path from 'node:path';
import Database from 'better-sqlite3';

export interface StoreStall {
  /** Takes the write lock again (after `release`). */
  hold(): void;
  /** Gives the write lock back: the cloud's writes go through. Idempotent. */
  release(): void;
  /** Releases if held and closes the connection (for cleanups). */
  close(): void;
}

/**
 * Stalls a cloud's SQLite telemetry store the way a slow disk would: its write lock held from another
 * connection, so messages reach the cloud but are not written, and so not acknowledged.
 */
export function stallSqliteStore(cloudDataDir: string): StoreStall {
  const db = new Database(path.join(cloudDataDir, 'telemetry.db'));
  db.pragma('busy_timeout = 5000');
  let held = false;
  const stall: StoreStall = {
    hold() {
      if (held) return;
      db.exec('BEGIN IMMEDIATE');
      held = true;
    },
    release() {
      if (!held) return;
      db.exec('ROLLBACK');
      held = false;
    },
    close() {
      stall.release();
      db.close();
    },
  };
  stall.hold();
  return stall;
}
