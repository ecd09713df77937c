import fs from 'node:fs';
import path from 'node:path';
import { ConfigError, loadCloudConfig } from '../config.ts';
import { DatabaseUnreachableError, openDatabase, SchemaTooNewError } from './database.ts';
import { migrateAll, schemaStatus } from './schema.ts';

/**
 * `npm run db:migrate`: brings the configured operational database (DATABASE_URL, else
 * DATA_DIR/cloud.db) to the newest schema of this software and prints each feature's version before
 * and after; `-- --status` only prints. The cloud migrates at start-up as well; this is for operators
 * who migrate before they roll out, or who want to see where a database stands. Exits 1 with the
 * reason when the database cannot be reached or is newer than this software (nothing is changed then).
 */
async function main(argv: string[]): Promise<number> {
  const statusOnly = argv.includes('--status');
  const unknownArgs = argv.filter((a) => a !== '--status');
  if (unknownArgs.length > 0) {
    process.stderr.write(`unknown argument ${unknownArgs[0]}\nusage: npm run db:migrate [-- --status]\n`);
    return 2;
  }
  const config = loadCloudConfig();
  const file = path.join(config.dataDir, 'cloud.db');
  if (statusOnly && !config.database.url && !fs.existsSync(file)) {
    process.stdout.write(`database: sqlite ${file} does not exist yet (the cloud or npm run db:migrate creates it)\n`);
    return 0;
  }
  const db = await openDatabase({ url: config.database.url, dataDir: config.dataDir, synchronous: config.sqliteSync, maxConnections: 2 });
  try {
    process.stdout.write(`database: ${db.dialect} ${db.target}\n`);
    const { features, unknown } = await schemaStatus(db);
    const width = Math.max(...features.map((f) => f.feature.length));
    const tooNew = features.filter((f) => f.found > f.known);
    if (statusOnly || tooNew.length > 0) {
      for (const f of features) {
        const state = f.found > f.known ? 'NEWER than this software' : f.found === f.known ? 'up to date' : `${f.known - f.found} step(s) to apply`;
        process.stdout.write(`  ${f.feature.padEnd(width)}  ${f.found} of ${f.known}  ${state}\n`);
      }
      for (const u of unknown) process.stdout.write(`  ${u.feature.padEnd(width)}  ${u.found}  not known to this software\n`);
      if (tooNew.length > 0) {
        const f = tooNew[0]!;
        throw new SchemaTooNewError(db.target, f.feature, f.found, f.known);
      }
      return 0;
    }
    const result = await migrateAll(db);
    for (const r of result) {
      process.stdout.write(`  ${r.feature.padEnd(width)}  ${r.before} → ${r.after}${r.before === r.after ? '  (up to date)' : ''}\n`);
    }
    const applied = result.reduce((n, r) => n + r.after - r.before, 0);
    process.stdout.write(applied === 0 ? 'nothing to do: the schema is the newest this software knows\n' : `applied ${applied} step(s)\n`);
    return 0;
  } finally {
    await db.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (err: unknown) => {
    const known = err instanceof ConfigError || err instanceof DatabaseUnreachableError || err instanceof SchemaTooNewError;
    process.stderr.write(`db:migrate: ${known ? (err as Error).message : (err as Error).stack}\n`);
    process.exitCode = 1;
  },
);
