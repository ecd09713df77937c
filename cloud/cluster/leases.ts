import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Counter, Gauge, type Registry } from 'prom-client';
import { openPostgresDatabase, type Database, type FeatureMigrations } from '../db/database.ts';
import type { Sql } from '../db/sql.ts';
import type { Logger } from '../logger.ts';

/**
 * Leases with fencing tokens (issue 15): work that must happen once per deployment — dispatch rounds,
 * hub-offline link checks, ops stats, dedupe pruning — runs on the one node that holds its lease.
 * Leases are rows of the operational PostgreSQL; time is the database's clock (`clock_timestamp()`),
 * never a node's, so nodes with skewed clocks still agree on who holds what.
 *
 *  - **Acquire and renew are one statement**: an upsert that takes the lease when it is free, expired,
 *    or already ours, and bumps its token only when the holder changes. The token of a lease name only
 *    ever grows: it is the fencing token (Kleppmann, "How to do distributed locking", 2016).
 *  - **A node stops acting on its own clock first**: it renews every ttl/3, and it holds a lease only
 *    while less than ttl − margin of *local monotonic* time has passed since it sent its last successful
 *    renewal. A process paused (SIGSTOP, a GC or VM stall) that wakes up therefore sees itself as not
 *    holding until it has renewed — and it cannot renew while another node holds the lease.
 *  - **The database has the last word (fencing)**: a side effect of leased work is written in a
 *    transaction that ends with `fence`: the lease row is read `FOR SHARE` and must still carry this
 *    node's token and be unexpired by the database clock, else the transaction rolls back
 *    (`StaleLeaseError`). The row lock orders it against a takeover: a takeover either committed before
 *    (the fence sees the new token) or waits for this transaction to end (the new holder reads state
 *    after its acquisition, so it sees what was written under the old token).
 *
 * A node that stops cleanly gives its leases up (expires them now): another takes over at its next
 * renewal. One that dies is taken over once the lease expired: within ttl + ttl/3 of its last renewal.
 *
 * **Spread** (region leases only; `global` and any other name are competed for as before): every node
 * also renews a presence row `node:<holder>` in the same statement as its leases, so the live nodes are
 * the unexpired presence rows — by the database clock, expiring together with a dead node's leases (the
 * cluster bus also knows the nodes, but by Redis heartbeats on another clock and schedule: a node could
 * count as dead there while its leases are still valid, or the reverse). Each node holds its fair share,
 * ceil(region leases / live nodes): it takes a free (expired or never held) region lease at once while
 * under its share, and beyond it only a lease free for longer than `graceMs` (default one renewal
 * interval — a fallback; a dead node's presence expires with its leases, so the others' shares grow at
 * that moment and they take its leases over within ttl + ttl/3 as before). A node above its share while
 * another live node is below gives the surplus back (never more than the others lack, so no lease is
 * given back that nobody wants: no flapping): it stops granting new work under it at once, renews it
 * once more so the work under way finishes, and expires it at its next renewal; a node below its share
 * takes it at its own next renewal (unheld for at most one renewal interval). It does not take a lease
 * it gave back within the last two graces unless nobody else did.
 *
 * A single process (no `REDIS_URL`) uses `localLeases`: it holds every lease, token 1, and fencing
 * costs nothing — the embedded default behaves as before.
 */

/** Lease of a region's once-only work (dispatch, hub-offline checks, its ops stats). */
export const regionLease = (region: string): string => `region:${region}`;
/** Lease of work of the whole deployment (dedupe pruning). */
export const GLOBAL_LEASE = 'global';

export class StaleLeaseError extends Error {
  override readonly name = 'StaleLeaseError';
  readonly code = 'stale_lease';
  constructor(readonly lease: string, readonly token: number, detail: string) {
    super(`lease ${lease}: token ${token} is stale (${detail}); the work was not applied`);
  }
}

/** A single process (no REDIS_URL) was started on a database whose leases cluster nodes hold. */
export class ClusterActiveError extends Error {
  override readonly name = 'ClusterActiveError';
  constructor(readonly held: readonly { name: string; holder: string }[]) {
    super(
      `cluster nodes use this database (lease ${held.map((h) => `${h.name} held by ${h.holder}`).join(', ')}): ` +
        'a process without REDIS_URL would do their once-only work (dispatch, hub-offline alarms) alongside them. ' +
        'Start it as a cluster node (set REDIS_URL and NODE_ID), or stop the nodes first (their leases end when they stop, or within LEASE_TTL_S).',
    );
  }
}

