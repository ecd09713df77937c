import { z } from 'zod';

/**
 * Configuration of `edge/fleet.ts` (one edge agent per hub of a region in one process, as under
 * `npm start` and in docker-compose). Kept apart from fleet.ts, which starts the fleet when loaded,
 * so that tests and docs checks can read the schema.
 * Hub i listens on EDGE_BASE_MQTT_PORT + i (MQTT) and EDGE_BASE_HTTP_PORT + i (HTTP), i being the
 * hub's position in the region file.
 */
export const FleetEnv = z.object({
  CLOUD_MQTT_URL: z.string().min(1),
  REGION_FILE: z.string().default('config/regions/ishikawa-nomi.json'),
  CREDENTIALS_FILE: z.string().min(1),
  DATA_DIR: z.string().default('./data'),
  EDGE_BIND_HOST: z.string().min(1).default('127.0.0.1').describe("Address the agents' local brokers bind to (0.0.0.0 in a container)"),
  EDGE_HTTP_BIND_HOST: z.string().min(1).default('127.0.0.1').describe("Address the agents' HTTP endpoints for hub staff bind to (0.0.0.0 in a container)"),
  EDGE_BASE_MQTT_PORT: z.coerce.number().int().min(0).max(65_000).default(11_883),
  EDGE_BASE_HTTP_PORT: z.coerce.number().int().min(0).max(65_000).default(18_081),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  EDGE_ALLOW_ANONYMOUS: z.enum(['true', 'false']).default('false').describe("Benchmarks only: every agent also admits devices without a login (LOCAL_ALLOW_ANONYMOUS)"),
  UPLINK_BACKOFF_MAX_S: z.coerce.number().int().min(1).optional().describe("Every agent's reconnect back-off ceiling (default: the agent's, 30 s)"),
});

/** Every environment variable the fleet reads (docker-compose is checked against it). */
export const FLEET_ENV_KEYS: readonly string[] = Object.keys(FleetEnv.shape);
