import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openTestDatabase, type TestDatabase } from '../../test/support/test-database.ts';
import { applySwitch, initialDesired, type DesiredMode, type HubAck } from './mode-state.ts';
import { createMemoryModeStore, MODE_MIGRATIONS, ModeVersionTakenError, openModeStore, type ModeStore, type NewAuditEntry } from './mode-store.ts';

/** One suite, every implementation: the in-memory store used by unit tests cannot drift from the real ones. */
const T = 1_764_000_000_000;
const REGION = 'ishikawa-nomi';

const switchAudit = (version: number, over: Partial<NewAuditEntry> = {}): NewAuditEntry => ({
  region: REGION, kind: 'switch', at: T + version, recordedAt: T + version, by: 'coordinator', mode: 'emergency', hubs: null, reason: 'quake',
  version, desiredVersion: null, desiredMode: null, historical: false, summary: `switch ${version}`, msgId: null, ...over,
});
const localAudit = (hub: string, msgId: string, over: Partial<NewAuditEntry> = {}): NewAuditEntry => ({
  region: REGION, kind: 'local_switch', at: T, recordedAt: T + 10, by: `hub staff at ${hub}`, mode: 'emergency', hubs: [hub], reason: 'river rising',
  version: 0, desiredVersion: 1, desiredMode: 'normal', historical: true, summary: 'local', msgId, ...over,
});
const ack = (hub: string, version: number, ts: number, over: Partial<HubAck> = {}): HubAck => ({
  hub, region: REGION, version, mode: 'emergency', source: 'cloud', reason: null, ts, receivedAt: ts + 5, msgId: `m-${hub}-${version}-${ts}`, historical: false, ...over,
});
const conflict = (hub: string, region = REGION, winner: 'hub' | 'coordinator' = 'hub') => ({
  hub, region, winner, detectedAt: T + 5,
  local: { mode: 'emergency' as const, at: T + 2, reason: 'road cut', version: 0, msgId: `m-${hub}` },
  coordinator: { version: 1, mode: 'normal' as const, at: T + 1, by: 'c', reason: 'all clear' },
});

