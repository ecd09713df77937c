import path from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { buildTopic } from '../../contract/index.ts';
import { openTestDatabase, SQL_DATABASES, type TestDatabase } from '../../test/support/test-database.ts';
import { createRegions } from '../hubs/regions.ts';
import { openDeadLetterStore } from '../ingest/dead-letter-store.ts';
import { Ingest, type InboundPublish } from '../ingest/ingest.ts';
import { KnownCompartments } from '../ingest/known-compartments.ts';
import { openSeenMessageStore } from '../ingest/seen-messages.ts';
import { loadRegionFile } from '../hubs/region-loader.ts';
import { LiveState } from '../live/live-state.ts';
import { createMetrics, type CloudMetrics } from '../metrics.ts';
import type { TelemetryStore } from '../telemetry/telemetry-store.ts';
import { ModeService } from './mode-service.ts';
import { openModeStore, type ModeStore } from './mode-store.ts';

/**
 * Issue 12, defect 10 (a): a mode acknowledgement whose write fails is not acknowledged over MQTT
 * and not remembered by dedupe, so the hub's re-send is taken and the coordinator sees the hub
 * acknowledge — before, the failure was only logged, the re-sends were dropped as copies, and after
 * a restart the hub showed `timed_out` for ever.
 */
const REGION_FILE = path.resolve(import.meta.dirname, '../../config/regions/ishikawa-nomi.json');
const REGION = 'ishikawa-nomi';
const HUB = 'nomi-terai';
const LIMITS = { maxRows: 1000, maxBytes: 1 << 30, maxRowsPerHub: 1000, maxBytesPerHub: 8_388_608 };
const noStore: TelemetryStore = {
  kind: 'fake', write: async () => undefined, history: async () => [], messageIds: async () => [], countPoints: async () => 0, close: async () => undefined,
};

let t: TestDatabase;
let metrics: CloudMetrics;
let ingest: Ingest;
let store: ModeStore;
let modes: ModeService;

/** `cloud.ack` replies to local switches, by the hub's message id. */
let replies: string[] = [];

function modeService(s: ModeStore): Promise<ModeService> {
  return ModeService.open({
    store: s, regions: createRegions([loadRegionFile(REGION_FILE)]), now: Date.now, ackTimeoutMs: 60_000, logger: pino({ level: 'silent' }),
    bus: { publishDesired: async () => undefined, acknowledge: async (_r, m) => void replies.push(m.ackOf) },
  });
}

async function start(kind: (typeof SQL_DATABASES)[number]): Promise<void> {
  t = await openTestDatabase(kind);
  replies = [];
  metrics = createMetrics();
  store = await openModeStore(t.db);
  modes = await modeService(store);
  ingest = await ingestFor(modes);
}

/** A cloud process's ingest on the shared database; `recentlySeen: 0`: copies are told by the database alone. */
async function ingestFor(m: ModeService, recentlySeen?: number): Promise<Ingest> {
  const region = loadRegionFile(REGION_FILE);
  // Wired as in cloud.ts.
  return new Ingest({
    store: noStore, sql: t.db.sql, deadLetters: await openDeadLetterStore(t.db, LIMITS), live: new LiveState(region), metrics, logger: pino({ level: 'silent' }),
    seen: await openSeenMessageStore(t.db), maxPayloadBytes: 65_536, maxBatchPoints: 1000, maxDevicesPerHub: 100, maxFutureSkewMs: 300_000,
    compartments: new KnownCompartments([region]), issuedModeVersion: (r) => modes.issuedVersion(r),
    hooks: {
      recordModeAcks: (acks, tx) => m.recordAcks(acks, tx),
      onModeAck: (ack, r, receivedAt) => m.applyAck(ack, r, receivedAt),
    },
    recentlySeen,
  });
}
afterEach(async () => {
  await ingest?.close(100);
  await t?.cleanup();
});

function modeAck(version: number, o: { id?: string; ts?: number; source?: 'cloud' | 'local'; mode?: string } = {}): InboundPublish {
  const payload = {
    v: 1, type: 'hub.mode-ack', id: o.id ?? 'agent-ack-000001', ts: o.ts ?? Date.now(), hub: HUB, version, mode: o.mode ?? 'emergency', source: o.source ?? 'cloud',
    ...(o.source === 'local' ? { reason: 'pad flooded' } : {}),
  };
  return {
    topic: buildTopic({ route: 'mode-ack', region: REGION, hub: HUB }), payload: Buffer.from(JSON.stringify(payload)),
    from: { hubId: HUB, region: REGION }, clientId: HUB, receivedAt: Date.now(),
  };
}

