import { normalizeIP } from '@fastify/rate-limit';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Counter, type Registry } from 'prom-client';
import { z } from 'zod';
import { HubId } from '../../contract/index.ts';
import { errorResponses } from '../api/api-docs.ts';
import { ApiError } from '../api/api-errors.ts';
import type { ZodApp } from '../api/app.ts';
import { generatePassword, type HubCredentialStore } from '../hubs/hub-credentials.ts';
import { SESSION_COOKIE } from './access-hooks.ts';
import { AccountExistsError, SESSION_TTL_MS, type AccountStore, type AuditRecord } from './account-store.ts';
import { ROLES, regionsOf, type Account, type RegionLookup } from './authorize.ts';
import { SignInThrottle, type SignInThrottleOptions } from './sign-in-throttle.ts';

/**
 * Routes of accounts (registered through `AppDeps.features`):
 *
 *   POST /api/v1/auth/login                 username + password → session cookie (and the account)
 *   POST /api/v1/auth/logout                ends the session
 *   GET  /api/v1/auth/me                    the signed-in account
 *   GET  /api/v1/accounts                   (admin) every account
 *   POST /api/v1/accounts                   (admin) create, or change role / hubs / name / password
 *   POST /api/v1/accounts/:username/tokens  (admin) a long-lived API token for an integration, shown once
 *   POST /api/v1/hubs/:hubId/credentials    (admin) a new MQTT password for a hub, shown once
 *   GET  /api/v1/audit                      (admin, coordinator) every mutating API call, newest first
 *                                           (a coordinator scoped to regions: its own, and those naming its regions)
 */
const AccountBody = z.object({
  username: z.string(), displayName: z.string(), role: z.enum(ROLES), hubs: z.array(z.string()),
  regions: z.array(z.string()).nullable().describe('The regions the account sees and acts in; null: every region (admin, operator, and a coordinator not scoped). Staff: the regions of their hubs'),
});
const RegionId = z.string().regex(/^[a-z0-9][a-z0-9-]{0,63}$/, 'a region id');
const Username = z.string().regex(/^[a-z0-9][a-z0-9._-]{1,63}$/, 'lower-case letters, digits, . _ - (2–64)');
const accountBody = (a: Account, lookup?: RegionLookup) => ({
  username: a.username, displayName: a.displayName, role: a.role, hubs: a.role === 'staff' ? a.hubs : [], regions: regionsOf(a, lookup),
});
const iso = (ms: number) => new Date(ms).toISOString();

/** The newest audit entries read to fill one answer for a coordinator scoped to regions. */
export const AUDIT_SCAN_MAX = 20_000;

/**
 * Whether an audit entry is shown to a coordinator scoped to `regions` (issue 14 review, F9): its own
 * calls, and calls whose path names a region (`:regionId`) or a hub (`:hubId`) and every region or
 * hub it names is one of theirs. Everything else — other accounts' sign-ins, account changes, orders
 * named by id, anonymous calls, paths that cannot be read against their route — tells of other regions
 * or other people and is left out. The parameters are read from the recorded path against the
 * recorded route pattern, segment by segment (the path as the client spelled it, percent-decoded).
 */
export function auditEntryVisible(e: AuditRecord, account: Account, regions: readonly string[], lookup?: Pick<RegionLookup, 'regionOfHub'>): boolean {
  if (e.account === account.username) return true;
  if (e.route === null) return false;
  const pattern = e.route.split('/');
  const path = e.path.split('/');
  if (pattern.length !== path.length) return false;
  let named = false;
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!;
    if (p !== ':regionId' && p !== ':hubId') continue;
    let value: string;
    try {
      value = decodeURIComponent(path[i]!);
    } catch {
      return false;
    }
    const region = p === ':regionId' ? value : lookup?.regionOfHub(value);
    if (region === undefined || !regions.includes(region)) return false;
    named = true;
  }
  return named;
}

export interface AccountRouteDeps {
  accounts: AccountStore;
  credentials: HubCredentialStore;
  /** Region of each known hub (for new hub credentials). */
  hubRegion: (hubId: string) => string | null;
  registry: Registry;
  /** Where hubs and regions are (staff's regions follow their hubs; a coordinator's regions must exist). */
  regions?: RegionLookup & { has(region: string): boolean };
  now?: () => number;
  /** Sign-in limits (SIGNIN_* settings); defaults as documented in README. */
  signIn?: Partial<SignInThrottleOptions> & { maxPerMinute?: number };
  /** COOKIE_SECURE: `auto` marks the session cookie Secure when the request came over https. */
  cookieSecure?: 'auto' | 'true' | 'false';
}