/** The right to do a lease's work, as taken at the start of that work. */
export interface LeaseGrant {
  readonly name: string;
  readonly token: number;
  /** Whether this node still holds the lease with this token by its own clock (no database round trip). */
  valid(): boolean;
  /**
   * Runs `fn` in one transaction that ends with this grant's fence: committed only if the lease still
   * carries this token and is unexpired by the database clock, else rolled back with `StaleLeaseError`.
   * `tx` is undefined for the local (single-process) leases: the stores then write as they always did.
   */
  fenced<T>(fn: (tx: Sql | undefined) => Promise<T>): Promise<T>;
  /**
   * The fence alone, for work that has its own transaction `tx`: call it last in that transaction.
   * Throws `StaleLeaseError` (the caller's transaction then rolls back). Without `tx` (a store with no
   * SQL, in tests) only this node's own clock is checked.
   */
  fence(tx: Sql | undefined): Promise<void>;
}

export interface Leases {
  /** False for the single process's local leases. */
  readonly clustered: boolean;
  /** This process as the leases table names it (node id and a per-process suffix). */
  readonly holder: string;
  /** The grant to act under now, or null when this node does not hold the lease (or cannot be sure it still does). */
  grant(name: string): LeaseGrant | null;
  /** Whether this node may do the lease's work now. */
  holds(name: string): boolean;
  /** Called after this node acquired a lease (new token): load what the work needs from the database. */
  onAcquired(fn: (name: string, token: number) => void): () => void;
  /** Names of the leases this node holds now. */
  held(): string[];
  /** Gives every held lease up and stops renewing. Idempotent. */
  close(): Promise<void>;
}

/** The single process: holds every lease with token 1; fencing is a no-op. */
export function localLeases(): Leases {
  const grants = new Map<string, LeaseGrant>();
  const grant = (name: string): LeaseGrant => {
    let g = grants.get(name);
    if (!g) grants.set(name, (g = { name, token: 1, valid: () => true, fenced: (fn) => fn(undefined), fence: async () => {} }));
    return g;
  };
  return {
    clustered: false, holder: 'single', grant, holds: () => true, onAcquired: () => () => {}, held: () => [...grants.keys()], close: async () => {},
  };
}

export const LEASE_MIGRATIONS: FeatureMigrations = {
  // SQLite serves one process, which uses the local leases; the table exists for the same schema on both.
  sqlite: [
    `CREATE TABLE leases (
       name        TEXT PRIMARY KEY,
       holder      TEXT NOT NULL,
       token       INTEGER NOT NULL,
       acquired_at INTEGER NOT NULL,
       expires_at  INTEGER NOT NULL
     ) WITHOUT ROWID;`,
  ],
  postgres: [
    `CREATE TABLE leases (
       name        TEXT PRIMARY KEY,
       holder      TEXT NOT NULL,
       token       BIGINT NOT NULL,
       acquired_at TIMESTAMPTZ NOT NULL,
       expires_at  TIMESTAMPTZ NOT NULL
     );`,
  ],
};

// Takes every named lease that is free, expired or already ours, in one statement; the token grows
// only when the holder changes. Returns the leases this holder has after it (with their tokens).
const ACQUIRE = `
  INSERT INTO leases (name, holder, token, acquired_at, expires_at)
  SELECT n, ?, 1, clock_timestamp(), clock_timestamp() + make_interval(secs => ?)
    FROM json_array_elements_text(?::json) AS n
  ON CONFLICT (name) DO UPDATE SET
    token = CASE WHEN leases.holder = excluded.holder THEN leases.token ELSE leases.token + 1 END,
    acquired_at = CASE WHEN leases.holder = excluded.holder THEN leases.acquired_at ELSE excluded.acquired_at END,
    holder = excluded.holder,
    expires_at = excluded.expires_at
  WHERE leases.holder = excluded.holder OR leases.expires_at <= clock_timestamp()
  RETURNING name, token`;
