import type { ScenarioReport, ScenarioResult } from '../scenario-result.ts';
import { byPriority, CHARTS, formatAck, hubLabel, modeSwitchLabel, type ChartId } from './report-charts.ts';
import { escapeHtml as h, formatAtCell, formatDuration, formatInt, formatPct, formatStartJst } from './format.ts';
import { alarmKindLabel, LANGS, modeLabel, priorityLabel, siteKindLabel, t, type Lang, type TextKey } from './labels.ts';
import { CHART_FONT, renderChart } from './render-chart.ts';
import { sweepRowOf, uniformDronesPerHub } from './sweep-row.ts';

/**
 * The scenario report (issue 16, item 3): ONE self-contained HTML file — styles inline, every chart an
 * inline SVG drawn here in Node, nothing fetched — in Japanese and English. Without JavaScript both
 * languages show one after the other (the switch is then two links to them); a few lines of inline
 * script turn the links into a switch that shows one language. Every name from the scenario or region
 * file is escaped here (Vega escapes what goes into the SVGs).
 */
export interface RenderOptions {
  /** The language shown first, and the one the switch starts on. Default: Japanese. */
  lang?: Lang;
}

export async function renderReport(report: ScenarioReport, opts: RenderOptions = {}): Promise<string> {
  const first = opts.lang ?? 'ja';
  const order: Lang[] = [first, ...LANGS.filter((l) => l !== first)];
  const articles: string[] = [];
  for (const lang of order) articles.push(await renderLanguage(report, lang));
  const r = report.result;
  return `<!doctype html>
<html lang="${first}" data-default-lang="${first}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${h(r.scenario.name.ja)} / ${h(r.scenario.name.en)} — ${t('reportTitle', 'ja')} / ${t('reportTitle', 'en')}</title>
<style>${CSS}</style>
</head>
<body>
<header class="top">
<p class="kicker">${t('reportTitle', 'ja')} / ${t('reportTitle', 'en')}</p>
<h1><span lang="ja">${h(r.scenario.name.ja)}</span><span class="sep"> / </span><span lang="en">${h(r.scenario.name.en)}</span></h1>
<nav class="lang-switch" aria-label="${t('langSwitch', 'ja')} / ${t('langSwitch', 'en')}">${order.map((l) => `<a href="#${l}" data-lang="${l}" lang="${l}">${l === 'ja' ? '日本語' : 'English'}</a>`).join('')}</nav>
</header>
<main>
${articles.join('\n')}
</main>
<script>${SWITCH_SCRIPT}</script>
</body>
</html>
`;
}

/** The JSON written beside the report: the figures themselves, pretty-printed. */
export function reportFigures(report: ScenarioReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}

