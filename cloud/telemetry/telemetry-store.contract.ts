import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EXAMPLES, HubStatus, schemaForTopic, type DeviceMessage } from '../../contract/index.ts';
import { pointForHubStatus, pointsForMessage } from './points.ts';
import type { Aggregate, FieldValue, HistoryQuery, Measurement, TelemetryPoint, TelemetryStore } from './telemetry-store.ts';

/**
 * The one test suite every TelemetryStore adapter must pass (InfluxDB, SQLite, any future fake), so
 * that what the ingest path and the history API rely on holds whatever is configured.
 * Each test gets a fresh, empty store from `setup`.
 */

/** Reads back the values of a string field, oldest first (the port itself reads numbers only). */
export type ReadStrings = (q: { measurement: Measurement; hub: string; field: string; from: number; to: number }) => Promise<string[]>;

export interface TelemetryStoreFixture {
  store: TelemetryStore;
  cleanup: () => Promise<void>;
  /** Adapter-specific raw read of string fields; the string round-trip test needs it. */
  readStrings?: ReadStrings;
}

const T0 = 1_764_000_000_000; // 2025-11-24T16:00:00Z, a whole hour
const SEC = 1_000;
const MIN = 60_000;
const HOUR = 3_600_000;
const REGION = 'ishikawa-nomi';

function point(
  measurement: Measurement,
  hub: string,
  device: string,
  ts: number,
  msgId: string,
  fields: Record<string, FieldValue>,
  extraTags: Record<string, string> = {},
): TelemetryPoint {
  return { measurement, tags: { region: REGION, hub, device, ...extraTags }, fields: { msg_id: msgId, ...fields }, ts, msgId };
}

