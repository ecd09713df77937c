// The console's one shared state, the role rules the screens apply, and the render request that every
// change ends with. Screens read `state` and build a fresh tree; app.js morphs it into the page.

export const state = {
  lang: 'ja',
  catalogue: {},
  account: null,
  region: null, // the region shown (GET /api/v1/region?region=)
  regions: [], // the regions the account may see (GET /api/v1/regions): a chooser when more than one
  hubs: new Map(), // id → summary (GET /api/v1/hubs), of the region shown
  allHubs: [], // every hub the account may see, as last received (the region shown is picked from them)
  allOrders: [], // every order as last received
  modes: new Map(), // region id → GET /api/v1/regions/:id/mode
  proposalsByRegion: new Map(), // region id → open proposals
  hubDetail: new Map(), // id → GET /api/v1/hubs/:id
  alarms: new Map(), // id → alarm (active only)
  orders: [],
  mode: null,
  proposals: [],
  selectedHub: null, // staff: the hub shown
  selectedForSwitch: new Set(), // coordinator: hubs picked on the map or in the form
  mapView: null, // the map's pan and zoom { cx, cy, k } (null: fitted to the region)
  mapInfo: null, // the map feature last tapped { type: 'hub' | 'site' | 'zone' | 'route', id }
  /** Keys of actions waiting for the server (e.g. `ack-<alarm id>`): their buttons render disabled, so a second tap cannot repeat them. */
  busy: new Set(),
  live: 'connecting',
  events: null,
};

export const isStaff = () => state.account?.role === 'staff';
/** Whether something of `region` (a hub, alarm, order) belongs on screen: the console shows one region at a time. */
export const inShownRegion = (region) => !state.region || region === undefined || region === null || region === state.region.id;
export const mayRead = (hub) => !isStaff() || state.account.hubs.includes(hub);
export const maySwitchModes = () => ['coordinator', 'admin'].includes(state.account?.role);
export const mayUnlock = (hub) => ['coordinator', 'admin'].includes(state.account?.role) || (isStaff() && state.account.hubs.includes(hub));

export const nameOf = (n) => (n ? (state.lang === 'en' ? n.en : n.ja) : '');

/** The region file's entry for a hub (GET /api/v1/region), or undefined. */
export const hubSpec = (id) => state.region?.hubs.find((x) => x.id === id);

/** A hub's display name in the console's language; its id only if the region does not know it. */
export const hubName = (id) => {
  const spec = hubSpec(id);
  return spec ? nameOf(spec.name) : (id ?? '');
};

/**
 * A device's display name (drone, locker or sensor at a hub) from the region file, in the console's
 * language; its id only when the region gives it no name.
 */
export function deviceName(hub, device) {
  const spec = hubSpec(hub);
  if (!spec) return device ?? '';
  const all = [...(spec.drones ?? []), ...(spec.lockers ?? []), ...(spec.sensors ?? []).map((x) => (typeof x === 'string' ? { id: x } : x))];
  const found = all.find((d) => d.id === device);
  return found?.name ? nameOf(found.name) : (device ?? '');
}

/** The hub's mode as the region's coordinators want it (desired), 'normal' when nothing was ever switched. */
export function modeDesiredOf(hub) {
  const d = state.mode?.desired;
  if (!d) return 'normal';
  return d.hubs?.[hub] ?? d.mode;
}

let renderer = () => {};
let scheduled = false;

/** app.js registers how to render; everyone else only asks for a render. */
export function setRenderer(fn) {
  renderer = fn;
}

/** Renders once after the current task, however many changes asked for it (a burst of live events → one morph). */
export function requestRender() {
  if (scheduled) return;
  scheduled = true;
  setTimeout(() => {
    scheduled = false;
    renderer();
  }, 0);
}

/** Runs an action once at a time per key; its buttons read `state.busy` to render disabled meanwhile. */
export async function whileBusy(key, action) {
  if (state.busy.has(key)) return undefined;
  state.busy.add(key);
  requestRender();
  try {
    return await action();
  } finally {
    state.busy.delete(key);
    requestRender();
  }
}