async function renderLanguage(report: ScenarioReport, lang: Lang): Promise<string> {
  const r = report.result;
  const chart = async (id: ChartId, emptyKey: TextKey): Promise<string> => {
    const spec = CHARTS[id](report, lang);
    if (spec === null) return `<p class="none" data-empty="${id}">${t('none', lang)} — ${t(emptyKey, lang)}</p>`;
    return `<figure class="chart" data-chart="${id}">${await renderChart(spec)}</figure>`;
  };
  const sections: { id: string; title: TextKey; body: string }[] = [
    { id: 'summary', title: 'summary', body: summaryTable(report, lang) },
    { id: 'relief', title: 'relief', body: await reliefSection(r, lang, chart) },
    { id: 'deliveries', title: 'deliveries', body: await deliveriesSection(r, lang, chart) },
    { id: 'waiting', title: 'waiting', body: await chart('waiting', 'waitingNone') },
    { id: 'drones', title: 'drones', body: await dronesSection(r, lang, chart) },
    { id: 'refusals', title: 'refusals', body: await chart('refusals', 'refusalsNone') },
    { id: 'alarms', title: 'alarms', body: await alarmsSection(r, lang, chart) },
    { id: 'links', title: 'links', body: await linksSection(r, lang, chart) },
    { id: 'modes', title: 'modes', body: await modesSection(r, lang, chart) },
    { id: 'actions', title: 'actions', body: actionsSection(r, lang) },
    { id: 'sweep', title: 'sweep', body: await sweepSection(report, lang, chart) },
  ];
  const s = r.scenario;
  const drones = Object.values(s.fleet).reduce((a, b) => a + b, 0);
  const droneHubs = Object.values(s.fleet).filter((n) => n > 0).length;
  const run = t('runText', lang, { wall: formatDuration(r.run.wallMs / 1000, lang), messages: formatInt(r.run.deviceMessages, lang), rounds: formatInt(r.run.decisionRounds, lang) })
    + (r.run.timeScale !== null ? `, ${t('timeScale', lang, { scale: r.run.timeScale })}` : '');
  return `<article id="${lang}" lang="${lang}" class="report-lang">
<h2 class="scenario-name">${h(s.name[lang])}</h2>
<dl class="facts">
<div><dt>${t('region', lang)}</dt><dd>${h(s.region.name[lang])} <code>${h(s.region.id)}</code></dd></div>
<div><dt>${t('start', lang)}</dt><dd>${formatStartJst(s.startIso)}</dd></div>
<div><dt>${t('duration', lang)}</dt><dd>${formatDuration(s.durationS, lang)}</dd></div>
<div><dt>${t('fleet', lang)}</dt><dd>${t('fleetText', lang, { drones, hubs: droneHubs })}</dd></div>
<div><dt>${t('seed', lang)}</dt><dd>${s.seed}</dd></div>
<div><dt>${t('runFacts', lang)}</dt><dd>${t(r.kind, lang)} — ${run}</dd></div>
</dl>
<p class="note">${t('timeNote', lang)}${gap(lang)}${t('generated', lang)}</p>
<nav class="toc" aria-label="${t('contents', lang)}"><ol>${sections.map((x) => `<li><a href="#${lang}-${x.id}">${t(x.title, lang)}</a></li>`).join('')}</ol></nav>
${sections.map((x) => `<section id="${lang}-${x.id}" data-section="${x.id}">\n<h3>${t(x.title, lang)}</h3>\n${x.body}\n</section>`).join('\n')}
</article>`;
}

type Chart = (id: ChartId, emptyKey: TextKey) => Promise<string>;

/** Between two sentences: nothing after 。, a space in English. */
const gap = (lang: Lang) => (lang === 'ja' ? '' : ' ');

/** A table; cells stay on one line (the table scrolls sideways on a narrow screen) except the `wrap` columns (names, causes). */
function table(head: string[], rows: string[][], opts: { numeric?: number[]; wrap?: number[]; className?: string; rowClass?: (i: number) => string } = {}): string {
  const num = new Set(opts.numeric ?? []);
  const wrap = new Set(opts.wrap ?? []);
  const cell = (tag: 'td' | 'th', v: string, i: number) => {
    const cls = [num.has(i) ? 'num' : '', wrap.has(i) ? 'wrap' : ''].filter(Boolean).join(' ');
    return `<${tag}${cls ? ` class="${cls}"` : ''}>${v}</${tag}>`;
  };
  return `<div class="table-wrap"><table${opts.className ? ` class="${opts.className}"` : ''}>
<thead><tr>${head.map((x, i) => cell('th', x, i)).join('')}</tr></thead>
<tbody>${rows.map((row, ri) => `<tr${opts.rowClass?.(ri) ? ` class="${opts.rowClass(ri)}"` : ''}>${row.map((x, i) => cell('td', x, i)).join('')}</tr>`).join('\n')}</tbody>
</table></div>`;
}

