import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { ConfigError, loadCloudConfig } from '../cloud/config.ts';

/**
 * `npm start`: the cloud on embedded defaults plus the simulated region, as two processes (the
 * simulator talks to the cloud over real MQTT with each hub's own credentials). Ctrl-C stops both.
 */
const env = { ...process.env, DEMO_CREDENTIALS: process.env.DEMO_CREDENTIALS ?? 'true' };
let config;
try {
  config = loadCloudConfig(env);
} catch (err) {
  process.stderr.write(`${err instanceof ConfigError ? err.message : String(err)}\n`);
  process.exit(2);
}

const children: ChildProcess[] = [];
let stopping = false;

function run(name: string, script: string, extraEnv: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', script], { env: { ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  child.on('exit', (code, signal) => {
    if (!stopping) {
      process.stderr.write(`${name} exited (${signal ?? code}); stopping the demo\n`);
      stop(1);
    }
  });
  return child;
}

function stop(code: number): void {
  if (stopping) return;
  stopping = true;
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  const timer = setTimeout(() => process.exit(code), 15_000);
  timer.unref();
  Promise.all(children.map((c) => (c.exitCode !== null ? Promise.resolve() : new Promise((r) => c.once('exit', r))))).then(() => process.exit(code));
}
process.on('SIGINT', () => stop(0));
process.on('SIGTERM', () => stop(0));

const cloud = run('cloud', 'cloud/main.ts', {});
const lines = readline.createInterface({ input: cloud.stdout! });
lines.on('line', (line) => {
  if (!line.startsWith('CLOUD_READY ')) {
    process.stdout.write(`${line}\n`);
    return;
  }
  const urls = JSON.parse(line.slice('CLOUD_READY '.length)) as { http: string; mqtt: string; ws: string | null; mqtts: string | null };
  const credentials = path.join(config.dataDir, 'credentials.json');
  const sim = run('simulator', 'simulators/main.ts', { MQTT_URL: urls.mqtt, CREDENTIALS_FILE: credentials, REGION_FILE: config.regionFile });
  sim.stdout!.pipe(process.stdout);
  process.stdout.write(
    [
      '',
      '  地域生活圏 drone logistics — demo is running',
      `  API        ${urls.http}/api/v1/hubs`,
      `  API docs   ${urls.http}/docs`,
      `  Metrics    ${urls.http}/metrics`,
      `  MQTT       ${urls.mqtt}${urls.ws ? `   (WebSocket ${urls.ws})` : ''}${urls.mqtts ? `   (TLS ${urls.mqtts})` : ''}`,
      `  Hub logins ${credentials}`,
      `  Data       ${config.dataDir} (${config.influx ? `telemetry → ${config.influx.url}` : 'telemetry in SQLite'})`,
      '  Ctrl-C stops everything.',
      '',
    ].join('\n') + '\n',
  );
});
