import { createLogger } from '../shared/logger.ts';
import { startEdgeAgent } from './agent.ts';
import { EdgeConfigError, loadEdgeConfig } from './config.ts';

/** `npm run edge`: one hub's edge agent. Graceful on SIGINT/SIGTERM (the outbox is on disk either way). */
async function main(): Promise<void> {
  let config;
  try {
    config = loadEdgeConfig();
  } catch (err) {
    if (err instanceof EdgeConfigError) {
      process.stderr.write(`edge: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger(config.logLevel, 'edge');
  const agent = await startEdgeAgent(config, logger);
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    setTimeout(() => process.exit(1), 10_000).unref();
    agent.close().then(() => logger.info('stopped'), (err) => logger.error({ err }, 'error while stopping'));
  };
  // Handlers first, then the ready line: whoever reads it may signal us at once.
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  process.stdout.write(`EDGE_READY ${JSON.stringify({ hub: agent.hubId, mqtt: agent.localMqttUrl, http: agent.localHttpUrl })}\n`);
}

void main().catch((err) => {
  process.stderr.write(`edge: failed to start: ${(err as Error).stack}\n`);
  process.exitCode = 1;
});
