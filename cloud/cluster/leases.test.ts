import fc from 'fast-check';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { openTestDatabase, type TestDatabase } from '../../test/support/test-database.ts';
import {
  acquireLeases, ClusterActiveError, fenceHolds, LEASE_MIGRATIONS, localLeases, openLeases, openPostgresLeases, StaleLeaseError, type Leases, type PostgresLeasesOptions,
} from './leases.ts';

const logger = pino({ level: 'silent' });
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('local leases (a single process: SQLite, or PostgreSQL without REDIS_URL)', () => {
  it('hold every lease with token 1; fencing runs the work as it always ran (no transaction of its own)', async () => {
    const leases = localLeases();
    for (const name of ['region:a', 'region:b', 'global']) {
      const g = leases.grant(name)!;
      expect(g.token).toBe(1);
      expect(g.valid()).toBe(true);
      expect(await g.fenced(async (tx) => tx)).toBeUndefined();
    }
    expect(leases.holds('anything')).toBe(true);
    expect(leases.clustered).toBe(false);
  });

  it('show on /metrics as held', async () => {
    const registry = new Registry();
    const leases = await openLeases({ clustered: false, nodeId: 'single', ttlMs: 0, names: () => ['region:a', 'global'], logger, registry, database: null as never });
    expect(leases.holds('region:a')).toBe(true);
    expect(await registry.getSingleMetricAsString('cloud_leases_held')).toContain('cloud_leases_held{lease="region:a",node="single"} 1');
  });
});

