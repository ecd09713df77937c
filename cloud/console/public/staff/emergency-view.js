// Emergency mode on the staff screen (issue 13, item 3): a different screen, not a red pill. A banner
// with the coordinator's reason, since when and what to do; relief and medical flights arriving and
// leaving first; the relief-stock compartments; the shelters and isolated settlements this hub serves.
// Leaving emergency mode is just as visible: a "back to normal" banner for a while.
import { h, T, V } from '../lib/dom.js';
import { fmtNum, fmtTime, t } from '../lib/i18n.js';
import { deviceName, hubName, hubSpec, nameOf, requestRender, state } from '../lib/state.js';

/** How long the "back to normal" banner stays after emergency mode ends (unless staff dismiss it). */
const BACK_TO_NORMAL_SHOWN_MS = 60 * 60_000;
/** Back-to-normal banners staff dismissed: `<hub>@<since>` (screen-local). */
const dismissed = new Set();

/** Orders still on their way (a relief flight staff must hand over or load). */
const UNDER_WAY = ['pending', 'held', 'assigned', 'mission_unknown', 'in_flight', 'on_board'];
/** Sooner first: in the air, then ready to go, then waiting. */
const STATE_ORDER = ['in_flight', 'on_board', 'mission_unknown', 'assigned', 'pending', 'held', 'in_locker'];

/**
 * The hub's mode as its staff should act on it: the coordinators' desired mode for it, with since when
 * and why (mode API `switched`), or the hub's own local switch into emergency (made at the hub while cut
 * off), which its staff follow too.
 */
export function hubModeNow(hubId) {
  const entry = state.mode?.hubs?.find((x) => x.hub === hubId);
  const ack = (state.hubs.get(hubId) ?? state.hubDetail.get(hubId))?.mode ?? null;
  if (ack?.source === 'local' && ack.mode === 'emergency' && entry?.desired !== 'emergency') {
    return { mode: 'emergency', since: ack.at, reason: ack.reason ?? '', previous: null, local: true, status: entry?.status ?? null };
  }
  if (entry) {
    const sw = entry.switched;
    return { mode: entry.desired, since: sw?.since ?? null, reason: sw?.reason ?? '', previous: sw?.previous ?? null, local: false, status: entry.status };
  }
  // The mode feed has not arrived yet: what the hub last reported.
  return { mode: ack?.mode ?? 'normal', since: ack?.at ?? null, reason: ack?.reason ?? '', previous: null, local: ack?.source === 'local', status: null };
}

/** Relief and medical orders from or to the hub that are still under way (or have just arrived in its lockers). */
export function reliefOrders(hubId) {
  const toHub = (o) => o.destination?.type === 'locker' && o.destination.hub === hubId;
  const relevant = (o) => (o.priority === 'relief' || o.priority === 'medical')
    && ((toHub(o) && (UNDER_WAY.includes(o.state) || o.state === 'in_locker')) || (o.originHub === hubId && UNDER_WAY.includes(o.state)));
  const rank = (o) => STATE_ORDER.indexOf(o.state);
  return state.orders.filter(relevant).sort((a, b) => rank(a) - rank(b) || (a.priority === b.priority ? 0 : a.priority === 'medical' ? -1 : 1));
}

/** Relief-stock compartments of the hub (region file `reliefStock`), with their live state when known. */
export function reliefStock(hubId) {
  const spec = hubSpec(hubId);
  const detail = state.hubDetail.get(hubId);
  const out = [];
  for (const bank of spec?.lockers ?? []) {
    const live = (detail?.deviceStates ?? []).find((d) => d.kind === 'locker' && d.device === bank.id)?.telemetry?.compartments ?? [];
    for (const c of bank.compartments) {
      if (c.reliefStock) out.push({ bank: bank.id, ...c, live: live.find((x) => x.id === c.id) ?? null });
    }
  }
  return out;
}

/** Landing sites (shelters, isolated settlements) with a relief route from the hub. */
export function servedSites(hubId) {
  const routes = (state.region?.reliefRoutes ?? []).filter((r) => r.fromHub === hubId);
  return routes.map((r) => ({ route: r, site: (state.region.landingSites ?? []).find((s) => s.id === r.toSite) })).filter((x) => x.site);
}

