import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort } from './ports.ts';

/**
 * A throw-away PostgreSQL cluster for tests (issue 14): Debian's `postgresql` binaries, `initdb` in
 * a temp dir, a free loopback port, a Unix socket in the same dir. PostgreSQL refuses to run as root,
 * so as root the server runs as the `postgres` user the package creates (`setpriv`). Durability is
 * off (fsync) — these are tests, not benchmarks.
 */
export interface PostgresCluster {
  /** Superuser URL of the `postgres` database. */
  readonly url: string;
  readonly port: number;
  /** A new empty database; its URL. */
  createDatabase(name?: string): Promise<string>;
  /** Stops the server (SIGKILL when `crash`) and keeps the data dir, for a restart. */
  stop(o?: { crash?: boolean }): Promise<void>;
  /** Starts the stopped server again on the same port and data. */
  restart(): Promise<void>;
  /** Stops and deletes everything. */
  destroy(): Promise<void>;
}

export function postgresBinDir(): string {
  const base = '/usr/lib/postgresql';
  const versions = fs.existsSync(base) ? fs.readdirSync(base).filter((v) => fs.existsSync(path.join(base, v, 'bin', 'initdb'))) : [];
  versions.sort((a, b) => Number(b) - Number(a));
  if (versions.length === 0) throw new Error('PostgreSQL is not installed: apt-get install postgresql (the tests start their own cluster; .ci/run installs it)');
  return path.join(base, versions[0]!, 'bin');
}

/** As root: run as `postgres`. */
function asUser(cmd: string, args: string[]): [string, string[]] {
  if (process.getuid?.() !== 0) return [cmd, args];
  return ['setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', '--', cmd, ...args]];
}

export async function startPostgresCluster(o: { durable?: boolean } = {}): Promise<PostgresCluster> {
  const bin = postgresBinDir();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chiiki-pg-'));
  const data = path.join(dir, 'data');
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    fs.chownSync(dir, uid, gid);
  }
  const [c, a] = asUser(path.join(bin, 'initdb'), ['-D', data, '-U', 'chiiki', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync']);
  execFileSync(c, a, { stdio: ['ignore', 'ignore', 'pipe'] });
  const port = await freePort();
  let child: ChildProcess | null = null;
  let log = '';
  const start = async () => {
    const settings = ['-c', 'max_connections=300', '-c', 'shared_buffers=64MB'];
    if (!o.durable) settings.push('-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off');
    const [cmd, args] = asUser(path.join(bin, 'postgres'), ['-D', data, '-p', String(port), '-h', '127.0.0.1', '-k', dir, ...settings]);
    child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.on('data', (b: Buffer) => (log = (log + b.toString()).slice(-4000)));
    const exited = new Promise<never>((_, reject) => child!.once('exit', (code) => reject(new Error(`postgres exited (${code}):\n${log}`))));
    const deadline = Date.now() + 30_000;
    for (;;) {
      const client = new pg.Client({ host: '127.0.0.1', port, user: 'chiiki', database: 'postgres' });
      try {
        await Promise.race([client.connect(), exited]);
        await client.end();
        return;
      } catch (err) {
        await client.end().catch(() => {});
        if (Date.now() > deadline || String(err).includes('postgres exited')) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };
  const stop = async (s: { crash?: boolean } = {}) => {
    const ch = child as ChildProcess | null;
    if (!ch || ch.exitCode !== null || ch.signalCode !== null) return;
    const done = new Promise((r) => ch.once('exit', r));
    // SIGINT: fast shutdown (disconnects clients, then a clean stop).
    ch.kill(s.crash ? 'SIGKILL' : 'SIGINT');
    await done;
    child = null;
  };
  await start();
  const url = `postgres://chiiki@127.0.0.1:${port}/postgres`;
  let n = 0;
  return {
    url, port,
    createDatabase: async (name) => {
      const db = name ?? `t_${process.pid}_${Date.now().toString(36)}_${n++}`;
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE "${db}"`);
      } finally {
        await client.end();
      }
      return `postgres://chiiki@127.0.0.1:${port}/${db}`;
    },
    stop,
    restart: start,
    destroy: async () => {
      await stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
