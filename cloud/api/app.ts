import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import {
  hasZodFastifySchemaValidationErrors,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import { z } from 'zod';
import { Command, CommandName, DeviceId, HubId, MessageId, Mode, ModeAck, printable } from '../../contract/index.ts';
import { CommandError, type CommandService, type CommandView } from '../commands/command-service.ts';
import { COMMAND_STATES } from '../commands/command-store.ts';
import { SqlDataError } from '../db/sql.ts';
import { REJECTION_REASONS } from '../ingest/classify.ts';
import type { DeadLetterStore } from '../ingest/dead-letter-store.ts';
import type { DeviceState, HubState, LiveState } from '../live/live-state.ts';
import type { Logger } from '../logger.ts';
import type { CloudMetrics } from '../metrics.ts';
import { NUMERIC_FIELDS } from '../telemetry/points.ts';
import { TelemetryStoreError, type Measurement, type TelemetryStore } from '../telemetry/telemetry-store.ts';
import { hubScope, requireInScope } from '../accounts/access-hooks.ts';
import { regionsOf } from '../accounts/authorize.ts';
import { documentObject, documentRoute, errorResponses, SECURITY_SCHEMES, TAGS } from './api-docs.ts';
import { API_ERRORS, ApiError, type ApiErrorCode } from './api-errors.ts';
import { openPlugin, registerHttpSecurity } from './http-security.ts';

/** Cluster mode (issue 15): this node's id, whether its Redis connections are up, the nodes it sees alive. */
export interface ClusterHealth {
  nodeId: string;
  redisConnected: boolean;
  liveNodes: number;
}

const ClusterHealthBody = z.object({ nodeId: z.string(), redisConnected: z.boolean(), liveNodes: z.number().int() })
  .describe('Cluster mode only. A node that lost Redis stays 200: it still stores what its hubs send (PostgreSQL, telemetry store) and serves them; '
    + 'every node loses Redis together in the usual outage, and taking all of them out of the load balancer would disconnect every hub');

export interface AppDeps {
  live: LiveState;
  store: TelemetryStore;
  deadLetters: DeadLetterStore;
  commands: CommandService;
  metrics: CloudMetrics;
  /** Cluster mode: the whole deployment's figures for /metrics (issue 15); absent: this process's registry. */
  metricsText?: () => Promise<string>;
  logger: Logger;
  /** `operationalHealthy`: the group commits' operational transactions succeed (absent: not tracked). */
  health: () => { storeHealthy: boolean; operationalHealthy?: boolean; ingestPending: number; cluster?: ClusterHealth };
  now?: () => number;
  /**
   * Feature route sets (orders, alarms, modes, …), each in its feature's folder, registered after the
   * core routes with the same validator, error handler and OpenAPI docs.
   */
  features?: ((app: ZodApp) => Promise<void> | void)[];
  /**
   * Access control (cloud/accounts): request hooks installed before any route. Without it the API is
   * open — only for tests that exercise routes in isolation; the cloud always passes it.
   */
  access?: (app: ZodApp) => void;
  /** HTTP hardening (cloud/api/http-security.ts); defaults: no proxy trusted, no other origins. */
  http?: {
    /** fastify `trustProxy`: false, true, a hop count, or the proxies' addresses/CIDRs (comma-separated). */
    trustProxy?: boolean | number | string;
    allowedOrigins?: readonly string[];
  };
}

/** One route as fastify registered it (HEAD routes fastify adds for GET included). */
export interface RegisteredRoute {
  method: string;
  url: string;
  /** Declared open (`config: { public: true }`): no session needed. */
  public: boolean;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Every route registered, as fastify's onRoute hook saw it — for the default-deny tests. */
    registeredRoutes: readonly RegisteredRoute[];
  }
}

/** The Fastify instance with the zod type provider, as feature route sets receive it. */
export type ZodApp = FastifyInstance<Server, IncomingMessage, ServerResponse, FastifyBaseLogger, ZodTypeProvider>;