export function describeTelemetryStoreContract(name: string, setup: () => Promise<TelemetryStoreFixture>): void {
  describe(`TelemetryStore contract: ${name}`, () => {
    let fx: TelemetryStoreFixture | undefined;
    let store: TelemetryStore;

    beforeEach(async () => {
      fx = await setup();
      store = fx.store;
    });
    afterEach(async () => {
      await fx?.cleanup();
      fx = undefined;
    });

    const drone = (q: Partial<HistoryQuery> & { aggregate: Aggregate }): HistoryQuery => ({
      measurement: 'drone', hub: 'h1', device: 'drone-1', field: 'battery_pct', from: T0, to: T0 + 4 * MIN, bucketMs: MIN, ...q,
    });

    it('returns bucketed mean, min, max, last and count of what was written', async () => {
      // Written out of time order: "last" must mean the latest timestamp, not the last one written.
      const samples: [number, number][] = [[20 * SEC, 60], [0, 10], [10 * SEC, 20], [90 * SEC, 7], [60 * SEC, 5], [185 * SEC, 42]];
      await store.write(
        samples.map(([dt, pct], i) =>
          point('drone', 'h1', 'drone-1', T0 + dt, `d1-${i}`, { battery_pct: pct, alt_m: 100 + i, flight_state: 'mission' }),
        ),
      );
      // Minute 2 has no data: its bucket is left out, not reported as 0.
      expect(await store.history(drone({ aggregate: 'mean' }))).toEqual([
        { t: T0, value: expect.closeTo(30, 9) },
        { t: T0 + MIN, value: expect.closeTo(6, 9) },
        { t: T0 + 3 * MIN, value: expect.closeTo(42, 9) },
      ]);
      expect(await store.history(drone({ aggregate: 'min' }))).toEqual([{ t: T0, value: 10 }, { t: T0 + MIN, value: 5 }, { t: T0 + 3 * MIN, value: 42 }]);
      expect(await store.history(drone({ aggregate: 'max' }))).toEqual([{ t: T0, value: 60 }, { t: T0 + MIN, value: 7 }, { t: T0 + 3 * MIN, value: 42 }]);
      expect(await store.history(drone({ aggregate: 'last' }))).toEqual([{ t: T0, value: 60 }, { t: T0 + MIN, value: 7 }, { t: T0 + 3 * MIN, value: 42 }]);
      expect(await store.history(drone({ aggregate: 'count' }))).toEqual([{ t: T0, value: 3 }, { t: T0 + MIN, value: 2 }, { t: T0 + 3 * MIN, value: 1 }]);
      // A second field of the same points aggregates independently; one bucket over everything.
      expect(await store.history(drone({ field: 'alt_m', aggregate: 'max', bucketMs: HOUR }))).toEqual([{ t: T0, value: 105 }]);
      // A field nobody wrote has no buckets.
      expect(await store.history(drone({ field: 'payload_kg', aggregate: 'mean' }))).toEqual([]);
    });

    it('includes `from`, excludes `to`, and aligns buckets to multiples of bucketMs since the epoch', async () => {
      const samples: [number, number][] = [[-1, 1000], [0, 1], [MIN - 1, 2], [MIN, 3], [2 * MIN - 1, 4], [2 * MIN, 5000]];
      await store.write(samples.map(([dt, v], i) => point('drone', 'h1', 'drone-1', T0 + dt, `b-${i}`, { battery_pct: v })));

      const window = { from: T0, to: T0 + 2 * MIN };
      expect(await store.history(drone({ ...window, aggregate: 'count' }))).toEqual([{ t: T0, value: 2 }, { t: T0 + MIN, value: 2 }]);
      expect(await store.history(drone({ ...window, aggregate: 'max' }))).toEqual([{ t: T0, value: 2 }, { t: T0 + MIN, value: 4 }]);
      expect(await store.countPoints('drone', 'h1', window.from, window.to)).toBe(4);
      expect(await store.countPoints('drone', 'h1', T0 - 1, T0)).toBe(1);

      // A window starting mid-bucket: the bucket keeps its aligned start but holds only points ≥ from.
      expect(await store.history(drone({ from: T0 + 30 * SEC, to: T0 + MIN + 30 * SEC, aggregate: 'count' }))).toEqual([
        { t: T0, value: 1 },
        { t: T0 + MIN, value: 1 },
      ]);

      // 11 s does not divide T0: buckets start at multiples of 11 000 ms since the epoch, here T0 − 4 s.
      const b = 11 * SEC;
      expect(Math.floor(T0 / b) * b).toBe(T0 - 4 * SEC);
      expect(await store.history(drone({ ...window, bucketMs: b, aggregate: 'count' }))).toEqual([
        { t: T0 - 4 * SEC, value: 1 }, // T0
        { t: T0 + 51 * SEC, value: 2 }, // T0 + 59.999 s and T0 + 60 s
        { t: T0 + 117 * SEC, value: 1 }, // T0 + 119.999 s
      ]);
    });

    it('filters by extra tags such as the locker compartment, with values escaped and never interpreted', async () => {
      const compartments: [string, string, number[]][] = [
        ['A01', 'ambient', [4, 5, 6]],
        ['A02', 'frozen', [-18, -17, -16]],
        ['B 1,x=y', 'chilled', [20, 21, 22]], // space, comma, equals sign in a tag value
      ];
      const points: TelemetryPoint[] = [];
      for (let i = 0; i < 3; i++) {
        for (const [id, tempClass, temps] of compartments) {
          points.push(point('locker', 'h1', 'locker-a', T0 + i * 10 * SEC, `lk-${i}`, { temp_c: temps[i]!, occupied: i % 2 }, { compartment: id, size: 'M', temp_class: tempClass }));
        }
      }
      await store.write(points);
      const locker = (where: Record<string, string> | undefined, aggregate: Aggregate) =>
        store.history({ measurement: 'locker', hub: 'h1', device: 'locker-a', field: 'temp_c', from: T0, to: T0 + HOUR, bucketMs: HOUR, aggregate, where });

      expect(await locker(undefined, 'count')).toEqual([{ t: T0, value: 9 }]);
      expect(await locker({ compartment: 'A02' }, 'mean')).toEqual([{ t: T0, value: expect.closeTo(-17, 9) }]);
      expect(await locker({ compartment: 'A01' }, 'last')).toEqual([{ t: T0, value: 6 }]);
      expect(await locker({ compartment: 'B 1,x=y' }, 'max')).toEqual([{ t: T0, value: 22 }]);
      expect(await locker({ compartment: 'A02', temp_class: 'frozen' }, 'min')).toEqual([{ t: T0, value: -18 }]);
      expect(await locker({ compartment: 'A02', temp_class: 'chilled' }, 'min')).toEqual([]);
      expect(await locker({ compartment: 'A99' }, 'count')).toEqual([]);
      // Query injection attempts match nothing instead of everything.
      expect(await locker({ compartment: "A01' OR 'a'='a" }, 'count')).toEqual([]);
      expect(await locker({ compartment: 'A01" OR "a"="a' }, 'count')).toEqual([]);
      expect(await locker({ compartment: 'A01\\' }, 'count')).toEqual([]);
    });

    it('never mixes in other hubs, devices or measurements', async () => {
      await store.write([
        point('drone', 'h1', 'drone-1', T0, 'h1-d1', { battery_pct: 50 }),
        point('drone', 'h1', 'drone-2', T0, 'h1-d2', { battery_pct: 90 }),
        point('drone', 'h2', 'drone-1', T0, 'h2-d1', { battery_pct: 10 }),
        point('event', 'h1', 'drone-1', T0, 'h1-ev', { battery_pct: 999 }, { kind: 'drone', event: 'battery_low', severity: 'warning' }),
      ]);
      expect(await store.history(drone({ aggregate: 'mean' }))).toEqual([{ t: T0, value: 50 }]);
      expect(await store.history(drone({ aggregate: 'count' }))).toEqual([{ t: T0, value: 1 }]);
      expect(await store.history(drone({ device: 'drone-2', aggregate: 'last' }))).toEqual([{ t: T0, value: 90 }]);
      expect(await store.history(drone({ hub: 'h2', aggregate: 'last' }))).toEqual([{ t: T0, value: 10 }]);
      expect(await store.history(drone({ hub: 'h3', aggregate: 'count' }))).toEqual([]);
      expect(await store.countPoints('drone', 'h1', T0, T0 + 1)).toBe(2);
      expect(await store.countPoints('drone', 'h2', T0, T0 + 1)).toBe(1);
      expect(await store.countPoints('event', 'h1', T0, T0 + 1)).toBe(1);
      expect(await store.countPoints('event', 'h2', T0, T0 + 1)).toBe(0);
      expect(await store.messageIds('h2', T0, T0 + 1)).toEqual(['h2-d1']);
    });

    it('stores a re-written point once: counts and aggregates do not change', async () => {
      const batch = [
        point('drone', 'h1', 'drone-1', T0, 'r-1', { battery_pct: 80 }),
        point('drone', 'h1', 'drone-1', T0 + SEC, 'r-2', { battery_pct: 70 }),
        point('drone', 'h1', 'drone-1', T0 + 2 * SEC, 'r-3', { battery_pct: 60 }),
        ...['A01', 'A02', 'A03'].map((c) => point('locker', 'h1', 'locker-a', T0, 'r-4', { temp_c: 5, occupied: 1 }, { compartment: c, size: 'S', temp_class: 'chilled' })),
      ];
      await store.write(batch);
      await store.write(batch); // the whole batch again, as after a lost acknowledgement
      await store.write([batch[1]!, batch[4]!, point('drone', 'h1', 'drone-1', T0 + 3 * SEC, 'r-5', { battery_pct: 50 })]);
      await store.write([]);

      expect(await store.countPoints('drone', 'h1', T0, T0 + MIN)).toBe(4);
      expect(await store.countPoints('locker', 'h1', T0, T0 + MIN)).toBe(3);
      expect(await store.history(drone({ aggregate: 'count' }))).toEqual([{ t: T0, value: 4 }]);
      expect(await store.history(drone({ aggregate: 'mean' }))).toEqual([{ t: T0, value: expect.closeTo(65, 9) }]);
      expect((await store.messageIds('h1', T0, T0 + MIN)).sort()).toEqual(['r-1', 'r-2', 'r-3', 'r-4', 'r-5']);
    });

    it('lists exactly the distinct message ids of a hub in [from, to)', async () => {
      const from = T0;
      const to = T0 + 10 * MIN;
      await store.write([
        point('drone', 'h1', 'drone-1', from, 'drone-1.boot:7_000042', { battery_pct: 71 }),
        point('drone', 'h1', 'drone-1', from + SEC, 'drone-1.boot:7_000043', { battery_pct: 70 }),
        ...['A01', 'A02', 'A03'].map((c) => point('locker', 'h1', 'locker-a', from + MIN, 'locker-a-000120', { temp_c: 4 }, { compartment: c, size: 'L', temp_class: 'frozen' })),
        point('event', 'h1', 'locker-a', from + 2 * MIN, 'locker-a-000121', { detail: 'open for 180 s' }, { kind: 'locker', event: 'door_open_too_long', severity: 'warning', compartment: 'A03' }),
        point('sensor', 'h1', 'wx', from + 3 * MIN, 'wx-000510', { wind_speed_mps: 3.4 }),
        point('hub_status', 'h1', 'hub', from + 4 * MIN, `status-${from + 4 * MIN}`, { online: 1 }),
        point('drone', 'h1', 'drone-1', from - 1, 'too-early', { battery_pct: 1 }),
        point('drone', 'h1', 'drone-1', to, 'too-late', { battery_pct: 1 }),
        point('drone', 'h2', 'drone-1', from + SEC, 'other-hub', { battery_pct: 1 }),
      ]);
      const ids = await store.messageIds('h1', from, to);
      expect([...ids].sort()).toEqual(
        ['drone-1.boot:7_000042', 'drone-1.boot:7_000043', 'locker-a-000120', 'locker-a-000121', 'wx-000510', `status-${from + 4 * MIN}`].sort(),
      );
      expect(ids).toHaveLength(6); // distinct: the locker message's three points count once
      expect(await store.messageIds('h1', to + 1, to + 2)).toEqual([]);
      expect(await store.messageIds('nobody', from, to)).toEqual([]);
    });

    it('keeps free-text string fields intact: spaces, commas, quotes, equals, backslashes, newlines, Japanese', async () => {
      const details = [
        'plain',
        'spaces, commas, a=b and "double quotes"',
        "single 'quotes'",
        'back\\slash, a literal \\n and a trailing \\',
        'line 1\nline 2\r\nline 3',
        '能登半島沖地震 震度6強: 扉が開いたまま',
        'tab\tand emoji 🚁',
        '',
      ];
      await store.write(
        details.map((detail, i) =>
          point('event', 'h1', 'drone-1', T0 + i * SEC, `ev-${i}`, { detail, mission_id: `m "${i}"` }, { kind: 'drone', event: 'fault', severity: 'info' }),
        ),
      );
      expect(await store.countPoints('event', 'h1', T0, T0 + MIN)).toBe(details.length);
      expect(await store.messageIds('h1', T0, T0 + MIN)).toHaveLength(details.length);
      if (!fx?.readStrings) return; // adapter without a raw read: the write succeeding is all we can check
      const read = (field: string) => fx!.readStrings!({ measurement: 'event', hub: 'h1', field, from: T0, to: T0 + MIN });
      expect(await read('detail')).toEqual(details);
      expect(await read('mission_id')).toEqual(details.map((_, i) => `m "${i}"`));
    });

    it('stores a 10,000-point batch completely', async () => {
      const points = Array.from({ length: 10_000 }, (_, i) =>
        point('drone', 'h1', `drone-${i % 10}`, T0 + i * 10, `bulk-${i}`, { battery_pct: i % 100, lat: 36.39 + i / 1e6, lon: 136.46, flight_state: 'mission' }),
      );
      await store.write(points);
      expect(await store.countPoints('drone', 'h1', T0, T0 + HOUR)).toBe(10_000);
      expect(await store.messageIds('h1', T0, T0 + HOUR)).toHaveLength(10_000);
      expect(await store.history(drone({ device: 'drone-3', from: T0, to: T0 + HOUR, bucketMs: HOUR, aggregate: 'count' }))).toEqual([{ t: T0, value: 1_000 }]);
      // drone-3 gets i = 3, 13, …, 9993: battery_pct = i % 100 → 3, 13, …, 93 repeated, mean 48
      expect(await store.history(drone({ device: 'drone-3', from: T0, to: T0 + HOUR, bucketMs: HOUR, aggregate: 'mean' }))).toEqual([
        { t: T0, value: expect.closeTo(48, 9) },
      ]);
      expect(await store.history(drone({ device: 'drone-9', from: T0, to: T0 + HOUR, bucketMs: HOUR, aggregate: 'last' }))).toEqual([{ t: T0, value: 99 }]);
    });

    it('accepts the points of every device-message example of the contract', async () => {
      const points: TelemetryPoint[] = [];
      const idsByHub = new Map<string, Set<string>>();
      for (const example of EXAMPLES) {
        const region = 'region' in example.topic ? example.topic.region : REGION;
        if (example.topic.route === 'device') {
          const message = schemaForTopic(example.topic).parse(example.payload) as DeviceMessage;
          points.push(...pointsForMessage(region, message));
        } else if (example.topic.route === 'status') {
          const status = HubStatus.parse(example.payload);
          points.push(pointForHubStatus(region, status, `status-${status.ts}`));
        }
      }
      for (const p of points) {
        if (!idsByHub.has(p.tags.hub)) idsByHub.set(p.tags.hub, new Set());
        idsByHub.get(p.tags.hub)!.add(p.msgId);
      }
      expect(points).toHaveLength(9); // 1 drone, 3 locker compartments, 1 sensor, 3 events, 1 hub status
      await store.write(points);

      const ts = points[0]!.ts;
      const count = async (m: Measurement, hub: string) => store.countPoints(m, hub, ts, ts + 1);
      for (const [hub, ids] of idsByHub) {
        expect((await store.messageIds(hub, ts, ts + 1)).sort()).toEqual([...ids].sort());
        for (const m of ['drone', 'locker', 'sensor', 'event', 'hub_status'] as const) {
          expect(await count(m, hub), `${m} points of ${hub}`).toBe(points.filter((p) => p.measurement === m && p.tags.hub === hub).length);
        }
      }
      expect(await count('locker', 'nomi-terai')).toBe(3);

      const one = (measurement: Measurement, hub: string, device: string, field: string, where?: Record<string, string>) =>
        store.history({ measurement, hub, device, field, where, from: ts, to: ts + 1, bucketMs: MIN, aggregate: 'last' });
      const bucket = Math.floor(ts / MIN) * MIN;
      expect(await one('drone', 'rs-komatsu-kibagata', 'drone-1', 'battery_pct')).toEqual([{ t: bucket, value: 71.5 }]);
      expect(await one('drone', 'rs-komatsu-kibagata', 'drone-1', 'remote_id_active')).toEqual([{ t: bucket, value: 1 }]);
      expect(await one('locker', 'nomi-terai', 'locker-a', 'temp_c', { compartment: 'A03' })).toEqual([{ t: bucket, value: -17.5 }]);
      expect(await one('locker', 'nomi-terai', 'locker-a', 'occupied', { compartment: 'A02' })).toEqual([{ t: bucket, value: 1 }]);
      expect(await one('sensor', 'nomi-terai', 'wx', 'wind_speed_mps')).toEqual([{ t: bucket, value: 3.4 }]);
      expect(await one('event', 'nomi-terai', 'wx', 'value')).toEqual([{ t: bucket, value: 5.6 }]);
      expect(await one('hub_status', 'nomi-terai', 'hub', 'online')).toEqual([{ t: bucket, value: 1 }]);
      if (fx?.readStrings) {
        expect(await fx.readStrings({ measurement: 'event', hub: 'rs-komatsu-kibagata', field: 'detail', from: ts, to: ts + 1 })).toEqual([
          'battery 24 % with 3.1 km to go',
        ]);
      }
    });
  });
}
