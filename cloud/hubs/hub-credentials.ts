import crypto from 'node:crypto';
import { promisify } from 'node:util';
import type { Database, FeatureMigrations } from '../db/database.ts';
import type { Sql } from '../db/sql.ts';

const scrypt = promisify(crypto.scrypt) as (pw: crypto.BinaryLike, salt: crypto.BinaryLike, keylen: number, opts: crypto.ScryptOptions) => Promise<Buffer>;

/**
 * Per-hub MQTT credentials, stored as scrypt hashes (memory-hard; Node's built-in, so no native
 * dependency). N=2^14, r=8 costs ~16 MiB and ~30–60 ms per check on this machine, which is why
 * successful checks are remembered for a while: a region of hubs reconnecting after a 4G outage must
 * not queue thousands of scrypt runs.
 */
const PARAMS = { N: 1 << 14, r: 8, p: 1, keylen: 32 };
const CACHE_TTL_MS = 10 * 60_000;

export interface HubIdentity {
  hubId: string;
  region: string;
}

export interface HubCredentialStore {
  /** Sets (or replaces) a hub's password. */
  set(hubId: string, region: string, username: string, password: string): Promise<void>;
  /** Returns the hub for valid credentials, null otherwise. */
  verify(username: string, password: string): Promise<HubIdentity | null>;
  has(hubId: string): Promise<boolean>;
  /** Revokes a hub's credentials: its next login is refused (on every cloud process: each login reads the row). */
  remove(hubId: string): Promise<void>;
}

export function generatePassword(): string {
  return crypto.randomBytes(18).toString('base64url');
}

export async function hashSecret(password: string): Promise<string> {
  const salt = crypto.randomBytes(16);
  const hash = await scrypt(password, salt, PARAMS.keylen, { N: PARAMS.N, r: PARAMS.r, p: PARAMS.p, maxmem: 64 * 1024 * 1024 });
  return ['scrypt', PARAMS.N, PARAMS.r, PARAMS.p, salt.toString('base64url'), hash.toString('base64url')].join('$');
}

export async function verifySecret(password: string, secret: string): Promise<boolean> {
  const [algo, n, r, p, salt, hash] = secret.split('$');
  if (algo !== 'scrypt' || !n || !r || !p || !salt || !hash) return false;
  const expected = Buffer.from(hash, 'base64url');
  const actual = await scrypt(password, Buffer.from(salt, 'base64url'), expected.length, {
    N: Number(n), r: Number(r), p: Number(p), maxmem: 64 * 1024 * 1024,
  });
  return actual.length === expected.length && crypto.timingSafeEqual(actual, expected);
}

/**
 * The hub_credentials table: on SQLite it was created by the operational database's first legacy step
 * (LEGACY_SQLITE_MIGRATIONS in cloud/db/operational-db.ts), so existing cloud.db files keep it as it
 * is; on PostgreSQL this feature's first step creates it (issue 14).
 */
export const HUB_CREDENTIAL_MIGRATIONS: FeatureMigrations = {
  sqlite: [],
  postgres: [
    `CREATE TABLE hub_credentials (
       hub_id     TEXT PRIMARY KEY,
       region     TEXT NOT NULL,
       username   TEXT NOT NULL UNIQUE,
       secret     TEXT NOT NULL,            -- scrypt$N$r$p$salt$hash (base64url)
       updated_at BIGINT NOT NULL
     )`,
  ],
};

/** Opens the hub credentials on the operational database (SQLite or PostgreSQL), migrating first. */
export async function openHubCredentialStore(db: Database, now: () => number = Date.now): Promise<HubCredentialStore> {
  await db.migrate('hub-credentials', HUB_CREDENTIAL_MIGRATIONS);
  return sqlHubCredentialStore(db.sql, now);
}

function sqlHubCredentialStore(sql: Sql, now: () => number): HubCredentialStore {
  // key: sha256(username \0 password \0 secret) → expiry. Keyed by the stored secret too, so a password
  // change (here or by another cloud process) invalidates it at once: every login reads the row.
  const verified = new Map<string, number>();

  return {
    async set(hubId, region, username, password) {
      const secret = await hashSecret(password);
      await sql.run(
        `INSERT INTO hub_credentials (hub_id, region, username, secret, updated_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (hub_id) DO UPDATE SET region = excluded.region, username = excluded.username, secret = excluded.secret, updated_at = excluded.updated_at`,
        [hubId, region, username, secret, now()],
      );
    },
    async verify(username, password) {
      // No username holds U+0000, and PostgreSQL refuses it in a query parameter (issue 14): unknown, not an error.
      const row = username.includes('\u0000')
        ? undefined
        : await sql.one<{ hub_id: string; region: string; secret: string }>('SELECT hub_id, region, secret FROM hub_credentials WHERE username = ?', [username]);
      if (!row) {
        // Spend comparable time on unknown users so the answer time does not reveal which usernames exist.
        await hashSecret(password);
        return null;
      }
      const key = crypto.createHash('sha256').update(`${username}\0${password}\0${row.secret}`).digest('base64');
      const until = verified.get(key);
      if (until !== undefined && until > now()) return { hubId: row.hub_id, region: row.region };
      if (!(await verifySecret(password, row.secret))) return null;
      if (verified.size > 50_000) verified.clear();
      verified.set(key, now() + CACHE_TTL_MS);
      return { hubId: row.hub_id, region: row.region };
    },
    async has(hubId) {
      return (await sql.one('SELECT hub_id FROM hub_credentials WHERE hub_id = ?', [hubId])) !== undefined;
    },
    async remove(hubId) {
      await sql.run('DELETE FROM hub_credentials WHERE hub_id = ?', [hubId]);
    },
  };
}
