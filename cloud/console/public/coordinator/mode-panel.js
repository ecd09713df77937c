// The coordinator's mode panel: which hubs are in emergency mode and whether each has acknowledged it,
// the acknowledgement progress, and the switch form with its hub picker and confirmation dialog.
import { actAs, api, ApiError } from '../lib/api.js';
import { h, T, V } from '../lib/dom.js';
import { flash } from '../lib/flash.js';
import { fmtTime, t } from '../lib/i18n.js';
import { hubName, maySwitchModes, modeDesiredOf, nameOf, requestRender, state } from '../lib/state.js';
import { toggleSwitchSelection } from '../map/region-map.js';

/** The region's mode now: which hubs are in emergency mode, each hub's acknowledgement. */
export function modePanel() {
  return h('section', { class: 'card mode-card', id: 'mode-card', 'aria-labelledby': 'mode-h' },
    h('h2', { id: 'mode-h' }, T('mode.title')),
    h('div', { id: 'mode-status', 'aria-live': 'polite' }, modeStatus()),
  );
}

/** The switch: target mode, scope, hub picker, reason (a card of its own, so a portrait screen can put the map between). */
export function switchPanel() {
  return h('section', { class: 'card switch-card', id: 'switch-card', 'aria-labelledby': 'switch-h' },
    h('h2', { id: 'switch-h' }, T('mode.switchTitle')),
    maySwitchModes() ? modeForm() : h('p', { class: 'empty' }, T('mode.readOnly')),
  );
}

/** The mode API's entry for a hub (desired mode, acknowledgement, status), or undefined. */
const hubModeOf = (hub) => state.mode?.hubs.find((x) => x.hub === hub);

function modeStatus() {
  const m = state.mode;
  if (!m) return [h('p', { class: 'empty' }, T('common.noData'))];
  // In region order (as on the map and in the picker), not in the API's order.
  const inEmergency = state.region.hubs.map((x) => hubModeOf(x.id)).filter((x) => x?.desired === 'emergency');
  // Hubs in emergency show their acknowledgement in that list; the others waiting are listed below.
  const waiting = m.hubs.filter((x) => x.status !== 'acknowledged' && x.desired !== 'emergency');
  return [
    h('p', { class: 'mode-summary' },
      h('span', { class: ['badge', m.desired.mode === 'emergency' ? 'bad' : 'ok'] }, T('mode.regionIs', { mode: t(`mode.${m.desired.mode}`) })), ' ',
      h('span', { class: 'mode-version' }, T('mode.version', { version: m.desired.version })),
      m.desired.at ? h('span', { class: 'mode-since' }, T('mode.since', { time: fmtTime(m.desired.at) })) : null,
      // Who switched, by the name people know them by (the API adds it; the username on an older cloud).
      m.desired.by ? h('span', { class: 'mode-by' }, T('mode.by'), ' ', V(m.desired.byName ?? m.desired.by, 'span', { id: 'mode-switched-by' })) : null),
    m.desired.reason ? h('p', { class: 'mode-reason' }, T('mode.reason'), ' ', V(m.desired.reason, 'q')) : null,
    h('h3', { class: 'emergency-hubs-h', id: 'emergency-hubs-h' }, T('mode.emergencyHubsTitle', { n: inEmergency.length })),
    inEmergency.length === 0
      ? h('p', { class: 'empty', id: 'emergency-hubs-none' }, T('mode.noHubInEmergency'))
      // tabindex: the list may scroll (a region-wide emergency), and a keyboard must reach all of it.
      : h('ul', { class: 'emergency-hubs', id: 'emergency-hubs', 'aria-labelledby': 'emergency-hubs-h', tabindex: 0 },
        ...inEmergency.map((x) => h('li', { 'data-hub': x.hub, 'data-key': `emergency-${x.hub}`, 'data-status': x.status },
          V(hubName(x.hub), 'span', { class: 'hub-name' }), ' ', h('span', { class: ['badge', 'ack', `ack-${x.status}`] }, T(`ack.${x.status}`)),
          // Since when, where it differs from the newest switch's time shown above (a region-wide switch: never).
          x.switched?.since && x.switched.since !== m.desired.at ? h('span', { class: 'hub-since' }, T('mode.since', { time: fmtTime(x.switched.since) })) : null))),
    h('p', { id: 'ack-progress', class: ['progress', m.allAcknowledged ? 'ok' : 'pending'], 'data-acknowledged': m.counts.acknowledged, 'data-total': m.counts.total },
      T('mode.progress', { n: m.counts.acknowledged, total: m.counts.total }), ' ',
      m.counts.timedOut ? T('mode.timedOutCount', { n: m.counts.timedOut }) : null, ' ',
      m.allAcknowledged && m.lastAcknowledgedAt ? h('span', { class: 'all-acked' }, T('mode.allAckAt', { time: fmtTime(m.lastAcknowledgedAt) })) : null),
    h('progress', { max: m.counts.total, value: m.counts.acknowledged, 'aria-label': t('mode.progressLabel') }),
    waiting.length === 0 ? null : h('ul', { class: 'ack-list', id: 'ack-waiting' }, ...waiting.map((x) => h('li', { class: `ack-${x.status}`, 'data-hub': x.hub, 'data-key': `ack-${x.hub}` },
      V(hubName(x.hub)), ' ', h('span', { class: 'badge' }, T(`ack.${x.status}`))))),
  ];
}

