import crypto from 'node:crypto';
import type { Database, FeatureMigrations } from '../db/database.ts';
import { isUniqueViolation, type Sql } from '../db/sql.ts';
import { checkPassword, hashPassword, isCurrentPasswordHash } from './password-hash.ts';
import { ROLES, type Account, type Role } from './authorize.ts';

/**
 * Console and API accounts, their sessions and API tokens, and the append-only API audit log, in the
 * operational database (SQLite or PostgreSQL, issue 14). Passwords are scrypt hashes (password-hash.ts:
 * memory-hard, Node built-in; a hash made at older parameters is replaced at the next successful
 * sign-in, issue 17). Session and API tokens are 32 random bytes; only
 * their sha256 is stored — they carry enough entropy that a slow hash adds nothing, and every request
 * checks one: `resolveToken` is one indexed query (token_hash is the primary key) and nothing is
 * cached, so a session revoked by one cloud process is refused by every other at its next request.
 */
export const ACCOUNT_MIGRATIONS: FeatureMigrations = {
  sqlite: [
    `CREATE TABLE accounts (
       username     TEXT PRIMARY KEY,
       display_name TEXT NOT NULL,
       role         TEXT NOT NULL CHECK (role IN ('staff', 'coordinator', 'operator', 'admin')),
       hubs         TEXT NOT NULL,          -- JSON array of hub ids (staff scope)
       secret       TEXT NOT NULL,          -- scrypt$N$r$p$salt$hash
       created_at   INTEGER NOT NULL,
       updated_at   INTEGER NOT NULL
     );
     CREATE TABLE account_tokens (
       token_hash TEXT PRIMARY KEY,         -- sha256 (hex) of the token
       username   TEXT NOT NULL REFERENCES accounts (username) ON DELETE CASCADE,
       kind       TEXT NOT NULL CHECK (kind IN ('session', 'api')),
       label      TEXT,
       created_at INTEGER NOT NULL,
       expires_at INTEGER                   -- null: API token without expiry
     );
     CREATE INDEX account_tokens_user ON account_tokens (username);
     CREATE TABLE api_audit (
       id      INTEGER PRIMARY KEY AUTOINCREMENT,
       at      INTEGER NOT NULL,
       account TEXT,                        -- null: no valid session
       role    TEXT,
       method  TEXT NOT NULL,
       route   TEXT,                        -- route pattern, e.g. /api/v1/alarms/:alarmId/ack
       path    TEXT NOT NULL,
       status  INTEGER NOT NULL
     );
     CREATE TRIGGER api_audit_no_update BEFORE UPDATE ON api_audit BEGIN SELECT RAISE(ABORT, 'api_audit is append-only'); END;
     CREATE TRIGGER api_audit_no_delete BEFORE DELETE ON api_audit BEGIN SELECT RAISE(ABORT, 'api_audit is append-only'); END;`,
    // Issue 14, item 3: a coordinator's regions (JSON array; null: every region — so existing
    // coordinators keep working). Expired sessions are pruned by expiry: indexed.
    `ALTER TABLE accounts ADD COLUMN regions TEXT;
     CREATE INDEX account_tokens_expiry ON account_tokens (expires_at) WHERE expires_at IS NOT NULL;`,
  ],
  postgres: [
    `CREATE TABLE accounts (
       username     TEXT PRIMARY KEY,
       display_name TEXT NOT NULL,
       role         TEXT NOT NULL CHECK (role IN ('staff', 'coordinator', 'operator', 'admin')),
       hubs         TEXT NOT NULL,
       secret       TEXT NOT NULL,
       created_at   BIGINT NOT NULL,
       updated_at   BIGINT NOT NULL,
       regions      TEXT
     );
     CREATE TABLE account_tokens (
       token_hash TEXT PRIMARY KEY,
       username   TEXT NOT NULL REFERENCES accounts (username) ON DELETE CASCADE,
       kind       TEXT NOT NULL CHECK (kind IN ('session', 'api')),
       label      TEXT,
       created_at BIGINT NOT NULL,
       expires_at BIGINT
     );
     CREATE INDEX account_tokens_user ON account_tokens (username);
     CREATE INDEX account_tokens_expiry ON account_tokens (expires_at) WHERE expires_at IS NOT NULL;
     CREATE TABLE api_audit (
       id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
       at      BIGINT NOT NULL,
       account TEXT,
       role    TEXT,
       method  TEXT NOT NULL,
       route   TEXT,
       path    TEXT NOT NULL,
       status  INTEGER NOT NULL
     );
     CREATE FUNCTION api_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION 'api_audit is append-only'; END $$;
     CREATE TRIGGER api_audit_no_change BEFORE UPDATE OR DELETE ON api_audit FOR EACH ROW EXECUTE FUNCTION api_audit_append_only();
     CREATE TRIGGER api_audit_no_truncate BEFORE TRUNCATE ON api_audit FOR EACH STATEMENT EXECUTE FUNCTION api_audit_append_only();`,
  ],
};

