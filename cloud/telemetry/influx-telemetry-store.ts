import http from 'node:http';
import https from 'node:https';
import { backoffDelayMs } from '../../shared/backoff.ts';
import {
  MESSAGE_MEASUREMENTS,
  TelemetryStoreError,
  type Aggregate,
  type HistoryBucket,
  type HistoryQuery,
  type Measurement,
  type TelemetryPoint,
  type TelemetryStore,
  type TelemetryStoreLogger,
} from './telemetry-store.ts';

/**
 * The InfluxDB adapter of the telemetry store port. It speaks only the v1-compatible HTTP API —
 * `POST /write` (line protocol) and `GET|POST /query` (InfluxQL) — which InfluxDB 1.x serves natively,
 * 2.x serves through DBRP mappings and 3 Core serves as its v1 compatibility API.
 *
 * Line protocol reference: https://docs.influxdata.com/influxdb/v1/write_protocols/line_protocol_reference/
 * InfluxQL string/identifier escapes: https://docs.influxdata.com/influxdb/v1/query_language/spec/#strings
 */

export type { TelemetryStoreLogger };

export interface InfluxConnectionOptions {
  /** Base URL, e.g. http://influxdb:8086 (a path prefix behind a proxy is kept). */
  url: string;
  database: string;
  /** Omitted: the database's default retention policy. */
  retentionPolicy?: string | undefined;
  /** API token, sent as `Authorization: Token <token>` (InfluxDB 2.x and 3). */
  token?: string | undefined;
  /** InfluxDB 1.x user, sent as the v1 `u`/`p` query parameters. */
  username?: string | undefined;
  password?: string | undefined;
  /** Per HTTP request. Default 10 s. */
  timeoutMs?: number;
  /** Retries after the first attempt for network errors, timeouts, 408, 429 and 5xx. Default 5. */
  maxRetries?: number;
  /** First back-off delay; doubles per retry, with jitter. Default 200 ms. */
  retryBaseDelayMs?: number;
  /** Back-off ceiling (also caps a server's Retry-After). Default 10 s. */
  retryMaxDelayMs?: number;
  logger?: TelemetryStoreLogger;
}

export interface InfluxTelemetryStoreOptions extends InfluxConnectionOptions {
  /** Issue `CREATE DATABASE` at start (idempotent on 1.x; 2.x and 3 need the database/DBRP made beforehand). */
  createDatabase?: boolean;
  /** Lines per write request; larger writes are split. Default 5,000 (InfluxData's recommended batch size). */
  maxLinesPerRequest?: number;
}

export async function createInfluxTelemetryStore(options: InfluxTelemetryStoreOptions): Promise<TelemetryStore> {
  const http = new InfluxHttp(options);
  await http.ping();
  if (options.createDatabase) await http.createDatabase();
  await http.checkDatabase();
  return new InfluxTelemetryStore(http, options.maxLinesPerRequest ?? 5_000);
}

class InfluxTelemetryStore implements TelemetryStore {
  readonly kind = 'influxdb';

  constructor(
    private readonly http: InfluxHttp,
    private readonly maxLinesPerRequest: number,
  ) {}

  async write(points: readonly TelemetryPoint[]): Promise<void> {
    if (points.length === 0) return;
    const started = performance.now();
    const lines = points.map(lineProtocol);
    let requests = 0;
    for (let i = 0; i < lines.length; i += this.maxLinesPerRequest) {
      await this.http.write(lines.slice(i, i + this.maxLinesPerRequest).join('\n'));
      requests++;
    }
    this.http.log.debug({ points: points.length, requests, ms: Math.round(performance.now() - started) }, 'points written to InfluxDB');
  }

