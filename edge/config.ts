import path from 'node:path';
import { z } from 'zod';
import { DeviceId, HubId, RegionId } from '../contract/index.ts';

/**
 * Edge agent configuration, parsed once from the environment at start-up; a bad value stops the
 * agent with a message naming the variable. Nothing else in edge/ reads process.env.
 */
const port = (fallback: number) => z.coerce.number().int().min(0).max(65_535).default(fallback);
const int = (fallback: number, min = 1) => z.coerce.number().int().min(min).default(fallback);
const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v));

/** Default of HISTORICAL_AFTER_S (planning mode's simulated agents mark messages the same way). */
export const HISTORICAL_AFTER_S_DEFAULT = 30;

export const EdgeEnv = z.object({
  HUB_ID: HubId.describe('This hub'),
  REGION_ID: RegionId.describe('Its region'),
  CLOUD_MQTT_URL: z
    .string()
    .transform((s) => s.split(',').map((u) => u.trim()).filter(Boolean))
    .pipe(z.array(z.string().regex(/^(mqtts?|wss?):\/\/\S+$/, 'a broker URL such as mqtts://cloud.example.jp:8883 (or a comma-separated list of them)')).min(1, 'at least one broker URL'))
    .describe("The cloud broker, or a comma-separated list of a cluster's nodes (the agent moves to the next one when a connection is lost or refused)"),
  CLOUD_USERNAME: optionalString.describe('Hub login at the cloud (default: HUB_ID)'),
  CLOUD_PASSWORD: z.string().min(1).describe('Hub password at the cloud'),
  CLOUD_CA_FILE: optionalString.describe('PEM CA to trust for mqtts:// (default: the system CAs)'),
  LOCAL_BIND_HOST: z.string().min(1).default('0.0.0.0').describe("Address the local MQTT broker binds to (the hub's devices reach it over the hub LAN)"),
  LOCAL_MQTT_PORT: port(1883).describe("The hub's local MQTT broker for its devices"),
  LOCAL_MAX_CONNECTIONS: int(256).describe('Connections the local broker holds at once (logged in or not); more are closed at once'),
  LOCAL_MAX_CONNECTIONS_PER_ADDRESS: int(32).describe('Connections the local broker holds at once from one IP address; more are closed at once'),
  LOCAL_MAX_UNAUTHENTICATED: int(64).describe('Connections the local broker holds at once that have not logged in; a new one beyond it closes the one waiting longest, so sockets left idle cannot keep devices out'),
  LOCAL_HTTP_BIND_HOST: z.string().min(1).default('127.0.0.1').describe('Address the HTTP endpoint for hub staff binds to (loopback unless told otherwise)'),
  LOCAL_HTTP_PORT: port(8081).describe('Local HTTP endpoint for hub staff'),
  LOCAL_STAFF_TOKEN: optionalString
    .pipe(z.string().min(24, 'at least 24 characters').optional())
    .describe('Bearer token for the mutating HTTP routes (default: generated into <EDGE_DATA_DIR>/staff-token, mode 0600)'),
  LOCAL_ALLOW_ANONYMOUS: z
    .enum(['true', 'false'], { error: 'must be true or false' })
    .default('false')
    .transform((v) => v === 'true')
    .describe('Bench/dev only: also admit devices without a login (they may then publish as any device)'),
  EDGE_DEVICES: z
    .string()
    .transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean))
    .pipe(z.array(DeviceId))
    .optional()
    .describe('Comma-separated device ids of this hub that get a local login (added to those of REGION_FILE)'),
  REGION_FILE: optionalString.describe("Region file: this hub's devices in it get a local login"),
  EDGE_DATA_DIR: z.string().default('./data/edge').describe('Outbox database and state'),
  OUTBOX_MAX_MESSAGES: int(500_000, 100).describe('Bound of the outbox; see the drop policy in edge/README.md'),
  OUTBOX_MAX_BYTES: int(1_073_741_824, 65_536).describe('Bound of the waiting payload bytes in the outbox (same drop policy as the message bound)'),
  OUTBOX_THIN_THRESHOLD: int(50_000, 10).describe('Above this many waiting messages telemetry is thinned'),
  OUTBOX_THIN_INTERVAL_S: int(60).describe('Thinning keeps one telemetry reading per device per interval'),
  MAX_PAYLOAD_BYTES: int(65_536, 256).describe('Larger device payloads are refused locally, and so is one that would pass it once a replay adds "historical": true (18 bytes)'),
  UPLINK_WINDOW: int(200).describe('Messages in flight to the cloud at once'),
  UPLINK_BACKOFF_MAX_S: int(30).describe('Reconnect back-off ceiling (jittered exponential)'),
  CLOUD_HOME_RETURN_S: int(900, 0).describe("With several CLOUD_MQTT_URL: after this long on another node (plus up to as much again, random), move back to the hub's own node (the first it tries) once it accepts connections again, so hubs spread out again after a failover; 0: never"),
  HISTORICAL_AFTER_S: int(HISTORICAL_AFTER_S_DEFAULT).describe('Messages older than this when sent are marked historical'),
  STATUS_INTERVAL_S: int(10).describe('How often the hub status (outbox depth, oldest unsent age) is published'),
  COMMAND_TIMEOUT_S: int(10).describe('How long a device has to answer a command'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type EdgeConfig = ReturnType<typeof toEdgeConfig>;

export function toEdgeConfig(e: z.infer<typeof EdgeEnv>) {
  return {
    hubId: e.HUB_ID,
    region: e.REGION_ID,
    cloud: { urls: e.CLOUD_MQTT_URL, username: e.CLOUD_USERNAME ?? e.HUB_ID, password: e.CLOUD_PASSWORD, caFile: e.CLOUD_CA_FILE },
    local: {
      bindHost: e.LOCAL_BIND_HOST, mqttPort: e.LOCAL_MQTT_PORT, httpBindHost: e.LOCAL_HTTP_BIND_HOST, httpPort: e.LOCAL_HTTP_PORT,
      staffToken: e.LOCAL_STAFF_TOKEN, allowAnonymous: e.LOCAL_ALLOW_ANONYMOUS,
      maxConnections: e.LOCAL_MAX_CONNECTIONS, maxConnectionsPerAddress: e.LOCAL_MAX_CONNECTIONS_PER_ADDRESS, maxUnauthenticated: e.LOCAL_MAX_UNAUTHENTICATED,
    },
    devices: { ids: e.EDGE_DEVICES ?? [], regionFile: e.REGION_FILE },
    dataDir: path.resolve(e.EDGE_DATA_DIR),
    outbox: { maxMessages: e.OUTBOX_MAX_MESSAGES, maxBytes: e.OUTBOX_MAX_BYTES, thinThreshold: e.OUTBOX_THIN_THRESHOLD, thinIntervalMs: e.OUTBOX_THIN_INTERVAL_S * 1000 },
    maxPayloadBytes: e.MAX_PAYLOAD_BYTES,
    uplink: { window: e.UPLINK_WINDOW, backoffMaxMs: e.UPLINK_BACKOFF_MAX_S * 1000, homeReturnMs: e.CLOUD_HOME_RETURN_S * 1000, historicalAfterMs: e.HISTORICAL_AFTER_S * 1000, statusIntervalMs: e.STATUS_INTERVAL_S * 1000 },
    commandTimeoutMs: e.COMMAND_TIMEOUT_S * 1000,
    logLevel: e.LOG_LEVEL,
  };
}

export class EdgeConfigError extends Error {
  override readonly name = 'EdgeConfigError';
}

export function loadEdgeConfig(env: Record<string, string | undefined> = process.env): EdgeConfig {
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = EdgeEnv.safeParse(present);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => {
      const name = String(i.path[0] ?? '?');
      return `  ${name}=${JSON.stringify(env[name] ?? '')}: ${i.message}`;
    });
    throw new EdgeConfigError(`invalid edge agent configuration:\n${lines.join('\n')}`);
  }
  return toEdgeConfig(parsed.data);
}
