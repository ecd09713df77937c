import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { pino } from 'pino';
import { inject } from 'vitest';
import type { Role } from '../../cloud/accounts/authorize.ts';
import { startCloud, type Cloud } from '../../cloud/cloud.ts';
import { CLOUD_NODE_FLAGS, loadCloudConfig } from '../../cloud/config.ts';
import { postgresBinDir } from './postgres.ts';

export type Credentials = Record<string, { username: string; password: string }>;

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const REGION_FILE = path.join(ROOT, 'config/regions/ishikawa-nomi.json');

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `chiiki-${prefix}-`));
}

export function readCredentials(dataDir: string): Credentials {
  return JSON.parse(fs.readFileSync(path.join(dataDir, 'credentials.json'), 'utf8')) as Credentials;
}

/** Environment for a test cloud: loopback only, free ports, demo credentials, quiet logs (and its PostgreSQL database when TEST_DATABASE=postgres). */
export function testCloudEnv(dataDir: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    BIND_HOST: '127.0.0.1', HTTP_PORT: '0', MQTT_PORT: '0', MQTT_WS_PORT: '0', DATA_DIR: dataDir, REGION_FILE,
    DEMO_CREDENTIALS: 'true', LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent', ...testDatabaseEnv(dataDir), ...extra,
  };
}

/**
 * `TEST_DATABASE=postgres` (`npm run test:postgres`, the system suite's second pass, issue 14): each
 * test cloud keeps its operational state in a PostgreSQL database of the run's cluster instead of
 * DATA_DIR/cloud.db — one database per data dir, so a cloud restarted on the same dir finds its state.
 * Created here with `createdb` (synchronous, like the rest of testCloudEnv).
 */
const postgresPerDataDir = new Map<string, string>();
function testDatabaseEnv(dataDir: string): Record<string, string> {
  if (process.env.TEST_DATABASE !== 'postgres') return {};
  let url = postgresPerDataDir.get(dataDir);
  if (!url) {
    const admin = new URL(inject('postgresUrl'));
    const name = `c_${crypto.createHash('sha256').update(dataDir).digest('hex').slice(0, 24)}`;
    try {
      execFileSync(path.join(postgresBinDir(), 'createdb'), ['-h', admin.hostname, '-p', admin.port, '-U', admin.username, name], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (err) {
      // Another worker's cloud on the same dir (a restart test handing the dir over) made it first.
      if (!String((err as { stderr?: Buffer }).stderr).includes('already exists')) throw err;
    }
    url = `postgres://${admin.username}@${admin.host}/${name}`;
    postgresPerDataDir.set(dataDir, url);
  }
  return { DATABASE_URL: url };
}

export interface TestCloud {
  cloud: Cloud;
  dataDir: string;
  credentials: Credentials;
  /** An admin API token (`Authorization: Bearer …`), created at start. */
  token: string;
  /** fetch against the cloud's HTTP server as the admin (`path` starts with /); `init.headers` add to or replace the defaults. */
  api(path: string, init?: RequestInit): Promise<Response>;
  /** A bearer token for an account (created with the role, hubs and — coordinators — regions when missing). */
  tokenFor(username: string, role?: Role, hubs?: string[], regions?: string[] | null): Promise<string>;
  stop(): Promise<void>;
}

/** fetch with a bearer token; JSON bodies given as objects get a content-type. */
export function authedFetch(baseUrl: string, token: string, path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (!headers.has('authorization')) headers.set('authorization', `Bearer ${token}`);
  return fetch(`${baseUrl}${path}`, { ...init, headers });
}

/** A cloud in this process (fast; `cloud.*` internals are reachable for assertions). */
export async function startTestCloud(extra: Record<string, string> = {}, dataDir = tempDir('cloud')): Promise<TestCloud> {
  const config = loadCloudConfig(testCloudEnv(dataDir, extra));
  const cloud = await startCloud(config, pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }));
  const tokenFor = async (username: string, role: Role = 'admin', hubs: string[] = [], regions: string[] | null = null) => {
    if (!(await cloud.accounts.get(username))) await cloud.accounts.create({ username, role, hubs, regions, password: `${username}-test-password` });
    return (await cloud.accounts.createApiToken(username, 'tests')).token;
  };
  const token = await tokenFor('test-admin');
  return {
    cloud, dataDir, credentials: fs.existsSync(path.join(dataDir, 'credentials.json')) ? readCredentials(dataDir) : {}, token, tokenFor,
    api: (p, init) => authedFetch(cloud.urls.http, token, p, init),
    async stop() {
      await cloud.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface CloudProcess {
  child: ChildProcess;
  urls: { http: string; mqtt: string; ws: string | null; mqtts: string | null };
  output: string[];
  /** Sends the signal and waits for the process to exit. */
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

/** The real cloud entry point (`cloud/main.ts`) as a child process — for kill -9 and restart tests. */
export async function spawnCloud(env: Record<string, string>): Promise<CloudProcess> {
  // CLOUD_NODE_ARGS lets a benchmark profile the cloud, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
  const nodeArgs = [...CLOUD_NODE_FLAGS, ...(process.env.CLOUD_NODE_ARGS ?? '').split(' ').filter(Boolean)];
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', path.join(ROOT, 'cloud/main.ts')], {
    cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  readline.createInterface({ input: child.stderr! }).on('line', (l) => output.push(l));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const urls = await new Promise<CloudProcess['urls']>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`cloud did not start in 30 s:\n${output.join('\n')}`)), 30_000);
    readline.createInterface({ input: child.stdout! }).on('line', (l) => {
      output.push(l);
      if (l.startsWith('CLOUD_READY ')) {
        clearTimeout(timer);
        resolve(JSON.parse(l.slice('CLOUD_READY '.length)));
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`cloud exited with ${code} before it was ready:\n${output.join('\n')}`));
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