/** The switch form's last refusal, shown until the next attempt: { key, params } or null. */
let switchError = null;

function modeForm() {
  // The error lives in module state, not in the DOM: the next live update would morph a hand-set text away.
  const error = h('p', { class: 'error', role: 'alert', id: 'switch-error' }, switchError ? T(switchError.key, switchError.params) : null);
  const picked = state.selectedForSwitch.size;
  // novalidate: the catalogue's message is shown instead of the browser's own bubble, in the console's language.
  return h('form', { id: 'mode-form', class: 'mode-form', novalidate: true, onsubmit: submitSwitch },
    h('fieldset', { class: 'mode-target' }, h('legend', {}, T('mode.target')),
      h('label', {}, h('input', { type: 'radio', name: 'mode', value: 'emergency', checked: true }), T('mode.emergency')),
      h('label', {}, h('input', { type: 'radio', name: 'mode', value: 'normal' }), T('mode.normal'))),
    h('fieldset', { class: 'mode-scope' }, h('legend', {}, T('mode.scope')),
      h('label', {}, h('input', { type: 'radio', name: 'scope', value: 'region', checked: true }), T('mode.scopeRegion')),
      h('label', {}, h('input', { type: 'radio', name: 'scope', value: 'hubs' }), T('mode.scopeHubs')),
      h('div', { id: 'hub-picker', class: 'hub-picker' }, hubPicker()),
      h('p', { class: 'picked', id: 'picked-count', 'data-picked': picked },
        h('span', {}, T('mode.pickedCount', { n: picked })),
        picked > 0 ? h('button', { type: 'button', class: 'secondary small', id: 'clear-selection', onclick: clearSelection }, T('mode.clearSelection')) : null)),
    h('label', { for: 'reason' }, T('mode.reasonLabel')),
    h('textarea', { id: 'reason', name: 'reason', required: true, maxlength: 500, rows: 2 }),
    h('button', { type: 'submit', class: 'danger', id: 'switch-button' }, T('mode.switch')),
    error,
  );
}

function submitSwitch(e) {
  e.preventDefault();
  const fd = new FormData(e.currentTarget);
  const reason = String(fd.get('reason') ?? '').trim();
  const mode = String(fd.get('mode'));
  const hubs = fd.get('scope') === 'hubs' ? [...state.selectedForSwitch] : null;
  switchError = !reason ? { key: 'mode.reasonRequired' } : hubs && hubs.length === 0 ? { key: 'mode.hubsRequired' } : null;
  requestRender();
  if (!switchError) confirmSwitch({ mode, hubs, reason });
}

function clearSelection() {
  state.selectedForSwitch.clear();
  requestRender();
}

