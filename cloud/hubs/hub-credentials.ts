import crypto from 'node:crypto';
import { promisify } from 'node:util';
import type { OperationalDb } from '../db/operational-db.ts';

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
  has(hubId: string): boolean;
  remove(hubId: string): void;
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

export function createHubCredentialStore(db: OperationalDb, now: () => number = Date.now): HubCredentialStore {
  const upsert = db.prepare(
    `INSERT INTO hub_credentials (hub_id, region, username, secret, updated_at) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT (hub_id) DO UPDATE SET region = excluded.region, username = excluded.username, secret = excluded.secret, updated_at = excluded.updated_at`,
  );
  const byUsername = db.prepare<[string], { hub_id: string; region: string; secret: string }>(
    'SELECT hub_id, region, secret FROM hub_credentials WHERE username = ?',
  );
  const byHub = db.prepare<[string], { hub_id: string }>('SELECT hub_id FROM hub_credentials WHERE hub_id = ?');
  const del = db.prepare('DELETE FROM hub_credentials WHERE hub_id = ?');
  // key: sha256(username \0 password \0 secret) → expiry. Keyed by the stored secret too, so a password
  // change invalidates it at once.
  const verified = new Map<string, number>();

  return {
    async set(hubId, region, username, password) {
      upsert.run(hubId, region, username, await hashSecret(password), now());
    },
    async verify(username, password) {
      const row = byUsername.get(username);
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
    has(hubId) {
      return byHub.get(hubId) !== undefined;
    },
    remove(hubId) {
      del.run(hubId);
    },
  };
}
