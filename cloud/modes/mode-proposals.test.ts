import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { regionOfHubs, regionsOfHubs } from '../../test/support/regions-of-hubs.ts';
import { openTestDatabase, SQL_DATABASES, type TestDatabase } from '../../test/support/test-database.ts';
import type { Regions } from '../hubs/regions.ts';
import { ModeProposals } from './mode-proposals.ts';

const T = 1_764_000_000_000;
const REGION = 'ishikawa-nomi';
const jma = (eventId: string | number | undefined, over: Record<string, unknown> = {}) => ({
  source: 'jma', by: 'hazard-feed', mode: 'emergency' as const, reason: '震度6弱 能美市', evidence: { intensity: '6-', area: '石川県加賀', ...(eventId === undefined ? {} : { eventId }) }, ...over,
});

describe.each(SQL_DATABASES)('ModeProposals on %s', (kind) => {
  let t: TestDatabase;
  let regions: Regions;
  let now: number;
  let proposals: ModeProposals;
  const open = async (db = t.db) => ModeProposals.open({ db, regions, now: () => now++ });
  beforeEach(async () => {
    t = await openTestDatabase(kind);
    regions = regionsOfHubs({ [REGION]: ['hub-a', 'hub-b'] });
    now = T;
    proposals = await open();
  });
  afterEach(async () => t.cleanup());

  it('stores proposals and lists them newest first, by region and state; a restart keeps them', async () => {
    const first = await proposals.propose(REGION, jma('20260101161010'));
    expect(first).toMatchObject({ created: true, proposal: { region: REGION, source: 'jma', by: 'hazard-feed', state: 'open', hubs: null, eventId: '20260101161010', createdAt: T } });
    const second = await proposals.propose(REGION, { source: 'river-gauge', by: 'river-feed', mode: 'emergency', reason: 'Tedori river over the warning level', hubs: ['hub-b', 'hub-b'] });
    expect(second.proposal).toMatchObject({ hubs: ['hub-b'], eventId: null, evidence: {} });
    expect((await proposals.list(REGION, { limit: 10 })).map((p) => p.id)).toEqual([second.proposal.id, first.proposal.id]);
    expect((await proposals.list(REGION, { state: 'open', limit: 1 })).map((p) => p.id)).toEqual([second.proposal.id]);
    expect(await (await open(await t.reopen())).list(REGION, { limit: 10 })).toEqual([second.proposal, first.proposal]);
  });

  it('keeps one proposal per (source, eventId): a later bulletin of the same earthquake returns the stored one', async () => {
    const first = await proposals.propose(REGION, jma(20260101161010));
    const again = await proposals.propose(REGION, jma('20260101161010', { reason: '震源・震度に関する情報' }));
    expect(again).toEqual({ proposal: first.proposal, created: false });
    expect((await proposals.propose(REGION, jma('20260101161010', { source: 'another-feed' }))).created).toBe(true);
    expect((await proposals.propose(REGION, jma(undefined))).created).toBe(true); // no event id: no dedupe
    expect((await proposals.propose(REGION, jma(undefined))).created).toBe(true);
    expect(await proposals.list(REGION, { limit: 10 })).toHaveLength(4);
  });

  it('keeps them apart per sending account: another account naming the same source and eventId first does not take the real one\'s place (found in review)', async () => {
    const forged = await proposals.propose(REGION, jma('20260101161010', { by: 'some-coordinator', reason: 'forged' }));
    const real = await proposals.propose(REGION, jma('20260101161010'));
    expect(real.created).toBe(true);
    expect(real.proposal).toMatchObject({ by: 'hazard-feed', reason: '震度6弱 能美市' });
    expect(forged.proposal).toMatchObject({ by: 'some-coordinator', reason: 'forged' });
    expect((await proposals.propose(REGION, jma('20260101161010', { reason: 'later bulletin' }))).proposal.id).toBe(real.proposal.id);
  });

  it('a proposal stored before the sending account was recorded still takes the later bulletins of its event (no second proposal at the upgrade)', async () => {
    const first = await proposals.propose(REGION, jma('20260101161010'));
    await t.db.sql.run('UPDATE mode_proposals SET by_account = NULL WHERE id = ?', [first.proposal.id]); // as the upgrade left it
    const again = await proposals.propose(REGION, jma('20260101161010', { reason: 'later bulletin' }));
    expect(again).toMatchObject({ created: false, proposal: { id: first.proposal.id, by: null } });
    expect(await proposals.list(REGION, { limit: 10 })).toHaveLength(1);
  });

  it('refuses an unknown region and hubs of another region, and takes a region added while running', async () => {
    await expect(proposals.propose('nowhere', jma('1'))).rejects.toMatchObject({ code: 'region_not_found' });
    await expect(proposals.propose(REGION, jma('1', { hubs: ['hub-a', 'kz-a'] }))).rejects.toMatchObject({ code: 'hub_not_in_region' });
    await expect(proposals.list('ishikawa-kanazawa', { limit: 10 })).rejects.toMatchObject({ code: 'region_not_found' });
    regions.add(regionOfHubs('ishikawa-kanazawa', ['kz-a']));
    expect((await proposals.propose('ishikawa-kanazawa', jma('1', { hubs: ['kz-a'] }))).created).toBe(true);
    expect(await proposals.list(REGION, { limit: 10 })).toEqual([]);
  });

  if (kind === 'postgres') it('stores a bulletin once when two cloud processes take it at the same moment, and numbers every proposal once', async () => {
    const other = await open(await t.reopen());
    for (let i = 0; i < 10; i++) {
      const both = await Promise.all([proposals.propose(REGION, jma(`event-${i}`)), other.propose(REGION, jma(`event-${i}`))]);
      expect(both.filter((r) => r.created)).toHaveLength(1);
      expect(both[0]!.proposal.id).toBe(both[1]!.proposal.id);
    }
    // Without an event id both are kept, each with its own place in the order.
    await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? proposals : other).propose(REGION, jma(undefined))));
    const listed = await proposals.list(REGION, { limit: 100 });
    expect(listed).toHaveLength(20);
    expect(new Set(listed.map((p) => p.id)).size).toBe(20);
  });
});
