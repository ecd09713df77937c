import { z } from 'zod';
import { HubId } from '../contract/index.ts';

/**
 * The simulator's configuration, parsed once from the environment at start-up. Nothing else in
 * the simulator reads `process.env`. An empty variable counts as unset.
 */
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const BROKER_URL = /^(mqtts?|wss?|tcp|tls):\/\/[^\s]+$/;
const BrokerUrl = z.string().regex(BROKER_URL, 'must be a broker URL such as mqtt://127.0.0.1:1883');

/** `SIM_LOCAL_BROKERS` content: hub id → URL of that hub's local broker (its edge agent). */
export const LocalBrokerMap = z.record(HubId, BrokerUrl);
export type LocalBrokerMap = z.infer<typeof LocalBrokerMap>;

/** Inline JSON (it starts with `{`) is parsed here; anything else names a file that main.ts reads. */
export type LocalBrokersSource = { inline: LocalBrokerMap } | { file: string };

/** `SIM_LOCAL_LOGINS` as JSON: hub id → path of that hub's device-credentials.json (written by its edge agent). */
export const LocalLoginsMap = z.record(HubId, z.string().min(1));
/** Inline JSON map, or a directory with one folder per hub (`<dir>/<hub>/device-credentials.json`, the fleet's layout). */
export type LocalLoginsSource = { inline: Record<string, string> } | { dir: string };

/**
 * A setting given either as inline JSON (it starts with `{`), validated with `schema` and returned as
 * `{ inline }`, or as anything else (a path), which `other` wraps. Errors name the JSON problem.
 */
function inlineJsonOr<T, P>(schema: z.ZodType<T>, other: (text: string) => P) {
  return z.string().transform((s, ctx): { inline: T } | P => {
    const text = s.trim();
    if (!text.startsWith('{')) return other(text);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `not valid JSON (${(err as Error).message})` });
      return z.NEVER;
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      const i = parsed.error.issues[0]!;
      ctx.addIssue({ code: 'custom', message: `${i.path.join('.') || '(root)'}: ${i.message}` });
      return z.NEVER;
    }
    return { inline: parsed.data };
  });
}

const positive = (what: string) => z.coerce.number({ error: `${what} must be a number` }).positive(`${what} must be greater than 0`);

const SimulatorEnv = z.object({
  MQTT_URL: BrokerUrl.default('mqtt://127.0.0.1:1883'),
  REGION_FILE: z.string().min(1).default('config/regions/ishikawa-nomi.json'),
  DATA_DIR: z.string().min(1).default('./data'),
  CREDENTIALS_FILE: z.string().min(1).optional(),
  SIM_DRONE_HZ: positive('drone telemetry rate (Hz)').max(20, 'at most 20 Hz').default(1),
  SIM_LOCKER_INTERVAL_S: positive('locker interval (s)').default(10),
  SIM_SENSOR_INTERVAL_S: positive('sensor interval (s)').default(5),
  SIM_TIME_SCALE: positive('time scale').max(3600, 'at most 3600').default(1),
  SIM_SEED: z.coerce.number().int('must be an integer').min(0).max(2 ** 32 - 1).optional(),
  SIM_HUBS: z
    .string()
    .transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean))
    .pipe(z.array(HubId).min(1))
    .optional()
    .describe('Comma-separated hub ids to simulate (default: every hub of the region)'),
  SIM_LOCAL_BROKERS: inlineJsonOr(LocalBrokerMap, (file): LocalBrokersSource => ({ file }))
    .optional()
    .describe('Hub id → local broker URL, as JSON or a JSON file: each hub publishes to its edge agent'),
  SIM_LOCAL_LOGINS: inlineJsonOr(LocalLoginsMap, (dir): LocalLoginsSource => ({ dir }))
    .optional()
    .describe("With SIM_LOCAL_BROKERS: the edge agents' device logins — hub id → device-credentials.json as JSON, or a directory <dir>/<hub>/device-credentials.json"),
  LOG_LEVEL: z.enum(LOG_LEVELS).default('info'),
});

/** Every environment variable the simulator reads (the README and docker-compose are checked against it). */
export const SIMULATOR_ENV_KEYS: readonly string[] = Object.keys(SimulatorEnv.shape);

export interface SimulatorConfig {
  mqttUrl: string;
  regionFile: string;
  credentialsFile: string;
  rates: { droneHz: number; lockerIntervalS: number; sensorIntervalS: number };
  timeScale: number;
  seed: number | undefined;
  hubs: string[] | undefined;
  /** Set: every simulated hub publishes to its own local broker (behind an edge agent). */
  localBrokers: LocalBrokersSource | undefined;
  /** Where each hub's device logins are (otherwise devices connect anonymously). */
  localLogins: LocalLoginsSource | undefined;
  logLevel: (typeof LOG_LEVELS)[number];
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Parses the environment; throws a ConfigError naming each bad variable. */
export function parseSimulatorConfig(env: Record<string, string | undefined>): SimulatorConfig {
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v.trim() !== ''));
  const result = SimulatorEnv.safeParse(present);
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${String(i.path[0] ?? '(env)')}=${JSON.stringify(present[String(i.path[0])] ?? '')}: ${i.message}`);
    throw new ConfigError(`invalid simulator configuration:\n  ${problems.join('\n  ')}`);
  }
  const e = result.data;
  return {
    mqttUrl: e.MQTT_URL,
    regionFile: e.REGION_FILE,
    credentialsFile: e.CREDENTIALS_FILE ?? `${e.DATA_DIR.replace(/\/+$/, '')}/credentials.json`,
    rates: { droneHz: e.SIM_DRONE_HZ, lockerIntervalS: e.SIM_LOCKER_INTERVAL_S, sensorIntervalS: e.SIM_SENSOR_INTERVAL_S },
    timeScale: e.SIM_TIME_SCALE,
    seed: e.SIM_SEED,
    hubs: e.SIM_HUBS,
    localBrokers: e.SIM_LOCAL_BROKERS,
    localLogins: e.SIM_LOCAL_LOGINS,
    logLevel: e.LOG_LEVEL,
  };
}
