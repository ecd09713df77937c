import { ConfigError, loadCloudConfig } from '../config.ts';
import { openOperationalDb } from '../db/operational-db.ts';
import { generatePassword } from '../hubs/hub-credentials.ts';
import { AccountStore } from './account-store.ts';

/**
 * `npm run accounts -- create-admin <username>`: creates the first admin (or resets an admin's
 * password) and prints the generated password once; only its scrypt hash is stored. Further accounts
 * are made by an admin through the API (POST /api/v1/accounts). Uses DATA_DIR; works while the cloud runs.
 */
async function main(argv: string[]): Promise<number> {
  const [command, username] = argv;
  if (command !== 'create-admin' || !username || !/^[a-z0-9][a-z0-9._-]{1,63}$/.test(username)) {
    process.stderr.write('usage: npm run accounts -- create-admin <username>   (lower-case letters, digits, . _ -)\n');
    return 2;
  }
  const config = loadCloudConfig();
  const db = openOperationalDb(config.dataDir, config.sqliteSync);
  try {
    const accounts = new AccountStore(db);
    const password = generatePassword();
    const existing = accounts.get(username);
    if (existing && existing.role !== 'admin') {
      process.stderr.write(`${username} exists with role ${existing.role}; choose another name\n`);
      return 1;
    }
    if (existing) await accounts.setPassword(username, password);
    else await accounts.create({ username, role: 'admin', displayName: username, password });
    process.stdout.write(`${JSON.stringify({ username, role: 'admin', password, note: existing ? 'password reset' : 'created; the password is shown only now' })}\n`);
    return 0;
  } finally {
    db.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (err) => {
    process.stderr.write(`${err instanceof ConfigError ? err.message : (err as Error).stack}\n`);
    process.exitCode = 1;
  },
);
