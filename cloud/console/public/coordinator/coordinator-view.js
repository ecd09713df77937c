// The disaster coordinator's console: the region map, the region's mode and the switch, proposals
// from outside systems, relief and held orders, open alarms.
import { alarmList } from '../alarms/alarm-list.js';
import { actAs, api } from '../lib/api.js';
import { h, T, V } from '../lib/dom.js';
import { flash } from '../lib/flash.js';
import { fmtTime, t } from '../lib/i18n.js';
import { hubName, maySwitchModes, modeDesiredOf, nameOf, requestRender, state } from '../lib/state.js';
import { mapLegend, regionMap } from '../map/region-map.js';

export function coordinatorView() {
  const active = (o) => !['delivered', 'picked_up', 'failed', 'cancelled'].includes(o.state);
  return h('div', { class: 'coord', id: 'coordinator-console' },
    h('section', { class: 'card map-card', 'aria-labelledby': 'map-h' },
      h('h2', { id: 'map-h' }, T('map.title'), ' ', V(nameOf(state.region.name), 'span', { class: 'region-name' })),
      h('div', { id: 'map' }, regionMap()),
      mapLegend(),
    ),
    h('div', { class: 'coord-side' },
      h('section', { class: 'card', 'aria-labelledby': 'mode-h' },
        h('h2', { id: 'mode-h' }, T('mode.title')),
        h('div', { id: 'mode-status', 'aria-live': 'polite' }, modeStatus()),
        maySwitchModes() ? modeForm() : h('p', { class: 'empty' }, T('mode.readOnly')),
      ),
      h('section', { class: 'card', 'aria-labelledby': 'prop-h' }, h('h2', { id: 'prop-h' }, T('proposals.title')), h('div', { id: 'proposals' }, proposalList())),
      h('section', { class: 'card', 'aria-labelledby': 'relief-h' }, h('h2', { id: 'relief-h' }, T('orders.reliefTitle')),
        h('div', { id: 'relief-orders' }, orderTable(state.orders.filter((o) => (o.priority === 'relief' || o.priority === 'medical') && active(o))))),
      h('section', { class: 'card', 'aria-labelledby': 'held-h' }, h('h2', { id: 'held-h' }, T('orders.heldTitle')),
        h('div', { id: 'held-orders' }, orderTable(state.orders.filter((o) => o.state === 'held')))),
      h('section', { class: 'card', 'aria-labelledby': 'calarms-h' }, h('h2', { id: 'calarms-h' }, T('alarms.openTitle')),
        h('div', { id: 'coord-alarms' }, alarmList([...state.alarms.values()].filter((a) => a.state === 'open'), true))),
    ),
    switchDialog(),
  );
}

function modeStatus() {
  const m = state.mode;
  if (!m) return [h('p', { class: 'empty' }, T('common.noData'))];
  const emergencyHubs = state.region.hubs.filter((x) => modeDesiredOf(x.id) === 'emergency');
  const waiting = m.hubs.filter((x) => x.status !== 'acknowledged');
  return [
    h('p', {}, T('mode.version', { version: m.desired.version }), ' ',
      h('span', { class: ['badge', m.desired.mode === 'emergency' ? 'bad' : 'ok'] }, T('mode.regionIs', { mode: t(`mode.${m.desired.mode}`) })), ' ',
      T('mode.emergencyHubs', { n: emergencyHubs.length })),
    m.desired.reason ? h('p', {}, T('mode.reason'), ' ', V(m.desired.reason, 'q')) : null,
    h('p', { id: 'ack-progress', class: ['progress', m.allAcknowledged ? 'ok' : 'pending'], 'data-acknowledged': m.counts.acknowledged, 'data-total': m.counts.total },
      T('mode.progress', { n: m.counts.acknowledged, total: m.counts.total }), ' ',
      m.counts.timedOut ? T('mode.timedOutCount', { n: m.counts.timedOut }) : null, ' ',
      m.allAcknowledged && m.lastAcknowledgedAt ? T('mode.allAckAt', { time: fmtTime(m.lastAcknowledgedAt) }) : null),
    h('progress', { max: m.counts.total, value: m.counts.acknowledged, 'aria-label': t('mode.progressLabel') }),
    waiting.length === 0 ? null : h('ul', { class: 'ack-list', id: 'ack-waiting' }, ...waiting.map((x) => h('li', { class: `ack-${x.status}`, 'data-hub': x.hub, 'data-key': `ack-${x.hub}` },
      V(hubName(x.hub)), ' ', h('span', { class: 'badge' }, T(`ack.${x.status}`))))),
  ];
}

function modeForm() {
  // The error lives in module state, not in the DOM: the next live update would morph a hand-set text away.
  const error = h('p', { class: 'error', role: 'alert', id: 'switch-error' }, switchError ? T(switchError.key, switchError.params) : null);
  // novalidate: the catalogue's message is shown instead of the browser's own bubble, in the console's language.
  const form = h('form', { id: 'mode-form', class: 'mode-form', novalidate: true },
    h('fieldset', {}, h('legend', {}, T('mode.target')),
      h('label', {}, h('input', { type: 'radio', name: 'mode', value: 'emergency', checked: true }), T('mode.emergency')),
      h('label', {}, h('input', { type: 'radio', name: 'mode', value: 'normal' }), T('mode.normal'))),
    h('fieldset', {}, h('legend', {}, T('mode.scope')),
      h('label', {}, h('input', { type: 'radio', name: 'scope', value: 'region', checked: true }), T('mode.scopeRegion')),
      h('label', {}, h('input', { type: 'radio', name: 'scope', value: 'hubs' }), T('mode.scopeHubs')),
      h('div', { id: 'hub-picker', class: 'hub-picker' }, hubPicker())),
    h('label', { for: 'reason' }, T('mode.reasonLabel')),
    h('textarea', { id: 'reason', name: 'reason', required: true, maxlength: 500, rows: 2 }),
    h('button', { type: 'submit', class: 'danger', id: 'switch-button' }, T('mode.switch')),
    error,
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const fd = new FormData(e.currentTarget);
    const reason = String(fd.get('reason') ?? '').trim();
    const mode = String(fd.get('mode'));
    const hubs = fd.get('scope') === 'hubs' ? [...state.selectedForSwitch] : null;
    switchError = !reason ? { key: 'mode.reasonRequired' } : hubs && hubs.length === 0 ? { key: 'mode.hubsRequired' } : null;
    requestRender();
    if (!switchError) confirmSwitch({ mode, hubs, reason });
  });
  return form;
}