/** The session cookie's attributes: HttpOnly, SameSite=Strict, and Secure over TLS (or when told). */
function setSessionCookie(req: FastifyRequest, reply: FastifyReply, setting: 'auto' | 'true' | 'false', token: string, maxAgeS: number) {
  const secure = setting === 'true' || (setting === 'auto' && req.protocol === 'https');
  reply.setCookie(SESSION_COOKIE, token, { httpOnly: true, sameSite: 'strict', path: '/', maxAge: maxAgeS, secure });
}

export function accountRoutes(deps: AccountRouteDeps): (app: ZodApp) => void {
  const { accounts } = deps;
  const body = (a: Account) => accountBody(a, deps.regions);
  const now = deps.now ?? Date.now;
  const cookieSecure = deps.cookieSecure ?? 'auto';
  const throttle = new SignInThrottle(deps.signIn);
  const logins = new Counter({ name: 'api_logins_total', help: 'Console/API sign-ins by result (ok, invalid, throttled: refused by the failure delay, rate_limited: by the per-address request cap)', labelNames: ['result'], registers: [deps.registry] });
  return (app) => {
    app.post('/api/v1/auth/login', {
      config: {
        public: true,
        // Every sign-in request (failed or not) per client address, counted by @fastify/rate-limit at
        // onRequest — before the body is read or a password checked: a flood is refused for nothing.
        // Failed attempts with their growing delay are the SignInThrottle's (below).
        rateLimit: {
          max: deps.signIn?.maxPerMinute ?? 60, timeWindow: 60_000,
          errorResponseBuilder: (_req, ctx) => {
            logins.inc({ result: 'rate_limited' });
            return new ApiError('too_many_sign_ins', `too many sign-in requests from this address; retry in ${ctx.after}`);
          },
        },
      },
      schema: {
        operationId: 'signIn', tags: ['auth'],
        summary: 'Sign in: sets the `chiiki_session` cookie (HttpOnly, SameSite=Strict, Secure over https, 12 h)',
        description: 'Wrong username or password answers 401 `invalid_credentials`, in about the same time whether or not the user exists. '
          + 'After SIGNIN_FREE_FAILURES_PER_USERNAME failures for a username, or SIGNIN_FREE_FAILURES_PER_ADDRESS from an address, each next '
          + 'attempt must wait (1 s, doubling, up to SIGNIN_MAX_DELAY_S): earlier ones answer 429 `too_many_sign_ins` with Retry-After. '
          + 'Attempts for a username still being checked count as its failures until answered, so guesses sent at once get no more tries. '
          + 'The session token also works as `Authorization: Bearer <token>`.',
        body: z.object({ username: z.string().min(1).max(64), password: z.string().min(1).max(200) }),
        response: {
          200: z.object({ account: AccountBody, expiresAt: z.string() }).describe('Signed in; the `chiiki_session` cookie is set'),
          ...errorResponses('invalid_credentials', 'too_many_sign_ins'),
        },
      },
    }, async (req, reply) => {
      const address = normalizeIP(req.ip);
      const refused = throttle.check(req.body.username, address, now());
      if (refused) {
        logins.inc({ result: 'throttled' });
        const seconds = Math.max(1, Math.ceil(refused.retryAfterMs / 1000));
        reply.header('retry-after', String(seconds));
        throw new ApiError('too_many_sign_ins', `too many failed sign-ins ${refused.by === 'username' ? 'for this username' : 'from this address'}; retry in ${seconds} s`);
      }
      const checked = throttle.begin(req.body.username);
      let account: Account | null;
      try {
        account = await accounts.verifyPassword(req.body.username, req.body.password);
      } finally {
        checked(); // no await until failed/succeeded below: the attempt never stops counting in between
      }
      if (!account) {
        throttle.failed(req.body.username, address, now());
        logins.inc({ result: 'invalid' });
        req.log.info({ username: req.body.username.slice(0, 64), address }, 'sign-in refused');
        throw new ApiError('invalid_credentials', 'wrong username or password');
      }
      throttle.succeeded(req.body.username);
      logins.inc({ result: 'ok' });
      const s = await accounts.createSession(account.username);
      req.account = account;
      setSessionCookie(req, reply, cookieSecure, s.token, Math.round(SESSION_TTL_MS / 1000));
      return { account: body(account), expiresAt: iso(s.expiresAt) };
    });

    app.post('/api/v1/auth/logout', {
      schema: {
        operationId: 'signOut', tags: ['auth'], summary: 'Sign out: ends this session',
        description: 'Ends the session or API token the request came with and clears the session cookie.',
        response: { 204: z.null().describe('Signed out') },
      },
    }, async (req, reply) => {
      if (req.sessionToken) await accounts.revokeToken(req.sessionToken);
      setSessionCookie(req, reply, cookieSecure, '', 0);
      return reply.code(204).send(null);
    });

    app.get('/api/v1/auth/me', {
      schema: { operationId: 'getSignedInAccount', tags: ['auth'], summary: 'The signed-in account', response: { 200: z.object({ account: AccountBody, expiresAt: z.string().nullable().describe('null for an API token without expiry') }) } },
    }, async (req) => {
      // The access hook resolved the session for this very request (no second query).
      if (!req.account) throw new ApiError('unauthenticated', 'the session has expired');
      return { account: body(req.account), expiresAt: req.sessionExpiresAt === null ? null : iso(req.sessionExpiresAt) };
    });

    app.get('/api/v1/accounts', {
      schema: { operationId: 'listAccounts', tags: ['accounts'], summary: 'Every account (admin)', response: { 200: z.object({ accounts: z.array(AccountBody) }) } },
    }, async () => ({ accounts: (await accounts.list()).map(body) }));

    app.post('/api/v1/accounts', {
      schema: {
        operationId: 'saveAccount', tags: ['accounts'],
        summary: 'Create an account, or change its role, hubs, regions, name or password (admin)',
        description: 'A new account without `password`, or any account with `resetPassword: true`, gets a generated password, returned once '
          + 'in `password`. A new or reset password ends the account\'s sessions. 201 when created, 200 when changed. '
          + '`regions` scopes a coordinator to those regions (null: every region, the default); admin and operator always see every region, '
          + 'staff the regions of their hubs. 409 `account_exists` when another request created the same username at that moment.',
        body: z.object({
          username: Username,
          displayName: z.string().trim().min(1).max(100).optional(),
          role: z.enum(ROLES).optional().describe('Required for a new account'),
          hubs: z.array(HubId).max(100).optional().describe('Staff: the hubs they work at'),
          regions: z.array(RegionId).min(1).max(1000).nullable().optional().describe('Coordinator: the regions it works in; null: every region'),
          password: z.string().min(10).max(200).optional(),
          resetPassword: z.boolean().optional(),
        }).strict(),
        response: {
          200: z.object({ account: AccountBody, password: z.string().optional() }).describe('Changed'),
          201: z.object({ account: AccountBody, password: z.string().optional() }).describe('Created'),
          ...errorResponses('account_exists', 'account_not_found'),
        },
      },
    }, async (req, reply) => {
      const b = req.body;
      const unknownRegion = b.regions?.find((r) => deps.regions !== undefined && !deps.regions.has(r));
      if (unknownRegion !== undefined) throw new ApiError('validation', `body regions: "${unknownRegion}" is not a region of this cloud`);
      const existing = await accounts.get(b.username);
      const role = b.role ?? existing?.role;
      if (b.regions !== undefined && role !== 'coordinator') throw new ApiError('validation', 'body regions: only a coordinator is scoped to regions (admin and operator see every region, staff their hubs\' regions)');
      if (!existing) {
        if (!b.role) throw new ApiError('validation', 'body role: required for a new account');
        if (b.role === 'staff' && !(b.hubs?.length)) throw new ApiError('validation', 'body hubs: a staff account needs at least one hub');
        const password = b.password ?? generatePassword();
        try {
          const account = await accounts.create({ username: b.username, displayName: b.displayName, role: b.role, hubs: b.hubs, regions: b.regions, password });
          return reply.code(201).send({ account: body(account), ...(b.password ? {} : { password }) });
        } catch (err) {
          if (err instanceof AccountExistsError) throw new ApiError('account_exists', `account "${b.username}" was just created by another request; send the change again to update it`);
          throw err;
        }
      }
      const account = await accounts.update(b.username, { displayName: b.displayName, role: b.role, hubs: b.hubs, regions: b.regions });
      if (!account) throw new ApiError('account_not_found', `account "${b.username}" was removed meanwhile`);
      const password = b.resetPassword ? generatePassword() : b.password;
      if (password) await accounts.setPassword(b.username, password);
      return { account: body(account), ...(b.resetPassword ? { password } : {}) };
    });

    app.post('/api/v1/accounts/:username/tokens', {
      schema: {
        operationId: 'createApiToken', tags: ['accounts'],
        summary: 'A long-lived API token for an integration (admin); shown once',
        description: 'Send it as `Authorization: Bearer <token>`; it acts with the account\'s role. Stored only as a hash.',
        params: z.object({ username: z.string().max(64) }),
        body: z.object({ label: z.string().max(100).optional(), ttlDays: z.number().int().min(1).max(3650).optional() }).default({}),
        response: { 201: z.object({ token: z.string(), username: z.string(), expiresAt: z.string().nullable() }), ...errorResponses('account_not_found') },
      },
    }, async (req, reply) => {
      if (!(await accounts.get(req.params.username))) throw new ApiError('account_not_found', `no account "${req.params.username}"`);
      const t = await accounts.createApiToken(req.params.username, req.body.label ?? null, req.body.ttlDays === undefined ? null : req.body.ttlDays * 86_400_000);
      return reply.code(201).send({ token: t.token, username: req.params.username, expiresAt: t.expiresAt === null ? null : iso(t.expiresAt) });
    });

    app.post('/api/v1/hubs/:hubId/credentials', {
      schema: {
        operationId: 'createHubCredentials', tags: ['accounts'],
        summary: 'A new MQTT password for a hub (admin); shown once',
        description: 'Replaces the hub\'s password (username = hub id). Connections already open stay open; the next connect needs the new one.',
        params: z.object({ hubId: HubId }),
        response: { 201: z.object({ hub: z.string(), region: z.string(), username: z.string(), password: z.string() }), ...errorResponses('hub_not_found') },
      },
    }, async (req, reply) => {
      const region = deps.hubRegion(req.params.hubId);
      if (!region) throw new ApiError('hub_not_found', `no hub "${req.params.hubId}"`);
      const password = generatePassword();
      await deps.credentials.set(req.params.hubId, region, req.params.hubId, password);
      return reply.code(201).send({ hub: req.params.hubId, region, username: req.params.hubId, password });
    });

    app.get('/api/v1/audit', {
      schema: {
        operationId: 'listAuditEntries', tags: ['accounts'],
        summary: 'Every mutating API call (admin, coordinator), newest first',
        description: 'A coordinator scoped to regions sees its own calls and the calls whose path names one of its regions or a hub of them '
          + `(among the newest ${AUDIT_SCAN_MAX.toLocaleString('en')} entries); never another region's, nor other accounts' sign-ins.`,
        querystring: z.object({ limit: z.coerce.number().int().min(1).max(1000).default(100) }),
        response: {
          200: z.object({
            entries: z.array(z.object({
              id: z.number().int(), at: z.string(), account: z.string().nullable(), role: z.string().nullable(),
              method: z.string(), route: z.string().nullable(), path: z.string(), status: z.number().int(),
            })),
          }),
        },
      },
    }, async (req) => {
      const account = req.account ?? null;
      const regions = account ? regionsOf(account, deps.regions) : null;
      if (account === null || regions === null) return { entries: (await accounts.audit(req.query.limit)).map((e) => ({ ...e, at: iso(e.at) })) };
      // Scoped: read wider windows of the newest entries until the answer is full (or there are no more).
      const limit = req.query.limit;
      let entries: AuditRecord[] = [];
      for (let n = limit; ; n = Math.min(n * 4, AUDIT_SCAN_MAX)) {
        const window = await accounts.audit(n);
        entries = window.filter((e) => auditEntryVisible(e, account, regions, deps.regions));
        if (entries.length >= limit || window.length < n || n >= AUDIT_SCAN_MAX) break;
      }
      return { entries: entries.slice(0, limit).map((e) => ({ ...e, at: iso(e.at) })) };
    });
  };
}
