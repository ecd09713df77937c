import { ConfigError, loadCloudConfig } from './config.ts';
import { openOperationalDb } from './db/operational-db.ts';
import { createHubCredentialStore, generatePassword } from './hubs/hub-credentials.ts';
import { loadRegionFile } from './hubs/region-loader.ts';

/**
 * `npm run hub-credentials -- set <hubId>`: creates or replaces a hub's MQTT password and prints it
 * once (only its scrypt hash is stored). `remove <hubId>` revokes it. Uses DATA_DIR and REGION_FILE.
 * Run it while the cloud is running or not: SQLite's WAL lets both open the database.
 */
async function main(argv: string[]): Promise<number> {
  const [command, hubId] = argv;
  if ((command !== 'set' && command !== 'remove') || !hubId) {
    process.stderr.write('usage: npm run hub-credentials -- set <hubId> | remove <hubId>\n');
    return 2;
  }
  const config = loadCloudConfig();
  const region = loadRegionFile(config.regionFile);
  const db = openOperationalDb(config.dataDir, config.sqliteSync);
  try {
    const store = createHubCredentialStore(db);
    if (command === 'remove') {
      store.remove(hubId);
      process.stdout.write(`credentials of ${hubId} removed; its connections are refused from the next login\n`);
      return 0;
    }
    if (!region.hubs.some((h) => h.id === hubId)) {
      process.stderr.write(`warning: ${hubId} is not in the region file ${config.regionFile}; it will be listed as an unregistered hub\n`);
    }
    const password = generatePassword();
    await store.set(hubId, region.id, hubId, password);
    process.stdout.write(`${JSON.stringify({ hub: hubId, region: region.id, username: hubId, password })}\n`);
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
