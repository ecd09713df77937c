// Consoles for hub staff and disaster coordinators (issues 5 and 13). Plain ES modules, no build step.
//
// Layout: lib/ holds what every screen uses (state, catalogues, DOM helpers, API, the morph); staff/,
// coordinator/, map/ and alarms/ hold the screens. This file signs in and out, keeps the live feed,
// and renders: each screen builds a fresh tree from `state` and lib/morph.js patches the page to match.
//
// Rules every screen keeps:
// - Every visible string comes from the message catalogues through `t()`/`T()` (i18n/<lang>.json and its
//   parts); values from the API (names, details, reasons, ids, numbers) are wrapped by `V()` and marked
//   `data-v`. `?lang=keys` shows catalogue keys instead of text, so a test can find text that bypasses `t()`.
// - The DOM is built with createElement/textContent only — never innerHTML — so text typed by people or
//   sent by devices is always shown literally.
// - Times are shown in Japan time (Asia/Tokyo), whatever the tablet's own time zone.
import { coordinatorView } from './coordinator/coordinator-view.js';
import { api, ApiError } from './lib/api.js';
import { h, T, V } from './lib/dom.js';
import { initialLang, loadCatalogue, rememberLang, t } from './lib/i18n.js';
import { morph } from './lib/morph.js';
import { inShownRegion, isStaff, mayRead, nameOf, requestRender, setRenderer, state } from './lib/state.js';
import { staffView } from './staff/staff-view.js';

/** Set while this browser has a session: only then is `/auth/me` asked at start (a 401 would be a console error). */
const SIGNED_IN_KEY = 'chiiki.console.signedIn';
/** The region a multi-region account last chose (issue 14, item 3): shown again after a reload or the next sign-in. */
const REGION_KEY = 'chiiki.console.region';

async function setLang(lang) {
  state.catalogue = await loadCatalogue(lang);
  state.lang = lang;
  rememberLang(lang);
  document.documentElement.lang = lang === 'en' ? 'en' : 'ja';
  render();
}

// ---------- session and live feed ----------

async function boot() {
  state.lang = initialLang();
  // A language given by the link (?lang=en) is kept, so the pages reached from here and a reload show it too.
  rememberLang(state.lang);
  state.catalogue = await loadCatalogue(state.lang);
  document.documentElement.lang = state.lang === 'en' ? 'en' : 'ja';
  document.getElementById('lang-toggle').addEventListener('click', () => void setLang(state.lang === 'en' ? 'ja' : 'en'));
  document.getElementById('logout').addEventListener('click', () => void logout());
  setRenderer(render);
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
  loginError = null;
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
  state.allHubs = [];
  state.allOrders = [];
  state.regions = [];
  state.modes.clear();
  state.proposalsByRegion.clear();
  state.hubDetail.clear();
  state.alarms.clear();
  state.selectedForSwitch.clear();
  history.replaceState(null, '', '/');
  render();
}

async function enter(account) {
  state.account = account;
  history.replaceState(null, '', isStaff() ? '/console/staff' : '/console/coordinator');
  state.regions = await visibleRegions();
  state.region = await api('GET', regionUrl(initialRegion()));
  if (isStaff()) state.selectedHub = account.hubs[0] ?? null;
  const [hubs, alarms, orders] = await Promise.all([
    api('GET', '/api/v1/hubs'),
    api('GET', '/api/v1/alarms?state=active&limit=500'),
    api('GET', '/api/v1/orders?limit=500'),
  ]);
  applyHubs(hubs);
  for (const a of alarms.alarms) if (shows(a)) state.alarms.set(a.id, a);
  applyOrders(orders);
  if (isStaff()) {
    await Promise.all(account.hubs.map(async (id) => {
      try {
        state.hubDetail.set(id, await api('GET', `/api/v1/hubs/${encodeURIComponent(id)}`));
      } catch {
        // shown as "no data" until the live feed brings it
      }
    }));
  } else {
    await loadModeOf(state.region.id);
  }
  render();
  connectLive();
}

