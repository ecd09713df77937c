import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { Mode } from '../contract/index.ts';

/**
 * The agent's small durable state beside the outbox: commands it has seen (so a command id is
 * executed at most once, also across restarts), the hub's operating mode, and device messages it
 * refused (kept for inspection, bounded).
 */
export type CommandState = 'relayed' | 'done' | 'rejected' | 'expired' | 'failed';

export interface ModeState {
  mode: Mode;
  /** Version of the region mode this state is based on (0: never received one). */
  version: number;
  source: 'cloud' | 'local';
  reason: string;
  changedAt: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS commands (
  command_id TEXT PRIMARY KEY, device TEXT NOT NULL, command TEXT NOT NULL, received_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL, state TEXT NOT NULL, detail TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mode (id INTEGER PRIMARY KEY CHECK (id = 1), mode TEXT NOT NULL, version INTEGER NOT NULL,
  source TEXT NOT NULL, reason TEXT NOT NULL, changed_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS local_rejects (id INTEGER PRIMARY KEY AUTOINCREMENT, received_at INTEGER NOT NULL, topic TEXT NOT NULL,
  reason TEXT NOT NULL, detail TEXT NOT NULL, size INTEGER NOT NULL, payload BLOB NOT NULL);
`;

const MAX_REJECTS = 10_000;

export class EdgeState {
  private readonly db: Database.Database;
  private readonly stmt;

  constructor(file: string) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.exec(SCHEMA);
    const db = this.db;
    this.stmt = {
      getCommand: db.prepare<[string], { state: CommandState; detail: string | null; device: string }>('SELECT state, detail, device FROM commands WHERE command_id = ?'),
      addCommand: db.prepare('INSERT OR IGNORE INTO commands (command_id, device, command, received_at, expires_at, state, detail) VALUES (?, ?, ?, ?, ?, ?, ?)'),
      setCommand: db.prepare('UPDATE commands SET state = ?, detail = ? WHERE command_id = ?'),
      relayed: db.prepare<[], { command_id: string; device: string }>("SELECT command_id, device FROM commands WHERE state = 'relayed'"),
      pruneCommands: db.prepare('DELETE FROM commands WHERE expires_at < ?'),
      getMode: db.prepare<[], { mode: Mode; version: number; source: 'cloud' | 'local'; reason: string; changed_at: number }>('SELECT * FROM mode WHERE id = 1'),
      setMode: db.prepare(
        'INSERT INTO mode (id, mode, version, source, reason, changed_at) VALUES (1, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET mode = excluded.mode, version = excluded.version, source = excluded.source, reason = excluded.reason, changed_at = excluded.changed_at',
      ),
      addReject: db.prepare('INSERT INTO local_rejects (received_at, topic, reason, detail, size, payload) VALUES (?, ?, ?, ?, ?, ?)'),
      trimRejects: db.prepare('DELETE FROM local_rejects WHERE id <= (SELECT max(id) FROM local_rejects) - ?'),
      listRejects: db.prepare<[number], { id: number; received_at: number; topic: string; reason: string; detail: string; size: number; payload: Buffer }>(
        'SELECT * FROM local_rejects ORDER BY id DESC LIMIT ?',
      ),
      countRejects: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM local_rejects'),
    };
  }

  command(id: string): { state: CommandState; detail: string | null; device: string } | undefined {
    return this.stmt.getCommand.get(id);
  }

  /** Records a new command; false if the id was seen before (never execute it twice). */
  addCommand(id: string, device: string, command: string, receivedAt: number, expiresAt: number, state: CommandState, detail: string | null): boolean {
    return this.stmt.addCommand.run(id, device, command, receivedAt, expiresAt, state, detail).changes === 1;
  }

  setCommand(id: string, state: CommandState, detail: string | null): void {
    this.stmt.setCommand.run(state, detail, id);
  }

  relayedCommands(): { commandId: string; device: string }[] {
    return this.stmt.relayed.all().map((r) => ({ commandId: r.command_id, device: r.device }));
  }

  /** Forgets commands expired for more than a day (they can no longer be executed anyway). */
  pruneCommands(now: number): void {
    this.stmt.pruneCommands.run(now - 86_400_000);
  }

  mode(): ModeState {
    const r = this.stmt.getMode.get();
    return r ? { mode: r.mode, version: r.version, source: r.source, reason: r.reason, changedAt: r.changed_at } : { mode: 'normal', version: 0, source: 'cloud', reason: '', changedAt: 0 };
  }

  setMode(m: ModeState): void {
    this.stmt.setMode.run(m.mode, m.version, m.source, m.reason, m.changedAt);
  }

  addReject(receivedAt: number, topic: string, reason: string, detail: string, payload: Buffer): void {
    this.stmt.addReject.run(receivedAt, topic.slice(0, 512), reason, detail.slice(0, 2000), payload.length, payload.subarray(0, 4096));
    this.stmt.trimRejects.run(MAX_REJECTS);
  }

  rejects(limit = 100) {
    return this.stmt.listRejects.all(limit).map((r) => ({
      id: r.id, receivedAt: new Date(r.received_at).toISOString(), topic: r.topic, reason: r.reason, detail: r.detail, size: r.size,
      payloadText: r.payload.toString('utf8'),
    }));
  }

  rejectCount(): number {
    return this.stmt.countRejects.get()!.n;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
