// Alarm lists for both consoles, and the counts other screens show as badges.
//
// Exports (other screens import these; signatures are stable):
//   openAlarmCounts(alarms = state.alarms) → Map<hubId, { open, critical }>
//       Alarms not yet acknowledged, per hub (`critical`: how many of them are critical). Hubs without
//       open alarms are absent. `alarms`: a Map or array of alarm bodies (GET /api/v1/alarms).
//   openAlarmTotals(alarms = state.alarms) → { open, critical }   (all hubs the account may read)
//   alarmCountBadge(counts, attrs?) → element | null   a pill for a tab, header or map label: icon +
//       number (critical when any open alarm is critical, by shape and text, not colour alone); null
//       when counts is undefined or counts.open is 0. attrs are added to the element (e.g. data-key).
//   severityMark(severity) → element   icon + the severity's name ("緊急" / "Critical")
//   alarmList(alarms, withHub) → element[]   the list: open before acknowledged, critical first, newest
//       first; withHub: name the hub in each item (coordinator)
//   acknowledge(id) → Promise   POST …/ack, updates state, renders
//
// Every item's headline comes from the alarm's kind and params through the catalogues (alarm-text.js),
// in the console's language; the device's own text stays one tap away, shown literally.
import { actAs, ApiError } from '../lib/api.js';
import { h, s, T, V } from '../lib/dom.js';
import { flash } from '../lib/flash.js';
import { fmtTime, t } from '../lib/i18n.js';
import { deviceName, hubName, requestRender, state, whileBusy } from '../lib/state.js';
import { alarmHeadline } from './alarm-text.js';

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

/** The severity's icon: critical an octagon, warning a triangle (shape, not colour alone, tells them apart). */
function severityIcon(severity) {
  const shape = severity === 'critical'
    ? s('polygon', { points: '5,1 11,1 15,5 15,11 11,15 5,15 1,11 1,5', class: 'sev-shape' })
    : s('polygon', { points: '8,1 15.5,14.5 0.5,14.5', class: 'sev-shape' });
  return s('svg', { class: 'sev-icon', viewBox: '0 0 16 16', width: 16, height: 16, 'aria-hidden': 'true', focusable: 'false' },
    shape,
    s('rect', { x: 7, y: severity === 'critical' ? 4 : 5.5, width: 2, height: severity === 'critical' ? 5 : 4.5, class: 'sev-glyph' }),
    s('rect', { x: 7, y: severity === 'critical' ? 10.5 : 11, width: 2, height: 2, class: 'sev-glyph' }));
}

export function severityMark(severity) {
  return h('span', { class: ['sev-mark', `sev-${severity}`] }, severityIcon(severity), h('span', { class: 'sev-name' }, T(`severity.${severity}`)));
}

export function alarmCountBadge(counts, attrs = {}) {
  if (!counts || !counts.open) return null;
  const severity = counts.critical > 0 ? 'critical' : 'warning';
  const open = t('alarm.openCount', { n: counts.open });
  const label = counts.critical > 0 ? t('alarm.countWithCritical', { open, critical: t('alarm.criticalCount', { n: counts.critical }) }) : open;
  return h('span', { ...attrs, class: ['alarm-count', `sev-${severity}`, attrs.class], role: 'img', 'aria-label': label, title: label },
    severityIcon(severity), V(counts.open, 'span', { class: 'alarm-count-n' }));
}

/** Alarms whose device message is shown (screen-local: a tap shows it, another hides it). */
const deviceMessagesShown = new Set();

function toggleDeviceMessage(id) {
  if (deviceMessagesShown.has(id)) deviceMessagesShown.delete(id);
  else deviceMessagesShown.add(id);
  requestRender();
}

/**
 * Alarms acknowledged on this screen in the last few seconds keep their place among the open ones (shown
 * acknowledged): dropping below the next alarm at once slid that alarm's acknowledge button under the
 * finger, and a second tap on the spot acknowledged an alarm nobody had looked at.
 */
const ACKED_HERE_KEEPS_PLACE_MS = 5000;
const ackedHere = new Map(); // alarm id → when it was acknowledged here (Date.now())
const placeRank = (a) => (a.state === 'open' || Date.now() - (ackedHere.get(a.id) ?? -Infinity) < ACKED_HERE_KEEPS_PLACE_MS ? 0 : 1);

const byUrgency = (a, b) =>
  placeRank(a) - placeRank(b)
  || (a.severity === b.severity ? 0 : a.severity === 'critical' ? -1 : 1)
  || b.raisedAt.localeCompare(a.raisedAt);

