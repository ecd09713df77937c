import type { TopLevelSpec } from 'vega-lite';
import type { ScenarioReport, ScenarioResult } from '../scenario-result.ts';
import { alarmKindLabel, modeLabel, priorityLabel, reasonLabel, t, type Lang } from './labels.ts';
import { formatClockJst, formatDuration, formatOffset } from './format.ts';

/**
 * The report's charts as Vega-Lite specs, one builder per chart, each in one language. A builder
 * returns null when its data is empty: the report then says so in words instead of drawing an empty
 * frame. Data values are names and codes from the run; Vega escapes them when it writes the SVG.
 */
export type ChartId =
  | 'relief-time' | 'deliveries' | 'waiting' | 'utilisation' | 'landing-battery' | 'refusals'
  | 'alarms-by-kind' | 'alarms-active' | 'link-state' | 'backlog' | 'mode-acks' | 'sweep-time' | 'sweep-share';

type Builder = (report: ScenarioReport, lang: Lang) => TopLevelSpec | null;

const COLOURS = {
  good: '#2e7d32', late: '#f0a202', bad: '#c62828', grey: '#9e9e9e', open: '#64b5f6', main: '#4c78a8', second: '#f58518',
};

/** Axes of counts: whole numbers only. */
const COUNT_AXIS = { tickMinStep: 1, format: ',d' } as const;

/** Ten distinct colours while they suffice; past ten, twenty (else two series would share a colour). */
const scheme = (n: number) => (n <= 10 ? 'tableau10' : 'tableau20');

/** A hub as people know it: its name from the region (scenario.hubs), else its id. */
export function hubLabel(r: ScenarioResult, id: string, lang: Lang): string {
  return r.scenario.hubs?.find((x) => x.id === id)?.name[lang] ?? id;
}

/** Labels of the given hubs in the region file's order (ids alphabetically when the run names no hubs). */
function hubOrder(r: ScenarioResult, ids: Iterable<string>, lang: Lang): string[] {
  const present = new Set(ids);
  const order = r.scenario.hubs?.map((x) => x.id).filter((id) => present.has(id)) ?? [];
  const rest = [...present].filter((id) => !order.includes(id)).sort();
  return [...order, ...rest].map((id) => hubLabel(r, id, lang));
}

/**
 * A nominal axis in this order. The order goes into the scale's domain with `sort: null`: a custom sort
 * array is compiled by Vega-Lite into one nested expression, which overflowed Vega's expression compiler
 * from ~1,000 hubs (red-team L17) and lost the whole report.
 */
function inOrder(values: string[]): { sort: null; scale: { domain: string[] } } {
  return { sort: null, scale: { domain: [...new Set(values)] } };
}

const hours = (s: number) => Math.round((s / 3600) * 1000) / 1000;
const durationH = (r: ScenarioResult) => hours(r.scenario.durationS);

/** The x axis of every chart over time: hours from the start, with the start's clock time in the title. */
function timeAxis(r: ScenarioResult, lang: Lang) {
  const title = `${t('hoursFromStart', lang)} — 0 = ${formatClockJst(r.scenario.startIso, 0)} JST`;
  return {
    field: 'h', type: 'quantitative' as const, title,
    scale: { domain: [0, durationH(r)], nice: false },
    axis: { tickMinStep: 1, values: hourTicks(durationH(r)) },
  };
}

function hourTicks(totalH: number): number[] {
  const step = totalH <= 12 ? 1 : totalH <= 30 ? 3 : totalH <= 72 ? 6 : 24;
  const out: number[] = [];
  for (let h = 0; h <= totalH + 1e-9; h += step) out.push(h);
  return out;
}

/** Minutes up to three hours, hours beyond: the unit of a chart of durations. */
function durationUnit(maxS: number, lang: Lang): { div: number; title: string } {
  return maxS > 3 * 3600 ? { div: 3600, title: lang === 'ja' ? '時間' : 'hours' } : { div: 60, title: t('minutes', lang) };
}

