import http from 'node:http';
import net from 'node:net';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createInfluxDatabase, freePorts, influxAdminQuery, startInfluxd, type Influxd } from '../../test/support/influxd.ts';
import {
  createInfluxTelemetryStore,
  decodeStringField,
  encodeStringField,
  lineProtocol,
  quoteIdent,
  quoteString,
  readFieldStrings,
  type InfluxTelemetryStoreOptions,
  type TelemetryStoreLogger,
} from './influx-telemetry-store.ts';
import { describeTelemetryStoreContract } from './telemetry-store.contract.ts';
import { TelemetryStoreError, type TelemetryPoint, type TelemetryStore } from './telemetry-store.ts';

const T0 = 1_764_000_000_000;

function drone(i: number, hub = 'h1'): TelemetryPoint {
  return {
    measurement: 'drone', tags: { region: 'r', hub, device: 'drone-1' }, ts: T0 + i, msgId: `m-${i}`,
    fields: { msg_id: `m-${i}`, battery_pct: 50 + (i % 50), flight_state: 'mission' },
  };
}

async function rejection(p: Promise<unknown>): Promise<TelemetryStoreError> {
  const err = await p.then(
    () => new Error('expected a rejection'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TelemetryStoreError);
  return err as TelemetryStoreError;
}

let influxd: Influxd;
let dbSeq = 0;
const newDatabase = () => `t${process.pid}_${++dbSeq}`;

beforeAll(async () => {
  influxd = await startInfluxd();
});
afterAll(async () => {
  await influxd?.stop();
});

describeTelemetryStoreContract('influxdb 1.6', async () => {
  const database = newDatabase();
  await createInfluxDatabase(influxd.url, database);
  const connection = { url: influxd.url, database };
  const store = await createInfluxTelemetryStore(connection);
  return {
    store,
    readStrings: (q) => readFieldStrings(connection, q),
    cleanup: async () => {
      await store.close();
      await influxAdminQuery(influxd.url, `DROP DATABASE ${quoteIdent(database)}`);
    },
  };
});

describe('InfluxDB line protocol and InfluxQL encoding', () => {
  it('sorts tags, escapes keys and values, writes numbers as floats and quotes strings', () => {
    const line = lineProtocol({
      measurement: 'event',
      tags: { region: 'r', hub: 'h', device: 'd', compartment: 'B 1,x=y', empty: '' },
      fields: { msg_id: 'ignored', detail: 'say "hi", a=b\\c\nnext', value: 3, 'odd key,=': -0.5 },
      ts: T0,
      msgId: 'm-1',
    });
    expect(line).toBe(
      String.raw`event,compartment=B\ 1\,x\=y,device=d,hub=h,region=r msg_id="m-1",detail="say \"hi\", a=b\\\\c\\nnext",value=3,odd\ key\,\==-0.5 1764000000000`,
    );
  });

  it('encodes string fields reversibly, with no raw line break left', () => {
    for (const s of ['', 'a\\nb', 'line\nbreak\r\n', '\\', '\\\\n', '日本語 "q"']) {
      expect(encodeStringField(s)).not.toMatch(/[\n\r]/);
      expect(decodeStringField(encodeStringField(s))).toBe(s);
    }
  });

  it('refuses, as non-retryable, points that line protocol cannot carry', () => {
    const base = drone(1);
    for (const bad of [
      { ...base, ts: T0 + 0.5 },
      { ...base, fields: { battery_pct: Number.POSITIVE_INFINITY } },
      { ...base, tags: { ...base.tags, compartment: 'A\n1' } },
      { ...base, tags: { ...base.tags, compartment: 'A\\' } },
    ]) {
      let err: unknown;
      try {
        lineProtocol(bad);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(TelemetryStoreError);
      expect((err as TelemetryStoreError).code).toBe('rejected');
      expect((err as Error).message).toContain('m-1');
    }
  });

  it('quotes InfluxQL identifiers and string literals', () => {
    expect(quoteString("it's a \\ test")).toBe(String.raw`'it\'s a \\ test'`);
    expect(quoteString('two\nlines')).toBe(String.raw`'two\nlines'`);
    expect(quoteIdent('we"ird\\')).toBe(String.raw`"we\"ird\\"`);
  });
});

describe('InfluxDB telemetry store against influxd', () => {
  const opened: TelemetryStore[] = [];
  const open = async (o: InfluxTelemetryStoreOptions) => {
    const s = await createInfluxTelemetryStore(o);
    opened.push(s);
    return s;
  };
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((s) => s.close()));
  });

  it('fails fast with "unreachable" and a message naming the URL when nothing listens', async () => {
    const [port] = await freePorts(1);
    const url = `http://127.0.0.1:${port}`;
    const started = Date.now();
    const err = await rejection(createInfluxTelemetryStore({ url, database: 'x', timeoutMs: 500 }));
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(err.code).toBe('unreachable');
    expect(err.retryable).toBe(true);
    expect(err.message).toContain(`127.0.0.1:${port}`);
    expect(err.message).toContain('INFLUX_URL');
    expect(err.message).toContain('ECONNREFUSED');
  });

  it('gives up on a server that accepts but never answers after the request timeout', async () => {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
    try {
      const started = Date.now();
      const err = await rejection(createInfluxTelemetryStore({ url, database: 'x', timeoutMs: 300 }));
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(err.code).toBe('unreachable');
      expect(err.message).toContain('no answer within 300 ms');
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  });

  it('reports a missing database as "config", naming INFLUX_DB and INFLUX_CREATE_DB, and creates it when asked', async () => {
    const database = newDatabase();
    const err = await rejection(createInfluxTelemetryStore({ url: influxd.url, database }));
    expect(err.code).toBe('config');
    expect(err.message).toContain(`"${database}"`);
    expect(err.message).toContain('INFLUX_DB');
    expect(err.message).toContain('INFLUX_CREATE_DB=true');

    const store = await open({ url: influxd.url, database, createDatabase: true });
    await store.write([drone(1)]);
    const again = await open({ url: influxd.url, database, createDatabase: true }); // idempotent
    expect(await again.countPoints('drone', 'h1', T0, T0 + 10)).toBe(1);
  });

  it('writes into the configured retention policy and refuses an unknown one', async () => {
    const database = newDatabase();
    await createInfluxDatabase(influxd.url, database);
    await influxAdminQuery(influxd.url, `CREATE RETENTION POLICY "ten_years" ON ${quoteIdent(database)} DURATION 520w REPLICATION 1`);
    const store = await open({ url: influxd.url, database, retentionPolicy: 'ten_years' });
    await store.write([drone(1), drone(2)]);
    expect(await store.countPoints('drone', 'h1', T0, T0 + 10)).toBe(2);
    const plain = await open({ url: influxd.url, database });
    expect(await plain.countPoints('drone', 'h1', T0, T0 + 10)).toBe(0); // not in the default policy

    const err = await rejection(createInfluxTelemetryStore({ url: influxd.url, database, retentionPolicy: 'nope' }));
    expect(err.code).toBe('config');
    expect(err.message).toContain('INFLUX_RP');
  });

  it('passes on InfluxDB\'s own message when it refuses points (field type conflict) as "rejected"', async () => {
    const database = newDatabase();
    await createInfluxDatabase(influxd.url, database);
    const store = await open({ url: influxd.url, database, logger: pino({ level: 'silent' }) });
    await store.write([drone(1)]);
    const conflicting = { ...drone(2), fields: { battery_pct: 'full' } };
    const err = await rejection(store.write([conflicting]));
    expect(err.code).toBe('rejected');
    expect(err.retryable).toBe(false);
    expect(err.message).toContain('field type conflict');
  });

  it('with auth enabled: wrong or missing credentials are "auth", the right ones work', async () => {
    const secured = await startInfluxd({ authEnabled: true });
    try {
      const admin = { username: 'admin', password: "s3cret 'quoted'" };
      const database = 'secured';
      await createInfluxDatabase(secured.url, database, { admin });

      const wrong = await rejection(createInfluxTelemetryStore({ url: secured.url, database, username: 'admin', password: 'nope' }));
      expect(wrong.code).toBe('auth');
      expect(wrong.retryable).toBe(false);
      expect(wrong.message).toContain('INFLUX_TOKEN');
      expect(wrong.message).toContain('INFLUX_USERNAME');
      expect(wrong.message).not.toContain('nope'); // the password never appears in messages

      const none = await rejection(createInfluxTelemetryStore({ url: secured.url, database }));
      expect(none.code).toBe('auth');

      const store = await open({ url: secured.url, database, ...admin });
      await store.write([drone(1), drone(2), drone(3)]);
      expect(await store.countPoints('drone', 'h1', T0, T0 + 10)).toBe(3);
    } finally {
      await secured.stop();
    }
  });

  it('holds a write while influxd is down and completes it, losing nothing, once it is back', async () => {
    const crashing = await startInfluxd();
    try {
      const database = 'crash';
      await createInfluxDatabase(crashing.url, database);
      const warnings: object[] = [];
      const logger: TelemetryStoreLogger = { debug() {}, info() {}, warn: (o) => warnings.push(o), error() {} };
      const store = await open({ url: crashing.url, database, maxRetries: 60, retryBaseDelayMs: 50, retryMaxDelayMs: 200, timeoutMs: 2_000, logger });
      const before = Array.from({ length: 500 }, (_, i) => drone(i));
      const during = Array.from({ length: 500 }, (_, i) => drone(500 + i));
      await store.write(before);

      await crashing.kill();
      let settled = false;
      const pending = store.write(during).finally(() => {
        settled = true;
      });
      await new Promise((r) => setTimeout(r, 600));
      expect(settled).toBe(false); // still retrying, not failed
      await crashing.restart();
      await pending;

      expect(warnings.length).toBeGreaterThan(0);
      expect(await store.countPoints('drone', 'h1', T0, T0 + 1_000)).toBe(1_000);
      expect(await store.messageIds('h1', T0, T0 + 1_000)).toHaveLength(1_000);
    } finally {
      await crashing.stop();
    }
  });
});

