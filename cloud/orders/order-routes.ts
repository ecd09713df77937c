import { z } from 'zod';
import type { FastifyRequest } from 'fastify';
import { actorOf, hubScope, requireInScope } from '../accounts/access-hooks.ts';
import { regionsOf } from '../accounts/authorize.ts';
import type { ZodApp } from '../api/app.ts';
import { errorResponses } from '../api/api-docs.ts';
import { ApiError } from '../api/api-errors.ts';
import { REASON_CODES, type ReasonCode } from '../dispatch/dispatch-types.ts';
import { ORDER_STATES } from './order-lifecycle.ts';
import { GROUND_ROUND_STEPS, OrderError, type OrderService } from './order-service.ts';
import type { Order, OrderStore } from './order-store.ts';

const Destination = z.discriminatedUnion('type', [
  z.object({ type: z.literal('locker'), hub: z.string().min(1).max(64) }),
  z.object({ type: z.literal('site'), siteId: z.string().min(1).max(64) }),
]);

const OrderPath = z.object({ orderId: z.string().max(64) });

/** Response bodies. Loose where the cloud adds details per code, so nothing is stripped on the way out. */
const OrderBody = z.object({
  id: z.string(), region: z.string(), originHub: z.string(), destination: Destination, weightKg: z.number(),
  tempClass: z.enum(['ambient', 'chilled', 'frozen']), priority: z.enum(['normal', 'medical', 'relief']),
  deadline: z.string().nullable().describe('ISO 8601'), reference: z.string().nullable(), state: z.enum(ORDER_STATES),
  reason: z.string().nullable().describe('Why it failed, was cancelled or waits, for people'),
  waitReasons: z.array(z.looseObject({ code: z.enum(Object.keys(REASON_CODES) as [ReasonCode, ...ReasonCode[]]) }).describe('A reason code with the hubs, drones and figures it concerns'))
    .nullable().describe('Why the last planning round gave it no drone'),
  createdAt: z.string(), createdBy: z.string(), updatedAt: z.string(),
  carrier: z.enum(['drone', 'ground']).nullable(),
  drone: z.object({ hub: z.string().nullable(), id: z.string() }).nullable(),
  groundRound: z.object({ id: z.string(), departsAt: z.string().nullable() }).nullable().describe('The ground round (貨客混載) it travels on'),
  locker: z.object({ device: z.string().nullable(), compartment: z.string() }).nullable(),
  missionId: z.string().nullable(),
  attempts: z.number().int(),
  pickupCodeReady: z.boolean().describe('The pickup code can be shown once (POST …/pickup-code)'),
  wrongPickupCodes: z.number().int(),
  compartmentLocked: z.boolean().describe('Locked after too many wrong pickup codes: staff unlock it (POST …/unlock-compartment)'),
});

const FlightBody = z.object({
  missionId: z.string(), orderId: z.string(), aircraftHub: z.string(), aircraft: z.string(), origin: z.string(), destination: z.string(),
  route: z.unknown().describe('The planned route as flown (waypoints)'), distanceM: z.number(), payloadKg: z.number(), flightPlanRef: z.string(),
  plannedAt: z.number().describe('Epoch ms'), takeoffAt: z.number().nullable().describe('Epoch ms'), arrivedAt: z.number().nullable().describe('Epoch ms'),
  result: z.string().nullable(),
});

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
const isoAt = (ms: number) => new Date(ms).toISOString();

/** An order as the API shows it: never the pickup code or its hash. */
function view(o: Order) {
  return {
    id: o.id, region: o.region, originHub: o.originHub, destination: o.destination, weightKg: o.weightKg, tempClass: o.tempClass,
    priority: o.priority, deadline: iso(o.deadline), reference: o.reference, state: o.state, reason: o.reason, waitReasons: o.waitReasons,
    createdAt: isoAt(o.createdAt), createdBy: o.createdBy, updatedAt: isoAt(o.updatedAt), carrier: o.carrier, drone: o.droneId ? { hub: o.droneHub, id: o.droneId } : null,
    groundRound: o.roundId ? { id: o.roundId, departsAt: iso(o.roundDepartsAt) } : null, locker: o.compartmentId ? { device: o.lockerId, compartment: o.compartmentId } : null, missionId: o.missionId,
    attempts: o.attempts, pickupCodeReady: o.pickupReveal !== null, wrongPickupCodes: o.wrongCodes, compartmentLocked: o.locked,
  };
}

