import { EventEmitter } from 'node:events';
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Account } from '../accounts/authorize.ts';
import { LiveFeed, type FeedSource } from './live-feed.ts';

/** A response as the feed uses it: what was written, and how full the socket is. */
class FakeResponse extends EventEmitter {
  chunks: string[] = [];
  writableLength = 0;
  destroyed = false;
  ended = false;
  socket = { destroyed: false };
  writeHead() {
    return this;
  }
  write(c: string) {
    this.chunks.push(c);
    return true;
  }
  end() {
    this.ended = true;
    this.emit('close');
  }
  destroy() {
    this.destroyed = true;
    this.emit('close');
  }
  get text() {
    return this.chunks.join('');
  }
}

const coordinator: Account = { username: 'c', displayName: 'c', role: 'coordinator', hubs: [] };
const staffA: Account = { username: 'sa', displayName: 'sa', role: 'staff', hubs: ['a'] };

/** The API as a fake: bodies per URL, filtered like the real routes by the caller's account (looked up from its token). */
function world() {
  const sessions = new Map<string, Account>();
  const reads: string[] = [];
  const hubs = ['a', 'b'];
  let version = 1;
  const fetch = async (url: string, headers: IncomingHttpHeaders) => {
    const token = String(headers.authorization ?? '').replace('Bearer ', '');
    reads.push(`${token} ${url}`);
    const acc = sessions.get(token);
    if (!acc) return { statusCode: 401, body: '{}' };
    const visible = hubs.filter((h) => acc.role !== 'staff' || acc.hubs.includes(h));
    if (url === '/hubs') return { statusCode: 200, body: JSON.stringify({ hubs: visible, version }) };
    if (url === '/proposals') return acc.role === 'staff' ? { statusCode: 403, body: '{}' } : { statusCode: 200, body: '{"proposals":[]}' };
    const hub = url.slice('/hubs/'.length);
    return visible.includes(hub) ? { statusCode: 200, body: JSON.stringify({ id: hub, version }) } : { statusCode: 403, body: '{}' };
  };
  const sources = (detail: readonly string[]): FeedSource[] => [
    { event: 'hubs', url: '/hubs' }, ...detail.map((h) => ({ event: 'hub', url: `/hubs/${h}`, detailHub: h })), { event: 'proposals', url: '/proposals' },
  ];
  return { sessions, reads, sources, fetch, bump: () => version++ };
}

const feeds: LiveFeed[] = [];
afterEach(() => {
  for (const f of feeds.splice(0)) f.close();
});

function feedOf(w: ReturnType<typeof world>, limits = { maxStreams: 1000, maxStreamsPerSession: 1000 }) {
  const feed = new LiveFeed({
    ...limits, fetch: w.fetch, sources: w.sources, sessionOf: (t) => w.sessions.get(t) ?? null,
    pollMs: 3_600_000, heartbeatMs: 3_600_000, sessionCheckMs: 3_600_000, maxBufferedBytes: 10_000, logger: pino({ level: 'silent' }),
  });
  feeds.push(feed);
  return feed;
}

function openAs(feed: LiveFeed, token: string, account: Account, requestedHubs: string[] = []) {
  const res = new FakeResponse();
  feed.open({ sessionKey: token, token, account, headers: { authorization: `Bearer ${token}` }, requestedHubs }, res as unknown as ServerResponse);
  return res;
}

const tick = async (feed: LiveFeed) => {
  feed.refreshSoon();
  await (feed as unknown as { refreshing: Promise<void> | null }).refreshing;
};

