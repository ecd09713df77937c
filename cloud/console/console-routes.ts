import fs from 'node:fs';
import path from 'node:path';
import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyReply } from 'fastify';
import { z } from 'zod';
import type { RegionFile } from '../../contract/index.ts';
import { alarmBody } from '../alarms/alarm-routes.ts';
import type { AlarmChange, AlarmService } from '../alarms/alarm-service.ts';
import type { ZodApp } from '../api/app.ts';
import type { ModeService } from '../modes/mode-service.ts';

/**
 * The web consoles (issue 5): the hub staff console and the coordinator console are plain ES modules,
 * CSS and JSON message catalogues in `public/`, served as they are — `npm start` needs no build step,
 * and nothing is fetched from a CDN or a tile server (the network may be down in a disaster).
 *
 * `GET /api/v1/events` is the consoles' live feed (Server-Sent Events). It carries no data of its own:
 * each event is what the matching API route answers for the same session (hubs, one hub, orders, the
 * region's mode, proposals), obtained through `app.inject` with the caller's cookie, so whatever the
 * accounts feature allows or filters for that account applies to the feed too. Alarms are pushed the
 * moment they change (`AlarmService.onChange`); the rest is compared every second and sent on change.
 */

export const PUBLIC_DIR = path.join(import.meta.dirname, 'public');

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

/** No inline script or style, nothing from other origins: text from devices can never become code. */
export const CONSOLE_CSP = [
  "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:", "connect-src 'self'", "font-src 'self'",
  "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'", "form-action 'self'",
].join('; ');