/** The regions the account may see; [] from a cloud without the route (then the one region it serves is shown). */
async function visibleRegions() {
  try {
    return (await api('GET', '/api/v1/regions')).regions;
  } catch {
    return [];
  }
}

/** The region chosen last time if the account still sees it, else the first. */
function initialRegion() {
  const remembered = localStorage.getItem(REGION_KEY);
  return state.regions.find((r) => r.id === remembered)?.id ?? state.regions[0]?.id ?? null;
}

const regionUrl = (id) => (id === null ? '/api/v1/region' : `/api/v1/region?region=${encodeURIComponent(id)}`);

/** A region's mode and open proposals, read once (the live feed keeps them current afterwards). */
async function loadModeOf(region) {
  const path = `/api/v1/regions/${encodeURIComponent(region)}`;
  try {
    const [mode, proposals] = await Promise.all([api('GET', `${path}/mode`), api('GET', `${path}/mode-proposals?state=open&limit=50`)]);
    if (!state.modes.has(region)) state.modes.set(region, mode);
    if (!state.proposalsByRegion.has(region)) state.proposalsByRegion.set(region, proposals.proposals);
  } catch {
    // the live feed fills these in
  }
  showModeOf(region);
}

function showModeOf(region) {
  state.mode = state.modes.get(region) ?? null;
  state.proposals = state.proposalsByRegion.get(region) ?? [];
}

/**
 * The coordinator chose another region (the chooser in the header): map, hubs, mode, orders and
 * alarms follow it; the choice is remembered in this browser.
 */
async function chooseRegion(id) {
  if (id === state.region?.id) return;
  localStorage.setItem(REGION_KEY, id);
  try {
    state.region = await api('GET', regionUrl(id));
  } catch {
    return requestRender(); // the chooser shows the region still shown
  }
  state.selectedForSwitch.clear();
  state.mapView = null;
  state.mapInfo = null;
  applyHubs({ hubs: state.allHubs });
  applyOrders({ orders: state.allOrders });
  state.alarms.clear();
  showModeOf(id);
  render();
  await Promise.all([reloadAlarms(), state.modes.has(id) ? null : loadModeOf(id)]);
  requestRender();
}

/** Whether an alarm belongs on screen: a hub the account reads, in the region shown. */
const shows = (a) => mayRead(a.hub) && inShownRegion(a.region);

function applyHubs(body) {
  state.allHubs = body.hubs;
  state.hubs.clear();
  for (const hub of body.hubs) if (mayRead(hub.id) && inShownRegion(hub.region)) state.hubs.set(hub.id, hub);
}

function applyOrders(body) {
  state.allOrders = body.orders;
  state.orders = body.orders.filter((o) => inShownRegion(o.region));
}

function connectLive() {
  state.events?.close();
  const detail = isStaff() ? `?hubs=${encodeURIComponent(state.account.hubs.join(','))}` : '';
  const es = new EventSource(`/api/v1/events${detail}`);
  state.events = es;
  const on = (name, fn) => es.addEventListener(name, (e) => {
    fn(JSON.parse(e.data));
    requestRender();
  });
  // A stream sends hubs, orders and the mode as they are when it opens, but alarms only as they change:
  // each time it (re)opens — sign-in, a cloud restart, a dropped link — the alarms are read again, or one
  // raised or acknowledged during the gap would stay hidden or stale until a reload.
  es.onopen = () => {
    setLive('live');
    void reloadAlarms();
  };
  es.onerror = () => setLive('reconnecting');
  on('hubs', applyHubs);
  on('hub', (d) => state.hubDetail.set(d.id, d));
  on('orders', applyOrders);
  // One `mode` and one `proposals` event per region the account sees; each names its region.
  on('mode', (d) => {
    state.modes.set(d.region, d);
    if (d.region === state.region?.id) state.mode = d;
  });
  on('proposals', (d) => {
    state.proposalsByRegion.set(d.region, d.proposals);
    if (d.region === state.region?.id) state.proposals = d.proposals;
  });
  on('alarm', ({ alarm }) => {
    if (!shows(alarm)) return;
    alarmEventsDuringReload?.set(alarm.id, alarm);
    if (alarm.state === 'cleared') state.alarms.delete(alarm.id);
    else state.alarms.set(alarm.id, alarm);
  });
  es.addEventListener('session', () => {
    es.close();
    void logout();
  });
}