export function emergencyBanner(hubId, now) {
  const m = hubModeNow(hubId);
  const stock = reliefStock(hubId);
  const sites = servedSites(hubId);
  const todo = [
    T('staff.emergency.todo.flights'),
    stock.length > 0 ? T('staff.emergency.todo.stock', { n: stock.length }) : null,
    sites.length > 0 ? T('staff.emergency.todo.sites', { n: sites.length }) : null,
    T('staff.emergency.todo.held'),
    T('staff.emergency.todo.alarms', { ack: t('alarms.ack') }),
  ].filter(Boolean);
  // The alert (what a screen reader says at once) is the title and the reason only: text that stays put. The
  // time since — 「…分前」, a new text every minute — and the note that waits for the hub sit outside it, or a
  // screen reader would read the whole banner out again each minute.
  return h('section', { class: 'mode-banner emergency-banner', id: 'emergency-banner', 'aria-labelledby': 'emergency-title' },
    h('div', { class: 'banner-top' }, h('div', { class: 'banner-alert', id: 'emergency-alert', role: 'alert' },
      h('h3', { id: 'emergency-title' }, h('span', { class: 'banner-icon', 'aria-hidden': 'true' }), T('staff.emergency.title', { hub: hubName(hubId) })),
      h('div', { class: 'banner-reason' },
        h('span', { class: 'banner-label' }, T(m.local ? 'staff.emergency.reasonLocal' : 'staff.emergency.reason')),
        m.reason ? V(m.reason, 'q', { id: 'emergency-reason' }) : h('span', { id: 'emergency-reason' }, T('staff.emergency.noReason')))),
    h('p', { class: 'banner-since', id: 'emergency-since' },
      m.since ? T('staff.emergency.since', { time: fmtTime(m.since), ago: agoText(m.since, now) }) : T('staff.emergency.sinceUnknown'))),
    m.status === 'pending' || m.status === 'timed_out' ? h('p', { class: 'banner-note' }, T('staff.emergency.notApplied')) : null,
    h('h4', {}, T('staff.emergency.todoTitle')),
    h('ol', { class: 'todo', id: 'emergency-todo' }, ...todo.map((item, i) => h('li', { 'data-key': `todo-${i}` }, item))),
  );
}

/** Whether the hub came back from emergency mode within the last hour and its staff have not dismissed the banner. */
export function backToNormalShown(hubId, now) {
  const m = hubModeNow(hubId);
  if (m.mode !== 'normal' || m.previous !== 'emergency' || !m.since) return false;
  return !dismissed.has(`${hubId}@${m.since}`) && now - Date.parse(m.since) <= BACK_TO_NORMAL_SHOWN_MS;
}

/** The "back to normal" banner: for an hour after emergency mode ended, until dismissed. */
export function backToNormalBanner(hubId, now) {
  if (!backToNormalShown(hubId, now)) return null;
  const m = hubModeNow(hubId);
  const key = `${hubId}@${m.since}`;
  // As the emergency banner: the live region holds only text that stays put, not the 「…分前」 line.
  return h('section', { class: 'mode-banner normal-banner', id: 'normal-banner', 'aria-labelledby': 'normal-title' },
    h('div', { class: 'banner-top' }, h('div', { class: 'banner-alert', id: 'normal-status', role: 'status' },
      h('h3', { id: 'normal-title' }, h('span', { class: 'banner-icon', 'aria-hidden': 'true' }), T('staff.normal.title', { hub: hubName(hubId) })),
      m.reason ? h('div', { class: 'banner-reason' }, h('span', { class: 'banner-label' }, T('staff.emergency.reason')), V(m.reason, 'q', { id: 'normal-reason' })) : null),
    h('p', { class: 'banner-since', id: 'normal-since' }, T('staff.normal.since', { time: fmtTime(m.since), ago: agoText(m.since, now) }))),
    h('p', {}, T('staff.normal.whatNow')),
    h('button', {
      type: 'button', class: 'secondary', id: 'normal-dismiss',
      onclick: () => {
        dismissed.add(key);
        requestRender();
      },
    }, T('staff.normal.dismiss')),
  );
}

/** "12 min ago" / "3 h 5 min ago" from an ISO time. */
function agoText(iso, now) {
  const min = Math.max(0, Math.floor((now - Date.parse(iso)) / 60_000));
  if (min < 1) return t('staff.ago.justNow');
  if (min < 60) return t('staff.ago.min', { m: min });
  return t('staff.ago.hMin', { h: Math.floor(min / 60), m: min % 60 });
}

/** Where an order goes, in words: a landing site's or a hub's name. */
function destinationName(o) {
  if (o.destination?.type === 'site') {
    const site = (state.region?.landingSites ?? []).find((s) => s.id === o.destination.siteId);
    return site ? nameOf(site.name) : o.destination.siteId;
  }
  return hubName(o.destination?.hub);
}

