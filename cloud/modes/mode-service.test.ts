import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ModeAck, type CloudAck, type RegionMode } from '../../contract/index.ts';
import { regionOfHubs, regionsOfHubs } from '../../test/support/regions-of-hubs.ts';
import { openTestDatabase, type TestDatabase } from '../../test/support/test-database.ts';
import type { Regions } from '../hubs/regions.ts';
import { ModeError, ModeService, type ModeChangeEvent } from './mode-service.ts';
import { createMemoryModeStore, openModeStore, type ModeStore } from './mode-store.ts';

const T = 1_764_000_000_000;
const REGION = 'ishikawa-nomi';
const HUBS = ['hub-a', 'hub-b', 'hub-c'];

async function setupOn(store: ModeStore, regions: Regions = regionsOfHubs({ [REGION]: HUBS })) {
  let now = T;
  let failPublish = false;
  const published: RegionMode[] = [];
  const cloudAcks: { region: string; message: CloudAck }[] = [];
  const service = await ModeService.open({
    store, regions, now: () => now, ackTimeoutMs: 120_000, logger: pino({ level: 'silent' }),
    bus: {
      publishDesired: async (m) => {
        if (failPublish) throw new Error('broker down');
        published.push(m);
      },
      acknowledge: async (region, message) => void cloudAcks.push({ region, message }),
    },
  });
  const events: ModeChangeEvent[] = [];
  service.onModeChange((e) => events.push(e));
  return {
    service, store, regions, published, cloudAcks, events, advance: (ms: number) => (now += ms), at: () => now, failPublish: (v: boolean) => (failPublish = v),
  };
}

let seq = 0;
const modeAck = (hub: string, version: number, mode: 'normal' | 'emergency', ts: number, over: Partial<ModeAck> = {}): ModeAck =>
  ModeAck.parse({ v: 1, type: 'hub.mode-ack', id: `agent-${++seq}`, ts, hub, version, mode, source: 'cloud', ...over });