/** A stand-in InfluxDB that records requests; `onWrite` decides the /write status. */
async function fakeInflux(onWrite: (n: number) => { status: number; headers?: Record<string, string>; body?: string } = () => ({ status: 204 })) {
  const requests: { method: string; url: URL; headers: http.IncomingHttpHeaders; body: string }[] = [];
  let writes = 0;
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://fake');
      requests.push({ method: req.method ?? '', url, headers: req.headers, body });
      if (url.pathname === '/ping') {
        res.writeHead(204).end();
      } else if (url.pathname === '/query') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(
          JSON.stringify({ results: [{ statement_id: 0, series: [{ name: 'retention_policies', columns: ['name', 'duration', 'default'], values: [['autogen', '0s', true]] }] }] }),
        );
      } else if (url.pathname === '/write') {
        const r = onWrite(++writes);
        res.writeHead(r.status, r.headers).end(r.body ?? '');
      } else {
        res.writeHead(404).end();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    requests,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describe('InfluxDB telemetry store HTTP behaviour (stand-in server)', () => {
  it('sends a token as "Authorization: Token", and v1 credentials as u/p, never both', async () => {
    const fake = await fakeInflux();
    try {
      const withToken = await createInfluxTelemetryStore({ url: fake.url, database: 'db', token: 's3cr3t-token' });
      await withToken.write([drone(1)]);
      await withToken.close();
      expect(fake.requests.map((r) => r.url.pathname)).toEqual(['/ping', '/query', '/write']);
      for (const r of fake.requests) {
        expect(r.headers.authorization).toBe('Token s3cr3t-token');
        expect(r.url.searchParams.has('p')).toBe(false);
      }
      const write = fake.requests[2]!;
      expect(write.method).toBe('POST');
      expect(Object.fromEntries(write.url.searchParams)).toEqual({ db: 'db', precision: 'ms' });
      expect(write.body).toBe('drone,device=drone-1,hub=h1,region=r msg_id="m-1",battery_pct=51,flight_state="mission" 1764000000001');

      fake.requests.length = 0;
      const withUser = await createInfluxTelemetryStore({ url: fake.url, database: 'db', username: 'ops', password: 'pw' });
      await withUser.close();
      for (const r of fake.requests) {
        expect(r.headers.authorization).toBeUndefined();
        expect(r.url.searchParams.get('u')).toBe('ops');
        expect(r.url.searchParams.get('p')).toBe('pw');
      }
      await expect(createInfluxTelemetryStore({ url: fake.url, database: 'db', token: 't', username: 'u', password: 'p' })).rejects.toMatchObject({ code: 'config' });
    } finally {
      await fake.close();
    }
  });

  it('retries 503 and 429 with back-off, then succeeds', async () => {
    const fake = await fakeInflux((n) => (n === 1 ? { status: 503, body: '{"error":"overloaded"}' } : n === 2 ? { status: 429, headers: { 'retry-after': '0' } } : { status: 204 }));
    try {
      const store = await createInfluxTelemetryStore({ url: fake.url, database: 'db', retryBaseDelayMs: 10, maxRetries: 3 });
      await store.write([drone(1)]);
      await store.close();
      expect(fake.requests.filter((r) => r.url.pathname === '/write')).toHaveLength(3);
    } finally {
      await fake.close();
    }
  });

  it('gives up after maxRetries with a retryable "unavailable" error that says so', async () => {
    const fake = await fakeInflux(() => ({ status: 500, body: '{"error":"engine: cache full"}' }));
    try {
      const store = await createInfluxTelemetryStore({ url: fake.url, database: 'db', retryBaseDelayMs: 5, maxRetries: 2 });
      const err = await rejection(store.write([drone(1)]));
      await store.close();
      expect(err.code).toBe('unavailable');
      expect(err.retryable).toBe(true);
      expect(err.message).toContain('cache full');
      expect(err.message).toContain('gave up after 3 attempts');
      expect(fake.requests.filter((r) => r.url.pathname === '/write')).toHaveLength(3);
    } finally {
      await fake.close();
    }
  });

  it('splits a large write into requests of at most 5,000 lines', async () => {
    const fake = await fakeInflux();
    try {
      const store = await createInfluxTelemetryStore({ url: fake.url, database: 'db' });
      await store.write(Array.from({ length: 12_001 }, (_, i) => drone(i)));
      await store.close();
      const lines = fake.requests.filter((r) => r.url.pathname === '/write').map((r) => r.body.split('\n').length);
      expect(lines).toEqual([5_000, 5_000, 2_001]);
    } finally {
      await fake.close();
    }
  });
});
