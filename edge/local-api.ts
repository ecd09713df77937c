import Fastify, { LogController, type FastifyInstance } from 'fastify';
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { Mode, type LockerTelemetry, type SensorTelemetry } from '../contract/index.ts';
import type { Logger } from '../cloud/logger.ts';
import type { EdgeMetrics } from './edge-metrics.ts';
import type { EdgeState, ModeState } from './edge-state.ts';
import type { Outbox } from './outbox/outbox.ts';
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
  now: () => number;
}

/**
 * The agent's HTTP endpoint for hub staff on the hub's own network. It works with the cloud
 * unreachable: status, lockers, and switching the hub's mode locally (recorded, and forwarded to the
 * cloud as a mode acknowledgement with source "local" when the link returns).
 */
export async function buildLocalApi(d: LocalApiDeps): Promise<FastifyInstance> {
  const app = Fastify({ loggerInstance: d.logger.child({ component: 'local-http' }), logController: new LogController({ disableRequestLogging: true }) });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  const r = app.withTypeProvider<ZodTypeProvider>();
  const iso = (ms: number | null) => (ms === null || ms === 0 ? null : new Date(ms).toISOString());

  r.get('/status', async () => {
    const o = d.outbox.stats();
    const u = d.uplink.stats();
    const m = d.state.mode();
    return {
      hub: d.hubId, region: d.region, agent: d.agent,
      uplink: { connected: u.connected, since: iso(u.since), connects: u.connects, lastError: u.lastError, inFlight: u.inFlight, sent: u.sent, acked: u.acked, ackedHistorical: u.ackedHistorical },
      outbox: {
        depth: o.depth, byLane: o.byLane, oldestUnsentAgeS: o.oldestAcceptedAt === null ? 0 : Math.round((d.now() - o.oldestAcceptedAt) / 1000),
        dropped: o.dropped, fileBytes: o.fileBytes,
      },
      mode: { ...m, changedAt: iso(m.changedAt) },
      refusedDeviceMessages: d.state.rejectCount(),
    };
  });

  r.get('/lockers', async () => ({ lockers: [...d.latest.lockers.values()] }));
  r.get('/sensors', async () => ({ sensors: [...d.latest.sensors.values()] }));

  r.post('/mode', { schema: { body: z.object({ mode: Mode, reason: z.string().min(1).max(500) }) } }, async (req) => {
    const m = await d.switchModeLocally(req.body.mode, req.body.reason);
    return { ...m, changedAt: iso(m.changedAt) };
  });

  r.get('/dead-letters', async () => ({ refused: d.state.rejects(100), quarantined: d.outbox.listQuarantine(100) }));

  r.get('/metrics', async (_req, reply) => {
    reply.header('content-type', d.metrics.registry.contentType);
    return d.metrics.registry.metrics();
  });

  return app as unknown as FastifyInstance;
}
