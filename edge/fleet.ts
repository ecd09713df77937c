import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { HubId, RegionFile } from '../contract/index.ts';
import { createLogger } from '../shared/logger.ts';
import { startEdgeAgent, type EdgeAgent } from './agent.ts';
import { EdgeEnv, toEdgeConfig } from './config.ts';
import { FleetEnv } from './fleet-config.ts';

/**
 * `npm start` runs one edge agent per simulated hub. On a real hub `npm run edge` runs exactly one;
 * here they share one process to save memory on a laptop, but each has its own local broker port,
 * outbox, state and cloud connection — nothing is shared between them.
 * Configuration: see `FleetEnv` in fleet-config.ts.
 */

async function main(): Promise<void> {
  const parsed = FleetEnv.safeParse(process.env);
  if (!parsed.success) {
    process.stderr.write(`edge fleet: ${parsed.error.issues.map((i) => `${String(i.path[0])}: ${i.message}`).join('; ')}\n`);
    process.exit(2);
  }
  const env = parsed.data;
  const region = RegionFile.parse(JSON.parse(fs.readFileSync(env.REGION_FILE, 'utf8')));
  const credentials = z.record(HubId, z.object({ username: z.string(), password: z.string() })).parse(JSON.parse(fs.readFileSync(env.CREDENTIALS_FILE, 'utf8')));
  const logger = createLogger(env.LOG_LEVEL, 'edge');
  const agents: EdgeAgent[] = [];
  for (const [i, hub] of region.hubs.entries()) {
    const cred = credentials[hub.id];
    if (!cred) {
      logger.warn({ hub: hub.id }, 'no cloud credentials for this hub; no agent started');
      continue;
    }
    const config = toEdgeConfig(EdgeEnv.parse({
      HUB_ID: hub.id, REGION_ID: region.id, CLOUD_MQTT_URL: env.CLOUD_MQTT_URL, CLOUD_USERNAME: cred.username, CLOUD_PASSWORD: cred.password,
      LOCAL_BIND_HOST: env.EDGE_BIND_HOST, LOCAL_MQTT_PORT: env.EDGE_BASE_MQTT_PORT === 0 ? 0 : env.EDGE_BASE_MQTT_PORT + i,
      LOCAL_HTTP_BIND_HOST: env.EDGE_HTTP_BIND_HOST, LOCAL_HTTP_PORT: env.EDGE_BASE_HTTP_PORT === 0 ? 0 : env.EDGE_BASE_HTTP_PORT + i,
      // Each agent gives the devices of its hub in the region file their local logins.
      REGION_FILE: env.REGION_FILE, LOCAL_ALLOW_ANONYMOUS: env.EDGE_ALLOW_ANONYMOUS,
      EDGE_DATA_DIR: path.join(env.DATA_DIR, 'edge', hub.id), LOG_LEVEL: env.LOG_LEVEL,
      ...(env.UPLINK_BACKOFF_MAX_S === undefined ? {} : { UPLINK_BACKOFF_MAX_S: env.UPLINK_BACKOFF_MAX_S }),
    }));
    agents.push(await startEdgeAgent(config, logger));
  }
  // Where each hub's devices connect, and the file with their logins (for the simulated devices).
  const map = Object.fromEntries(agents.map((a) => [a.hubId, { mqtt: a.localMqttUrl, http: a.localHttpUrl, deviceLogins: a.deviceCredentialsFile, staffToken: a.staffTokenFile }]));
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    setTimeout(() => process.exit(1), 10_000).unref();
    void Promise.all(agents.map((a) => a.close())).then(() => logger.info('edge agents stopped'));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  process.stdout.write(`EDGE_FLEET_READY ${JSON.stringify(map)}\n`);
}

void main().catch((err) => {
  process.stderr.write(`edge fleet: failed to start: ${(err as Error).stack}\n`);
  process.exitCode = 1;
});
