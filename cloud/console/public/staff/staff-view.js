// The hub staff console: one tab per hub of the account (each with its open alarms and mode), the
// staff member's alarm total, the shown hub's header, and either the everyday screen (alarms, lockers,
// orders by drone and by bus, drones on the pad, sensors) or, in emergency mode, the emergency screen
// (staff/emergency-view.js) with relief flights, relief stock and served shelters first.
import { alarmList, openAlarmCounts, openAlarmTotals } from '../alarms/alarm-list.js';
import { actAs, ApiError } from '../lib/api.js';
import { h, T, V } from '../lib/dom.js';
import { flash } from '../lib/flash.js';
import { fmtNum, fmtTime, t } from '../lib/i18n.js';
import { deviceName, hubName, hubSpec, mayUnlock, nameOf, requestRender, state, whileBusy } from '../lib/state.js';
import { backToNormalBanner, backToNormalShown, emergencyBanner, hubModeNow, reliefFlights, reliefStockCard, servedSitesCard } from './emergency-view.js';

/** Temperature class limits (DOMAIN: chilled ≤ 10 °C, frozen ≤ −15 °C). */
const TEMP_LIMITS = { chilled: 10, frozen: -15 };

export function staffView() {
  const id = state.selectedHub;
  const now = Date.now();
  const counts = openAlarmCounts();
  const hub = id ? state.hubs.get(id) ?? state.hubDetail.get(id) : null;
  const spec = id ? hubSpec(id) : null;
  const detail = id ? state.hubDetail.get(id) : null;
  const emergency = id ? hubModeNow(id).mode === 'emergency' : false;
  const alarmsCard = h('section', { class: 'card alarms-card', 'aria-labelledby': 'alarms-h', 'data-key': 'alarms-card' }, h('h3', { id: 'alarms-h' }, T('alarms.title')),
    h('div', { id: 'staff-alarms' }, id ? alarmList([...state.alarms.values()].filter((a) => a.hub === id), false) : null));
  // In emergency mode the banner and the relief cards fill the first screen: open alarms at the hub come
  // right after the banner (they were ~800–900 px down at 1024×768, only the badge said they existed).
  const alarmsFirst = emergency && (counts.get(id)?.open ?? 0) > 0;
  const everyday = [
    alarmsFirst ? null : alarmsCard,
    h('section', { class: 'card lockers-card', 'aria-labelledby': 'lockers-h', 'data-key': 'lockers-card' }, h('h3', { id: 'lockers-h' }, T('lockers.title')),
      h('div', { id: 'staff-lockers' }, lockerBanks(id, detail, spec)), compartmentLegend()),
    h('section', { class: 'card', 'aria-labelledby': 'orders-h', 'data-key': 'orders-card' }, h('h3', { id: 'orders-h' }, T(emergency ? 'staff.orders.otherTitle' : 'orders.hubTitle')),
      h('div', { id: 'staff-orders' }, id ? hubOrders(id, emergency) : null)),
    h('section', { class: 'card', 'aria-labelledby': 'drones-h', 'data-key': 'drones-card' }, h('h3', { id: 'drones-h' }, T('drones.title')),
      h('div', { id: 'staff-drones' }, dronesOnPad(id, detail))),
    h('section', { class: 'card', 'aria-labelledby': 'sensors-h', 'data-key': 'sensors-card' }, h('h3', { id: 'sensors-h' }, T('sensors.title')),
      h('div', { id: 'staff-sensors' }, sensors(id, detail, spec))),
  ];
  return h('div', { class: ['staff', emergency && 'staff-emergency'], id: 'staff-console', 'data-mode': emergency ? 'emergency' : 'normal' },
    h('h2', { class: 'visually-hidden' }, T('staff.title')),
    h('div', { class: 'staff-bar', id: 'staff-bar' }, hubTabs(id, counts, now), alarmTotal(counts)),
    // Not a live region: its "last heard" and backlog change with every telemetry message (about once a
    // second). A switch of mode is announced by the emergency / back-to-normal banner instead.
    h('section', { id: 'hub-header', class: 'hub-header' }, id ? hubHeader(id, hub, spec) : null),
    id && emergency ? emergencyBanner(id, now) : null,
    id && !emergency ? backToNormalBanner(id, now) : null,
    emergency
      ? h('div', { class: 'staff-grid emergency-grid', id: 'staff-grid' }, alarmsFirst ? alarmsCard : null, reliefFlights(id), reliefStockCard(id, compartmentState), servedSitesCard(id), ...everyday)
      : h('div', { class: 'staff-grid', id: 'staff-grid' }, ...everyday),
  );
}

