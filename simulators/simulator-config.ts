import { z } from 'zod';
import { HubId } from '../contract/index.ts';

/**
 * The simulator's configuration, parsed once from the environment at start-up. Nothing else in
 * the simulator reads `process.env`. An empty variable counts as unset.
 */
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const positive = (what: string) => z.coerce.number({ error: `${what} must be a number` }).positive(`${what} must be greater than 0`);

const SimulatorEnv = z.object({
  MQTT_URL: z
    .string()
    .regex(/^(mqtts?|wss?|tcp|tls):\/\/[^\s]+$/, 'must be a broker URL such as mqtt://127.0.0.1:1883')
    .default('mqtt://127.0.0.1:1883'),
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
    logLevel: e.LOG_LEVEL,
  };
}
