import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePorts } from './ports.ts';

/**
 * Starts a real InfluxDB 1.x (`influxd`, Debian's `influxdb` package) for system tests: loopback only,
 * free ports, a throw-away directory, no phone-home, no listeners besides HTTP and the RPC
 * (backup/restore) service, which 1.x always opens — so that one is pinned to a free loopback port too.
 */
export const INFLUXD_BIN = '/usr/bin/influxd';

export interface InfluxdOptions {
  /** `[http] auth-enabled`: requests need a user (create one with `createInfluxDatabase(…, { admin })`). */
  authEnabled?: boolean;
  /** How long to wait for `/ping` to answer 204. */
  startTimeoutMs?: number;
}

export interface Influxd {
  /** e.g. http://127.0.0.1:41234 */
  readonly url: string;
  readonly port: number;
  /** The temp dir holding meta/, data/, wal/ and influxd.toml. */
  readonly dir: string;
  /** Kills influxd (SIGTERM, then SIGKILL) and removes the temp dir. Safe to call twice. */
  stop(): Promise<void>;
  /** Simulates a crash: SIGKILL, keeping the data dir and ports for `restart()`. */
  kill(): Promise<void>;
  /** Starts influxd again on the same ports and data dir (after `kill()`); resolves once `/ping` answers. */
  restart(): Promise<void>;
}

export async function startInfluxd(options: InfluxdOptions = {}): Promise<Influxd> {
  if (!existsSync(INFLUXD_BIN)) {
    throw new Error("influxd not found: install Debian's influxdb package (see README)");
  }
  const startTimeoutMs = options.startTimeoutMs ?? 20_000;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'influxd-'));
  const [httpPort, rpcPort] = await freePorts(2);
  const configFile = path.join(dir, 'influxd.toml');
  await writeFile(configFile, configToml(dir, httpPort!, rpcPort!, options.authEnabled ?? false));
  const url = `http://127.0.0.1:${httpPort}`;

  let child: ChildProcess | null = null;
  let stopped = false;
  const killOnExit = (): void => {
    child?.kill('SIGKILL');
  };
  process.once('exit', killOnExit);

  const launch = async (): Promise<void> => {
    const proc = spawn(INFLUXD_BIN, ['-config', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = proc;
    let stderr = '';
    proc.stderr?.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-4_000);
    });
    const exited = new Promise<never>((_, reject) => {
      proc.once('exit', (code, signal) => reject(new Error(`influxd exited during start-up (code ${code}, signal ${signal}):\n${stderr}`)));
      proc.once('error', reject);
    });
    exited.catch(() => {}); // observed below; after start-up an exit is expected (kill/stop)
    await Promise.race([waitForPing(url, startTimeoutMs, () => stderr), exited]);
  };

  const terminate = async (signal: NodeJS.Signals): Promise<void> => {
    const proc = child;
    child = null;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
    await gone;
    clearTimeout(timer);
  };

  try {
    await launch();
  } catch (err) {
    await terminate('SIGKILL');
    process.removeListener('exit', killOnExit);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }

  return {
    url,
    port: httpPort!,
    dir,
    async stop() {
      if (stopped) return;
      stopped = true;
      await terminate('SIGTERM');
      process.removeListener('exit', killOnExit);
      await rm(dir, { recursive: true, force: true });
    },
    async kill() {
      await terminate('SIGKILL');
    },
    async restart() {
      if (stopped) throw new Error('influxd harness was stopped; start a new one');
      await terminate('SIGKILL');
      await launch();
    },
  };
}

export interface InfluxCredentials {
  username: string;
  password: string;
}

/**
 * Creates `database` (idempotent on 1.x). With `admin`, first creates that admin user — InfluxDB 1.x
 * allows this one unauthenticated statement while no user exists — and uses it for the rest.
 */
export async function createInfluxDatabase(url: string, database: string, options: { admin?: InfluxCredentials } = {}): Promise<void> {
  const { admin } = options;
  if (admin) {
    await influxAdminQuery(url, `CREATE USER ${quoteIdent(admin.username)} WITH PASSWORD ${quoteString(admin.password)} WITH ALL PRIVILEGES`, admin);
  }
  await influxAdminQuery(url, `CREATE DATABASE ${quoteIdent(database)}`, admin);
}

/** Runs one InfluxQL statement with POST /query (as 1.x requires for CREATE/DROP); throws on any error. */
export async function influxAdminQuery(url: string, q: string, credentials?: InfluxCredentials): Promise<unknown> {
  // 1.x reads u/p from the URL query string only, not from a form body.
  const params = credentials ? `?${new URLSearchParams({ u: credentials.username, p: credentials.password })}` : '';
  const res = await fetch(`${url}/query${params}`, { method: 'POST', body: new URLSearchParams({ q }), signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  if (!res.ok) throw new Error(`influxd ${res.status} for ${q}: ${text}`);
  const json = JSON.parse(text) as { results?: { error?: string }[]; error?: string };
  const error = json.error ?? json.results?.find((r) => r.error)?.error;
  if (error) throw new Error(`influxd refused ${q}: ${error}`);
  return json;
}

function quoteIdent(name: string): string {
  return `"${name.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

function quoteString(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

function configToml(dir: string, httpPort: number, rpcPort: number, authEnabled: boolean): string {
  const p = (sub: string) => JSON.stringify(path.join(dir, sub));
  return `# Written by test/support/influxd.ts
reporting-disabled = true
bind-address = "127.0.0.1:${rpcPort}"

[meta]
  dir = ${p('meta')}
  logging-enabled = false

[data]
  dir = ${p('data')}
  wal-dir = ${p('wal')}
  query-log-enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:${httpPort}"
  auth-enabled = ${authEnabled}
  log-enabled = false
  pprof-enabled = false

[logging]
  level = "warn"
  suppress-logo = true

[ifql]
  enabled = false

[continuous_queries]
  enabled = false

[[graphite]]
  enabled = false

[[collectd]]
  enabled = false

[[opentsdb]]
  enabled = false

[[udp]]
  enabled = false
`;
}

async function waitForPing(url: string, timeoutMs: number, stderr: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(`${url}/ping`, { signal: AbortSignal.timeout(1_000) });
      await res.arrayBuffer();
      if (res.status === 204) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`influxd did not answer ${url}/ping within ${timeoutMs} ms:\n${stderr()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export { freePorts };
