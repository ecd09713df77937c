import path from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildTopic, EXAMPLES, parseTopic } from '../../contract/index.ts';
import { fakeTelemetryStore } from '../../test/support/fake-telemetry-store.ts';
import { openTestDatabase, SQL_DATABASES, type TestDatabase } from '../../test/support/test-database.ts';
import { loadRegionFile } from '../hubs/region-loader.ts';
import { LiveState } from '../live/live-state.ts';
import { createMetrics, type CloudMetrics } from '../metrics.ts';
import { openDeadLetterStore, type DeadLetterStore } from './dead-letter-store.ts';
import { Ingest, type IngestHooks, type InboundPublish } from './ingest.ts';
import { KnownCompartments } from './known-compartments.ts';
import { openSeenMessageStore, type SeenMessageStore } from './seen-messages.ts';

/**
 * Issue 12, defects 8 and 9: side effects of stored messages come out in arrival order even when two
 * group commits are under way and the later finishes first; shutdown waits for the hooks' work; a
 * dead-letter write that throws never stops later messages from being acknowledged.
 */
const REGION_FILE = path.resolve(import.meta.dirname, '../../config/regions/ishikawa-nomi.json');
const LIMITS = { maxRows: 1000, maxBytes: 1 << 30, maxRowsPerHub: 1000, maxBytesPerHub: 8_388_608 };

let t: TestDatabase;
let seenStore: SeenMessageStore;
let metrics: CloudMetrics;
let fake: ReturnType<typeof fakeTelemetryStore>;
let deadLetters: DeadLetterStore;
let ingest: Ingest | null;

function start(hooks: IngestHooks): Ingest {
  const region = loadRegionFile(REGION_FILE);
  ingest = new Ingest({
    store: fake.store, sql: t.db.sql, deadLetters, live: new LiveState(region), metrics, logger: pino({ level: 'silent' }), seen: seenStore,
    maxPayloadBytes: 65_536, maxBatchPoints: 1000, maxDevicesPerHub: 100, maxFutureSkewMs: 300_000,
    compartments: new KnownCompartments([region]), issuedModeVersion: () => 0, hooks,
  });
  return ingest;
}

let seq = 0;
/** A drone event of mission-0007 as its hub publishes it. */
function droneEvent(event: string, over: Record<string, unknown> = {}): InboundPublish {
  const e = EXAMPLES.find((x) => x.name === 'drone.event')!;
  const payload = { ...e.payload, id: `drone-1-ord-${++seq}`, ts: Date.now(), event, severity: 'info', detail: event, ...over };
  const topic = buildTopic(e.topic as NonNullable<ReturnType<typeof parseTopic>>);
  return { topic, payload: Buffer.from(JSON.stringify(payload)), from: { hubId: 'rs-komatsu-kibagata', region: 'ishikawa-nomi' }, clientId: 'rs-komatsu-kibagata', receivedAt: Date.now() };
}

describe.each(SQL_DATABASES)('on %s', (kind) => {
  beforeEach(async () => {
    t = await openTestDatabase(kind);
    metrics = createMetrics();
    fake = fakeTelemetryStore();
    deadLetters = await openDeadLetterStore(t.db, LIMITS);
    seenStore = await openSeenMessageStore(t.db);
    ingest = null;
  });
  afterEach(async () => {
    fake.releaseHeld();
    await ingest?.close(100);
    await t.cleanup();
  });

  describe('Ingest ordering of side effects (issue 12, defect 8)', () => {
    it('applies a landed after the takeoff that arrived before it, though the landed was stored first', async () => {
      const seen: string[] = [];
      const ing = start({ onDeviceMessage: (m) => void (m.type === 'drone.event' && seen.push(m.event)) });
      fake.holdNextWrite();
      const takeoff = ing.handle(droneEvent('takeoff'));
      await expect.poll(() => fake.writes()).toBe(1); // the takeoff's write is under way, held
      const landed = ing.handle(droneEvent('landed'));
      await expect.poll(() => fake.written.length).toBe(1); // the landed is stored while the takeoff is not
      expect(seen).toEqual([]); // nothing applied out of order meanwhile
      fake.releaseHeld();
      await Promise.all([takeoff, landed]);
      expect(seen).toEqual(['takeoff', 'landed']);
    });

    it('shutdown waits for the work a hook started on a stored message', async () => {
      let finished = false;
      // A slow hook, e.g. a mission event applied to the order store on the orders' own chain.
      const ing = start({ onDeviceMessage: () => new Promise<void>((r) => setTimeout(r, 30)).then(() => void (finished = true)) });
      await ing.handle(droneEvent('takeoff'));
      const finishedWhenClosed = await ing.close(5_000).then(() => finished);
      expect(finishedWhenClosed).toBe(true);
    });
  });

  describe('Ingest poison handling (issue 12, defect 9)', () => {
    it('keeps acknowledging later messages when the dead-letter write for a refused message throws once', async () => {
      const ing = start({});
      const addMany = deadLetters.addMany.bind(deadLetters);
      let failOnce = true;
      deadLetters.addMany = async (items, tx) => {
        if (failOnce) {
          failOnce = false;
          throw new Error('SQLITE_FULL: database or disk is full');
        }
        return addMany(items, tx);
      };
      const poisoned = droneEvent('takeoff', { detail: 'poison' });
      await expect(ing.handle(poisoned)).rejects.toThrow(/dead letter/);
      // Later messages are stored and acknowledged; the hub's re-sent copy is dead-lettered this time.
      await Promise.all(Array.from({ length: 10 }, (_, i) => ing.handle(droneEvent(i % 2 ? 'takeoff' : 'landed'))));
      expect(fake.written).toHaveLength(10);
      await ing.handle({ ...poisoned, receivedAt: Date.now() });
      expect((await deadLetters.list({ limit: 10 })).map((d) => d.reason)).toEqual(['store_rejected']);
      expect((await metrics.unacknowledged.get()).values).toEqual([expect.objectContaining({ labels: { reason: 'dead_letter_failed' }, value: 1 })]);
    });
  });
});