function summaryTable(report: ScenarioReport, lang: Lang): string {
  const r = report.result;
  const row = sweepRowOf(r, uniformDronesPerHub(r) ?? 0);
  const asked = r.relief.filter((x) => x.firstRequestAtS !== null);
  const received = asked.filter((x) => x.firstReliefAtS !== null);
  const reliefRequested = r.deliveries.filter((d) => d.priority !== 'normal').reduce((a, d) => a + d.requested, 0);
  const landings = r.drones.flatMap((d) => d.landingBatteryPct);
  const utilMean = r.drones.length === 0 ? null : r.drones.reduce((a, d) => a + d.utilisation, 0) / r.drones.length;
  const ttfr = (v: number | null) => (asked.length === 0 ? t('noRequest', lang) : v === null ? (lang === 'ja' ? `—（未着 ${row.timeToFirstReliefS.sitesWithout} 地点）` : `— (${row.timeToFirstReliefS.sitesWithout} without relief)`) : formatDuration(v, lang));
  const rows: [TextKey, string][] = [
    ['sumSitesAsked', formatInt(asked.length, lang)],
    ['sumSitesReceived', asked.length === 0 ? '—' : `${formatInt(received.length, lang)} / ${formatInt(asked.length, lang)}`],
    ['sumTtfrMedian', ttfr(row.timeToFirstReliefS.median)],
    ['sumTtfrMax', ttfr(row.timeToFirstReliefS.max)],
    ['sumDelivered', `${formatInt(row.delivered, lang)} / ${formatInt(row.requested, lang)}`],
    ['sumOnTime', row.requested === 0 ? '—' : formatPct(row.onTimeShare)],
    ['sumReliefOnTime', reliefRequested === 0 ? '—' : formatPct(row.reliefOnTimeShare)],
    ['sumByGround', formatInt(r.deliveries.reduce((a, d) => a + d.byGround, 0), lang)],
    ['sumUtilisation', formatPct(utilMean)],
    ['sumMinBattery', landings.length === 0 ? '—' : `${Math.min(...landings).toFixed(0)} %`],
    ['sumRefusals', formatInt(r.refusals.reduce((a, x) => a + x.count, 0), lang)],
    ['sumAlarms', formatInt(r.alarms.byKind.reduce((a, x) => a + x.raised, 0), lang)],
    ['sumModes', formatInt(r.modes.length, lang)],
  ];
  return table([t('figure', lang), t('value', lang)], rows.map(([k, v]) => [t(k, lang), v]), { numeric: [1], wrap: [0], className: 'key-figures' });
}

async function reliefSection(r: ScenarioResult, lang: Lang, chart: Chart): Promise<string> {
  if (r.relief.length === 0) return `<p class="none" data-empty="relief-time">${t('none', lang)} — ${t('reliefNone', lang)}</p>`;
  const start = r.scenario.startIso;
  const rows = r.relief.map((s) => [
    h(s.name[lang]),
    siteKindLabel(s.kind, lang),
    formatAtCell(start, s.isolatedAtS),
    s.firstRequestAtS === null ? t('noRequest', lang) : formatAtCell(start, s.firstRequestAtS),
    s.firstRequestAtS === null ? '—' : s.firstReliefAtS === null ? `<strong class="bad">${t('notReceived', lang)}</strong>` : formatAtCell(start, s.firstReliefAtS),
    formatDuration(s.timeToFirstReliefS, lang),
    formatInt(s.requests, lang),
    formatInt(s.delivered, lang),
  ]);
  return `${await chart('relief-time', 'reliefNone')}
${table([t('site', lang), t('kind', lang), t('isolatedAt', lang), t('firstRequest', lang), t('firstRelief', lang), t('ttfr', lang), t('requests', lang), t('delivered', lang)], rows, { numeric: [5, 6, 7], wrap: [0] })}`;
}

async function deliveriesSection(r: ScenarioResult, lang: Lang, chart: Chart): Promise<string> {
  const rows = byPriority(r.deliveries).map((d) => [
    priorityLabel(d.priority, lang),
    formatInt(d.requested, lang), formatInt(d.delivered, lang), formatInt(d.onTime, lang),
    d.requested === 0 ? '—' : formatPct(d.onTime / d.requested), formatInt(d.byGround, lang),
    formatInt(d.failed, lang), formatInt(d.cancelled, lang), formatInt(d.open, lang),
    formatDuration(d.leadTimeS.p50, lang), formatDuration(d.leadTimeS.p90, lang), formatDuration(d.leadTimeS.max, lang),
  ]);
  const head = ['priority', 'requested', 'delivered', 'onTime', 'onTimeShare', 'byGround', 'failed', 'cancelled', 'open', 'leadP50', 'leadP90', 'leadMax'] as const;
  return `${await chart('deliveries', 'deliveriesNone')}
${r.deliveries.length === 0 ? '' : table(head.map((k) => t(k, lang)), rows, { numeric: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11] })}`;
}

