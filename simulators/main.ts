/**
 * `npm run simulate`: plays every device of a region file against an MQTT broker, one connection
 * per hub with that hub's credentials. Configuration: environment only (see simulator-config.ts).
 */
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { z } from 'zod';
import { HubId, RegionFile } from '../contract/index.ts';
import { startRegionSimulator, type HubCredentials } from './region-simulator.ts';
import { ConfigError, parseSimulatorConfig } from './simulator-config.ts';

const STATS_EVERY_MS = 60_000;

const CredentialsFile = z.record(HubId, z.object({ username: z.string().min(1), password: z.string().min(1) }));

/** Reads and validates a JSON file named by an environment variable; errors name the variable. */
function readJsonFile<T>(variable: string, path: string, schema: z.ZodType<T>, hint = ''): T {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`${variable}=${path}: cannot read the file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})${hint}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${variable}=${path}: not valid JSON (${(err as Error).message})`);
  }
  const result = schema.safeParse(json);
  if (!result.success) {
    const issues = result.error.issues.slice(0, 5).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new ConfigError(`${variable}=${path}: invalid content\n  ${issues.join('\n  ')}`);
  }
  return result.data;
}

async function main(): Promise<void> {
  const config = parseSimulatorConfig(process.env);
  const logger = pino({ level: config.logLevel, name: 'simulator' });
  const region = readJsonFile('REGION_FILE', config.regionFile, RegionFile);
  const credentials: Record<string, HubCredentials> = readJsonFile(
    'CREDENTIALS_FILE',
    config.credentialsFile,
    CredentialsFile,
    ' — create it with `npm run hub-credentials`',
  );

  let hubs = config.hubs;
  if (hubs) {
    const unknown = hubs.filter((h) => !region.hubs.some((x) => x.id === h));
    if (unknown.length) throw new ConfigError(`SIM_HUBS: not in region ${region.id}: ${unknown.join(', ')}`);
    const noCreds = hubs.filter((h) => !credentials[h]);
    if (noCreds.length) throw new ConfigError(`CREDENTIALS_FILE=${config.credentialsFile}: no credentials for ${noCreds.join(', ')}`);
  } else {
    hubs = region.hubs.map((h) => h.id).filter((h) => credentials[h]);
    const missing = region.hubs.filter((h) => !credentials[h.id]).map((h) => h.id);
    if (hubs.length === 0) throw new ConfigError(`CREDENTIALS_FILE=${config.credentialsFile}: no credentials for any hub of region ${region.id}`);
    if (missing.length) logger.warn({ missing }, 'no credentials for some hubs; they are not simulated');
  }

  const sim = await startRegionSimulator({
    brokerUrl: config.mqttUrl,
    region,
    credentials,
    hubs,
    rates: config.rates,
    timeScale: config.timeScale,
    seed: config.seed,
    logger,
  });

  const statsTimer = setInterval(() => {
    const s = sim.stats();
    const hubStats = Object.values(s.byHub);
    logger.info(
      { published: s.published, acked: s.acked, skipped: s.skipped, connectedHubs: hubStats.filter((h) => h.connected).length, hubs: hubStats.length },
      'simulator stats',
    );
  }, STATS_EVERY_MS);

  let stopping = false;
  const shutdown = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    clearInterval(statsTimer);
    sim.stop().then(
      () => process.exit(0),
      (err: Error) => {
        logger.error({ err: err.message }, 'unclean stop');
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) {
    process.stderr.write(`simulator: ${err.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`simulator: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
