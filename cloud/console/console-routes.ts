import fastifyStatic from '@fastify/static';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { IncomingHttpHeaders } from 'node:http';
import { z } from 'zod';
import type { RegionFile } from '../../contract/index.ts';
import { ApiError } from '../api/api-errors.ts';
import { RegionGeography } from '../hubs/region-geography.ts';
import type { Regions } from '../hubs/regions.ts';
import { alarmBody, type DisplayNameOf } from '../alarms/alarm-routes.ts';
import { regionsOf, type Account } from '../accounts/authorize.ts';
import type { AlarmChange, AlarmService } from '../alarms/alarm-service.ts';
import type { ZodApp } from '../api/app.ts';
import { errorResponses } from '../api/api-docs.ts';
import { openPlugin } from '../api/http-security.ts';
import type { ModeService } from '../modes/mode-service.ts';
import { LiveFeed } from './live-feed.ts';
import { windLimitsByHub } from '../alarms/alarm-rules.ts';

/**
 * The web consoles (issue 5): the hub staff console and the coordinator console are plain ES modules,
 * CSS and JSON message catalogues in `public/`, served as they are — `npm start` needs no build step,
 * and nothing is fetched from a CDN or a tile server (the network may be down in a disaster).
 *
 * `GET /api/v1/events` is the consoles' live feed (Server-Sent Events). It carries no data of its own:
 * each event is what the matching API route answers for the same session (hubs, one hub, orders, the
 * region's mode, proposals), obtained through `app.inject`, so whatever the accounts feature allows or
 * filters for that account applies to the feed too. One shared change feed (`live-feed.ts`) reads the
 * routes once a second per audience (accounts the API cannot tell apart) and fans the changes out;
 * alarms are pushed the moment they change (`AlarmService.onChange`). Streams are capped per session,
 * per account (over all its sessions and tokens, so one account cannot take every slot) and in total (429 beyond).
 */

export const PUBLIC_DIR = path.join(import.meta.dirname, 'public');
/** morphdom's ES module build: the consoles patch their DOM with it (public/lib/morph.js). */
const MORPHDOM = createRequire(import.meta.url).resolve('morphdom/dist/morphdom-esm.js');

export interface ConsoleDeps {
  /** The regions served (issue 14, item 3); one added while running is served at once. */
  regions: Regions;
  /** A region's base map (`<region>.geography.json` next to its file), or null when it has none. */
  geographyOf?: (region: string) => RegionGeography | null;
  alarms: AlarmService;
  /** Cluster mode: alarm changes made on other nodes (issue 15, cluster bus), pushed like this node's own. */
  remoteAlarms?: (fn: (change: AlarmChange) => void) => () => void;
  /** Cluster mode: another node's alarm pushes may have been lost; the feed's streams restart (consoles read the alarms again). */
  alarmLoss?: (fn: () => void) => () => void;
  modes: ModeService;
  /** Accounts' display names, for who acknowledged an alarm (the same as the alarm API answers). */
  displayNameOf?: DisplayNameOf;
  /** The account a session or API token belongs to now (null: ended); absent when the cloud runs without accounts. */
  sessionOf?: (token: string) => Promise<Account | null> | Account | null;
  /** Live-feed caps (EVENTS_MAX_STREAMS_PER_SESSION, EVENTS_MAX_STREAMS_PER_ACCOUNT, EVENTS_MAX_STREAMS); defaults 4, 16 and 200. */
  events?: { maxStreamsPerSession: number; maxStreamsPerAccount?: number; maxStreams: number };
  /** Poll period of the live feed; default 1000 ms. */
  pollMs?: number;
  /** Heartbeat comment period; default 15 s (keeps proxies from closing an idle stream). */
  heartbeatMs?: number;
  /** A live-feed client with more unsent bytes than this is disconnected; default 1 MiB. */
  maxBufferedBytes?: number;
}

