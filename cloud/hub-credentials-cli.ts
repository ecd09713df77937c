import { ConfigError, loadCloudConfig } from './config.ts';
import { openDatabase } from './db/database.ts';
import { generatePassword, openHubCredentialStore } from './hubs/hub-credentials.ts';
import { loadRegions } from './hubs/region-loader.ts';

/**
 * `npm run hub-credentials -- set <hubId>`: creates or replaces a hub's MQTT password and prints it
 * once (only its scrypt hash is stored). `remove <hubId>` revokes it. Uses DATABASE_URL (or DATA_DIR)
 * and REGIONS_DIR (or REGION_FILE) to find the hub's region. Run it while the cloud is running or not:
 * SQLite's WAL lets both open the database, and every login reads the credentials afresh.
 */
async function main(argv: string[]): Promise<number> {
  const [command, hubId] = argv;
  if ((command !== 'set' && command !== 'remove') || !hubId) {
    process.stderr.write('usage: npm run hub-credentials -- set <hubId> | remove <hubId>\n');
    return 2;
  }
  const config = loadCloudConfig();
  const regions = loadRegions(config).map((l) => l.region);
  const db = await openDatabase({ url: config.database.url, dataDir: config.dataDir, synchronous: config.sqliteSync, maxConnections: 2 });
  try {
    const store = await openHubCredentialStore(db);
    if (command === 'remove') {
      await store.remove(hubId);
      process.stdout.write(`credentials of ${hubId} removed; its connections are refused from the next login\n`);
      return 0;
    }
    const region = regions.find((r) => r.hubs.some((h) => h.id === hubId)) ?? regions[0]!;
    if (!region.hubs.some((h) => h.id === hubId)) {
      process.stderr.write(`warning: ${hubId} is in no region file (${config.regionsDir ?? config.regionFile}); it is given region ${region.id} and will be listed as an unregistered hub\n`);
    }
    const password = generatePassword();
    await store.set(hubId, region.id, hubId, password);
    process.stdout.write(`${JSON.stringify({ hub: hubId, region: region.id, username: hubId, password })}\n`);
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
