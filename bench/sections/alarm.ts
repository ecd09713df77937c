import { startInfluxd } from '../../test/support/influxd.ts';
import { zeroLossRates } from '../lib/earlier.ts';
import { startPublisher } from '../lib/publishers.ts';
import { DATABASE_LABEL, versusSqlite, type BenchDatabaseKind } from '../lib/bench-database.ts';
import type { Row, Section } from '../lib/report.ts';
import { fmt, percentile, summarize } from '../lib/stats.ts';
import { startOurCloud } from '../lib/systems.ts';
import { HUBS } from './ingest.ts';

/**
 * A console client's view: the benchmark process holds the consoles' live feed (GET /api/v1/events,
 * Server-Sent Events, admin token) and records when each `alarm` event arrives. A second publisher
 * process sends 'tamper' locker events (each on its own compartment, so each raises a new alarm);
 * latency = SSE arrival − the moment the event was written to the publisher's socket (both clocks are
 * this machine's, performance.timeOrigin + performance.now()).
 */
function openFeed(httpUrl: string, token: string, onAlarm: (alarm: { device: string; compartment: string | null; raisedAt: string }, at: number) => void) {
  const ctrl = new AbortController();
  const ready = (async () => {
    const res = await fetch(`${httpUrl}/api/v1/events`, { headers: { authorization: `Bearer ${token}` }, signal: ctrl.signal });
    if (!res.ok || !res.body) throw new Error(`live feed: ${res.status}`);
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    void (async () => {
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return;
          const at = performance.timeOrigin + performance.now();
          buf += decoder.decode(value, { stream: true });
          let end: number;
          while ((end = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, end);
            buf = buf.slice(end + 2);
            if (!block.startsWith('event: alarm\n')) continue;
            const data = JSON.parse(block.slice(block.indexOf('data: ') + 6)) as { type: string; alarm: { device: string; compartment: string | null; raisedAt: string } };
            if (data.type === 'raised') onAlarm(data.alarm, at);
          }
        }
      } catch {
        /* aborted */
      }
    })();
  })();
  return { ready, close: () => ctrl.abort() };
}

type Run = {
  p50: number; p99: number; max: number; missing: number; split: { toRaisedP99: number; raisedToConsoleP99: number }; backgroundRate: number; backgroundAckP99: number | null;
  /** The cloud process's event-loop delay over the run (prom-client's perf_hooks.monitorEventLoopDelay, 1 ms resolution: EVENT_LOOP_RESOLUTION_MS=1), ms. */
  loopLag: { p50: number; p99: number; max: number } | null;
};

/** The cloud's event-loop delay since the last scrape of /metrics (prom-client resets its histogram on each), ms. */
async function loopLag(httpUrl: string): Promise<{ p50: number; p99: number; max: number } | null> {
  try {
    const text = await (await fetch(`${httpUrl}/metrics`)).text();
    const get = (name: string) => 1000 * Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
    return { p50: get('nodejs_eventloop_lag_p50_seconds'), p99: get('nodejs_eventloop_lag_p99_seconds'), max: get('nodejs_eventloop_lag_max_seconds') };
  } catch {
    return null;
  }
}

