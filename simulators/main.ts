/**
 * `npm run simulate`: plays every device of a region file over MQTT, one connection per hub —
 * to the cloud broker with that hub's credentials, or (SIM_LOCAL_BROKERS) to each hub's local
 * broker, its edge agent, one connection per device with its login (SIM_LOCAL_LOGINS). Configuration: environment only (see simulator-config.ts, hub-targets.ts).
 */
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { z } from 'zod';
import { HubId, RegionFile } from '../contract/index.ts';
import { readDeviceLogins } from '../shared/device-logins.ts';
import { resolveHubTargets } from './hub-targets.ts';
import { DeviceControlError, startRegionSimulator, type DeviceControl, type HubCredentials, type RegionSimulator } from './region-simulator.ts';
import { ConfigError, LocalBrokerMap, parseSimulatorConfig } from './simulator-config.ts';

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
  const local = config.localBrokers;
  const targets = resolveHubTargets({
    region,
    hubs: config.hubs,
    localBrokers: local && ('file' in local ? readJsonFile('SIM_LOCAL_BROKERS', local.file, LocalBrokerMap) : local.inline),
    localLogins: config.localLogins,
    loadDeviceLogins: (file) => {
      try {
        return readDeviceLogins(file).logins;
      } catch (err) {
        throw new ConfigError(`SIM_LOCAL_LOGINS: ${(err as Error).message}`);
      }
    },
    credentialsFile: config.credentialsFile,
    loadCredentials: (): Record<string, HubCredentials> =>
      readJsonFile('CREDENTIALS_FILE', config.credentialsFile, CredentialsFile, ' — create it with `npm run hub-credentials`'),
  });
  for (const w of targets.warnings) logger.warn({ hubs: w.hubs }, w.msg);

  const sim = await startRegionSimulator({
    brokerUrl: config.mqttUrl,
    brokerUrlFor: targets.brokerUrlFor,
    publishStatus: targets.publishStatus,
    region,
    credentials: targets.credentials,
    deviceLogins: targets.deviceLogins,
    hubs: targets.hubs,
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

  listenForControl(sim);

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

/**
 * Drill mode (issue 16): started by `npm start` with an IPC channel, the simulator takes device
 * changes (weather, grid power, drones out of service) from the demo — and only from it: there is no
 * network listener, so nothing else on the machine can drive the devices. Each request
 * `{ id, control }` is answered `{ id, ok: true, state }` or `{ id, ok: false, code, message }`.
 */
function listenForControl(sim: RegionSimulator): void {
  if (!process.send) return;
  process.on('message', (msg: { id?: unknown; control?: DeviceControl }) => {
    if (typeof msg?.id !== 'number' || typeof msg.control !== 'object' || msg.control === null) return;
    const { id } = msg;
    try {
      process.send!({ id, ok: true, state: sim.control(msg.control) });
    } catch (err) {
      process.send!({ id, ok: false, code: err instanceof DeviceControlError ? err.code : 'failed', message: (err as Error).message });
    }
  });
  // The demo ending closes the channel; the SIGTERM it sends stops the simulator.
  process.channel?.unref();
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) {
    process.stderr.write(`simulator: ${err.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`simulator: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