  async history(q: HistoryQuery): Promise<HistoryBucket[]> {
    checkRange(q.from, q.to);
    if (!Number.isSafeInteger(q.bucketMs) || q.bucketMs <= 0) throw new RangeError(`bucketMs must be a positive integer, got ${q.bucketMs}`);
    const conditions = [`"hub" = ${quoteString(q.hub)}`, `"device" = ${quoteString(q.device)}`];
    for (const [key, value] of Object.entries(q.where ?? {}).sort(byKey)) conditions.push(`${quoteIdent(key)} = ${quoteString(value)}`);
    conditions.push(timeRange(q.from, q.to));
    const statement =
      `SELECT ${INFLUXQL_AGGREGATE[q.aggregate]}(${quoteIdent(q.field)}) FROM ${this.http.source(q.measurement)} ` +
      `WHERE ${conditions.join(' AND ')} GROUP BY time(${q.bucketMs}ms) fill(none)`;
    const [result] = await this.http.query(statement);
    const buckets: HistoryBucket[] = [];
    for (const series of result?.series ?? []) {
      for (const [t, value] of series.values ?? []) {
        if (typeof t === 'number' && typeof value === 'number') buckets.push({ t, value });
      }
    }
    return buckets.sort((a, b) => a.t - b.t);
  }

  async messageIds(hub: string, from: number, to: number): Promise<string[]> {
    checkRange(from, to);
    // One statement over every measurement: InfluxDB answers with one series per measurement.
    const sources = MESSAGE_MEASUREMENTS.map((m) => this.http.source(m)).join(', ');
    const [result] = await this.http.query(`SELECT DISTINCT("msg_id") FROM ${sources} WHERE "hub" = ${quoteString(hub)} AND ${timeRange(from, to)}`);
    const ids = new Set<string>();
    for (const series of result?.series ?? []) {
      for (const row of series.values ?? []) if (typeof row[1] === 'string') ids.add(row[1]);
    }
    return [...ids].sort();
  }

  async countPoints(measurement: Measurement, hub: string, from: number, to: number): Promise<number> {
    checkRange(from, to);
    // Every point carries the msg_id field, so counting it counts points.
    const [result] = await this.http.query(
      `SELECT count("msg_id") FROM ${this.http.source(measurement)} WHERE "hub" = ${quoteString(hub)} AND ${timeRange(from, to)}`,
    );
    let n = 0;
    for (const series of result?.series ?? []) for (const row of series.values ?? []) if (typeof row[1] === 'number') n += row[1];
    return n;
  }

  async close(): Promise<void> {
    this.http.close();
  }
}

const INFLUXQL_AGGREGATE: Record<Aggregate, string> = { mean: 'mean', min: 'min', max: 'max', last: 'last', count: 'count' };

/**
 * Values of one string field in [from, to), oldest first, as they were written (decoded, see
 * `encodeStringField`). The port has no read for strings; this is for tests and operator tooling.
 */
export async function readFieldStrings(
  options: InfluxConnectionOptions,
  q: { measurement: Measurement; hub: string; field: string; from: number; to: number },
): Promise<string[]> {
  checkRange(q.from, q.to);
  const http = new InfluxHttp(options);
  try {
    const [result] = await http.query(
      `SELECT ${quoteIdent(q.field)} FROM ${http.source(q.measurement)} WHERE "hub" = ${quoteString(q.hub)} AND ${timeRange(q.from, q.to)}`,
    );
    const rows: [number, string][] = [];
    for (const series of result?.series ?? []) {
      for (const [t, value] of series.values ?? []) if (typeof t === 'number' && typeof value === 'string') rows.push([t, decodeStringField(value)]);
    }
    return rows.sort((a, b) => a[0] - b[0]).map((r) => r[1]);
  } finally {
    http.close();
  }
}

// ---------------------------------------------------------------- line protocol

/**
 * One point as one line of line protocol, millisecond timestamp:
 *   measurement,tag=value,… field=1.5,detail="text",msg_id="…" 1764000000000
 * Tags are sorted by key (InfluxDB's recommendation: it saves the server a sort). Numbers are written
 * without an `i` suffix, so every number is a float: a field that once got `3` and once `3.5` never hits
 * a field type conflict. Throws TelemetryStoreError `rejected` for a point line protocol cannot carry.
 */