/** One cloud on `database`: a warm-up, an idle run, `runsN` runs with `half` msg/s of background telemetry. */
async function measure(database: BenchDatabaseKind, o: { events: number; intervalMs: number; runsN: number; half: number; log: (l: string) => void }): Promise<{ idle: Run; loaded: Run[] }> {
  const { events, intervalMs, runsN, half } = o;
  const label = DATABASE_LABEL[database];
  const stops: (() => Promise<void>)[] = [];
  try {
    const influx = await startInfluxd();
    stops.unshift(() => influx.stop());
    // Event-loop delay at 1 ms resolution (the default 10 ms cannot resolve stalls of the size of the target).
    const cloud = await startOurCloud({ hubs: HUBS, database, influx: { url: influx.url, database: 'ours' }, env: { EVENT_LOOP_RESOLUTION_MS: '1' } });
    stops.unshift(() => cloud.stop());
    const background = startPublisher();
    stops.unshift(() => background.stop());
    await background.connect({ port: cloud.mqttPort, region: cloud.region.id, hubs: cloud.region.hubs, clientPrefix: 'bg' });
    const device = startPublisher();
    stops.unshift(() => device.stop());
    await device.connect({ port: cloud.mqttPort, region: cloud.region.id, hubs: [cloud.region.hubs[0]!], clientPrefix: 'alarm', window: 100 });

    const arrivals = new Map<string, number>();
    const raised = new Map<string, number>();
    const feed = openFeed(cloud.httpUrl, cloud.token, (a, at) => {
      arrivals.set(`${a.device}|${a.compartment}`, at);
      raised.set(`${a.device}|${a.compartment}`, Date.parse(a.raisedAt));
    });
    stops.unshift(async () => feed.close());
    await feed.ready;

    let runNo = 0;
    const once = async (withLoad: boolean): Promise<Run> => {
      const runId = `al${Date.now().toString(36)}${runNo++}`;
      const eventSeconds = Math.ceil((events * intervalMs) / 1000);
      const bg = withLoad ? background.run({ rate: half, seconds: eventSeconds + 4, runId: `${runId}bg`, drainSeconds: 10 }) : Promise.resolve(null);
      if (withLoad) await new Promise((r) => setTimeout(r, 3_000)); // the load runs before, during and after the events
      await loopLag(cloud.httpUrl); // resets the histogram
      const sent = await device.events({ count: events, intervalMs, runId });
      const lag = await loopLag(cloud.httpUrl);
      const bgReply = await bg;
      await new Promise((r) => setTimeout(r, 500));
      const lat: number[] = [];
      const toRaised: number[] = [];
      let missing = 0;
      for (const e of sent.sent) {
        const at = arrivals.get(`${e.device}|${e.compartment}`);
        if (at === undefined) missing++;
        else {
          lat.push(at - e.at);
          toRaised.push(raised.get(`${e.device}|${e.compartment}`)! - e.at);
        }
      }
      // Where the time goes: publish → raised (the cloud's clock, ms resolution) and raised → on the console.
      const split = { toRaisedP99: percentile(toRaised, 99), raisedToConsoleP99: percentile(lat.map((l, i) => l - toRaised[i]!), 99) };
      return { p50: percentile(lat, 50), p99: percentile(lat, 99), max: percentile(lat, 100), missing, split, backgroundRate: bgReply ? bgReply.plan.devicesPerHub * bgReply.plan.hubs : 0, backgroundAckP99: bgReply?.ackMs.p99 ?? null, loopLag: lag };
    };

    await once(false); // warm-up
    const idle = await once(false);
    o.log(`${label} idle: p50 ${fmt(idle.p50)} ms, p99 ${fmt(idle.p99)} ms`);
    const loaded: Run[] = [];
    for (let i = 0; i < runsN; i++) {
      const r = await once(true);
      o.log(`${label} with ${fmt(half)} msg/s background: p50 ${fmt(r.p50)} ms, p99 ${fmt(r.p99)} ms, max ${fmt(r.max)} ms, missing ${r.missing}; p99 publish → raised ${fmt(r.split.toRaisedP99)} ms, raised → console ${fmt(r.split.raisedToConsoleP99)} ms; cloud event-loop delay p50 ${fmt(r.loopLag?.p50 ?? Number.NaN)} / p99 ${fmt(r.loopLag?.p99 ?? Number.NaN)} ms`);
      loaded.push(r);
    }
    return { idle, loaded };
  } finally {
    for (const stop of stops) await stop().catch((err: Error) => o.log(`stop failed: ${err.message}`));
  }
}