const reliefTime: Builder = ({ result: r }, lang) => {
  const asked = r.relief.filter((s) => s.firstRequestAtS !== null);
  if (asked.length === 0) return null;
  const rows = asked.map((s) => {
    const received = s.timeToFirstReliefS !== null;
    const waitedS = received ? s.timeToFirstReliefS! : Math.max(0, r.scenario.durationS - s.firstRequestAtS!);
    return {
      site: s.name[lang], waitedS,
      status: received ? t('reliefReceived', lang) : t('reliefStillWaiting', lang),
      label: received ? formatDuration(waitedS, lang) : lang === 'ja' ? `未着（${formatDuration(waitedS, lang)}以上）` : `not received (≥ ${formatDuration(waitedS, lang)})`,
    };
  });
  const unit = durationUnit(Math.max(...rows.map((x) => x.waitedS)), lang);
  const values = rows.map((x) => ({ ...x, v: Math.round((x.waitedS / unit.div) * 100) / 100 })).sort((a, b) => b.v - a.v);
  const maxV = values[0]!.v;
  return {
    title: t('reliefChart', lang),
    data: { values },
    height: { step: 26 },
    encoding: {
      // Longest wait on top; room on the right for the label of the longest bar.
      y: { field: 'site', type: 'nominal', title: null, ...inOrder(values.map((x) => x.site)) },
      x: { field: 'v', type: 'quantitative', title: unit.title, scale: { domainMax: maxV * 1.35, nice: true } },
    },
    layer: [
      {
        mark: { type: 'bar', height: { band: 0.7 } },
        encoding: {
          color: {
            field: 'status', type: 'nominal', title: null,
            scale: { domain: [t('reliefReceived', lang), t('reliefStillWaiting', lang)].filter((s) => values.some((x) => x.status === s)), range: values.every((x) => x.status !== t('reliefReceived', lang)) ? [COLOURS.bad] : [COLOURS.main, COLOURS.bad] },
          },
        },
      },
      { mark: { type: 'text', align: 'left', dx: 4, fontSize: 10 }, encoding: { text: { field: 'label' } } },
    ],
  } as TopLevelSpec;
};

/** Medical first, then relief, then normal orders, whatever order a run lists them in. */
export function byPriority<T extends { priority: string }>(rows: readonly T[]): T[] {
  const rank = (p: string) => ['medical', 'relief', 'normal'].indexOf(p) >>> 0;
  return [...rows].sort((a, b) => rank(a.priority) - rank(b.priority));
}

const OUTCOMES = ['onTime', 'late', 'failed', 'cancelled', 'open'] as const;
const OUTCOME_COLOURS = [COLOURS.good, COLOURS.late, COLOURS.bad, COLOURS.grey, COLOURS.open];

const deliveries: Builder = ({ result: r }, lang) => {
  if (r.deliveries.every((d) => d.requested === 0)) return null;
  const values = byPriority(r.deliveries).flatMap((d) => {
    const n = { onTime: d.onTime, late: d.delivered - d.onTime, failed: d.failed, cancelled: d.cancelled, open: d.open };
    return OUTCOMES.map((o, i) => ({ priority: priorityLabel(d.priority, lang), outcome: t(o, lang), order: i, n: n[o] }));
  });
  return {
    title: t('deliveriesChart', lang),
    data: { values },
    height: { step: 34 },
    mark: { type: 'bar', height: { band: 0.7 } },
    encoding: {
      y: { field: 'priority', type: 'nominal', title: null, sort: byPriority(r.deliveries).map((d) => priorityLabel(d.priority, lang)) },
      x: { field: 'n', type: 'quantitative', stack: 'zero', title: t('orders', lang), axis: COUNT_AXIS },
      color: { field: 'outcome', type: 'nominal', title: t('outcome', lang), scale: { domain: OUTCOMES.map((o) => t(o, lang)), range: OUTCOME_COLOURS } },
      order: { field: 'order' },
    },
  } as TopLevelSpec;
};