export const SESSION_TTL_MS = 12 * 3_600_000;

/** A refused sign-in answers this many average password checks after it began (see verifyPassword). */
const REFUSAL_DELAY_FACTOR = 2;

export interface AuditRecord {
  id: number;
  at: number;
  account: string | null;
  role: string | null;
  method: string;
  route: string | null;
  path: string;
  status: number;
}

export interface AccountInput {
  username: string;
  displayName?: string;
  role: Role;
  hubs?: string[];
  /** Coordinator: its regions (null or absent: every region). Ignored for other roles. */
  regions?: string[] | null;
  password: string;
}

export interface AccountChange {
  displayName?: string;
  role?: Role;
  hubs?: string[];
  /** Coordinator: its regions; null: every region. Absent: unchanged. */
  regions?: string[] | null;
}

export interface ResolvedToken {
  account: Account;
  expiresAt: number | null;
  kind: 'session' | 'api';
}

/** Thrown by `create` when the username is taken (also when two processes create it at once). */
export class AccountExistsError extends Error {
  constructor(readonly username: string) {
    super(`an account "${username}" already exists`);
    this.name = 'AccountExistsError';
  }
}

/** The accounts port. Every method is one statement or one transaction on the database. */
export interface AccountStore {
  get(username: string): Promise<Account | null>;
  list(): Promise<Account[]>;
  /** Throws `AccountExistsError` when the username is taken. */
  create(a: AccountInput): Promise<Account>;
  /** Changes only the fields given (one conditional statement, so concurrent changes of other fields are kept); null for an unknown account. */
  update(username: string, change: AccountChange): Promise<Account | null>;
  /** Sets a new password and ends the account's sessions (API tokens stay). */
  setPassword(username: string, password: string): Promise<void>;
  /** The account for a valid username and password; null otherwise (refusals answer at one moment: see the implementation). */
  verifyPassword(username: string, password: string): Promise<Account | null>;
  /** A new login session; the token is returned once and stored only as its hash. */
  createSession(username: string, ttlMs?: number): Promise<{ token: string; expiresAt: number }>;
  /** A long-lived API token for an integration (Node-RED, scripts); returned once. */
  createApiToken(username: string, label: string | null, ttlMs?: number | null): Promise<{ token: string; expiresAt: number | null }>;
  /** The account a session or API token belongs to, or null when unknown, expired or revoked. One indexed query, never cached. */
  resolveToken(token: string): Promise<ResolvedToken | null>;
  revokeToken(token: string): Promise<void>;
  recordAudit(e: Omit<AuditRecord, 'id' | 'at'>): Promise<void>;
  /** The newest entries first. */
  audit(limit: number): Promise<AuditRecord[]>;
  /** Display names of every account (for `DisplayNames`). */
  displayNames(): Promise<Map<string, string>>;
  /** Called after this store created or changed an account (in this process; other processes' changes are read by polling). */
  onChange(fn: (account: Account) => void): () => void;
}

interface AccountRow { username: string; display_name: string; role: Role; hubs: string; regions: string | null; secret: string }

/** Regions are kept only for coordinators (admin/operator: every region; staff: their hubs'). */
const regionsFor = (role: Role, regions: readonly string[] | null | undefined): string | null =>
  role === 'coordinator' && regions ? JSON.stringify([...new Set(regions)]) : null;
const toAccount = (r: AccountRow): Account => ({
  username: r.username, displayName: r.display_name, role: r.role, hubs: JSON.parse(r.hubs) as string[],
  regions: r.role === 'coordinator' && r.regions !== null ? (JSON.parse(r.regions) as string[]) : null,
});
const tokenHash = (token: string) => crypto.createHash('sha256').update(token).digest('hex');
const newToken = () => crypto.randomBytes(32).toString('base64url');
const ACCOUNT_COLUMNS = 'username, display_name, role, hubs, regions, secret';