const Link = z.object({
  online: z.boolean(),
  connections: z.number().int(),
  lastSeen: z.string().nullable().describe('ISO 8601; last message or (dis)connection'),
  since: z.string().nullable().describe('ISO 8601; when online/offline last changed'),
  outboxDepth: z.number().int().nullable().describe('Unsent messages waiting at the hub, as last reported (null: never reported)'),
  oldestUnsentAgeS: z.number().nullable().describe('Age of the oldest unsent message at the hub when it reported, seconds'),
  outboxReportedAt: z.string().nullable().describe('ISO 8601 (hub clock); when the hub reported outboxDepth and oldestUnsentAgeS'),
  agent: z.string().nullable(),
});

const HubModeBody = z
  .object({
    mode: Mode,
    version: ModeAck.shape.version,
    source: ModeAck.shape.source,
    reason: z.string().nullable(),
    at: z.string().describe('ISO 8601 (hub clock); when the hub applied the mode'),
  })
  .nullable()
  .describe('The mode the hub last acknowledged (hub.mode-ack, newest wins); null until it reports one');

const HubSummary = z.object({
  id: z.string(),
  region: z.string(),
  kind: z.string().describe('community-hall | roadside-station | unknown (has credentials, not in the region file)'),
  name: z.object({ ja: z.string(), en: z.string() }),
  location: z.object({ lat: z.number(), lon: z.number() }),
  registered: z.boolean(),
  link: Link,
  mode: HubModeBody,
  devices: z.object({ drone: z.number().int(), locker: z.number().int(), sensor: z.number().int() }),
});

const DeviceLive = z.object({
  device: z.string(),
  kind: z.enum(['drone', 'locker', 'sensor']),
  registered: z.boolean(),
  lastReceivedAt: z.string().nullable(),
  telemetry: z.record(z.string(), z.unknown()).nullable().describe('Latest telemetry message (contract payload), newest device timestamp wins'),
  lastEvent: z.record(z.string(), z.unknown()).nullable(),
});

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

function linkOf(h: HubState) {
  const o = h.link.outbox;
  return {
    online: h.link.online, connections: h.link.connections, lastSeen: iso(h.link.lastSeen), since: iso(h.link.since),
    outboxDepth: o?.depth ?? null, oldestUnsentAgeS: o?.oldestUnsentAgeS ?? null, outboxReportedAt: iso(o?.reportedAt ?? null),
    agent: h.link.status?.agent ?? null,
  };
}

function modeOf(h: HubState) {
  const m = h.mode;
  return m ? { mode: m.mode, version: m.version, source: m.source, reason: m.reason, at: new Date(m.ts).toISOString() } : null;
}

function summary(h: HubState) {
  const devices = { drone: 0, locker: 0, sensor: 0 };
  for (const d of h.devices.values()) devices[d.kind]++;
  return { id: h.id, region: h.region, kind: h.kind, name: h.name, location: h.location, registered: h.registered, link: linkOf(h), mode: modeOf(h), devices };
}

const CommandBody = z.object({
  id: z.string(),
  hub: z.string(),
  region: z.string(),
  device: z.string(),
  kind: z.enum(['drone', 'locker', 'sensor']),
  command: CommandName,
  args: Command.shape.args,
  issuedAt: z.string(),
  expiresAt: z.string().describe('ISO 8601; the hub does not execute the command after this'),
  state: z.enum(COMMAND_STATES).describe('pending until the hub acknowledges; a pending command past expiresAt shows as expired'),
  detail: z.string().nullable().describe('From the hub\'s acknowledgement'),
  ackedAt: z.string().nullable().describe('ISO 8601 (hub clock); when the hub produced the result'),
});

function commandBody(c: CommandView) {
  return { ...c, issuedAt: iso(c.issuedAt)!, expiresAt: iso(c.expiresAt)!, ackedAt: iso(c.ackedAt) };
}

function deviceLive(d: DeviceState) {
  return {
    device: d.device, kind: d.kind, registered: d.registered, lastReceivedAt: iso(d.lastReceivedAt),
    telemetry: d.telemetry as Record<string, unknown> | null, lastEvent: d.lastEvent as Record<string, unknown> | null,
  };
}

const MEASUREMENT_OF_KIND: Record<DeviceState['kind'], Measurement> = { drone: 'drone', locker: 'locker', sensor: 'sensor' };

