import path from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EXAMPLES, parseTopic, buildTopic, type CommandAck } from '../../contract/index.ts';
import { fakeTelemetryStore } from '../../test/support/fake-telemetry-store.ts';
import { openTestDatabase, SQL_DATABASES, type TestDatabase } from '../../test/support/test-database.ts';
import type { Database } from '../db/database.ts';
import { loadRegionFile } from '../hubs/region-loader.ts';
import { LiveState } from '../live/live-state.ts';
import { createMetrics, type CloudMetrics } from '../metrics.ts';
import { openDeadLetterStore, type DeadLetterStore } from './dead-letter-store.ts';
import { Ingest, type InboundPublish } from './ingest.ts';
import { KnownCompartments } from './known-compartments.ts';
import { openSeenMessageStore, type SeenMessageStore } from './seen-messages.ts';

/** Dedupe of re-sent messages with side effects (issue 3), on a fake telemetry store and a real operational database (SQLite and PostgreSQL, issue 14). */
const REGION_FILE = path.resolve(import.meta.dirname, '../../config/regions/ishikawa-nomi.json');
const example = (name: string) => EXAMPLES.find((e) => e.name === name)!;
const LIMITS = { maxRows: 1000, maxBytes: 1 << 30, maxRowsPerHub: 1000, maxBytesPerHub: 8_388_608 };
const CHECKS = { maxFutureSkewMs: 300_000, compartments: new KnownCompartments([loadRegionFile(REGION_FILE)]), issuedModeVersion: () => 0 };

let t: TestDatabase;
let db: Database;
let seen: SeenMessageStore;
let deadLetters: DeadLetterStore;
let metrics: CloudMetrics;
let live: LiveState;
let fake: ReturnType<typeof fakeTelemetryStore>;
let acks: CommandAck[];
let ingest: Ingest;

function inbound(name: string, over: Record<string, unknown> = {}): InboundPublish {
  const e = example(name);
  const payload = { ...e.payload, ...over };
  const topic = buildTopic({
    ...e.topic, ...(over.hub ? { hub: over.hub as string } : {}), ...(over.device ? { device: over.device as string } : {}),
  } as NonNullable<ReturnType<typeof parseTopic>>);
  return { topic, payload: Buffer.from(JSON.stringify(payload)), from: { hubId: payload.hub as string, region: 'ishikawa-nomi' }, clientId: 'c', receivedAt: Date.now() };
}

const MODE_ACK_ID = 'agent-m3x2k-000008';
const duplicates = async () => (await metrics.duplicates.get()).values.reduce((n, v) => n + v.value, 0);
const eventPoints = () => fake.written.filter((p) => p.measurement === 'event');

