import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** A fresh high-entropy secret: 32 random bytes, base64url (43 characters). */
export function generateSecret(): string {
  return crypto.randomBytes(32).toString('base64url');
}

/**
 * Writes a secret file readable by its owner only (0600): to a temporary file created with that
 * mode, then renamed over the old one, so no reader ever sees a half-written file and the secret
 * never exists with wider permissions.
 */
export function writeSecretFile(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
  fs.writeFileSync(tmp, text, { mode: 0o600, flag: 'wx' });
  fs.renameSync(tmp, file);
}

/** Narrows an existing secret file to 0600; true if it was readable by others before. */
export function restrictSecretFile(file: string): boolean {
  const mode = fs.statSync(file).mode & 0o777;
  if ((mode & 0o077) === 0) return false;
  fs.chmodSync(file, 0o600);
  return true;
}

/**
 * Verifies presented secrets against stored ones without keeping the secrets in memory: only an
 * HMAC-SHA256 of each under a random per-process key. The secrets are generated with 256 bits of
 * entropy (or required to be 24+ characters), so a deliberately slow hash (scrypt) would add no
 * protection against guessing — it would only make every device login cost CPU on the hub.
 * Comparison is in constant time.
 */
export class SecretVerifier {
  private readonly key = crypto.randomBytes(32);
  private readonly digests = new Map<string, Buffer>();

  set(name: string, secret: string): void {
    this.digests.set(name, this.digest(secret));
  }

  has(name: string): boolean {
    return this.digests.has(name);
  }

  get size(): number {
    return this.digests.size;
  }

  verify(name: string, presented: string | Buffer | undefined): boolean {
    const expected = this.digests.get(name);
    // An unknown name still costs one HMAC, so timing does not tell which names exist.
    const actual = this.digest(presented ?? '');
    return expected !== undefined && presented !== undefined && crypto.timingSafeEqual(expected, actual);
  }

  private digest(secret: string | Buffer): Buffer {
    return crypto.createHmac('sha256', this.key).update(secret).digest();
  }
}