export function lineProtocol(p: TelemetryPoint): string {
  const fail = (why: string): never => {
    throw new TelemetryStoreError(
      `cannot store point ${p.measurement} of ${p.tags.hub}/${p.tags.device} (message ${p.msgId}): ${why}`,
      'rejected',
    );
  };
  if (!Number.isSafeInteger(p.ts)) fail(`timestamp ${p.ts} is not an integer number of milliseconds`);
  let line = cachedEscape(p.measurement, 'measurement', fail);
  // points.ts builds tag sets in key order; anything else is sorted here.
  let prev = '';
  let sorted = true;
  for (const key in p.tags) {
    if (key < prev) {
      sorted = false;
      break;
    }
    prev = key;
  }
  const tags = sorted ? p.tags : Object.fromEntries(Object.entries(p.tags).sort(byKey));
  for (const key in tags) {
    const value = tags[key]!;
    if (value === '') continue; // InfluxDB has no empty tag values; an absent tag matches '' in queries
    line += `,${cachedEscape(key, 'tag key', fail)}=${cachedEscape(value, 'tag value', fail)}`;
  }
  let fields = `msg_id=${quoteStringField(p.msgId)}`;
  for (const key in p.fields) {
    if (key === 'msg_id') continue; // always the point's own message id (see above)
    const value = p.fields[key]!;
    let encoded: string;
    if (typeof value === 'number') {
      if (!Number.isFinite(value)) fail(`field ${key} is ${value}; InfluxDB stores finite numbers only`);
      encoded = String(value); // shortest round-trip form; exponents like 1e+21 are valid line protocol
    } else {
      encoded = quoteStringField(value);
    }
    fields += `,${cachedEscape(key, 'field key', fail)}=${encoded}`;
  }
  return `${line} ${fields} ${p.ts}`;
}

/**
 * Escaped measurement names, tag keys, tag values and field keys, by their raw text: the same few
 * thousand hub, device and compartment names recur in every batch, and escaping was ~10 % of the
 * cloud's CPU at full ingest. Only strings that escaped successfully are cached.
 */
const escapes = new Map<string, string>();

function cachedEscape(s: string, what: string, fail: (why: string) => never): string {
  let e = escapes.get(s);
  if (e === undefined) {
    e = what === 'measurement' ? s.replace(/[, ]/g, '\\$&') : escapeKey(s, what, fail);
    if (escapes.size >= 100_000) escapes.clear();
    escapes.set(s, e);
  }
  return e;
}

/** Tag keys, tag values, field keys: comma, equals sign and space are escaped with a backslash. */
function escapeKey(s: string, what: string, fail: (why: string) => never): string {
  if (s === '') fail(`empty ${what}`);
  // A backslash is taken literally by 1.x but as an escape by other parsers, and newlines end the line
  // in every version: neither can be written portably, and free text never becomes a tag anyway.
  if (/[\\\n\r\t]/.test(s)) fail(`${what} ${JSON.stringify(s)} contains a backslash or a control character`);
  return s.replace(/[,= ]/g, '\\$&');
}

/**
 * String field values. Line protocol escapes only `"` and `\` inside the quotes and documents newlines
 * as unsupported (1.x happens to accept them, other parsers split the line). So before quoting, the
 * stored text gets its own reversible escape — `\` → `\\`, newline → `\n`, carriage return → `\r` —
 * which `decodeStringField` undoes. Anyone reading InfluxDB directly sees `\n` where a line broke.
 */