const hubsOf = (o: Order) => [o.originHub, o.destination.type === 'locker' ? o.destination.hub : null];

function rethrow(err: unknown): never {
  if (err instanceof OrderError) throw new ApiError(err.code, err.message);
  throw err;
}

/** The order's hubs are the account's (staff), and its region is one of the account's (coordinators, issue 14). */
function checkScope(req: FastifyRequest, o: Order, hubs: (string | null)[] = hubsOf(o)): void {
  checkRegion(req, o);
  requireInScope(req, ...hubs);
}

function checkRegion(req: FastifyRequest, o: Order): void {
  const regions = regionsOf(req.account ?? null);
  if (regions !== null && !regions.includes(o.region)) throw new ApiError('region_not_allowed', `order ${o.id} is in region "${o.region}", not one of this account's regions`);
}

export function orderRoutes(service: OrderService, store: OrderStore) {
  return (app: ZodApp) => {
    app.post('/api/v1/orders', {
      schema: {
        operationId: 'createOrder', tags: ['orders'],
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
        response: { 201: OrderBody.describe('Created; planned in the next dispatch round'), ...errorResponses('unknown_destination', 'region_not_allowed') },
      },
    }, async (req, reply) => {
      const b = req.body;
      // A coordinator orders in its regions only (issue 14, item 3); an unknown hub is the service's 400.
      const regions = regionsOf(req.account ?? null);
      const region = service.regionOfHub(b.originHub);
      if (regions !== null && region !== undefined && !regions.includes(region)) throw new ApiError('region_not_allowed', `hub "${b.originHub}" is in region "${region}", not one of this account's regions`);
      const order = await service.create({ ...b, by: actorOf(req, b.by), deadline: b.deadline ? Date.parse(b.deadline) : undefined }).catch(rethrow);
      return reply.code(201).send(view(order));
    });

    app.get('/api/v1/orders', {
      schema: {
        operationId: 'listOrders', tags: ['orders'],
        summary: 'Orders, newest first (staff: those from or to their hubs; coordinators: those of their regions)',
        querystring: z.object({ hub: z.string().max(64).optional(), state: z.enum(ORDER_STATES).optional(), limit: z.coerce.number().int().min(1).max(500).default(100) }),
        response: { 200: z.object({ orders: z.array(OrderBody) }) },
      },
    }, async (req) => {
      const scope = hubScope(req);
      // Coordinators: the orders of their regions (issue 14, item 3); null: every region.
      const regions = regionsOf(req.account ?? null);
      if (scope === null) return { orders: (await store.list({ ...req.query, regions })).map(view) };
      // Staff: orders whose origin or destination is one of their hubs.
      if (req.query.hub !== undefined) requireInScope(req, req.query.hub);
      const byId = new Map<string, Order>();
      for (const hub of req.query.hub !== undefined ? [req.query.hub] : scope) for (const o of await store.list({ ...req.query, hub, regions })) byId.set(o.id, o);
      const orders = [...byId.values()].sort((a, b) => b.createdAt - a.createdAt).slice(0, req.query.limit);
      return { orders: orders.map(view) };
    });

    app.get('/api/v1/orders/:orderId', {
      schema: {
        operationId: 'getOrder', tags: ['orders'],
        summary: 'An order with its audit log and flights', params: OrderPath,
        response: {
          200: OrderBody.extend({
            audit: z.array(z.object({ at: z.string(), actor: z.string(), from: z.enum(ORDER_STATES).nullable(), to: z.enum(ORDER_STATES), reason: z.string() })),
            flights: z.array(FlightBody),
          }),
          ...errorResponses('order_not_found', 'region_not_allowed'),
        },
      },
    }, async (req) => {
      const order = await service.get(req.params.orderId).catch(rethrow);
      checkScope(req, order);
      const [audit, flights] = await Promise.all([store.auditOf(order.id), store.flights({ orderId: order.id, limit: 20 })]);
      return {
        ...view(order),
        audit: audit.map((a) => ({ at: isoAt(a.at), actor: a.actor, from: a.from, to: a.to, reason: a.reason })),
        flights,
      };
    });

    app.post('/api/v1/orders/:orderId/cancel', {
      schema: {
        operationId: 'cancelOrder', tags: ['orders'],
        summary: 'Cancel an order that is not in the air yet', params: OrderPath, body: z.object({ by: z.string().min(1).max(100).optional(), reason: z.string().min(1).max(500) }),
        response: { 200: OrderBody, ...errorResponses('order_not_found', 'not_cancellable', 'region_not_allowed') },
      },
    }, async (req) => {
      checkRegion(req, await service.get(req.params.orderId).catch(rethrow));
      return view(await service.cancel(req.params.orderId, actorOf(req, req.body.by), req.body.reason).catch(rethrow));
    });

    app.post('/api/v1/orders/:orderId/pickup-code', {
      schema: {
        operationId: 'revealPickupCode', tags: ['orders'],
        summary: 'Show the pickup code once (then only its hash is kept)', params: OrderPath,
        response: { 200: z.object({ orderId: z.string(), pickupCode: z.string() }), ...errorResponses('order_not_found', 'pickup_code_unavailable', 'region_not_allowed') },
      },
    }, async (req) => {
      try {
        checkScope(req, await service.get(req.params.orderId));
        return { orderId: req.params.orderId, pickupCode: await service.revealPickupCode(req.params.orderId) };
      } catch (err) {
        return rethrow(err);
      }
    });

    app.post('/api/v1/orders/:orderId/unlock-compartment', {
      schema: {
        operationId: 'unlockOrderCompartment', tags: ['orders'],
        summary: 'Open a compartment locked by wrong pickup codes and issue a new pickup code, shown once (staff at the locker\'s hub, coordinators)',
        params: OrderPath,
        body: z.object({ reason: z.string().min(1).max(500).default('checked by staff at the locker') }),
        response: {
          200: OrderBody.extend({ pickupCode: z.string(), unlockCommandId: z.string().nullable().describe('The `locker.unlock` command sent to the locker') }),
          ...errorResponses('order_not_found', 'compartment_not_locked', 'region_not_allowed'),
        },
      },
    }, async (req) => {
      try {
        const o = await service.get(req.params.orderId);
        // The locker's hub: staff of the origin depot do not open lockers elsewhere.
        checkScope(req, o, [o.destination.type === 'locker' ? o.destination.hub : null]);
        const r = await service.unlockCompartment(o.id, actorOf(req, undefined), req.body.reason);
        return { ...view(r.order), pickupCode: r.pickupCode, unlockCommandId: r.commandId };
      } catch (err) {
        return rethrow(err);
      }
    });

    app.post('/api/v1/orders/:orderId/ground-round', {
      schema: {
        operationId: 'recordGroundRoundStep', tags: ['orders'],
        summary: 'Record a ground round (貨客混載) step for an order on it: loaded on the bus, delivered at the destination hub, or failed (staff of its hubs, coordinators)',
        params: OrderPath,
        body: z.object({ step: z.enum(GROUND_ROUND_STEPS), reason: z.string().min(1).max(500).optional() }),
        response: { 200: OrderBody, ...errorResponses('order_not_found', 'round_step_refused', 'region_not_allowed') },
      },
    }, async (req) => {
      try {
        checkScope(req, await service.get(req.params.orderId));
        return view(await service.groundRoundStep(req.params.orderId, req.body.step, actorOf(req, undefined), req.body.reason));
      } catch (err) {
        return rethrow(err);
      }
    });

    app.get('/api/v1/flight-log', {
      schema: {
        operationId: 'listFlights', tags: ['orders'],
        summary: 'Flight log (飛行日誌): aircraft, route, times, payload, flight-plan reference',
        querystring: z.object({ orderId: z.string().max(64).optional(), limit: z.coerce.number().int().min(1).max(1000).default(100) }),
        response: { 200: z.object({ flights: z.array(FlightBody) }) },
      },
    }, async (req) => ({ flights: await store.flights({ ...req.query, regions: regionsOf(req.account ?? null) }) }));
  };
}