/** What GET /api/v1/region answers for a region: its file as the consoles draw it. */
function regionBodyOf(region: RegionFile, hasBaseMap: boolean) {
  // The wind limit the console shows per hub is the one the alarm rules apply (strictest drone there,
  // else the region's, else the contract default): one rule, not a copy in the browser.
  const windLimits = windLimitsByHub(region);
  return {
    id: region.id, name: region.name,
    hubs: region.hubs.map((h) => ({
      id: h.id, kind: h.kind, name: h.name, location: h.location,
      windLimitMps: (windLimits.byHub.get(h.id) ?? windLimits.fallback).windMps,
      // Gusts have their own limit in the alarm rules; the staff console compares each reading with its own.
      gustLimitMps: (windLimits.byHub.get(h.id) ?? windLimits.fallback).gustMps,
      // Display names from the region file: the consoles show names, not ids (issue 13, item 5).
      drones: h.drones.map((d) => ({ id: d.id, name: d.name, windLimitMps: d.windLimitMps })),
      lockers: h.lockers.map((l) => ({ id: l.id, name: l.name, compartments: l.compartments })),
      sensors: h.sensors.map((id) => ({ id, name: h.sensorNames[id] })),
    })),
    landingSites: region.landingSites, noFlyZones: region.noFlyZones, reliefRoutes: region.reliefRoutes,
    // Their names, for the staff console's list of orders on a round (issue 12 (2)).
    groundRounds: region.groundRounds,
    // Where the region's base map is, or null when it has none (the consoles then ask for nothing).
    baseMap: hasBaseMap ? `/api/v1/region/geography?region=${encodeURIComponent(region.id)}` : null,
  };
}

const RegionQuery = z.object({
  region: z.string().max(64).optional().describe('The region\'s id; default: the only (or first) region the account may see'),
});

const RegionSummary = z.object({
  id: z.string(),
  name: z.object({ ja: z.string(), en: z.string() }),
  hubCount: z.number().int().describe('Hubs in the region file'),
});

