import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { generateSecret, SecretVerifier, writeSecretFile } from '../edge/secret-file.ts';

/**
 * The control channel of a running `npm start` demo, so that `npm run demo -- cloud stop` in a second
 * terminal can stop and start the cloud while the edge agents and simulated devices keep running (the
 * README's outage story, issue 13 item 6).
 *
 * The demo listens on 127.0.0.1 (an ephemeral port) and writes where, with a fresh random token, to
 * `<DATA_DIR>/demo-control.json`, readable by its owner only (0600). Default deny: every request needs
 * that token (`Authorization: Bearer …`), so another local user, or a web page in a browser on this
 * machine, cannot drive the demo. The file is removed when the demo stops.
 */
export const DEMO_CONTROL_FILE = 'demo-control.json';

export type CloudState = 'running' | 'stopping' | 'stopped' | 'starting';

export interface DemoStatus {
  cloud: CloudState;
  /** The cloud's HTTP address (the same after a restart). */
  cloudHttp: string;
  /** Each hub's edge agent: its status URL (open, no token needed). */
  hubs: Record<string, { status: string }>;
}

/** What a `cloud stop` / `cloud start` did: `changed` is false when the cloud already was so. */
export interface CloudChange {
  cloud: CloudState;
  changed: boolean;
}

export class DemoControlError extends Error {
  constructor(
    message: string,
    /** HTTP status the control endpoint answers with. */
    readonly status = 409,
  ) {
    super(message);
  }
}

export interface DemoControlHandlers {
  status(): DemoStatus;
  stopCloud(): Promise<CloudChange>;
  startCloud(): Promise<CloudChange>;
}

interface ControlFile {
  pid: number;
  url: string;
  token: string;
}

export interface DemoControl {
  readonly url: string;
  readonly file: string;
  close(): Promise<void>;
}

/** Opens the control endpoint and writes the control file (after the demo is up). */
export async function openDemoControl(dataDir: string, handlers: DemoControlHandlers): Promise<DemoControl> {
  const token = generateSecret();
  const verifier = new SecretVerifier();
  verifier.set('demo', token);
  const routes: Record<string, () => Promise<unknown> | unknown> = {
    'GET /status': () => handlers.status(),
    'POST /cloud/stop': () => handlers.stopCloud(),
    'POST /cloud/start': () => handlers.startCloud(),
  };
  const server = http.createServer((req, res) => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(body));
    };
    req.resume();
    const presented = /^Bearer (\S+)$/i.exec(req.headers.authorization?.trim() ?? '')?.[1];
    if (!verifier.verify('demo', presented)) {
      send(401, { error: 'unauthorized', message: `the demo's control token is in ${path.join(dataDir, DEMO_CONTROL_FILE)}` });
      return;
    }
    const route = routes[`${req.method} ${req.url}`];
    if (!route) {
      send(404, { error: 'not_found', message: `no control route ${req.method} ${req.url}` });
      return;
    }
    Promise.resolve()
      .then(route)
      .then(
        (body) => send(200, body),
        (err: unknown) => send(err instanceof DemoControlError ? err.status : 500, { error: 'failed', message: err instanceof Error ? err.message : String(err) }),
      );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const file = path.join(dataDir, DEMO_CONTROL_FILE);
  writeSecretFile(file, `${JSON.stringify({ pid: process.pid, url, token } satisfies ControlFile)}\n`);
  let closed: Promise<void> | null = null;
  return {
    url,
    file,
    close() {
      closed ??= new Promise<void>((resolve) => {
        // Only our own file: a second demo on the same data directory may have written its own since.
        if (readControlFile(file)?.token === token) fs.rmSync(file, { force: true });
        server.closeAllConnections();
        server.close(() => resolve());
      });
      return closed;
    },
  };
}

function readControlFile(file: string): ControlFile | null {
  try {
    const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<ControlFile>;
    return typeof parsed.pid === 'number' && typeof parsed.url === 'string' && typeof parsed.token === 'string' ? (parsed as ControlFile) : null;
  } catch {
    return null;
  }
}

/** A client for the demo running on `dataDir`; throws DemoControlError with a sentence when there is none. */
export function findRunningDemo(dataDir: string): { request<T>(method: 'GET' | 'POST', route: string): Promise<T> } {
  const file = path.join(dataDir, DEMO_CONTROL_FILE);
  const notRunning = new DemoControlError(`no demo is running on ${dataDir} (start one with \`npm start\`; DATA_DIR must be the same in both terminals)`);
  const control = readControlFile(file);
  if (!control) throw notRunning;
  try {
    process.kill(control.pid, 0);
  } catch (err) {
    // EPERM: the process exists but belongs to someone else — not our demo either.
    if ((err as NodeJS.ErrnoException).code === 'ESRCH' || (err as NodeJS.ErrnoException).code === 'EPERM') throw notRunning;
  }
  return {
    async request<T>(method: 'GET' | 'POST', route: string): Promise<T> {
      let res: Response;
      try {
        res = await fetch(`${control.url}${route}`, { method, headers: { authorization: `Bearer ${control.token}` } });
      } catch {
        throw notRunning;
      }
      const body = (await res.json()) as T & { message?: string };
      if (!res.ok) throw new DemoControlError(body.message ?? `the demo answered ${res.status}`, res.status);
      return body;
    },
  };
}
