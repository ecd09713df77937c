import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { everyRaisedAlarm } from '../cloud/alarms/alarm-fixtures.ts';
import type { OrderStore } from '../cloud/orders/order-store.ts';
import { ROOT, startTestCloud, tempDir, type TestCloud } from './support/cloud-harness.ts';

/**
 * The OpenAPI document integrators build from (GET /docs/json; issue 13, item 7): it lints clean with
 * Redocly's recommended rules (redocly.yaml), and it tells the truth — every request below, made as an
 * integrator would make it (no session, the wrong role, a cross-site page, a bad body, a made-up id,
 * the happy path), gets an answer whose status the operation documents, with a body that validates
 * against the documented schema, and an error code that the documented answer names.
 */
const REGION = 'ishikawa-nomi';
const HUB = 'nomi-terai';

interface Operation {
  operationId?: string;
  tags?: string[];
  security?: Record<string, string[]>[];
  responses: Record<string, { description: string; content?: Record<string, { schema: object }> }>;
}
interface OpenApi {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { securitySchemes: Record<string, object> };
}

let t: TestCloud;
let doc: OpenApi;
const tokens: Record<string, string> = {};

beforeAll(async () => {
  // One live-feed stream in all, and a wait after the first wrong password: so the 429s can be seen too.
  t = await startTestCloud({ MQTT_WS_PORT: 'off', EVENTS_MAX_STREAMS: '1', SIGNIN_FREE_FAILURES_PER_USERNAME: '1' });
  doc = (await t.cloud.app.inject({ method: 'GET', url: '/docs/json' })).json();
  await freshTokens();
});

/** New tokens for each role (signing out ends the token it is sent with). */
async function freshTokens() {
  tokens.admin = await t.tokenFor('test-admin');
  tokens.staff = await t.tokenFor('openapi-staff', 'staff', [HUB]);
  tokens.operator = await t.tokenFor('openapi-operator', 'operator');
  tokens.coordinator = await t.tokenFor('openapi-coordinator', 'coordinator');
}
afterAll(async () => t?.stop());

/** Every operation of the document as `METHOD /path/{param}`. */
function operations(): [string, Operation][] {
  return Object.entries(doc.paths).flatMap(([p, ops]) => Object.entries(ops).map(([m, op]) => [`${m.toUpperCase()} ${p}`, op] as [string, Operation]));
}

describe('the OpenAPI document', () => {
  it('lints with 0 errors and 0 warnings under Redocly\'s recommended rules', async () => {
    const dir = tempDir('openapi');
    const file = path.join(dir, 'openapi.json');
    fs.writeFileSync(file, JSON.stringify(doc, null, 2));
    const run = promisify(execFile);
    const args = ['lint', '--config', path.join(ROOT, 'redocly.yaml'), '--format', 'json', file];
    const env = { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' };
    // redocly exits 1 when it finds errors; its JSON report is on stdout either way.
    const out = await run(path.join(ROOT, 'node_modules/.bin/redocly'), args, { env, maxBuffer: 16 * 1024 * 1024 })
      .catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }));
    fs.rmSync(dir, { recursive: true, force: true });
    const report = JSON.parse(out.stdout) as { totals: { errors: number; warnings: number }; problems: { ruleId: string; severity: string; message: string; location: { pointer: string }[] }[] };
    const problems = report.problems.map((p) => `${p.severity} ${p.ruleId}: ${p.message} (${p.location[0]?.pointer})`);
    console.log(`redocly lint: ${report.totals.errors} errors, ${report.totals.warnings} warnings`);
    expect(problems).toEqual([]);
    expect(report.totals).toMatchObject({ errors: 0, warnings: 0 });
  });

  it('names both ways to authenticate, and every operation says whether it needs one, with an id and a tag', () => {
    expect(doc.components.securitySchemes).toMatchObject({
      session: { type: 'apiKey', in: 'cookie', name: 'chiiki_session' },
      bearer: { type: 'http', scheme: 'bearer' },
    });
    const open = t.cloud.app.registeredRoutes.filter((r) => r.public).map((r) => `${r.method} ${r.url.replace(/:(\w+)/g, '{$1}')}`);
    const ids = new Set<string>();
    for (const [name, op] of operations()) {
      expect(op.operationId, name).toMatch(/^[a-z][A-Za-z]+$/);
      ids.add(op.operationId!);
      expect(op.tags?.length, name).toBeGreaterThan(0);
      if (open.includes(name)) expect(op.security, name).toEqual([]);
      else {
        expect(op.security, name).toEqual([{ session: [] }, { bearer: [] }]);
        expect(Object.keys(op.responses), name).toEqual(expect.arrayContaining(['401', '403']));
      }
      for (const [status, r] of Object.entries(op.responses)) {
        if (status !== '204') expect(r.content, `${name} ${status} has a body schema`).toBeDefined();
      }
    }
    expect(ids.size).toBe(operations().length);
  });
});