async function dronesSection(r: ScenarioResult, lang: Lang, chart: Chart): Promise<string> {
  if (r.drones.length === 0) return `<p class="none" data-empty="utilisation">${t('none', lang)} — ${t('dronesNone', lang)}</p>`;
  const rows = r.drones.map((d) => [
    h(hubLabel(r, d.hub, lang)), h(d.drone), formatInt(d.flights, lang), formatDuration(d.flightS, lang), formatPct(d.utilisation, 1),
    d.minLandingBatteryPct === null ? '—' : `${d.minLandingBatteryPct.toFixed(0)} %`,
  ]);
  return `${await chart('utilisation', 'dronesNone')}
${await chart('landing-battery', 'landingsNone')}
${table([t('hub', lang), t('drone', lang), t('flights', lang), t('flightTime', lang), t('utilisation', lang), t('minBattery', lang)], rows, { numeric: [2, 3, 4, 5], wrap: [0] })}`;
}

async function alarmsSection(r: ScenarioResult, lang: Lang, chart: Chart): Promise<string> {
  const kinds = r.alarms.byKind.filter((k) => k.raised > 0 || k.cleared > 0);
  if (kinds.length === 0) return `<p class="none" data-empty="alarms-by-kind">${t('none', lang)} — ${t('alarmsNone', lang)}</p>`;
  const rows = kinds.map((k) => [alarmKindLabel(k.kind, lang), formatInt(k.raised, lang), formatInt(k.cleared, lang)]);
  return `${await chart('alarms-by-kind', 'alarmsNone')}
${await chart('alarms-active', 'alarmsNone')}
${table([t('kind', lang), t('raised', lang), t('cleared', lang)], rows, { numeric: [1, 2] })}`;
}

async function linksSection(r: ScenarioResult, lang: Lang, chart: Chart): Promise<string> {
  if (r.links.length === 0) return `<p class="none" data-empty="link-state">${t('none', lang)} — ${t('linksNone', lang)}</p>`;
  const byHub = new Map<string, { downS: number; maxBacklog: number }>();
  const sorted = [...r.links].sort((a, b) => a.atS - b.atS);
  const last = new Map<string, { atS: number; up: boolean }>();
  for (const s of sorted) {
    const acc = byHub.get(s.hub) ?? byHub.set(s.hub, { downS: 0, maxBacklog: 0 }).get(s.hub)!;
    const prev = last.get(s.hub);
    if (prev && !prev.up) acc.downS += s.atS - prev.atS;
    acc.maxBacklog = Math.max(acc.maxBacklog, s.backlog);
    last.set(s.hub, s);
  }
  for (const [hub, prev] of last) if (!prev.up) byHub.get(hub)!.downS += Math.max(0, r.scenario.durationS - prev.atS);
  const rows = [...byHub].filter(([, v]) => v.downS > 0 || v.maxBacklog > 0)
    .map(([hub, v]) => [h(hubLabel(r, hub, lang)), formatDuration(v.downS, lang), formatInt(v.maxBacklog, lang)]);
  const backlogChart = await chart('backlog', 'linksNone');
  return `${await chart('link-state', 'linksNone')}
${backlogChart.startsWith('<p') ? '' : backlogChart}
${rows.length === 0 ? '' : table([t('cutHubs', lang), t('linkDown', lang), t('maxBacklog', lang)], rows, { numeric: [1, 2], wrap: [0] })}`;
}