const SECURITY_HEADERS = {
  'content-security-policy': CONSOLE_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

export interface ConsoleDeps {
  region: RegionFile;
  alarms: AlarmService;
  modes: ModeService;
  /** Poll period of the live feed; default 1000 ms. */
  pollMs?: number;
  /** Heartbeat comment period; default 15 s (keeps proxies from closing an idle stream). */
  heartbeatMs?: number;
}

interface Account { username: string; role: string; hubs: string[] }

/** Resolves a static path under `public/`, or null when it escapes it or does not exist. */
function publicFile(rel: string): string | null {
  const file = path.resolve(PUBLIC_DIR, `.${path.posix.normalize(`/${rel}`)}`);
  if (!file.startsWith(PUBLIC_DIR + path.sep)) return null;
  try {
    return fs.statSync(file).isFile() ? file : null;
  } catch {
    return null;
  }
}

function sendFile(reply: FastifyReply, file: string) {
  const type = CONTENT_TYPES[path.extname(file)] ?? 'application/octet-stream';
  return reply.headers({ ...SECURITY_HEADERS, 'content-type': type, 'cache-control': 'no-cache' }).send(fs.readFileSync(file));
}

export function consoleRoutes(deps: ConsoleDeps): (app: ZodApp) => void {
  const pollMs = deps.pollMs ?? 1000;
  const heartbeatMs = deps.heartbeatMs ?? 15_000;
  const regionBody = {
    id: deps.region.id, name: deps.region.name,
    hubs: deps.region.hubs.map((h) => ({
      id: h.id, kind: h.kind, name: h.name, location: h.location,
      drones: h.drones.map((d) => ({ id: d.id, windLimitMps: d.windLimitMps })),
      lockers: h.lockers.map((l) => ({ id: l.id, compartments: l.compartments })),
      sensors: h.sensors,
    })),
    landingSites: deps.region.landingSites, noFlyZones: deps.region.noFlyZones, reliefRoutes: deps.region.reliefRoutes,
  };

  return (app) => {
    // Open streams would keep the server from closing (a hijacked reply is not Fastify's to end).
    const streams = new Set<() => void>();
    app.addHook('preClose', async () => {
      for (const close of [...streams]) close();
    });

    app.get('/', { schema: { hide: true } }, async (_req, reply) => sendFile(reply, path.join(PUBLIC_DIR, 'index.html')));
    app.get('/console', { schema: { hide: true } }, async (_req, reply) => reply.redirect('/'));
    app.get('/console/*', { schema: { hide: true } }, async (req, reply) => {
      const rel = (req.params as { '*': string })['*'];
      const file = publicFile(rel);
      // Paths without an extension are the consoles' own pages (deep links): the app routes them.
      if (!file) return path.extname(rel) ? reply.code(404).send({ error: { code: 'not_found', message: `no file /console/${rel}` } }) : sendFile(reply, path.join(PUBLIC_DIR, 'index.html'));
      return sendFile(reply, file);
    });

    app.get('/api/v1/region', {
      schema: {
        summary: 'The region: hubs with positions and devices, landing sites (shelters, isolated settlements), no-fly zones and relief routes',
        description: 'From the region file; the coordinator console draws its map from it.',
        response: { 200: z.record(z.string(), z.unknown()) },
      },
    }, async () => regionBody);

    app.get('/api/v1/events', {
      schema: {
        summary: 'Live feed for the consoles (text/event-stream)',
        description: 'Server-Sent Events: `alarm` ({type, alarm}) on every alarm change; `hubs` (as GET /api/v1/hubs), `hub` (as GET /api/v1/hubs/:hubId, '
          + 'for each hub named in `hubs`), `orders` (as GET /api/v1/orders), `mode` (as GET /api/v1/regions/:regionId/mode) and `proposals` (open mode '
          + 'proposals) when they change, checked every second; a comment every 15 s. Each event shows what the API shows the same session.',
        querystring: z.object({ hubs: z.string().max(1000).optional().describe('Comma-separated hub ids to receive `hub` events for') }),
      },
    }, async (req, reply) => {
      // The caller's credentials (session cookie, or a bearer token for scripts) go with every inner request.
      const headers: IncomingHttpHeaders = {};
      if (req.headers.cookie) headers.cookie = req.headers.cookie;
      if (req.headers.authorization) headers.authorization = req.headers.authorization;
      const me = await app.inject({ method: 'GET', url: '/api/v1/auth/me', headers });
      let account: Account | null = null;
      if (me.statusCode === 200) account = (me.json() as { account: Account }).account;
      else if (me.statusCode !== 404) return reply.code(me.statusCode).headers({ 'content-type': 'application/json' }).send(me.body);
      // 404: no accounts feature in this build — the API is open, and so is the feed.
      const visible = (hub: string) => !account || account.role !== 'staff' || account.hubs.includes(hub);
      const detailHubs = (req.query.hubs ?? '').split(',').map((h) => h.trim()).filter((h) => h && visible(h)).slice(0, 32);

      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache, no-transform', connection: 'keep-alive', 'x-accel-buffering': 'no' });
      res.write('retry: 2000\n\n');
      let closed = false;
      const send = (event: string, data: string) => {
        if (!closed) res.write(`event: ${event}\ndata: ${data}\n\n`);
      };

      const unsubscribe = deps.alarms.onChange((c: AlarmChange) => {
        if (visible(c.alarm.hub)) send('alarm', JSON.stringify({ type: c.type, alarm: alarmBody(c.alarm) }));
      });

      const sources: { event: string; url: string }[] = [
        { event: 'hubs', url: '/api/v1/hubs' },
        ...detailHubs.map((h) => ({ event: 'hub', url: `/api/v1/hubs/${encodeURIComponent(h)}` })),
        { event: 'orders', url: '/api/v1/orders?limit=500' },
        { event: 'mode', url: `/api/v1/regions/${encodeURIComponent(deps.region.id)}/mode` },
        { event: 'proposals', url: `/api/v1/regions/${encodeURIComponent(deps.region.id)}/mode-proposals?state=open&limit=50` },
      ];
      const last = new Map<string, string>();
      let polling = false;
      const poll = async () => {
        if (polling || closed) return;
        polling = true;
        try {
          for (const s of sources) {
            const r = await app.inject({ method: 'GET', url: s.url, headers });
            if (closed) return;
            if (r.statusCode === 401) {
              send('session', JSON.stringify({ state: 'expired' }));
              return close();
            }
            if (r.statusCode !== 200) continue; // e.g. 403: this account may not see it
            if (last.get(s.url) === r.body) continue;
            last.set(s.url, r.body);
            send(s.event, r.body);
          }
        } catch (err) {
          req.log.warn({ err }, 'console live feed: polling failed');
        } finally {
          polling = false;
        }
      };
      const unsubscribeMode = deps.modes.onModeChange(() => void poll());
      const pollTimer = setInterval(() => void poll(), pollMs);
      const heartbeat = setInterval(() => {
        if (!closed) res.write(`: heartbeat ${new Date().toISOString()}\n\n`);
      }, heartbeatMs);
      function close() {
        if (closed) return;
        closed = true;
        clearInterval(pollTimer);
        clearInterval(heartbeat);
        unsubscribe();
        unsubscribeMode();
        streams.delete(close);
        res.end();
      }
      req.raw.on('close', close);
      streams.add(close);
      void poll();
    });
  };
}