describe.each(['sqlite', 'postgres', 'memory'] as const)('ModeStore (%s)', (kind) => {
  let t: TestDatabase | null = null;
  let store: ModeStore;
  /** The same database after a restart (memory: the same store). */
  let reopen: () => Promise<ModeStore>;
  beforeEach(async () => {
    if (kind === 'memory') {
      store = createMemoryModeStore();
      reopen = async () => store;
      return;
    }
    const opened = await openTestDatabase(kind);
    t = opened;
    store = await openModeStore(opened.db);
    reopen = async () => openModeStore(await opened.reopen());
  });
  afterEach(async () => {
    await t?.cleanup();
    t = null;
  });

  it('keeps every version; the newest is the desired state, also after a restart', async () => {
    expect(await store.latest(REGION)).toBeNull();
    const d1 = applySwitch(initialDesired(REGION), { mode: 'emergency', hubs: ['hub-a'], reason: 'quake', by: 'alice' }, T);
    const d2 = applySwitch(d1, { mode: 'emergency', reason: 'spreading', by: 'bob' }, T + 1);
    await store.appendVersion(d1, switchAudit(1));
    await store.appendVersion(d2, switchAudit(2));
    expect(await store.latest(REGION)).toEqual(d2);
    expect(await store.allLatest()).toEqual([d2]);
    const other = applySwitch(initialDesired('other-region'), { mode: 'normal', reason: 'drill over', by: 'carol' }, T + 2);
    await store.appendVersion(other, switchAudit(1, { region: 'other-region' }));
    expect(await store.allLatest()).toEqual([d2, other]); // by region id
    expect(await store.latest(REGION)).toEqual(d2);
    expect(await (await reopen()).allLatest()).toEqual([d2, other]);
  });

  it('refuses a version twice (append-only) with ModeVersionTakenError, and writes nothing then', async () => {
    const d1 = applySwitch(initialDesired(REGION), { mode: 'emergency', reason: 'quake', by: 'alice' }, T);
    await store.appendVersion(d1, switchAudit(1));
    await expect(store.appendVersion({ ...d1, reason: 'again' }, switchAudit(1, { summary: 'again' }))).rejects.toThrow(ModeVersionTakenError);
    expect((await store.latest(REGION))?.reason).toBe('quake');
    expect((await store.history(REGION, { limit: 10 })).map((e) => e.summary)).toEqual(['switch 1']); // no audit entry without its version
  });

  it('writes a version and its audit entry in one transaction: both or neither', async () => {
    const d1 = applySwitch(initialDesired(REGION), { mode: 'emergency', reason: 'quake', by: 'alice' }, T);
    await expect(store.transaction(async (tx) => {
      await store.appendVersion(d1, switchAudit(1), tx);
      await store.clearConflicts(REGION, null, tx);
      throw new Error('the process died here');
    })).rejects.toThrow('the process died here');
    if (kind === 'memory') return; // no transactions in memory
    expect(await store.latest(REGION)).toBeNull();
    expect(await store.history(REGION, { limit: 10 })).toEqual([]);
    await store.appendVersion(d1, switchAudit(1));
    expect((await store.latest(REGION))?.version).toBe(1);
  });

  it('returns the audit log newest first, pages by id, and records a local switch once per hub message', async () => {
    const d1 = applySwitch(initialDesired(REGION), { mode: 'emergency', reason: 'quake', by: 'alice' }, T);
    const first = await store.appendVersion(d1, switchAudit(1));
    const local = await store.appendAudit(localAudit('hub-a', 'agent-1'));
    expect(local).not.toBeNull();
    expect(await store.appendAudit(localAudit('hub-a', 'agent-1'))).toBeNull(); // a re-sent copy
    expect(await store.appendAudit(localAudit('hub-b', 'agent-1'))).not.toBeNull(); // same id, another hub
    const all = await store.history(REGION, { limit: 10 });
    expect(all.map((e) => e.kind)).toEqual(['local_switch', 'local_switch', 'switch']);
    expect(all[2]).toEqual(first);
    expect(all[1]).toEqual({ ...localAudit('hub-a', 'agent-1'), id: local!.id });
    expect(await store.history(REGION, { limit: 1 })).toHaveLength(1);
    expect((await store.history(REGION, { limit: 10, beforeId: local!.id })).map((e) => e.id)).toEqual([first.id]);
    expect(await store.history('other-region', { limit: 10 })).toEqual([]);
  });

  it('keeps the newest acknowledgement of each hub: version first, then hub time', async () => {
    expect(await store.putAck(ack('hub-a', 1, T + 100))).toBe(true);
    expect(await store.putAck(ack('hub-a', 0, T + 500, { source: 'local', historical: true }))).toBe(false); // replayed, older state
    expect(await store.putAck(ack('hub-a', 1, T + 50))).toBe(false);
    expect(await store.putAck(ack('hub-a', 1, T + 200, { source: 'local', mode: 'normal', reason: 'staff' }))).toBe(true);
    expect(await store.putAck(ack('hub-b', 2, T))).toBe(true);
    expect(await store.putAck(ack('hub-x', 1, T, { region: 'other-region' }))).toBe(true);
    const acks = await store.acks(REGION);
    expect([...acks.keys()].sort()).toEqual(['hub-a', 'hub-b']);
    expect(acks.get('hub-a')).toEqual(ack('hub-a', 1, T + 200, { source: 'local', mode: 'normal', reason: 'staff' }));
    expect((await (await reopen()).allAcks()).map((a) => [a.hub, a.region])).toEqual([['hub-a', REGION], ['hub-b', REGION], ['hub-x', 'other-region']]);
  });

  it('takes a batch of acknowledgements in order, with the same rule as one by one', async () => {
    await store.putAcks([]);
    await store.putAcks([
      ack('hub-a', 1, T + 100),
      ack('hub-b', 1, T + 100),
      ack('hub-a', 1, T + 50), // older than the one before it in the same batch
      ack('hub-a', 2, T + 10),
    ]);
    await store.putAcks([ack('hub-b', 0, T + 900, { source: 'local' })]); // older version: not kept
    // The stored one lies between the batch's: the newest of all is kept.
    await store.putAcks([ack('hub-b', 1, T + 50), ack('hub-b', 1, T + 150), ack('hub-b', 1, T + 120), ack('hub-c', 1, T)]);
    const acks = await store.acks(REGION);
    expect(acks.get('hub-a')).toEqual(ack('hub-a', 2, T + 10));
    expect(acks.get('hub-b')).toEqual(ack('hub-b', 1, T + 150));
    expect(acks.get('hub-c')).toEqual(ack('hub-c', 1, T));
  });

  it('takes the acknowledgements of a region of thousands of hubs in one call, inside a caller\'s transaction', async () => {
    const hubs = Array.from({ length: 1_234 }, (_, i) => `hub-${String(i).padStart(5, '0')}`);
    await store.putAcks(hubs.filter((_, i) => i % 2 === 0).map((h) => ack(h, 2, T))); // every other hub is already ahead
    await store.transaction((tx) => store.putAcks(hubs.map((h) => ack(h, 1, T + 1)), tx));
    const acks = await store.acks(REGION);
    expect([...acks.values()].filter((a) => a.version === 1)).toHaveLength(617);
    expect(acks.size).toBe(1_234);
    expect(acks.get('hub-00000')?.version).toBe(2);
    expect(acks.get('hub-00001')?.version).toBe(1);
  });

  it('keeps one open conflict per hub, by region, and clears them per hub or for the region', async () => {
    await store.putConflict(conflict('hub-a'));
    await store.putConflict(conflict('hub-a', REGION, 'coordinator')); // replaces
    await store.putConflict(conflict('hub-b'));
    await store.putConflict(conflict('hub-x', 'another-region'));
    expect([...(await store.conflicts(REGION)).values()]).toEqual(expect.arrayContaining([conflict('hub-a', REGION, 'coordinator'), conflict('hub-b')]));
    expect((await store.conflicts(REGION)).size).toBe(2);
    expect((await (await reopen()).allConflicts()).map((c) => c.hub)).toEqual(['hub-a', 'hub-b', 'hub-x']);
    expect(await store.clearConflicts(REGION, ['hub-b', 'hub-x'])).toBe(1);
    expect([...(await store.conflicts(REGION)).keys()]).toEqual(['hub-a']);
    expect(await store.clearConflicts(REGION, [])).toBe(0);
    expect(await store.clearConflicts(REGION, null)).toBe(1);
    expect((await store.conflicts(REGION)).size).toBe(0);
    expect((await store.conflicts('another-region')).size).toBe(1);
  });
});