/** "300" (seconds), "30s", "5m", "1h", "1d" → milliseconds. */
const Duration = z
  .string()
  .regex(/^\d+(?:ms|s|m|h|d)?$/, 'a duration such as 30s, 5m, 1h or a number of seconds')
  .transform((v) => {
    const m = /^(\d+)(ms|s|m|h|d)?$/.exec(v)!;
    const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h' | 'd'];
    return Number(m[1]) * unit;
  })
  .pipe(z.number().int().min(1000, 'at least 1s'));

/** The last millisecond of year 9999: times up to it print as four-digit ISO 8601 years. */
const LAST_INSTANT = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
/**
 * ISO 8601 or epoch milliseconds, from 1970 to the end of year 9999. Unbounded, any digits passed and
 * a time past what a JavaScript Date holds (±8.64e15 ms) failed as a 500 when the answer printed it.
 */
const Instant = z
  .string()
  .transform((v, ctx) => {
    const n = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
    if (!Number.isFinite(n) || n < 0 || n > LAST_INSTANT) {
      ctx.addIssue({ code: 'custom', message: 'an ISO 8601 time or epoch milliseconds, from 1970 to the end of year 9999' });
      return z.NEVER;
    }
    return n;
  });

/** Where U+0000 occurs in a parsed request part (`query hub`, `body reason`, …), or null. Keys count too. */
function nulIn(part: string, value: unknown, path = '', depth = 0): string | null {
  const at = () => (path ? `${part} ${path}` : part);
  if (typeof value === 'string') return value.includes('\u0000') ? at() : null;
  if (value === null || typeof value !== 'object' || depth > 64) return null;
  for (const [k, v] of Object.entries(value)) {
    const p = path ? `${path}.${k}` : k;
    if (k.includes('\u0000')) return `${part} ${printable(p)}`;
    const found = nulIn(part, v, p, depth + 1);
    if (found !== null) return found;
  }
  return null;
}

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const now = deps.now ?? Date.now;
  // Per-request logs are off: the console and tests poll, and an access log belongs to the proxy.
  const app = Fastify({
    loggerInstance: deps.logger.child({ component: 'http' }),
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 1_048_576,
    // A hop count is documented and supported at run time, but missing from fastify's types.
    trustProxy: (deps.http?.trustProxy ?? false) as boolean | string,
  });
  const routes: RegisteredRoute[] = [];
  app.decorate('registeredRoutes', routes);
  app.addHook('onRoute', (r) => {
    // Read `public` later: a plugin's own onRoute hooks (registerOpen) run after this root one.
    for (const method of [r.method].flat()) routes.push({ method, url: r.url, get public() { return r.config?.public === true; } });
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  app.setErrorHandler((err, req, reply) => {
    if (hasZodFastifySchemaValidationErrors(err)) {
      const message = err.validation.map((v) => `${v.instancePath.replace(/^\//, '').replace(/\//g, '.') || err.validationContext}: ${v.message}`).join('; ');
      return reply.code(400).send({ error: { code: 'validation', message: `${err.validationContext ?? 'request'} ${message}` } });
    }
    if (err instanceof ApiError) return reply.code(err.status).send({ error: { code: err.code, message: err.message } });
    if (err instanceof CommandError) {
      const code: ApiErrorCode = err.code;
      return reply.code(API_ERRORS[code].status).send({ error: { code, message: err.message } });
    }
    if (err instanceof SqlDataError) {
      // A safety net behind the NUL hook below: a value from the request the database refuses is the caller's to fix.
      req.log.warn({ err, url: req.url.slice(0, 200) }, 'the database refused a value of the request');
      return reply.code(400).send({ error: { code: 'validation', message: 'a value of the request cannot be stored (e.g. a control character); the database refused it' } });
    }
    if (err instanceof TelemetryStoreError) {
      req.log.warn({ err }, 'telemetry store query failed');
      return reply.code(503).send({ error: { code: 'store_unavailable', message: err.message } });
    }
    const status = (err as { statusCode?: number }).statusCode;
    if (status && status >= 400 && status < 500) {
      return reply.code(status).send({ error: { code: 'validation', message: (err as Error).message } });
    }
    req.log.error({ err, url: req.url }, 'request failed');
    return reply.code(500).send({ error: { code: 'internal', message: `internal error (request ${req.id})` } });
  });
  // Before any route and any plugin's hooks: no path parameter, query string or JSON body with U+0000
  // reaches a handler. PostgreSQL refuses it in TEXT, so it would be a 500 (and an error log anyone can
  // cause through the open sign-in route) where SQLite answered (issue 14); refused alike on both.
  app.addHook('preValidation', async (req, reply) => {
    const where = nulIn('path', req.params) ?? nulIn('query', req.query) ?? nulIn('body', req.body);
    if (where !== null) {
      return reply.code(400).send({ error: { code: 'validation', message: `${where} contains the character U+0000 (NUL), which is not allowed` } });
    }
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: { code: 'not_found', message: `no route ${req.method} ${req.url.split('?')[0]}` } }));
  await registerHttpSecurity(app as unknown as FastifyInstance, { allowedOrigins: deps.http?.allowedOrigins ?? [], registry: deps.metrics.registry });
  deps.access?.(app.withTypeProvider<ZodTypeProvider>() as unknown as ZodApp);

  // OpenAPI 3.1: its schemas are JSON Schema 2020-12, so a nullable union is `anyOf […, {type: 'null'}]`
  // (3.0's `nullable` without a sibling `type`, which zod's union produced, is invalid for Ajv and Redocly).
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      servers: [{ url: '/', description: 'This cloud (the document is served by the cloud it describes)' }],
      tags: [...TAGS],
      components: { securitySchemes: SECURITY_SCHEMES },
      info: {
        license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
        title: 'Regional drone logistics — cloud API',
        version: '1.0.0',
        description: `Live state, history and data health of the hubs of a region; commands to hub devices. Errors: ${Object.entries(API_ERRORS)
          .map(([code, e]) => `\`${code}\` (${e.status}) ${e.description}`)
          .join('; ')}.`,
      },
    },
    transform: documentRoute,
    transformObject: documentObject,
  });
  await app.register(openPlugin(async (open) => {
    await open.register(swaggerUi, { routePrefix: '/docs' });
  }));

  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get('/healthz', {
    config: { public: true },
    schema: {
      operationId: 'getHealth', tags: ['health'],
      summary: 'Liveness and store health',
      description: 'Degraded (503) while telemetry store writes or the operational database\'s group commits (dead letters, dedupe ids, acknowledgements) keep failing: messages are then held unacknowledged.',
      response: {
        200: z.object({ status: z.literal('ok'), store: z.string(), operationalHealthy: z.boolean(), ingestPending: z.number(), cluster: ClusterHealthBody.optional() }),
        503: z.object({ status: z.literal('degraded'), store: z.string(), operationalHealthy: z.boolean(), ingestPending: z.number(), reason: z.string(), cluster: ClusterHealthBody.optional() }),
      },
    },
  }, async (_req, reply) => {
    const h = deps.health();
    const operationalHealthy = h.operationalHealthy ?? true;
    const failing = [
      ...(h.storeHealthy ? [] : ['telemetry store writes are failing']),
      ...(operationalHealthy ? [] : ['operational database writes (dead letters, dedupe ids, acknowledgements) are failing']),
    ];
    if (failing.length > 0) {
      return reply.code(503).send({ status: 'degraded' as const, store: deps.store.kind, operationalHealthy, ingestPending: h.ingestPending, reason: `${failing.join('; ')}; messages are held unacknowledged`, ...(h.cluster ? { cluster: h.cluster } : {}) });
    }
    return { status: 'ok' as const, store: deps.store.kind, operationalHealthy, ingestPending: h.ingestPending, ...(h.cluster ? { cluster: h.cluster } : {}) };
  });

  r.get('/metrics', { config: { public: true }, schema: { summary: 'Prometheus metrics', hide: true } }, async (_req, reply) => {
    reply.header('content-type', deps.metrics.registry.contentType);
    return deps.metricsText ? deps.metricsText() : deps.metrics.registry.metrics();
  });

  r.get('/api/v1/hubs', {
    schema: {
      operationId: 'listHubs', tags: ['hubs'],
      summary: 'Every hub with kind, location, link state and last-seen (staff: their hubs)',
      response: { 200: z.object({ hubs: z.array(HubSummary) }) },
    },
  }, async (req) => {
    const scope = hubScope(req);
    return { hubs: [...deps.live.hubs.values()].filter((h) => scope === null || scope.has(h.id)).map(summary) };
  });

  const hubOr404 = (hubId: string): HubState => {
    const h = deps.live.hubs.get(hubId);
    if (!h) throw new ApiError('hub_not_found', `no hub "${hubId}"`);
    return h;
  };

  r.get('/api/v1/hubs/:hubId', {
    schema: {
      operationId: 'getHub', tags: ['hubs'],
      summary: 'Live state of every device at a hub',
      params: z.object({ hubId: z.string().max(64) }),
      response: { 200: HubSummary.extend({ deviceStates: z.array(DeviceLive) }), ...errorResponses('hub_not_found') },
    },
  }, async (req) => {
    const h = hubOr404(req.params.hubId);
    return { ...summary(h), deviceStates: [...h.devices.values()].map(deviceLive) };
  });

  r.get('/api/v1/hubs/:hubId/history', {
    schema: {
      operationId: 'getHubHistory', tags: ['hubs'],
      summary: 'Time-bucketed series of one numeric field of a device',
      params: z.object({ hubId: HubId }),
      querystring: z.object({
        device: DeviceId,
        field: z.string().max(64).describe('Stored field name, e.g. battery_pct, wind_speed_mps, temp_c (see README "Telemetry storage")'),
        compartment: z.string().max(8).optional().describe('Locker compartment (locker fields only)'),
        from: Instant.optional().describe('ISO 8601 or epoch ms; default: `to` minus 1 hour'),
        to: Instant.optional().describe('ISO 8601 or epoch ms; default: now'),
        bucket: Duration.default(60_000).describe('Bucket width, e.g. 10s, 1m, 1h; default 1m'),
        aggregate: z.enum(['mean', 'min', 'max', 'last', 'count']).default('mean'),
      }),
      response: {
        200: z.object({
          hub: z.string(), device: z.string(), field: z.string(), aggregate: z.string(), bucketMs: z.number(),
          from: z.string(), to: z.string(), points: z.array(z.object({ t: z.string(), value: z.number() })),
        }),
        ...errorResponses('unknown_field', 'hub_not_found', 'device_not_found', 'store_unavailable'),
      },
    },
  }, async (req) => {
    const h = hubOr404(req.params.hubId);
    const q = req.query;
    const d = h.devices.get(q.device);
    if (!d) throw new ApiError('device_not_found', `hub "${h.id}" has no device "${q.device}"`);
    const measurement = MEASUREMENT_OF_KIND[d.kind];
    if (!NUMERIC_FIELDS[measurement].includes(q.field)) {
      throw new ApiError('unknown_field', `"${q.field}" is not a numeric ${d.kind} field; use one of ${NUMERIC_FIELDS[measurement].join(', ')}`);
    }
    const to = q.to ?? now();
    const from = q.from ?? to - 3_600_000;
    if (from >= to) throw new ApiError('validation', '`from` must be before `to`');
    if ((to - from) / q.bucket > 10_000) throw new ApiError('validation', 'more than 10,000 buckets: widen `bucket` or shorten the range');
    const where = q.compartment ? { compartment: q.compartment } : undefined;
    const points = await deps.store.history({ measurement, hub: h.id, device: d.device, where, field: q.field, from, to, bucketMs: q.bucket, aggregate: q.aggregate });
    return {
      hub: h.id, device: d.device, field: q.field, aggregate: q.aggregate, bucketMs: q.bucket,
      from: new Date(from).toISOString(), to: new Date(to).toISOString(),
      points: points.map((p) => ({ t: new Date(p.t).toISOString(), value: p.value })),
    };
  });

  r.get('/api/v1/dead-letters', {
    schema: {
      operationId: 'listDeadLetters', tags: ['data-health'],
      summary: 'Rejected messages kept for inspection, newest first',
      description: 'A coordinator scoped to regions sees (and `total` counts) the rows of its regions only; `?hub=` of another region: 403 `region_not_allowed`.',
      querystring: z.object({
        hub: z.string().max(64).optional(),
        reason: z.enum(REJECTION_REASONS).optional(),
        before: z.coerce.number().int().positive().optional().describe('Only entries with an id below this (paging)'),
        limit: z.coerce.number().int().min(1).max(500).default(50),
      }),
      response: {
        200: z.object({
          total: z.number().int(),
          deadLetters: z.array(z.object({
            id: z.number().int(), receivedAt: z.string(), region: z.string().nullable(), hub: z.string().nullable(), clientId: z.string().nullable(),
            topic: z.string(), reason: z.enum(REJECTION_REASONS), detail: z.string(), size: z.number().int(), truncated: z.boolean(),
            payloadText: z.string().nullable(), payloadBase64: z.string().nullable(),
          })),
        }),
        ...errorResponses('region_not_allowed'),
      },
    },
  }, async (req) => {
    // A coordinator scoped to regions sees its regions' rows only, and counts only those (issue 14);
    // a hub of another region is refused by name (one placed in no region still finds only their rows).
    const regions = regionsOf(req.account ?? null, req.regionLookup ?? undefined) ?? undefined;
    const hubRegion = req.query.hub === undefined ? undefined : req.regionLookup?.regionOfHub(req.query.hub);
    if (regions && hubRegion !== undefined && !regions.includes(hubRegion)) {
      throw new ApiError('region_not_allowed', `hub "${req.query.hub}" is in region "${hubRegion}", not one of this account's regions`);
    }
    return {
      total: await deps.deadLetters.count({ regions }),
      deadLetters: await deps.deadLetters.list({ hub: req.query.hub, regions, reason: req.query.reason, beforeId: req.query.before, limit: req.query.limit }),
    };
  });

  r.post('/api/v1/hubs/:hubId/commands', {
    schema: {
      operationId: 'sendCommand', tags: ['commands'],
      summary: 'Send a command to a device at a hub',
      description: 'Stores the command and publishes it (QoS 1) on the device\'s command topic; while it is pending and unexpired it is '
        + 'published again whenever the hub re-subscribes to its commands (hubs execute a command id at most once). '
        + 'Answers 202: the result arrives later with the hub\'s acknowledgement (see GET /api/v1/commands/{commandId}).',
      params: z.object({ hubId: z.string().max(64) }),
      body: z.object({
        device: DeviceId,
        command: CommandName,
        args: Command.shape.args.default({}),
        ttlS: z.number().int().min(5).max(86_400).default(300).describe('Seconds until the command expires; default 300'),
      }),
      response: { 202: CommandBody, ...errorResponses('wrong_device_kind', 'hub_not_found', 'device_not_found') },
    },
  }, async (req, reply) => {
    // Named, not spread: a command's id is never the client's to choose (issue() takes a given id as "already sent?").
    const { device, command, args, ttlS } = req.body;
    const c = await deps.commands.issue({ hub: req.params.hubId, device, command, args, ttlS });
    return reply.code(202).send(commandBody(c));
  });

  r.get('/api/v1/hubs/:hubId/commands', {
    schema: {
      operationId: 'listHubCommands', tags: ['commands'],
      summary: 'Commands sent to a hub, newest first',
      params: z.object({ hubId: z.string().max(64) }),
      querystring: z.object({
        state: z.enum(COMMAND_STATES).optional().describe('As shown: `expired` includes pending commands past their expiry'),
        limit: z.coerce.number().int().min(1).max(500).default(50),
      }),
      response: { 200: z.object({ commands: z.array(CommandBody) }), ...errorResponses('hub_not_found') },
    },
  }, async (req) => ({ commands: (await deps.commands.list(req.params.hubId, req.query)).map(commandBody) }));

  r.get('/api/v1/commands/:commandId', {
    schema: {
      operationId: 'getCommand', tags: ['commands'],
      summary: 'One command and its result',
      params: z.object({ commandId: MessageId }),
      response: { 200: CommandBody, ...errorResponses('command_not_found') },
    },
  }, async (req) => {
    const c = await deps.commands.get(req.params.commandId);
    requireInScope(req, c.hub);
    return commandBody(c);
  });

  for (const feature of deps.features ?? []) await feature(r as unknown as ZodApp);

  return app as unknown as FastifyInstance;
}