const FENCE = `SELECT token FROM leases WHERE name = ? AND holder = ? AND token = ? AND expires_at > clock_timestamp() FOR SHARE`;
const RELEASE = `UPDATE leases SET expires_at = clock_timestamp() WHERE holder = ? AND expires_at > clock_timestamp()`;
const GIVE_BACK = `UPDATE leases SET expires_at = clock_timestamp() WHERE name = ? AND holder = ? AND token = ? AND expires_at > clock_timestamp()`;
/** Prefix of the presence rows (one per live node process); never a lease of work. */
export const PRESENCE_PREFIX = 'node:';
// The rows a spreading node decides by: the named leases and every node's presence, with how long a free one has been free.
const STATE = `
  SELECT name, holder, expires_at > clock_timestamp() AS live,
         GREATEST(0, extract(epoch FROM clock_timestamp() - expires_at) * 1000)::float8 AS free_ms
    FROM leases WHERE name IN (SELECT json_array_elements_text(?::json)) OR name LIKE '${PRESENCE_PREFIX}%'`;
// Presence rows of processes gone for long (every restart is a new holder) are deleted.
const PRUNE_PRESENCE = `DELETE FROM leases WHERE name LIKE '${PRESENCE_PREFIX}%' AND expires_at < clock_timestamp() - interval '10 minutes'`;

/** Whether a lease name is spread over the nodes (fair share) rather than competed for. */
const spread = (name: string): boolean => name.startsWith('region:');

export interface LeaseRow {
  name: string;
  holder: string;
  live: boolean;
  /** How long the lease has been expired (0 while live). */
  freeMs: number;
}

/**
 * Which of `names` `holder` asks for in its next acquire (pure; the acquire itself stays the only
 * judge of who gets what): `keep` (held, renewed), `giveBack` (held, surplus: stop new work now,
 * expire next renewal), `take` (free, asked for). Non-spread names are always asked for.
 */
export function planLeases(p: {
  holder: string;
  names: readonly string[];
  rows: readonly LeaseRow[];
  graceMs: number;
  /** Spread leases this node is giving back already (not counted as its own). */
  givingBack: ReadonlySet<string>;
  /** Leases this node gave back recently: not taken again before they were free for two graces. */
  recentlyGivenBack: ReadonlySet<string>;
}): { ask: string[]; giveBack: string[]; share: number; live: number } {
  const byName = new Map(p.rows.map((r) => [r.name, r]));
  const liveNodes = new Set(p.rows.filter((r) => r.live && r.name.startsWith(PRESENCE_PREFIX)).map((r) => r.holder));
  liveNodes.add(p.holder);
  const regions = p.names.filter(spread);
  const share = Math.ceil(regions.length / liveNodes.size);
  const counts = new Map<string, number>();
  for (const n of regions) {
    const r = byName.get(n);
    if (r?.live && r.holder !== p.holder) counts.set(r.holder, (counts.get(r.holder) ?? 0) + 1);
  }
  const mine = regions.filter((n) => { const r = byName.get(n); return r?.live && r.holder === p.holder && !p.givingBack.has(n); });
  let deficit = 0;
  for (const node of liveNodes) if (node !== p.holder) deficit += Math.max(0, share - (counts.get(node) ?? 0));
  const drop = Math.min(Math.max(0, mine.length - share), deficit);
  const giveBack = mine.slice(mine.length - drop);
  const keep = mine.slice(0, mine.length - drop);
  const free = regions
    .filter((n) => { const r = byName.get(n); return !r || !r.live; })
    .map((n) => ({ n, freeMs: byName.get(n)?.freeMs ?? Number.POSITIVE_INFINITY }))
    .sort((a, b) => b.freeMs - a.freeMs);
  const take: string[] = [];
  for (const f of free) {
    const under = keep.length + take.length < share;
    const graced = f.freeMs > (p.recentlyGivenBack.has(f.n) ? 2 * p.graceMs : p.graceMs);
    if (under || graced) take.push(f.n);
  }
  return { ask: [...p.names.filter((n) => !spread(n)), ...keep, ...giveBack, ...take], giveBack, share, live: liveNodes.size };
}