/** Opens the accounts store on the operational database, migrating its tables first. */
export async function openAccountStore(db: Database, now: () => number = Date.now): Promise<AccountStore> {
  await db.migrate('accounts', ACCOUNT_MIGRATIONS);
  return new SqlAccountStore(db.sql, now);
}

class SqlAccountStore implements AccountStore {
  /**
   * How long a password check takes here (moving average of real checks; the first estimate from one
   * scrypt run). Refusals answer on a timer set from it — no scrypt run for an unknown username, so a
   * flood of made-up usernames costs no CPU, and the answer looks like a wrong password's.
   */
  private verifyMs = 0;
  private calibration: Promise<void> | null = null;
  private readonly listeners = new Set<(a: Account) => void>();

  constructor(private readonly sql: Sql, private readonly now: () => number) {}

  private row(username: string): Promise<AccountRow | undefined> {
    return this.sql.one<AccountRow>(`SELECT ${ACCOUNT_COLUMNS} FROM accounts WHERE username = ?`, [username]);
  }

  async get(username: string): Promise<Account | null> {
    const r = await this.row(username);
    return r ? toAccount(r) : null;
  }

  async list(): Promise<Account[]> {
    return (await this.sql.query<AccountRow>(`SELECT ${ACCOUNT_COLUMNS} FROM accounts ORDER BY username`)).map(toAccount);
  }

  async create(a: AccountInput): Promise<Account> {
    if (!ROLES.includes(a.role)) throw new Error(`unknown role "${a.role}"`);
    const secret = await hashPassword(a.password);
    const at = this.now();
    // A plain INSERT: of two processes creating one username at once, the primary key lets one win
    // and the other gets AccountExistsError (never a silent overwrite of the first one's password).
    const rows = await this.sql.query<AccountRow>(
      `INSERT INTO accounts (username, display_name, role, hubs, regions, secret, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (username) DO NOTHING RETURNING ${ACCOUNT_COLUMNS}`,
      [a.username, a.displayName ?? a.username, a.role, JSON.stringify(a.hubs ?? []), regionsFor(a.role, a.regions), secret, at, at],
    ).catch((err: unknown) => {
      if (isUniqueViolation(err)) throw new AccountExistsError(a.username);
      throw err;
    });
    if (rows.length === 0) throw new AccountExistsError(a.username);
    return this.changed(toAccount(rows[0]!));
  }

  async update(username: string, change: AccountChange): Promise<Account | null> {
    if (change.role !== undefined && !ROLES.includes(change.role)) throw new Error(`unknown role "${change.role}"`);
    // One statement: fields not given keep the value they have at that moment (no read-then-write, so
    // two admins changing different fields at once both win). Regions are dropped for other roles.
    const setRegions = change.regions !== undefined ? 1 : 0;
    const regions = change.regions === undefined || change.regions === null ? null : JSON.stringify([...new Set(change.regions)]);
    const rows = await this.sql.query<AccountRow>(
      `UPDATE accounts SET
         display_name = COALESCE(?, display_name),
         role = COALESCE(?, role),
         hubs = COALESCE(?, hubs),
         regions = CASE WHEN COALESCE(?, role) <> 'coordinator' THEN NULL WHEN ? = 1 THEN ? ELSE regions END,
         updated_at = ?
       WHERE username = ? RETURNING ${ACCOUNT_COLUMNS}`,
      [change.displayName ?? null, change.role ?? null, change.hubs ? JSON.stringify(change.hubs) : null, change.role ?? null, setRegions, regions, this.now(), username],
    );
    // A changed role or scope takes effect at once: sessions read the account on every request.
    return rows[0] ? this.changed(toAccount(rows[0])) : null;
  }

  onChange(fn: (a: Account) => void): () => void {
    this.listeners.add(fn);
    return () => void this.listeners.delete(fn);
  }

  private changed(a: Account): Account {
    for (const fn of this.listeners) fn(a);
    return a;
  }

  async displayNames(): Promise<Map<string, string>> {
    const rows = await this.sql.query<{ username: string; display_name: string }>('SELECT username, display_name FROM accounts');
    return new Map(rows.map((r) => [r.username, r.display_name]));
  }

  async setPassword(username: string, password: string): Promise<void> {
    const secret = await hashPassword(password);
    await this.sql.transaction(async (tx) => {
      await tx.run('UPDATE accounts SET secret = ?, updated_at = ? WHERE username = ?', [secret, this.now(), username]);
      await tx.run("DELETE FROM account_tokens WHERE username = ? AND kind = 'session'", [username]);
    });
  }

