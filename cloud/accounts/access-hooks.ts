import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from '../api/api-errors.ts';
import type { ZodApp } from '../api/app.ts';
import type { AccountStore } from './account-store.ts';
import { AnonymousAuditBudget, type UnrecordedCalls } from './anonymous-audit-budget.ts';
import { accessOf, authorize, hubsOf, mayUseRegion, type Account, type RegionLookup } from './authorize.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The signed-in account (null on open routes and before authentication). */
    account: Account | null;
    /** The token the request came with (session cookie or bearer), for logout. */
    sessionToken: string | null;
    /** When that session or token expires (null: an API token without expiry). */
    sessionExpiresAt: number | null;
    /** Where hubs are (region scoping, issue 14); null when the cloud runs without accounts. */
    regionLookup: RegionLookup | null;
  }
  interface FastifyContextConfig {
    /**
     * The route is open: no session needed (sign-in, health, metrics, docs, the consoles' files).
     * Every other route — whatever its path — needs a session and passes the role table.
     */
    public?: boolean;
  }
}

export const SESSION_COOKIE = 'chiiki_session';

/**
 * The token from `Authorization: Bearer …` or the session cookie (parsed by @fastify/cookie, which
 * leaves a value it cannot decode as it is — a malformed cookie is an unknown token, so a 401).
 */
export function tokenOf(req: FastifyRequest): string | null {
  const auth = req.headers.authorization;
  if (auth && /^Bearer\s+/i.test(auth)) return auth.replace(/^Bearer\s+/i, '').trim() || null;
  return req.cookies?.[SESSION_COOKIE] || null;
}

/** The matched route's pattern as registered (`/api/v1/hubs/:hubId`); undefined when nothing matched. */
const routeOf = (req: FastifyRequest): string | undefined => req.routeOptions.url;
const isPublic = (req: FastifyRequest) => req.routeOptions.url !== undefined && req.routeOptions.config?.public === true;
const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
export const isMutating = (method: string) => MUTATING.has(method);

function deny(req: FastifyRequest, reply: FastifyReply, account: Account, d: { reason: string; code?: 'region_not_allowed' }) {
  req.log.debug({ account: account.username, role: account.role, method: req.method, route: routeOf(req), reason: d.reason }, 'forbidden');
  return reply.code(403).send({ error: { code: d.code ?? 'forbidden', message: d.reason } });
}

/**
 * The request hooks of access control, in fastify's hook order. They decide on the route the router
 * MATCHED (its pattern and its declared config), never on how the URL was spelled: `/%61pi/v1/…`,
 * `/api/v%31/…` and `/api/v1/…` are one route to the router, so they are one route here (issue 11).
 *   onRequest  — default deny: every route but those declaring `config: { public: true }` needs a
 *                session or API token (401 `unauthenticated`: one indexed query per request, never
 *                cached, so a session revoked by any cloud process is refused at once); then the role
 *                table (403 `forbidden`) and the account's regions (403 `region_not_allowed` for a
 *                `:regionId` or `:hubId` outside them), before the body is read, so a forbidden caller
 *                learns nothing from validation errors.
 *                A path no route matches also needs a session (401), so an anonymous caller cannot
 *                even tell which routes exist; with one it gets the 404.
 *   preHandler — the rules that need the validated body (staff creating orders; a coordinator scoped to
 *                regions creating one: its hubs must be in them);
 *   onResponse — append every mutating call (POST/PUT/PATCH/DELETE), whatever its path, to the audit
 *                log with the account, the route pattern and the status. Calls without a valid session
 *                are recorded up to `anonymousAuditPerMinute` a minute; beyond that they are counted and
 *                summarised in one row (method `*`, status 429) when the minute is over, so an anonymous
 *                flood can neither bury the real entries nor fill the disk (anonymous-audit-budget.ts).
 */
export interface AccessHookOptions {
  /** Calls without a session recorded one by one per minute (default 60). */
  anonymousAuditPerMinute?: number;
  now?: () => number;
  /** Where hubs are: places `:hubId`s and order hubs in regions and lists a scoped coordinator's hubs (`hubScope`). */
  regions?: RegionLookup;
}