/** One acquire-or-renew statement (PostgreSQL): the leases of `names` that `holder` has afterwards, with their tokens. */
export async function acquireLeases(sql: Sql, holder: string, names: readonly string[], ttlMs: number): Promise<Map<string, number>> {
  const rows = await sql.query<{ name: string; token: number }>(ACQUIRE, [holder, ttlMs / 1000, JSON.stringify(names)]);
  return new Map(rows.map((r) => [r.name, Number(r.token)]));
}

/**
 * Inside the transaction `tx` of a leased side effect (PostgreSQL): true when the lease still carries
 * `holder`'s `token` and is unexpired by the database clock; the row is then locked `FOR SHARE` until
 * the transaction ends, so no takeover can commit in between.
 */
export async function fenceHolds(tx: Sql, name: string, holder: string, token: number): Promise<boolean> {
  return (await tx.one(FENCE, [name, holder, token])) !== undefined;
}

export interface PostgresLeasesOptions {
  database: Database;
  /** This node (logs, the `holder` column gets a per-process suffix so a restarted node gets a new token). */
  nodeId: string;
  ttlMs: number;
  /** The lease names to compete for, read at every renewal (a region added while running joins). */
  names: () => readonly string[];
  logger: Logger;
  registry?: Registry;
  /** Default ttl/3. */
  renewEveryMs?: number;
  /** Local safety margin: a lease counts as held for ttl − margin after the renewal was sent. Default ttl/4. */
  marginMs?: number;
  /** Local monotonic clock (ms). */
  monotonic?: () => number;
  /**
   * A region lease free (expired or never held) for longer than this is taken even by a node that holds
   * its fair share already. Default: the renewal interval.
   */
  graceMs?: number;
  /**
   * Renewals on a pool of their own (2 connections to this URL), so they never queue behind a busy
   * pool (a full ingest's group commits) and lapse for that. Default: `database`'s pool.
   */
  renewalUrl?: string;
}

export interface LeaseMetrics {
  held: Gauge<'lease' | 'node'>;
  events: Counter<'lease' | 'event'>;
  refused: Counter<'lease'>;
}

/**
 * `cloud_leases_held{lease,node}`, `cloud_lease_events_total{lease,event}`, `cloud_lease_fence_refused_total{lease}` on
 * the registry (`node`: this node's NODE_ID, so a cluster's merged /metrics shows who holds what).
 */
export function registerLeaseMetrics(registry: Registry, leases: () => Leases | null, nodeId = 'single'): LeaseMetrics {
  const existing = registry.getSingleMetric('cloud_leases_held');
  if (existing) {
    return {
      held: existing as Gauge<'lease' | 'node'>,
      events: registry.getSingleMetric('cloud_lease_events_total') as Counter<'lease' | 'event'>,
      refused: registry.getSingleMetric('cloud_lease_fence_refused_total') as Counter<'lease'>,
    };
  }
  return {
    held: new Gauge({
      name: 'cloud_leases_held', help: 'Leases of once-only work (region:<id>, global) this node holds now: 1 per lease held', labelNames: ['lease', 'node'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const name of leases()?.held() ?? []) this.set({ lease: name, node: nodeId }, 1);
      },
    }),
    events: new Counter({
      name: 'cloud_lease_events_total', help: 'Leases this node acquired or lost (event: acquired, lost)', labelNames: ['lease', 'event'] as const, registers: [registry],
    }),
    refused: new Counter({
      name: 'cloud_lease_fence_refused_total',
      help: 'Writes of leased work refused because this node\'s lease token was stale (another node took the lease over): rolled back, never applied',
      labelNames: ['lease'] as const, registers: [registry],
    }),
  };
}

interface Holding {
  token: number;
  /** Given back: no new work under it; expired at the next renewal. */
  givingBack?: boolean;
  /** Local monotonic time until which this node may act. */
  until: number;
  grant: LeaseGrant;
}

/**
 * Cluster leases on PostgreSQL. Starts competing at once (first round before it resolves), so a lone
 * node holds everything as soon as it is up.
 */