function flightItem(o, hubId, direction) {
  const drone = o.drone ? deviceName(o.drone.hub, o.drone.id) : null;
  const droneWhere = o.drone && o.drone.hub !== hubId ? hubName(o.drone.hub) : null;
  return h('li', { class: ['flight', `prio-${o.priority}`], 'data-order-id': o.id, 'data-key': `${direction}-${o.id}`, 'data-priority': o.priority },
    h('span', { class: ['prio', `prio-${o.priority}`] }, T(`priority.${o.priority}`)),
    h('span', { class: 'flight-main' },
      V(o.reference ?? o.id, 'strong', { class: 'flight-ref' }),
      h('span', { class: 'flight-route' }, direction === 'leaving'
        ? T('staff.relief.to', { place: destinationName(o) })
        : T('staff.relief.from', { place: hubName(o.originHub) }))),
    h('span', { class: 'badge flight-state' }, T(`orderState.${o.state}`)),
    h('span', { class: 'flight-meta meta-items' },
      h('span', {}, T('staff.relief.weight', { kg: fmtNum(o.weightKg) })),
      drone ? h('span', {}, T('staff.relief.drone', { drone }), droneWhere ? [' ', T('staff.relief.droneAt', { hub: droneWhere })] : null) : null,
      o.state === 'in_locker' && o.locker ? h('span', {}, T('staff.relief.inLocker', { locker: deviceName(o.destination.hub, o.locker.device), compartment: o.locker.compartment })) : null),
  );
}

export function reliefFlights(hubId) {
  const orders = reliefOrders(hubId);
  const arriving = orders.filter((o) => o.destination?.type === 'locker' && o.destination.hub === hubId);
  const leaving = orders.filter((o) => o.originHub === hubId && !arriving.includes(o));
  const list = (items, direction) => items.length === 0
    ? h('p', { class: 'empty' }, T(`staff.relief.none.${direction}`))
    : h('ul', { class: 'flight-list', id: `relief-${direction}` }, ...items.map((o) => flightItem(o, hubId, direction)));
  return h('section', { class: 'card relief-card', id: 'relief-flights', 'aria-labelledby': 'relief-h' },
    h('h3', { id: 'relief-h' }, T('staff.relief.title')),
    h('div', { class: 'relief-columns' },
      h('div', {}, h('h4', {}, T('staff.relief.arriving', { n: arriving.length })), list(arriving, 'arriving')),
      h('div', {}, h('h4', {}, T('staff.relief.leaving', { n: leaving.length })), list(leaving, 'leaving'))));
}

export function reliefStockCard(hubId, compartmentState) {
  const stock = reliefStock(hubId);
  return h('section', { class: 'card stock-card', id: 'relief-stock', 'aria-labelledby': 'stock-h' },
    h('h3', { id: 'stock-h' }, T('staff.stock.title')),
    stock.length === 0
      ? h('p', { class: 'empty' }, T('staff.stock.none'))
      : [
        h('p', { class: 'card-note' }, T('staff.stock.note')),
        h('ul', { class: 'stock-list' }, ...stock.map((c) => {
          const st = c.live ? compartmentState(c.live) : null;
          return h('li', { class: ['stock', st && `cell-${st}`], 'data-key': `stock-${c.bank}/${c.id}`, 'data-compartment': c.id },
            h('span', { class: 'stock-where' }, V(deviceName(hubId, c.bank)), ' ', V(c.id, 'strong')),
            h('span', { class: 'stock-state' }, T(st ? `compartment.${st}` : 'common.noData')),
            h('span', { class: 'stock-meta meta-items' }, h('span', {}, T(`tempClass.${c.tempClass}`)), h('span', {}, T(`size.${c.size}`))));
        })),
      ]);
}

export function servedSitesCard(hubId) {
  const sites = servedSites(hubId);
  const active = reliefOrders(hubId).filter((o) => o.destination?.type === 'site');
  return h('section', { class: 'card sites-card', id: 'served-sites', 'aria-labelledby': 'sites-h' },
    h('h3', { id: 'sites-h' }, T('staff.sites.title')),
    sites.length === 0
      ? h('p', { class: 'empty' }, T('staff.sites.none'))
      : h('ul', { class: 'site-list' }, ...sites.map(({ route, site }) => {
        const flights = active.filter((o) => o.destination.siteId === site.id).length;
        return h('li', { class: ['site', `site-${site.kind}`], 'data-key': `site-${site.id}`, 'data-site': site.id },
          h('span', { class: ['site-kind', `kind-${site.kind}`] }, T(`staff.sites.kind.${site.kind}`)),
          V(nameOf(site.name), 'strong', { class: 'site-name' }),
          h('span', { class: 'site-meta meta-items' },
            // The region file names municipalities in Japanese only.
            site.municipality && state.lang === 'ja' ? V(site.municipality) : null,
            h('span', {}, T('staff.sites.maxPayload', { kg: fmtNum(route.maxPayloadKg, 0) })),
            flights > 0 ? h('span', {}, T('staff.sites.flights', { n: flights })) : null));
      })));
}
