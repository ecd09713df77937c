import Fastify, { LogController, type FastifyInstance } from 'fastify';
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { FreeText, Mode, type LockerTelemetry, type SensorTelemetry } from '../contract/index.ts';
import type { Logger } from '../shared/logger.ts';
import type { EdgeMetrics } from './edge-metrics.ts';
import type { EdgeState, ModeState } from './edge-state.ts';
import type { Outbox } from './outbox/outbox.ts';
import type { StorageHealth } from './storage-health.ts';
import type { Uplink } from './uplink.ts';

export interface LocalApiDeps {
  hubId: string;
  region: string;
  agent: string;
  outbox: Outbox;
  uplink: Uplink;
  state: EdgeState;
  metrics: EdgeMetrics;
  logger: Logger;
  latest: { lockers: Map<string, LockerTelemetry>; sensors: Map<string, SensorTelemetry> };
  switchModeLocally: (mode: Mode, reason: string) => Promise<ModeState>;
  /** Puts a quarantined message back into the outbox. */
  resendQuarantined: (seq: number) => 'requeued' | 'not_found' | 'invalid';
  storage: StorageHealth;
  now: () => number;
  /** Checks an `Authorization` header against the hub-staff token (constant time). */
  isStaff: (authorization: string | undefined) => boolean;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Declared open: served without the staff token. Every other route needs it [issue 11]. */
    open?: boolean;
  }
}

/** Read-only routes that expose nothing secret (no payloads, no device data, no credentials). */
const open = { config: { open: true } } as const;

/**
 * The agent's HTTP endpoint for hub staff on the hub's own network. It works with the cloud
 * unreachable: status, lockers, and switching the hub's mode locally (recorded, and forwarded to the
 * cloud as a mode acknowledgement with source "local" when the link returns).
 *
 * Default deny [issue 11]: every route needs the hub-staff token (`Authorization: Bearer <token>`)
 * unless its definition declares it open — only /status and /metrics do. Request bodies must be
 * `application/json` (no text/plain or form parser), so a page in a browser cannot post a form here.
 */
export async function buildLocalApi(d: LocalApiDeps): Promise<FastifyInstance> {
  const app = Fastify({ loggerInstance: d.logger.child({ component: 'local-http' }), logController: new LogController({ disableRequestLogging: true }) });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  // Fastify's default text/plain parser would accept the one body type a cross-site form can send
  // without a CORS preflight; without it such a request is a 415.
  app.removeContentTypeParser('text/plain');
  app.addHook('onRequest', async (req, reply) => {
    if (req.routeOptions.config.open === true) return;
    if (d.isStaff(req.headers.authorization)) return;
    d.metrics.httpUnauthorized.inc();
    return reply.code(401).header('www-authenticate', 'Bearer realm="hub staff"').send({ error: 'unauthorized', message: 'this route needs the hub-staff token (Authorization: Bearer …)' });
  });
  // A storage error inside a route (a full disk) is answered 500 by Fastify; it is counted and shown too.
  app.addHook('onError', async (_req, _reply, err) => {
    if (typeof (err as { code?: unknown }).code === 'string' && String((err as { code: string }).code).startsWith('SQLITE_')) d.storage.failed('http', err);
  });
  const r = app.withTypeProvider<ZodTypeProvider>();
  // An open route: a URL's user:password part (if someone wrote one into CLOUD_MQTT_URL) is not shown.
  const withoutUserinfo = (url: string) => url.replace(/^([a-z]+:\/\/)[^@/]*@/i, '$1');
  const iso = (ms: number | null) => (ms === null || ms === 0 ? null : new Date(ms).toISOString());

  r.get('/status', open, async () => {
    const o = d.outbox.stats();
    const u = d.uplink.stats();
    const m = d.state.mode();
    const st = d.storage.status();
    return {
      hub: d.hubId, region: d.region, agent: d.agent,
      uplink: { connected: u.connected, cloud: withoutUserinfo(u.url), since: iso(u.since), connects: u.connects, lastError: u.lastError, inFlight: u.inFlight, sent: u.sent, acked: u.acked, ackedHistorical: u.ackedHistorical, ackedReplayed: u.ackedReplayed },
      outbox: {
        depth: o.depth, byLane: o.byLane, oldestUnsentAgeS: o.oldestAcceptedAt === null ? 0 : Math.round((d.now() - o.oldestAcceptedAt) / 1000),
        bytes: o.bytes, dropped: o.dropped, fileBytes: o.fileBytes,
      },
      storage: { ...st, lastErrorAt: iso(st.lastErrorAt) },
      mode: { ...m, changedAt: iso(m.changedAt) },
      refusedDeviceMessages: d.state.rejectCount(),
    };
  });

  r.get('/lockers', async () => ({ lockers: [...d.latest.lockers.values()] }));
  r.get('/sensors', async () => ({ sensors: [...d.latest.sensors.values()] }));

  // The reason goes to the cloud in the hub's mode acknowledgement: the contract's free-text rule here
  // (a control character was taken, the hub switched, and the acknowledgement was then never sent).
  r.post('/mode', { schema: { body: z.object({ mode: Mode, reason: FreeText(500).min(1) }) } }, async (req) => {
    const m = await d.switchModeLocally(req.body.mode, req.body.reason);
    return { ...m, changedAt: iso(m.changedAt) };
  });

  r.get('/dead-letters', async () => ({ refused: d.state.rejects(100), quarantined: d.outbox.listQuarantine(100) }));

  // Messages the cloud refused (issue 12): listed, and re-sent by hub staff once the cause is fixed.
  r.get('/quarantine', async () => ({ quarantined: d.outbox.listQuarantine(100) }));
  r.post('/quarantine/:seq/resend', { schema: { params: z.object({ seq: z.coerce.number().int().min(1) }) } }, async (req, reply) => {
    const outcome = d.resendQuarantined(req.params.seq);
    if (outcome === 'not_found') return reply.code(404).send({ error: 'not_found', message: `no quarantined message ${req.params.seq}` });
    if (outcome === 'invalid') return reply.code(409).send({ error: 'invalid', message: 'the quarantined message no longer passes the contract; it stays in quarantine' });
    return { seq: req.params.seq, state: 'requeued' };
  });

  r.get('/metrics', open, async (_req, reply) => {
    reply.header('content-type', d.metrics.registry.contentType);
    return d.metrics.registry.metrics();
  });

  return app as unknown as FastifyInstance;
}