const waiting: Builder = ({ result: r }, lang) => {
  const reasons = [...new Set(r.waiting.flatMap((w) => Object.keys(w.byReason)))];
  if (reasons.length === 0 || r.waiting.every((w) => Object.values(w.byReason).every((n) => n === 0))) return null;
  // Every reason at every sample (0 where absent), or the stacked areas would jump across gaps.
  const values = r.waiting.flatMap((w) => reasons.map((code) => ({ h: hours(w.atS), reason: reasonLabel(code, lang), n: w.byReason[code] ?? 0 })));
  return {
    title: t('waitingChart', lang),
    data: { values },
    height: 220,
    mark: { type: 'area', interpolate: 'step-after', opacity: 0.9 },
    encoding: {
      x: timeAxis(r, lang),
      y: { field: 'n', type: 'quantitative', stack: 'zero', title: t('orders', lang), axis: COUNT_AXIS },
      color: { field: 'reason', type: 'nominal', title: t('reason', lang), scale: { scheme: scheme(reasons.length) } },
    },
  } as TopLevelSpec;
};

const utilisation: Builder = ({ result: r }, lang) => {
  if (r.drones.length === 0) return null;
  const values = r.drones.map((d) => ({
    drone: `${hubLabel(r, d.hub, lang)} / ${d.drone}`, pct: Math.round(d.utilisation * 1000) / 10,
    label: `${(d.utilisation * 100).toFixed(0)} %・${d.flights} ${lang === 'ja' ? '回' : d.flights === 1 ? 'flight' : 'flights'}`,
  }));
  return {
    title: t('utilChart', lang),
    data: { values },
    height: { step: values.length > 24 ? 14 : 20 },
    encoding: {
      // Room for a hub's full English name and the drone id (the id is what tells two rows of a hub apart).
      y: { field: 'drone', type: 'nominal', title: null, sort: null, axis: { labelLimit: 330 } },
      x: { field: 'pct', type: 'quantitative', title: t('utilisation', lang), scale: { domain: [0, 100] } },
    },
    layer: [
      { mark: { type: 'bar', color: COLOURS.main, height: { band: 0.75 } } },
      { mark: { type: 'text', align: 'left', dx: 4, fontSize: 10, color: '#333' }, encoding: { text: { field: 'label' } } },
    ],
  } as TopLevelSpec;
};

const landingBattery: Builder = ({ result: r }, lang) => {
  const values = r.drones.flatMap((d) => d.landingBatteryPct.map((pct) => ({ hub: hubLabel(r, d.hub, lang), pct })));
  if (values.length === 0) return null;
  return {
    title: t('batteryChart', lang),
    data: { values },
    height: { step: 24 },
    mark: { type: 'tick', thickness: 2, opacity: 0.6, color: COLOURS.main },
    encoding: {
      y: { field: 'hub', type: 'nominal', title: null, ...inOrder(hubOrder(r, r.drones.filter((d) => d.landingBatteryPct.length > 0).map((d) => d.hub), lang)) },
      x: { field: 'pct', type: 'quantitative', title: t('batteryPct', lang), scale: { domain: [0, 100] } },
    },
  } as TopLevelSpec;
};

const refusals: Builder = ({ result: r }, lang) => {
  const rows = r.refusals.filter((x) => x.count > 0);
  if (rows.length === 0) return null;
  const values = rows.map((x) => ({ reason: reasonLabel(x.reason, lang), n: x.count }));
  return {
    title: t('refusalsChart', lang),
    data: { values },
    height: { step: 24 },
    encoding: {
      y: { field: 'reason', type: 'nominal', title: null, sort: '-x' },
      x: { field: 'n', type: 'quantitative', title: t('count', lang), axis: COUNT_AXIS },
    },
    layer: [
      { mark: { type: 'bar', color: COLOURS.second, height: { band: 0.7 } } },
      { mark: { type: 'text', align: 'left', dx: 4, fontSize: 10 }, encoding: { text: { field: 'n' } } },
    ],
  } as TopLevelSpec;
};

