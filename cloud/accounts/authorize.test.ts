import { describe, expect, it } from 'vitest';
import { POLICY, ROLES, authorize, hubsOf, inScope, mayUseRegion, regionsOf, type Account, type RegionLookup, type Role } from './authorize.ts';

const account = (role: Role, hubs: string[] = [], regions: string[] | null = null): Account => ({ username: role, displayName: role, role, hubs, regions });
const staff = account('staff', ['nomi-terai', 'nomi-kokufu']);
const OWN = 'nomi-terai';
const OTHER = 'rs-komatsu-kibagata';

const allowed = (a: Account, method: string, route: string, params?: Record<string, string>, body?: unknown) => authorize(a, { method, route, params, body }).allow;

/**
 * The expected answer for every listed route and role, written out from the role rules
 * (issue 5, item 1) rather than derived from the table, so a changed row fails here.
 * y: allowed · n: 403 · h: allowed for the account's own hubs only · s: allowed, scoped to own hubs by the route ·
 * o: a normal order from or to an own hub.
 */
const EXPECTED: Record<string, [staff: string, coordinator: string, operator: string, admin: string]> = {
  'POST /api/v1/auth/logout': ['y', 'y', 'y', 'y'],
  'GET /api/v1/auth/me': ['y', 'y', 'y', 'y'],
  'GET /api/v1/hubs': ['s', 'y', 'y', 'y'],
  'GET /api/v1/hubs/:hubId': ['h', 'y', 'y', 'y'],
  'GET /api/v1/hubs/:hubId/history': ['h', 'y', 'y', 'y'],
  'GET /api/v1/hubs/:hubId/commands': ['h', 'y', 'y', 'y'],
  'POST /api/v1/hubs/:hubId/commands': ['h', 'y', 'n', 'y'],
  'GET /api/v1/commands/:commandId': ['s', 'y', 'y', 'y'],
  'POST /api/v1/hubs/:hubId/credentials': ['n', 'n', 'n', 'y'],
  'GET /api/v1/dead-letters': ['n', 'y', 'y', 'y'],
  'GET /api/v1/regions/:regionId/mode': ['s', 'y', 'y', 'y'],
  'POST /api/v1/regions/:regionId/mode': ['n', 'y', 'n', 'y'],
  'GET /api/v1/regions/:regionId/mode/history': ['n', 'y', 'y', 'y'],
  'GET /api/v1/regions/:regionId/mode-proposals': ['n', 'y', 'y', 'y'],
  'POST /api/v1/regions/:regionId/mode-proposals': ['n', 'y', 'n', 'y'],
  'GET /api/v1/alarms': ['s', 'y', 'y', 'y'],
  'GET /api/v1/alarms/:alarmId': ['s', 'y', 'y', 'y'],
  'POST /api/v1/alarms/:alarmId/ack': ['s', 'y', 'n', 'y'],
  'POST /api/v1/alarms/:alarmId/clear': ['s', 'y', 'n', 'y'],
  'GET /api/v1/orders': ['s', 'y', 'y', 'y'],
  'POST /api/v1/orders': ['o', 'y', 'n', 'y'],
  'GET /api/v1/orders/:orderId': ['s', 'y', 'y', 'y'],
  'POST /api/v1/orders/:orderId/cancel': ['n', 'y', 'n', 'y'],
  'POST /api/v1/orders/:orderId/pickup-code': ['s', 'y', 'n', 'y'],
  'POST /api/v1/orders/:orderId/unlock-compartment': ['s', 'y', 'n', 'y'],
  'POST /api/v1/orders/:orderId/ground-round': ['s', 'y', 'n', 'y'],
  'GET /api/v1/flight-log': ['n', 'y', 'y', 'y'],
  'GET /api/v1/accounts': ['n', 'n', 'n', 'y'],
  'POST /api/v1/accounts': ['n', 'n', 'n', 'y'],
  'POST /api/v1/accounts/:username/tokens': ['n', 'n', 'n', 'y'],
  'GET /api/v1/audit': ['n', 'y', 'n', 'y'],
  'GET /api/v1/regions': ['y', 'y', 'y', 'y'],
  'GET /api/v1/region': ['y', 'y', 'y', 'y'],
  'GET /api/v1/region/geography': ['y', 'y', 'y', 'y'],
  'GET /api/v1/events': ['s', 'y', 'y', 'y'],
};