/**
 * One tab per hub, each with its open alarms (critical ones said in words and marked by shape, not by
 * colour alone) and its mode when in emergency: an alarm or a switch at the hub not shown is never hidden.
 */
function hubTabs(selected, counts, now) {
  return h('nav', { class: 'hub-tabs', id: 'hub-tabs', 'aria-label': t('staff.hubs') }, ...state.account.hubs.map((hubId) => {
    const c = counts.get(hubId);
    const emergency = hubModeNow(hubId).mode === 'emergency';
    return h('button', {
      type: 'button', class: ['tab', emergency && 'tab-emergency'], 'data-hub': hubId, 'data-key': `tab-${hubId}`, 'aria-pressed': String(hubId === selected),
      onclick: () => {
        state.selectedHub = hubId;
        requestRender();
      },
    },
    V(hubName(hubId), 'span', { class: 'tab-name' }),
    emergency ? h('span', { class: 'tab-mode', 'data-tab-mode': 'emergency' }, T('staff.tab.emergency')) : null,
    !emergency && backToNormalShown(hubId, now) ? h('span', { class: 'tab-mode tab-back', 'data-tab-mode': 'back-to-normal' }, T('staff.tab.backToNormal')) : null,
    alarmBadge(c, { class: 'tab-alarms', 'data-tab-alarms': hubId }));
  }));
}

/** "‼ 2 (critical 1)": the open alarms of a hub or of all, null when none are open. */
function alarmBadge(c, attrs) {
  if (!c || c.open === 0) return null;
  const critical = c.critical > 0;
  return h('span', { ...attrs, class: ['alarm-badge', critical ? 'sev-critical' : 'sev-warning', attrs.class], 'data-open': c.open, 'data-critical': c.critical },
    h('span', { class: 'alarm-badge-icon', 'aria-hidden': 'true' }),
    T(critical ? 'staff.badge.withCritical' : 'staff.badge.open', { n: c.open, critical: c.critical }));
}

/** The staff member's open alarms over all their hubs, in the bar above the tabs' content. */
function alarmTotal(counts) {
  const total = openAlarmTotals();
  const withCritical = state.account.hubs.filter((hubId) => (counts.get(hubId)?.critical ?? 0) > 0);
  return h('p', { class: ['alarm-total', total.critical > 0 && 'has-critical'], id: 'staff-alarm-total', 'data-open': total.open, 'data-critical': total.critical },
    h('span', { class: 'alarm-total-label' }, T('staff.total.label')),
    total.open === 0 ? h('span', { class: 'alarm-total-none' }, T('staff.total.none')) : alarmBadge(total, { class: 'alarm-total-badge' }),
    withCritical.length > 0 ? h('span', { class: 'alarm-total-where' }, T('staff.total.criticalAt', { hubs: withCritical.map(hubName).join(t('staff.listSeparator')) })) : null);
}

function compartmentLegend() {
  return h('ul', { class: 'legend' }, ...['free', 'reserved', 'occupied', 'door_open', 'fault'].map((st) =>
    h('li', {}, h('span', { class: `swatch cell-${st}`, 'aria-hidden': 'true' }), T(`compartment.${st}`))));
}

function hubHeader(id, hub, spec) {
  const link = hub?.link;
  const m = hubModeNow(id);
  const age = link?.oldestUnsentAgeS === null || link?.oldestUnsentAgeS === undefined ? '–' : Math.round(link.oldestUnsentAgeS);
  return [
    h('h2', {}, V(spec ? nameOf(spec.name) : id)),
    h('p', { class: 'badges' },
      h('span', { class: ['badge', m.mode === 'emergency' ? 'bad' : 'ok'], id: 'hub-mode', 'data-mode': m.mode }, T(`mode.${m.mode}`)),
      h('span', { class: ['badge', link?.online ? 'ok' : 'bad'], id: 'link-state' }, T(link?.online ? 'link.online' : 'link.offline')),
      h('span', { class: 'badge', id: 'backlog' }, T('link.backlog', { n: link?.outboxDepth ?? '–', age })),
      h('span', { class: 'badge' }, T('link.lastSeen', { time: fmtTime(link?.lastSeen) })),
    ),
  ];
}