/** The switch form's last refusal, shown until the next attempt: { key, params } or null. */
let switchError = null;

function hubPicker() {
  return state.region.hubs.map((hub) => h('label', { class: 'hub-check', 'data-key': `pick-${hub.id}` },
    h('input', {
      type: 'checkbox', name: 'hub', value: hub.id, 'data-controlled': '', checked: state.selectedForSwitch.has(hub.id),
      onchange: (e) => {
        if (e.currentTarget.checked) state.selectedForSwitch.add(hub.id);
        else state.selectedForSwitch.delete(hub.id);
        const scope = document.querySelector('input[name="scope"][value="hubs"]');
        if (scope && state.selectedForSwitch.size > 0) scope.checked = true;
        requestRender();
      },
    }),
    V(nameOf(hub.name))));
}

function switchDialog() {
  // Filled and opened by confirmSwitch(); the morph leaves it alone (data-morph-skip).
  return h('dialog', { id: 'confirm-dialog', 'aria-labelledby': 'confirm-h', 'data-morph-skip': '' },
    h('h2', { id: 'confirm-h' }, T('mode.confirmTitle')),
    h('div', { id: 'confirm-body' }),
    h('div', { class: 'actions' },
      h('button', { type: 'button', id: 'confirm-cancel', class: 'secondary' }, T('common.cancel')),
      h('button', { type: 'button', id: 'confirm-ok', class: 'danger' }, T('mode.confirm'))));
}

function confirmSwitch(req) {
  const dialog = document.getElementById('confirm-dialog');
  const hubNames = req.hubs ? req.hubs.map(hubName) : null;
  document.getElementById('confirm-body').replaceChildren(
    h('p', {}, T(req.hubs ? 'mode.confirmHubs' : 'mode.confirmRegion', { mode: t(`mode.${req.mode}`), n: req.hubs?.length ?? 0 })),
    ...[hubNames ? h('ul', {}, ...hubNames.map((n) => V(n, 'li'))) : null,
      h('p', {}, T('mode.reason'), ' ', V(req.reason, 'q'))].filter(Boolean));
  const ok = document.getElementById('confirm-ok');
  const cancel = document.getElementById('confirm-cancel');
  const done = () => {
    ok.onclick = null;
    cancel.onclick = null;
    dialog.close();
  };
  cancel.onclick = done;
  ok.onclick = async () => {
    ok.disabled = true;
    try {
      const body = { mode: req.mode, reason: req.reason, ...(req.hubs ? { hubs: req.hubs } : {}) };
      await actAs('POST', `/api/v1/regions/${encodeURIComponent(state.region.id)}/mode`, body);
      state.mode = await api('GET', `/api/v1/regions/${encodeURIComponent(state.region.id)}/mode`);
      flash('mode.switched', {}, 'ok');
      document.getElementById('reason').value = '';
    } catch (err) {
      switchError = { key: err.status === 403 ? 'mode.forbidden' : 'mode.failed', params: { code: err.code ?? '' } };
    } finally {
      ok.disabled = false;
      done();
      requestRender();
    }
  };
  dialog.showModal();
  cancel.focus();
}

function proposalList() {
  if (state.proposals.length === 0) return [h('p', { class: 'empty' }, T('proposals.none'))];
  return [h('ul', { class: 'order-list' }, ...state.proposals.map((p) => h('li', { 'data-proposal': p.id, 'data-key': `proposal-${p.id}` },
    h('span', { class: 'badge bad' }, T('mode.emergency')), ' ', V(p.source, 'strong'), ' ', V(p.reason), ' ',
    T(p.hubs ? 'proposals.hubs' : 'proposals.region', { n: p.hubs?.length ?? 0 }), ' ', T('common.text', { v: fmtTime(p.createdAt) }))))];
}

function orderTable(orders) {
  if (orders.length === 0) return [h('p', { class: 'empty' }, T('orders.none'))];
  const dest = (o) => {
    if (o.destination?.type === 'site') return nameOf(state.region.landingSites.find((x) => x.id === o.destination.siteId)?.name) || o.destination.siteId;
    return hubName(o.destination?.hub);
  };
  return [h('table', { class: 'table' },
    h('thead', {}, h('tr', {}, ...['orders.id', 'orders.to', 'orders.priority', 'orders.state', 'orders.drone'].map((k) => h('th', { scope: 'col' }, T(k))))),
    h('tbody', {}, ...orders.slice(0, 50).map((o) => h('tr', { 'data-order-id': o.id, 'data-key': `order-${o.id}` },
      h('td', {}, V(o.reference ?? o.id)), h('td', {}, V(dest(o))), h('td', {}, T(`priority.${o.priority}`)),
      h('td', {}, T(`orderState.${o.state}`)), h('td', {}, o.drone ? V(`${o.drone.hub} / ${o.drone.id}`) : T('common.none'))))))];
}
