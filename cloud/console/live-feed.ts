import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { FastifyBaseLogger } from 'fastify';
import { regionsOf, type Account } from '../accounts/authorize.ts';

/**
 * The consoles' live feed (`GET /api/v1/events`, Server-Sent Events) as ONE shared change feed
 * (issue 11: 500 streams of one session used to take a core, because each stream polled five API
 * routes every second).
 *
 * What a stream shows is still exactly what the API answers its account: the bodies are obtained
 * through the real routes (`fetch`, i.e. `app.inject`), so every filter of the accounts feature applies.
 * But they are fetched once per tick per *audience* — the streams whose accounts the API cannot tell
 * apart (same role, for a coordinator the same regions, for staff the same hubs: the only facts
 * `authorize`/`hubScope` look at) —
 * with the credentials of one member whose session is checked first, and then fanned out. A tick
 * costs `audiences × routes` requests however many streams are open; per stream there is only the
 * write of a body that changed. An alarm change is serialised once and written to the audiences that
 * may see its hub and its region (a coordinator of one region never receives another's, issue 14).
 *
 * Streams are admitted against two caps (per session and in total; refused with 429 before the stream
 * starts) and give their slot back exactly once when they close, however they close (client gone,
 * socket destroyed, session expired, too slow, shutdown). A client that does not read is dropped once
 * its socket holds more than `maxBufferedBytes`, so it can never make the cloud buffer without bound.
 */

export interface FeedSource {
  /** The SSE event name (`hubs`, `hub`, `orders`, `mode`, `proposals`). */
  event: string;
  /** The API route whose body the event carries. */
  url: string;
  /** Set for `hub` events: sent only to streams that asked for this hub. */
  detailHub?: string;
}

export interface LiveFeedOptions {
  /** Answers an API route as the holder of these credentials (`app.inject`). */
  fetch(url: string, headers: IncomingHttpHeaders): Promise<{ statusCode: number; body: string }>;
  /** The sources of a tick, in the order a new stream receives them; `detailHubs` are the hubs some stream asked for. */
  sources(detailHubs: readonly string[]): FeedSource[];
  /** The region of a hub (region file, else its credential's), to keep a region-scoped audience's detail streams in its regions. */
  regionOfHub?: (hub: string) => string | undefined;
  /**
   * The account a session or API token now belongs to (null: unknown, expired, revoked). Absent when
   * the cloud runs without accounts (then every stream sees everything, as the API does).
   */
  sessionOf?: (token: string) => Promise<Account | null> | Account | null;
  maxStreams: number;
  maxStreamsPerSession: number;
  /**
   * Streams one account may hold open over all its sessions and API tokens (default: no limit). Without
   * it one account could sign in again and again (a new session each time) and take every slot of
   * `maxStreams`, so no other account's console gets a live feed (issue 11).
   */
  maxStreamsPerAccount?: number;
  /** A stream whose socket holds more unsent bytes than this is dropped (default 1 MiB). */
  maxBufferedBytes?: number;
  /** How often the routes are read and compared (default 1000 ms). */
  pollMs?: number;
  /** Heartbeat comment period (default 15 s; keeps proxies from closing an idle stream). */
  heartbeatMs?: number;
  /** How often every stream's session is checked again (default 5 s; a stream's account changing role or hubs moves it). */
  sessionCheckMs?: number;
  logger: FastifyBaseLogger;
}

/** What a stream is opened with, from the authenticated request. */
export interface StreamRequest {
  /** The cap key: the session or API token, else the account, else the client address. */
  sessionKey: string;
  /** The token, to check the session again while the stream is open (null: never re-checked). */
  token: string | null;
  /** The signed-in account (null only without accounts). */
  account: Account | null;
  /** The caller's credentials (cookie, authorization), for the requests made on the audience's behalf. */
  headers: IncomingHttpHeaders;
  /** Hubs the stream asked `hub` events for (filtered by the account's scope here). */
  requestedHubs: readonly string[];
}

const MAX_DETAIL_HUBS = 32;

interface Audience {
  key: string;
  /** null: every hub of the audience's regions; else the staff account's hubs. */
  hubs: ReadonlySet<string> | null;
  /** null: every region; else a coordinator's regions (issue 14) — possibly none, then no region's events. */
  regions: ReadonlySet<string> | null;
  members: Set<FeedStream>;
  /** Last body sent per route URL. */
  last: Map<string, string>;
  /** Source URLs read at least once for this audience (a new stream can be primed from `last`). */
  read: Set<string>;
}