const alarmsByKind: Builder = ({ result: r }, lang) => {
  const rows = r.alarms.byKind.filter((k) => k.raised > 0 || k.cleared > 0);
  if (rows.length === 0) return null;
  const values = rows.flatMap((k) => [
    { kind: alarmKindLabel(k.kind, lang), measure: t('raised', lang), n: k.raised },
    { kind: alarmKindLabel(k.kind, lang), measure: t('cleared', lang), n: k.cleared },
  ]);
  return {
    title: t('alarmsChart', lang),
    data: { values },
    height: { step: 13 }, // per bar: with yOffset the step is the inner band
    mark: { type: 'bar' },
    encoding: {
      y: { field: 'kind', type: 'nominal', title: null },
      yOffset: { field: 'measure', sort: [t('raised', lang), t('cleared', lang)] },
      x: { field: 'n', type: 'quantitative', title: t('count', lang), axis: COUNT_AXIS },
      color: { field: 'measure', type: 'nominal', title: null, scale: { domain: [t('raised', lang), t('cleared', lang)], range: [COLOURS.bad, COLOURS.good] } },
    },
  } as TopLevelSpec;
};

const alarmsActive: Builder = ({ result: r }, lang) => {
  if (r.alarms.active.length === 0 || r.alarms.active.every((a) => a.count === 0)) return null;
  const values = r.alarms.active.map((a) => ({ h: hours(a.atS), n: a.count }));
  return {
    title: t('alarmsActiveChart', lang),
    data: { values },
    height: 160,
    mark: { type: 'line', interpolate: 'step-after', color: COLOURS.bad, strokeWidth: 2 },
    encoding: { x: timeAxis(r, lang), y: { field: 'n', type: 'quantitative', title: t('active', lang), axis: COUNT_AXIS } },
  } as TopLevelSpec;
};

/** Each hub's samples merged into runs of one state: [from, to) in hours. */
function linkRuns(r: ScenarioResult): { hub: string; h0: number; h1: number; up: boolean }[] {
  const byHub = new Map<string, { atS: number; up: boolean }[]>();
  for (const s of r.links) (byHub.get(s.hub) ?? byHub.set(s.hub, []).get(s.hub)!).push(s);
  const runs: { hub: string; h0: number; h1: number; up: boolean }[] = [];
  for (const [hub, samples] of byHub) {
    samples.sort((a, b) => a.atS - b.atS);
    for (let i = 0; i < samples.length; i++) {
      const from = samples[i]!;
      let j = i;
      while (j + 1 < samples.length && samples[j + 1]!.up === from.up) j++;
      const end = j + 1 < samples.length ? samples[j + 1]!.atS : r.scenario.durationS;
      runs.push({ hub, h0: hours(from.atS), h1: hours(end), up: from.up });
      i = j;
    }
  }
  return runs;
}

const linkState: Builder = ({ result: r }, lang) => {
  if (r.links.length === 0) return null;
  const values = linkRuns(r).map((x) => ({ ...x, hub: hubLabel(r, x.hub, lang), state: x.up ? t('linkUp', lang) : t('linkDown', lang) }));
  return {
    title: t('linkStateChart', lang),
    data: { values },
    height: { step: 18 },
    mark: { type: 'rect', height: { band: 0.8 } },
    encoding: {
      y: { field: 'hub', type: 'nominal', title: null, ...inOrder(hubOrder(r, r.links.map((x) => x.hub), lang)) },
      x: { ...timeAxis(r, lang), field: 'h0' },
      x2: { field: 'h1' },
      color: { field: 'state', type: 'nominal', title: null, scale: { domain: [t('linkUp', lang), t('linkDown', lang)], range: ['#a5d6a7', COLOURS.bad] } },
    },
  } as TopLevelSpec;
};