async function modesSection(r: ScenarioResult, lang: Lang, chart: Chart): Promise<string> {
  if (r.modes.length === 0) return `<p class="none" data-empty="mode-acks">${t('none', lang)} — ${t('modesNone', lang)}</p>`;
  const s = (v: number | null) => formatAck(v, lang);
  const rows = r.modes.map((m, i) => [
    h(modeSwitchLabel(i, m.atS, m.mode, lang).split(' ')[0]!), formatAtCell(r.scenario.startIso, m.atS), modeLabel(m.mode, lang), h(m.by), h(m.cause),
    `${formatInt(m.acknowledged, lang)} / ${formatInt(m.hubs, lang)}`, s(m.ackS.p50), s(m.ackS.max),
  ]);
  return `${table(['#', t('at', lang), t('mode', lang), t('by', lang), t('cause', lang), t('hubsAcked', lang), t('ackP50', lang), t('ackMax', lang)], rows, { numeric: [5, 6, 7], wrap: [4] })}
${await chart('mode-acks', 'modesNone')}`;
}

function actionsSection(r: ScenarioResult, lang: Lang): string {
  if (r.coordinatorActions.length === 0) return `<p class="none" data-empty="actions">${t('none', lang)} — ${t('actionsNone', lang)}</p>`;
  const rows = r.coordinatorActions.map((a) => [formatAtCell(r.scenario.startIso, a.atS), h(a.action), h(a.by), h(a.detail)]);
  return table([t('at', lang), t('action', lang), t('by', lang), t('detail', lang)], rows, { wrap: [3] });
}

async function sweepSection(report: ScenarioReport, lang: Lang, chart: Chart): Promise<string> {
  const sweep = report.sweep;
  if (!sweep || sweep.rows.length === 0) return `<p class="none" data-empty="sweep">${t('sweepNone', lang)}</p>`;
  const main = uniformDronesPerHub(report.result);
  const ttfr = (v: number | null) => formatDuration(v, lang);
  const rows = sweep.rows.map((x) => [
    String(x.dronesPerHub), ttfr(x.timeToFirstReliefS.median), ttfr(x.timeToFirstReliefS.max), formatInt(x.timeToFirstReliefS.sitesWithout, lang),
    formatPct(x.reliefOnTimeShare), formatPct(x.onTimeShare), `${formatInt(x.delivered, lang)} / ${formatInt(x.requested, lang)}`,
  ]);
  const mainInTable = sweep.rows.some((x) => x.dronesPerHub === main);
  // Two header rows (grouped columns) keep the table within a portrait tablet's width.
  const num = (v: string) => `<td class="num">${v}</td>`;
  return `<p>${t('sweepIntro', lang)}${gap(lang)}${t(mainInTable ? 'sweepMainRow' : 'sweepMainOwn', lang)}</p>
<div class="table-wrap"><table class="sweep">
<thead><tr><th rowspan="2">${t('dronesPerHub', lang)}</th><th colspan="3">${t('ttfr', lang)}</th><th colspan="2">${t('onTimeShare', lang)}</th><th rowspan="2" class="num">${t('sumDelivered', lang)}</th></tr>
<tr><th class="num">${t('median', lang)}</th><th class="num">${t('worst', lang)}</th><th class="num">${t('sitesWithout', lang)}</th><th class="num">${t('reliefAndMedical', lang)}</th><th class="num">${t('allOrders', lang)}</th></tr></thead>
<tbody>${rows.map((row, i) => `<tr${sweep.rows[i]!.dronesPerHub === main ? ' class="main-run"' : ''}>${row.map(num).join('')}</tr>`).join('\n')}</tbody>
</table></div>
${sweep.rows.some((x) => x.timeToFirstReliefS.median === null || x.timeToFirstReliefS.max === null) ? `<p class="note">${t('neverNote', lang)}</p>` : ''}
<div class="chart-pair">${await chart('sweep-time', 'sweepNone')}${await chart('sweep-share', 'sweepNone')}</div>`;
}