export function consoleRoutes(deps: ConsoleDeps): (app: ZodApp) => void {
  const geographyOf = deps.geographyOf ?? (() => null);
  // Built once per region (the region files do not change while the cloud runs; a changed file needs a restart).
  const bodies = new Map<string, ReturnType<typeof regionBodyOf>>();
  const regionBody = (r: RegionFile) => {
    let b = bodies.get(r.id);
    if (!b) bodies.set(r.id, (b = regionBodyOf(r, geographyOf(r.id) !== null)));
    return b;
  };
  const lookup = { regionOfHub: (hub: string) => deps.regions.regionOfHub(hub)?.id };
  /** The regions the caller may see, in load order (every region without accounts). */
  const visible = (account: Account | null | undefined): RegionFile[] => {
    const allowed = regionsOf(account ?? null, lookup);
    return deps.regions.all().filter((r) => allowed === null || allowed.includes(r.id));
  };
  /** The region a console route is asked about: 404 unknown, 403 outside the account's regions. */
  const chosen = (account: Account | null | undefined, id: string | undefined): RegionFile => {
    const mine = visible(account);
    if (id === undefined) {
      const first = mine[0];
      if (!first) throw new ApiError('region_not_allowed', 'this account has no region');
      return first;
    }
    const region = deps.regions.get(id);
    if (!region) throw new ApiError('region_not_found', `no region ${id}`);
    if (!mine.includes(region)) throw new ApiError('region_not_allowed', `region "${id}" is not one of this account's regions`);
    return region;
  };

  return (app) => {
    const feed = new LiveFeed({
      fetch: async (url, headers) => {
        const r = await app.inject({ method: 'GET', url, headers });
        return { statusCode: r.statusCode, body: r.body };
      },
      sources: (detailHubs) => [
        { event: 'hubs', url: '/api/v1/hubs' },
        ...detailHubs.map((h) => ({ event: 'hub', url: `/api/v1/hubs/${encodeURIComponent(h)}`, detailHub: h })),
        { event: 'orders', url: '/api/v1/orders?limit=500' },
        // Every region's mode and open proposals (both bodies name their region); a region the audience
        // may not see answers 403 and is left out. A region added while running is in the next tick.
        ...deps.regions.all().flatMap((r) => {
          const regionPath = `/api/v1/regions/${encodeURIComponent(r.id)}`;
          return [
            { event: 'mode', url: `${regionPath}/mode` },
            { event: 'proposals', url: `${regionPath}/mode-proposals?state=open&limit=50` },
          ];
        }),
      ],
      regionOfHub: (hub) => deps.regions.regionOfHub(hub)?.id,
      sessionOf: deps.sessionOf,
      maxStreams: deps.events?.maxStreams ?? 200,
      maxStreamsPerSession: deps.events?.maxStreamsPerSession ?? 4,
      maxStreamsPerAccount: deps.events?.maxStreamsPerAccount ?? 16,
      maxBufferedBytes: deps.maxBufferedBytes, pollMs: deps.pollMs, heartbeatMs: deps.heartbeatMs,
      logger: app.log.child({ component: 'live-feed' }),
    });
    // Each alarm goes to the audiences that may see its hub and its region (issue 14: never another region's).
    const pushAlarm = (c: AlarmChange) => feed.size > 0 && feed.publishAlarm(c.alarm, JSON.stringify({ type: c.type, alarm: alarmBody(c.alarm, deps.displayNameOf) }));
    const unsubscribeLocalAlarms = deps.alarms.onChange(pushAlarm);
    const unsubscribeRemoteAlarms = deps.remoteAlarms?.(pushAlarm) ?? (() => {});
    const unsubscribeAlarmLoss = deps.alarmLoss?.(() => feed.restartStreams('cluster: alarm pushes may have been lost')) ?? (() => {});
    const unsubscribeAlarms = () => {
      unsubscribeLocalAlarms();
      unsubscribeRemoteAlarms();
      unsubscribeAlarmLoss();
    };
    const unsubscribeModes = deps.modes.onModeChange(() => feed.refreshSoon());
    // Open streams would keep the server from closing (a hijacked reply is not Fastify's to end).
    app.addHook('preClose', async () => {
      unsubscribeAlarms();
      unsubscribeModes();
      feed.close();
    });

    // The consoles' files, by @fastify/static (ETag and 304, no path outside public/): one route per
    // file found at start-up (wildcard: false), all open; security headers (the strict CSP) are helmet's.
    app.register(openPlugin(async (files) => {
      await files.register(fastifyStatic, {
        root: PUBLIC_DIR, prefix: '/console/', wildcard: false, index: false, schemaHide: true, cacheControl: false,
        setHeaders: (reply, file) => {
          reply.header('cache-control', 'no-cache');
          if (file.endsWith('.js')) reply.header('content-type', 'text/javascript; charset=utf-8');
        },
      });
      files.get('/', { schema: { hide: true } }, (_req, reply) => reply.sendFile('index.html'));
      // The one third-party module of the consoles, served from the installed package (no copy to drift).
      files.get('/console/vendor/morphdom.js', { schema: { hide: true } }, (_req, reply) => reply.sendFile(path.basename(MORPHDOM), path.dirname(MORPHDOM)));
      files.get('/console', { schema: { hide: true } }, (_req, reply) => reply.redirect('/'));
      // Paths without an extension are the consoles' own pages (deep links): the app routes them.
      files.get('/console/*', { schema: { hide: true } }, (req, reply) => {
        const rel = (req.params as { '*': string })['*'];
        return path.extname(rel) ? reply.code(404).send({ error: { code: 'not_found', message: `no file /console/${rel.slice(0, 200)}` } }) : reply.sendFile('index.html');
      });
    }));

    app.get('/api/v1/regions', {
      schema: {
        operationId: 'listRegions', tags: ['console'],
        summary: 'The regions the signed-in account may see: ids, names and hub counts',
        description: 'In the order the cloud loaded them (REGIONS_DIR: by file name). Admin and operator see every region; a coordinator its regions '
          + '(every region when it has none set); staff the regions of their hubs. A region added while the cloud runs is listed at once. '
          + 'The coordinator console offers a choice when there is more than one.',
        response: { 200: z.object({ regions: z.array(RegionSummary) }), ...errorResponses('unauthenticated') },
      },
    }, async (req) => ({
      regions: visible(req.account).map((r) => ({ id: r.id, name: r.name, hubCount: r.hubs.length })),
    }));

    app.get('/api/v1/region', {
      schema: {
        operationId: 'getRegion', tags: ['console'],
        summary: 'A region: hubs with positions and devices, landing sites (shelters, isolated settlements), no-fly zones, relief routes and ground rounds',
        description: 'From the region file; the coordinator console draws its map from it. `?region=` names the region (default: the account\'s only '
          + 'or first region, as GET /api/v1/regions lists them).',
        querystring: RegionQuery,
        response: { 200: z.record(z.string(), z.unknown()), ...errorResponses('region_not_found', 'region_not_allowed') },
      },
    }, async (req) => regionBody(chosen(req.account, req.query.region)));

    app.get('/api/v1/region/geography', {
      schema: {
        operationId: 'getRegionGeography', tags: ['console'],
        summary: 'The region\'s base map: sea, islands, lakes, coastline and rivers, clipped to the region, with its credit line',
        description: 'Built from a maintained open dataset (GSHHG) by `npm run geography:build` and shipped with the project as `<region>.geography.json` '
          + 'next to the region file — no tile server, nothing fetched at run time. Coordinates are [lon, lat].',
        querystring: RegionQuery,
        response: { 200: RegionGeography, ...errorResponses('geography_not_found', 'region_not_found', 'region_not_allowed') },
      },
    }, async (req, reply) => {
      const region = chosen(req.account, req.query.region);
      const geography = geographyOf(region.id);
      if (!geography) throw new ApiError('geography_not_found', `region ${region.id} has no base map`);
      // The file does not change while the cloud runs: the tablet may keep it for an hour.
      reply.header('cache-control', 'private, max-age=3600');
      return geography;
    });

    app.get('/api/v1/events', {
      schema: {
        operationId: 'openLiveFeed', tags: ['console'],
        summary: 'Live feed for the consoles (text/event-stream)',
        description: 'Server-Sent Events: `alarm` ({type, alarm}) on every alarm change; `hubs` (as GET /api/v1/hubs), `hub` (as GET /api/v1/hubs/:hubId, '
          + 'for each hub named in `hubs`), `orders` (as GET /api/v1/orders), `mode` (as GET /api/v1/regions/:regionId/mode) and `proposals` (open mode '
          + 'proposals), one of each per region the account may see, when they change, checked every second; `session` ({state: "expired"}) before the stream closes when the session ends; a comment '
          + 'every 15 s. Each event shows what the API shows the same session. At most EVENTS_MAX_STREAMS_PER_SESSION streams per session and '
          + 'EVENTS_MAX_STREAMS in all: beyond them 429 `too_many_streams`. A client that stops reading is disconnected.',
        querystring: z.object({ hubs: z.string().max(1000).optional().describe('Comma-separated hub ids to receive `hub` events for') }),
        response: {
          200: { description: 'The event stream; it stays open', content: { 'text/event-stream': { schema: z.string().describe('Server-Sent Events') } } },
          ...errorResponses('unauthenticated', 'too_many_streams'),
        },
      },
    }, async (req, reply) => {
      // Authenticated by the access hooks; with accounts in use a stream without an account is never served (default deny).
      const account = req.account ?? null;
      if (deps.sessionOf && account === null) return reply.code(401).send({ error: { code: 'unauthenticated', message: 'sign in first' } });
      const token = req.sessionToken ?? null;
      const sessionKey = token !== null ? `token:${token}` : account !== null ? `account:${account.username}` : `address:${req.ip}`;
      const refused = feed.refusal(sessionKey, account);
      if (refused !== null) return reply.code(429).header('retry-after', '10').send({ error: { code: 'too_many_streams', message: refused } });
      // The caller's credentials go with the requests made for the stream's audience (see live-feed.ts).
      const headers: IncomingHttpHeaders = {};
      if (req.headers.cookie) headers.cookie = req.headers.cookie;
      if (req.headers.authorization) headers.authorization = req.headers.authorization;
      reply.hijack();
      feed.open({
        sessionKey, token, account, headers,
        // Only hubs of a served region: made-up ids would each cost the shared feed a request per tick.
        requestedHubs: (req.query.hubs ?? '').split(',').map((h) => h.trim()).filter((h) => deps.regions.hub(h) !== undefined),
      }, reply.raw);
    });
  };
}