const backlog: Builder = ({ result: r }, lang) => {
  const withBacklog = new Set(r.links.filter((s) => s.backlog > 0).map((s) => s.hub));
  if (withBacklog.size === 0) return null;
  const values = r.links.filter((s) => withBacklog.has(s.hub)).map((s) => ({ h: hours(s.atS), hub: hubLabel(r, s.hub, lang), n: s.backlog }));
  return {
    title: t('backlogChart', lang),
    data: { values },
    height: 200,
    mark: { type: 'line', interpolate: 'step-after', strokeWidth: 2 },
    encoding: {
      x: timeAxis(r, lang),
      y: { field: 'n', type: 'quantitative', title: t('backlog', lang), axis: COUNT_AXIS },
      color: { field: 'hub', type: 'nominal', title: t('hub', lang), scale: { scheme: scheme(withBacklog.size) } },
    },
  } as TopLevelSpec;
};

export function modeSwitchLabel(i: number, atS: number, mode: string, lang: Lang): string {
  return `#${i + 1} ${formatOffset(atS)} ${modeLabel(mode, lang)}`;
}

/**
 * Acknowledgement times span seconds (a hub on line) to days (a hub whose link was cut acknowledges when
 * it is back), so the axis is logarithmic, ticked at round durations, and each bar is labelled in words.
 */
const modeAcks: Builder = ({ result: r }, lang) => {
  const values = r.modes.flatMap((m, i) => {
    const label = modeSwitchLabel(i, m.atS, m.mode, lang);
    return [
      { sw: label, measure: t('ackP50', lang), s: m.ackS.p50 },
      { sw: label, measure: t('ackMax', lang), s: m.ackS.max },
    ].filter((x) => x.s !== null).map((x) => ({ ...x, v: Math.max(x.s!, ACK_FLOOR_S), v0: ACK_FLOOR_S, label: formatAck(x.s, lang) }));
  });
  if (values.length === 0) return null;
  const top = Math.max(...values.map((x) => x.v)) * 4; // room for the longest bar's label
  const ticks = ACK_TICKS_S.filter((x) => x <= top);
  const labelExpr = ticks.map((x) => `datum.value == ${x} ? ${JSON.stringify(formatDuration(x, lang))} : `).join('') + "''";
  return {
    title: t('modesChart', lang),
    data: { values },
    height: { step: 16 }, // per bar: with yOffset the step is the inner band
    encoding: {
      y: { field: 'sw', type: 'nominal', title: null, sort: null },
      yOffset: { field: 'measure', sort: [t('ackP50', lang), t('ackMax', lang)] },
      x: {
        field: 'v', type: 'quantitative', title: t('ackAxis', lang),
        scale: { type: 'log', domain: [ACK_FLOOR_S, top], nice: false },
        axis: { values: ticks, labelExpr },
      },
    },
    layer: [
      {
        mark: { type: 'bar' },
        encoding: {
          x2: { field: 'v0' }, // a log axis has no zero: bars start at the floor
          color: { field: 'measure', type: 'nominal', title: null, scale: { domain: [t('ackP50', lang), t('ackMax', lang)], range: [COLOURS.main, COLOURS.second] } },
        },
      },
      { mark: { type: 'text', align: 'left', dx: 3, fontSize: 10 }, encoding: { text: { field: 'label' } } },
    ],
  } as TopLevelSpec;
};

/** Bars of the acknowledgement chart start here (a log axis has no zero); labels still give the true value. */
const ACK_FLOOR_S = 0.5;
const ACK_TICKS_S = [1, 10, 60, 600, 3_600, 6 * 3_600, 24 * 3_600, 7 * 86_400];

/** An acknowledgement time: tenths of a second below a minute ("2.0 秒"), else as any duration ("38 時間 50 分"). */
export function formatAck(seconds: number | null, lang: Lang): string {
  if (seconds === null) return '—';
  return seconds < 60 ? `${seconds.toFixed(1)} ${lang === 'ja' ? '秒' : 's'}` : formatDuration(seconds, lang);
}

