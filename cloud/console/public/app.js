// Consoles for hub staff and disaster coordinators (issue 5). Plain ES module, no build step.
//
// Rules this file keeps:
// - Every visible string comes from the message catalogues through `t()` (i18n/ja.json, i18n/en.json);
//   values from the API (names, details, reasons, ids, numbers) are wrapped by `V()` and marked `data-v`.
//   `?lang=keys` shows catalogue keys instead of text, so a test can find any text that bypasses `t()`.
// - The DOM is built with createElement/textContent only — never innerHTML — so text typed by people or
//   sent by devices is always shown literally.
// - Times are shown in Japan time (Asia/Tokyo), whatever the tablet's own time zone.

const LANGS = ['ja', 'en'];
const LANG_KEY = 'chiiki.console.lang';
/** Set while this browser has a session: only then is `/auth/me` asked at start (a 401 would be a console error). */
const SIGNED_IN_KEY = 'chiiki.console.signedIn';
const SVG_NS = 'http://www.w3.org/2000/svg';
/** Temperature class limits (DOMAIN: chilled ≤ 10 °C, frozen ≤ −15 °C). */
const TEMP_LIMITS = { chilled: 10, frozen: -15 };

const state = {
  lang: 'ja',
  catalogue: {},
  account: null,
  region: null,
  hubs: new Map(), // id → summary (GET /api/v1/hubs)
  hubDetail: new Map(), // id → GET /api/v1/hubs/:id
  alarms: new Map(), // id → alarm (active only)
  orders: [],
  mode: null,
  proposals: [],
  selectedHub: null, // staff: the hub shown
  selectedForSwitch: new Set(), // coordinator: hubs picked on the map or in the form
  live: 'connecting',
  events: null,
  message: null, // { key, params, kind } shown in the status area
};

// ---------- i18n ----------

function t(key, params = {}) {
  if (state.lang === 'keys') return `⟦${key}⟧`;
  const s = state.catalogue[key];
  if (typeof s !== 'string') return `⟦${key}⟧`;
  return s.replace(/\{(\w+)\}/g, (_, name) => (params[name] === undefined ? `{${name}}` : String(params[name])));
}

async function loadCatalogue(lang) {
  if (lang === 'keys') return {};
  const r = await fetch(`/console/i18n/${lang}.json`, { credentials: 'same-origin' });
  return r.json();
}

function initialLang() {
  const q = new URLSearchParams(location.search).get('lang');
  if (q === 'keys' || LANGS.includes(q)) return q;
  const saved = localStorage.getItem(LANG_KEY);
  return LANGS.includes(saved) ? saved : 'ja';
}

async function setLang(lang) {
  state.catalogue = await loadCatalogue(lang);
  state.lang = lang;
  if (LANGS.includes(lang)) localStorage.setItem(LANG_KEY, lang);
  document.documentElement.lang = lang === 'en' ? 'en' : 'ja';
  render();
}

const nameOf = (n) => (n ? (state.lang === 'en' ? n.en : n.ja) : '');