function compartmentState(c) {
  if (c.fault && c.fault !== 'none') return 'fault';
  if (c.door === 'open') return 'door_open';
  if (c.occupied) return 'occupied';
  if (c.reservedFor) return 'reserved';
  return 'free';
}

function lockerBanks(hubId, detail, spec) {
  const lockers = (detail?.deviceStates ?? []).filter((d) => d.kind === 'locker');
  if (lockers.length === 0) return [h('p', { class: 'empty' }, T('common.noData'))];
  return lockers.map((l) => {
    const comps = l.telemetry?.compartments ?? [];
    const bankSpec = spec?.lockers?.find((b) => b.id === l.device);
    const relief = new Set((bankSpec?.compartments ?? []).filter((c) => c.reliefStock).map((c) => c.id));
    return h('div', { class: 'locker-bank', 'data-key': `bank-${l.device}` },
      V(deviceName(hubId, l.device), 'h4'),
      comps.length === 0 ? h('p', { class: 'empty' }, T('common.noData')) : h('ul', { class: 'compartments', 'aria-label': t('lockers.grid') }, ...comps.map((c) => {
        const st = compartmentState(c);
        const limit = TEMP_LIMITS[c.tempClass];
        const warm = limit !== undefined && typeof c.tempC === 'number' && c.tempC > limit;
        return h('li', { class: ['cell', `cell-${st}`, warm && 'too-warm', relief.has(c.id) && 'relief-stock'], 'data-compartment': c.id, 'data-key': `${l.device}/${c.id}`, 'data-state': st },
          h('span', { class: 'cell-head' }, V(c.id, 'span', { class: 'cell-id' }), relief.has(c.id) ? h('span', { class: 'cell-relief' }, T('staff.cell.relief')) : null),
          h('span', { class: 'cell-state' }, T(`compartment.${st}`)),
          h('span', { class: 'cell-meta' }, T(`tempClass.${c.tempClass}`), ' ', T(`size.${c.size}`)),
          // Reading and limit in two unbreakable pieces: a narrow cell wraps between them, never inside 「上限」.
          typeof c.tempC === 'number'
            ? h('span', { class: 'cell-temp' },
              h('span', { class: 'nowrap' }, T('staff.cell.temp', { v: fmtNum(c.tempC) })),
              limit === undefined ? null : [' ', h('span', { class: 'nowrap cell-limit' }, T('staff.cell.limit', { limit }))],
              warm ? [' ', h('strong', { class: 'warn nowrap' }, T('lockers.tooWarm'))] : null)
            : null,
          c.fault && c.fault !== 'none' ? h('span', { class: 'cell-fault' }, T(`fault.${c.fault}`)) : null,
        );
      })),
    );
  });
}

/** Issue 12 (3): a compartment locked by wrong pickup codes — staff open it and get a new code, once. */
const newPickupCodes = new Map(); // order id → the new code, shown until the page is left
function lockedCompartment(o, hub) {
  const code = newPickupCodes.get(o.id);
  if (code) return h('p', { class: 'new-code', role: 'status' }, T('orders.newPickupCode'), ' ', V(code, 'strong', { class: 'pickup-code' }), ' ', T('orders.shownOnce'));
  if (!o.compartmentLocked) return null;
  return h('span', { class: 'locked' },
    h('span', { class: 'badge sev-critical' }, T('orders.locked', { n: o.wrongPickupCodes })), ' ',
    mayUnlock(hub) ? h('button', { type: 'button', class: 'danger unlock', disabled: state.busy.has(`unlock-${o.id}`), onclick: () => void unlockCompartment(o.id) }, T('orders.unlock')) : null);
}

function unlockCompartment(id) {
  return whileBusy(`unlock-${id}`, async () => {
    try {
      const r = await actAs('POST', `/api/v1/orders/${encodeURIComponent(id)}/unlock-compartment`, {});
      newPickupCodes.set(id, r.pickupCode);
      state.orders = state.orders.map((o) => (o.id === id ? { ...o, compartmentLocked: false, wrongPickupCodes: 0 } : o));
      flash('orders.unlocked', {}, 'ok');
    } catch (err) {
      const failure = actionFailure(err, 'staff.unlockFailed', 'orders.unlockFailed');
      flash(failure.key, failure.params, 'error');
    }
  });
}