const sweepTime: Builder = ({ sweep }, lang) => {
  if (!sweep || sweep.rows.length === 0) return null;
  const values = sweep.rows.flatMap((row) => [
    { n: row.dronesPerHub, measure: t('ttfrMedian', lang), min: row.timeToFirstReliefS.median },
    { n: row.dronesPerHub, measure: t('ttfrMax', lang), min: row.timeToFirstReliefS.max },
  ]).filter((x) => x.min !== null);
  if (values.length === 0) return null;
  const unit = durationUnit(Math.max(...values.map((x) => x.min!)), lang);
  const scaled = values.map((x) => ({ ...x, v: Math.round((x.min! / unit.div) * 10) / 10, label: formatDuration(x.min, lang) }));
  const colour = { field: 'measure', type: 'nominal', title: null, scale: { domain: [t('ttfrMedian', lang), t('ttfrMax', lang)], range: [COLOURS.main, COLOURS.bad] } };
  return {
    title: lang === 'ja' ? `${t('sweepTimeChart', lang)}（${unit.title}）` : `${t('sweepTimeChart', lang)} (${unit.title})`,
    data: { values: scaled },
    height: 200,
    encoding: {
      x: { field: 'n', type: 'ordinal', title: t('dronesPerHub', lang), axis: { labelAngle: 0 } },
      y: { field: 'v', type: 'quantitative', title: unit.title, scale: { zero: true } },
      color: colour,
    },
    layer: [
      { mark: { type: 'line', point: { size: 60 }, strokeWidth: 2 } },
      // Each point's duration in words: a median of minutes is unreadable on an axis of hours.
      { mark: { type: 'text', dy: -10, fontSize: 10 }, encoding: { text: { field: 'label' } } },
    ],
  } as TopLevelSpec;
};

const sweepShare: Builder = ({ sweep }, lang) => {
  if (!sweep || sweep.rows.length === 0) return null;
  const values = sweep.rows.flatMap((row) => [
    { n: row.dronesPerHub, measure: t('reliefOnTime', lang), pct: Math.round(row.reliefOnTimeShare * 1000) / 10 },
    { n: row.dronesPerHub, measure: t('overallOnTime', lang), pct: Math.round(row.onTimeShare * 1000) / 10 },
  ]);
  return {
    title: t('sweepShareChart', lang),
    data: { values },
    height: 200,
    encoding: {
      x: { field: 'n', type: 'ordinal', title: t('dronesPerHub', lang), axis: { labelAngle: 0 } },
      y: { field: 'pct', type: 'quantitative', title: t('share', lang), scale: { domain: [0, 100] } },
      color: { field: 'measure', type: 'nominal', title: null, scale: { domain: [t('reliefOnTime', lang), t('overallOnTime', lang)], range: [COLOURS.good, COLOURS.main] } },
    },
    layer: [
      { mark: { type: 'line', point: { size: 60 }, strokeWidth: 2 } },
      // Relief labels above their points, all-order labels (usually the lower line) below, so close lines keep both readable.
      { transform: [{ filter: { field: 'measure', equal: t('reliefOnTime', lang) } }], mark: { type: 'text', dy: -10, fontSize: 10 }, encoding: { text: { field: 'pct', format: '.0f' } } },
      { transform: [{ filter: { field: 'measure', equal: t('overallOnTime', lang) } }], mark: { type: 'text', dy: 14, fontSize: 10 }, encoding: { text: { field: 'pct', format: '.0f' } } },
    ],
  } as TopLevelSpec;
};

export const CHARTS: Record<ChartId, Builder> = {
  'relief-time': reliefTime,
  deliveries,
  waiting,
  utilisation,
  'landing-battery': landingBattery,
  refusals,
  'alarms-by-kind': alarmsByKind,
  'alarms-active': alarmsActive,
  'link-state': linkState,
  backlog,
  'mode-acks': modeAcks,
  'sweep-time': sweepTime,
  'sweep-share': sweepShare,
};