describe('cluster leases on PostgreSQL', () => {
  let tdb: TestDatabase;
  const open = async (over: Partial<PostgresLeasesOptions> & { nodeId: string }): Promise<Leases> => {
    const leases = await openPostgresLeases({ database: await tdb.reopen(), ttlMs: 600, names: () => ['region:a', 'global'], logger, ...over });
    cleanups.push(() => leases.close());
    return leases;
  };
  const fresh = async () => {
    tdb = await openTestDatabase('postgres');
    cleanups.push(() => tdb.cleanup());
    await tdb.db.migrate('leases', LEASE_MIGRATIONS);
    await tdb.db.sql.exec('CREATE TABLE side_effects (id SERIAL PRIMARY KEY, by TEXT NOT NULL, token BIGINT NOT NULL)');
  };

  it('a single process (no REDIS_URL) refuses to start on a database whose leases a node holds, and starts once the nodes gave them up', async () => {
    await fresh();
    const node = await open({ nodeId: 'cloud-1' });
    expect(node.holds('region:a')).toBe(true);
    const single = () => tdb.reopen().then((database) => openLeases({ clustered: false, nodeId: 'single', ttlMs: 0, names: () => ['region:a'], logger, database }));
    await expect(single()).rejects.toThrow(ClusterActiveError);
    await expect(single()).rejects.toThrow(/region:a held by cloud-1\/.*set REDIS_URL and NODE_ID/);
    await node.close();
    expect((await single()).holds('region:a')).toBe(true);
  });

  it('two nodes compete: exactly one holds each lease; a stopped holder is taken over within ttl + renew interval, with a higher token', async () => {
    await fresh();
    const registry = new Registry();
    const a = await open({ nodeId: 'a', registry });
    const b = await open({ nodeId: 'b' });
    expect(a.holds('region:a')).toBe(true);
    expect(b.holds('region:a')).toBe(false);
    expect(await registry.getSingleMetricAsString('cloud_leases_held')).toContain('cloud_leases_held{lease="region:a",node="a"} 1');
    expect(await registry.getSingleMetricAsString('cloud_lease_events_total')).toContain('cloud_lease_events_total{lease="region:a",event="acquired"} 1');
    const before = a.grant('region:a')!.token;
    // Several renewals later, still a.
    await new Promise((r) => setTimeout(r, 700));
    expect([a.holds('region:a'), b.holds('region:a')]).toEqual([true, false]);
    expect(a.grant('region:a')!.token).toBe(before);

    const stoppedAt = performance.now();
    await a.close(); // gives up: taken over at b's next renewal
    await expect.poll(() => b.holds('region:a'), { timeout: 2000, interval: 10 }).toBe(true);
    expect(performance.now() - stoppedAt).toBeLessThan(600 + 200 + 100);
    expect(b.grant('region:a')!.token).toBeGreaterThan(before);
  });

  it('a holder that stops renewing (dead) is taken over once its lease expired by the database clock', async () => {
    await fresh();
    // Renews never again after its first acquisition: a process that died right after it.
    const dead = await open({ nodeId: 'dead', renewEveryMs: 3_600_000 });
    const t0 = performance.now();
    const other = await open({ nodeId: 'other', ttlMs: 600 });
    expect(dead.holds('region:a')).toBe(true);
    expect(other.holds('region:a')).toBe(false);
    await expect.poll(() => other.holds('region:a'), { timeout: 3000, interval: 10 }).toBe(true);
    const took = performance.now() - t0;
    expect(took).toBeGreaterThanOrEqual(600 - 50);
    expect(took).toBeLessThan(600 + 200 + 150); // ttl + renew interval (+ scheduling)
    // By its own clock the dead one stopped acting before the other took over (ttl − margin).
    expect(dead.holds('region:a')).toBe(false);
  });

  it('a paused holder that wakes up does not act: its clock says not held, and its stale token is fenced off by the database', async () => {
    await fresh();
    let frozen = 0;
    // This node's clock stands still (the worst case: it believes no time passed) and it never renews.
    const paused = await open({ nodeId: 'paused', renewEveryMs: 3_600_000, monotonic: () => frozen });
    const grant = paused.grant('region:a')!;
    const other = await open({ nodeId: 'other' });
    await expect.poll(() => other.holds('region:a'), { timeout: 3000, interval: 10 }).toBe(true);
    expect(grant.valid()).toBe(true); // it still believes so…
    const write = grant.fenced(async (tx) => {
      await tx!.run('INSERT INTO side_effects (by, token) VALUES (?, ?)', ['paused', grant.token]);
    });
    await expect(write).rejects.toBeInstanceOf(StaleLeaseError); // …the database does not
    const g2 = other.grant('region:a')!;
    await g2.fenced(async (tx) => void (await tx!.run('INSERT INTO side_effects (by, token) VALUES (?, ?)', ['other', g2.token])));
    expect(await tdb.db.sql.query('SELECT by, token FROM side_effects')).toEqual([{ by: 'other', token: grant.token + 1 }]);
    // With a clock that moved on (the usual wake-up), it knows before asking the database.
    frozen = 10_000;
    expect(paused.holds('region:a')).toBe(false);
    expect(paused.grant('region:a')).toBeNull();
  });

  it('work under way when its lease expired (by the database clock) is rolled back at its fence', async () => {
    await fresh();
    const holder = await open({ nodeId: 'holder' });
    const g = holder.grant('region:a')!;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const writing = g.fenced(async (tx) => {
      await tx!.run('INSERT INTO side_effects (by, token) VALUES (?, ?)', ['holder', g.token]);
      return gate;
    });
    await new Promise((r) => setTimeout(r, 50));
    // The fence is taken at the end of the work: expire the lease meanwhile (as if the holder stalled).
    await tdb.db.sql.run("UPDATE leases SET expires_at = clock_timestamp() - interval '1 second' WHERE name = 'region:a'");
    release();
    await expect(writing).rejects.toBeInstanceOf(StaleLeaseError);
    expect(await tdb.db.sql.query('SELECT * FROM side_effects')).toEqual([]);
  });

  it('spread: 3 nodes, 6 region leases — 2 each; a dead node\'s 2 are taken over within ttl + ttl/3 + grace; a node that comes back gets its share with no lease unheld longer than a renewal interval; never two holders, tokens only grow', async () => {
    await fresh();
    const TTL = 600, RENEW = 200; // grace: the default, one renewal interval
    const regions = ['r1', 'r2', 'r3', 'r4', 'r5', 'r6'].map((r) => `region:${r}`);
    const names = () => [...regions, 'global'];
    const nodes = new Map<string, Leases>();
    const start = async (id: string, database?: Awaited<ReturnType<TestDatabase['reopen']>>) => {
      const l = await open({ nodeId: id, ttlMs: TTL, renewEveryMs: RENEW, names, ...(database ? { database } : {}) });
      nodes.set(id, l);
      return l;
    };
    // Watch, every few ms: no lease held by two nodes by their own clocks, tokens only grow, how long a lease is unheld in the database.
    const violations: string[] = [];
    const lastToken = new Map<string, number>();
    const freeSince = new Map<string, number>();
    let maxUnheldMs = 0;
    let measuring = false;
    let watching = true;
    const watch = (async () => {
      while (watching) {
        for (const name of regions) {
          const holding = [...nodes].filter(([, l]) => l.holds(name)).map(([id]) => id);
          if (holding.length > 1) violations.push(`${name} held by ${holding.join(' and ')}`);
        }
        const rows = await tdb.db.sql.query<{ name: string; token: string; live: boolean }>(
          "SELECT name, token, expires_at > clock_timestamp() AS live FROM leases WHERE name LIKE 'region:%'",
        );
        const now = performance.now();
        for (const r of rows) {
          const token = Number(r.token);
          if (token < (lastToken.get(r.name) ?? 0)) violations.push(`${r.name}: token went from ${lastToken.get(r.name)} to ${token}`);
          lastToken.set(r.name, token);
          if (!r.live && !freeSince.has(r.name)) freeSince.set(r.name, now);
          if (r.live && freeSince.has(r.name)) {
            if (measuring) maxUnheldMs = Math.max(maxUnheldMs, now - freeSince.get(r.name)!);
            freeSince.delete(r.name);
          }
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    cleanups.push(async () => { watching = false; await watch; });
    const counts = () => [...nodes.values()].map((l) => l.held().filter((n) => n.startsWith('region:')).length);

    const doomedDb = await tdb.reopen();
    await start('a');
    await start('b');
    await start('c', doomedDb);
    await expect.poll(counts, { timeout: 5000, interval: 20 }).toEqual([2, 2, 2]);
    // A few renewals later, still 2 each (no flapping).
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setTimeout(r, RENEW));
      expect(counts()).toEqual([2, 2, 2]);
    }
    expect([...nodes.values()].filter((l) => l.holds('global'))).toHaveLength(1);

    // c dies: its database connections are gone, it renews nothing more (and does not give its leases up).
    const cHeld = nodes.get('c')!.held().filter((n) => n.startsWith('region:'));
    const killedAt = performance.now();
    await doomedDb.close();
    const survivors = () => [nodes.get('a')!, nodes.get('b')!];
    await expect.poll(() => cHeld.every((n) => survivors().some((l) => l.holds(n))), { timeout: 5000, interval: 10 }).toBe(true);
    const takeoverMs = performance.now() - killedAt;
    expect(takeoverMs).toBeLessThan(TTL + TTL / 3 + RENEW + 1_000); // ttl + ttl/3 + grace, with room for scheduling on a busy 2-core CI machine (611 ms quiet, 1,090 ms seen busy); the figure is logged, the bound catches a lease never taken over
    nodes.delete('c');
    await expect.poll(counts, { timeout: 5000, interval: 20 }).toEqual([3, 3]);

    // A node (re)joins: a and b give one each back between rounds; it takes them within a renewal interval.
    measuring = true;
    freeSince.clear();
    await start('c2');
    await expect.poll(counts, { timeout: 5000, interval: 20 }).toEqual([2, 2, 2]);
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setTimeout(r, RENEW));
      expect(counts()).toEqual([2, 2, 2]);
    }
    watching = false;
    await watch;
    expect(maxUnheldMs).toBeLessThan(RENEW + 600); // one renewal interval (+ a round's queries, + scheduling at load): 32 ms quiet, 172 ms busy
    expect(violations).toEqual([]);
    console.info(`spread: takeover of a dead node's 2 leases ${takeoverMs.toFixed(0)} ms (ttl ${TTL}, renew ${RENEW}); longest unheld while rebalancing ${maxUnheldMs.toFixed(0)} ms`);
  });

  it('model: acquire, renew, expire and fence in any order — at most one node passes the fence at any database time, tokens only grow', async () => {
    await fresh();
    const sql = tdb.db.sql;
    const NODES = ['n0', 'n1', 'n2'] as const;
    type Step = { op: 'acquire'; node: number } | { op: 'expire' };
    const step = fc.oneof(
      { arbitrary: fc.record({ op: fc.constant('acquire' as const), node: fc.integer({ min: 0, max: NODES.length - 1 }) }), weight: 4 },
      { arbitrary: fc.record({ op: fc.constant('expire' as const) }), weight: 1 },
    );
    let run = 0;
    await fc.assert(fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 25 }), async (steps: Step[]) => {
      const name = `model:${run++}`;
      // The model: who holds, with which token, and whether it expired.
      let model: { holder: number; token: number; expired: boolean } | null = null;
      const tokens = new Map<number, number>(); // the token each node last got
      let lastToken = 0;
      for (const s of steps) {
        if (s.op === 'expire') {
          // Time passes beyond the ttl, by the database clock.
          await sql.run("UPDATE leases SET expires_at = clock_timestamp() - interval '1 millisecond' WHERE name = ?", [name]);
          if (model) model.expired = true;
        } else {
          const got = await acquireLeases(sql, NODES[s.node]!, [name], 60_000);
          const free = model === null || model.expired || model.holder === s.node;
          expect(got.has(name)).toBe(free);
          if (free) {
            const token = got.get(name)!;
            const expected = model === null ? 1 : model.holder === s.node ? model.token : model.token + 1;
            expect(token).toBe(expected);
            expect(token).toBeGreaterThanOrEqual(lastToken);
            lastToken = token;
            model = { holder: s.node, token, expired: false };
            tokens.set(s.node, token);
          }
        }
        // At this moment at most one node's fence passes — the model's holder, with its current token, unexpired.
        const passing: number[] = [];
        for (const [node, token] of tokens) {
          if (await sql.transaction((tx) => fenceHolds(tx, name, NODES[node]!, token))) passing.push(node);
        }
        expect(passing.length).toBeLessThanOrEqual(1);
        expect(passing).toEqual(model && !model.expired ? [model.holder] : []);
      }
    }), { numRuns: 40 });
  });
});