export function alarmList(alarms, withHub) {
  if (alarms.length === 0) return [h('p', { class: 'empty' }, T('alarms.none'))];
  // Alarms that ended are gone from the set: forget whether their message was shown.
  for (const id of deviceMessagesShown) if (!state.alarms.has(id)) deviceMessagesShown.delete(id);
  for (const [id, at] of ackedHere) if (Date.now() - at >= ACKED_HERE_KEEPS_PLACE_MS) ackedHere.delete(id);
  return [h('ul', { class: 'alarm-list' }, ...[...alarms].sort(byUrgency).map((a) => alarmItem(a, withHub)))];
}

function alarmItem(a, withHub) {
  const busyKey = `ack-${a.id}`;
  const shown = deviceMessagesShown.has(a.id);
  const detailId = `alarm-device-${a.id}`;
  // tabindex -1: focus can be put on the item (acknowledge() does, when the button it was on goes away).
  return h('li', { class: ['alarm', `sev-${a.severity}`, `st-${a.state}`], 'data-alarm-id': a.id, 'data-key': `alarm-${a.id}`, 'data-kind': a.kind, tabindex: '-1' },
    h('div', { class: 'alarm-head' },
      severityMark(a.severity),
      h('strong', { class: 'alarm-headline' }, alarmHeadline(a)),
    ),
    h('div', { class: 'alarm-where' },
      withHub ? V(hubName(a.hub), 'span', { class: 'alarm-hub' }) : null,
      a.device ? V(deviceName(a.hub, a.device), 'span', { class: 'alarm-device' }) : null,
      a.compartment ? h('span', { class: 'alarm-compartment' }, T('alarm.compartment', { id: a.compartment })) : null,
    ),
    // When, the device's message (a tap away), and what to do (or who did it) on one row: an alarm is three
    // rows high, so the first one fits on the first screen under the emergency banner at 1024×768.
    h('div', { class: 'alarm-foot' },
      h('p', { class: 'alarm-meta' }, T('alarms.raisedAt', { time: fmtTime(a.raisedAt) }), a.count > 1 ? h('span', {}, T('alarms.count', { n: a.count })) : null),
      a.deviceDetail
        ? h('button', {
          type: 'button', class: 'link alarm-device-toggle', 'aria-expanded': shown ? 'true' : 'false', 'aria-controls': shown ? detailId : null,
          onclick: () => toggleDeviceMessage(a.id),
        }, T(shown ? 'alarm.deviceMessageHide' : 'alarm.deviceMessage'))
        : null,
      a.state === 'open'
        ? h('button', { type: 'button', class: 'primary ack', disabled: state.busy.has(busyKey), onclick: () => void acknowledge(a.id) }, T('alarms.ack'))
        : h('p', { class: 'acked' },
          h('span', {}, T('alarm.ackedBy', { time: fmtTime(a.acknowledgedAt) })),
          V(a.acknowledgedByName ?? a.acknowledgedBy, 'span', { class: 'acked-by' }))),
    a.deviceDetail && shown ? V(a.deviceDetail, 'p', { class: 'alarm-device-detail', id: detailId }) : null,
  );
}

export function acknowledge(id) {
  // The acknowledge button gives way to who acknowledged: a keyboard user on it would drop back to the top
  // of the page. Their place is kept on the alarm's item, once the render that removed the button is done.
  const focusOnItem = document.activeElement?.closest?.('li.alarm')?.getAttribute('data-alarm-id') === id;
  const keepPlace = () => setTimeout(() => {
    if (!focusOnItem || (document.activeElement && document.activeElement !== document.body)) return;
    document.querySelector(`#main li.alarm[data-alarm-id="${CSS.escape(id)}"]`)?.focus();
  }, 0);
  return whileBusy(`ack-${id}`, async () => {
    try {
      const updated = await actAs('POST', `/api/v1/alarms/${encodeURIComponent(id)}/ack`, {});
      if (updated.state === 'cleared') state.alarms.delete(updated.id);
      else state.alarms.set(updated.id, updated);
      ackedHere.set(updated.id, Date.now());
      setTimeout(requestRender, ACKED_HERE_KEEPS_PLACE_MS); // then it moves below the open ones
      flash('alarms.acknowledged', {}, 'ok');
    } catch (err) {
      const failure = ackFailure(err);
      // It ended meanwhile (the door was closed, the hub came back): gone from the list, as the live feed will say.
      if (err instanceof ApiError && (err.code === 'alarm_cleared' || err.code === 'alarm_not_found')) state.alarms.delete(id);
      flash(failure.key, failure.params, 'error');
    }
    requestRender();
  }).finally(keepPlace);
}

/** Why an acknowledgement failed, as a sentence of the catalogue (the API's code only when it has none for it). */
function ackFailure(err) {
  if (!(err instanceof ApiError)) return { key: 'alarm.ackFailed.network' };
  if (err.status === 403) return { key: 'alarm.ackFailed.forbidden' };
  const key = `alarm.ackFailed.${err.code}`;
  return typeof state.catalogue[key] === 'string' ? { key } : { key: 'alarms.ackFailed', params: { code: err.code } };
}