export function accessHooks(accounts: AccountStore, options: AccessHookOptions = {}): (app: ZodApp) => void {
  const lookup = options.regions ?? null;
  const now = options.now ?? Date.now;
  return (app) => {
    const budget = new AnonymousAuditBudget(options.anonymousAuditPerMinute ?? 60);
    // A failure to write is logged, never thrown at the request.
    const record = (log: FastifyBaseLogger, e: Parameters<AccountStore['recordAudit']>[0]): Promise<void> =>
      accounts.recordAudit(e).catch((err: unknown) => log.error({ err, method: e.method, path: e.path }, 'writing the API audit log failed'));
    const summarise = (log: FastifyBaseLogger, u: UnrecordedCalls) => record(log, {
      account: null, role: null, method: '*', route: null, status: 429,
      path: `(${u.count} more calls without a session not recorded one by one, ${new Date(u.from).toISOString()} – ${new Date(u.to).toISOString()})`,
    });
    // A flood that stopped is summarised within a minute even if no other anonymous call comes.
    const flushTimer = setInterval(() => {
      const u = budget.flush(now());
      if (u) void summarise(app.log, u);
    }, budget.windowMs);
    flushTimer.unref();
    app.addHook('onClose', async () => {
      clearInterval(flushTimer);
      const u = budget.flush(Number.POSITIVE_INFINITY);
      if (u) await summarise(app.log, u); // before the database closes
    });

    app.decorateRequest('account', null);
    app.decorateRequest('sessionToken', null);
    app.decorateRequest('sessionExpiresAt', null);
    app.decorateRequest('regionLookup', null);

    app.addHook('onRequest', async (req, reply) => {
      if (isPublic(req)) return;
      const token = tokenOf(req);
      const session = token === null ? null : await accounts.resolveToken(token);
      if (!session) {
        return reply.code(401).send({ error: { code: 'unauthenticated', message: token === null ? 'sign in first (session cookie or Authorization: Bearer token)' : 'the session or token is unknown or has expired' } });
      }
      req.account = session.account;
      req.sessionToken = token;
      req.sessionExpiresAt = session.expiresAt;
      req.regionLookup = lookup;
      const route = routeOf(req);
      if (route === undefined) return; // no such route: the 404 handler answers
      if (accessOf(req.method, route)[session.account.role] === 'normal-order') return; // decided in preHandler
      const d = authorize(session.account, { method: req.method, route, params: req.params as Record<string, string> }, lookup ?? undefined);
      if (!d.allow) return deny(req, reply, session.account, d);
    });

    app.addHook('preHandler', async (req, reply) => {
      const route = routeOf(req);
      if (!req.account || route === undefined) return;
      if (accessOf(req.method, route)[req.account.role] === 'normal-order') {
        const d = authorize(req.account, { method: req.method, route, params: req.params as Record<string, string>, body: req.body }, lookup ?? undefined);
        if (!d.allow) return deny(req, reply, req.account, d);
        return;
      }
      // A coordinator scoped to regions creates orders between hubs of those regions only.
      if (req.method === 'POST' && route === '/api/v1/orders' && req.account.role === 'coordinator' && req.account.regions !== null) {
        const b = (req.body ?? {}) as { originHub?: string; destination?: { type?: string; hub?: string } };
        const hubs = [b.originHub, b.destination?.type === 'locker' ? b.destination.hub : undefined].filter((h): h is string => typeof h === 'string');
        const outside = hubs.find((h) => {
          const region = lookup?.regionOfHub(h);
          return region !== undefined && !mayUseRegion(req.account, region); // an unknown hub: the route answers unknown_destination
        });
        if (outside !== undefined) return deny(req, reply, req.account, { code: 'region_not_allowed', reason: `hub "${outside}" is not in one of this account's regions` });
      }
    });

    app.addHook('onResponse', async (req, reply) => {
      if (!isMutating(req.method)) return;
      const entry = {
        account: req.account?.username ?? null, role: req.account?.role ?? null, method: req.method,
        route: routeOf(req) ?? null, path: req.url.split('?')[0]!.slice(0, 500), status: reply.statusCode,
      };
      // Awaited after the answer went out: the caller does not wait, and a shutdown lets it finish.
      if (req.account) return record(req.log, entry);
      const { decision, summary } = budget.admit(now());
      if (summary) await summarise(req.log, summary);
      if (decision === 'record') await record(req.log, entry);
      else if (decision === 'limit_reached') {
        await record(req.log, { ...entry, path: `(more than ${budget.perWindow} calls without a session this minute: the rest are counted, then summarised) ${entry.path}`.slice(0, 500) });
      }
    });
  };
}

/**
 * 403 unless an object at these hubs is in the signed-in account's scope (staff: their hubs; a
 * coordinator scoped to regions: the hubs of its regions).
 */
export function requireInScope(req: FastifyRequest, ...hubs: (string | null | undefined)[]): void {
  const scope = hubScope(req);
  if (scope !== null && !hubs.some((h) => typeof h === 'string' && scope.has(h))) {
    throw new ApiError('forbidden', req.account?.role === 'staff' ? 'not one of this account\'s hubs' : 'not a hub of this account\'s regions');
  }
}

const scopes = new WeakMap<FastifyRequest, ReadonlySet<string> | null>();
/**
 * The hubs a list must be limited to, or null when the account sees every hub (admin, operator, a
 * coordinator of every region, and open use without accounts): staff — their hubs; a coordinator
 * scoped to regions — the hubs of those regions (issue 14). Worked out once per request.
 */
export function hubScope(req: FastifyRequest): ReadonlySet<string> | null {
  if (!req.account) return null;
  if (!scopes.has(req)) scopes.set(req, hubsOf(req.account, req.regionLookup ?? undefined));
  return scopes.get(req)!;
}

/** The actor recorded for a change: the signed-in account; a body `by` only without accounts. */
export function actorOf(req: FastifyRequest, by: string | undefined): string {
  return req.account?.username ?? by ?? 'unknown';
}
