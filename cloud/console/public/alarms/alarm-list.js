// Alarm lists for both consoles, and the counts other screens show as badges.
//
// Exports (other screens import these; signatures are stable):
//   openAlarmCounts(alarms = state.alarms) → Map<hubId, { open, critical }>
//       Alarms not yet acknowledged, per hub (`critical`: how many of them are critical). Hubs without
//       open alarms are absent. `alarms`: a Map or array of alarm bodies (GET /api/v1/alarms).
//   openAlarmTotals(alarms = state.alarms) → { open, critical }   (all hubs the account may read)
//   alarmList(alarms, withHub) → element[]   the list (critical first, newest first); withHub: show the hub
//   acknowledge(id) → Promise                 POST …/ack, updates state, renders
import { actAs } from '../lib/api.js';
import { h, T, V } from '../lib/dom.js';
import { flash } from '../lib/flash.js';
import { fmtTime } from '../lib/i18n.js';
import { hubName, requestRender, state, whileBusy } from '../lib/state.js';

/** Open alarms per hub: Map hub → { open, critical }. */
export function openAlarmCounts(alarms = state.alarms) {
  const counts = new Map();
  for (const a of alarms.values()) {
    if (a.state !== 'open') continue;
    const c = counts.get(a.hub) ?? { open: 0, critical: 0 };
    c.open += 1;
    if (a.severity === 'critical') c.critical += 1;
    counts.set(a.hub, c);
  }
  return counts;
}

/** Open alarms over every hub in `alarms`: { open, critical }. */
export function openAlarmTotals(alarms = state.alarms) {
  const total = { open: 0, critical: 0 };
  for (const c of openAlarmCounts(alarms).values()) {
    total.open += c.open;
    total.critical += c.critical;
  }
  return total;
}

export function alarmList(alarms, withHub) {
  if (alarms.length === 0) return [h('p', { class: 'empty' }, T('alarms.none'))];
  alarms.sort((a, b) => (a.severity === b.severity ? b.raisedAt.localeCompare(a.raisedAt) : a.severity === 'critical' ? -1 : 1));
  return [h('ul', { class: 'alarm-list' }, ...alarms.map((a) => {
    const where = [a.device, a.compartment].filter(Boolean).join(' / ');
    const busyKey = `ack-${a.id}`;
    return h('li', { class: ['alarm', `sev-${a.severity}`, `st-${a.state}`], 'data-alarm-id': a.id, 'data-key': `alarm-${a.id}` },
      h('div', { class: 'alarm-head' },
        h('span', { class: `badge sev-${a.severity}` }, T(`severity.${a.severity}`)),
        h('strong', {}, T(`alarmKind.${a.kind}`)),
        withHub ? V(hubName(a.hub), 'span', { class: 'alarm-hub' }) : null,
        where ? V(where, 'span', { class: 'alarm-where' }) : null,
      ),
      V(a.detail, 'p', { class: 'alarm-detail' }),
      h('p', { class: 'alarm-meta' }, T('alarms.raisedAt', { time: fmtTime(a.raisedAt) }), ' ',
        a.count > 1 ? T('alarms.count', { n: a.count }) : null),
      a.state === 'open'
        ? h('button', { type: 'button', class: 'primary ack', disabled: state.busy.has(busyKey), onclick: () => void acknowledge(a.id) }, T('alarms.ack'))
        : h('p', { class: 'acked' }, T('alarms.ackedBy', { time: fmtTime(a.acknowledgedAt) }), ' ', V(a.acknowledgedBy)),
    );
  }))];
}

export function acknowledge(id) {
  return whileBusy(`ack-${id}`, async () => {
    try {
      const updated = await actAs('POST', `/api/v1/alarms/${encodeURIComponent(id)}/ack`, {});
      if (updated.state === 'cleared') state.alarms.delete(updated.id);
      else state.alarms.set(updated.id, updated);
      flash('alarms.acknowledged', {}, 'ok');
    } catch (err) {
      flash('alarms.ackFailed', { code: err.code ?? '' }, 'error');
    }
    requestRender();
  });
}