export async function openPostgresLeases(o: PostgresLeasesOptions): Promise<Leases> {
  if (o.database.dialect !== 'postgres') throw new Error('cluster leases need PostgreSQL (DATABASE_URL)');
  await o.database.migrate('leases', LEASE_MIGRATIONS);
  const sql = o.database.sql;
  const renewals = o.renewalUrl ? await openPostgresDatabase(o.renewalUrl, { max: 2, applicationName: 'chiiki-cloud-leases' }) : null;
  const renewSql = renewals?.sql ?? sql;
  const log = o.logger.child({ component: 'leases' });
  const holder = `${o.nodeId}/${randomUUID().slice(0, 8)}`;
  const presence = `${PRESENCE_PREFIX}${holder}`;
  const renewEvery = o.renewEveryMs ?? Math.max(50, Math.floor(o.ttlMs / 3));
  const graceMs = o.graceMs ?? renewEvery;
  /** Leases given back, with the local time they were expired. */
  const givenBack = new Map<string, number>();
  let rounds = 0;
  const margin = o.marginMs ?? Math.floor(o.ttlMs / 4);
  const mono = o.monotonic ?? (() => performance.now());
  const holdings = new Map<string, Holding>();
  const acquiredListeners = new Set<(name: string, token: number) => void>();
  let metrics: LeaseMetrics | null = null;
  let closed = false;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;

  const fence = async (tx: Sql, name: string, token: number): Promise<void> => {
    if (await fenceHolds(tx, name, holder, token)) return;
    metrics?.refused.inc({ lease: name });
    const now = await tx.one<{ holder: string; token: number; expired: boolean }>(
      'SELECT holder, token, expires_at <= clock_timestamp() AS expired FROM leases WHERE name = ?', [name],
    ).catch(() => undefined);
    const detail = now ? `the lease is at token ${now.token}, held by ${now.holder}${now.expired ? ', expired' : ''}` : 'no such lease';
    log.warn({ lease: name, token, holder, current: now ?? null }, 'stale lease token: the leased work\'s write was refused and rolled back');
    throw new StaleLeaseError(name, token, detail);
  };

  const makeGrant = (name: string, token: number): LeaseGrant => {
    const grant: LeaseGrant = {
      name, token,
      valid: () => {
        const h = holdings.get(name);
        return !closed && h !== undefined && h.token === token && mono() < h.until;
      },
      fenced: (fn) => sql.transaction(async (tx) => {
        notLapsed();
        const result = await fn(tx);
        await fence(tx, name, token); // last: the row lock is held only from here to the commit
        return result;
      }),
      fence: async (tx) => {
        notLapsed();
        if (tx) await fence(tx, name, token);
      },
    };
    const notLapsed = () => {
      if (grant.valid()) return;
      metrics?.refused.inc({ lease: name });
      throw new StaleLeaseError(name, token, 'this node no longer holds it by its own clock');
    };
    return grant;
  };

  const lose = (name: string, why: string): void => {
    const h = holdings.get(name);
    if (!h) return;
    holdings.delete(name);
    metrics?.events.inc({ lease: name, event: 'lost' });
    log.warn({ lease: name, token: h.token, holder, why }, 'lease lost: this node stops its work');
  };

  const round = async (): Promise<void> => {
    const names = [...new Set(o.names())];
    let got: Map<string, number>;
    let sentAt: number;
    let giveBack: string[] = [];
    try {
      // Surplus marked in the previous round: its work under way had a renewal interval to finish.
      for (const [name, h] of holdings) {
        if (!h.givingBack) continue;
        holdings.delete(name);
        givenBack.set(name, mono());
        await renewSql.run(GIVE_BACK, [name, holder, h.token]);
        metrics?.events.inc({ lease: name, event: 'given_back' });
        log.info({ lease: name, token: h.token, holder }, 'lease given back (this node held more than its share)');
      }
      for (const [name, at] of givenBack) if (mono() - at > 4 * graceMs) givenBack.delete(name);
      if (rounds++ % 100 === 0) await renewSql.run(PRUNE_PRESENCE);
      const rows = await renewSql.query<{ name: string; holder: string; live: boolean; free_ms: number }>(STATE, [JSON.stringify(names)]);
      const plan = planLeases({
        holder, names, graceMs,
        rows: rows.map((r) => ({ name: r.name, holder: r.holder, live: r.live, freeMs: Number(r.free_ms) })),
        givingBack: new Set([...holdings].filter(([, h]) => h.givingBack).map(([n]) => n)),
        recentlyGivenBack: new Set(givenBack.keys()),
      });
      giveBack = plan.giveBack;
      sentAt = mono();
      got = await acquireLeases(renewSql, holder, [presence, ...plan.ask], o.ttlMs);
      got.delete(presence);
    } catch (err) {
      // Unreachable database: what is held stays held until its local deadline (grant() checks it), then is dropped.
      log.warn({ err }, 'renewing leases failed; held leases lapse at their local deadline');
      for (const [name, h] of holdings) if (mono() >= h.until) lose(name, 'not renewed in time');
      return;
    }
    if (closed) return;
    for (const [name] of holdings) if (!got.has(name)) lose(name, 'another node holds it');
    for (const [name, token] of got) {
      const h = holdings.get(name);
      if (h && h.token === token) {
        h.until = sentAt + o.ttlMs - margin;
        if (giveBack.includes(name) && !h.givingBack) {
          h.givingBack = true;
          log.info({ lease: name, token, holder }, 'giving a lease back at the next renewal: no new work under it');
        }
        continue;
      }
      if (h) lose(name, `token moved from ${h.token} to ${token}`);
      holdings.set(name, { token, until: sentAt + o.ttlMs - margin, grant: makeGrant(name, token) });
      metrics?.events.inc({ lease: name, event: 'acquired' });
      log.info({ lease: name, token, holder }, 'lease acquired');
      for (const fn of acquiredListeners) {
        try {
          fn(name, token);
        } catch (err) {
          log.error({ err, lease: name }, 'a lease listener failed');
        }
      }
    }
  };

  const loop = () => {
    if (closed) return;
    running = round().finally(() => {
      running = null;
      if (!closed) timer = setTimeout(loop, renewEvery);
    });
  };

  const leases: Leases = {
    clustered: true, holder,
    grant: (name) => {
      const h = holdings.get(name);
      return h && !h.givingBack && h.grant.valid() ? h.grant : null;
    },
    holds: (name) => leases.grant(name) !== null,
    onAcquired: (fn) => {
      acquiredListeners.add(fn);
      return () => void acquiredListeners.delete(fn);
    },
    held: () => [...holdings.keys()].filter((n) => leases.holds(n)),
    close: async () => {
      if (closed) return;
      closed = true;
      if (timer) clearTimeout(timer);
      await running;
      const names = [...holdings.keys()];
      holdings.clear();
      // Given up now, so another node takes over at its next renewal instead of after the ttl.
      await renewSql.run(RELEASE, [holder]).then(() => renewSql.run('DELETE FROM leases WHERE name = ?', [presence])).catch((err: unknown) => log.warn({ err }, 'giving leases up failed; they expire after the ttl'));
      await renewals?.close();
      if (names.length > 0) log.info({ leases: names, holder }, 'leases given up');
    },
  };
  if (o.registry) metrics = registerLeaseMetrics(o.registry, () => leases, o.nodeId);
  await round();
  if (!closed) timer = setTimeout(loop, renewEvery);
  return leases;
}

/**
 * The cloud's leases: PostgreSQL leases in cluster mode, the local ones on a single process (whose
 * `/metrics` then show every lease held).
 */
export async function openLeases(o: Omit<PostgresLeasesOptions, 'ttlMs'> & { clustered: boolean; ttlMs: number }): Promise<Leases> {
  if (!o.clustered) {
    // A single process on a PostgreSQL that cluster nodes use would do their once-only work alongside
    // the lease holder (dispatching an order twice): refused while any node holds a lease there.
    // Migrated on SQLite too (an empty table), so every database carries the whole schema (db:copy checks it).
    if (o.database) await o.database.migrate('leases', LEASE_MIGRATIONS);
    if (o.database?.dialect === 'postgres') {
      const held = await o.database.sql.query<{ name: string; holder: string }>('SELECT name, holder FROM leases WHERE expires_at > clock_timestamp() ORDER BY name LIMIT 3');
      if (held.length > 0) throw new ClusterActiveError(held);
    }
    const local = localLeases();
    for (const n of o.names()) local.grant(n);
    if (o.registry) registerLeaseMetrics(o.registry, () => local, o.nodeId);
    return local;
  }
  return openPostgresLeases(o);
}