describe.each(SQL_DATABASES)('mode acknowledgements when their write fails (issue 12, defect 10a), on %s', (kind) => {
  it('leaves the message unacknowledged and unremembered, takes the re-send, and the hub shows acknowledged after a restart', async () => {
    await start(kind);
    await modes.switchMode(REGION, { mode: 'emergency', reason: 'M6.9 earthquake', by: 'bousai-1' });
    const putAcks = store.putAcks.bind(store);
    let failures = 1;
    store.putAcks = async (acks, tx) => {
      if (failures-- > 0) throw new Error('SQLITE_BUSY: database is locked');
      return putAcks(acks, tx);
    };
    const ack = modeAck(1);
    await expect(ingest.handle(ack)).rejects.toThrow(/re-send/); // no PUBACK: the broker closes the link, the hub re-sends
    expect((await metrics.unacknowledged.get()).values).toEqual([expect.objectContaining({ labels: { reason: 'mode_ack_store_failed' }, value: 1 })]);

    await ingest.handle({ ...ack, receivedAt: Date.now() }); // the hub's re-send (same message id)
    expect((await metrics.duplicates.get()).values.reduce((n, v) => n + v.value, 0)).toBe(0);
    // What a coordinator sees, also after the cloud restarted (memory gone, the store is the truth).
    expect((await modeService(await openModeStore(await t.reopen()))).view(REGION).hubs.find((h) => h.hub === HUB)).toMatchObject({ status: 'acknowledged', acknowledged: { version: 1 } });
  });
});

describe.each(SQL_DATABASES)('a copy only the database tells (another cloud process took the message), on %s', (kind) => {
  // Ingest writes mode acknowledgements together with the dedupe ids (issue 14, fan-out), before they
  // tell which messages are copies: recording a copy must change nothing a coordinator sees.
  it('an older acknowledgement sent again leaves the newer one standing', async () => {
    await start(kind);
    await modes.switchMode(REGION, { mode: 'emergency', reason: 'M6.9 earthquake', by: 'bousai-1' });
    const first = modeAck(1, { id: 'agent-ack-000001', ts: Date.now() - 5_000 });
    await ingest.handle(first);
    await modes.switchMode(REGION, { mode: 'normal', reason: 'all clear', by: 'bousai-1' });
    await ingest.handle(modeAck(2, { id: 'agent-ack-000002', mode: 'normal' }));
    // The hub re-sends its first acknowledgement to another cloud process, which has not seen it.
    const other = await ingestFor(await modeService(store), 0);
    await other.handle({ ...first, receivedAt: Date.now() });
    await other.close(1_000);
    expect((await metrics.duplicates.get()).values.reduce((n, v) => n + v.value, 0)).toBe(1);
    const view = (await modeService(await openModeStore(await t.reopen()))).view(REGION).hubs.find((h) => h.hub === HUB);
    expect(view).toMatchObject({ status: 'acknowledged', acknowledged: { version: 2, mode: 'normal' } });
  });

  it('a local switch sent again is written and answered once', async () => {
    await start(kind);
    await modes.switchMode(REGION, { mode: 'emergency', reason: 'M6.9 earthquake', by: 'bousai-1' });
    const local = modeAck(1, { id: 'agent-local-000007', source: 'local', mode: 'normal' });
    await ingest.handle(local);
    await vi.waitFor(() => expect(replies).toEqual(['agent-local-000007']));
    const other = await ingestFor(await modeService(store), 0);
    await other.handle({ ...local, receivedAt: Date.now() });
    await other.close(1_000);
    await ingest.close(1_000);
    expect((await metrics.duplicates.get()).values.reduce((n, v) => n + v.value, 0)).toBe(1);
    expect(replies).toEqual(['agent-local-000007']);
    const audit = await store.history(REGION, { limit: 100 });
    expect(audit.filter((e) => e.msgId === 'agent-local-000007')).toHaveLength(1);
  });
});