type Scope = Pick<Audience, 'key' | 'hubs' | 'regions'>;

/**
 * The audience key: everything the API's answers to these routes depend on — and the scope of the
 * events pushed without a route (alarms): staff their hubs, a coordinator scoped to regions (issue 14)
 * those regions (`regionsOf`, the rule the API applies), everyone else everything.
 */
function audienceOf(account: Account | null): Scope {
  if (account === null) return { key: 'open', hubs: null, regions: null };
  if (account.role === 'staff') {
    const hubs = [...new Set(account.hubs)].sort();
    return { key: `staff:${JSON.stringify(hubs)}`, hubs: new Set(hubs), regions: null };
  }
  const scoped = regionsOf(account);
  const regions = scoped === null ? null : [...new Set(scoped)].sort();
  return regions === null
    ? { key: `role:${account.role}`, hubs: null, regions: null }
    : { key: `role:${account.role}:${JSON.stringify(regions)}`, hubs: null, regions: new Set(regions) };
}

class FeedStream {
  closed = false;
  /** Received everything the audience had when it joined. */
  primed = false;
  audience!: Audience;
  account: Account | null;
  detailUrls = new Set<string>();
  detailHubs: string[] = [];

  constructor(
    readonly req: StreamRequest,
    readonly res: ServerResponse,
    private readonly maxBufferedBytes: number,
    private readonly onClose: (s: FeedStream, why: string) => void,
  ) {
    this.account = req.account;
  }

  /** Writes unless the client has fallen too far behind; then the stream is dropped (never buffered without bound). */
  write(chunk: string): void {
    if (this.closed) return;
    if (this.res.writableLength > this.maxBufferedBytes) return this.close('slow client', true);
    this.res.write(chunk);
    if (this.res.writableLength > this.maxBufferedBytes) this.close('slow client', true);
  }

  send(event: string, data: string): void {
    this.write(`event: ${event}\ndata: ${data}\n\n`);
  }

  /** `abort`: drop what is still buffered (a slow client) instead of flushing it. */
  close(why: string, abort = false): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose(this, why);
    if (abort) this.res.destroy();
    else this.res.end();
  }
}

export class LiveFeed {
  private readonly streams = new Set<FeedStream>();
  private readonly perSession = new Map<string, number>();
  private readonly perAccount = new Map<string, number>();
  private readonly audiences = new Map<string, Audience>();
  private readonly maxBufferedBytes: number;
  private readonly pollMs: number;
  private readonly heartbeatMs: number;
  private readonly sessionCheckMs: number;
  private timers: NodeJS.Timeout[] = [];
  private refreshing: Promise<void> | null = null;
  private again = false;
  private closed = false;

  constructor(private readonly o: LiveFeedOptions) {
    this.maxBufferedBytes = o.maxBufferedBytes ?? 1_048_576;
    this.pollMs = o.pollMs ?? 1000;
    this.heartbeatMs = o.heartbeatMs ?? 15_000;
    this.sessionCheckMs = o.sessionCheckMs ?? 5000;
  }

  /** Open streams (for tests and figures). */
  get size(): number {
    return this.streams.size;
  }

  /** Why a new stream for this session (of this account) would be refused (429), or null when there is room. */
  refusal(sessionKey: string, account: Account | null = null): string | null {
    if ((this.perSession.get(sessionKey) ?? 0) >= this.o.maxStreamsPerSession) {
      return `this session already has ${this.o.maxStreamsPerSession} live-feed streams open (EVENTS_MAX_STREAMS_PER_SESSION); close one first`;
    }
    const perAccount = this.o.maxStreamsPerAccount;
    if (account !== null && perAccount !== undefined && (this.perAccount.get(account.username) ?? 0) >= perAccount) {
      return `account "${account.username}" already has ${perAccount} live-feed streams open over its sessions (EVENTS_MAX_STREAMS_PER_ACCOUNT); close one first`;
    }
    if (this.streams.size >= this.o.maxStreams) return `the cloud already serves ${this.o.maxStreams} live-feed streams (EVENTS_MAX_STREAMS); try again later`;
    return null;
  }