function fmtTime(iso) {
  if (!iso) return t('common.never');
  const d = new Date(iso);
  const f = new Intl.DateTimeFormat(state.lang === 'en' ? 'en-GB' : 'ja-JP', {
    timeZone: 'Asia/Tokyo', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
  return t('time.jst', { time: f.format(d) });
}

const fmtNum = (n, digits = 1) => (typeof n === 'number' ? n.toFixed(digits) : '–');

// ---------- DOM helpers (no innerHTML anywhere) ----------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.setAttribute('class', Array.isArray(v) ? v.filter(Boolean).join(' ') : v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

/** Text from the catalogue. */
const T = (key, params) => document.createTextNode(t(key, params));

/** A value from the API or a device, shown literally. */
function V(value, tag = 'span', attrs = {}) {
  const el = h(tag, { ...attrs, 'data-v': '' });
  el.textContent = value === null || value === undefined ? '' : String(value);
  return el;
}

/** Replaces a container's children, keeping keyboard focus on the "same" control if it is re-created. */
function replace(container, ...children) {
  const active = document.activeElement;
  const key = active && container.contains(active) ? active.getAttribute('data-focus') : null;
  container.replaceChildren(...children.flat().filter(Boolean));
  if (key) container.querySelector(`[data-focus="${CSS.escape(key)}"]`)?.focus();
}

// ---------- API ----------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, url, body) {
  const r = await fetch(url, {
    method, credentials: 'same-origin',
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!r.ok) throw new ApiError(r.status, json?.error?.code ?? 'http', json?.error?.message ?? `HTTP ${r.status}`);
  return json;
}

/**
 * A mutating call that names the person acting. With accounts the server takes the account from the
 * session; a server without accounts still wants `by` — then the call is repeated with it.
 */
async function actAs(method, url, body) {
  try {
    return await api(method, url, body);
  } catch (err) {
    if (err instanceof ApiError && err.status === 400 && err.code === 'validation' && /\bby\b/.test(err.message)) {
      return api(method, url, { ...body, by: state.account?.username ?? 'console' });
    }
    throw err;
  }
}

// ---------- session and routing ----------

const main = () => document.getElementById('main');

async function boot() {
  state.lang = initialLang();
  state.catalogue = await loadCatalogue(state.lang);
  document.documentElement.lang = state.lang === 'en' ? 'en' : 'ja';
  document.getElementById('lang-toggle').addEventListener('click', () => void setLang(state.lang === 'en' ? 'ja' : 'en'));
  document.getElementById('logout').addEventListener('click', () => void logout());
  if (localStorage.getItem(SIGNED_IN_KEY)) {
    try {
      const me = await api('GET', '/api/v1/auth/me');
      return await enter(me.account);
    } catch {
      localStorage.removeItem(SIGNED_IN_KEY);
    }
  }
  state.account = null;
  render();
}

async function login(username, password) {
  const r = await api('POST', '/api/v1/auth/login', { username, password });
  localStorage.setItem(SIGNED_IN_KEY, '1');
  await enter(r.account);
}

async function logout() {
  try {
    await api('POST', '/api/v1/auth/logout', {});
  } catch {
    // the session is gone either way
  }
  localStorage.removeItem(SIGNED_IN_KEY);
  state.events?.close();
  state.events = null;
  state.account = null;
  state.hubs.clear();
  state.hubDetail.clear();
  state.alarms.clear();
  history.replaceState(null, '', '/');
  render();
}

const isStaff = () => state.account?.role === 'staff';
const mayRead = (hub) => !isStaff() || state.account.hubs.includes(hub);
const maySwitchModes = () => ['coordinator', 'admin'].includes(state.account?.role);
const mayUnlock = (hub) => ['coordinator', 'admin'].includes(state.account?.role) || (isStaff() && state.account.hubs.includes(hub));

async function enter(account) {
  state.account = account;
  history.replaceState(null, '', isStaff() ? '/console/staff' : '/console/coordinator');
  state.region = await api('GET', '/api/v1/region');
  if (isStaff()) state.selectedHub = account.hubs[0] ?? null;
  const [hubs, alarms, orders] = await Promise.all([
    api('GET', '/api/v1/hubs'),
    api('GET', '/api/v1/alarms?state=active&limit=500'),
    api('GET', '/api/v1/orders?limit=500'),
  ]);
  applyHubs(hubs);
  for (const a of alarms.alarms) if (mayRead(a.hub)) state.alarms.set(a.id, a);
  state.orders = orders.orders;
  if (isStaff()) {
    await Promise.all(account.hubs.map(async (id) => {
      try {
        state.hubDetail.set(id, await api('GET', `/api/v1/hubs/${encodeURIComponent(id)}`));
      } catch {
        // shown as "no data" until the live feed brings it
      }
    }));
  } else {
    try {
      state.mode = await api('GET', `/api/v1/regions/${encodeURIComponent(state.region.id)}/mode`);
      state.proposals = (await api('GET', `/api/v1/regions/${encodeURIComponent(state.region.id)}/mode-proposals?state=open&limit=50`)).proposals;
    } catch {
      // the live feed fills these in
    }
  }
  render();
  connectLive();
}

function applyHubs(body) {
  state.hubs.clear();
  for (const hub of body.hubs) if (mayRead(hub.id)) state.hubs.set(hub.id, hub);
}

function connectLive() {
  state.events?.close();
  const detail = isStaff() ? `?hubs=${encodeURIComponent(state.account.hubs.join(','))}` : '';
  const es = new EventSource(`/api/v1/events${detail}`);
  state.events = es;
  const on = (name, fn) => es.addEventListener(name, (e) => {
    fn(JSON.parse(e.data));
    renderData();
  });
  es.onopen = () => setLive('live');
  es.onerror = () => setLive('reconnecting');
  on('hubs', applyHubs);
  on('hub', (d) => state.hubDetail.set(d.id, d));
  on('orders', (d) => (state.orders = d.orders));
  on('mode', (d) => (state.mode = d));
  on('proposals', (d) => (state.proposals = d.proposals));
  on('alarm', ({ alarm }) => {
    if (!mayRead(alarm.hub)) return;
    if (alarm.state === 'cleared') state.alarms.delete(alarm.id);
    else state.alarms.set(alarm.id, alarm);
  });
  es.addEventListener('session', () => {
    es.close();
    void logout();
  });
}

function setLive(s) {
  state.live = s;
  renderChrome();
}

// ---------- rendering ----------

function render() {
  document.title = t('app.title');
  renderChrome();
  const m = main();
  if (!state.account) return replace(m, loginView());
  if (isStaff()) replace(m, staffView());
  else replace(m, coordinatorView());
  renderData();
}

function renderChrome() {
  document.getElementById('app-title').textContent = t('app.title');
  document.getElementById('lang-toggle').textContent = t('lang.toggle');
  document.getElementById('lang-toggle').setAttribute('aria-label', t('lang.toggleLabel'));
  const logoutBtn = document.getElementById('logout');
  logoutBtn.textContent = t('auth.logout');
  logoutBtn.hidden = !state.account;
  const who = document.getElementById('who');
  replace(who, state.account ? [V(state.account.displayName ?? state.account.username), ' ', T(`role.${state.account.role}`)] : []);
  const live = document.getElementById('live-state');
  live.textContent = state.account ? t(`live.${state.live}`) : '';
  live.className = `live live-${state.live}`;
}

function renderData() {
  if (!state.account) return;
  if (isStaff()) renderStaffData();
  else renderCoordinatorData();
}

function loginView() {
  const error = h('p', { class: 'error', role: 'alert', id: 'login-error' });
  const form = h('form', { class: 'card login', id: 'login-form', 'aria-labelledby': 'login-title' },
    h('h2', { id: 'login-title' }, T('auth.title')),
    h('label', { for: 'username' }, T('auth.username')),
    h('input', { id: 'username', name: 'username', autocomplete: 'username', required: true }),
    h('label', { for: 'password' }, T('auth.password')),
    h('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true }),
    h('button', { type: 'submit', class: 'primary' }, T('auth.submit')),
    error,
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    error.textContent = '';
    const fd = new FormData(form);
    login(String(fd.get('username')), String(fd.get('password'))).catch((err) => {
      error.textContent = t(err instanceof ApiError && err.status === 401 ? 'auth.invalid' : 'auth.failed');
    });
  });
  return form;
}

// ---------- hub staff console ----------

function staffView() {
  const tabs = h('nav', { class: 'hub-tabs', id: 'hub-tabs', 'aria-label': t('staff.hubs') });
  for (const id of state.account.hubs) {
    const hub = state.region.hubs.find((x) => x.id === id);
    tabs.append(h('button', {
      type: 'button', class: 'tab', 'data-hub': id, 'data-focus': `tab-${id}`, 'aria-pressed': String(id === state.selectedHub),
      onclick: () => {
        state.selectedHub = id;
        render();
      },
    }, V(hub ? nameOf(hub.name) : id)));
  }
  return h('div', { class: 'staff', id: 'staff-console' },
    h('h2', { class: 'visually-hidden' }, T('staff.title')),
    tabs,
    h('section', { id: 'hub-header', class: 'hub-header', 'aria-live': 'polite' }),
    h('div', { class: 'staff-grid' },
      h('section', { class: 'card alarms-card', 'aria-labelledby': 'alarms-h' }, h('h3', { id: 'alarms-h' }, T('alarms.title')), h('div', { id: 'staff-alarms' })),
      h('section', { class: 'card lockers-card', 'aria-labelledby': 'lockers-h' }, h('h3', { id: 'lockers-h' }, T('lockers.title')), h('div', { id: 'staff-lockers' }), compartmentLegend()),
      h('section', { class: 'card', 'aria-labelledby': 'orders-h' }, h('h3', { id: 'orders-h' }, T('orders.hubTitle')), h('div', { id: 'staff-orders' })),
      h('section', { class: 'card', 'aria-labelledby': 'drones-h' }, h('h3', { id: 'drones-h' }, T('drones.title')), h('div', { id: 'staff-drones' })),
      h('section', { class: 'card', 'aria-labelledby': 'sensors-h' }, h('h3', { id: 'sensors-h' }, T('sensors.title')), h('div', { id: 'staff-sensors' })),
    ),
  );
}

function compartmentLegend() {
  return h('ul', { class: 'legend' }, ...['free', 'reserved', 'occupied', 'door_open', 'fault'].map((st) =>
    h('li', {}, h('span', { class: `swatch cell-${st}`, 'aria-hidden': 'true' }), T(`compartment.${st}`))));
}

function renderStaffData() {
  const id = state.selectedHub;
  const header = document.getElementById('hub-header');
  if (!header || !id) return;
  const hub = state.hubs.get(id) ?? state.hubDetail.get(id);
  const spec = state.region.hubs.find((x) => x.id === id);
  replace(header, hubHeader(id, hub, spec));
  replace(document.getElementById('staff-alarms'), alarmList([...state.alarms.values()].filter((a) => a.hub === id), false));
  const detail = state.hubDetail.get(id);
  replace(document.getElementById('staff-lockers'), lockerBanks(detail));
  replace(document.getElementById('staff-orders'), hubOrders(id));
  replace(document.getElementById('staff-drones'), dronesOnPad(detail));
  replace(document.getElementById('staff-sensors'), sensors(detail, spec));
}

function hubHeader(id, hub, spec) {
  const link = hub?.link;
  const modeNow = hub?.mode?.mode ?? null;
  return [
    h('h2', {}, V(spec ? nameOf(spec.name) : id)),
    h('p', { class: 'badges' },
      h('span', { class: ['badge', link?.online ? 'ok' : 'bad'], id: 'link-state' }, T(link?.online ? 'link.online' : 'link.offline')),
      h('span', { class: 'badge', id: 'backlog' }, T('link.backlog', { n: link?.outboxDepth ?? '–', age: link?.oldestUnsentAgeS === null || link?.oldestUnsentAgeS === undefined ? '–' : Math.round(link.oldestUnsentAgeS) })),
      h('span', { class: 'badge' }, T('link.lastSeen', { time: fmtTime(link?.lastSeen) })),
      h('span', { class: ['badge', modeNow === 'emergency' ? 'bad' : 'ok'], id: 'hub-mode' }, T(modeNow ? `mode.${modeNow}` : 'mode.unknown')),
    ),
  ];
}

function alarmList(alarms, withHub) {
  if (alarms.length === 0) return [h('p', { class: 'empty' }, T('alarms.none'))];
  alarms.sort((a, b) => (a.severity === b.severity ? b.raisedAt.localeCompare(a.raisedAt) : a.severity === 'critical' ? -1 : 1));
  return [h('ul', { class: 'alarm-list' }, ...alarms.map((a) => {
    const hubSpec = state.region.hubs.find((x) => x.id === a.hub);
    const where = [a.device, a.compartment].filter(Boolean).join(' / ');
    return h('li', { class: ['alarm', `sev-${a.severity}`, `st-${a.state}`], 'data-alarm-id': a.id },
      h('div', { class: 'alarm-head' },
        h('span', { class: `badge sev-${a.severity}` }, T(`severity.${a.severity}`)),
        h('strong', {}, T(`alarmKind.${a.kind}`)),
        withHub ? V(hubSpec ? nameOf(hubSpec.name) : a.hub, 'span', { class: 'alarm-hub' }) : null,
        where ? V(where, 'span', { class: 'alarm-where' }) : null,
      ),
      V(a.detail, 'p', { class: 'alarm-detail' }),
      h('p', { class: 'alarm-meta' }, T('alarms.raisedAt', { time: fmtTime(a.raisedAt) }), ' ',
        a.count > 1 ? T('alarms.count', { n: a.count }) : null),
      a.state === 'open'
        ? h('button', { type: 'button', class: 'primary ack', 'data-focus': `ack-${a.id}`, onclick: (e) => void acknowledge(a, e.currentTarget) }, T('alarms.ack'))
        : h('p', { class: 'acked' }, T('alarms.ackedBy', { time: fmtTime(a.acknowledgedAt) }), ' ', V(a.acknowledgedBy)),
    );
  }))];
}

async function acknowledge(alarm, button) {
  button.disabled = true;
  try {
    const updated = await actAs('POST', `/api/v1/alarms/${encodeURIComponent(alarm.id)}/ack`, {});
    if (updated.state === 'cleared') state.alarms.delete(updated.id);
    else state.alarms.set(updated.id, updated);
    flash('alarms.acknowledged', {}, 'ok');
  } catch (err) {
    button.disabled = false;
    flash('alarms.ackFailed', { code: err.code ?? '' }, 'error');
  }
  renderData();
}

function compartmentState(c) {
  if (c.fault && c.fault !== 'none') return 'fault';
  if (c.door === 'open') return 'door_open';
  if (c.occupied) return 'occupied';
  if (c.reservedFor) return 'reserved';
  return 'free';
}

function lockerBanks(detail) {
  const lockers = (detail?.deviceStates ?? []).filter((d) => d.kind === 'locker');
  if (lockers.length === 0) return [h('p', { class: 'empty' }, T('common.noData'))];
  return lockers.map((l) => {
    const comps = l.telemetry?.compartments ?? [];
    return h('div', { class: 'locker-bank' },
      h('h4', {}, T('lockers.bank'), ' ', V(l.device)),
      comps.length === 0 ? h('p', { class: 'empty' }, T('common.noData')) : h('ul', { class: 'compartments', 'aria-label': t('lockers.grid') }, ...comps.map((c) => {
        const st = compartmentState(c);
        const limit = TEMP_LIMITS[c.tempClass];
        const warm = limit !== undefined && typeof c.tempC === 'number' && c.tempC > limit;
        return h('li', { class: ['cell', `cell-${st}`, warm && 'too-warm'], 'data-compartment': c.id, 'data-state': st },
          V(c.id, 'span', { class: 'cell-id' }),
          h('span', { class: 'cell-state' }, T(`compartment.${st}`)),
          h('span', { class: 'cell-meta' }, T(`tempClass.${c.tempClass}`), ' ', T(`size.${c.size}`)),
          typeof c.tempC === 'number'
            ? h('span', { class: 'cell-temp' }, T(limit === undefined ? 'unit.celsius' : 'lockers.tempVsLimit', { v: fmtNum(c.tempC), limit }),
              warm ? h('strong', { class: 'warn' }, ' ', T('lockers.tooWarm')) : null)
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
    mayUnlock(hub) ? h('button', { type: 'button', class: 'danger unlock', 'data-focus': `unlock-${o.id}`, onclick: (e) => void unlockCompartment(o, e.currentTarget) }, T('orders.unlock')) : null);
}

async function unlockCompartment(order, button) {
  button.disabled = true;
  try {
    const r = await actAs('POST', `/api/v1/orders/${encodeURIComponent(order.id)}/unlock-compartment`, {});
    newPickupCodes.set(order.id, r.pickupCode);
    state.orders = state.orders.map((o) => (o.id === order.id ? { ...o, compartmentLocked: false, wrongPickupCodes: 0 } : o));
    flash('orders.unlocked', {}, 'ok');
  } catch (err) {
    button.disabled = false;
    flash('orders.unlockFailed', { code: err.code ?? '' }, 'error');
  }
  renderData();
}

function hubOrders(hub) {
  const toHub = (o) => o.destination?.type === 'locker' && o.destination.hub === hub;
  const pickups = state.orders.filter((o) => toHub(o) && o.state === 'in_locker');
  const arriving = state.orders.filter((o) => toHub(o) && ['assigned', 'mission_unknown', 'in_flight'].includes(o.state));
  const list = (orders, kind) => orders.length === 0
    ? h('p', { class: 'empty' }, T('orders.none'))
    : h('ul', { class: 'order-list' }, ...orders.map((o) => h('li', { 'data-order-id': o.id },
      V(o.reference ?? o.id, 'strong'), ' ',
      h('span', { class: 'badge' }, T(`orderState.${o.state}`)), ' ',
      h('span', {}, T(`priority.${o.priority}`)), ' ',
      kind === 'pickup' && o.locker ? V(`${o.locker.device} / ${o.locker.compartment}`) : null,
      kind === 'pickup' ? lockedCompartment(o, hub) : null,
      kind === 'arriving' && o.drone ? V(`${o.drone.hub} / ${o.drone.id}`) : null,
    )));
  return [
    h('h4', {}, T('orders.pickups')), list(pickups, 'pickup'),
    h('h4', {}, T('orders.arriving')), list(arriving, 'arriving'),
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
  const step = (o, name, cls) => h('button', { type: 'button', class: cls, 'data-focus': `round-${name}-${o.id}`, onclick: (e) => void recordRoundStep(o, name, e.currentTarget) }, T(`orders.round.${name}`));
  return h('ul', { class: 'order-list' }, ...orders.map((o) => {
    const round = (state.region.groundRounds ?? []).find((g) => g.id === o.groundRound?.id);
    return h('li', { 'data-order-id': o.id, 'data-round-order': '' },
      V(o.reference ?? o.id, 'strong'), ' ',
      h('span', { class: 'badge' }, T(`orderState.${o.state}`)), ' ',
      h('span', {}, T(o.originHub === hub ? 'orders.round.toHub' : 'orders.round.fromHub', { hub: hubName(o.originHub === hub ? dest(o) : o.originHub) })), ' ',
      h('span', {}, T('orders.round.departs', { round: round ? nameOf(round.name) : o.groundRound?.id ?? '', at: fmtTime(o.groundRound?.departsAt) })), ' ',
      mayUnlock(hub) && o.state === 'assigned' && o.originHub === hub ? step(o, 'loaded', 'round-step') : null, ' ',
      mayUnlock(hub) && o.state === 'on_board' && dest(o) === hub ? step(o, 'delivered', 'round-step') : null, ' ',
      mayUnlock(hub) ? step(o, 'failed', 'danger round-step') : null);
  }));
}

const hubName = (id) => {
  const spec = state.region.hubs.find((x) => x.id === id);
  return spec ? nameOf(spec.name) : (id ?? '');
};

async function recordRoundStep(order, step, button) {
  button.disabled = true;
  try {
    const r = await actAs('POST', `/api/v1/orders/${encodeURIComponent(order.id)}/ground-round`, { step });
    state.orders = state.orders.map((o) => (o.id === order.id ? r : o));
    flash(`orders.round.recorded.${step}`, {}, 'ok');
  } catch (err) {
    button.disabled = false;
    flash('orders.round.failedToRecord', { code: err.code ?? '' }, 'error');
  }
  renderData();
}

function dronesOnPad(detail) {
  const drones = (detail?.deviceStates ?? []).filter((d) => d.kind === 'drone');
  if (drones.length === 0) return [h('p', { class: 'empty' }, T('drones.none'))];
  return [h('table', { class: 'table' },
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, T('drones.id')), h('th', { scope: 'col' }, T('drones.state')), h('th', { scope: 'col' }, T('drones.battery')))),
    h('tbody', {}, ...drones.map((d) => {
      const tm = d.telemetry;
      return h('tr', {},
        h('th', { scope: 'row' }, V(d.device)),
        h('td', {}, T(tm ? `flightState.${tm.flightState}` : 'common.noData')),
        h('td', {}, tm ? h('span', { class: tm.batteryPct < 30 ? 'warn' : '' }, T('unit.percent', { v: Math.round(tm.batteryPct) })) : T('common.noData')),
      );
    })),
  )];
}

function sensors(detail, spec) {
  const list = (detail?.deviceStates ?? []).filter((d) => d.kind === 'sensor');
  if (list.length === 0) return [h('p', { class: 'empty' }, T('common.noData'))];
  // The hub's flight limit as the alarm rules apply it (served with the region).
  const limit = spec?.windLimitMps;
  return list.map((sd) => {
    const m = sd.telemetry;
    if (!m) return h('p', { class: 'empty' }, T('common.noData'));
    const over = m.windSpeedMps >= limit || m.windGustMps >= limit;
    return h('dl', { class: 'sensor' },
      h('dt', {}, T('sensors.wind')),
      h('dd', { class: over ? 'warn' : '' },
        T('sensors.windVsLimit', { v: fmtNum(m.windSpeedMps), gust: fmtNum(m.windGustMps), limit }), ' ',
        h('meter', { min: 0, max: limit * 2, low: limit * 0.8, high: limit, optimum: 0, value: Math.min(m.windSpeedMps, limit * 2), 'aria-label': t('sensors.wind') }),
        over ? h('strong', {}, ' ', T('sensors.overLimit')) : null),
      h('dt', {}, T('sensors.rain')), h('dd', {}, T('unit.mmh', { v: fmtNum(m.rainMmPerH) })),
      h('dt', {}, T('sensors.airTemp')), h('dd', {}, T('unit.celsius', { v: fmtNum(m.airTempC) })),
      h('dt', {}, T('sensors.power')), h('dd', { class: m.gridPowerUp ? '' : 'warn' }, T(m.gridPowerUp ? 'sensors.gridUp' : 'sensors.gridDown'), ' ', T('sensors.backup', { v: Math.round(m.backupBatteryPct) })),
      h('dt', {}, T('sensors.linkQuality')), h('dd', {}, T('unit.percent', { v: Math.round(m.linkQualityPct) })),
      h('dt', {}, T('sensors.updated')), h('dd', {}, T('common.text', { v: fmtTime(sd.lastReceivedAt) })),
    );
  });
}

// ---------- coordinator console ----------

function coordinatorView() {
  return h('div', { class: 'coord', id: 'coordinator-console' },
    h('section', { class: 'card map-card', 'aria-labelledby': 'map-h' },
      h('h2', { id: 'map-h' }, T('map.title'), ' ', V(nameOf(state.region.name), 'span', { class: 'region-name' })),
      h('div', { id: 'map' }),
      mapLegend(),
    ),
    h('div', { class: 'coord-side' },
      h('section', { class: 'card', 'aria-labelledby': 'mode-h' },
        h('h2', { id: 'mode-h' }, T('mode.title')),
        h('div', { id: 'mode-status', 'aria-live': 'polite' }),
        maySwitchModes() ? modeForm() : h('p', { class: 'empty' }, T('mode.readOnly')),
      ),
      h('section', { class: 'card', 'aria-labelledby': 'prop-h' }, h('h2', { id: 'prop-h' }, T('proposals.title')), h('div', { id: 'proposals' })),
      h('section', { class: 'card', 'aria-labelledby': 'relief-h' }, h('h2', { id: 'relief-h' }, T('orders.reliefTitle')), h('div', { id: 'relief-orders' })),
      h('section', { class: 'card', 'aria-labelledby': 'held-h' }, h('h2', { id: 'held-h' }, T('orders.heldTitle')), h('div', { id: 'held-orders' })),
      h('section', { class: 'card', 'aria-labelledby': 'calarms-h' }, h('h2', { id: 'calarms-h' }, T('alarms.openTitle')), h('div', { id: 'coord-alarms' })),
    ),
    switchDialog(),
  );
}

function mapLegend() {
  const item = (cls, key) => h('li', {}, h('span', { class: `swatch ${cls}`, 'aria-hidden': 'true' }), T(key));
  return h('ul', { class: 'legend' },
    item('lg-hub-online', 'map.hubOnline'), item('lg-hub-offline', 'map.hubOffline'), item('lg-hub-emergency', 'map.hubEmergency'),
    item('lg-shelter', 'map.shelter'), item('lg-isolated', 'map.isolated'), item('lg-nofly', 'map.noFly'), item('lg-route', 'map.route'),
    item('lg-selected', 'map.selected'));
}

function renderCoordinatorData() {
  const map = document.getElementById('map');
  if (!map) return;
  replace(map, regionMap());
  replace(document.getElementById('mode-status'), modeStatus());
  renderHubPicker();
  replace(document.getElementById('proposals'), proposalList());
  const active = (o) => !['delivered', 'picked_up', 'failed', 'cancelled'].includes(o.state);
  replace(document.getElementById('relief-orders'), orderTable(state.orders.filter((o) => (o.priority === 'relief' || o.priority === 'medical') && active(o))));
  replace(document.getElementById('held-orders'), orderTable(state.orders.filter((o) => o.state === 'held')));
  replace(document.getElementById('coord-alarms'), alarmList([...state.alarms.values()].filter((a) => a.state === 'open'), true));
}

/** Equirectangular projection of the region's bounding box onto the SVG view box (enough at 30 km). */
function projection() {
  const pts = [
    ...state.region.hubs.map((x) => x.location), ...state.region.landingSites.map((x) => x.location),
    ...state.region.noFlyZones.flatMap((z) => z.polygon),
  ];
  const lats = pts.map((p) => p.lat);
  const lons = pts.map((p) => p.lon);
  const [minLat, maxLat, minLon, maxLon] = [Math.min(...lats), Math.max(...lats), Math.min(...lons), Math.max(...lons)];
  const kx = Math.cos(((minLat + maxLat) / 2) * (Math.PI / 180));
  const w = 1000;
  const pad = 40;
  const scale = (w - 2 * pad) / Math.max((maxLon - minLon) * kx, 1e-6);
  const hgt = Math.max(300, (maxLat - minLat) * scale + 2 * pad);
  return { w, h: hgt, xy: (p) => [pad + (p.lon - minLon) * kx * scale, hgt - pad - (p.lat - minLat) * scale] };
}

function regionMap() {
  const { w, h: hh, xy } = projection();
  const svg = s('svg', { viewBox: `0 0 ${w} ${hh}`, class: 'region-map', role: 'group', 'aria-label': t('map.title') });
  for (const z of state.region.noFlyZones) {
    svg.append(s('polygon', { class: 'nofly', points: z.polygon.map((p) => xy(p).join(',')).join(' ') }, svgTitle(nameOf(z.name))));
  }
  const siteById = new Map(state.region.landingSites.map((x) => [x.id, x]));
  const hubById = new Map(state.region.hubs.map((x) => [x.id, x]));
  for (const r of state.region.reliefRoutes) {
    const from = hubById.get(r.fromHub);
    const to = siteById.get(r.toSite);
    if (!from || !to) continue;
    const pts = [from.location, ...(r.waypoints ?? []), to.location].map((p) => xy(p).join(',')).join(' ');
    svg.append(s('polyline', { class: 'route', points: pts }));
  }
  for (const site of state.region.landingSites) {
    const [x, y] = xy(site.location);
    const cls = site.kind === 'shelter' ? 'shelter' : 'isolated';
    const shape = site.kind === 'shelter'
      ? s('rect', { x: x - 7, y: y - 7, width: 14, height: 14, class: cls })
      : s('polygon', { points: `${x},${y - 9} ${x + 9},${y + 7} ${x - 9},${y + 7}`, class: cls });
    svg.append(s('g', { class: 'site', 'data-site': site.id }, shape, svgTitle(nameOf(site.name)),
      svgText(nameOf(site.name), x + 11, y + 4, 'site-label')));
  }
  for (const hub of state.region.hubs) {
    const [x, y] = xy(hub.location);
    const live = state.hubs.get(hub.id);
    const desired = modeDesiredOf(hub.id);
    const ack = state.mode?.hubs?.find((m) => m.hub === hub.id);
    const selected = state.selectedForSwitch.has(hub.id);
    const g = s('g', {
      class: ['hub', live?.link?.online ? 'online' : 'offline', desired === 'emergency' && 'emergency', selected && 'selected'],
      'data-hub': hub.id, 'data-focus': `map-${hub.id}`, tabindex: maySwitchModes() ? 0 : undefined, role: maySwitchModes() ? 'button' : undefined,
      'aria-pressed': maySwitchModes() ? String(selected) : undefined,
      'aria-label': `${nameOf(hub.name)}: ${t(live?.link?.online ? 'link.online' : 'link.offline')}, ${t(`mode.${desired}`)}${ack ? `, ${t(`ack.${ack.status}`)}` : ''}`,
    },
    s('circle', { cx: x, cy: y, r: hub.kind === 'roadside-station' ? 11 : 8, class: 'hub-dot' }),
    svgTitle(nameOf(hub.name)),
    svgText(nameOf(hub.name), x + 14, y - 4, 'hub-label'),
    svgText(`${t(live?.link?.online ? 'link.online' : 'link.offline')} · ${t(`mode.${desired}`)}${ack && ack.status !== 'acknowledged' ? ` · ${t(`ack.${ack.status}`)}` : ''}`, x + 14, y + 16, 'hub-sub'),
    );
    if (maySwitchModes()) {
      const toggle = () => {
        if (state.selectedForSwitch.has(hub.id)) state.selectedForSwitch.delete(hub.id);
        else state.selectedForSwitch.add(hub.id);
        const scope = document.querySelector('input[name="scope"][value="hubs"]');
        if (scope && state.selectedForSwitch.size > 0) scope.checked = true;
        renderData();
      };
      g.addEventListener('click', toggle);
      g.addEventListener('keydown', (e) => {
        if (e.key === 'Enter' || e.key === ' ') {
          e.preventDefault();
          toggle();
        }
      });
    }
    svg.append(g);
  }
  return svg;
}

function svgTitle(text) {
  const el = s('title', { 'data-v': '' });
  el.textContent = text;
  return el;
}

function svgText(text, x, y, cls) {
  const el = s('text', { x, y, class: cls, 'data-v': '' });
  el.textContent = text;
  return el;
}

function modeDesiredOf(hub) {
  const d = state.mode?.desired;
  if (!d) return 'normal';
  return d.hubs?.[hub] ?? d.mode;
}

function modeStatus() {
  const m = state.mode;
  if (!m) return [h('p', { class: 'empty' }, T('common.noData'))];
  const hubName = (id) => nameOf(state.region.hubs.find((x) => x.id === id)?.name) || id;
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
    waiting.length === 0 ? null : h('ul', { class: 'ack-list', id: 'ack-waiting' }, ...waiting.map((x) => h('li', { class: `ack-${x.status}`, 'data-hub': x.hub },
      V(hubName(x.hub)), ' ', h('span', { class: 'badge' }, T(`ack.${x.status}`))))),
  ];
}

function modeForm() {
  const error = h('p', { class: 'error', role: 'alert', id: 'switch-error' });
  // novalidate: the catalogue's message is shown instead of the browser's own bubble, in the console's language.
  const form = h('form', { id: 'mode-form', class: 'mode-form', novalidate: true },
    h('fieldset', {}, h('legend', {}, T('mode.target')),
      h('label', {}, h('input', { type: 'radio', name: 'mode', value: 'emergency', checked: true }), T('mode.emergency')),
      h('label', {}, h('input', { type: 'radio', name: 'mode', value: 'normal' }), T('mode.normal'))),
    h('fieldset', {}, h('legend', {}, T('mode.scope')),
      h('label', {}, h('input', { type: 'radio', name: 'scope', value: 'region', checked: true }), T('mode.scopeRegion')),
      h('label', {}, h('input', { type: 'radio', name: 'scope', value: 'hubs' }), T('mode.scopeHubs')),
      h('div', { id: 'hub-picker', class: 'hub-picker' })),
    h('label', { for: 'reason' }, T('mode.reasonLabel')),
    h('textarea', { id: 'reason', name: 'reason', required: true, maxlength: 500, rows: 2 }),
    h('button', { type: 'submit', class: 'danger', id: 'switch-button' }, T('mode.switch')),
    error,
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    error.textContent = '';
    const fd = new FormData(form);
    const reason = String(fd.get('reason') ?? '').trim();
    const mode = String(fd.get('mode'));
    const hubs = fd.get('scope') === 'hubs' ? [...state.selectedForSwitch] : null;
    if (!reason) return void (error.textContent = t('mode.reasonRequired'));
    if (hubs && hubs.length === 0) return void (error.textContent = t('mode.hubsRequired'));
    confirmSwitch({ mode, hubs, reason });
  });
  return form;
}

function renderHubPicker() {
  const picker = document.getElementById('hub-picker');
  if (!picker) return;
  replace(picker, state.region.hubs.map((hub) => h('label', { class: 'hub-check' },
    h('input', {
      type: 'checkbox', name: 'hub', value: hub.id, 'data-focus': `pick-${hub.id}`, checked: state.selectedForSwitch.has(hub.id),
      onchange: (e) => {
        if (e.currentTarget.checked) state.selectedForSwitch.add(hub.id);
        else state.selectedForSwitch.delete(hub.id);
        const scope = document.querySelector('input[name="scope"][value="hubs"]');
        if (scope && state.selectedForSwitch.size > 0) scope.checked = true;
        replace(document.getElementById('map'), regionMap());
      },
    }),
    V(nameOf(hub.name)))));
}

function switchDialog() {
  return h('dialog', { id: 'confirm-dialog', 'aria-labelledby': 'confirm-h' },
    h('h2', { id: 'confirm-h' }, T('mode.confirmTitle')),
    h('div', { id: 'confirm-body' }),
    h('div', { class: 'actions' },
      h('button', { type: 'button', id: 'confirm-cancel', class: 'secondary' }, T('common.cancel')),
      h('button', { type: 'button', id: 'confirm-ok', class: 'danger' }, T('mode.confirm'))));
}

function confirmSwitch(req) {
  const dialog = document.getElementById('confirm-dialog');
  const hubNames = req.hubs ? req.hubs.map((id) => nameOf(state.region.hubs.find((x) => x.id === id)?.name) || id) : null;
  replace(document.getElementById('confirm-body'),
    h('p', {}, T(req.hubs ? 'mode.confirmHubs' : 'mode.confirmRegion', { mode: t(`mode.${req.mode}`), n: req.hubs?.length ?? 0 })),
    hubNames ? h('ul', {}, ...hubNames.map((n) => V(n, 'li'))) : null,
    h('p', {}, T('mode.reason'), ' ', V(req.reason, 'q')));
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
      document.getElementById('switch-error').textContent = t(err.status === 403 ? 'mode.forbidden' : 'mode.failed', { code: err.code ?? '' });
    } finally {
      ok.disabled = false;
      done();
      renderData();
    }
  };
  dialog.showModal();
  cancel.focus();
}

function proposalList() {
  if (state.proposals.length === 0) return [h('p', { class: 'empty' }, T('proposals.none'))];
  return [h('ul', { class: 'order-list' }, ...state.proposals.map((p) => h('li', { 'data-proposal': p.id },
    h('span', { class: 'badge bad' }, T('mode.emergency')), ' ', V(p.source, 'strong'), ' ', V(p.reason), ' ',
    T(p.hubs ? 'proposals.hubs' : 'proposals.region', { n: p.hubs?.length ?? 0 }), ' ', T('common.text', { v: fmtTime(p.createdAt) }))))];
}

function orderTable(orders) {
  if (orders.length === 0) return [h('p', { class: 'empty' }, T('orders.none'))];
  const dest = (o) => {
    if (o.destination?.type === 'site') return nameOf(state.region.landingSites.find((x) => x.id === o.destination.siteId)?.name) || o.destination.siteId;
    return nameOf(state.region.hubs.find((x) => x.id === o.destination?.hub)?.name) || o.destination?.hub;
  };
  return [h('table', { class: 'table' },
    h('thead', {}, h('tr', {}, ...['orders.id', 'orders.to', 'orders.priority', 'orders.state', 'orders.drone'].map((k) => h('th', { scope: 'col' }, T(k))))),
    h('tbody', {}, ...orders.slice(0, 50).map((o) => h('tr', { 'data-order-id': o.id },
      h('td', {}, V(o.reference ?? o.id)), h('td', {}, V(dest(o))), h('td', {}, T(`priority.${o.priority}`)),
      h('td', {}, T(`orderState.${o.state}`)), h('td', {}, o.drone ? V(`${o.drone.hub} / ${o.drone.id}`) : T('common.none'))))))];
}

// ---------- messages ----------

let flashTimer = null;
function flash(key, params, kind) {
  let el = document.getElementById('flash');
  if (!el) {
    el = h('p', { id: 'flash', role: 'status', 'aria-live': 'polite' });
    document.body.append(el);
  }
  el.className = `flash ${kind}`;
  el.textContent = t(key, params);
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => el.remove(), 4000);
}

void boot();
