import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { openOperationalDb, type OperationalDb } from '../db/operational-db.ts';
import { applySwitch, initialDesired, type HubAck } from './mode-state.ts';
import { createMemoryModeStore, createSqliteModeStore, type ModeStore, type NewAuditEntry } from './mode-store.ts';

/** One suite, both implementations: the in-memory store used by unit tests cannot drift from the real one. */
const T = 1_764_000_000_000;
const REGION = 'ishikawa-nomi';
const dirs: string[] = [];
const dbs: OperationalDb[] = [];
afterAll(() => {
  for (const db of dbs) db.close();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

const implementations: [string, () => ModeStore][] = [
  ['sqlite', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chiiki-modes-'));
    dirs.push(dir);
    const db = openOperationalDb(dir, 'normal');
    dbs.push(db);
    return createSqliteModeStore(db);
  }],
  ['memory', createMemoryModeStore],
];

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

describe.each(implementations)('ModeStore (%s)', (_name, create) => {
  let store: ModeStore;
  beforeEach(() => {
    store = create();
  });

  it('keeps every version; the newest is the desired state', () => {
    expect(store.latest(REGION)).toBeNull();
    const d1 = applySwitch(initialDesired(REGION), { mode: 'emergency', hubs: ['hub-a'], reason: 'quake', by: 'alice' }, T);
    const d2 = applySwitch(d1, { mode: 'emergency', reason: 'spreading', by: 'bob' }, T + 1);
    store.appendVersion(d1, switchAudit(1));
    store.appendVersion(d2, switchAudit(2));
    expect(store.latest(REGION)).toEqual(d2);
    expect(store.allLatest()).toEqual([d2]);
    const other = applySwitch(initialDesired('other-region'), { mode: 'normal', reason: 'drill over', by: 'carol' }, T + 2);
    store.appendVersion(other, switchAudit(1, { region: 'other-region' }));
    expect(store.allLatest()).toEqual([d2, other]); // by region id
    expect(store.latest(REGION)).toEqual(d2);
  });

  it('refuses a version twice (append-only), and writes nothing then', () => {
    const d1 = applySwitch(initialDesired(REGION), { mode: 'emergency', reason: 'quake', by: 'alice' }, T);
    store.appendVersion(d1, switchAudit(1));
    expect(() => store.appendVersion({ ...d1, reason: 'again' }, switchAudit(1))).toThrow();
    expect(store.latest(REGION)?.reason).toBe('quake');
  });

  it('returns the audit log newest first, pages by id, and records a local switch once per hub message', () => {
    const d1 = applySwitch(initialDesired(REGION), { mode: 'emergency', reason: 'quake', by: 'alice' }, T);
    const first = store.appendVersion(d1, switchAudit(1));
    const local = store.appendAudit(localAudit('hub-a', 'agent-1'));
    expect(local).not.toBeNull();
    expect(store.appendAudit(localAudit('hub-a', 'agent-1'))).toBeNull(); // a re-sent copy
    expect(store.appendAudit(localAudit('hub-b', 'agent-1'))).not.toBeNull(); // same id, another hub
    const all = store.history(REGION, { limit: 10 });
    expect(all.map((e) => e.kind)).toEqual(['local_switch', 'local_switch', 'switch']);
    expect(all[2]).toEqual(first);
    expect(all[1]).toEqual({ ...localAudit('hub-a', 'agent-1'), id: local!.id });
    expect(store.history(REGION, { limit: 1 })).toHaveLength(1);
    expect(store.history(REGION, { limit: 10, beforeId: local!.id }).map((e) => e.id)).toEqual([first.id]);
    expect(store.history('other-region', { limit: 10 })).toEqual([]);
  });

  it('keeps the newest acknowledgement of each hub: version first, then hub time', () => {
    expect(store.putAck(ack('hub-a', 1, T + 100))).toBe(true);
    expect(store.putAck(ack('hub-a', 0, T + 500, { source: 'local', historical: true }))).toBe(false); // replayed, older state
    expect(store.putAck(ack('hub-a', 1, T + 50))).toBe(false);
    expect(store.putAck(ack('hub-a', 1, T + 200, { source: 'local', mode: 'normal', reason: 'staff' }))).toBe(true);
    expect(store.putAck(ack('hub-b', 2, T))).toBe(true);
    expect(store.putAck(ack('hub-x', 1, T, { region: 'other-region' }))).toBe(true);
    const acks = store.acks(REGION);
    expect([...acks.keys()].sort()).toEqual(['hub-a', 'hub-b']);
    expect(acks.get('hub-a')).toEqual(ack('hub-a', 1, T + 200, { source: 'local', mode: 'normal', reason: 'staff' }));
  });

  it('takes a batch of acknowledgements in order, with the same rule as one by one', () => {
    expect(store.putAcks([])).toEqual([]);
    expect(store.putAcks([
      ack('hub-a', 1, T + 100),
      ack('hub-b', 1, T + 100),
      ack('hub-a', 1, T + 50), // older than the one before it in the same batch
      ack('hub-a', 2, T + 10),
    ])).toEqual([true, true, false, true]);
    expect(store.putAcks([ack('hub-b', 0, T + 900, { source: 'local' })])).toEqual([false]);
    const acks = store.acks(REGION);
    expect(acks.get('hub-a')).toEqual(ack('hub-a', 2, T + 10));
    expect(acks.get('hub-b')).toEqual(ack('hub-b', 1, T + 100));
  });

  it('keeps one open conflict per hub, by region, and clears them per hub or for the region', () => {
    const conflict = (hub: string, region = REGION, winner: 'hub' | 'coordinator' = 'hub') => ({
      hub, region, winner, detectedAt: T + 5,
      local: { mode: 'emergency' as const, at: T + 2, reason: 'road cut', version: 0, msgId: `m-${hub}` },
      coordinator: { version: 1, mode: 'normal' as const, at: T + 1, by: 'c', reason: 'all clear' },
    });
    store.putConflict(conflict('hub-a'));
    store.putConflict(conflict('hub-a', REGION, 'coordinator')); // replaces
    store.putConflict(conflict('hub-b'));
    store.putConflict(conflict('hub-x', 'another-region'));
    expect([...store.conflicts(REGION).values()]).toEqual(expect.arrayContaining([conflict('hub-a', REGION, 'coordinator'), conflict('hub-b')]));
    expect(store.conflicts(REGION).size).toBe(2);
    expect(store.clearConflicts(REGION, ['hub-b', 'hub-x'])).toBe(1);
    expect([...store.conflicts(REGION).keys()]).toEqual(['hub-a']);
    expect(store.clearConflicts(REGION, null)).toBe(1);
    expect(store.conflicts(REGION).size).toBe(0);
    expect(store.conflicts('another-region').size).toBe(1);
  });
});
