import { ConfigError, loadCloudConfig } from './config.ts';
import { openDatabase } from './db/database.ts';
import { generatePassword, openHubCredentialStore } from './hubs/hub-credentials.ts';
import { loadRegions } from './hubs/region-loader.ts';

/**
 * `npm run hub-credentials -- set <hubId> [--region <regionId>]`: creates or replaces a hub's MQTT
 * password (24 random characters) and prints it once; only its keyed hash is stored (HMAC-SHA-256,
 * hubs/hub-credentials.ts). `remove <hubId>` revokes it. `status [--list]` counts the stored secrets
 * by form — those still kept as scrypt hashes (stored before issue 17) are re-stored in the fast form
 * at each hub's next successful login; `--list` names them, and `set` on one issues a new secret
 * (then the hub needs it). Uses
 * DATABASE_URL (or DATA_DIR) and REGIONS_DIR (or REGION_FILE) to find the hub's region. Run it while
 * the cloud is running or not: SQLite's WAL lets both open the database, and every login reads the
 * credentials afresh.
 *
 * The credential's region is the region file's. A hub in no served region file is refused unless
 * `--region` names its region explicitly (issue 14 review, F5: it used to get the first region
 * silently, and a credential naming the wrong region is refused by the broker as `region_mismatch`
 * once the hub's region file is added). `--region` for a hub that a region file places elsewhere is refused.
 */
const USAGE = 'usage: npm run hub-credentials -- set <hubId> [--region <regionId>] | remove <hubId> | status [--list]\n';

async function main(argv: string[]): Promise<number> {
  const [command, hubId, ...rest] = argv;
  if (command === 'status') {
    if (argv.length > 2 || (hubId !== undefined && hubId !== '--list')) {
      process.stderr.write(USAGE);
      return 2;
    }
    return status(hubId === '--list');
  }
  const explicit = rest[0] === '--region' && /^[a-z0-9][a-z0-9-]{0,63}$/.test(rest[1] ?? '') ? rest[1] : undefined;
  if ((command !== 'set' && command !== 'remove') || !hubId || hubId.startsWith('-') || (rest.length > 0 && (command !== 'set' || explicit === undefined || rest.length !== 2))) {
    process.stderr.write(USAGE);
    return 2;
  }
  const config = loadCloudConfig();
  const regions = loadRegions(config).map((l) => l.region);
  const filed = regions.find((r) => r.hubs.some((h) => h.id === hubId));
  const where = config.regionsDir ?? config.regionFile;
  if (command === 'set') {
    if (filed && explicit !== undefined && explicit !== filed.id) {
      process.stderr.write(`refused: ${hubId} is a hub of region ${filed.id} (its region file in ${where}); a credential naming ${explicit} would be refused by the broker (region_mismatch). Leave out --region.\n`);
      return 2;
    }
    if (!filed && explicit === undefined) {
      process.stderr.write(`refused: ${hubId} is in no region file (${where}). Add it to its region's file first, or give its region explicitly `
        + `(--region <regionId>, one of: ${regions.map((r) => r.id).join(', ')}) to admit it as an unregistered hub of that region.\n`);
      return 2;
    }
  }
  const db = await openDatabase({ url: config.database.url, dataDir: config.dataDir, synchronous: config.sqliteSync, maxConnections: 2 });
  try {
    const store = await openHubCredentialStore(db);
    if (command === 'remove') {
      await store.remove(hubId);
      process.stdout.write(`credentials of ${hubId} removed; its connections are refused from the next login\n`);
      return 0;
    }
    const region = filed?.id ?? explicit!;
    if (!filed) {
      const served = regions.some((r) => r.id === region);
      process.stderr.write(served
        ? `warning: ${hubId} is in no region file (${where}); it is given region ${region} and will be listed as an unregistered hub\n`
        : `warning: region ${region} is not served (no region file in ${where}); the broker refuses ${hubId} until that region's file is added\n`);
    }
    const password = generatePassword();
    await store.set(hubId, region, hubId, password);
    process.stdout.write(`${JSON.stringify({ hub: hubId, region, username: hubId, password })}\n`);
    return 0;
  } finally {
    await db.close();
  }
}

/**
 * Prints `{"hubs","fast","scrypt","unreadable"}` (and `legacyHubs` with --list) on stdout; on stderr,
 * what an operator can do about the scrypt ones. A hub with an unreadable secret cannot log in.
 */
async function status(list: boolean): Promise<number> {
  const config = loadCloudConfig();
  const db = await openDatabase({ url: config.database.url, dataDir: config.dataDir, synchronous: config.sqliteSync, maxConnections: 2 });
  try {
    const store = await openHubCredentialStore(db);
    const forms = await store.forms();
    process.stdout.write(`${JSON.stringify(list ? { ...forms, legacyHubs: await store.legacyHubs() } : forms)}\n`);
    if (forms.scrypt > 0) {
      process.stderr.write(`${forms.scrypt} of ${forms.hubs} hub secrets are still scrypt hashes (stored before issue 17): each costs ~48 ms of CPU per login until `
        + 'the hub\'s next successful login stores it in the fast form. To move one now, `set <hubId>` issues a new secret (the hub must be given it).\n');
    }
    if (forms.unreadable > 0) process.stderr.write(`${forms.unreadable} hub secrets are in no known form: those hubs cannot log in until \`set <hubId>\` gives them a new one.\n`);
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
