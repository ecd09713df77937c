import { ACCOUNT_MIGRATIONS } from '../accounts/account-store.ts';
import { ALARM_MIGRATIONS } from '../alarms/alarm-store.ts';
import { LEASE_MIGRATIONS } from '../cluster/leases.ts';
import { COMMAND_MIGRATIONS } from '../commands/command-store.ts';
import { HUB_CREDENTIAL_MIGRATIONS } from '../hubs/hub-credentials.ts';
import { DEAD_LETTER_MIGRATIONS } from '../ingest/dead-letter-store.ts';
import { SEEN_MESSAGE_MIGRATIONS } from '../ingest/seen-messages.ts';
import { MODE_PROPOSAL_MIGRATIONS } from '../modes/mode-proposals.ts';
import { MODE_MIGRATIONS } from '../modes/mode-store.ts';
import { ORDER_MIGRATIONS } from '../orders/order-store.ts';
import { schemaVersions, SchemaTooNewError, type Database, type FeatureMigrations } from './database.ts';

/**
 * Every feature's part of the operational database (issue 14), in one list: what `npm run db:migrate`
 * brings up to date, what start-up checks before anything is touched, and what `npm run db:copy`
 * moves from SQLite to PostgreSQL table by table. Each store still migrates its own feature when it
 * opens; this registry only gathers them.
 *
 * `tables` are the feature's tables, parents before children (the copy inserts in this order, so a
 * foreign key always finds its row). `cloud/db/schema.test.ts` checks they are exactly the tables the
 * steps create, with the same columns on both databases.
 */
export interface FeatureSchema {
  readonly feature: string;
  readonly steps: FeatureMigrations;
  readonly tables: readonly string[];
  /** Tables whose rows the steps themselves create (a fresh database has them): not counted as content, replaced by a copy. */
  readonly seeded?: readonly string[];
}

export const SCHEMA: readonly FeatureSchema[] = [
  { feature: 'hub-credentials', steps: HUB_CREDENTIAL_MIGRATIONS, tables: ['hub_credentials'] },
  { feature: 'accounts', steps: ACCOUNT_MIGRATIONS, tables: ['accounts', 'account_tokens', 'api_audit'] },
  { feature: 'dead_letters', steps: DEAD_LETTER_MIGRATIONS, tables: ['dead_letters', 'dead_letter_usage', 'dead_letter_totals'], seeded: ['dead_letter_totals'] },
  { feature: 'seen_messages', steps: SEEN_MESSAGE_MIGRATIONS, tables: ['seen_messages'] },
  { feature: 'modes', steps: MODE_MIGRATIONS, tables: ['mode_versions', 'mode_audit', 'mode_hub_acks', 'mode_conflicts'] },
  { feature: 'mode_proposals', steps: MODE_PROPOSAL_MIGRATIONS, tables: ['mode_proposals'] },
  { feature: 'command-results', steps: COMMAND_MIGRATIONS, tables: ['commands', 'command_results'] },
  { feature: 'alarms', steps: ALARM_MIGRATIONS, tables: ['alarms'] },
  { feature: 'orders', steps: ORDER_MIGRATIONS, tables: ['orders', 'order_audit', 'flight_log'] },
  // Cluster mode (issue 15): who holds which region's once-only work. Never copied in practice (a single
  // SQLite process holds its leases in memory, so its table stays empty).
  { feature: 'leases', steps: LEASE_MIGRATIONS, tables: ['leases'] },
];

/** Every table of the registry, in copy order. */
export const SCHEMA_TABLES: readonly string[] = SCHEMA.flatMap((f) => f.tables);

export interface FeatureVersion {
  feature: string;
  /** The version the database is at (0: never migrated). */
  found: number;
  /** The newest version this software knows on this database. */
  known: number;
}

/** Each feature's version in the database next to the newest this software knows, and features this software does not know. */
export async function schemaStatus(db: Database): Promise<{ features: FeatureVersion[]; unknown: { feature: string; found: number }[] }> {
  const versions = await schemaVersions(db);
  const features = SCHEMA.map((f) => ({ feature: f.feature, found: versions.get(f.feature) ?? 0, known: f.steps[db.dialect].length }));
  const known = new Set(SCHEMA.map((f) => f.feature));
  const unknown = [...versions].filter(([feature]) => !known.has(feature)).map(([feature, found]) => ({ feature, found }));
  return { features, unknown };
}

/**
 * Refuses a database some feature of which is at a newer version than this software knows (a newer
 * release migrated it), before anything is created or changed in it. Start-up calls this first.
 */
export async function assertSchemaNotNewer(db: Database): Promise<void> {
  for (const f of (await schemaStatus(db)).features) {
    if (f.found > f.known) throw new SchemaTooNewError(db.target, f.feature, f.found, f.known);
  }
}

/** Brings every feature to the newest version (after the newer-schema check); the versions before and after. */
export async function migrateAll(db: Database): Promise<{ feature: string; before: number; after: number }[]> {
  await assertSchemaNotNewer(db);
  const before = (await schemaStatus(db)).features;
  for (const f of SCHEMA) await db.migrate(f.feature, f.steps);
  const after = new Map((await schemaStatus(db)).features.map((f) => [f.feature, f.found]));
  return before.map((f) => ({ feature: f.feature, before: f.found, after: after.get(f.feature) ?? 0 }));
}