/** Shows one language once the page can run script; without script both stay visible. */
const SWITCH_SCRIPT = `(function () {
  var root = document.documentElement;
  var links = document.querySelectorAll('.lang-switch a');
  function show(lang) {
    root.setAttribute('data-show', lang);
    root.setAttribute('lang', lang);
    for (var i = 0; i < links.length; i++) links[i].setAttribute('aria-current', links[i].getAttribute('data-lang') === lang ? 'true' : 'false');
  }
  var wanted = location.hash.slice(1, 3);
  show(wanted === 'ja' || wanted === 'en' ? wanted : root.getAttribute('data-default-lang'));
  for (var i = 0; i < links.length; i++) links[i].addEventListener('click', function (e) {
    e.preventDefault();
    var lang = this.getAttribute('data-lang');
    show(lang);
    if (history.replaceState) history.replaceState(null, '', '#' + lang);
    window.scrollTo(0, 0);
  });
})();`;

const CSS = `
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1000px; padding: 12px 16px 40px; font-family: ${CHART_FONT}; font-size: 15px; line-height: 1.55; color: #1a1a1a; background: #fff; }
header.top { border-bottom: 2px solid #1a1a1a; margin-bottom: 12px; padding-bottom: 8px; display: flex; flex-wrap: wrap; align-items: flex-end; gap: 4px 16px; }
header.top .kicker { margin: 0; width: 100%; font-size: 13px; color: #555; }
header.top h1 { margin: 0; font-size: 22px; line-height: 1.3; flex: 1 1 400px; }
header.top h1 .sep { color: #999; }
.lang-switch { display: flex; gap: 6px; }
.lang-switch a { display: inline-block; padding: 6px 14px; border: 1px solid #1a1a1a; border-radius: 4px; color: #1a1a1a; text-decoration: none; font-size: 14px; min-height: 36px; }
.lang-switch a[aria-current="true"] { background: #1a1a1a; color: #fff; }
html[data-show="ja"] article#en, html[data-show="en"] article#ja { display: none; }
html:not([data-show]) article.report-lang + article.report-lang { border-top: 3px double #1a1a1a; margin-top: 32px; padding-top: 8px; }
h2.scenario-name { font-size: 20px; margin: 8px 0; }
h3 { font-size: 18px; margin: 28px 0 8px; padding-bottom: 4px; border-bottom: 1px solid #ccc; }
dl.facts { display: grid; grid-template-columns: repeat(auto-fit, minmax(280px, 1fr)); gap: 4px 24px; margin: 0 0 8px; }
dl.facts div { display: flex; gap: 8px; }
dl.facts dt { font-weight: bold; white-space: nowrap; }
dl.facts dd { margin: 0; }
.note { color: #444; font-size: 13px; }
nav.toc ol { columns: 2; column-gap: 24px; margin: 8px 0; padding-left: 1.6em; font-size: 14px; }
figure.chart { margin: 12px 0; overflow: hidden; }
figure.chart svg { display: block; max-width: 100%; height: auto; }
.chart-pair { display: flex; flex-wrap: wrap; gap: 0 16px; }
.table-wrap { overflow-x: auto; margin: 8px 0; }
table { border-collapse: collapse; font-size: 13px; min-width: 50%; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; white-space: nowrap; }
td.wrap { white-space: normal; min-width: 12em; }
th { background: #f2f2f2; font-weight: bold; white-space: normal; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.key-figures td:first-child { min-width: 18em; }
tr.main-run td { font-weight: bold; background: #fff8e1; }
.none { padding: 10px 12px; background: #f6f6f6; border-left: 4px solid #9e9e9e; color: #333; }
.bad { color: #c62828; }
code { font-size: 12px; color: #555; }
.clock { font-size: 12px; color: #555; }
th.time-note { font-weight: normal; }
@media (max-width: 800px) { body { font-size: 14px; padding: 8px 10px 32px; } nav.toc ol { columns: 1; } table { font-size: 12px; } th, td { padding: 3px 5px; } }
@media print {
  body { max-width: none; padding: 0; font-size: 11pt; }
  .lang-switch, nav.toc { display: none; }
  h3 { break-after: avoid; }
  figure.chart, table, .none { break-inside: avoid; }
  html:not([data-show]) article.report-lang + article.report-lang { break-before: page; border-top: none; }
  a { color: inherit; text-decoration: none; }
}
`;