export function encodeStringField(s: string): string {
  return s.replace(/[\\\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\n' ? '\\n' : '\\r'));
}

export function decodeStringField(stored: string): string {
  return stored.replace(/\\([\\nr])/g, (_, c: string) => (c === 'n' ? '\n' : c === 'r' ? '\r' : '\\'));
}

function quoteStringField(s: string): string {
  if (!/[\\"\n\r]/.test(s)) return `"${s}"`;
  return `"${encodeStringField(s).replace(/[\\"]/g, '\\$&')}"`;
}

// ---------------------------------------------------------------- InfluxQL

/** InfluxQL identifier: double-quoted, with `\` and `"` escaped. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/[\\"]/g, '\\$&').replace(/\n/g, '\\n')}"`;
}

/** InfluxQL string literal: single-quoted, with `\` and `'` escaped (a raw newline is a syntax error). */
export function quoteString(value: string): string {
  return `'${value.replace(/[\\']/g, '\\$&').replace(/\n/g, '\\n')}'`;
}

function timeRange(from: number, to: number): string {
  return `time >= ${from}ms AND time < ${to}ms`;
}

function checkRange(from: number, to: number): void {
  if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to)) throw new RangeError(`from and to must be integer epoch milliseconds, got ${from}, ${to}`);
}

function byKey(a: [string, unknown], b: [string, unknown]): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;
}

// ---------------------------------------------------------------- HTTP

interface Series {
  name?: string;
  columns?: string[];
  values?: unknown[][];
  partial?: boolean;
}
interface StatementResult {
  statement_id?: number;
  series?: Series[];
  error?: string;
  partial?: boolean;
}

interface HttpReply {
  status: number;
  body: string;
  headers: { get(name: string): string | null };
}

const noopLogger: TelemetryStoreLogger = { debug() {}, info() {}, warn() {}, error() {} };

/** The v1 HTTP API with time-outs, retries and error classification. Holds no connection itself. */
class InfluxHttp {
  readonly log: TelemetryStoreLogger;
  private readonly origin: string;
  /** A path prefix (InfluxDB behind a reverse proxy), without the trailing slash. */
  private readonly basePath: string;
  /** The URL without credentials, for messages and logs. */
  readonly where: string;
  private readonly closing = new AbortController();
  /**
   * Kept-alive connections to InfluxDB. node:http, not fetch: a write is a small POST a few hundred
   * times a second, and fetch's WHATWG streams, abort signals and header objects cost ~10 % of the
   * cloud's CPU at its zero-loss rate (issue 17, item 1, profile) where node:http costs a fraction.
   */
  private readonly agent: http.Agent;
  private readonly timeoutMs: number;
  private readonly maxRetries: number;
  private readonly retryBaseDelayMs: number;
  private readonly retryMaxDelayMs: number;

  constructor(private readonly o: InfluxConnectionOptions) {
    this.log = o.logger ?? noopLogger;
    let base: URL;
    try {
      base = new URL(o.url);
    } catch {
      throw new TelemetryStoreError(`INFLUX_URL ${JSON.stringify(o.url)} is not a URL`, 'config');
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new TelemetryStoreError(`INFLUX_URL must be http(s), got ${base.protocol}`, 'config');
    if (base.username || base.password) {
      throw new TelemetryStoreError('INFLUX_URL must not contain credentials: use INFLUX_TOKEN or INFLUX_USERNAME/INFLUX_PASSWORD', 'config');
    }
    this.origin = base.origin;
    this.basePath = base.pathname.replace(/\/+$/, '');
    this.where = `${this.origin}${this.basePath}`;
    if (!o.database) throw new TelemetryStoreError('INFLUX_DB must name a database', 'config');
    if (o.token && (o.username || o.password)) throw new TelemetryStoreError('set either INFLUX_TOKEN or INFLUX_USERNAME/INFLUX_PASSWORD, not both', 'config');
    if (Boolean(o.username) !== Boolean(o.password)) throw new TelemetryStoreError('INFLUX_USERNAME and INFLUX_PASSWORD must be set together', 'config');
    this.timeoutMs = o.timeoutMs ?? 10_000;
    this.agent = new (base.protocol === 'https:' ? https.Agent : http.Agent)({ keepAlive: true, maxSockets: 16, maxFreeSockets: 16 });
    this.maxRetries = o.maxRetries ?? 5;
    this.retryBaseDelayMs = o.retryBaseDelayMs ?? 200;
    this.retryMaxDelayMs = o.retryMaxDelayMs ?? 10_000;
  }

  /** `FROM` target: the measurement, qualified by the retention policy when one is configured. */
  source(measurement: string): string {
    return this.o.retentionPolicy ? `${quoteIdent(this.o.retentionPolicy)}.${quoteIdent(measurement)}` : quoteIdent(measurement);
  }

  close(): void {
    this.closing.abort();
    this.agent.destroy();
  }

  /** Start-up check, one attempt: is anything answering at the URL? */
  async ping(): Promise<void> {
    let reply: HttpReply;
    try {
      reply = await this.send('GET', '/ping', {});
    } catch (err) {
      throw new TelemetryStoreError(
        `cannot reach InfluxDB at ${this.where} (${describeNetworkError(err, this.timeoutMs)}): check INFLUX_URL, that InfluxDB is running and that this host can reach it`,
        'unreachable',
        { cause: err },
      );
    }
    if (reply.status >= 200 && reply.status < 300) {
      this.log.debug({ url: this.where, version: reply.headers.get('x-influxdb-version') }, 'InfluxDB answered /ping');
      return;
    }
    throw this.failure(reply, 'GET /ping');
  }

  async createDatabase(): Promise<void> {
    try {
      await this.query(`CREATE DATABASE ${quoteIdent(this.o.database)}`, 'POST', false);
    } catch (err) {
      if (err instanceof TelemetryStoreError && err.code !== 'rejected' && err.code !== 'config') throw err;
      throw new TelemetryStoreError(
        `could not create database "${this.o.database}" on InfluxDB at ${this.where} (${(err as Error).message}); ` +
          'create it yourself (on InfluxDB 2.x/3 a bucket with a DBRP mapping / a database), or set INFLUX_CREATE_DB=false',
        'config',
        { cause: err },
      );
    }
    this.log.info({ url: this.where, database: this.o.database }, 'InfluxDB database ensured (INFLUX_CREATE_DB)');
  }

  /** Start-up check: the credentials work and the database (and retention policy) exist. */
  async checkDatabase(): Promise<void> {
    const [result] = await this.query('SHOW RETENTION POLICIES', 'GET', false);
    const policies = new Set<string>();
    for (const series of result?.series ?? []) {
      const col = series.columns?.indexOf('name') ?? -1;
      for (const row of series.values ?? []) if (col >= 0 && typeof row[col] === 'string') policies.add(row[col]);
    }
    const rp = this.o.retentionPolicy;
    if (rp && !policies.has(rp)) {
      throw new TelemetryStoreError(
        `retention policy "${rp}" does not exist in database "${this.o.database}" on InfluxDB at ${this.where} ` +
          `(it has: ${[...policies].join(', ') || 'none'}): check INFLUX_RP`,
        'config',
      );
    }
    this.log.info({ url: this.where, database: this.o.database, retentionPolicy: rp }, 'connected to InfluxDB');
  }

  async write(body: string): Promise<void> {
    const params: Record<string, string> = { db: this.o.database, precision: 'ms' };
    if (this.o.retentionPolicy) params.rp = this.o.retentionPolicy;
    await this.request('POST', '/write', params, body, 'write');
  }

  /** Runs one InfluxQL statement; a statement-level error becomes a TelemetryStoreError. */
  async query(statement: string, method: 'GET' | 'POST' = 'GET', retry = true): Promise<StatementResult[]> {
    const params: Record<string, string> = { db: this.o.database, epoch: 'ms' };
    let body: URLSearchParams | undefined;
    if (method === 'GET') params.q = statement;
    else body = new URLSearchParams({ q: statement });
    const reply = retry ? await this.request(method, '/query', params, body, 'query') : await this.attempt(method, '/query', params, body, 'query');
    let parsed: { results?: StatementResult[]; error?: string };
    try {
      parsed = JSON.parse(reply.body) as typeof parsed;
    } catch (err) {
      throw new TelemetryStoreError(`InfluxDB at ${this.where} answered /query with something that is not JSON: ${truncate(reply.body)}`, 'unavailable', { cause: err });
    }
    const results = parsed.results ?? [];
    const error = parsed.error ?? results.find((r) => r.error)?.error;
    if (error) throw this.classify(200, error, `query ${truncate(statement, 200)}`);
    if (results.some((r) => r.partial || r.series?.some((s) => s.partial))) {
      throw new TelemetryStoreError(
        `InfluxDB at ${this.where} truncated the answer to ${truncate(statement, 200)} (its [http] max-row-limit): raise or disable that limit`,
        'config',
      );
    }
    return results;
  }

  /** One request with retries (exponential back-off with jitter) for retryable failures. */
  private async request(method: string, path: string, params: Record<string, string>, body: string | URLSearchParams | undefined, what: string): Promise<HttpReply> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.attempt(method, path, params, body, what);
      } catch (err) {
        if (!(err instanceof TelemetryStoreError) || !err.retryable || this.closing.signal.aborted) throw err;
        if (attempt >= this.maxRetries) {
          if (attempt === 0) throw err;
          throw new TelemetryStoreError(`${err.message} (gave up after ${attempt + 1} attempts)`, err.code, { cause: err });
        }
        // Equal jitter: never at once, and many clients coming back after an outage spread out.
        let delayMs = backoffDelayMs({ initialMs: this.retryBaseDelayMs, maxMs: this.retryMaxDelayMs, jitter: 'equal' }, attempt);
        const retryAfterMs = retryAfterOf(err);
        if (retryAfterMs !== undefined) delayMs = Math.min(this.retryMaxDelayMs, Math.max(delayMs, retryAfterMs));
        this.log.warn({ url: this.where, what, attempt: attempt + 1, maxRetries: this.maxRetries, delayMs: Math.round(delayMs), err: err.message }, 'InfluxDB request failed; retrying');
        await sleep(delayMs, this.closing.signal);
        if (this.closing.signal.aborted) throw new TelemetryStoreError(`InfluxDB telemetry store closed while retrying: ${err.message}`, 'unavailable', { cause: err });
      }
    }
  }

  /** One attempt; any non-2xx answer or network failure becomes a classified TelemetryStoreError. */
  private async attempt(method: string, path: string, params: Record<string, string>, body: string | URLSearchParams | undefined, what: string): Promise<HttpReply> {
    let reply: HttpReply;
    try {
      reply = await this.send(method, path, params, body);
    } catch (err) {
      if (this.closing.signal.aborted) throw new TelemetryStoreError('InfluxDB telemetry store is closed', 'unavailable', { cause: err });
      throw new TelemetryStoreError(`InfluxDB ${what} to ${this.where} failed: ${describeNetworkError(err, this.timeoutMs)}`, 'unreachable', { cause: err });
    }
    if (reply.status >= 200 && reply.status < 300) return reply;
    throw this.failure(reply, what);
  }

  private send(method: string, path: string, params: Record<string, string>, body?: string | URLSearchParams): Promise<HttpReply> {
    if (this.closing.signal.aborted) return Promise.reject(new Error('closed'));
    const url = new URL(`${this.origin}${this.basePath}${path}`);
    const search = new URLSearchParams(params);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.o.token) headers.authorization = `Token ${this.o.token}`;
    if (this.o.username && this.o.password) {
      search.set('u', this.o.username);
      search.set('p', this.o.password);
    }
    url.search = search.toString();
    let payload: Buffer | undefined;
    if (body !== undefined) {
      headers['content-type'] = typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/x-www-form-urlencoded;charset=UTF-8';
      payload = Buffer.from(typeof body === 'string' ? body : body.toString(), 'utf8');
      headers['content-length'] = String(payload.length);
    }
    return new Promise<HttpReply>((resolve, reject) => {
      let settled = false;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        req.destroy();
        reject(err);
      };
      const req = (url.protocol === 'https:' ? https : http).request(url, { method, headers, agent: this.agent, signal: this.closing.signal }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', fail);
        res.on('end', () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          const h = res.headers;
          resolve({
            status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'),
            headers: { get: (name) => { const v = h[name.toLowerCase()]; return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v; } },
          });
        });
      });
      const timer = setTimeout(() => fail(Object.assign(new Error(`no answer within ${this.timeoutMs} ms`), { name: 'TimeoutError' })), this.timeoutMs);
      req.on('error', fail);
      req.end(payload);
    });
  }

  private failure(reply: HttpReply, what: string): TelemetryStoreError {
    const message = reply.headers.get('x-influxdb-error') ?? errorText(reply.body) ?? `HTTP ${reply.status}`;
    const err = this.classify(reply.status, message, what);
    const retryAfter = Number(reply.headers.get('retry-after'));
    if (err.retryable && Number.isFinite(retryAfter) && retryAfter > 0) retryAfters.set(err, retryAfter * 1000);
    return err;
  }

  private classify(status: number, message: string, what: string): TelemetryStoreError {
    const db = this.o.database;
    const detail = truncate(message);
    if (status === 401 || status === 403 || /authoriz|authenticat|unauthori[sz]ed|credentials/i.test(message)) {
      return new TelemetryStoreError(
        `InfluxDB at ${this.where} refused the credentials for ${what} (${status === 200 ? '' : `${status} `}${detail}): ` +
          `check INFLUX_TOKEN, or INFLUX_USERNAME/INFLUX_PASSWORD, and that they may read and write database "${db}"`,
        'auth',
      );
    }
    if (/database not found|bucket .*not found|no dbrp mapping/i.test(message)) {
      return new TelemetryStoreError(
        `database "${db}" does not exist on InfluxDB at ${this.where} (${detail}): check INFLUX_DB, or set INFLUX_CREATE_DB=true to create it at start-up`,
        'config',
      );
    }
    if (/retention policy not found/i.test(message)) {
      return new TelemetryStoreError(`InfluxDB at ${this.where}: ${detail}: check INFLUX_RP`, 'config');
    }
    if (status === 404) {
      return new TelemetryStoreError(`InfluxDB at ${this.where} has no v1-compatible ${what} endpoint (404 ${detail}): check INFLUX_URL`, 'config');
    }
    if (status === 408 || status === 429 || status >= 500) {
      return new TelemetryStoreError(`InfluxDB ${what} at ${this.where} failed with ${status}: ${detail}`, 'unavailable');
    }
    // 400 (bad line protocol, field type conflict, partial write), 413 (too large), statement errors.
    return new TelemetryStoreError(`InfluxDB rejected the ${what}${status === 200 ? '' : ` (${status})`}: ${detail}`, 'rejected');
  }
}

/** Retry-After of a retryable failure, kept beside the error rather than on it. */
const retryAfters = new WeakMap<TelemetryStoreError, number>();
function retryAfterOf(err: TelemetryStoreError): number | undefined {
  return retryAfters.get(err);
}

function errorText(body: string): string | undefined {
  if (!body) return undefined;
  try {
    const json = JSON.parse(body) as { error?: unknown; message?: unknown };
    if (typeof json.error === 'string') return json.error;
    if (typeof json.message === 'string') return json.message;
  } catch {
    // not JSON: use the text
  }
  return body.trim();
}

function describeNetworkError(err: unknown, timeoutMs: number): string {
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) return `no answer within ${timeoutMs} ms`;
  const cause = err instanceof Error ? (err.cause as { code?: string; message?: string } | undefined) : undefined;
  if (cause?.code) return `${cause.code}${cause.message ? `: ${cause.message}` : ''}`;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && err instanceof Error) return err.message.includes(code) ? err.message : `${code}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}

function truncate(s: string, max = 500): string {
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
