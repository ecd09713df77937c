/**
 * Who may call which API route — a pure table, so it can be tested route by route and role by role
 * (authorize.test.ts). The HTTP hook (access-hooks.ts) calls `authorize` for every request to a
 * route not declared open, on the route pattern fastify matched; routes whose answer depends on the objects involved (an alarm's hub, an
 * order's hubs) get `scope: 'own-hubs'` and filter or check with `inScope`. Region scoping (issue 14):
 * `regionsOf`/`mayUseRegion` for an account's regions, `hubsOf` for the hubs a list is limited to.
 */
export const ROLES = ['staff', 'coordinator', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export interface Account {
  username: string;
  displayName: string;
  role: Role;
  /** Hubs a staff account works at; ignored for region-wide roles. */
  hubs: string[];
  /**
   * The regions a coordinator works in (issue 14, item 3); null: every region. Admin and operator
   * always see every region (stored null); staff are scoped by their hubs, whose regions follow
   * (stored null). A coordinator account from before regions existed is null, so it keeps working
   * for every region until an admin sets its regions (POST /api/v1/accounts). Absent: null.
   */
  regions?: string[] | null;
}

import type { Regions } from '../hubs/regions.ts';

/** Where hubs are, for region scoping: served by `Regions` (cloud/hubs/regions.ts). */
export interface RegionLookup {
  /** The region id of a hub, or undefined for an unknown hub. */
  regionOfHub(hub: string): string | undefined;
  /** The hubs of a region (empty for an unknown region). */
  hubIds(region: string): readonly string[];
}

/**
 * The lookup on the cloud's regions (a region added while running is known at once). A hub's region
 * is its region file's; a hub in no region file that has connected (credentials made for it with
 * `npm run hub-credentials`) is in the region its credential names — `live` gives that — and is never
 * "in no region", which a scoped account would otherwise pass (issue 14 review, F4).
 */
export function regionLookupOf(
  regions: Regions,
  live?: { hubs: ReadonlyMap<string, { region: string }> },
): RegionLookup & { has(region: string): boolean } {
  return {
    regionOfHub: (hub) => regions.regionOfHub(hub)?.id ?? live?.hubs.get(hub)?.region,
    hubIds: (region) => regions.hubIds(region),
    has: (region) => regions.has(region),
  };
}

/**
 * The regions an account may see and act in; null: every region. Admin and operator: every region.
 * Coordinator: its `regions` (null: every region). Staff: the regions of their hubs — known only with
 * a lookup; without one null, and their hubs alone scope every route (as before regions existed).
 */
export function regionsOf(account: Account | null, lookup?: Pick<RegionLookup, 'regionOfHub'>): string[] | null {
  if (account === null) return null;
  switch (account.role) {
    case 'admin':
    case 'operator':
      return null;
    case 'coordinator':
      return account.regions ?? null;
    case 'staff': {
      if (!lookup) return null;
      const regions = new Set<string>();
      for (const h of account.hubs) {
        const r = lookup.regionOfHub(h);
        if (r !== undefined) regions.add(r);
      }
      return [...regions];
    }
  }
}

/** Whether the account may see or act in the region (see `regionsOf`). */
export function mayUseRegion(account: Account | null, region: string, lookup?: Pick<RegionLookup, 'regionOfHub'>): boolean {
  const regions = regionsOf(account, lookup);
  return regions === null || regions.includes(region);
}

/**
 * yes: allowed, region-wide · no: 403 · hub: allowed when `:hubId` is one of the account's hubs ·
 * scoped: allowed, and the route shows or touches only objects of the account's hubs ·
 * normal-order: a `normal` order whose origin or destination is one of the account's hubs.
 */
export type Access = 'yes' | 'no' | 'hub' | 'scoped' | 'normal-order';

type RoleTable = Record<Role, Access>;

const ALL: RoleTable = { staff: 'yes', coordinator: 'yes', operator: 'yes', admin: 'yes' };
const READ_SCOPED: RoleTable = { staff: 'scoped', coordinator: 'yes', operator: 'yes', admin: 'yes' };
const READ_HUB: RoleTable = { staff: 'hub', coordinator: 'yes', operator: 'yes', admin: 'yes' };
const READ_REGION: RoleTable = { staff: 'no', coordinator: 'yes', operator: 'yes', admin: 'yes' };
const COORDINATE: RoleTable = { staff: 'no', coordinator: 'yes', operator: 'no', admin: 'yes' };
const ACT_SCOPED: RoleTable = { staff: 'scoped', coordinator: 'yes', operator: 'no', admin: 'yes' };
const ADMIN: RoleTable = { staff: 'no', coordinator: 'no', operator: 'no', admin: 'yes' };

/** Keyed by `METHOD route-pattern` exactly as registered with fastify. */
export const POLICY: Readonly<Record<string, RoleTable>> = {
  'POST /api/v1/auth/logout': ALL,
  'GET /api/v1/auth/me': ALL,

  'GET /api/v1/hubs': READ_SCOPED,
  'GET /api/v1/hubs/:hubId': READ_HUB,
  'GET /api/v1/hubs/:hubId/history': READ_HUB,
  'GET /api/v1/hubs/:hubId/commands': READ_HUB,
  'POST /api/v1/hubs/:hubId/commands': { staff: 'hub', coordinator: 'yes', operator: 'no', admin: 'yes' },
  'GET /api/v1/commands/:commandId': READ_SCOPED,
  'POST /api/v1/hubs/:hubId/credentials': ADMIN,
  'GET /api/v1/dead-letters': READ_REGION,

  'GET /api/v1/regions/:regionId/mode': READ_SCOPED,
  'POST /api/v1/regions/:regionId/mode': COORDINATE,
  'GET /api/v1/regions/:regionId/mode/history': READ_REGION,
  'GET /api/v1/regions/:regionId/mode-proposals': READ_REGION,
  'POST /api/v1/regions/:regionId/mode-proposals': COORDINATE,

  'GET /api/v1/alarms': READ_SCOPED,
  'GET /api/v1/alarms/:alarmId': READ_SCOPED,
  'POST /api/v1/alarms/:alarmId/ack': ACT_SCOPED,
  'POST /api/v1/alarms/:alarmId/clear': ACT_SCOPED,

  'GET /api/v1/orders': READ_SCOPED,
  'POST /api/v1/orders': { staff: 'normal-order', coordinator: 'yes', operator: 'no', admin: 'yes' },
  'GET /api/v1/orders/:orderId': READ_SCOPED,
  'POST /api/v1/orders/:orderId/cancel': COORDINATE,
  'POST /api/v1/orders/:orderId/pickup-code': ACT_SCOPED,
  'POST /api/v1/orders/:orderId/unlock-compartment': ACT_SCOPED, // staff: the locker's hub only (the route checks)
  'POST /api/v1/orders/:orderId/ground-round': ACT_SCOPED, // staff: orders from or to their hubs (the route checks)
  'GET /api/v1/flight-log': READ_REGION,

  'GET /api/v1/accounts': ADMIN,
  'POST /api/v1/accounts': ADMIN,
  'POST /api/v1/accounts/:username/tokens': ADMIN,
  'GET /api/v1/audit': { staff: 'no', coordinator: 'yes', operator: 'no', admin: 'yes' },

  // The web consoles (cloud/console): the region's map data (the region file: geography and device
  // lists, no live state — readable by every role), and the live feed, which re-reads the routes above
  // as the signed-in account and so shows staff only their hubs.
  // The regions the account may see (each route scopes itself by the account's regions: `?region=`).
  'GET /api/v1/regions': { staff: 'yes', coordinator: 'yes', operator: 'yes', admin: 'yes' },
  'GET /api/v1/region': { staff: 'yes', coordinator: 'yes', operator: 'yes', admin: 'yes' },
  'GET /api/v1/region/geography': { staff: 'yes', coordinator: 'yes', operator: 'yes', admin: 'yes' },
  'GET /api/v1/events': READ_SCOPED,
};

/**
 * Routes added later without an entry (e.g. by another feature): reads are allowed to every role
 * and must scope themselves for staff (`scope: 'own-hubs'`); writes are admin-only until listed.
 */
const UNLISTED_READ: RoleTable = READ_SCOPED;
const UNLISTED_WRITE: RoleTable = ADMIN;

export type Decision =
  | { allow: true; scope: 'all' | 'own-hubs' }
  /** `region_not_allowed`: the request names a region (or a hub of a region) outside the account's regions. */
  | { allow: false; reason: string; code?: 'region_not_allowed' };

export interface RequestFacts {
  method: string;
  /** The route pattern, e.g. `/api/v1/hubs/:hubId`. */
  route: string;
  params?: Record<string, string | undefined>;
  /** The validated body (only `POST /api/v1/orders` looks at it). */
  body?: unknown;
}

const isRead = (method: string) => method === 'GET' || method === 'HEAD';

export function accessOf(method: string, route: string): RoleTable {
  const m = method === 'HEAD' ? 'GET' : method;
  return POLICY[`${m} ${route}`] ?? (isRead(method) ? UNLISTED_READ : UNLISTED_WRITE);
}

/**
 * The role table, then region scoping (issue 14, item 3): a request whose path names a region
 * (`:regionId`) or a hub (`:hubId`) outside the account's regions is refused, whatever the row says.
 * With `lookup`, hubs are placed in their regions; a hub the lookup places in no region is refused to
 * an account scoped to regions (it cannot be shown to be one of theirs) and left to the route (404)
 * for everyone else.
 */
export function authorize(account: Account, req: RequestFacts, lookup?: Pick<RegionLookup, 'regionOfHub'>): Decision {
  const d = decideByRole(account, req);
  if (!d.allow) return d;
  const regions = regionsOf(account, lookup);
  if (regions === null) return d;
  const region = req.params?.regionId;
  if (region !== undefined && !regions.includes(region)) {
    return { allow: false, code: 'region_not_allowed', reason: `region "${region}" is not one of this account's regions` };
  }
  const hub = req.params?.hubId;
  if (hub === undefined || !lookup) return d;
  const hubRegion = lookup.regionOfHub(hub);
  if (hubRegion === undefined) {
    return { allow: false, code: 'region_not_allowed', reason: `hub "${hub}" is in no region this cloud knows, so not in one of this account's regions` };
  }
  if (!regions.includes(hubRegion)) {
    return { allow: false, code: 'region_not_allowed', reason: `hub "${hub}" is in region "${hubRegion}", not one of this account's regions` };
  }
  return d;
}

function decideByRole(account: Account, req: RequestFacts): Decision {
  // The operator role is read-only everywhere, whatever a table row says (logging out is not a change).
  if (account.role === 'operator' && !isRead(req.method) && req.route !== '/api/v1/auth/logout') {
    return { allow: false, reason: 'the operator role is read-only' };
  }
  const access = accessOf(req.method, req.route)[account.role];
  switch (access) {
    case 'yes':
      return { allow: true, scope: 'all' };
    case 'no':
      return { allow: false, reason: `the ${account.role} role may not ${req.method} ${req.route}` };
    case 'scoped':
      return { allow: true, scope: 'own-hubs' };
    case 'hub': {
      const hub = req.params?.hubId;
      return hub !== undefined && account.hubs.includes(hub)
        ? { allow: true, scope: 'own-hubs' }
        : { allow: false, reason: `hub "${hub ?? '?'}" is not one of this account's hubs` };
    }
    case 'normal-order': {
      const b = (req.body ?? {}) as { priority?: string; originHub?: string; destination?: { type?: string; hub?: string } };
      if ((b.priority ?? 'normal') !== 'normal') return { allow: false, reason: 'only coordinators create relief and medical orders' };
      const touches = [b.originHub, b.destination?.type === 'locker' ? b.destination.hub : undefined];
      return touches.some((h) => h !== undefined && account.hubs.includes(h))
        ? { allow: true, scope: 'own-hubs' }
        : { allow: false, reason: 'the order neither starts nor ends at one of this account\'s hubs' };
    }
  }
}

/**
 * The hubs whose objects the account sees, or null for every hub: staff — their hubs; a coordinator
 * scoped to regions — the hubs of those regions (needs the lookup); everyone else — null.
 */
export function hubsOf(account: Account | null, lookup?: RegionLookup): ReadonlySet<string> | null {
  if (account === null) return null;
  if (account.role === 'staff') return new Set(account.hubs);
  const regions = regionsOf(account);
  if (regions === null) return null;
  return new Set(lookup ? regions.flatMap((r) => lookup.hubIds(r)) : []);
}

/** Whether an object at these hubs is visible to the account (any of them is enough). */
export function inScope(account: Account | null, hubs: readonly (string | null | undefined)[], lookup?: RegionLookup): boolean {
  const scope = hubsOf(account, lookup);
  return scope === null || hubs.some((h) => typeof h === 'string' && scope.has(h));
}
