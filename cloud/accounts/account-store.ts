import crypto from 'node:crypto';
import { migrateFeature, type OperationalDb } from '../db/operational-db.ts';
import { hashSecret, verifySecret } from '../hubs/hub-credentials.ts';
import { ROLES, type Account, type Role } from './authorize.ts';

/**
 * Console and API accounts, their sessions and API tokens, and the append-only API audit log, in
 * cloud.db. Passwords are scrypt hashes (the hub credential scheme: memory-hard, Node built-in).
 * Session and API tokens are 32 random bytes; only their sha256 is stored — they carry enough
 * entropy that a slow hash adds nothing, and every request checks one.
 */
const STEPS = [
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
];

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

interface AccountRow { username: string; display_name: string; role: Role; hubs: string; secret: string }

const toAccount = (r: AccountRow): Account => ({ username: r.username, displayName: r.display_name, role: r.role, hubs: JSON.parse(r.hubs) as string[] });
const tokenHash = (token: string) => crypto.createHash('sha256').update(token).digest('hex');
const newToken = () => crypto.randomBytes(32).toString('base64url');

export interface AccountInput {
  username: string;
  displayName?: string;
  role: Role;
  hubs?: string[];
  password: string;
}

export class AccountStore {
  private readonly q;
  /**
   * How long a password check takes here (moving average of real checks; the first estimate from one
   * scrypt run). Refusals answer on a timer set from it — no scrypt run for an unknown username, so a
   * flood of made-up usernames costs no CPU, and the answer looks like a wrong password's.
   */
  private verifyMs = 0;
  private calibration: Promise<void> | null = null;

  constructor(private readonly db: OperationalDb, private readonly now: () => number = Date.now) {
    migrateFeature(db, 'accounts', STEPS);
    this.q = {
      get: db.prepare<[string], AccountRow>('SELECT * FROM accounts WHERE username = ?'),
      all: db.prepare<[], AccountRow>('SELECT * FROM accounts ORDER BY username'),
      insert: db.prepare('INSERT INTO accounts (username, display_name, role, hubs, secret, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)'),
      update: db.prepare('UPDATE accounts SET display_name = ?, role = ?, hubs = ?, updated_at = ? WHERE username = ?'),
      setSecret: db.prepare('UPDATE accounts SET secret = ?, updated_at = ? WHERE username = ?'),
      insertToken: db.prepare('INSERT INTO account_tokens (token_hash, username, kind, label, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)'),
      token: db.prepare<[string], AccountRow & { expires_at: number | null; kind: 'session' | 'api' }>(
        'SELECT a.*, t.expires_at, t.kind FROM account_tokens t JOIN accounts a USING (username) WHERE t.token_hash = ?',
      ),
      deleteToken: db.prepare('DELETE FROM account_tokens WHERE token_hash = ?'),
      deleteSessionsOf: db.prepare("DELETE FROM account_tokens WHERE username = ? AND kind = 'session'"),
      pruneSessions: db.prepare('DELETE FROM account_tokens WHERE expires_at IS NOT NULL AND expires_at <= ?'),
      audit: db.prepare('INSERT INTO api_audit (at, account, role, method, route, path, status) VALUES (?, ?, ?, ?, ?, ?, ?)'),
      auditList: db.prepare<[number], AuditRecord>('SELECT * FROM api_audit ORDER BY id DESC LIMIT ?'),
    };
  }

  get(username: string): Account | null {
    const r = this.q.get.get(username);
    return r ? toAccount(r) : null;
  }

  list(): Account[] {
    return this.q.all.all().map(toAccount);
  }

  async create(a: AccountInput): Promise<Account> {
    if (!ROLES.includes(a.role)) throw new Error(`unknown role "${a.role}"`);
    const at = this.now();
    this.q.insert.run(a.username, a.displayName ?? a.username, a.role, JSON.stringify(a.hubs ?? []), await hashSecret(a.password), at, at);
    return this.get(a.username)!;
  }

  update(username: string, change: { displayName?: string; role?: Role; hubs?: string[] }): Account | null {
    const a = this.get(username);
    if (!a) return null;
    this.q.update.run(change.displayName ?? a.displayName, change.role ?? a.role, JSON.stringify(change.hubs ?? a.hubs), this.now(), username);
    // A changed role or scope takes effect at once: sessions read the account on every request.
    return this.get(username);
  }

  /** Sets a new password and ends the account's sessions (API tokens stay). */
  async setPassword(username: string, password: string): Promise<void> {
    this.q.setSecret.run(await hashSecret(password), this.now(), username);
    this.q.deleteSessionsOf.run(username);
  }

  /**
   * The account for a valid username and password; null otherwise. Every refusal — unknown username
   * (a timer, no scrypt run) or wrong password (scrypt) — answers at the same moment: twice the usual
   * check time after the attempt began, so the two cannot be told apart by timing (issue 11: with the
   * unknown one's timer drawn around the average, 200 tries each showed unknown usernames answering up
   * to 3 ms sooner than any known one could; a few tries told them apart). A correct password answers
   * at once. The sign-in throttle caps how many attempts anyone gets to compare timings at all.
   */
  async verifyPassword(username: string, password: string): Promise<Account | null> {
    const started = performance.now();
    const r = this.q.get.get(username);
    await (this.calibration ??= this.timed(() => hashSecret(newToken())));
    let ok = false;
    if (r) {
      await this.timed(async () => {
        ok = await verifySecret(password, r.secret);
      });
    }
    if (ok) return toAccount(r!);
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

  /** A new login session; the token is returned once and stored only as its hash. */
  createSession(username: string, ttlMs = SESSION_TTL_MS): { token: string; expiresAt: number } {
    const token = newToken();
    const at = this.now();
    this.q.pruneSessions.run(at);
    this.q.insertToken.run(tokenHash(token), username, 'session', null, at, at + ttlMs);
    return { token, expiresAt: at + ttlMs };
  }

  /** A long-lived API token for an integration (Node-RED, scripts); returned once. */
  createApiToken(username: string, label: string | null, ttlMs: number | null = null): { token: string; expiresAt: number | null } {
    const token = `ck_${newToken()}`;
    const at = this.now();
    const expiresAt = ttlMs === null ? null : at + ttlMs;
    this.q.insertToken.run(tokenHash(token), username, 'api', label, at, expiresAt);
    return { token, expiresAt };
  }

  /** The account a session or API token belongs to, or null when unknown or expired. */
  resolveToken(token: string): { account: Account; expiresAt: number | null; kind: 'session' | 'api' } | null {
    const r = this.q.token.get(tokenHash(token));
    if (!r) return null;
    if (r.expires_at !== null && r.expires_at <= this.now()) return null;
    return { account: toAccount(r), expiresAt: r.expires_at, kind: r.kind };
  }

  revokeToken(token: string): void {
    this.q.deleteToken.run(tokenHash(token));
  }

  recordAudit(e: Omit<AuditRecord, 'id' | 'at'>): void {
    this.q.audit.run(this.now(), e.account, e.role, e.method, e.route, e.path, e.status);
  }

  audit(limit: number): AuditRecord[] {
    return this.q.auditList.all(limit);
  }
}
