import { startCloud } from './cloud.ts';
import { ConfigError, isLoopback, loadCloudConfig } from './config.ts';
import { createLogger } from './logger.ts';

/** `npm run cloud`: the cloud process (broker + ingest + API). Graceful on SIGINT/SIGTERM. */
async function main(): Promise<void> {
  let config;
  try {
    config = loadCloudConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`cloud: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger(config.logLevel, 'cloud');
  let cloud;
  try {
    cloud = await startCloud(config, logger);
  } catch (err) {
    logger.fatal({ err }, `cloud failed to start: ${(err as Error).message}`);
    process.exitCode = 1;
    return;
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    const force = setTimeout(() => {
      logger.error('shutdown took longer than 20 s; exiting');
      process.exit(1);
    }, 20_000);
    force.unref();
    cloud.close().then(
      () => logger.info('stopped'),
      (err) => {
        logger.error({ err }, 'error while stopping');
        process.exitCode = 1;
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));

  // Only now, with the signal handlers in place: whoever reads the line may send SIGTERM at once, and
  // a signal that arrives before its handler is installed kills the process without a clean shutdown.
  const c = cloud.config;
  const reach = isLoopback(c.bindHost) ? 'this machine only' : 'other machines too';
  logger.info({ ...cloud.urls, docs: `${cloud.urls.http}/docs`, bindHost: c.bindHost, demoAccounts: c.demoAccounts }, `cloud ready; listening on ${c.bindHost} (${reach})`);
  if (c.exposedDemo) {
    logger.warn({ bindHost: c.bindHost }, 'DEMO ACCOUNTS WITH PUBLIC PASSWORDS ARE ON and the cloud listens beyond loopback: anyone who reaches it can sign in as admin. Set DEMO_ACCOUNTS=false for anything but a demo.');
  }
  // Machine-readable line for scripts/start.ts and tests that start this process.
  process.stdout.write(`CLOUD_READY ${JSON.stringify(cloud.urls)}\n`);
}

void main();