function hubPicker() {
  return state.region.hubs.map((hub) => h('label', { class: 'hub-check', 'data-key': `pick-${hub.id}` },
    h('input', {
      type: 'checkbox', name: 'hub', value: hub.id, 'data-controlled': '', checked: state.selectedForSwitch.has(hub.id),
      // The map and this list share one selection and one rule for it.
      onchange: () => toggleSwitchSelection(hub.id),
    }),
    h('span', {}, V(nameOf(hub.name)),
      // The hub's mode now, so a coordinator sees which hubs a switch back to normal should take.
      modeDesiredOf(hub.id) === 'emergency' ? h('span', { class: 'badge bad' }, T('mode.emergencyShort')) : null)));
}

/**
 * Fills the switch form as a proposal suggests (hubs, reason) and brings it into view; the coordinator
 * still reads it and confirms. The form's radios and reason are the person's own inputs (not
 * `data-controlled`), so they are set here once and the morph keeps them.
 */
export function prefillSwitch({ hubs, reason }) {
  state.selectedForSwitch.clear();
  for (const id of hubs ?? []) state.selectedForSwitch.add(id);
  const form = document.getElementById('mode-form');
  if (form) {
    form.querySelector('input[name="mode"][value="emergency"]').checked = true;
    form.querySelector(`input[name="scope"][value="${hubs ? 'hubs' : 'region'}"]`).checked = true;
    form.querySelector('#reason').value = reason;
    form.scrollIntoView({ block: 'nearest' });
    form.querySelector('#reason').focus({ preventScroll: true });
  }
  switchError = null;
  requestRender();
}

export function switchDialog() {
  // Filled and opened by confirmSwitch(); the morph leaves it alone (data-morph-skip).
  return h('dialog', { id: 'confirm-dialog', class: 'confirm-dialog', 'aria-labelledby': 'confirm-h', 'data-morph-skip': '' });
}

/** Why a switch failed, in the console's language (the API's code only when the catalogue has no sentence for it). */
function switchFailure(err) {
  if (!(err instanceof ApiError)) return { key: 'mode.error.network' };
  if (err.status === 403) return { key: 'mode.forbidden' };
  const key = `mode.error.${err.code}`;
  return typeof state.catalogue[key] === 'string' ? { key } : { key: 'mode.failed', params: { code: err.code } };
}

function confirmSwitch(req) {
  const dialog = document.getElementById('confirm-dialog');
  // The region shown when the coordinator asked (the dialog is modal: the chooser cannot change it meanwhile).
  const regionPath = `/api/v1/regions/${encodeURIComponent(state.region.id)}`;
  // Built whole at every opening, so it is in the language the console shows now.
  const cancel = h('button', { type: 'button', id: 'confirm-cancel', class: 'secondary' }, T('common.cancel'));
  const ok = h('button', { type: 'button', id: 'confirm-ok', class: 'danger' }, T('mode.confirm'));
  dialog.replaceChildren(
    h('h2', { id: 'confirm-h' }, T('mode.confirmTitle')),
    h('div', { id: 'confirm-body' },
      h('p', {}, T(req.hubs ? 'mode.confirmHubs' : 'mode.confirmRegion', { mode: t(`mode.${req.mode}`), n: req.hubs?.length ?? 0 })),
      req.hubs ? h('ul', { class: 'confirm-hubs' }, ...req.hubs.map((id) => V(hubName(id), 'li', { 'data-hub': id }))) : null,
      h('p', {}, T('mode.reason'), ' ', V(req.reason, 'q'))),
    h('div', { class: 'actions' }, cancel, ok));
  cancel.onclick = () => dialog.close();
  ok.onclick = async () => {
    ok.disabled = true;
    cancel.disabled = true;
    try {
      const body = { mode: req.mode, reason: req.reason, ...(req.hubs ? { hubs: req.hubs } : {}) };
      await actAs('POST', `${regionPath}/mode`, body);
      // Done with this selection: the next switch starts from nothing picked (no rings left on the map).
      state.selectedForSwitch.clear();
      document.getElementById('reason').value = '';
      flash('mode.switched', {}, 'ok');
      const mode = await api('GET', `${regionPath}/mode`).catch(() => null);
      if (mode) {
        state.modes.set(mode.region, mode);
        if (mode.region === state.region.id) state.mode = mode;
      }
    } catch (err) {
      switchError = switchFailure(err);
    } finally {
      dialog.close();
      requestRender();
    }
  };
  dialog.showModal();
  cancel.focus();
}
