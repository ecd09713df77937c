import cookie from '@fastify/cookie';
import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify';
import { Counter, type Registry } from 'prom-client';
import { isMutating } from '../accounts/access-hooks.ts';

/**
 * What every HTTP request passes before access control (issue 11):
 *   - security headers from @fastify/helmet, with the consoles' strict Content-Security-Policy (no
 *     inline script or style, nothing from other origins: text from devices can never become code);
 *   - cookies parsed by @fastify/cookie (a value it cannot decode stays as sent: an unknown token);
 *   - @fastify/rate-limit, off by default, for the routes that declare a `rateLimit` (sign-in);
 *   - cross-site refusal: a state-changing request (POST/PUT/PATCH/DELETE) whose `Origin` is not the
 *     cloud's own (the Host it came to) or one of ALLOWED_ORIGINS, or, without Origin, whose
 *     `Sec-Fetch-Site` says `cross-site`/`same-site`, gets 403 `cross_site_request`. SameSite=Strict
 *     cookies do not stop a page on another port of the same host (same-site), this does. Scripts and
 *     integrations send no Origin and stay allowed (they authenticate with a bearer token);
 *   - reads of closed routes from another site's page (not a navigation) get the same 403: see
 *     `crossSiteReadReason`;
 *   - JSON only: a state-changing request with a body that is not `application/json` gets 415
 *     `unsupported_media_type` — an HTML form can send only urlencoded, multipart or text/plain.
 */
export interface HttpSecurityOptions {
  /** Origins besides the request's own Host allowed to make state-changing requests (normalised, e.g. https://ops.example.jp). */
  allowedOrigins: readonly string[];
  /** Where refusals are counted (`http_requests_refused_total{reason}`). */
  registry?: Registry;
}

/**
 * A plugin whose every route is open (`config.public`), for routes whose options we do not write
 * ourselves: swagger-ui under /docs, the consoles' files from @fastify/static.
 */
export function openPlugin(plugin: (instance: FastifyInstance) => Promise<void>): FastifyPluginAsync {
  return async (open) => {
    open.addHook('onRoute', (r) => {
      r.config = { ...r.config, public: true };
    });
    await plugin(open);
  };
}

/** The consoles' Content-Security-Policy (cloud/console/public); swagger-ui (/docs) lives with it too. */
export const CSP_DIRECTIVES = {
  defaultSrc: ["'self'"], scriptSrc: ["'self'"], styleSrc: ["'self'"], imgSrc: ["'self'", 'data:'], connectSrc: ["'self'"],
  fontSrc: ["'self'"], objectSrc: ["'none'"], baseUri: ["'none'"], frameAncestors: ["'none'"], formAction: ["'self'"],
};

/** Why a state-changing request is refused as cross-site, or null when it may proceed. */
export function crossSiteReason(req: FastifyRequest, allowed: ReadonlySet<string>): string | null {
  const origin = req.headers.origin;
  if (origin !== undefined) {
    let o: URL;
    try {
      o = new URL(origin);
    } catch {
      return `Origin "${origin.slice(0, 100)}" is not an origin this cloud accepts changes from`;
    }
    if (allowed.has(o.origin)) return null;
    // Compared by host (name and port, default ports normalised as the Origin's scheme implies): a TLS
    // proxy may hand the cloud plain http, and the scheme alone is no other site on the same host:port.
    let own: string | null = null;
    try {
      own = new URL(`${o.protocol}//${req.host}`).host;
    } catch {
      own = null;
    }
    if ((o.protocol === 'http:' || o.protocol === 'https:') && own !== null && o.host === own) return null;
    return `Origin ${o.origin} is not this cloud's origin (allow another with ALLOWED_ORIGINS)`;
  }
  const site = req.headers['sec-fetch-site'];
  if (site === 'cross-site' || site === 'same-site') return `a ${site} request may not change anything (Sec-Fetch-Site)`;
  return null;
}

/**
 * Fetch Metadata resource isolation for reads of closed routes: a browser says where a request comes
 * from (`Sec-Fetch-Site`). A page on another site — or another port of the same host (same-site),
 * which SameSite=Strict cookies do not stop — must not use the signed-in user's cookie to read the
 * API or hold the user's live-feed slots (an `EventSource` or `<img>` pointed at it). Top-level
 * navigations (a link to the JSON) stay allowed, as do scripts and older browsers that send no
 * `Sec-Fetch-Site`, and pages of ALLOWED_ORIGINS.
 */
export function crossSiteReadReason(req: FastifyRequest, allowed: ReadonlySet<string>): string | null {
  const site = req.headers['sec-fetch-site'];
  if (site !== 'cross-site' && site !== 'same-site') return null;
  const dest = req.headers['sec-fetch-dest'];
  if (req.headers['sec-fetch-mode'] === 'navigate' && dest !== 'object' && dest !== 'embed' && dest !== 'iframe' && dest !== 'frame') return null;
  const origin = req.headers.origin;
  if (origin !== undefined) {
    try {
      if (allowed.has(new URL(origin).origin)) return null;
    } catch {
      // not an origin: refused below
    }
  }
  return `a ${site} page may not read this API with the user's session (Sec-Fetch-Site); open the console itself`;
}

/** True when a state-changing request carries a body that is not JSON. */
export function nonJsonBody(req: FastifyRequest): boolean {
  const type = req.headers['content-type'];
  if (type === undefined) {
    const length = req.headers['content-length'];
    return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
  }
  return type.split(';')[0]!.trim().toLowerCase() !== 'application/json';
}

export async function registerHttpSecurity(app: FastifyInstance, opts: HttpSecurityOptions): Promise<void> {
  const allowed = new Set(opts.allowedOrigins);
  const refused = new Counter({
    name: 'http_requests_refused_total', help: 'HTTP requests refused before access control, by reason (cross_site, cross_site_read, media_type)',
    labelNames: ['reason'], registers: opts.registry ? [opts.registry] : [],
  });
  await app.register(helmet, {
    contentSecurityPolicy: { useDefaults: false, directives: CSP_DIRECTIVES },
    frameguard: { action: 'deny' },
    referrerPolicy: { policy: 'no-referrer' },
    // Only honoured over HTTPS (behind a TLS proxy); not for the operator's other subdomains.
    strictTransportSecurity: { maxAge: 15_552_000, includeSubDomains: false },
  });
  await app.register(cookie);
  await app.register(rateLimit, { global: false });

  app.addHook('onRequest', async (req, reply) => {
    if (!isMutating(req.method)) {
      if ((req.routeOptions.config as { public?: boolean } | undefined)?.public === true) return;
      const reason = crossSiteReadReason(req, allowed);
      if (reason === null) return;
      refused.inc({ reason: 'cross_site_read' });
      req.log.info({ method: req.method, url: req.url.slice(0, 200), origin: req.headers.origin, site: req.headers['sec-fetch-site'] }, 'cross-site read refused');
      return reply.code(403).send({ error: { code: 'cross_site_request', message: reason } });
    }
    const reason = crossSiteReason(req, allowed);
    if (reason !== null) {
      refused.inc({ reason: 'cross_site' });
      req.log.info({ method: req.method, url: req.url.slice(0, 200), origin: req.headers.origin, site: req.headers['sec-fetch-site'] }, 'cross-site request refused');
      return reply.code(403).send({ error: { code: 'cross_site_request', message: reason } });
    }
    if (nonJsonBody(req)) {
      refused.inc({ reason: 'media_type' });
      return reply.code(415).send({ error: { code: 'unsupported_media_type', message: `a request body must be application/json (got ${String(req.headers['content-type'] ?? 'none').slice(0, 100)})` } });
    }
  });
}