// ------------------------------------------------------------------------------------- the probes

interface Probe {
  method: string;
  url: string;
  as?: keyof typeof tokens | 'anonymous';
  body?: unknown;
  /** A raw body (sent as is) instead of JSON. */
  raw?: string;
  headers?: Record<string, string>;
}

/** One observed answer, checked against the document. */
interface Observed { operation: string; status: number; code?: string }
const observed: Observed[] = [];

/** The documented operation a request path belongs to (`/api/v1/hubs/x` → `/api/v1/hubs/{hubId}`). */
function operationOf(method: string, url: string): { name: string; op: Operation } | null {
  const pathOnly = url.split('?')[0]!;
  const matches = Object.entries(doc.paths).filter(([p]) => new RegExp(`^${p.replace(/\{\w+\}/g, '[^/]+')}$`).test(pathOnly));
  // Static segments win over parameters (/api/v1/regions/x/mode before …/{regionId}/…).
  matches.sort(([a], [b]) => (a.match(/\{/g)?.length ?? 0) - (b.match(/\{/g)?.length ?? 0));
  for (const [p, ops] of matches) {
    const op = ops[method.toLowerCase()];
    if (op) return { name: `${method} ${p}`, op };
  }
  return null;
}

let ajv: Ajv2020;
function validatorFor(name: string, status: number, type: string) {
  if (!ajv) {
    ajv = new Ajv2020({ strict: false, allErrors: true, validateSchema: false });
    addFormats.default(ajv);
    ajv.addSchema({ ...doc, $id: 'openapi' });
  }
  const [method, p] = name.split(' ') as [string, string];
  const pointer = ['paths', p, method.toLowerCase(), 'responses', String(status), 'content', type, 'schema']
    .map((s) => s.replace(/~/g, '~0').replace(/\//g, '~1')).join('/');
  return ajv.getSchema(`openapi#/${pointer}`) ?? ajv.compile({ $ref: `openapi#/${pointer}` });
}

async function probe(p: Probe): Promise<Observed> {
  const headers: Record<string, string> = { ...p.headers };
  const who = p.as ?? 'admin';
  if (who !== 'anonymous') headers.authorization = `Bearer ${tokens[who]}`;
  let payload: string | undefined;
  if (p.raw !== undefined) payload = p.raw;
  else if (p.body !== undefined) {
    payload = JSON.stringify(p.body);
    headers['content-type'] ??= 'application/json';
  }
  const res = await t.cloud.app.inject({ method: p.method as 'GET', url: p.url, headers, payload });
  const found = operationOf(p.method, p.url);
  const what = `${p.method} ${p.url} as ${who} → ${res.statusCode} ${res.body.slice(0, 300)}`;
  expect(found, `${what}: no documented operation`).not.toBeNull();
  const { name, op } = found!;
  const documented = op.responses[String(res.statusCode)];
  expect(documented, `${what}: ${name} does not document ${res.statusCode} (documents ${Object.keys(op.responses).join(', ')})`).toBeDefined();
  let code: string | undefined;
  if (res.statusCode !== 204) {
    const type = String(res.headers['content-type']).split(';')[0]!;
    expect(Object.keys(documented!.content ?? {}), `${what}: content type`).toContain(type);
    if (type === 'application/json') {
      const body = res.json();
      const validate = validatorFor(name, res.statusCode, type);
      expect(validate(body) ? [] : validate.errors, `${what}: body does not match the documented schema`).toEqual([]);
      code = (body as { error?: { code?: string } }).error?.code;
      // The answer's description names every error code it stands for.
      if (code !== undefined) expect(documented!.description, `${what}: the documented ${res.statusCode} does not name \`${code}\``).toContain(`\`${code}\``);
    }
  } else expect(res.body).toBe('');
  const o = { operation: name, status: res.statusCode, code };
  observed.push(o);
  return o;
}

/** Path parameters filled in with ids that exist where the happy path needs them. */
const REAL_PARAMS: Record<string, string> = { hubId: HUB, regionId: REGION, username: 'openapi-staff', alarmId: 'no-such-alarm', orderId: 'no-such-order', commandId: '00000000-0000-4000-8000-000000000000' };
const fill = (p: string, params: Record<string, string> = REAL_PARAMS) => p.replace(/\{(\w+)\}/g, (_m, k: string) => encodeURIComponent(params[k] ?? `zz-${k}`));
const isMutating = (m: string) => m !== 'GET' && m !== 'HEAD';
/** The live feed keeps its answer open: only requests refused before it starts are made. */
const STREAMS = new Set(['GET /api/v1/events']);

describe('the document against real answers', () => {
  it('documents what every operation answers to no session, the wrong role, a cross-site page, a bad body and a made-up id', async () => {
    for (const [name] of operations()) {
      const [method, p] = name.split(' ') as [string, string];
      const url = fill(p);
      const stream = STREAMS.has(name);
      const body = isMutating(method) ? {} : undefined;
      await probe({ method, url, as: 'anonymous', body });
      await probe({ method, url, as: 'anonymous', raw: '{', headers: { 'content-type': 'application/json' } });
      // A cross-site page: Origin on a change, Fetch Metadata on a read.
      await probe({ method, url, body, headers: isMutating(method) ? { origin: 'https://elsewhere.example' } : { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'cors' } });
      if (isMutating(method)) {
        await probe({ method, url, raw: 'a=1', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
        await probe({ method, url, raw: '{', headers: { 'content-type': 'application/json' } });
        await probe({ method, url, as: 'operator', body: {} });
        await probe({ method, url, as: 'staff', body: {} });
        await probe({ method, url, body: { unexpected: true } });
      } else if (!stream) {
        await probe({ method, url, as: 'staff' });
        await probe({ method, url, as: 'operator' });
        await probe({ method, url: fill(p, {}) });
        await probe({ method, url: `${url}?limit=0` });
      } else {
        await probe({ method, url: `${url}?hubs=${'x'.repeat(1001)}` });
      }
      if (/\{/.test(p)) await probe({ method, url: fill(p, Object.fromEntries(Object.keys(REAL_PARAMS).map((k) => [k, 'x'.repeat(65)]))), body });
      if (name === 'POST /api/v1/auth/logout') await freshTokens();
    }
  });

  it('documents the happy paths and the refusals of each feature', async () => {
    // hubs, history, commands
    await probe({ method: 'GET', url: '/api/v1/hubs' });
    await probe({ method: 'GET', url: `/api/v1/hubs/${HUB}`, as: 'staff' });
    await probe({ method: 'GET', url: `/api/v1/hubs/${HUB}/history?device=drone-1&field=battery_pct` });
    await probe({ method: 'GET', url: `/api/v1/hubs/${HUB}/history?device=drone-1&field=nope` });
    await probe({ method: 'GET', url: `/api/v1/hubs/${HUB}/history?device=nope&field=battery_pct` });
    await probe({ method: 'GET', url: `/api/v1/hubs/${HUB}/history?device=drone-1&field=battery_pct&bucket=1s&from=0` });
    const sent = await probe({ method: 'POST', url: `/api/v1/hubs/${HUB}/commands`, body: { device: 'drone-1', command: 'drone.rtl' } });
    expect(sent.status).toBe(202);
    await probe({ method: 'POST', url: `/api/v1/hubs/${HUB}/commands`, body: { device: 'locker-a', command: 'drone.rtl' } });
    await probe({ method: 'POST', url: `/api/v1/hubs/${HUB}/commands`, body: { device: 'nope', command: 'drone.rtl' } });
    await probe({ method: 'POST', url: '/api/v1/hubs/rs-komatsu-kibagata/commands', as: 'staff', body: { device: 'drone-1', command: 'drone.rtl' } });
    const commands = await t.cloud.app.inject({ method: 'GET', url: `/api/v1/hubs/${HUB}/commands`, headers: { authorization: `Bearer ${tokens.admin}` } });
    await probe({ method: 'GET', url: `/api/v1/hubs/${HUB}/commands?state=pending` });
    await probe({ method: 'GET', url: `/api/v1/commands/${commands.json().commands[0].id}` });
    await probe({ method: 'GET', url: '/api/v1/dead-letters?limit=5' });

    // sign-in, the signed-in account, sign-out
    await probe({ method: 'POST', url: '/api/v1/auth/login', as: 'anonymous', body: { username: 'openapi-staff', password: 'openapi-staff-test-password' } });
    await probe({ method: 'POST', url: '/api/v1/auth/login', as: 'anonymous', body: { username: 'openapi-staff', password: 'wrong' } });
    await probe({ method: 'GET', url: '/api/v1/auth/me', as: 'staff' });
    await probe({ method: 'POST', url: '/api/v1/auth/login', as: 'anonymous', body: { username: 'openapi-coordinator', password: 'wrong' } });
    expect((await probe({ method: 'POST', url: '/api/v1/auth/login', as: 'anonymous', body: { username: 'openapi-coordinator', password: 'wrong again' } })).status).toBe(429);
    const session = (await t.cloud.accounts.createApiToken('openapi-operator', 'sign-out')).token;
    tokens.leaving = session;
    expect((await probe({ method: 'POST', url: '/api/v1/auth/logout', as: 'leaving' })).status).toBe(204);
    expect((await probe({ method: 'GET', url: '/api/v1/auth/me', as: 'leaving' })).status).toBe(401);

    // accounts, tokens, hub credentials, audit
    expect((await probe({ method: 'POST', url: '/api/v1/accounts', body: { username: 'openapi-new', role: 'staff', hubs: [HUB] } })).status).toBe(201);
    expect((await probe({ method: 'POST', url: '/api/v1/accounts', body: { username: 'openapi-new', displayName: '新しい人' } })).status).toBe(200);
    await probe({ method: 'POST', url: '/api/v1/accounts', body: { username: 'openapi-norole' } });
    await probe({ method: 'GET', url: '/api/v1/accounts' });
    await probe({ method: 'POST', url: '/api/v1/accounts/openapi-new/tokens', body: { label: 'integration' } });
    await probe({ method: 'POST', url: '/api/v1/accounts/nobody-here/tokens', body: {} });
    await probe({ method: 'POST', url: `/api/v1/hubs/${HUB}/credentials` });
    await probe({ method: 'POST', url: '/api/v1/hubs/no-such-hub/credentials' });
    await probe({ method: 'GET', url: '/api/v1/audit?limit=3', as: 'coordinator' });

    // modes and proposals
    await probe({ method: 'POST', url: `/api/v1/regions/${REGION}/mode`, as: 'coordinator', body: { mode: 'emergency', hubs: [HUB], reason: 'openapi test' } });
    await probe({ method: 'POST', url: `/api/v1/regions/${REGION}/mode`, as: 'coordinator', body: { mode: 'normal', hubs: ['not-a-hub-here'], reason: 'openapi test' } });
    await probe({ method: 'POST', url: '/api/v1/regions/no-region/mode', as: 'coordinator', body: { mode: 'normal', reason: 'openapi test' } });
    await probe({ method: 'GET', url: `/api/v1/regions/${REGION}/mode`, as: 'staff' });
    await probe({ method: 'GET', url: `/api/v1/regions/${REGION}/mode/history` });
    const proposal = { source: 'openapi-test', mode: 'emergency', reason: 'test', evidence: { eventId: 'e-1' } };
    expect((await probe({ method: 'POST', url: `/api/v1/regions/${REGION}/mode-proposals`, body: proposal })).status).toBe(201);
    expect((await probe({ method: 'POST', url: `/api/v1/regions/${REGION}/mode-proposals`, body: proposal })).status).toBe(200);
    await probe({ method: 'POST', url: `/api/v1/regions/${REGION}/mode-proposals`, body: { ...proposal, hubs: ['not-a-hub-here'] } });
    // Evidence nested past 16 levels: 400 (200,000 levels overflowed the size check's stack: a 500, found in review).
    const deep = `{"source":"openapi-test","mode":"emergency","reason":"deep","evidence":{"a":${'['.repeat(200_000)}${']'.repeat(200_000)}}}`;
    expect(await probe({ method: 'POST', url: `/api/v1/regions/${REGION}/mode-proposals`, as: 'coordinator', raw: deep, headers: { 'content-type': 'application/json' } }))
      .toMatchObject({ status: 400, code: 'validation' });
    // The sender is the credential's account, and the same source and event id from another account is its own proposal.
    const asCoordinator = await t.cloud.app.inject({
      method: 'POST', url: `/api/v1/regions/${REGION}/mode-proposals`, headers: { authorization: `Bearer ${tokens.coordinator}`, 'content-type': 'application/json' },
      payload: JSON.stringify(proposal),
    });
    expect(asCoordinator.statusCode).toBe(201);
    expect(asCoordinator.json()).toMatchObject({ by: 'openapi-coordinator', source: 'openapi-test', eventId: 'e-1' });
    await probe({ method: 'GET', url: `/api/v1/regions/${REGION}/mode-proposals?state=open` });
    await probe({ method: 'POST', url: `/api/v1/regions/${REGION}/mode`, as: 'coordinator', body: { mode: 'normal', reason: 'openapi test over' } });

    // orders: create (201), read, the actions that do not apply yet (409), cancel
    const order = { originHub: 'rs-komatsu-kibagata', destination: { type: 'locker', hub: HUB }, weightKg: 1.2 };
    const created = await probe({ method: 'POST', url: '/api/v1/orders', as: 'coordinator', body: order });
    expect(created.status).toBe(201);
    await probe({ method: 'POST', url: '/api/v1/orders', as: 'staff', body: order });
    await probe({ method: 'POST', url: '/api/v1/orders', as: 'staff', body: { ...order, priority: 'relief' } });
    await probe({ method: 'POST', url: '/api/v1/orders', as: 'staff', body: { ...order, originHub: 'rs-shirayamasan', destination: { type: 'locker', hub: 'nomi-kokufu' } } });
    await probe({ method: 'POST', url: '/api/v1/orders', body: { ...order, destination: { type: 'site', siteId: 'no-such-site' } } });
    const list = await t.cloud.app.inject({ method: 'GET', url: '/api/v1/orders?limit=1', headers: { authorization: `Bearer ${tokens.admin}` } });
    const orderId = list.json().orders[0].id as string;
    await probe({ method: 'GET', url: '/api/v1/orders?limit=5', as: 'staff' });
    await probe({ method: 'GET', url: `/api/v1/orders/${orderId}`, as: 'staff' });
    await probe({ method: 'POST', url: `/api/v1/orders/${orderId}/pickup-code` });
    await probe({ method: 'POST', url: `/api/v1/orders/${orderId}/unlock-compartment`, body: {} });
    await probe({ method: 'POST', url: `/api/v1/orders/${orderId}/ground-round`, body: { step: 'loaded' } });
    expect((await probe({ method: 'POST', url: `/api/v1/orders/${orderId}/cancel`, as: 'coordinator', body: { reason: 'openapi test' } })).status).toBe(200);
    await probe({ method: 'POST', url: `/api/v1/orders/${orderId}/cancel`, as: 'coordinator', body: { reason: 'again' } });
    await probe({ method: 'GET', url: `/api/v1/flight-log?orderId=${orderId}` });

    // The actions' successes need a parcel in a locker or on a ground round: put orders there directly,
    // as the devices would have (the whole story runs in orders.test.ts and ground-rounds.test.ts).
    const store = (t.cloud.orders as unknown as { o: { store: OrderStore } }).o.store;
    const newOrder = async () => (await t.cloud.app.inject({ method: 'POST', url: '/api/v1/orders', headers: { authorization: `Bearer ${tokens.admin}` }, payload: order })).json().id as string;
    const now = Date.now();
    const inLocker = await newOrder();
    await store.transition(inLocker, 'assigned', now, 'system', 'test', { carrier: 'drone', droneHub: 'rs-komatsu-kibagata', droneId: 'drone-1', lockerId: 'locker-a', compartmentId: 'A04', missionId: `m-${inLocker}` });
    await store.transition(inLocker, 'in_flight', now, 'system', 'test');
    await store.transition(inLocker, 'in_locker', now, 'system', 'test', { pickupHash: 'x', pickupReveal: '424242' });
    expect((await probe({ method: 'POST', url: `/api/v1/orders/${inLocker}/pickup-code`, as: 'staff' })).status).toBe(200);
    await store.update(inLocker, now, { wrongCodes: 3, locked: true });
    expect((await probe({ method: 'POST', url: `/api/v1/orders/${inLocker}/unlock-compartment`, as: 'staff', body: { reason: 'checked' } })).status).toBe(200);
    const onRound = await newOrder();
    await store.transition(onRound, 'assigned', now, 'system', 'test', { carrier: 'ground', roundId: 'round-test', roundDepartsAt: now });
    expect((await probe({ method: 'POST', url: `/api/v1/orders/${onRound}/ground-round`, as: 'staff', body: { step: 'loaded' } })).status).toBe(200);
    await probe({ method: 'GET', url: `/api/v1/orders/${onRound}` });

    // the live feed: a stream over a real socket (it stays open), then the next one is refused
    const feed = new AbortController();
    const stream = await fetch(`${t.cloud.urls.http}/api/v1/events`, { headers: { authorization: `Bearer ${tokens.staff}` }, signal: feed.signal });
    const live = operationOf('GET', '/api/v1/events')!;
    expect(stream.status).toBe(200);
    expect(Object.keys(live.op.responses['200']!.content ?? {})).toContain(String(stream.headers.get('content-type')).split(';')[0]);
    observed.push({ operation: live.name, status: stream.status });
    expect((await probe({ method: 'GET', url: '/api/v1/events' })).code).toBe('too_many_streams');
    feed.abort();

    // the consoles' region file; health
    await probe({ method: 'GET', url: '/api/v1/region', as: 'staff' });
    await probe({ method: 'GET', url: '/healthz', as: 'anonymous' });

    // alarms: every way one is raised (each kind with its params), at the staff account's hub and elsewhere
    const raised = await Promise.all(everyRaisedAlarm().map((a, i) => t.cloud.alarms.raise({
      hub: i % 2 === 0 ? HUB : 'rs-komatsu-kibagata', device: a.device ?? undefined, compartment: a.compartment ?? undefined,
      kind: a.kind, params: a.params, deviceDetail: a.deviceDetail ?? undefined, detail: a.how,
    })));
    await probe({ method: 'GET', url: '/api/v1/alarms?state=active&limit=500' });
    await probe({ method: 'GET', url: '/api/v1/alarms', as: 'staff' });
    await probe({ method: 'GET', url: '/api/v1/alarms?hub=rs-komatsu-kibagata', as: 'staff' });
    await probe({ method: 'GET', url: `/api/v1/alarms/${raised[1]!.id}`, as: 'staff' });
    await probe({ method: 'GET', url: `/api/v1/alarms/${raised[0]!.id}`, as: 'staff' });
    expect((await probe({ method: 'POST', url: `/api/v1/alarms/${raised[0]!.id}/ack`, as: 'staff', body: { note: 'on my way' } })).status).toBe(200);
    expect((await probe({ method: 'POST', url: `/api/v1/alarms/${raised[0]!.id}/clear`, as: 'coordinator', body: { note: 'checked' } })).status).toBe(200);
    expect((await probe({ method: 'POST', url: `/api/v1/alarms/${raised[0]!.id}/ack`, as: 'coordinator', body: {} })).status).toBe(409);
    expect((await probe({ method: 'POST', url: `/api/v1/alarms/${raised[0]!.id}/clear`, as: 'coordinator', body: {} })).status).toBe(409);
    await probe({ method: 'POST', url: `/api/v1/alarms/${raised[1]!.id}/clear`, as: 'staff', body: {} });
    await probe({ method: 'POST', url: '/api/v1/alarms/no-such-alarm/ack', as: 'coordinator', body: { note: 'seen' } });
  });

  it('covered every documented operation with its success and its refusals', () => {
    const byOperation = new Map<string, Set<number>>();
    for (const o of observed) byOperation.set(o.operation, (byOperation.get(o.operation) ?? new Set()).add(o.status));
    const ops = operations().map(([name]) => name);
    const pairs = [...byOperation.values()].reduce((n, s) => n + s.size, 0);
    const documented = operations().reduce((n, [, op]) => n + Object.keys(op.responses).length, 0);
    console.log(`OpenAPI vs real answers: ${observed.length} requests, ${byOperation.size} of ${ops.length} operations, ${pairs} of ${documented} documented (operation, status) pairs observed, `
      + `error codes seen: ${new Set(observed.map((o) => o.code).filter(Boolean)).size}`);
    expect(ops.filter((name) => !byOperation.has(name))).toEqual([]);
    const neverSucceeded = ops.filter((name) => ![...byOperation.get(name)!].some((s) => s < 300));
    expect(neverSucceeded).toEqual([]);
  });
});
