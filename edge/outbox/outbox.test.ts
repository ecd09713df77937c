import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LANE, type Lane } from './lanes.ts';
import { Outbox, type NewEntry } from './outbox.ts';

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

function open(opts: Partial<ConstructorParameters<typeof Outbox>[1]> = {}, file?: string) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outbox-'));
  dirs.push(dir);
  let t = 1_800_000_000_000;
  const box = new Outbox(file ?? path.join(dir, 'outbox.db'), { maxMessages: 1000, thinThreshold: 500, thinIntervalMs: 60_000, now: () => t, ...opts });
  return { box, dir, advance: (ms: number) => (t += ms) };
}

const entry = (id: string, lane: Lane, deviceTs = 0, device = 'wx'): NewEntry => ({
  lane, topic: `v1/r/h/sensor/${device}/${lane === LANE.telemetry ? 'telemetry' : 'event'}`, payload: Buffer.from(`{"id":"${id}"}`),
  msgId: id, device, deviceTs, offline: false,
});

describe('Outbox', () => {
  it("deduplicates by (device, id): a re-send is stored once, another device's same id is not a duplicate [issue 11]", async () => {
    const { box } = open();
    expect(await box.append(entry('n-1', LANE.telemetry, 0, 'drone-1'))).toBe('stored');
    expect(await box.append(entry('n-1', LANE.telemetry, 0, 'wx'))).toBe('stored');
    expect(await box.append(entry('n-1', LANE.telemetry, 0, 'wx'))).toBe('duplicate');
    expect(box.next(10, new Set()).map((e) => `${e.device}:${e.msgId}`).sort()).toEqual(['drone-1:n-1', 'wx:n-1']);
  });

  it('hands out alarms and acks first, then events, then telemetry', async () => {
    const { box } = open();
    await box.append(entry('t1', LANE.telemetry));
    await box.append(entry('e1', LANE.event));
    await box.append(entry('a1', LANE.urgent));
    await box.append(entry('t2', LANE.telemetry));
    expect(box.next(3, new Set()).map((e) => e.msgId)).toEqual(['a1', 'e1', 't2']); // newest telemetry gets its share
    expect(box.next(10, new Set()).map((e) => e.msgId)).toEqual(['a1', 'e1', 't2', 't1']);
  });

  it('stores a re-sent message once', async () => {
    const { box } = open();
    expect(await box.append(entry('m1', LANE.event))).toBe('stored');
    expect(await box.append(entry('m1', LANE.event))).toBe('duplicate');
    expect(box.depth).toBe(1);
  });

  it('keeps entries across a reopen until they are removed', async () => {
    const { box, dir } = open();
    for (let i = 0; i < 10; i++) await box.append(entry(`m${i}`, LANE.telemetry, i));
    const all = box.next(100, new Set());
    box.remove(all.filter((e) => e.msgId === 'm0' || e.msgId === 'm1').map((e) => e.seq));
    box.close();
    const again = new Outbox(path.join(dir, 'outbox.db'), { maxMessages: 1000, thinThreshold: 500, thinIntervalMs: 60_000 });
    expect(again.depth).toBe(8);
    expect(again.next(100, new Set()).map((e) => e.msgId).sort()).toEqual(['m2', 'm3', 'm4', 'm5', 'm6', 'm7', 'm8', 'm9']);
    again.close();
  });

  it('commits removals without fsync, but appends are synchronous=FULL again afterwards', async () => {
    const { box } = open();
    for (let i = 0; i < 3; i++) await box.append(entry(`m${i}`, LANE.telemetry, i));
    box.remove(box.next(2, new Set()).map((e) => e.seq));
    const db = (box as unknown as { db: { pragma(p: string, o: { simple: true }): unknown } }).db;
    expect(db.pragma('synchronous', { simple: true })).toBe(2); // FULL
    expect(box.depth).toBe(1);
  });

  it('thins telemetry to one reading per device per interval above the threshold, never events', async () => {
    const { box } = open({ thinThreshold: 100, maxMessages: 10_000, thinIntervalMs: 60_000 });
    // two devices, one reading per second for 5 minutes each = 600 readings; plus 50 events
    const appends: Promise<unknown>[] = [];
    for (let s = 0; s < 300; s++) for (const d of ['wx', 'drone-1']) appends.push(box.append(entry(`${d}-${s}`, LANE.telemetry, s * 1000, d)));
    for (let i = 0; i < 50; i++) appends.push(box.append(entry(`ev-${i}`, LANE.event)));
    await Promise.all(appends);
    box.thin();
    const s = box.stats();
    expect(s.byLane.event).toBe(50);
    expect(s.byLane.telemetry).toBe(2 * 5); // 5 one-minute intervals × 2 devices
    expect(s.dropped.thinned).toBe(600 - 10);
    const kept = box.next(100, new Set()).filter((e) => e.lane === LANE.telemetry).map((e) => e.msgId).sort();
    expect(kept).toEqual(['drone-1-0', 'drone-1-120', 'drone-1-180', 'drone-1-240', 'drone-1-60', 'wx-0', 'wx-120', 'wx-180', 'wx-240', 'wx-60']);
  });

  it('at the bound drops the oldest telemetry first and counts it; never an event', async () => {
    const { box } = open({ maxMessages: 100, thinThreshold: 1_000_000 });
    for (let i = 0; i < 90; i++) await box.append(entry(`t${i}`, LANE.telemetry, i));
    for (let i = 0; i < 10; i++) await box.append(entry(`e${i}`, LANE.event));
    expect(await box.append(entry('t-new', LANE.telemetry, 999))).toBe('stored');
    expect(await box.append(entry('a-new', LANE.urgent))).toBe('stored');
    const s = box.stats();
    expect(s.depth).toBe(100);
    expect(s.dropped.overflow_telemetry).toBe(2);
    const ids = box.next(200, new Set()).map((e) => e.msgId);
    expect(ids).not.toContain('t0');
    expect(ids).not.toContain('t1');
    expect(ids).toContain('t2');
    expect(ids).toContain('t-new');
    expect(ids.filter((i) => i.startsWith('e'))).toHaveLength(10);
  });

  it('when only events are left: refuses new telemetry, takes events up to 10 % over, then refuses them', async () => {
    const { box } = open({ maxMessages: 100, thinThreshold: 1_000_000 });
    for (let i = 0; i < 100; i++) await box.append(entry(`e${i}`, LANE.event));
    expect(await box.append(entry('t', LANE.telemetry))).toBe('refused_telemetry');
    for (let i = 0; i < 10; i++) expect(await box.append(entry(`x${i}`, LANE.urgent))).toBe('stored');
    expect(await box.append(entry('x-over', LANE.urgent))).toBe('refused_full');
    expect(box.stats().dropped).toMatchObject({ refused_telemetry: 1, refused_full: 1, overflow_telemetry: 0 });
    expect(box.depth).toBe(110);
  });

  it('at OUTBOX_MAX_BYTES drops the oldest telemetry first, like the count bound; events take 10 % more, then are refused [issue 12]', async () => {
    const big = (id: string, lane: Lane, deviceTs = 0): NewEntry => ({ ...entry(id, lane, deviceTs), payload: Buffer.from(JSON.stringify({ id, pad: 'x'.repeat(90 - id.length) })) });
    const size = big('t00', LANE.telemetry).payload.length;
    const { box } = open({ maxMessages: 1_000_000, thinThreshold: 1_000_000, maxBytes: size * 20 });
    for (let i = 0; i < 15; i++) await box.append(big(`t${String(i).padStart(2, '0')}`, LANE.telemetry, i));
    for (let i = 0; i < 5; i++) await box.append(big(`e${i}`, LANE.event));
    expect(box.stats().bytes).toBe(size * 20);
    expect(await box.append(big('t-new', LANE.telemetry, 99))).toBe('stored');
    expect(await box.append(big('a-new', LANE.urgent))).toBe('stored');
    expect(box.stats()).toMatchObject({ depth: 20, bytes: size * 20, dropped: { overflow_telemetry: 2 } });
    const ids = box.next(100, new Set()).map((e) => e.msgId);
    expect(ids).not.toContain('t00');
    expect(ids).not.toContain('t01');
    expect(ids).toContain('t02');
    // Only events left: telemetry is refused, events go 10 % over the byte bound, then are refused.
    const { box: events } = open({ maxMessages: 1_000_000, thinThreshold: 1_000_000, maxBytes: size * 20 });
    for (let i = 0; i < 20; i++) await events.append(big(`e${i}`, LANE.event));
    expect(await events.append(big('t', LANE.telemetry))).toBe('refused_telemetry');
    expect(await events.append(big('x0', LANE.urgent))).toBe('stored');
    expect(await events.append(big('x1', LANE.urgent))).toBe('stored');
    expect(await events.append(big('x2', LANE.urgent))).toBe('refused_full');
    expect(events.stats().bytes).toBe(size * 22);
    events.remove(events.next(5, new Set()).map((e) => e.seq));
    expect(events.stats().bytes).toBe(size * 17);
  });

  it('moves a poison entry aside and keeps the drop counters across a restart', async () => {
    const { box, dir } = open();
    await box.append(entry('bad', LANE.telemetry));
    await box.append(entry('good', LANE.telemetry));
    const bad = box.next(10, new Set()).find((e) => e.msgId === 'bad')!;
    box.quarantine(bad.seq, 'the link dropped 3 times while it was the only message in flight');
    expect(box.next(10, new Set()).map((e) => e.msgId)).toEqual(['good']);
    expect(box.listQuarantine()[0]).toMatchObject({ msgId: 'bad', reason: expect.stringContaining('3 times') });
    box.close();
    const again = new Outbox(path.join(dir, 'outbox.db'), { maxMessages: 1000, thinThreshold: 500, thinIntervalMs: 60_000 });
    expect(again.stats().dropped.quarantined).toBe(1);
    again.close();
  });
});