describe('LiveFeed', () => {
  it('reads each route once per tick per audience, however many streams watch', async () => {
    const w = world();
    w.sessions.set('c1', coordinator);
    w.sessions.set('c2', coordinator);
    const feed = feedOf(w);
    const first = openAs(feed, 'c1', coordinator);
    await tick(feed);
    w.reads.length = 0;
    w.bump();
    await tick(feed);
    const oneStream = w.reads.length;
    const many = Array.from({ length: 300 }, (_, i) => openAs(feed, i % 2 ? 'c1' : 'c2', coordinator));
    await tick(feed);
    w.reads.length = 0;
    w.bump();
    await tick(feed);
    expect(oneStream).toBe(2); // hubs, proposals
    expect(w.reads.length).toBe(oneStream);
    // And every stream got the change.
    for (const r of [first, ...many]) expect(r.text).toContain(`"version":${2}`);
  });

  it('primes a stream that joins a warm audience from what it already has, without reading again', async () => {
    const w = world();
    w.sessions.set('c1', coordinator);
    const feed = feedOf(w);
    openAs(feed, 'c1', coordinator);
    await tick(feed);
    w.reads.length = 0;
    const late = openAs(feed, 'c1', coordinator);
    expect(w.reads).toEqual([]);
    expect(late.text).toMatch(/retry: 2000\n\nevent: hubs\ndata: .*\n\nevent: proposals\n/);
  });

  it('never lets a member whose session ended, or whose account changed, speak for the others', async () => {
    const w = world();
    const staffB: Account = { ...staffA, username: 'sb' };
    w.sessions.set('sa', staffA);
    w.sessions.set('sb', staffB);
    const feed = feedOf(w);
    const a = openAs(feed, 'sa', staffA, ['a', 'b']);
    const b = openAs(feed, 'sb', staffB, ['a']);
    await tick(feed);
    // sa is promoted: its requests would now answer region-wide; sb must keep seeing hub a only.
    w.sessions.set('sa', { ...staffA, role: 'coordinator', hubs: [] });
    w.bump();
    await tick(feed);
    await tick(feed);
    expect(b.text).not.toContain('"b"');
    expect(b.text).not.toContain('proposals');
    expect(a.text).toContain('event: proposals');
    expect(a.text).toContain('{"id":"b","version":2}');
    // sb's session ends: the next tick tells it and closes it; sa is unaffected.
    w.sessions.delete('sb');
    await tick(feed);
    expect(b.text).toContain('event: session\ndata: {"state":"expired"}');
    expect(b.ended).toBe(true);
    expect(feed.size).toBe(1);
  });

  it('sends an alarm only to audiences that may see its hub, serialised once', () => {
    const w = world();
    w.sessions.set('c1', coordinator);
    w.sessions.set('sa', staffA);
    const feed = feedOf(w);
    const c = openAs(feed, 'c1', coordinator);
    const s = openAs(feed, 'sa', staffA);
    feed.publishAlarm({ hub: 'b', region: 'r' }, '{"hub":"b"}');
    feed.publishAlarm({ hub: 'a', region: 'r' }, '{"hub":"a"}');
    expect(c.text).toContain('{"hub":"b"}');
    expect(s.text).not.toContain('{"hub":"b"}');
    expect(s.text).toContain('{"hub":"a"}');
  });

  it('sends an alarm to a coordinator scoped to regions only when it is of one of them (none at all for a region it does not have)', () => {
    const w = world();
    const scopedA: Account = { ...coordinator, username: 'ca', regions: ['region-a'] };
    const ghost: Account = { ...coordinator, username: 'cg', regions: ['no-such-region'] };
    for (const [token, a] of [['c1', coordinator], ['ca', scopedA], ['cg', ghost]] as const) w.sessions.set(token, a);
    const feed = feedOf(w);
    const all = openAs(feed, 'c1', coordinator);
    const a = openAs(feed, 'ca', scopedA);
    const g = openAs(feed, 'cg', ghost);
    feed.publishAlarm({ hub: 'a', region: 'region-a' }, '{"alarm":"of A"}');
    feed.publishAlarm({ hub: 'b', region: 'region-b' }, '{"alarm":"of B"}');
    expect(all.text).toContain('of A');
    expect(all.text).toContain('of B');
    expect(a.text).toContain('of A');
    expect(a.text).not.toContain('of B');
    expect(g.text).not.toContain('event: alarm');
  });

  it('counts slots per session and in total, and gives each back exactly once', () => {
    const w = world();
    w.sessions.set('c1', coordinator);
    w.sessions.set('c2', coordinator);
    const feed = feedOf(w, { maxStreams: 3, maxStreamsPerSession: 2 });
    const r1 = openAs(feed, 'c1', coordinator);
    openAs(feed, 'c1', coordinator);
    expect(feed.refusal('c1')).toMatch(/EVENTS_MAX_STREAMS_PER_SESSION/);
    openAs(feed, 'c2', coordinator);
    expect(feed.refusal('c2')).toMatch(/EVENTS_MAX_STREAMS\b/);
    r1.emit('close');
    r1.emit('error', new Error('EPIPE'));
    r1.emit('close');
    expect(feed.size).toBe(2);
    expect(feed.refusal('c1')).toBeNull();
    expect(feed.refusal('c3')).toBeNull();
  });

  it('drops a stream whose socket holds more than the bound instead of buffering more', () => {
    const w = world();
    w.sessions.set('c1', coordinator);
    const feed = feedOf(w);
    const slow = openAs(feed, 'c1', coordinator);
    const fine = openAs(feed, 'c1', coordinator);
    slow.writableLength = 10_001;
    feed.publishAlarm({ hub: 'a', region: 'r' }, '{}');
    expect(slow.destroyed).toBe(true);
    expect(fine.destroyed).toBe(false);
    expect(fine.text).toContain('event: alarm');
    expect(feed.size).toBe(1);
  });

  it('refuses nothing it cannot serve: a response whose client already left is closed at once', () => {
    const w = world();
    w.sessions.set('c1', coordinator);
    const feed = feedOf(w, { maxStreams: 1, maxStreamsPerSession: 1 });
    const res = new FakeResponse();
    res.socket.destroyed = true;
    feed.open({ sessionKey: 'c1', token: 'c1', account: coordinator, headers: {}, requestedHubs: [] }, res as unknown as ServerResponse);
    expect(feed.size).toBe(0);
    expect(feed.refusal('c1')).toBeNull();
  });
});