function hubOrders(hub, emergency) {
  const toHub = (o) => o.destination?.type === 'locker' && o.destination.hub === hub;
  // In emergency mode relief and medical orders have their own card above.
  const shown = (o) => !emergency || (o.priority !== 'relief' && o.priority !== 'medical');
  const pickups = state.orders.filter((o) => shown(o) && toHub(o) && o.state === 'in_locker');
  const arriving = state.orders.filter((o) => shown(o) && toHub(o) && ['assigned', 'mission_unknown', 'in_flight'].includes(o.state));
  const held = emergency ? state.orders.filter((o) => o.state === 'held' && (o.originHub === hub || toHub(o))) : [];
  const list = (orders, kind) => orders.length === 0
    ? h('p', { class: 'empty' }, T('orders.none'))
    : h('ul', { class: 'order-list' }, ...orders.map((o) => h('li', { 'data-order-id': o.id, 'data-key': `${kind}-${o.id}` },
      V(o.reference ?? o.id, 'strong'), ' ',
      h('span', { class: 'badge' }, T(`orderState.${o.state}`)), ' ',
      h('span', {}, T(`priority.${o.priority}`)), ' ',
      kind === 'pickup' && o.locker ? h('span', { class: 'order-where' }, T('staff.order.compartment', { locker: deviceName(hub, o.locker.device), compartment: o.locker.compartment })) : null,
      kind === 'pickup' ? lockedCompartment(o, hub) : null,
      kind === 'arriving' && o.drone ? h('span', { class: 'order-where' }, T(o.drone.hub === hub ? 'staff.relief.drone' : 'staff.order.droneFrom', { drone: deviceName(o.drone.hub, o.drone.id), hub: hubName(o.drone.hub) })) : null,
    )));
  return [
    h('h4', {}, T('orders.pickups')), list(pickups, 'pickup'),
    h('h4', {}, T('orders.arriving')), list(arriving, 'arriving'),
    ...(emergency ? [h('h4', {}, T('staff.orders.held')), list(held, 'held')] : []),
    h('h4', {}, T('orders.onRound')), groundRoundOrders(hub),
  ];
}

/**
 * Issue 12 (2): orders on a ground round (貨客混載). The bus has no device of ours, so staff record
 * its steps: loaded at the origin hub, delivered at the destination hub, or failed.
 */
function groundRoundOrders(hub) {
  const dest = (o) => (o.destination?.type === 'locker' ? o.destination.hub : null);
  const orders = state.orders.filter((o) => o.carrier === 'ground' && (o.state === 'assigned' || o.state === 'on_board') && (o.originHub === hub || dest(o) === hub));
  if (orders.length === 0) return h('p', { class: 'empty' }, T('orders.none'));
  const step = (o, name, cls) => h('button', { type: 'button', class: cls, disabled: state.busy.has(`round-${o.id}`), onclick: () => void recordRoundStep(o.id, name) }, T(`orders.round.${name}`));
  return h('ul', { class: 'order-list' }, ...orders.map((o) => {
    const round = (state.region.groundRounds ?? []).find((g) => g.id === o.groundRound?.id);
    return h('li', { 'data-order-id': o.id, 'data-round-order': '', 'data-key': `round-${o.id}` },
      V(o.reference ?? o.id, 'strong'), ' ',
      h('span', { class: 'badge' }, T(`orderState.${o.state}`)), ' ',
      h('span', {}, T(o.originHub === hub ? 'orders.round.toHub' : 'orders.round.fromHub', { hub: hubName(o.originHub === hub ? dest(o) : o.originHub) })), ' ',
      h('span', {}, T('orders.round.departs', { round: round ? nameOf(round.name) : o.groundRound?.id ?? '', at: fmtTime(o.groundRound?.departsAt) })), ' ',
      mayUnlock(hub) && o.state === 'assigned' && o.originHub === hub ? step(o, 'loaded', 'round-step') : null, ' ',
      mayUnlock(hub) && o.state === 'on_board' && dest(o) === hub ? step(o, 'delivered', 'round-step') : null, ' ',
      mayUnlock(hub) ? step(o, 'failed', 'danger round-step') : null);
  }));
}

function recordRoundStep(id, step) {
  return whileBusy(`round-${id}`, async () => {
    try {
      const r = await actAs('POST', `/api/v1/orders/${encodeURIComponent(id)}/ground-round`, { step });
      state.orders = state.orders.map((o) => (o.id === id ? r : o));
      flash(`orders.round.recorded.${step}`, {}, 'ok');
    } catch (err) {
      const failure = actionFailure(err, 'staff.roundFailed', 'orders.round.failedToRecord');
      flash(failure.key, failure.params, 'error');
    }
  });
}

