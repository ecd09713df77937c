import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { pino } from 'pino';
import { startEdgeAgent, type EdgeAgent } from '../../edge/agent.ts';
import { EdgeEnv, toEdgeConfig, type EdgeConfig } from '../../edge/config.ts';
import { DEVICE_LOGINS_FILE, readDeviceLogins, type DeviceLogin } from '../../shared/device-logins.ts';
import { REGION_FILE, ROOT } from './cloud-harness.ts';

/**
 * Environment for a test edge agent: loopback, quiet, fast status and back-off. The hub's devices
 * of the region file get local logins (read them with `deviceLogin`); anonymous logins stay off.
 */
export function testEdgeEnv(o: { hub: string; cloudUrl: string; password: string; dataDir: string; extra?: Record<string, string> }): Record<string, string> {
  return {
    HUB_ID: o.hub, REGION_ID: 'ishikawa-nomi', CLOUD_MQTT_URL: o.cloudUrl, CLOUD_PASSWORD: o.password, EDGE_DATA_DIR: o.dataDir,
    LOCAL_BIND_HOST: '127.0.0.1', LOCAL_MQTT_PORT: '0', LOCAL_HTTP_PORT: '0', UPLINK_BACKOFF_MAX_S: '1', STATUS_INTERVAL_S: '1',
    REGION_FILE, LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent', ...o.extra,
  };
}

/**
 * MQTT options for one device of an agent: its login from the agent's device-credentials.json and
 * a client id the agent accepts (`<device>` or `<device>.<suffix>`). `from`: the agent, or its data dir.
 */
export function deviceLogin(from: EdgeAgent | string, device: string, suffix?: string): DeviceLogin & { clientId: string } {
  const file = typeof from === 'string' ? path.join(from, DEVICE_LOGINS_FILE) : from.deviceCredentialsFile;
  const login = readDeviceLogins(file).logins[device];
  if (!login) throw new Error(`${file} has no login for device ${device}`);
  return { ...login, clientId: suffix ? `${device}.${suffix}` : device };
}

/** Every device login of each agent, keyed by hub — the simulator's `deviceLogins` option. */
export function deviceLoginsOf(agents: Iterable<EdgeAgent>): Record<string, Record<string, DeviceLogin>> {
  return Object.fromEntries([...agents].map((a) => [a.hubId, readDeviceLogins(a.deviceCredentialsFile).logins]));
}

/** The hub-staff token an agent generated (its data dir's staff-token file). */
export function staffToken(agent: EdgeAgent): string {
  if (!agent.staffTokenFile) throw new Error('this agent has LOCAL_STAFF_TOKEN configured');
  return fs.readFileSync(agent.staffTokenFile, 'utf8').trim();
}

/** An agent in this process; `adjust` may change the parsed configuration (test-only options such as the outbox's page cap). */
export async function startTestEdge(env: Record<string, string>, adjust: (c: EdgeConfig) => EdgeConfig = (c) => c): Promise<EdgeAgent> {
  return startEdgeAgent(adjust(toEdgeConfig(EdgeEnv.parse(env))), pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }));
}

export interface EdgeProcess {
  child: ChildProcess;
  urls: { mqtt: string; http: string };
  output: string[];
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

/** The real `edge/main.ts` as a child process — for SIGKILL tests and memory measurements. */
export async function spawnEdge(env: Record<string, string>): Promise<EdgeProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'edge/main.ts')], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  readline.createInterface({ input: child.stderr! }).on('line', (l) => output.push(l));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const urls = await new Promise<EdgeProcess['urls']>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`edge agent did not start in 30 s:\n${output.join('\n')}`)), 30_000);
    readline.createInterface({ input: child.stdout! }).on('line', (l) => {
      output.push(l);
      if (l.startsWith('EDGE_READY ')) {
        clearTimeout(timer);
        const r = JSON.parse(l.slice('EDGE_READY '.length)) as { mqtt: string; http: string };
        resolve({ mqtt: r.mqtt, http: r.http });
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`edge agent exited with ${code} before it was ready:\n${output.join('\n')}`));
    });
  });
  return {
    child, urls, output,
    async kill(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
