import path from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EXAMPLES, parseTopic, buildTopic, type CommandAck } from '../../contract/index.ts';
import { fakeTelemetryStore } from '../../test/support/fake-telemetry-store.ts';
import { openTestDatabase, SQL_DATABASES, type TestDatabase } from '../../test/support/test-database.ts';
import { isDataError, SqlDataError, type Sql } from '../db/sql.ts';
import { loadRegionFile } from '../hubs/region-loader.ts';
import { LiveState } from '../live/live-state.ts';
import { createMetrics } from '../metrics.ts';
import { openDeadLetterStore, type DeadLetterStore } from './dead-letter-store.ts';
import { Ingest, type IngestHooks, type InboundPublish } from './ingest.ts';
import { KnownCompartments } from './known-compartments.ts';
import { openSeenMessageStore } from './seen-messages.ts';

/**
 * Values a database refuses (issue 14: PostgreSQL refuses U+0000 in TEXT where SQLite took it) never
 * stop ingest: a data error in the group commit's operational transaction is permanent, so the batch
 * is bisected and the one message dead-lettered while the rest — other hubs' included — is committed;
 * a failure worth retrying shows in `operationalHealthy` (→ /healthz) until a commit succeeds again.
 */
const REGION_FILE = path.resolve(import.meta.dirname, '../../config/regions/ishikawa-nomi.json');
const example = (name: string) => EXAMPLES.find((e) => e.name === name)!;
const LIMITS = { maxRows: 1000, maxBytes: 1 << 30, maxRowsPerHub: 1000, maxBytesPerHub: 8_388_608 };
const CHECKS = { maxFutureSkewMs: 300_000, compartments: new KnownCompartments([loadRegionFile(REGION_FILE)]), issuedModeVersion: () => 0 };

function inbound(name: string, over: Record<string, unknown> = {}, topicName?: string): InboundPublish {
  const e = example(name);
  const payload: Record<string, unknown> = { ...e.payload, ts: Date.now(), ...over };
  const topic = topicName ?? buildTopic({ ...e.topic, ...(over.hub ? { hub: over.hub as string } : {}) } as NonNullable<ReturnType<typeof parseTopic>>);
  return { topic, payload: Buffer.from(JSON.stringify(payload)), from: { hubId: payload.hub as string, region: 'ishikawa-nomi' }, clientId: `${payload.hub as string}.agent`, receivedAt: Date.now() };
}

