import { ConfigError, loadCloudConfig } from '../config.ts';
import { openDatabase } from '../db/database.ts';
import { generatePassword } from '../hubs/hub-credentials.ts';
import { loadRegions } from '../hubs/region-loader.ts';
import { openAccountStore } from './account-store.ts';

/**
 * `npm run accounts -- create-admin <username>`: creates the first admin (or resets an admin's
 * password) and prints the generated password once; only its scrypt hash is stored.
 * `npm run accounts -- set-regions <username> <region,region…|all>`: scopes a coordinator to regions
 * (issue 14, item 3; `all`: every region, what a coordinator from before regions existed has).
 * Further accounts are made by an admin through the API (POST /api/v1/accounts, which takes `regions`
 * too). Uses DATABASE_URL (or DATA_DIR); works while the cloud runs.
 */
const USAGE = 'usage: npm run accounts -- create-admin <username>   (lower-case letters, digits, . _ -)\n'
  + '       npm run accounts -- set-regions <username> <region,region…|all>\n';
const USERNAME = /^[a-z0-9][a-z0-9._-]{1,63}$/;

async function main(argv: string[]): Promise<number> {
  const [command, username, regionList] = argv;
  const valid = username !== undefined && USERNAME.test(username)
    && ((command === 'create-admin' && regionList === undefined) || (command === 'set-regions' && regionList !== undefined && regionList !== ''));
  if (!valid) {
    process.stderr.write(USAGE);
    return 2;
  }
  const config = loadCloudConfig();
  const db = await openDatabase({ url: config.database.url, dataDir: config.dataDir, synchronous: config.sqliteSync, maxConnections: 2 });
  try {
    const accounts = await openAccountStore(db);
    const existing = await accounts.get(username);
    if (command === 'set-regions') {
      if (!existing || existing.role !== 'coordinator') {
        process.stderr.write(`${username} is ${existing ? `a ${existing.role} account` : 'not an account'}; only coordinators are scoped to regions (admin and operator see every region, staff their hubs' regions)\n`);
        return 1;
      }
      const regions = regionList === 'all' ? null : regionList!.split(',').map((r) => r.trim()).filter(Boolean);
      // A typo would lock the coordinator out of its region: only regions this cloud serves.
      const served = new Set(loadRegions(config).map((l) => l.region.id));
      const unknown = (regions ?? []).filter((r) => !served.has(r));
      if (unknown.length > 0 || regions?.length === 0) {
        process.stderr.write(`not regions of this cloud: ${unknown.join(', ') || '(none given)'}; served: ${[...served].join(', ')}\n`);
        return 1;
      }
      const account = await accounts.update(username, { regions });
      process.stdout.write(`${JSON.stringify({ username, role: account!.role, regions: account!.regions })}\n`);
      return 0;
    }
    const password = generatePassword();
    if (existing && existing.role !== 'admin') {
      process.stderr.write(`${username} exists with role ${existing.role}; choose another name\n`);
      return 1;
    }
    if (existing) await accounts.setPassword(username, password);
    else await accounts.create({ username, role: 'admin', displayName: username, password });
    process.stdout.write(`${JSON.stringify({ username, role: 'admin', password, note: existing ? 'password reset' : 'created; the password is shown only now' })}\n`);
    return 0;
  } finally {
    await db.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (err) => {
    process.stderr.write(`${err instanceof ConfigError ? err.message : (err as Error).stack}\n`);
    process.exitCode = 1;
  },
);