/** Alarm events that arrived while a reload was on its way: they are newer than its answer. */
let alarmEventsDuringReload = null;

async function reloadAlarms() {
  const during = new Map();
  alarmEventsDuringReload = during;
  try {
    const body = await api('GET', '/api/v1/alarms?state=active&limit=500');
    if (alarmEventsDuringReload !== during) return; // a newer reload is on its way
    state.alarms.clear();
    for (const a of body.alarms) if (shows(a)) state.alarms.set(a.id, a);
    for (const a of during.values()) {
      if (a.state === 'cleared') state.alarms.delete(a.id);
      else state.alarms.set(a.id, a);
    }
    requestRender();
  } catch {
    // the next (re)open of the stream reads them again
  } finally {
    if (alarmEventsDuringReload === during) alarmEventsDuringReload = null;
  }
}

function setLive(s) {
  state.live = s;
  renderChrome();
}

// ---------- rendering ----------

/** Renders so far, on #main's `data-renders` (tests use it to know an update landed mid-tap). */
let renders = 0;

function render() {
  document.title = t('app.title');
  renderChrome();
  const main = document.getElementById('main');
  main.dataset.renders = String(++renders);
  if (!state.account) return morph(main, loginView());
  morph(main, isStaff() ? staffView() : coordinatorView());
}

function renderChrome() {
  document.getElementById('app-title').textContent = t('app.title');
  document.getElementById('lang-toggle').textContent = t('lang.toggle');
  document.getElementById('lang-toggle').setAttribute('aria-label', t('lang.toggleLabel'));
  const logoutBtn = document.getElementById('logout');
  logoutBtn.textContent = t('auth.logout');
  logoutBtn.hidden = !state.account;
  morph(document.getElementById('region-choice'), regionChooser());
  morph(document.getElementById('who'), state.account ? [V(state.account.displayName ?? state.account.username), ' ', T(`role.${state.account.role}`)] : []);
  const live = document.getElementById('live-state');
  live.textContent = state.account ? t(`live.${state.live}`) : '';
  live.className = `live live-${state.live}`;
}

/**
 * The region chooser in the header: only for an account that sees more than one region, on the
 * coordinator console (staff work at their hubs, in their hubs' region).
 */
function regionChooser() {
  if (!state.account || isStaff() || state.regions.length < 2) return [];
  return [h('label', { for: 'region-select', class: 'region-choice-label' }, T('region.choose')),
    h('select', {
      id: 'region-select', class: 'region-select',
      onchange: (e) => void chooseRegion(e.currentTarget.value),
    }, state.regions.map((r) => V(nameOf(r.name), 'option', { value: r.id, selected: r.id === state.region?.id })))];
}

/** The sign-in form's last refusal (a catalogue key): kept here, not typed into the page, so a re-render (a language switch) keeps it. */
let loginError = null;

function loginView() {
  return h('form', {
    class: 'card login', id: 'login-form', 'aria-labelledby': 'login-title',
    onsubmit: (e) => {
      e.preventDefault();
      loginError = null;
      requestRender();
      const fd = new FormData(e.currentTarget);
      login(String(fd.get('username')), String(fd.get('password'))).catch((err) => {
        loginError = err instanceof ApiError && err.status === 401 ? 'auth.invalid' : 'auth.failed';
        requestRender();
      });
    },
  },
  h('h2', { id: 'login-title' }, T('auth.title')),
  h('label', { for: 'username' }, T('auth.username')),
  h('input', { id: 'username', name: 'username', autocomplete: 'username', required: true }),
  h('label', { for: 'password' }, T('auth.password')),
  h('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true }),
  h('button', { type: 'submit', class: 'primary' }, T('auth.submit')),
  h('p', { class: 'error', role: 'alert', id: 'login-error' }, loginError ? T(loginError) : null));
}

void boot();