describe.each(SQL_DATABASES)('on %s', (kind) => {
  let t: TestDatabase;
  let deadLetters: DeadLetterStore;
  const ingests: Ingest[] = [];
  beforeEach(async () => {
    t = await openTestDatabase(kind);
    deadLetters = await openDeadLetterStore(t.db, LIMITS);
  });
  afterEach(async () => {
    for (const i of ingests.splice(0)) await i.close(100);
    await t.cleanup();
  });

  async function ingestWith(hooks: IngestHooks, sql: Sql = t.db.sql): Promise<Ingest> {
    const i = new Ingest({
      store: fakeTelemetryStore().store, sql, deadLetters, live: new LiveState(loadRegionFile(REGION_FILE)), metrics: createMetrics(),
      logger: pino({ level: 'silent' }), seen: await openSeenMessageStore({ ...t.db, sql }), maxPayloadBytes: 65_536, maxBatchPoints: 1000,
      maxDevicesPerHub: 100, ...CHECKS, hooks,
    });
    ingests.push(i);
    return i;
  }

  /** `t`'s SQL, refusing every statement and transaction while `down()`, as when the database is unreachable. */
  function unreachableWhile(down: () => boolean): Sql {
    const base = t.db.sql;
    const up = () => {
      if (down()) throw Object.assign(new Error('connection refused'), { code: 'ECONNREFUSED' });
    };
    return {
      ...base,
      query: async (text, params) => (up(), base.query(text, params)),
      one: async (text, params) => (up(), base.one(text, params)),
      run: async (text, params) => (up(), base.run(text, params)),
      exec: async (script) => (up(), base.exec(script)),
      transaction: async (fn) => (up(), base.transaction(fn)),
    };
  }

  /** A statement the database refuses for its value (class 22 on PostgreSQL; SQLite takes almost anything, so its code is thrown). */
  async function refuseValue(tx: Sql): Promise<never> {
    if (tx.dialect === 'postgres') await tx.query('SELECT 1 / 0 AS n'); // 22012 division_by_zero
    throw Object.assign(new Error('string or blob too big'), { code: 'SQLITE_TOOBIG' });
  }

  it('dead-letters the one acknowledgement whose value the database refuses; every other, another hub\'s too, is recorded and acknowledged', async () => {
    const recorded: string[] = [];
    const ingest = await ingestWith({
      recordCommandAcks: async (acks: { ack: CommandAck }[], tx?: Sql) => {
        for (const { ack } of acks) if (ack.commandId === 'cmd-poison') await refuseValue(tx!);
        recorded.push(...acks.map((a) => `${a.ack.hub}/${a.ack.commandId}`));
      },
    });
    const poison = inbound('hub.command-ack', { id: 'ack-poison', commandId: 'cmd-poison' });
    const others = [
      inbound('hub.command-ack', { id: 'ack-1', commandId: 'cmd-1' }),
      inbound('hub.command-ack', { id: 'ack-2', commandId: 'cmd-2', hub: 'nomi-neagari' }),
      inbound('hub.command-ack', { id: 'ack-3', commandId: 'cmd-3', hub: 'nomi-neagari' }),
    ];
    // All in one group commit (submitted in the same tick); each settles within a few seconds.
    const settled = await within(5000, Promise.allSettled([ingest.handle(poison), ...others.map((o) => ingest.handle(o))]));
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled']);
    expect(recorded.sort()).toEqual(['nomi-neagari/cmd-2', 'nomi-neagari/cmd-3', 'nomi-terai/cmd-1']);
    const letters = await deadLetters.list({ limit: 10 });
    expect(letters.map((l) => [l.hub, l.reason])).toEqual([['nomi-terai', 'store_rejected']]);
    expect(letters[0]!.detail).toMatch(/operational database refused it/);
    expect(ingest.operationalHealthy).toBe(true);
  });

  it('reports the operational database unhealthy while its commits fail for a reason worth retrying, and healthy once one succeeds', async () => {
    let down = false;
    const flaky = unreachableWhile(() => down);
    const ingest = await ingestWith({}, flaky);
    down = true;
    expect(ingest.operationalHealthy).toBe(true);
    const done = ingest.handle(inbound('locker.event'));
    await waitUntil(() => !ingest.operationalHealthy);
    down = false;
    await within(15_000, done);
    expect(ingest.operationalHealthy).toBe(true);
  });

  it('holds a batch of acknowledgements alone when the database goes down while they are recorded, reports it unhealthy, and records them once it is back', async () => {
    let down = false;
    const flaky = unreachableWhile(() => down);
    const recorded: string[] = [];
    let dropped = false;
    const ingest = await ingestWith({
      recordCommandAcks: async (acks: { ack: CommandAck }[], tx?: Sql) => {
        // The connection drops (once) while the acknowledgement is written, after the dedupe ids went through.
        if (!dropped) {
          dropped = true;
          down = true;
          setTimeout(() => (down = false), 1_500);
        }
        if (down) throw Object.assign(new Error('connection refused'), { code: 'ECONNREFUSED' });
        await tx!.query('SELECT 1 AS one');
        recorded.push(...acks.map((a) => a.ack.commandId));
      },
    }, flaky);
    const health: boolean[] = [];
    const poll = setInterval(() => health.push(ingest.operationalHealthy), 10);
    const outcome = await within(15_000, ingest.handle(inbound('hub.command-ack', { id: 'ack-down', commandId: 'cmd-down' }))).then(() => 'acknowledged', (e: Error) => `refused: ${e.message}`);
    clearInterval(poll);
    expect({ outcome, recorded, sawUnhealthy: health.includes(false) }).toEqual({ outcome: 'acknowledged', recorded: ['cmd-down'], sawUnhealthy: true });
  });
});

describe('data errors', () => {
  it('PostgreSQL: U+0000 in TEXT is a SqlDataError (22021), permanent; SQLite stores it', async () => {
    const pg = await openTestDatabase('postgres');
    const lite = await openTestDatabase('sqlite');
    try {
      for (const t of [pg, lite]) await t.db.sql.exec('CREATE TABLE notes (body TEXT NOT NULL)');
      const err = await pg.db.sql.run('INSERT INTO notes (body) VALUES (?)', ['a\u0000b']).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SqlDataError);
      expect(err).toMatchObject({ code: '22021' });
      expect(isDataError(err)).toBe(true);
      await lite.db.sql.run('INSERT INTO notes (body) VALUES (?)', ['a\u0000b']);
      expect(isDataError(Object.assign(new Error('x'), { code: 'ECONNREFUSED' }))).toBe(false);
      expect(isDataError(Object.assign(new Error('x'), { code: '23505' }))).toBe(false);
    } finally {
      await pg.cleanup();
      await lite.cleanup();
    }
  });
});

async function within<T>(ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`not settled within ${ms} ms`)), ms)));
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function waitUntil(ok: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
