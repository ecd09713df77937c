import crypto from 'node:crypto';
import { promisify } from 'node:util';

const scrypt = promisify(crypto.scrypt) as (pw: crypto.BinaryLike, salt: crypto.BinaryLike, keylen: number, opts: crypto.ScryptOptions) => Promise<Buffer>;

/**
 * Secrets people choose (console and API account passwords), stored as scrypt hashes: memory-hard,
 * Node's built-in, no native dependency. The stored form carries its parameters
 * (`scrypt$N$r$p$salt$hash`, base64url), so a hash made at older parameters still verifies, and
 * `isCurrentPasswordHash` tells the caller to store a new one after a successful check.
 *
 * Parameters (issue 17, item 3). OWASP's Password Storage Cheat Sheet recommends scrypt at N=2^17,
 * r=8, p=1 (128 MiB) and lists N=2^16/p=2, N=2^15/p=3, N=2^14/p=5 and N=2^13/p=10 as equivalent in
 * the defence they give (they come from the same GPU memory-bandwidth estimate, tobtu.com "Minimum
 * password settings"). Measured here (2 cores, load 0.05): N=2^17 p=1 374 ms per check, N=2^16 p=2
 * 330 ms, N=2^15 p=3 233 ms, N=2^14 p=5 181 ms; the old N=2^14 p=1 46 ms. We use N=2^14, r=8, p=5:
 *  - the cheapest of the equivalent settings in time (Node runs the p lanes one after another, so
 *    time grows with N·p, and N=2^14·5 < 2^17), and in memory: 16 MiB per check, as before — libuv's
 *    four threads may run four checks at once, which at N=2^17 is 512 MiB on a small server;
 *  - a refused sign-in answers after twice the average check (account-store.ts), so the check time
 *    is what a person waits for a typo, and what the sign-in timing test pays 120 times in its 90 s
 *    budget (test/http-security.test.ts): at N=2^17 that is 120 × 2 × 374 ms ≈ 90 s — it cannot pass;
 *    at N=2^14/p=5 ≈ 43 s.
 * That is 3.9× the CPU per guess of the old N=2^14/p=1 for an attacker with a copy of the hashes.
 */
export interface ScryptParams {
  N: number;
  r: number;
  p: number;
  keylen: number;
}

export const PASSWORD_SCRYPT: Readonly<ScryptParams> = { N: 1 << 14, r: 8, p: 5, keylen: 32 };

/** The parameters every secret was hashed with before issue 17 (N=2^14, r=8, p=1, ~46 ms); still used for pickup codes. */
export const LEGACY_SCRYPT: Readonly<ScryptParams> = { N: 1 << 14, r: 8, p: 1, keylen: 32 };

/**
 * Bounds on parameters read back from storage: a stored value is data, and a corrupted or planted
 * one (N=2^30) must not make a check allocate gigabytes. 128·N·r bytes is what scrypt allocates.
 */
const MAX_N = 1 << 20;
const MAX_R = 32;
const MAX_P = 16;
const MAX_MEMORY = 256 * 1024 * 1024;
const maxmemFor = (N: number, r: number) => 128 * N * r + 2 * 1024 * 1024;

export async function hashPassword(password: string, params: Readonly<ScryptParams> = PASSWORD_SCRYPT): Promise<string> {
  const salt = crypto.randomBytes(16);
  const hash = await scrypt(password, salt, params.keylen, { N: params.N, r: params.r, p: params.p, maxmem: maxmemFor(params.N, params.r) });
  return ['scrypt', params.N, params.r, params.p, salt.toString('base64url'), hash.toString('base64url')].join('$');
}

interface ParsedScrypt {
  N: number;
  r: number;
  p: number;
  salt: Buffer;
  hash: Buffer;
}

const POSITIVE_INT = /^[1-9][0-9]{0,9}$/;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** The stored form's parts, or null for anything that is not a well-formed scrypt hash within the bounds. */
function parseScrypt(stored: string): ParsedScrypt | null {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return null;
  const [, n, r, p, salt, hash] = parts as [string, string, string, string, string, string];
  if (!POSITIVE_INT.test(n) || !POSITIVE_INT.test(r) || !POSITIVE_INT.test(p) || !BASE64URL.test(salt) || !BASE64URL.test(hash)) return null;
  const parsed = { N: Number(n), r: Number(r), p: Number(p), salt: Buffer.from(salt, 'base64url'), hash: Buffer.from(hash, 'base64url') };
  const powerOfTwo = (parsed.N & (parsed.N - 1)) === 0;
  if (parsed.N < 2 || parsed.N > MAX_N || !powerOfTwo || parsed.r > MAX_R || parsed.p > MAX_P || 128 * parsed.N * parsed.r > MAX_MEMORY) return null;
  if (parsed.salt.length < 8 || parsed.hash.length < 16 || parsed.hash.length > 64) return null;
  return parsed;
}

/** Whether a stored value is a scrypt hash this module can check (any parameters within the bounds). */
export function isScryptHash(stored: string): boolean {
  return parseScrypt(stored) !== null;
}

/** Checks a secret against its stored scrypt hash, in constant time; anything else stored never verifies. */
export async function checkPassword(password: string, stored: string): Promise<boolean> {
  const s = parseScrypt(stored);
  if (!s) return false;
  const actual = await scrypt(password, s.salt, s.hash.length, { N: s.N, r: s.r, p: s.p, maxmem: maxmemFor(s.N, s.r) });
  return crypto.timingSafeEqual(actual, s.hash);
}

/** Whether a stored hash was made with `params` (else, after a successful check, store `hashPassword(password)` instead). */
export function isCurrentPasswordHash(stored: string, params: Readonly<ScryptParams> = PASSWORD_SCRYPT): boolean {
  const s = parseScrypt(stored);
  return s !== null && s.N === params.N && s.r === params.r && s.p === params.p && s.hash.length === params.keylen;
}
