import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { z } from 'zod';
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
 *
 * Drill mode (issue 16, `npm run drill`) changes a hub's world through it, each route behind the same
 * token (401 without it), for a hub of the demo (404 otherwise), with a checked JSON body (400):
 *
 *   POST /hubs/:hub/weather  { windMps, gustMps?, rainMmPerH? } | { clear: true }   the hub's sensors read this weather
 *   POST /hubs/:hub/power    { state: "lost", backupDrainPctPerH } | { state: "restored" }   grid down, backup draining
 *   POST /hubs/:hub/link     { state: "cut" | "restored" }   the hub's edge agent loses its link to the cloud (store-and-forward)
 *   POST /hubs/:hub/fleet    { state: "out_of_service" | "in_service", drones? }   drones out of service (default: all of the hub's)
 */
export const DEMO_CONTROL_FILE = 'demo-control.json';

export type CloudState = 'running' | 'stopping' | 'stopped' | 'starting';

export interface DemoStatus {
  cloud: CloudState;
  /** The cloud's HTTP address (the same after a restart). */
  cloudHttp: string;
  /** Each hub's edge agent: its status URL (open, no token needed). */
  hubs: Record<string, { status: string }>;
  /** Simulated seconds per real second of the demo's devices (SIM_TIME_SCALE). */
  simTimeScale?: number;
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

const DeviceId = z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'a device id');

/** A change to one hub's world (drill mode): the body of `POST /hubs/:hub/<kind>`, with the kind. */
export const HubChangeBodies = {
  weather: z.union([
    z.object({ windMps: z.number().min(0).max(80), gustMps: z.number().min(0).max(100).optional(), rainMmPerH: z.number().min(0).max(300).optional() }).strict(),
    z.object({ clear: z.literal(true) }).strict(),
  ]),
  power: z.discriminatedUnion('state', [
    z.object({ state: z.literal('lost'), backupDrainPctPerH: z.number().min(0).max(100) }).strict(),
    z.object({ state: z.literal('restored') }).strict(),
  ]),
  link: z.object({ state: z.enum(['cut', 'restored']) }).strict(),
  fleet: z.object({ state: z.enum(['out_of_service', 'in_service']), drones: z.array(DeviceId).min(1).max(100).optional() }).strict(),
} as const;
export type HubChangeKind = keyof typeof HubChangeBodies;
export type HubChange = { [K in HubChangeKind]: { kind: K; body: z.infer<(typeof HubChangeBodies)[K]> } }[HubChangeKind];

/** The largest request body the control channel reads. */
const MAX_BODY_BYTES = 16 * 1024;

export interface DemoControlHandlers {
  status(): DemoStatus;
  stopCloud(): Promise<CloudChange>;
  startCloud(): Promise<CloudChange>;
  /** Drill mode: the demo's hubs, and a change to one of them (DemoControlError for a refusal). Without it the hub routes do not exist. */
  hubs?: { ids(): readonly string[]; change(hub: string, change: HubChange): Promise<unknown> };
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
    const presented = /^Bearer (\S+)$/i.exec(req.headers.authorization?.trim() ?? '')?.[1];
    if (!verifier.verify('demo', presented)) {
      req.resume();
      send(401, { error: 'unauthorized', message: `the demo's control token is in ${path.join(dataDir, DEMO_CONTROL_FILE)}` });
      return;
    }
    const reply = (work: () => Promise<unknown> | unknown) =>
      Promise.resolve()
        .then(work)
        .then(
          (body) => send(200, body),
          (err: unknown) => send(err instanceof DemoControlError ? err.status : 500, { error: 'failed', message: err instanceof Error ? err.message : String(err) }),
        );
    const route = routes[`${req.method} ${req.url}`];
    if (route) {
      req.resume();
      void reply(route);
      return;
    }
    const hubRoute = /^\/hubs\/([^/?#]+)\/(weather|power|link|fleet)$/.exec(req.url ?? '');
    if (!hubRoute || req.method !== 'POST' || !handlers.hubs) {
      req.resume();
      send(404, { error: 'not_found', message: `no control route ${req.method} ${req.url}` });
      return;
    }
    let hub: string;
    try {
      hub = decodeURIComponent(hubRoute[1]!);
    } catch {
      // A malformed escape (%E0%A4%A) throws URIError: inside this listener that would end the whole demo.
      req.resume();
      send(404, { error: 'unknown_hub', message: 'the hub id in the path is not valid percent-encoding' });
      return;
    }
    const kind = hubRoute[2] as HubChangeKind;
    if (!handlers.hubs.ids().includes(hub)) {
      req.resume();
      send(404, { error: 'unknown_hub', message: `the demo has no hub "${hub.slice(0, 64)}"` });
      return;
    }
    readBody(req).then(
      (text) => {
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          send(400, { error: 'bad_request', message: 'the body must be JSON' });
          return;
        }
        // A weather body either sets the weather or clears it: checked against the one it means, so the message says what is wrong.
        const schema = kind === 'weather' ? HubChangeBodies.weather.options[json !== null && typeof json === 'object' && 'clear' in json ? 1 : 0] : HubChangeBodies[kind];
        const parsed = schema.safeParse(json);
        if (!parsed.success) {
          send(400, { error: 'bad_request', message: parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ') });
          return;
        }
        void reply(() => handlers.hubs!.change(hub, { kind, body: parsed.data } as HubChange));
      },
      (err: Error) => {
        send(413, { error: 'too_large', message: err.message });
        req.destroy();
      },
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

/** The request body as text, at most MAX_BODY_BYTES (else rejects). */
function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        reject(new Error(`the body is larger than ${MAX_BODY_BYTES} bytes`));
        req.removeAllListeners('data');
        req.resume();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
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
export function findRunningDemo(dataDir: string): { request<T>(method: 'GET' | 'POST', route: string, body?: unknown): Promise<T> } {
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
    async request<T>(method: 'GET' | 'POST', route: string, body?: unknown): Promise<T> {
      let res: Response;
      try {
        res = await fetch(`${control.url}${route}`, {
          method,
          headers: { authorization: `Bearer ${control.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        });
      } catch {
        throw notRunning;
      }
      const answer = (await res.json()) as T & { message?: string };
      if (!res.ok) throw new DemoControlError(answer.message ?? `the demo answered ${res.status}`, res.status);
      return answer;
    },
  };
}