/**
 * Why an unlock or a round step failed, as one sentence of the catalogue per cause (no connection, the order
 * is gone, its state refuses it, not allowed) — an empty 「（）」 or an English code in brackets told staff
 * nothing. `<prefix>.<code>` for the API's codes the catalogue knows, else `fallback` with the code.
 */
function actionFailure(err, prefix, fallback) {
  if (!(err instanceof ApiError)) return { key: `${prefix}.network` };
  if (err.status === 403) return { key: `${prefix}.forbidden` };
  const key = `${prefix}.${err.code}`;
  return typeof state.catalogue[key] === 'string' ? { key } : { key: fallback, params: { code: err.code } };
}

function dronesOnPad(hubId, detail) {
  const drones = (detail?.deviceStates ?? []).filter((d) => d.kind === 'drone');
  if (drones.length === 0) return [h('p', { class: 'empty' }, T('drones.none'))];
  return [h('table', { class: 'table drone-table' },
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, T('drones.id')), h('th', { scope: 'col' }, T('drones.state')), h('th', { scope: 'col' }, T('drones.battery')))),
    h('tbody', {}, ...drones.map((d) => {
      const tm = d.telemetry;
      return h('tr', { 'data-key': `drone-${d.device}`, 'data-device': d.device },
        h('th', { scope: 'row' }, V(deviceName(hubId, d.device))),
        h('td', {}, T(tm ? `flightState.${tm.flightState}` : 'common.noData')),
        h('td', {}, tm ? h('span', { class: tm.batteryPct < 30 ? 'warn' : '' }, T('unit.percent', { v: Math.round(tm.batteryPct) })) : T('common.noData')),
      );
    })),
  )];
}

function sensors(hubId, detail, spec) {
  const list = (detail?.deviceStates ?? []).filter((d) => d.kind === 'sensor');
  if (list.length === 0) return [h('p', { class: 'empty' }, T('common.noData'))];
  // The hub's flight limits as the alarm rules apply them (served with the region): wind and gusts each
  // against their own limit (gusts were compared with the wind limit, flagging 5.5 m/s gusts under a 6 m/s limit).
  const limit = spec?.windLimitMps;
  const gustLimit = spec?.gustLimitMps ?? limit;
  return list.map((sd) => {
    const m = sd.telemetry;
    const title = list.length > 1 ? V(deviceName(hubId, sd.device), 'h4') : null;
    if (!m) return h('div', { 'data-key': `sensor-${sd.device}` }, title, h('p', { class: 'empty' }, T('common.noData')));
    const over = m.windSpeedMps >= limit || m.windGustMps >= gustLimit;
    return h('div', { 'data-key': `sensor-${sd.device}` }, title, h('dl', { class: 'sensor' },
      h('dt', {}, T('sensors.wind')),
      h('dd', { class: over ? 'warn' : '' },
        h('span', { class: 'wind-reading' }, T('staff.sensors.windVsLimits', { v: fmtNum(m.windSpeedMps), gust: fmtNum(m.windGustMps), limit, gustLimit })), ' ',
        h('meter', { min: 0, max: limit * 2, low: limit * 0.8, high: limit, optimum: 0, value: Math.min(m.windSpeedMps, limit * 2), 'aria-label': t('sensors.wind') }),
        over ? h('strong', {}, ' ', T('sensors.overLimit')) : null),
      h('dt', {}, T('sensors.rain')), h('dd', {}, T('unit.mmh', { v: fmtNum(m.rainMmPerH) })),
      h('dt', {}, T('sensors.airTemp')), h('dd', {}, T('unit.celsius', { v: fmtNum(m.airTempC) })),
      h('dt', {}, T('sensors.power')),
      h('dd', { class: ['meta-items', !m.gridPowerUp && 'warn'] }, h('span', {}, T(m.gridPowerUp ? 'sensors.gridUp' : 'sensors.gridDown')), h('span', {}, T('sensors.backup', { v: Math.round(m.backupBatteryPct) }))),
      h('dt', {}, T('sensors.linkQuality')), h('dd', {}, T('unit.percent', { v: Math.round(m.linkQualityPct) })),
      h('dt', {}, T('sensors.updated')), h('dd', {}, T('common.text', { v: fmtTime(sd.lastReceivedAt) })),
    ));
  });
}
