import { STATUS_CODES } from 'node:http';
import type { RouteOptions } from 'fastify';
import { jsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod';
import { ZodType } from 'zod';
import { isMutating, SESSION_COOKIE } from '../accounts/access-hooks.ts';
import { accessOf, ROLES } from '../accounts/authorize.ts';
import { API_ERRORS, ApiErrorBody, type ApiErrorCode } from './api-errors.ts';

/**
 * The OpenAPI document's common parts (issue 13, item 7), added to every operation from what the
 * route declares — its `config.public` flag, its method and its POLICY row — so the document says what
 * the hooks really do and a new route cannot forget them:
 *   - security: closed routes take the session cookie or a bearer token; open ones say `security: []`;
 *   - the answers every route may give besides its own: 401/403 from access control (access-hooks.ts),
 *     403/415 from the HTTP hardening (http-security.ts), 400 for a request that fails validation and
 *     500 for the unexpected. Each route's own answers (its success, 404, 409, 429…) stay with the route,
 *     written with `errorResponses(…codes)`.
 * test/openapi.test.ts lints the document and checks it against real answers.
 */

export const SECURITY_SCHEMES = {
  session: {
    type: 'apiKey', in: 'cookie', name: SESSION_COOKIE,
    description: 'The session cookie set by POST /api/v1/auth/login (HttpOnly, SameSite=Strict, Secure over https; 12 h). The consoles use it.',
  },
  bearer: {
    type: 'http', scheme: 'bearer',
    description: '`Authorization: Bearer <token>`: an API token for an integration (POST /api/v1/accounts/{username}/tokens, acts with that '
      + 'account\'s role) or the token of a session.',
  },
} as const;

/** Either scheme is enough. */
const CLOSED_SECURITY: Record<string, string[]>[] = [{ session: [] }, { bearer: [] }];

export const TAGS = [
  { name: 'health', description: 'Liveness and store health' },
  { name: 'auth', description: 'Signing in and out' },
  { name: 'hubs', description: 'Hubs, their devices\' live state and telemetry history' },
  { name: 'commands', description: 'Commands to hub devices and their results' },
  { name: 'data-health', description: 'Messages the cloud rejected' },
  { name: 'modes', description: 'Disaster (emergency) mode of a region and proposals to switch it' },
  { name: 'alarms', description: 'Alarms raised from device and hub messages' },
  { name: 'orders', description: 'Delivery orders, pickup codes and the flight log' },
  { name: 'accounts', description: 'Accounts, API tokens, hub credentials and the audit log (admin)' },
  { name: 'console', description: 'What the web consoles read: the region file and the live feed' },
] as const;

export type ApiTag = (typeof TAGS)[number]['name'];

/** The codes each documented error response stands for, so common codes can be merged into a route's own. */
const codesOfResponse = new WeakMap<object, readonly ApiErrorCode[]>();

function describeCodes(codes: readonly ApiErrorCode[]): string {
  return codes.map((c) => `\`${c}\`: ${API_ERRORS[c].description}`).join('. ');
}

function errorResponse(codes: readonly ApiErrorCode[]): typeof ApiErrorBody {
  const schema = ApiErrorBody.describe(describeCodes(codes));
  codesOfResponse.set(schema, codes);
  return schema;
}

/** `{ [status]: ApiErrorBody }` for the statuses of the codes given, so a route's typed `reply.code(…).send` accepts them. */
export type ErrorResponses<C extends ApiErrorCode> = { [K in C as (typeof API_ERRORS)[K]['status']]: typeof ApiErrorBody };

/**
 * A route's own error answers, grouped by status: `errorResponses('hub_not_found', 'device_not_found')`
 * gives `{ 404: … }` described by both codes. The body is always `ApiError`.
 */
export function errorResponses<C extends ApiErrorCode>(...codes: C[]): ErrorResponses<C> {
  return Object.fromEntries(Object.entries(errorResponsesByStatus(codes)).map(([status, cs]) => [status, errorResponse(cs)])) as ErrorResponses<C>;
}

function errorResponsesByStatus(codes: readonly ApiErrorCode[]): Record<string, ApiErrorCode[]> {
  const byStatus: Record<string, ApiErrorCode[]> = {};
  for (const c of codes) (byStatus[API_ERRORS[c].status] ??= []).push(c);
  return byStatus;
}

/** The error codes any request to this route may get from the hooks and handlers every route shares. */
export function commonErrorCodes(route: { method: string; url: string; open: boolean; hasInput: boolean }): ApiErrorCode[] {
  const codes: ApiErrorCode[] = [];
  const mutating = isMutating(route.method);
  // A JSON body that does not parse is a 400 on every route that takes one, schema or not.
  if (route.hasInput || mutating) codes.push('validation');
  if (!route.open) {
    codes.push('unauthenticated');
    const table = accessOf(route.method, route.url);
    // The operator role is read-only everywhere (authorize.ts), whatever the row says.
    const refusesSomeone = ROLES.some((r) => table[r] !== 'yes') || (mutating && route.url !== '/api/v1/auth/logout');
    if (refusesSomeone) codes.push('forbidden');
    // A coordinator scoped to regions: a region or hub named in the path outside them (authorize.ts).
    if (/:(regionId|hubId)\b/.test(route.url)) codes.push('region_not_allowed');
  }
  // Cross-site refusal: every state-changing request; reads of closed routes (http-security.ts).
  if (mutating || !route.open) codes.push('cross_site_request');
  if (mutating) codes.push('unsupported_media_type');
  codes.push('internal');
  return codes;
}

type RouteSchema = Record<string, unknown> & { response?: Record<string, unknown>; hide?: boolean };

/**
 * @fastify/swagger's `transform`: the common parts above, then the zod schemas turned into JSON Schema
 * (fastify-type-provider-zod). Only the document changes; what fastify validates and serialises is the route's own schema.
 */
export function documentRoute(doc: Parameters<typeof jsonSchemaTransform>[0] & { route: RouteOptions }) {
  const schema = doc.schema as RouteSchema | undefined;
  if (!schema || schema.hide) return jsonSchemaTransform(doc);
  const method = [doc.route.method].flat()[0]!;
  const open = doc.route.config?.public === true;
  const hasInput = Boolean(schema.params || schema.querystring || schema.body || schema.headers);
  const response: Record<string, unknown> = { ...schema.response };
  // A success the route does not describe reads as its HTTP name ("Created"), not "Default Response".
  for (const [status, own] of Object.entries(response)) {
    if (status.startsWith('2') && own instanceof ZodType && own.description === undefined) response[status] = own.describe(STATUS_CODES[status] ?? 'Success');
  }
  for (const [status, codes] of Object.entries(errorResponsesByStatus(commonErrorCodes({ method, url: doc.route.url, open, hasInput })))) {
    const own = response[status];
    if (own === undefined) response[status] = errorResponse(codes);
    // A status the route documents without errorResponses(…) keeps the route's text (test/openapi.test.ts
    // then finds the codes it does not name).
    else if (codesOfResponse.has(own as object)) response[status] = errorResponse([...new Set([...codesOfResponse.get(own as object)!, ...codes])]);
  }
  return jsonSchemaTransform({ ...doc, schema: { ...schema, response, security: open ? [] : CLOSED_SECURITY } });
}

/**
 * @fastify/swagger's `transformObject`: the named schemas (`ApiError`) as components. The zod provider
 * names an input and an output variant of each; the variants no operation uses are left out.
 */
export function documentObject(doc: Parameters<typeof jsonSchemaTransformObject>[0]) {
  const out = jsonSchemaTransformObject(doc);
  const schemas = (out as { components?: { schemas?: Record<string, unknown> } }).components?.schemas;
  if (schemas) {
    const text = JSON.stringify({ ...out, components: { ...(out as { components?: object }).components, schemas: {} } });
    for (const name of Object.keys(schemas)) if (!text.includes(`"#/components/schemas/${name}"`)) delete schemas[name];
  }
  return out;
}
