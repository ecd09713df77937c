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
import { isStaff, mayRead, requestRender, setRenderer, state } from './lib/state.js';
import { staffView } from './staff/staff-view.js';

/** Set while this browser has a session: only then is `/auth/me` asked at start (a 401 would be a console error). */
const SIGNED_IN_KEY = 'chiiki.console.signedIn';

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
  state.hubDetail.clear();
  state.alarms.clear();
  state.selectedForSwitch.clear();
  history.replaceState(null, '', '/');
  render();
}

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
  on('orders', (d) => (state.orders = d.orders));
  on('mode', (d) => (state.mode = d));
  on('proposals', (d) => (state.proposals = d.proposals));
  on('alarm', ({ alarm }) => {
    if (!mayRead(alarm.hub)) return;
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
    for (const a of body.alarms) if (mayRead(a.hub)) state.alarms.set(a.id, a);
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
  morph(document.getElementById('who'), state.account ? [V(state.account.displayName ?? state.account.username), ' ', T(`role.${state.account.role}`)] : []);
  const live = document.getElementById('live-state');
  live.textContent = state.account ? t(`live.${state.live}`) : '';
  live.className = `live live-${state.live}`;
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