/**
 * Two cloud processes on one PostgreSQL database (two `Database` handles, two pools) writing at the
 * same moment. SQLite's single writer never showed these races; a read-then-write store fails them.
 */
describe('ModeStore on PostgreSQL with concurrent writers', () => {
  let t: TestDatabase;
  let a: ModeStore;
  let b: ModeStore;
  beforeEach(async () => {
    t = await openTestDatabase('postgres');
    a = await openModeStore(t.db);
    b = await openModeStore(await t.reopen());
  });
  afterEach(async () => t.cleanup());

  it('makes each version exactly once: the other writer gets ModeVersionTakenError, and no audit entry is left without its version', async () => {
    let desired: DesiredMode = initialDesired(REGION);
    const outcomes: string[] = [];
    for (let round = 0; round < 25; round++) {
      // Both processes saw the same newest version and switch on top of it at once.
      const next = (by: string) => applySwitch(desired, { mode: round % 2 ? 'normal' : 'emergency', reason: `round ${round}`, by }, T + round);
      const results = await Promise.allSettled([
        a.appendVersion(next('alice'), switchAudit(desired.version + 1, { by: 'alice', summary: `alice ${round}` })),
        b.appendVersion(next('bob'), switchAudit(desired.version + 1, { by: 'bob', summary: `bob ${round}` })),
      ]);
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      expect(refused.reason).toBeInstanceOf(ModeVersionTakenError);
      outcomes.push(results[0]!.status === 'fulfilled' ? 'alice' : 'bob');
      desired = (await a.latest(REGION))!;
      expect(desired.version).toBe(round + 1);
      expect(desired.by).toBe(outcomes.at(-1));
    }
    const log = await b.history(REGION, { limit: 100 });
    expect(log.map((e) => e.version)).toEqual(Array.from({ length: 25 }, (_, i) => 25 - i));
    expect(log.map((e) => e.by)).toEqual([...outcomes].reverse()); // each entry is its version's writer's
  });

  it('records a local switch once when two processes take copies of it at the same moment', async () => {
    for (let i = 0; i < 20; i++) {
      const entries = await Promise.all([a.appendAudit(localAudit('hub-a', `agent-${i}`)), b.appendAudit(localAudit('hub-a', `agent-${i}`))]);
      expect(entries.filter((e) => e !== null)).toHaveLength(1);
    }
    expect(await a.history(REGION, { limit: 100 })).toHaveLength(20);
  });

  it('keeps the newest acknowledgement of each hub when two processes write overlapping batches (no deadlock, nothing older wins)', async () => {
    const hubs = Array.from({ length: 300 }, (_, i) => `hub-${i}`);
    for (let round = 1; round <= 5; round++) {
      // Opposite orders: a store that locked rows in arrival order would deadlock here.
      await Promise.all([
        a.transaction((tx) => a.putAcks(hubs.map((h) => ack(h, round, T + 1)), tx)),
        b.transaction((tx) => b.putAcks([...hubs].reverse().map((h) => ack(h, round, T + 2)), tx)),
      ]);
    }
    const acks = await a.acks(REGION);
    expect(new Set([...acks.values()].map((x) => `${x.version}@${x.ts}`))).toEqual(new Set([`5@${T + 2}`]));
  });
});