/** The service's behaviour on every store: in memory, and the SQL store on SQLite and PostgreSQL. */
describe.each(['memory', 'sqlite', 'postgres'] as const)('ModeService (%s store)', (kind) => {
  let db: TestDatabase | null = null;
  let newStore: () => Promise<ModeStore>;
  beforeEach(async () => {
    if (kind === 'memory') {
      newStore = async () => createMemoryModeStore();
      return;
    }
    const opened = await openTestDatabase(kind);
    db = opened;
    newStore = () => openModeStore(opened.db);
  });
  afterEach(async () => {
    await db?.cleanup();
    db = null;
  });
  /** A service on a new store, or on `store` (a restarted cloud over the same database). */
  const setup = async (store?: ModeStore) => setupOn(store ?? (await newStore()));

  it('switches the region: stores a new version, publishes it, tells listeners which hubs changed', async () => {
    const t = await setup();
    expect(t.service.desired(REGION)).toMatchObject({ version: 0, mode: 'normal' });
    const s = await t.service.switchMode(REGION, { mode: 'emergency', reason: 'M6.9 earthquake', by: 'bousai-1' });
    expect(s).toMatchObject({ version: 1, mode: 'emergency', hubs: null, published: true });
    expect(s.changes.map((c) => c.hub)).toEqual(HUBS);
    expect(t.published).toEqual([{ v: 1, type: 'region.mode', region: REGION, version: 1, ts: T, mode: 'emergency', hubs: {}, reason: 'M6.9 earthquake' }]);
    expect(t.events).toEqual([{ region: REGION, version: 1, at: T, by: 'bousai-1', reason: 'M6.9 earthquake', changes: HUBS.map((hub) => ({ hub, from: 'normal', to: 'emergency' })) }]);
    for (const h of HUBS) expect(t.service.modeOf(h)).toBe('emergency');
    expect(t.service.modeOf('not-a-hub')).toBe('normal');
  });

  it('reads the issued version again for an acknowledgement of one it has not seen (another process switched), one read for every message received before it', async () => {
    const t = await setup();
    const other = await setupOn(t.store); // a second process on the same store
    await other.service.switchMode(REGION, { mode: 'emergency', reason: 'quake', by: 'c' });
    expect(t.service.issuedVersion(REGION)).toBe(0);
    let reads = 0;
    const latest = t.store.latest.bind(t.store);
    t.store.latest = async (region, tx) => {
      reads++;
      return latest(region, tx);
    };
    const received = t.at();
    t.advance(1);
    const answers = await Promise.all([t.service.refreshIssued(REGION, received), t.service.refreshIssued(REGION, received), t.service.refreshIssued(REGION, received)]);
    expect(answers).toEqual([1, 1, 1]);
    expect(reads).toBe(1);
    expect(t.service.issuedVersion(REGION)).toBe(1);
    expect(t.service.modeOf(HUBS[0]!)).toBe('emergency');
    expect(await t.service.refreshIssued('not-a-region', received)).toBe(0);
  });

  it('tells which version it issued last (ingest refuses acknowledgements of higher ones), also after a restart', async () => {
    const t = await setup();
    expect(t.service.issuedVersion(REGION)).toBe(0);
    await t.service.switchMode(REGION, { mode: 'emergency', reason: 'flood', by: 'c' });
    await t.service.switchMode(REGION, { mode: 'normal', reason: 'over', by: 'c' });
    expect(t.service.issuedVersion(REGION)).toBe(2);
    expect((await setup(t.store)).service.issuedVersion(REGION)).toBe(2);
    expect(t.service.issuedVersion('another-region')).toBe(0);
  });

  it('ignores an acknowledgement of a version it never issued, so it cannot stand as the newest', async () => {
    const t = await setup();
    await t.service.switchMode(REGION, { mode: 'emergency', reason: 'flood', by: 'c' });
    await t.service.applyAck(modeAck('hub-a', 1e15, 'normal', T + 1), REGION, T + 1);
    await t.service.applyAck(modeAck('hub-a', 1, 'emergency', T + 2), REGION, T + 2);
    expect(t.service.view(REGION).hubs.find((h) => h.hub === 'hub-a')).toMatchObject({ status: 'acknowledged', acknowledged: { version: 1 } });
  });

  it('switches some hubs on top of the previous overrides; a switch that changes nothing still makes a version but no event', async () => {
    const t = await setup();
    await t.service.switchMode(REGION, { mode: 'emergency', hubs: ['hub-a'], reason: 'landslide', by: 'c' });
    const s2 = await t.service.switchMode(REGION, { mode: 'emergency', hubs: ['hub-b', 'hub-b'], reason: 'landslide', by: 'c' });
    expect(s2.hubs).toEqual(['hub-b']);
    expect(s2.desired).toMatchObject({ version: 2, mode: 'normal', hubs: { 'hub-a': 'emergency', 'hub-b': 'emergency' } });
    expect(HUBS.map((h) => t.service.modeOf(h))).toEqual(['emergency', 'emergency', 'normal']);
    const s3 = await t.service.switchMode(REGION, { mode: 'emergency', hubs: ['hub-a'], reason: 'again', by: 'c' });
    expect(s3.version).toBe(3);
    expect(s3.changes).toEqual([]);
    expect(t.events).toHaveLength(2);
    expect(t.published.map((m) => m.version)).toEqual([1, 2, 3]);
  });

  it('refuses an unknown region and hubs of another region, storing nothing', async () => {
    const t = await setup();
    await expect(t.service.switchMode('nowhere', { mode: 'emergency', reason: 'x', by: 'c' })).rejects.toMatchObject({ code: 'region_not_found' });
    await expect(t.service.switchMode(REGION, { mode: 'emergency', hubs: ['hub-a', 'elsewhere'], reason: 'x', by: 'c' }))
      .rejects.toThrow(ModeError);
    expect(() => t.service.view('nowhere')).toThrow(/no region/);
    expect(t.service.desired(REGION).version).toBe(0);
    expect(t.published).toEqual([]);
  });

  it('shows acknowledgement per hub with an injected clock: pending, timed out, acknowledged, and when the last hub confirmed', async () => {
    const t = await setup();
    await t.service.switchMode(REGION, { mode: 'emergency', reason: 'quake', by: 'c' });
    await t.service.applyAck(modeAck('hub-a', 1, 'emergency', T + 300), REGION, T + 400);
    t.advance(1000);
    await t.service.applyAck(modeAck('hub-b', 1, 'emergency', T + 900), REGION, T + 950);
    let v = t.service.view(REGION);
    expect(v.hubs.map((h) => [h.hub, h.status])).toEqual([['hub-a', 'acknowledged'], ['hub-b', 'acknowledged'], ['hub-c', 'pending']]);
    expect(v.lastAcknowledgedAt).toBe(T + 950);
    t.advance(119_000);
    v = t.service.view(REGION);
    expect(v.hubs[2]!.status).toBe('timed_out');
    expect(v.counts).toEqual({ total: 3, acknowledged: 2, pending: 0, timedOut: 1, diverged: 0, conflict: 0 });
    await t.service.applyAck(modeAck('hub-c', 1, 'emergency', T + 125_000), REGION, T + 125_001);
    v = t.service.view(REGION);
    expect(v.allAcknowledged).toBe(true);
    expect(v.lastAcknowledgedAt).toBe(T + 125_001);
  });

  it('writes the acknowledgements of one synchronous run as one batch, seen at once and stored when the promises resolve; a new service reads them back', async () => {
    const t = await setup();
    await t.service.switchMode(REGION, { mode: 'emergency', reason: 'quake', by: 'c' });
    const batches: number[] = [];
    const putAcks = t.store.putAcks.bind(t.store);
    t.store.putAcks = (acks, tx) => (batches.push(acks.length), putAcks(acks, tx));
    const applied = HUBS.map((hub) => t.service.applyAck(modeAck(hub, 1, 'emergency', T + 100), REGION, T + 200));
    applied.push(t.service.applyAck(modeAck('hub-a', 1, 'emergency', T + 50), REGION, T + 210)); // older: neither kept nor written
    expect(t.service.view(REGION).allAcknowledged).toBe(true); // seen at once
    expect(batches).toEqual([]);
    await Promise.all(applied);
    expect(batches).toEqual([3]);
    expect((await t.store.acks(REGION)).size).toBe(3);
    const restarted = await setup(t.store);
    expect(restarted.service.view(REGION).counts.acknowledged).toBe(3);
    expect(restarted.service.view(REGION).hubs[0]!.acknowledged).toMatchObject({ ts: T + 100, receivedAt: T + 200 });
  });

  it('reconciles a local switch replayed after an outage: audit entry, diverged while it differs, authoritative desired state, nothing published', async () => {
    const t = await setup();
    await t.service.switchMode(REGION, { mode: 'emergency', reason: 'quake', by: 'c' });
    await t.service.applyAck(modeAck('hub-c', 1, 'emergency', T + 100), REGION, T + 200);
    // Cut off, hub-c's staff switch it back to normal (the agent keeps version 1, source local) …
    const local = modeAck('hub-c', 1, 'normal', T + 60_000, { source: 'local', reason: 'no damage here, shop must open', historical: true });
    t.advance(3_600_000);
    // … which the cloud hears an hour later, when the link returns.
    await t.service.applyAck(local, REGION, t.at());
    await t.service.applyAck(local, REGION, t.at()); // re-sent copy (were dedupe to miss it): recorded once
    const v = t.service.view(REGION);
    expect(v.hubs[2]).toMatchObject({ hub: 'hub-c', desired: 'emergency', status: 'diverged', acknowledged: { mode: 'normal', source: 'local', historical: true } });
    expect(t.service.modeOf('hub-c')).toBe('emergency'); // the desired state stays authoritative
    expect(t.published.map((m) => m.version)).toEqual([1]); // nothing published automatically
    const [entry, ...rest] = await t.service.history(REGION, { limit: 10 });
    expect(rest.map((e) => e.kind)).toEqual(['switch']);
    expect(entry).toMatchObject({ kind: 'local_switch', at: T + 60_000, recordedAt: T + 3_600_000, by: 'hub staff at hub-c', mode: 'normal', hubs: ['hub-c'], historical: true, desiredVersion: 1, desiredMode: 'emergency' });
    expect(entry!.summary).toBe(`hub hub-c switched locally to normal at ${new Date(T + 60_000).toISOString()}: no damage here, shop must open `
      + '(differs from the desired emergency (version 1); the desired state stays in force until a coordinator switches, reported after its link returned)');
    // The hub hears that its switch was recorded.
    expect(t.cloudAcks).toEqual([{ region: REGION, message: expect.objectContaining({ type: 'cloud.ack', hub: 'hub-c', ackOf: local.id }) }]);

    // The coordinator adopts it with a new switch; the hub applies version 2 (higher) and acknowledges.
    await t.service.switchMode(REGION, { mode: 'normal', hubs: ['hub-c'], reason: 'adopt local decision at hub-c', by: 'c' });
    expect(t.service.view(REGION).hubs[2]!.status).toBe('pending');
    await t.service.applyAck(modeAck('hub-c', 2, 'normal', T + 3_700_000), REGION, t.at());
    expect(t.service.view(REGION).hubs[2]!.status).toBe('acknowledged');
  });

  it('a replayed local switch older than what the hub reported since is logged but does not change its standing', async () => {
    const t = await setup();
    await t.service.switchMode(REGION, { mode: 'emergency', reason: 'quake', by: 'c' });
    // The link returns: the hub applies version 1 (ack first here), and its earlier local switch arrives after it.
    await t.service.applyAck(modeAck('hub-a', 1, 'emergency', T + 5000), REGION, T + 5100);
    await t.service.applyAck(modeAck('hub-a', 0, 'emergency', T + 2000, { source: 'local', reason: 'shaking', historical: true }), REGION, T + 5200);
    const v = t.service.view(REGION);
    expect(v.hubs[0]).toMatchObject({ status: 'acknowledged', acknowledged: { version: 1, source: 'cloud' } });
    expect((await t.service.history(REGION, { limit: 1 }))[0]!.summary).toContain('hub hub-a switched locally to emergency');
  });

  it('a local emergency made while cut off, later than the coordinator\'s switch it had not seen, is adopted and shown as a conflict (issue 12, defect 10b)', async () => {
    const t = await setup();
    // hub-c is cut off (still on version 0, normal). The coordinator gives the all clear at T …
    await t.service.switchMode(REGION, { mode: 'normal', reason: 'all clear', by: 'bousai-1' });
    // … and a minute later hub-c's staff, not knowing, switch it to emergency.
    t.advance(3_600_000);
    const local = modeAck('hub-c', 0, 'emergency', T + 60_000, { source: 'local', reason: 'landslide on the access road', historical: true });
    await t.service.applyAck(local, REGION, t.at());
    expect(t.service.modeOf('hub-c')).toBe('emergency'); // the later switch wins: the hub stays in emergency
    await expect.poll(() => t.published.map((m) => [m.version, m.mode, m.hubs])).toEqual([[1, 'normal', {}], [2, 'normal', { 'hub-c': 'emergency' }]]);
    expect(t.events.at(-1)).toMatchObject({ version: 2, by: 'hub staff at hub-c', changes: [{ hub: 'hub-c', from: 'normal', to: 'emergency' }] });
    const hubC = () => t.service.view(REGION).hubs[2]!;
    expect(hubC()).toMatchObject({
      status: 'conflict',
      conflict: {
        winner: 'hub', local: { mode: 'emergency', at: T + 60_000, reason: 'landslide on the access road', version: 0 },
        coordinator: { version: 1, mode: 'normal', at: T, by: 'bousai-1', reason: 'all clear' },
      },
    });
    expect(t.service.view(REGION).counts.conflict).toBe(1);
    // The hub applies version 2; the conflict stays until a coordinator decides …
    await t.service.applyAck(modeAck('hub-c', 2, 'emergency', t.at()), REGION, t.at());
    expect(hubC().status).toBe('conflict');
    expect((await setup(t.store)).service.view(REGION).hubs[2]!.status).toBe('conflict'); // kept across a restart
    // … by switching that hub (here: keeping the emergency).
    await t.service.switchMode(REGION, { mode: 'emergency', hubs: ['hub-c'], reason: 'confirmed: landslide', by: 'bousai-1' });
    expect(hubC()).toMatchObject({ status: 'pending', conflict: null });
  });

  it('a local switch made while cut off, earlier than the coordinator\'s switch it had not seen, yields but is shown as a conflict', async () => {
    const t = await setup();
    t.advance(120_000);
    await t.service.switchMode(REGION, { mode: 'normal', reason: 'all clear', by: 'bousai-1' }); // at T + 120 s
    await t.service.applyAck(modeAck('hub-c', 0, 'emergency', T + 60_000, { source: 'local', reason: 'shaking', historical: true }), REGION, t.at());
    expect(t.service.modeOf('hub-c')).toBe('normal');
    expect(t.published.map((m) => m.version)).toEqual([1]);
    expect(t.service.view(REGION).hubs[2]).toMatchObject({ status: 'conflict', conflict: { winner: 'coordinator', local: { mode: 'emergency' }, coordinator: { version: 1 } } });
  });

  it('keeps the desired state when publishing fails, and publishes the newest again at start-up', async () => {
    const store = await newStore();
    const t = await setup(store);
    t.failPublish(true);
    const s = await t.service.switchMode(REGION, { mode: 'emergency', reason: 'quake', by: 'c' });
    expect(s.published).toBe(false);
    await t.service.switchMode(REGION, { mode: 'emergency', hubs: ['hub-b'], reason: 'still', by: 'c' });
    // A restarted cloud over the same store.
    const restarted = await setup(store);
    expect(restarted.service.desired(REGION).version).toBe(2);
    await restarted.service.republish();
    expect(restarted.published.map((m) => m.version)).toEqual([2]);
  });

  it('publishes in order, so the retained message is the newest version even when switches overlap', async () => {
    const t = await setup();
    const all = await Promise.all([1, 2, 3].map((i) => t.service.switchMode(REGION, { mode: i % 2 ? 'emergency' : 'normal', reason: `r${i}`, by: 'c' })));
    expect(all.map((s) => s.version)).toEqual([1, 2, 3]);
    expect(t.published.at(-1)!.version).toBe(3);
  });

  it('a failing listener neither breaks the switch nor the other listeners', async () => {
    const t = await setup();
    t.service.onModeChange(() => {
      throw new Error('boom');
    });
    const seen: number[] = [];
    const off = t.service.onModeChange((e) => seen.push(e.version));
    await t.service.switchMode(REGION, { mode: 'emergency', reason: 'x', by: 'c' });
    off();
    await t.service.switchMode(REGION, { mode: 'normal', reason: 'y', by: 'c' });
    expect(seen).toEqual([1]);
    expect(t.events.map((e) => e.version)).toEqual([1, 2]);
  });

  it('switches a region added while running, without a restart (issue 14, item 3)', async () => {
    const t = await setup();
    await expect(t.service.switchMode('ishikawa-kanazawa', { mode: 'emergency', reason: 'x', by: 'c' })).rejects.toMatchObject({ code: 'region_not_found' });
    expect(t.service.issuedVersion('ishikawa-kanazawa')).toBe(0);
    t.regions.add(regionOfHubs('ishikawa-kanazawa', ['kz-a', 'kz-b']));
    const s = await t.service.switchMode('ishikawa-kanazawa', { mode: 'emergency', hubs: ['kz-b'], reason: 'flood at the Sai river', by: 'c' });
    expect(s).toMatchObject({ version: 1, changes: [{ hub: 'kz-b', from: 'normal', to: 'emergency' }] });
    expect([t.service.modeOf('kz-a'), t.service.modeOf('kz-b'), t.service.modeOf('hub-a')]).toEqual(['normal', 'emergency', 'normal']);
    expect(t.service.issuedVersion('ishikawa-kanazawa')).toBe(1);
    expect(t.service.view('ishikawa-kanazawa').hubs.map((h) => h.status)).toEqual(['pending', 'pending']);
    expect(t.service.desired(REGION).version).toBe(0); // the other region is untouched
  });

  it('records acknowledgements and local switches inside the caller\'s transaction: two later local switches of one batch are both adopted, one version each', async () => {
    const t = await setup();
    await t.service.switchMode(REGION, { mode: 'normal', reason: 'all clear', by: 'bousai-1' });
    // The hubs' clocks run a minute ahead of the cloud's, so both local switches are later than the
    // first adoption too (an adoption is a switch "now", and a local switch older than it yields).
    const taken = [
      { ack: modeAck('hub-a', 1, 'emergency', T + 10), region: REGION, receivedAt: t.at() },
      { ack: modeAck('hub-b', 0, 'emergency', T + 60_000, { source: 'local', reason: 'landslide', historical: true }), region: REGION, receivedAt: t.at() },
      { ack: modeAck('hub-c', 0, 'emergency', T + 61_000, { source: 'local', reason: 'flood', historical: true }), region: REGION, receivedAt: t.at() },
    ];
    await t.store.transaction((tx) => t.service.recordAcks(taken, tx));
    expect((await t.store.latest(REGION))?.hubs).toEqual({ 'hub-b': 'emergency', 'hub-c': 'emergency' });
    expect((await t.store.latest(REGION))?.version).toBe(3);
    for (const { ack, region, receivedAt } of taken) await t.service.applyAck(ack, region, receivedAt); // after the commit
    expect(HUBS.map((h) => t.service.modeOf(h))).toEqual(['normal', 'emergency', 'emergency']);
    expect(t.service.view(REGION).counts.conflict).toBe(2);
    await expect.poll(() => t.published.at(-1)?.version).toBe(3);
    expect((await t.service.history(REGION, { limit: 10 })).map((e) => e.kind).sort()).toEqual(['local_switch', 'local_switch', 'switch', 'switch', 'switch']);
  });

  if (kind !== 'memory') it('writes nothing of a batch whose transaction is rolled back (ingest then refuses it and the hubs re-send)', async () => {
    const t = await setup();
    await t.service.switchMode(REGION, { mode: 'normal', reason: 'all clear', by: 'bousai-1' });
    const local = { ack: modeAck('hub-c', 0, 'emergency', T + 60_000, { source: 'local', reason: 'landslide' }), region: REGION, receivedAt: T + 120_000 };
    await expect(t.store.transaction(async (tx) => {
      await t.service.recordAcks([local, { ack: modeAck('hub-a', 1, 'normal', T + 5), region: REGION, receivedAt: T + 6 }], tx);
      throw new Error('the dedupe write failed');
    })).rejects.toThrow('the dedupe write failed');
    expect((await t.store.latest(REGION))?.version).toBe(1);
    expect((await t.store.acks(REGION)).size).toBe(0);
    expect(await t.service.history(REGION, { limit: 10 })).toHaveLength(1);
    // The re-send is recorded in full.
    await t.store.transaction((tx) => t.service.recordAcks([local], tx));
    await t.service.applyAck(local.ack, local.region, local.receivedAt);
    expect(t.service.view(REGION).hubs[2]).toMatchObject({ status: 'conflict', desired: 'emergency' });
  });
});