export const alarm: Section = async ({ quick, log }) => {
  const events = quick ? 40 : 200;
  const intervalMs = 40;
  const runsN = 3;
  const rates = zeroLossRates(quick, { ours: 12_000, nodeRed: 2_000 });
  // The same background load on both databases: half of the SQLite cloud's zero-loss rate.
  const half = Math.round(rates.ours / 2 / HUBS) * HUBS;
  const sqlite = await measure('sqlite', { events, intervalMs, runsN, half, log });
  const postgres = await measure('postgres', { events, intervalMs, runsN, half, log });
  const rows: Row[] = [];
  const sum = { sqlite: { p50: summarize(sqlite.loaded.map((r) => r.p50)), p99: summarize(sqlite.loaded.map((r) => r.p99)) }, postgres: { p50: summarize(postgres.loaded.map((r) => r.p50)), p99: summarize(postgres.loaded.map((r) => r.p99)) } };
  for (const q of ['p50', 'p99'] as const) {
    // Issue 17, item 4: p99 ≤ 10 ms at half load, with the event-loop delay beside it.
    const target = q === 'p99' ? { target: '≤ 10 ms' } : {};
    rows.push({ metric: `alarm latency ${q}, half load (SQLite)`, ours: sum.sqlite[q], unit: 'ms', decimals: 1, ...target, ...(q === 'p99' ? { met: sum.sqlite[q].median <= 10 } : {}) });
    rows.push({
      metric: `alarm latency ${q}, half load (PostgreSQL)`, ours: sum.postgres[q], unit: 'ms', decimals: 1, alternative: { name: 'SQLite, same run', value: sum.sqlite[q] },
      comparison: versusSqlite(sum.postgres[q].median, sum.sqlite[q].median, false).comparison, ...target, ...(q === 'p99' ? { met: sum.postgres[q].median <= 10 } : {}),
    });
  }
  for (const [label, m] of [['SQLite', sqlite], ['PostgreSQL', postgres]] as const) {
    rows.push({
      metric: `  cloud event-loop delay p99 while the events were sent, half load (${label})`, ours: summarize(m.loaded.map((r) => r.loopLag?.p99 ?? Number.NaN)), unit: 'ms', decimals: 1,
      alternative: { name: 'alarm latency p99, same runs', value: summarize(m.loaded.map((r) => r.p99)) },
    });
  }
  rows.push({ metric: 'alarm latency p50 / p99, no background load (SQLite)', ours: `${fmt(sqlite.idle.p50, 1)} / ${fmt(sqlite.idle.p99, 1)} ms` });
  rows.push({ metric: 'alarm latency p50 / p99, no background load (PostgreSQL)', ours: `${fmt(postgres.idle.p50, 1)} / ${fmt(postgres.idle.p99, 1)} ms`, alternative: { name: 'SQLite', value: `${fmt(sqlite.idle.p50, 1)} / ${fmt(sqlite.idle.p99, 1)} ms` } });
  const missing = (m: { idle: Run; loaded: Run[] }) => m.loaded.reduce((n, r) => n + r.missing, 0) + m.idle.missing;
  const split = (m: { loaded: Run[] }) => `p99 publish → raised ${fmt(summarize(m.loaded.map((r) => r.split.toRaisedP99)).median, 0)} ms, raised → console ${fmt(summarize(m.loaded.map((r) => r.split.raisedToConsoleP99)).median, 0)} ms`;
  const lag = (m: { loaded: Run[] }) => `p50 ${fmt(summarize(m.loaded.map((r) => r.loopLag?.p50 ?? Number.NaN)).median, 1)} ms / p99 ${fmt(summarize(m.loaded.map((r) => r.loopLag?.p99 ?? Number.NaN)).median, 1)} ms / max ${fmt(summarize(m.loaded.map((r) => r.loopLag?.max ?? Number.NaN)).median, 1)} ms`;
  return {
    title: 'Alarm latency: device event → alarm on a console',
    method:
      `A console client (the benchmark process) holds the live feed GET /api/v1/events (Server-Sent Events) of the cloud process; a device publisher process sends ${events} 'tamper' locker events, ` +
      `one every ${intervalMs} ms, each on its own compartment so each raises a new alarm; meanwhile a background publisher sends telemetry at half the zero-loss rate (${fmt(half)} msg/s, half of the SQLite cloud's rate from ${rates.from}) ` +
      `through ${HUBS} hub connections into the cloud → influxd. Latency = arrival of the alarm's SSE event − the moment the event was written to the device's socket. ${runsN} loaded runs after a warm-up; plus one idle run for reference. ` +
      'Measured twice in the same invocation, one after the other: the cloud on SQLite (SQLITE_SYNC=full) and the cloud on PostgreSQL (DATABASE_URL; a durable PostgreSQL on loopback, fsync and synchronous_commit on), with the same background rate.',
    rows,
    notes: [
      `Alarms that never reached the console: ${missing(sqlite)} (SQLite), ${missing(postgres)} (PostgreSQL).`,
      `Where the time goes (median of the loaded runs' p99): SQLite ${split(sqlite)}; PostgreSQL ${split(postgres)}. ` +
        `The cloud process's event-loop delay while the events were sent (median of the loaded runs): SQLite ${lag(sqlite)}, PostgreSQL ${lag(postgres)}.`,
      'An event raises its alarm on receipt: the alarm service writes it in a transaction of its own (BEGIN, one INSERT … ON CONFLICT … RETURNING, COMMIT) before the console hears of it, while the ingest ' +
        'stores the event\'s dedupe id in its urgent group commit (BEGIN, INSERT, COMMIT). On SQLite each is a synchronous call; on PostgreSQL each statement is a round trip whose answer waits for the cloud\'s ' +
        'event loop, busy with the background telemetry — so under load each round trip can wait behind other I/O callbacks, and the alarm write waits behind the previous one (one at a time, in order). The event-loop delays above are the whole process\'s (1 ms resolution); they do not separate the two databases\' share.',
      'Events and acknowledgements travel in the ingest\'s urgent lane (cloud/ingest/ingest.ts): stored and applied in their own small group commit instead of queueing behind a batch of thousands of telemetry points; PUBACK order is kept.',
    ],
    raw: { half, sqlite, postgres },
  };
};
