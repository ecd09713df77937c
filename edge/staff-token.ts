import fs from 'node:fs';
import path from 'node:path';
import { generateSecret, restrictSecretFile, SecretVerifier, writeSecretFile } from './secret-file.ts';

export const STAFF_TOKEN_FILE = 'staff-token';

/**
 * The hub-staff token for the agent's mutating HTTP routes [issue 11]: LOCAL_STAFF_TOKEN when set,
 * otherwise a generated one kept in `<EDGE_DATA_DIR>/staff-token` (mode 0600, stable across
 * restarts) — staff read it on the hub's machine. Presented as `Authorization: Bearer <token>`.
 */
export interface StaffToken {
  /** The file holding the generated token; null when LOCAL_STAFF_TOKEN is configured. */
  readonly file: string | null;
  /** Checks an `Authorization` header value, in constant time. */
  verifyHeader(authorization: string | undefined): boolean;
}

export function openStaffToken(dataDir: string, configured: string | undefined): StaffToken {
  let token = configured;
  let file: string | null = null;
  if (token === undefined) {
    file = path.join(dataDir, STAFF_TOKEN_FILE);
    if (fs.existsSync(file)) {
      restrictSecretFile(file);
      token = fs.readFileSync(file, 'utf8').trim();
    }
    if (!token) {
      token = generateSecret();
      writeSecretFile(file, `${token}\n`);
    }
  }
  const verifier = new SecretVerifier();
  verifier.set('staff', token);
  return {
    file,
    verifyHeader(authorization) {
      const m = /^Bearer ([^\s]+)$/i.exec(authorization?.trim() ?? '');
      return verifier.verify('staff', m?.[1]);
    },
  };
}