describe('authorize (the role table)', () => {
  it('covers exactly the routes the expectations list', () => {
    expect(Object.keys(POLICY).sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  for (const [key, expected] of Object.entries(EXPECTED)) {
    const [method, route] = key.split(' ') as [string, string];
    it(`${key}: ${expected.join(' ')}`, () => {
      ROLES.forEach((role, i) => {
        const want = expected[i];
        const a = role === 'staff' ? staff : account(role);
        const params = { hubId: OWN, regionId: 'ishikawa-nomi', alarmId: 'alm-1', orderId: 'ord-1', commandId: 'cmd-1', username: 'x' };
        const d = authorize(a, { method, route, params, body: { originHub: OWN, destination: { type: 'locker', hub: OTHER } } });
        if (want === 'n') expect({ role, d }).toMatchObject({ role, d: { allow: false } });
        else if (want === 'y') expect({ role, d }).toEqual({ role, d: { allow: true, scope: 'all' } });
        else expect({ role, d }).toEqual({ role, d: { allow: true, scope: 'own-hubs' } });
        if (want === 'h') expect(allowed(a, method, route, { ...params, hubId: OTHER })).toBe(false);
      });
    });
  }

  it('operator: every method but GET/HEAD is refused, on listed and unlisted routes alike (logging out is allowed)', () => {
    const op = account('operator');
    for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
      for (const route of [...Object.keys(POLICY).map((k) => k.split(' ')[1]!), '/api/v1/something-new']) {
        expect(allowed(op, method, route, { hubId: OWN })).toBe(route === '/api/v1/auth/logout' && method === 'POST');
      }
    }
    expect(allowed(op, 'HEAD', '/api/v1/hubs')).toBe(true);
  });

  it('staff: a hub outside their hubs, or no hub at all, is refused on hub routes', () => {
    for (const route of ['/api/v1/hubs/:hubId', '/api/v1/hubs/:hubId/history', '/api/v1/hubs/:hubId/commands']) {
      expect(allowed(staff, 'GET', route, { hubId: 'nomi-kokufu' })).toBe(true);
      expect(allowed(staff, 'GET', route, { hubId: OTHER })).toBe(false);
      expect(allowed(staff, 'GET', route, {})).toBe(false);
    }
    expect(allowed(staff, 'POST', '/api/v1/hubs/:hubId/commands', { hubId: OTHER })).toBe(false);
  });

  it('staff: create normal orders from or to their hubs only; relief and medical orders are for coordinators', () => {
    const order = (body: unknown) => allowed(staff, 'POST', '/api/v1/orders', {}, body);
    expect(order({ originHub: OWN, destination: { type: 'locker', hub: OTHER } })).toBe(true);
    expect(order({ originHub: OTHER, destination: { type: 'locker', hub: OWN } })).toBe(true);
    expect(order({ originHub: OWN, destination: { type: 'site', siteId: 'x' }, priority: 'normal' })).toBe(true);
    expect(order({ originHub: OTHER, destination: { type: 'locker', hub: OTHER } })).toBe(false);
    expect(order({ originHub: OTHER, destination: { type: 'site', siteId: OWN } })).toBe(false); // a site id is not a hub
    expect(order({ originHub: OWN, destination: { type: 'locker', hub: OWN }, priority: 'relief' })).toBe(false);
    expect(order({ originHub: OWN, destination: { type: 'locker', hub: OWN }, priority: 'medical' })).toBe(false);
    expect(order(undefined)).toBe(false);
    expect(allowed(account('coordinator'), 'POST', '/api/v1/orders', {}, { originHub: OTHER, destination: { type: 'site', siteId: 'x' }, priority: 'relief' })).toBe(true);
  });

  it('unlisted routes: reads for everyone (scoped for staff), writes for admins only', () => {
    expect(authorize(staff, { method: 'GET', route: '/api/v1/console/events' })).toEqual({ allow: true, scope: 'own-hubs' });
    expect(authorize(account('coordinator'), { method: 'GET', route: '/api/v1/console/events' })).toEqual({ allow: true, scope: 'all' });
    for (const role of ['staff', 'coordinator', 'operator'] as const) expect(allowed(account(role, [OWN]), 'POST', '/api/v1/new-thing')).toBe(false);
    expect(allowed(account('admin'), 'DELETE', '/api/v1/new-thing')).toBe(true);
  });

  it('inScope: staff see objects at their hubs; other roles and open use see everything', () => {
    expect(inScope(staff, [OTHER, OWN])).toBe(true);
    expect(inScope(staff, [OTHER, null])).toBe(false);
    expect(inScope(staff, [])).toBe(false);
    for (const role of ['coordinator', 'operator', 'admin'] as const) expect(inScope(account(role), [OTHER])).toBe(true);
    expect(inScope(null, [OTHER])).toBe(true);
  });
});

describe('region scoping (issue 14, item 3)', () => {
  // Two regions: A holds OWN and nomi-kokufu, B holds OTHER.
  const HUBS: Record<string, string> = { [OWN]: 'region-a', 'nomi-kokufu': 'region-a', [OTHER]: 'region-b' };
  const lookup: RegionLookup = {
    regionOfHub: (h) => HUBS[h],
    hubIds: (r) => Object.keys(HUBS).filter((h) => HUBS[h] === r),
  };
  const coordA = account('coordinator', [], ['region-a']);
  const d = (a: Account, method: string, route: string, params: Record<string, string>) => authorize(a, { method, route, params }, lookup);

  it('regionsOf: admin and operator every region; a coordinator its regions (null: every region); staff the regions of their hubs', () => {
    expect(regionsOf(account('admin', [], ['region-a']))).toBeNull();
    expect(regionsOf(account('operator', [], ['region-a']))).toBeNull();
    expect(regionsOf(account('coordinator'))).toBeNull(); // an existing coordinator keeps every region
    expect(regionsOf({ username: 'old', displayName: 'old', role: 'coordinator', hubs: [] })).toBeNull(); // regions absent: null
    expect(regionsOf(coordA)).toEqual(['region-a']);
    expect(regionsOf(account('staff', [OWN, 'nomi-kokufu']), lookup)).toEqual(['region-a']);
    expect(regionsOf(account('staff', [OWN, OTHER, 'gone']), lookup)?.sort()).toEqual(['region-a', 'region-b']);
    expect(regionsOf(account('staff', [OWN]))).toBeNull(); // without a lookup their hubs alone scope them
    expect(mayUseRegion(coordA, 'region-a')).toBe(true);
    expect(mayUseRegion(coordA, 'region-b')).toBe(false);
    expect(mayUseRegion(account('staff', [OWN]), 'region-b', lookup)).toBe(false);
    expect(mayUseRegion(null, 'region-b')).toBe(true);
  });

  it('a coordinator of region A is refused region B on every :regionId route, reading or acting, with region_not_allowed', () => {
    const routes = Object.keys(POLICY).filter((k) => k.includes(':regionId'));
    expect(routes.length).toBeGreaterThanOrEqual(5);
    for (const key of routes) {
      const [method, route] = key.split(' ') as [string, string];
      expect({ key, d: d(coordA, method, route, { regionId: 'region-a' }) }).toMatchObject({ key, d: { allow: true } });
      expect({ key, d: d(coordA, method, route, { regionId: 'region-b' }) }).toMatchObject({ key, d: { allow: false, code: 'region_not_allowed' } });
      // Every region for admin and a coordinator of every region; a staff member only where their hubs are.
      if (method === 'GET') expect(d(account('admin'), method, route, { regionId: 'region-b' }).allow).toBe(true);
      expect(d(account('coordinator'), method, route, { regionId: 'region-b' }).allow).toBe(true);
      if (key === 'GET /api/v1/regions/:regionId/mode') {
        expect(d(staff, method, route, { regionId: 'region-a' }).allow).toBe(true);
        expect(d(staff, method, route, { regionId: 'region-b' })).toMatchObject({ allow: false, code: 'region_not_allowed' });
      }
    }
  });

  it('a coordinator of region A is refused the hubs of region B and hubs of no known region; for unscoped accounts an unknown hub is left to the route (404)', () => {
    for (const route of ['/api/v1/hubs/:hubId', '/api/v1/hubs/:hubId/history', '/api/v1/hubs/:hubId/commands']) {
      expect(d(coordA, 'GET', route, { hubId: OWN }).allow).toBe(true);
      expect(d(coordA, 'GET', route, { hubId: OTHER })).toMatchObject({ allow: false, code: 'region_not_allowed' });
      // A hub placed in no region (credentials but no region file, not connected yet) is not shown to be A's.
      expect(d(coordA, 'GET', route, { hubId: 'no-such-hub' })).toMatchObject({ allow: false, code: 'region_not_allowed' });
      expect(d(account('coordinator'), 'GET', route, { hubId: 'no-such-hub' }).allow).toBe(true);
      expect(d(account('admin'), 'GET', route, { hubId: 'no-such-hub' }).allow).toBe(true);
    }
    expect(d(coordA, 'POST', '/api/v1/hubs/:hubId/commands', { hubId: OTHER })).toMatchObject({ allow: false, code: 'region_not_allowed' });
    expect(d(account('operator'), 'GET', '/api/v1/hubs/:hubId', { hubId: OTHER }).allow).toBe(true);
  });

  it('hubsOf: lists are limited to a scoped coordinator\'s regions\' hubs, to staff\'s hubs, and not at all for the others', () => {
    expect([...hubsOf(coordA, lookup)!].sort()).toEqual(['nomi-kokufu', OWN].sort());
    expect([...hubsOf(staff, lookup)!].sort()).toEqual(['nomi-kokufu', OWN].sort());
    expect(hubsOf(account('coordinator'), lookup)).toBeNull();
    expect(hubsOf(account('admin'), lookup)).toBeNull();
    expect(inScope(coordA, [OTHER], lookup)).toBe(false);
    expect(inScope(coordA, [OTHER, OWN], lookup)).toBe(true);
  });
});