  /** Starts a stream on a response nobody has written to yet. Call `refusal` first (same tick). */
  open(req: StreamRequest, res: ServerResponse): void {
    const s = new FeedStream(req, res, this.maxBufferedBytes, (stream, why) => this.forget(stream, why));
    this.streams.add(s);
    this.perSession.set(req.sessionKey, (this.perSession.get(req.sessionKey) ?? 0) + 1);
    if (req.account !== null) this.perAccount.set(req.account.username, (this.perAccount.get(req.account.username) ?? 0) + 1);
    // However the connection ends (client closes, socket destroyed, write error), the slot comes back once.
    res.on('close', () => s.close('client gone'));
    res.on('error', () => s.close('write error'));
    // The client may have gone while the request was authenticated: its 'close' came before anyone listened.
    if (this.closed || res.destroyed || !res.socket || res.socket.destroyed) return s.close('client gone', true);
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache, no-transform', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    res.write('retry: 2000\n\n');
    if (this.streams.size === 1) this.startTimers();
    this.join(s, req.account);
  }

  /**
   * An alarm changed: serialised once, written to every stream whose account may see it — staff at
   * its hub, a coordinator scoped to regions in its region (the alarm's own, as the alarm API filters).
   */
  publishAlarm(alarm: { hub: string; region: string }, data: string): void {
    for (const a of this.audiences.values()) {
      if (a.hubs !== null && !a.hubs.has(alarm.hub)) continue;
      if (a.regions !== null && !a.regions.has(alarm.region)) continue;
      for (const s of a.members) s.send('alarm', data);
    }
  }

  /** Something changed now (e.g. a mode switch): read the routes without waiting for the next tick. */
  refreshSoon(): void {
    if (this.streams.size > 0) void this.refresh();
  }

  /**
   * Ends every stream now (not a shutdown: new streams are welcome). Cluster mode: alarm pushes from
   * another node may have been lost; each console reconnects after the stream's `retry` and reads the
   * alarm list again, as it does at every (re)connect.
   */
  restartStreams(why: string): void {
    for (const s of [...this.streams]) s.close(why);
  }

  /** Closes every stream (server shutdown) and stops the timers. */
  close(): void {
    this.closed = true;
    for (const s of [...this.streams]) s.close('shutdown');
    this.stopTimers();
  }

  private startTimers(): void {
    if (this.closed) return;
    this.timers = [
      setInterval(() => void this.refresh(), this.pollMs),
      setInterval(() => {
        const line = `: heartbeat ${new Date().toISOString()}\n\n`;
        for (const s of this.streams) s.write(line);
      }, this.heartbeatMs),
      setInterval(() => void this.checkSessions(), this.sessionCheckMs),
    ];
  }

  private stopTimers(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
  }

  private forget(s: FeedStream, why: string): void {
    this.streams.delete(s);
    release(this.perSession, s.req.sessionKey);
    // Counted under the account the stream was opened for (a stream that moved audience keeps its slot there).
    if (s.req.account !== null) release(this.perAccount, s.req.account.username);
    this.leave(s);
    if (this.streams.size === 0) this.stopTimers();
    const level = why === 'slow client' ? 'warn' : 'debug';
    this.o.logger[level]({ account: s.account?.username ?? null, why, open: this.streams.size }, 'live-feed stream closed');
  }

  /** Puts a stream in its account's audience and primes it from what the audience already has. */
  private join(s: FeedStream, account: Account | null): void {
    s.account = account;
    const { key, hubs, regions } = audienceOf(account);
    let a = this.audiences.get(key);
    if (!a) {
      a = { key, hubs, regions, members: new Set(), last: new Map(), read: new Set() };
      this.audiences.set(key, a);
    }
    s.audience = a;
    // Hubs outside the audience's scope would only be refused (403) by the route every tick.
    const inRegions = (h: string) => regions === null || (this.o.regionOfHub !== undefined && regions.has(this.o.regionOfHub(h) ?? ''));
    s.detailHubs = [...new Set(s.req.requestedHubs)].filter((h) => (hubs === null || hubs.has(h)) && inRegions(h)).slice(0, MAX_DETAIL_HUBS);
    s.detailUrls = new Set(this.o.sources(s.detailHubs).filter((src) => src.detailHub !== undefined).map((src) => src.url));
    a.members.add(s);
    s.primed = false;
    const wanted = this.o.sources(s.detailHubs);
    if (wanted.every((src) => a.read.has(src.url))) this.prime(s, wanted);
    else void this.refresh();
  }

  private leave(s: FeedStream): void {
    const a = s.audience;
    if (!a) return;
    a.members.delete(s);
    if (a.members.size === 0 && this.audiences.get(a.key) === a) this.audiences.delete(a.key);
  }