  /**
   * Every refusal — unknown username (a timer, no scrypt run) or wrong password (scrypt) — answers at
   * the same moment: twice the usual check time after the attempt began, so the two cannot be told
   * apart by timing (issue 11: with the unknown one's timer drawn around the average, 200 tries each
   * showed unknown usernames answering up to 3 ms sooner than any known one could; a few tries told
   * them apart). A correct password answers at once. The sign-in throttle caps how many attempts
   * anyone gets to compare timings at all.
   *
   * A correct password whose hash was made at older parameters (before issue 17: N=2^14, p=1) is
   * hashed again at today's and stored — only if the row still holds the hash just checked, so a
   * password changed meanwhile (here or by another process) is never overwritten; the sessions stay.
   * That sign-in takes one more hash (~180 ms), once.
   */
  async verifyPassword(username: string, password: string): Promise<Account | null> {
    const started = performance.now();
    const r = await this.row(username);
    await (this.calibration ??= this.timed(() => hashPassword(newToken())));
    let ok = false;
    if (r) {
      await this.timed(async () => {
        ok = await checkPassword(password, r.secret);
      });
    }
    if (ok) {
      if (!isCurrentPasswordHash(r!.secret)) {
        await this.sql.run('UPDATE accounts SET secret = ? WHERE username = ? AND secret = ?', [await hashPassword(password), username, r!.secret]);
      }
      return toAccount(r!);
    }
    const wait = started + REFUSAL_DELAY_FACTOR * this.verifyMs - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    return null;
  }

  private async timed(check: () => Promise<unknown>): Promise<void> {
    const t0 = performance.now();
    await check();
    const ms = performance.now() - t0;
    this.verifyMs = this.verifyMs === 0 ? ms : 0.8 * this.verifyMs + 0.2 * ms;
  }

  async createSession(username: string, ttlMs = SESSION_TTL_MS): Promise<{ token: string; expiresAt: number }> {
    const token = newToken();
    const at = this.now();
    await this.sql.run('DELETE FROM account_tokens WHERE expires_at IS NOT NULL AND expires_at <= ?', [at]);
    await this.sql.run('INSERT INTO account_tokens (token_hash, username, kind, label, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)', [tokenHash(token), username, 'session', null, at, at + ttlMs]);
    return { token, expiresAt: at + ttlMs };
  }

  async createApiToken(username: string, label: string | null, ttlMs: number | null = null): Promise<{ token: string; expiresAt: number | null }> {
    const token = `ck_${newToken()}`;
    const at = this.now();
    const expiresAt = ttlMs === null ? null : at + ttlMs;
    await this.sql.run('INSERT INTO account_tokens (token_hash, username, kind, label, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)', [tokenHash(token), username, 'api', label, at, expiresAt]);
    return { token, expiresAt };
  }

  async resolveToken(token: string): Promise<ResolvedToken | null> {
    // The hot path (every HTTP request): one primary-key lookup joined to its account, one round trip.
    const r = await this.sql.one<AccountRow & { expires_at: number | null; kind: 'session' | 'api' }>(
      `SELECT a.username, a.display_name, a.role, a.hubs, a.regions, a.secret, t.expires_at, t.kind
       FROM account_tokens t JOIN accounts a ON a.username = t.username WHERE t.token_hash = ?`,
      [tokenHash(token)],
    );
    if (!r) return null;
    if (r.expires_at !== null && r.expires_at <= this.now()) return null;
    return { account: toAccount(r), expiresAt: r.expires_at, kind: r.kind };
  }

  async revokeToken(token: string): Promise<void> {
    await this.sql.run('DELETE FROM account_tokens WHERE token_hash = ?', [tokenHash(token)]);
  }

  async recordAudit(e: Omit<AuditRecord, 'id' | 'at'>): Promise<void> {
    await this.sql.run('INSERT INTO api_audit (at, account, role, method, route, path, status) VALUES (?, ?, ?, ?, ?, ?, ?)', [this.now(), e.account, e.role, e.method, e.route, e.path, e.status]);
  }

  async audit(limit: number): Promise<AuditRecord[]> {
    return this.sql.query<AuditRecord>('SELECT id, at, account, role, method, route, path, status FROM api_audit ORDER BY id DESC LIMIT ?', [limit]);
  }
}