/**
 * Two cloud processes on one PostgreSQL database (issue 14, item 2): each has its own `ModeService`
 * and pool. SQLite's single writer hid the race of two coordinators switching one region at once.
 */
describe('ModeService: two cloud processes on one PostgreSQL database', () => {
  let db: TestDatabase;
  beforeEach(async () => {
    db = await openTestDatabase('postgres');
  });
  afterEach(async () => db.cleanup());

  it('switching one region at the same moment: each version is made once, the other coordinator gets mode_version_conflict, and no switch is half-stored', async () => {
    const a = await setupOn(await openModeStore(db.db));
    const b = await setupOn(await openModeStore(await db.reopen()));
    let made = 0;
    let conflicts = 0;
    for (let round = 0; round < 10; round++) {
      const mode = round % 2 ? 'normal' : 'emergency';
      const results = await Promise.allSettled([
        a.service.switchMode(REGION, { mode, reason: `alice ${round}`, by: 'alice' }),
        b.service.switchMode(REGION, { mode, hubs: ['hub-b'], reason: `bob ${round}`, by: 'bob' }),
      ]);
      for (const r of results) {
        if (r.status === 'fulfilled') made++;
        else {
          expect(r.reason).toMatchObject({ code: 'mode_version_conflict', message: expect.stringMatching(/switched by someone else at the same moment/) });
          conflicts++;
        }
      }
      const stored = (await a.store.latest(REGION))!;
      expect(stored.version).toBe(made);
      // The refused side knows the newest version at once (its hubs' modes are right, its next switch goes on top).
      for (const side of [a, b]) {
        if (results[side === a ? 0 : 1]!.status === 'rejected') expect(side.service.desired(REGION)).toEqual(stored);
      }
    }
    expect(conflicts).toBeGreaterThan(0);
    const log = await a.service.history(REGION, { limit: 100 });
    expect(log.map((e) => e.version)).toEqual(Array.from({ length: made }, (_, i) => made - i)); // every version once, each with its audit entry
    // A process that missed the other's switches (no conflict to tell it) still switches on top of the newest.
    const last = await b.service.switchMode(REGION, { mode: 'normal', reason: 'all clear', by: 'bob' });
    expect(last.version).toBe(made + 1);
  });

  it('a local switch taken by both processes at once (a re-send to each) is recorded and adopted once', async () => {
    const a = await setupOn(await openModeStore(db.db));
    const b = await setupOn(await openModeStore(await db.reopen()));
    await a.service.switchMode(REGION, { mode: 'normal', reason: 'all clear', by: 'bousai-1' });
    const local = { ack: modeAck('hub-c', 0, 'emergency', T + 60_000, { source: 'local', reason: 'landslide', historical: true }), region: REGION, receivedAt: T + 3_600_000 };
    const results = await Promise.allSettled([a, b].map((side) => side.store.transaction((tx) => side.service.recordAcks([local], tx))));
    // One records it; the other either finds it recorded (nothing to do) or lost the race for the adopted version (refused: the hub re-sends).
    expect(results.filter((r) => r.status === 'fulfilled').length).toBeGreaterThanOrEqual(1);
    const log = await a.service.history(REGION, { limit: 10 });
    expect(log.filter((e) => e.kind === 'local_switch')).toHaveLength(1);
    expect(log.filter((e) => e.kind === 'switch').map((e) => e.version)).toEqual([2, 1]);
  });

  it('follows the other process\'s switches and conflicts: modeOf (dispatch), issuedVersion (ingest) and the view catch up', async () => {
    const a = await setupOn(await openModeStore(db.db));
    const b = await setupOn(await openModeStore(await db.reopen()));
    const stop = b.service.follow(20);
    try {
      await a.service.switchMode(REGION, { mode: 'emergency', hubs: ['hub-a'], reason: 'landslide', by: 'alice' });
      await expect.poll(() => b.service.modeOf('hub-a')).toBe('emergency');
      expect(b.service.issuedVersion(REGION)).toBe(1);
      expect(b.events).toMatchObject([{ version: 1, by: 'alice', changes: [{ hub: 'hub-a', from: 'normal', to: 'emergency' }] }]);
      // A conflict recorded by a's ingest shows in b's view; a switch of the hub made by b clears it for a.
      a.advance(60_000);
      const local = { ack: modeAck('hub-c', 0, 'emergency', T + 30_000, { source: 'local', reason: 'flood' }), region: REGION, receivedAt: a.at() };
      await a.store.transaction((tx) => a.service.recordAcks([local], tx));
      await a.service.applyAck(local.ack, local.region, local.receivedAt);
      await expect.poll(() => b.service.view(REGION).hubs[2]!.status).toBe('conflict');
      await b.service.switchMode(REGION, { mode: 'normal', hubs: ['hub-c'], reason: 'checked: no flood', by: 'bob' });
      await a.service.catchUp();
      expect(a.service.view(REGION).hubs[2]!.conflict).toBeNull();
      expect(a.service.desired(REGION)).toMatchObject({ version: 3, by: 'bob' }); // 2: hub-c's later local switch, adopted
    } finally {
      stop();
    }
  });
});