describe('ModeStore on a cloud.db of the previous release', () => {
  it('reads the versions, acknowledgements and conflicts it kept, and goes on writing', async () => {
    const t = await openTestDatabase('sqlite');
    try {
      // As the synchronous SQLite store of issue 13 left it (its migrateFeature ran the steps and noted the version), rows written by hand.
      const old = t.db.legacySqlite!;
      old.exec('CREATE TABLE IF NOT EXISTS schema_migrations (feature TEXT PRIMARY KEY, version INTEGER NOT NULL) WITHOUT ROWID');
      for (const step of MODE_MIGRATIONS.sqlite) old.exec(step);
      old.prepare('INSERT INTO schema_migrations (feature, version) VALUES (?, ?)').run('modes', MODE_MIGRATIONS.sqlite.length);
      old.prepare('INSERT INTO mode_versions (region, version, mode, hubs, reason, by, at) VALUES (?, ?, ?, ?, ?, ?, ?)').run(REGION, 1, 'emergency', '{}', 'quake', 'alice', T);
      old.prepare(`INSERT INTO mode_audit (region, kind, at, recorded_at, by, mode, hubs, reason, version, historical, summary) VALUES (?, 'switch', ?, ?, 'alice', 'emergency', NULL, 'quake', 1, 0, 'switch 1')`).run(REGION, T, T);
      old.prepare(`INSERT INTO mode_hub_acks (hub, region, version, mode, source, reason, ts, received_at, msg_id, historical) VALUES ('hub-a', ?, 1, 'emergency', 'cloud', NULL, ?, ?, 'm-1', 0)`).run(REGION, T + 1, T + 2);
      old.prepare('INSERT INTO mode_conflicts (hub, region, body) VALUES (?, ?, ?)').run('hub-b', REGION, JSON.stringify(conflict('hub-b')));
      const store = await openModeStore(await t.reopen());
      expect(await store.latest(REGION)).toMatchObject({ version: 1, mode: 'emergency', by: 'alice', at: T });
      expect(await store.allAcks()).toEqual([ack('hub-a', 1, T + 1, { receivedAt: T + 2, msgId: 'm-1' })]);
      expect(await store.allConflicts()).toEqual([conflict('hub-b')]);
      const d2 = applySwitch((await store.latest(REGION))!, { mode: 'normal', reason: 'over', by: 'bob' }, T + 10);
      await store.appendVersion(d2, switchAudit(2));
      expect((await store.history(REGION, { limit: 10 })).map((e) => e.version)).toEqual([2, 1]);
    } finally {
      await t.cleanup();
    }
  });
});
