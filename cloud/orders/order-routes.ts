import { z } from 'zod';
import type { FastifyRequest } from 'fastify';
import { actorOf, hubScope, requireInScope } from '../accounts/access-hooks.ts';
import type { ZodApp } from '../api/app.ts';
import { ApiError } from '../api/api-errors.ts';
import { ORDER_STATES } from './order-lifecycle.ts';
import { GROUND_ROUND_STEPS, OrderError, type OrderService } from './order-service.ts';
import type { Order, OrderStore } from './order-store.ts';

const Destination = z.discriminatedUnion('type', [
  z.object({ type: z.literal('locker'), hub: z.string().min(1).max(64) }),
  z.object({ type: z.literal('site'), siteId: z.string().min(1).max(64) }),
]);

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** An order as the API shows it: never the pickup code or its hash. */
function view(o: Order) {
  return {
    id: o.id, region: o.region, originHub: o.originHub, destination: o.destination, weightKg: o.weightKg, tempClass: o.tempClass,
    priority: o.priority, deadline: iso(o.deadline), reference: o.reference, state: o.state, reason: o.reason, waitReasons: o.waitReasons,
    createdAt: iso(o.createdAt), createdBy: o.createdBy, updatedAt: iso(o.updatedAt), carrier: o.carrier, drone: o.droneId ? { hub: o.droneHub, id: o.droneId } : null,
    groundRound: o.roundId ? { id: o.roundId, departsAt: iso(o.roundDepartsAt) } : null, locker: o.compartmentId ? { device: o.lockerId, compartment: o.compartmentId } : null, missionId: o.missionId,
    attempts: o.attempts, pickupCodeReady: o.pickupReveal !== null, wrongPickupCodes: o.wrongCodes, compartmentLocked: o.locked,
  };
}

const hubsOf = (o: Order) => [o.originHub, o.destination.type === 'locker' ? o.destination.hub : null];

function rethrow(err: unknown): never {
  if (err instanceof OrderError) throw new ApiError(err.code, err.message);
  throw err;
}

function checkScope(req: FastifyRequest, o: Order): void {
  requireInScope(req, ...hubsOf(o));
}