describe.each(SQL_DATABASES)('on %s', (kind) => {
  beforeEach(async () => {
    t = await openTestDatabase(kind);
    db = t.db;
    seen = await openSeenMessageStore(db);
    deadLetters = await openDeadLetterStore(db, LIMITS);
    metrics = createMetrics();
    live = new LiveState(loadRegionFile(REGION_FILE));
    fake = fakeTelemetryStore();
    acks = [];
    ingest = new Ingest({
      store: fake.store, sql: db.sql, deadLetters, live, metrics, logger: pino({ level: 'silent' }), seen,
      maxPayloadBytes: 65_536, maxBatchPoints: 1000, maxDevicesPerHub: 100, ...CHECKS,
      hooks: { onCommandAck: (ack) => void acks.push(ack) },
    });
  });
  afterEach(async () => {
    await ingest.close(100);
    await t.cleanup();
  });

  describe('Ingest dedupe', () => {
    it('acknowledges a copy that arrives while the first is being written, storing and applying it once', async () => {
      const first = inbound('drone.event');
      let applied = 0;
      const apply = live.applyDeviceMessage.bind(live);
      live.applyDeviceMessage = (...args) => {
        applied++;
        apply(...args);
      };
      await Promise.all([ingest.handle(first), ingest.handle({ ...first, receivedAt: first.receivedAt + 1 })]);
      expect(eventPoints()).toHaveLength(1);
      expect(applied).toBe(1);
      expect(await duplicates()).toBe(1);
      expect(await seen.has('rs-komatsu-kibagata', 'drone-1', 'drone-1-m3x2k-000043')).toBe(true);
    });

    it('recognises a copy sent later from the dedupe memory, and counts it by type', async () => {
      await ingest.handle(inbound('locker.event'));
      await ingest.handle(inbound('locker.event'));
      await ingest.handle(inbound('locker.event'));
      expect(eventPoints()).toHaveLength(1);
      expect((await metrics.duplicates.get()).values).toEqual([expect.objectContaining({ labels: { type: 'locker.event' }, value: 2 })]);
      expect((await metrics.accepted.get()).values.find((v) => v.labels.type === 'locker.event')?.value).toBe(1);
    });

    it('does not pass a re-sent command acknowledgement to the hook again', async () => {
      await ingest.handle(inbound('hub.command-ack'));
      await ingest.handle(inbound('hub.command-ack'));
      expect(acks).toHaveLength(1);
      expect(await duplicates()).toBe(1);
    });

    it('treats the same message id at another hub as another message', async () => {
      await ingest.handle(inbound('sensor.event'));
      await ingest.handle(inbound('sensor.event', { hub: 'nomi-neagari' }));
      expect(eventPoints()).toHaveLength(2);
      expect(await duplicates()).toBe(0);
    });

    it('treats the same message id from another device of the hub as another message (issue 11)', async () => {
      const sensor = inbound('sensor.event', { id: 'shared-id' });
      const drone = inbound('drone.event', { id: 'shared-id', hub: 'nomi-terai' });
      await ingest.handle(sensor);
      await ingest.handle(drone);
      await ingest.handle(drone);
      expect(eventPoints().map((p) => p.tags.device)).toEqual(['wx', 'drone-1']);
      expect(await duplicates()).toBe(1);
    });

    it('leaves telemetry to the idempotent store (no dedupe memory for it)', async () => {
      await ingest.handle(inbound('sensor.telemetry'));
      await ingest.handle(inbound('sensor.telemetry'));
      expect(fake.written.filter((p) => p.measurement === 'sensor')).toHaveLength(2);
      expect(await seen.count()).toBe(0);
      expect(await duplicates()).toBe(0);
    });

    it('fails a copy together with its first copy, and remembers neither, when the write never succeeds', async () => {
      fake.setDown(true);
      const first = ingest.handle(inbound('drone.event'));
      const copy = ingest.handle(inbound('drone.event'));
      const settled = Promise.allSettled([first, copy]);
      await new Promise((r) => setTimeout(r, 20));
      await ingest.close(10);
      expect((await settled).map((s) => s.status)).toEqual(['rejected', 'rejected']);
      expect(await seen.count()).toBe(0);
    });
  });

  /** Makes the fake store's writes that contain `measurement` points hang until the returned function is called. */
  function holdWrites(measurement: string): () => void {
    fake.holdWritesOf(measurement);
    return fake.releaseHeld;
  }

  describe('Ingest urgent lane', () => {
    it('stores and applies an event while a telemetry batch is still being written, yet acknowledges it after that telemetry', async () => {
      // A store whose telemetry writes hang until released; event writes go straight through.
      const release = holdWrites('sensor');
      const order: string[] = [];
      const events: string[] = [];
      const apply = live.applyDeviceMessage.bind(live);
      live.applyDeviceMessage = (region, kind, msg, now) => {
        if (msg.type === 'locker.event') events.push(msg.id);
        apply(region, kind, msg, now);
      };
      // Two telemetry batches in flight: both write slots of the telemetry lane are taken.
      const first = ingest.handle(inbound('sensor.telemetry')).then(() => order.push('telemetry acknowledged'));
      await new Promise((r) => setImmediate(r));
      const second = ingest.handle(inbound('sensor.telemetry', { id: 'wx-second' })).then(() => order.push('telemetry acknowledged'));
      await new Promise((r) => setImmediate(r));
      const telemetry = Promise.all([first, second]);
      const event = ingest.handle(inbound('locker.event')).then(() => order.push('event acknowledged'));
      await new Promise((r) => setTimeout(r, 30));
      expect(eventPoints()).toHaveLength(1); // stored at once
      expect(events).toHaveLength(1); // applied (alarm rules run here) at once
      expect(order).toEqual([]); // but not acknowledged before the earlier telemetry
      release();
      await Promise.all([telemetry, event]);
      expect(order).toEqual(['telemetry acknowledged', 'telemetry acknowledged', 'event acknowledged']);
    });

    it('acknowledges telemetry that arrives after an outstanding event only after the event', async () => {
      const release = holdWrites('event');
      const order: string[] = [];
      const event = ingest.handle(inbound('locker.event')).then(() => order.push('event'));
      await new Promise((r) => setImmediate(r));
      const telemetry = ingest.handle(inbound('sensor.telemetry')).then(() => order.push('telemetry'));
      await new Promise((r) => setTimeout(r, 30));
      expect(fake.written.some((p) => p.measurement === 'sensor')).toBe(true);
      expect(order).toEqual([]);
      release();
      await Promise.all([event, telemetry]);
      expect(order).toEqual(['event', 'telemetry']);
    });
  });

  describe('Ingest onEventReceived', () => {
    it('passes a device event to the hook on receipt, before its write succeeds, and a re-sent copy not again', async () => {
      const received: string[] = [];
      const early = new Ingest({
        store: fake.store, sql: db.sql, deadLetters: deadLetters, live, metrics, logger: pino({ level: 'silent' }), seen, ...CHECKS,
        maxPayloadBytes: 65_536, maxBatchPoints: 1000, maxDevicesPerHub: 100,
        hooks: { onEventReceived: (m) => void received.push(m.id), onDeviceMessage: (m) => void received.push(`stored ${m.id}`) },
      });
      fake.setDown(true);
      const first = early.handle(inbound('locker.event'));
      expect(received).toEqual(['locker-a-m3x2k-000121']); // on receipt, while the store is down
      const copy = early.handle(inbound('locker.event'));
      const telemetry = early.handle(inbound('sensor.telemetry'));
      fake.setDown(false);
      await Promise.all([first, copy, telemetry]);
      expect(received[0]).toBe('locker-a-m3x2k-000121');
      expect(received.slice(1).sort()).toEqual(['stored locker-a-m3x2k-000121', 'stored wx-m3x2k-000510']); // the event once, the copy not
      await early.close(100);
    });
  });

  describe('Ingest acknowledgement order is per connection', () => {
    it("acknowledges one connection's event without waiting for another connection's telemetry", async () => {
      const release = holdWrites('sensor');
      const order: string[] = [];
      const telemetry = ingest.handle({ ...inbound('sensor.telemetry'), clientId: 'agent-a' }).then(() => order.push('a: telemetry'));
      await new Promise((r) => setImmediate(r));
      const event = ingest.handle({ ...inbound('locker.event'), clientId: 'agent-b' }).then(() => order.push('b: event'));
      await event;
      expect(order).toEqual(['b: event']);
      release();
      await telemetry;
      expect(order).toEqual(['b: event', 'a: telemetry']);
    });
  });

  describe('Ingest checks against what the cloud knows (issue 11)', () => {
    const rejected = async () => Object.fromEntries((await metrics.rejected.get()).values.filter((v) => v.value > 0).map((v) => [v.labels.reason, v.value]));
    function checked(issued: number) {
      const modeAcks: string[] = [];
      const i = new Ingest({
        store: fake.store, sql: db.sql, deadLetters, live, metrics, logger: pino({ level: 'silent' }), seen, ...CHECKS, issuedModeVersion: () => issued,
        maxPayloadBytes: 65_536, maxBatchPoints: 1000, maxDevicesPerHub: 100, hooks: { onModeAck: (a) => void modeAcks.push(a.id) },
      });
      return { ingest: i, deadLetters, modeAcks };
    }

    it('dead-letters a message stamped beyond the allowed skew, of every kind, and stores nothing of it', async () => {
      const { ingest: i, deadLetters } = checked(5);
      for (const name of ['drone.telemetry', 'locker.event', 'hub.status', 'hub.command-ack', 'hub.mode-ack']) {
        const m = inbound(name);
        const payload = { ...JSON.parse(m.payload.toString()), ts: m.receivedAt + 300_001 };
        await i.handle({ ...m, payload: Buffer.from(JSON.stringify(payload)) });
      }
      await i.handle({ ...inbound('drone.telemetry', { id: 'within-skew' }), receivedAt: Date.now() - 299_000 });
      expect(await rejected()).toEqual({ future_timestamp: 5 });
      expect((await deadLetters.list({ reason: 'future_timestamp', limit: 10 }))[0]!.detail).toMatch(/ahead of the cloud's clock \(limit 300 s/);
      expect(fake.written.map((p) => p.msgId)).toEqual(['within-skew']);
      await i.close(100);
    });

    it('refuses a mode acknowledgement of a version never issued; takes issued ones and local switches at the current version', async () => {
      const { ingest: i, modeAcks } = checked(3);
      await i.handle(inbound('hub.mode-ack', { id: 'pin', version: 1e15 }));
      await i.handle(inbound('hub.mode-ack', { id: 'next', version: 4 }));
      await i.handle(inbound('hub.mode-ack', { id: 'issued', version: 3 }));
      await i.handle(inbound('hub.mode-ack', { id: 'local', version: 3, source: 'local', mode: 'normal' }));
      expect(modeAcks).toEqual(['issued', 'local']);
      expect(await rejected()).toEqual({ unknown_mode_version: 2 });
      await i.close(100);
    });

    it('reads the issued versions again before refusing a mode acknowledgement of a higher one (cluster: another node switched), and refuses it only if still unknown', async () => {
      let issued = 3;
      let stored = 4; // another process switched the region to version 4; this one has not read it yet
      const reads: number[] = [];
      const modeAcks: string[] = [];
      const i = new Ingest({
        store: fake.store, sql: db.sql, deadLetters, live, metrics, logger: pino({ level: 'silent' }), seen, ...CHECKS, issuedModeVersion: () => issued,
        refreshIssuedModeVersion: async (_region, receivedAt) => {
          reads.push(receivedAt);
          issued = stored;
          return issued;
        },
        maxPayloadBytes: 65_536, maxBatchPoints: 1000, maxDevicesPerHub: 100, hooks: { onModeAck: (a) => void modeAcks.push(a.id) },
      });
      await i.handle(inbound('hub.mode-ack', { id: 'other-node-switch', version: 4 }));
      await i.handle(inbound('hub.mode-ack', { id: 'known-now', version: 4 }));
      await i.handle(inbound('hub.mode-ack', { id: 'made-up', version: 1e15 }));
      expect(modeAcks).toEqual(['other-node-switch', 'known-now']);
      expect(reads).toHaveLength(2); // none for the version known by then
      expect(await rejected()).toEqual({ unknown_mode_version: 1 });
      // The read fails (database down): the message is not acknowledged, so the hub sends it again.
      stored = Number.NaN;
      const failing = new Ingest({
        store: fake.store, sql: db.sql, deadLetters, live, metrics, logger: pino({ level: 'silent' }), seen, ...CHECKS, issuedModeVersion: () => 4,
        refreshIssuedModeVersion: () => Promise.reject(new Error('database unreachable')),
        maxPayloadBytes: 65_536, maxBatchPoints: 1000, maxDevicesPerHub: 100,
      });
      await expect(failing.handle(inbound('hub.mode-ack', { id: 'during-outage', version: 5 }))).rejects.toThrow(/unreachable/);
      expect(await rejected()).toEqual({ unknown_mode_version: 1 });
      await i.close(100);
      await failing.close(100);
    });

    it('dead-letters locker messages about compartments the region file does not have, before any alarm hook sees them', async () => {
      const events: string[] = [];
      const i = new Ingest({
        store: fake.store, sql: db.sql, deadLetters: deadLetters, live, metrics, logger: pino({ level: 'silent' }), seen, ...CHECKS,
        maxPayloadBytes: 65_536, maxBatchPoints: 1000, maxDevicesPerHub: 100, hooks: { onEventReceived: (m) => void events.push(m.id), onDeviceMessage: (m) => void events.push(m.id) },
      });
      await i.handle(inbound('locker.event', { id: 'made-up', compartment: 'Z99' }));
      await i.handle(inbound('locker.telemetry', { id: 'made-up-bank', device: 'locker-zz' }));
      await i.handle(inbound('locker.event', { id: 'real' }));
      expect(events).toEqual(['real', 'real']);
      expect(await rejected()).toEqual({ unknown_compartment: 2 });
      expect(live.hubs.get('nomi-terai')!.devices.has('locker-zz')).toBe(false);
      await i.close(100);
    });
  });

  describe('Ingest group commit (issue 14)', () => {
    it('recognises a copy remembered by another cloud process (or before a restart) in the group commit, without applying it', async () => {
      await ingest.handle(inbound('hub.command-ack'));
      const other = new Ingest({
        store: fake.store, sql: (await t.reopen()).sql, deadLetters, live, metrics, logger: pino({ level: 'silent' }),
        seen: await openSeenMessageStore(db), maxPayloadBytes: 65_536, maxBatchPoints: 1000, maxDevicesPerHub: 100, ...CHECKS,
        hooks: { onCommandAck: (ack) => void acks.push(ack) },
      });
      await other.handle(inbound('hub.command-ack'));
      await other.close(100);
      expect(acks).toHaveLength(1);
      expect(await duplicates()).toBe(1);
    });

    it('after a restart, knows copies of the newest remembered messages on receipt: the early event hook does not see them again', async () => {
      await ingest.handle(inbound('locker.event'));
      const received: string[] = [];
      const restarted = new Ingest({
        store: fake.store, sql: db.sql, deadLetters, live, metrics, logger: pino({ level: 'silent' }), seen, seenAtStart: await seen.newest(100),
        maxPayloadBytes: 65_536, maxBatchPoints: 1000, maxDevicesPerHub: 100, ...CHECKS,
        hooks: { onEventReceived: (m) => void received.push(m.id), onDeviceMessage: (m) => void received.push(`stored ${m.id}`) },
      });
      await restarted.handle(inbound('locker.event'));
      await restarted.handle(inbound('locker.event', { id: 'new-one' }));
      await restarted.close(100);
      expect(received).toEqual(['new-one', 'stored new-one']);
      expect(await duplicates()).toBe(1);
    });

    it("commits a batch's dedupe ids, mode acknowledgements and dead letters together: a failed commit leaves none of them", async () => {
      await db.migrate('probe', { sqlite: ['CREATE TABLE probe (id TEXT NOT NULL)'], postgres: ['CREATE TABLE probe (id TEXT NOT NULL)'] });
      let failOnce = true;
      const addMany = deadLetters.addMany.bind(deadLetters);
      const flaky: DeadLetterStore = {
        ...deadLetters,
        addMany: async (items, tx) => {
          const n = await addMany(items, tx);
          if (failOnce) {
            failOnce = false;
            throw new Error('the database went away mid-commit');
          }
          return n;
        },
      };
      const applied: string[] = [];
      const i = new Ingest({
        store: fake.store, sql: db.sql, deadLetters: flaky, live, metrics, logger: pino({ level: 'silent' }), seen, ...CHECKS, issuedModeVersion: () => 5,
        maxPayloadBytes: 65_536, maxBatchPoints: 1000, maxDevicesPerHub: 100,
        hooks: {
          recordModeAcks: async (list, tx) => {
            for (const a of list) await tx!.run('INSERT INTO probe (id) VALUES (?)', [a.ack.id]);
          },
          onModeAck: (a) => void applied.push(a.id),
          onDeviceMessage: (m) => void applied.push(m.id),
        },
      });
      const bad = { ...inbound('locker.event'), payload: Buffer.from('{not json') };
      await Promise.all([i.handle(inbound('hub.mode-ack')), i.handle(inbound('locker.event')), i.handle(bad)]);
      await i.close(1_000);
      expect(failOnce).toBe(false);
      expect(await db.sql.query('SELECT id FROM probe')).toEqual([{ id: MODE_ACK_ID }]);
      expect(await deadLetters.count()).toBe(1);
      expect(await seen.count()).toBe(2);
      expect(applied.sort()).toEqual([MODE_ACK_ID, 'locker-a-m3x2k-000121'].sort());
    });

    it('a refused mode acknowledgement is neither acknowledged nor remembered; the rest of its batch commits', async () => {
      const i = new Ingest({
        store: fake.store, sql: db.sql, deadLetters, live, metrics, logger: pino({ level: 'silent' }), seen, ...CHECKS, issuedModeVersion: () => 5,
        maxPayloadBytes: 65_536, maxBatchPoints: 1000, maxDevicesPerHub: 100,
        hooks: { recordModeAcks: async () => { throw new Error('modes table unavailable'); } },
      });
      const bad = { ...inbound('locker.event'), payload: Buffer.from('{not json') };
      const results = await Promise.allSettled([i.handle(inbound('hub.mode-ack')), i.handle(inbound('locker.event')), i.handle(bad)]);
      await i.close(100);
      expect(results.map((r) => r.status)).toEqual(['rejected', 'fulfilled', 'fulfilled']);
      expect(await seen.has('nomi-terai', '', MODE_ACK_ID)).toBe(false);
      expect(await seen.count()).toBe(1);
      expect(await deadLetters.count()).toBe(1);
    });

    it('applies command acknowledgements in the commit with their dedupe ids: once, and none when refused', async () => {
      await db.migrate('probe', { sqlite: ['CREATE TABLE probe (id TEXT NOT NULL)'], postgres: ['CREATE TABLE probe (id TEXT NOT NULL)'] });
      let failing = false;
      const i = new Ingest({
        store: fake.store, sql: db.sql, deadLetters, live, metrics, logger: pino({ level: 'silent' }), seen, ...CHECKS,
        maxPayloadBytes: 65_536, maxBatchPoints: 1000, maxDevicesPerHub: 100,
        hooks: {
          recordCommandAcks: async (list, tx) => {
            for (const a of list) await tx!.run('INSERT INTO probe (id) VALUES (?)', [a.ack.commandId]);
            if (failing) throw new Error('commands table unavailable');
          },
        },
      });
      failing = true;
      await expect(i.handle(inbound('hub.command-ack', { id: 'refused-ack' }))).rejects.toThrow(/command acknowledgement failed/);
      expect(await seen.count()).toBe(0);
      failing = false;
      await i.handle(inbound('hub.command-ack', { id: 'refused-ack' })); // the hub's re-send is taken
      await i.handle(inbound('hub.command-ack', { id: 'refused-ack' })); // its copy is not applied again
      await i.close(100);
      expect(await db.sql.query('SELECT id FROM probe')).toHaveLength(1);
      expect((await metrics.unacknowledged.get()).values).toEqual([expect.objectContaining({ labels: { reason: 'command_ack_store_failed' }, value: 1 })]);
    });

    if (kind === 'postgres') it('two cloud processes taking copies of one event at once apply it exactly once', async () => {
      const applied: string[] = [];
      const open = async (sqlDb: Database) => new Ingest({
        store: fake.store, sql: sqlDb.sql, deadLetters: await openDeadLetterStore(sqlDb, LIMITS), live, metrics, logger: pino({ level: 'silent' }),
        seen: await openSeenMessageStore(sqlDb), maxPayloadBytes: 65_536, maxBatchPoints: 1000, maxDevicesPerHub: 100, ...CHECKS,
        hooks: { onDeviceMessage: (m) => void applied.push(m.id) },
      });
      const [a, b] = [await open(db), await open(await t.reopen())];
      const events = Array.from({ length: 30 }, (_, n) => inbound('locker.event', { id: `e-${n}` }));
      await Promise.all(events.flatMap((e) => [a.handle(e), b.handle({ ...e, receivedAt: e.receivedAt + 1 })]));
      await Promise.all([a.close(100), b.close(100)]);
      expect(applied.sort()).toEqual(events.map((e) => JSON.parse(e.payload.toString()).id).sort());
      expect(await duplicates()).toBe(30);
    });
  });
});