  private prime(s: FeedStream, sources: readonly FeedSource[]): void {
    for (const src of sources) {
      const body = s.audience.last.get(src.url);
      if (body !== undefined) s.send(src.event, body);
    }
    s.primed = true;
  }

  /** One pass over every audience; a request while a pass runs makes one more pass after it. */
  private refresh(): Promise<void> {
    if (this.refreshing) {
      this.again = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      try {
        do {
          this.again = false;
          for (const a of [...this.audiences.values()]) await this.refreshAudience(a);
        } while (this.again && !this.closed);
      } finally {
        this.refreshing = null;
      }
    })();
    return this.refreshing;
  }

  private async refreshAudience(a: Audience): Promise<void> {
    const detailHubs = [...new Set([...a.members].flatMap((s) => s.detailHubs))];
    const sources = this.o.sources(detailHubs);
    // Hubs nobody asks for any more are forgotten (read afresh when asked for again).
    const urls = new Set(sources.map((s) => s.url));
    for (const url of [...a.last.keys()]) if (!urls.has(url)) a.last.delete(url);
    for (const url of [...a.read]) if (!urls.has(url)) a.read.delete(url);

    for (const src of sources) {
      let answer: { statusCode: number; body: string } | null = null;
      for (;;) {
        const rep = await this.representative(a);
        if (!rep) return;
        try {
          answer = await this.o.fetch(src.url, rep.req.headers);
        } catch (err) {
          this.o.logger.warn({ err, url: src.url }, 'live feed: reading a route failed');
          answer = null;
          break;
        }
        if (answer.statusCode !== 401) break;
        this.expire(rep); // the session ended between the check and the request: the next member speaks
      }
      a.read.add(src.url);
      if (!answer || answer.statusCode !== 200) continue; // e.g. 403: this audience may not see it
      if (a.last.get(src.url) === answer.body) continue;
      a.last.set(src.url, answer.body);
      for (const s of a.members) {
        if (s.primed && (src.detailHub === undefined || s.detailUrls.has(src.url))) s.send(src.event, answer.body);
      }
    }
    for (const s of a.members) if (!s.primed) this.prime(s, this.o.sources(s.detailHubs));
  }

  /**
   * The member whose credentials read the routes for the audience: its session is checked first, so
   * an expired session or an account whose role or hubs changed never speaks for the others.
   */
  private async representative(a: Audience): Promise<FeedStream | null> {
    for (const s of [...a.members]) {
      if (!this.o.sessionOf || s.req.token === null) return s;
      let now: Account | null;
      try {
        now = await this.o.sessionOf(s.req.token);
      } catch (err) {
        this.o.logger.warn({ err }, 'live feed: checking a session failed; the audience waits for the next tick');
        return null;
      }
      if (s.closed || s.audience !== a) continue; // closed or moved while its session was read
      if (now === null) this.expire(s);
      else if (audienceOf(now).key !== a.key) this.move(s, now);
      else return s;
    }
    return null;
  }

  private expire(s: FeedStream): void {
    s.send('session', JSON.stringify({ state: 'expired' }));
    s.close('session ended');
  }

  private move(s: FeedStream, account: Account): void {
    this.leave(s);
    this.join(s, account);
  }

  /** Every open stream's session again (once per token): ended → `session` event and close; changed scope → moved. */
  private async checkSessions(): Promise<void> {
    const sessionOf = this.o.sessionOf;
    if (!sessionOf) return;
    const tokens = [...new Set([...this.streams].map((s) => s.req.token).filter((t): t is string => t !== null))];
    let accounts: (Account | null)[];
    try {
      accounts = await Promise.all(tokens.map((t) => sessionOf(t)));
    } catch (err) {
      this.o.logger.warn({ err }, 'live feed: checking sessions failed; tried again at the next check');
      return;
    }
    const byToken = new Map(tokens.map((t, i) => [t, accounts[i]!]));
    for (const s of [...this.streams]) {
      const token = s.req.token;
      if (token === null || s.closed || !byToken.has(token)) continue;
      const now = byToken.get(token)!;
      if (now === null) this.expire(s);
      else if (audienceOf(now).key !== s.audience.key) this.move(s, now);
    }
  }
}

function release(counts: Map<string, number>, key: string): void {
  const n = (counts.get(key) ?? 1) - 1;
  if (n > 0) counts.set(key, n);
  else counts.delete(key);
}