export function orderRoutes(service: OrderService, store: OrderStore) {
  return (app: ZodApp) => {
    app.post('/api/v1/orders', {
      schema: {
        summary: 'Create an order (a parcel or prescription to a hub locker, or relief to a registered landing site)',
        body: z.object({
          originHub: z.string().min(1).max(64),
          destination: Destination,
          weightKg: z.number().positive().max(50),
          tempClass: z.enum(['ambient', 'chilled', 'frozen']).default('ambient'),
          priority: z.enum(['normal', 'medical', 'relief']).default('normal'),
          deadline: z.iso.datetime({ offset: true }).optional(),
          reference: z.string().max(100).optional(),
          flightPlanRef: z.string().max(100).optional().describe('Flight-plan notification (飛行計画通報, DIPS 2.0) reference for the flight log'),
          by: z.string().min(1).max(100).optional().describe('Ignored when signed in: the account is recorded (kept so older clients still validate)'),
        }),
      },
    }, async (req, reply) => {
      const b = req.body;
      const order = await service.create({ ...b, by: actorOf(req, b.by), deadline: b.deadline ? Date.parse(b.deadline) : undefined }).catch(rethrow);
      return reply.code(201).send(view(order));
    });

    app.get('/api/v1/orders', {
      schema: {
        summary: 'Orders, newest first',
        querystring: z.object({ hub: z.string().max(64).optional(), state: z.enum(ORDER_STATES).optional(), limit: z.coerce.number().int().min(1).max(500).default(100) }),
      },
    }, async (req) => {
      const scope = hubScope(req);
      if (scope === null) return { orders: store.list(req.query).map(view) };
      // Staff: orders whose origin or destination is one of their hubs.
      if (req.query.hub !== undefined) requireInScope(req, req.query.hub);
      const byId = new Map<string, Order>();
      for (const hub of req.query.hub !== undefined ? [req.query.hub] : scope) for (const o of store.list({ ...req.query, hub })) byId.set(o.id, o);
      const orders = [...byId.values()].sort((a, b) => b.createdAt - a.createdAt).slice(0, req.query.limit);
      return { orders: orders.map(view) };
    });

    app.get('/api/v1/orders/:orderId', {
      schema: { summary: 'An order with its audit log and flights', params: z.object({ orderId: z.string().max(64) }) },
    }, async (req) => {
      const order = (() => {
        try {
          const o = service.get(req.params.orderId);
          requireInScope(req, ...hubsOf(o));
          return o;
        } catch (err) {
          return rethrow(err);
        }
      })();
      return {
        ...view(order),
        audit: store.auditOf(order.id).map((a) => ({ at: iso(a.at), actor: a.actor, from: a.from, to: a.to, reason: a.reason })),
        flights: store.flights({ orderId: order.id, limit: 20 }),
      };
    });

    app.post('/api/v1/orders/:orderId/cancel', {
      schema: { summary: 'Cancel an order that is not in the air yet', params: z.object({ orderId: z.string().max(64) }), body: z.object({ by: z.string().min(1).max(100).optional(), reason: z.string().min(1).max(500) }) },
    }, async (req) => view(await service.cancel(req.params.orderId, actorOf(req, req.body.by), req.body.reason).catch(rethrow)));

    app.post('/api/v1/orders/:orderId/pickup-code', {
      schema: { summary: 'Show the pickup code once (then only its hash is kept)', params: z.object({ orderId: z.string().max(64) }) },
    }, async (req) => {
      try {
        checkScope(req, service.get(req.params.orderId));
        return { orderId: req.params.orderId, pickupCode: service.revealPickupCode(req.params.orderId) };
      } catch (err) {
        return rethrow(err);
      }
    });

    app.post('/api/v1/orders/:orderId/unlock-compartment', {
      schema: {
        summary: 'Open a compartment locked by wrong pickup codes and issue a new pickup code, shown once (staff at the locker\'s hub, coordinators)',
        params: z.object({ orderId: z.string().max(64) }),
        body: z.object({ reason: z.string().min(1).max(500).default('checked by staff at the locker') }),
      },
    }, async (req) => {
      try {
        const o = service.get(req.params.orderId);
        // The locker's hub: staff of the origin depot do not open lockers elsewhere.
        requireInScope(req, o.destination.type === 'locker' ? o.destination.hub : null);
        const r = await service.unlockCompartment(o.id, actorOf(req, undefined), req.body.reason);
        return { ...view(r.order), pickupCode: r.pickupCode, unlockCommandId: r.commandId };
      } catch (err) {
        return rethrow(err);
      }
    });

    app.post('/api/v1/orders/:orderId/ground-round', {
      schema: {
        summary: 'Record a ground round (貨客混載) step for an order on it: loaded on the bus, delivered at the destination hub, or failed (staff of its hubs, coordinators)',
        params: z.object({ orderId: z.string().max(64) }),
        body: z.object({ step: z.enum(GROUND_ROUND_STEPS), reason: z.string().min(1).max(500).optional() }),
      },
    }, async (req) => {
      try {
        checkScope(req, service.get(req.params.orderId));
        return view(service.groundRoundStep(req.params.orderId, req.body.step, actorOf(req, undefined), req.body.reason));
      } catch (err) {
        return rethrow(err);
      }
    });

    app.get('/api/v1/flight-log', {
      schema: { summary: 'Flight log (飛行日誌): aircraft, route, times, payload, flight-plan reference', querystring: z.object({ orderId: z.string().max(64).optional(), limit: z.coerce.number().int().min(1).max(1000).default(100) }) },
    }, async (req) => ({ flights: store.flights(req.query) }));
  };
}
