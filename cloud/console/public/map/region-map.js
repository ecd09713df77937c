// The region map on the coordinator console (issue 13, item 1): real geography (sea and coastline from
// GET /api/v1/region/geography, shipped with the project — no tile server), hubs, shelters, isolated
// settlements, no-fly zones and relief routes.
//
// - Drawn in screen pixels (the SVG's view box is its own size), so labels keep 13 px at every zoom and
//   are placed by label-layout.js where they cover no dot and no other label and stay inside the map.
// - One finger (or the mouse) pans, two fingers pinch, the wheel and the +/− buttons zoom; the view
//   lives in `state.mapView`, so live updates never move the map under a finger.
// - A tap is decided by the map, not by whichever SVG shape happens to be on top: a label belongs to
//   its own feature, and otherwise the nearest dot within reach wins, so two dots close together split
//   the space between them. Tapping a hub picks it for the next mode switch (coordinators) and shows
//   what it is; tapping anything else shows its name and details (tablets have no hover).
import { openAlarmCounts } from '../alarms/alarm-list.js';
import { api } from '../lib/api.js';
import { h, s, T, V } from '../lib/dom.js';
import { t } from '../lib/i18n.js';
import { morph } from '../lib/morph.js';
import { hubName, maySwitchModes, modeDesiredOf, nameOf, requestRender, state } from '../lib/state.js';
import { placeLabels } from './label-layout.js';

const LABEL_FONT_PX = 13;
const LABEL_H = 18;
const LABEL_PAD_X = 4;
const HIT_PX = 24; // a tap this close to a dot's centre is on it (nearest dot wins)
const DRAG_PX = 8; // a press that moves further is a pan, not a tap
const ZOOM_MAX = 12; // × the fitted scale
const GEOGRAPHY_RETRY_MS = 2_000; // first retry of a base map that could not be fetched; doubles up to a minute

const map = {
  geography: undefined, // undefined: not asked yet; null: the region has none; else GET /api/v1/region/geography
  geographyOf: null, // the region `geography` belongs to
  baseKey: null, // which geography the cached base layer was built from
  base: null, // [sea d, land d, lakes d, coast d, rivers d] in metres, built once
  pointers: new Map(), // pointerId → { x, y, startX, startY }
  dragging: false,
  pinch: null, // { dist, k }
  observer: null,
  retryMs: GEOGRAPHY_RETRY_MS,
  size: { w: 800, h: 500 },
};

// ---------- projection: lon/lat → metres (equirectangular about the region's middle; enough at 30 km) ----------

function origin() {
  const pts = regionPoints();
  const lat0 = (Math.min(...pts.map((p) => p.lat)) + Math.max(...pts.map((p) => p.lat))) / 2;
  const lon0 = (Math.min(...pts.map((p) => p.lon)) + Math.max(...pts.map((p) => p.lon))) / 2;
  return { lat0, lon0, kx: 111_320 * Math.cos((lat0 * Math.PI) / 180), ky: 110_574 };
}

function regionPoints() {
  const r = state.region;
  return [...r.hubs.map((x) => x.location), ...r.landingSites.map((x) => x.location), ...r.noFlyZones.flatMap((z) => z.polygon)];
}

const metres = (o, lon, lat) => [(lon - o.lon0) * o.kx, -(lat - o.lat0) * o.ky];

/** The view that shows every hub, site and zone of the region with a margin. */
function fittedView(o, w, hh) {
  const pts = regionPoints().map((p) => metres(o, p.lon, p.lat));
  const [x0, x1] = [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0]))];
  const [y0, y1] = [Math.min(...pts.map((p) => p[1])), Math.max(...pts.map((p) => p[1]))];
  const pad = 56;
  const k = Math.min((w - 2 * pad) / Math.max(x1 - x0, 1), (hh - 2 * pad) / Math.max(y1 - y0, 1));
  return { cx: (x0 + x1) / 2, cy: (y0 + y1) / 2, k, fitK: k };
}

function view(o) {
  const { w, h: hh } = map.size;
  const fit = fittedView(o, w, hh);
  if (!state.mapView) return fit;
  return { ...state.mapView, fitK: fit.k };
}

// ---------- data ----------

function ensureGeography() {
  // Another region chosen (issue 14): its own base map, asked for afresh.
  if (map.geographyOf !== state.region.id) {
    map.geographyOf = state.region.id;
    map.geography = undefined;
    map.retryMs = GEOGRAPHY_RETRY_MS;
  }
  if (map.geography !== undefined) return;
  map.geography = null;
  if (!state.region.baseMap) return; // the region has no base map: features on plain land colour
  const asked = state.region.id;
  api('GET', state.region.baseMap).then((g) => {
    if (map.geographyOf !== asked) return; // the coordinator chose another region meanwhile
    map.geography = g;
    map.retryMs = GEOGRAPHY_RETRY_MS;
    requestRender();
  }, () => {
    // Not reachable now (a cloud restart, a dropped link): draw without it and ask again a little later.
    setTimeout(() => {
      if (map.geographyOf !== asked) return;
      map.geography = undefined;
      requestRender();
    }, map.retryMs);
    map.retryMs = Math.min(map.retryMs * 2, 60_000);
  });
}

function baseLayer(o) {
  const g = map.geography;
  if (!g) return null;
  if (map.baseKey !== g) {
    const ring = (r) => `M${r.map(([lon, lat]) => metres(o, lon, lat).map((v) => v.toFixed(1)).join(',')).join('L')}Z`;
    const line = (l) => `M${l.map(([lon, lat]) => metres(o, lon, lat).map((v) => v.toFixed(1)).join(',')).join('L')}`;
    map.base = {
      sea: g.sea.map(ring).join(''), land: g.land.map(ring).join(''), lakes: g.lakes.map(ring).join(''),
      coast: g.coastline.map(line).join(''), rivers: g.rivers.map(line).join(''),
    };
    map.baseKey = g;
  }
  // Never diffed again once on the page (data-morph-skip): only the transform of its parent changes.
  // Land is known only inside the data's box; beyond it the map shows 'no data' grey.
  const [bx0, by0] = metres(o, g.bbox.west, g.bbox.north);
  const [bx1, by1] = metres(o, g.bbox.east, g.bbox.south);
  return s('g', { class: 'geo', 'data-morph-skip': '', 'data-key': `geo-${g.region}` },
    s('rect', { class: 'land', x: bx0, y: by0, width: bx1 - bx0, height: by1 - by0 }),
    s('path', { class: 'sea', d: map.base.sea }), s('path', { class: 'land', d: map.base.land }), s('path', { class: 'lake', d: map.base.lakes }),
    s('path', { class: 'river', d: map.base.rivers }), s('path', { class: 'coast', d: map.base.coast }));
}

// ---------- measuring text ----------

let measureCtx = null;
/** Widths by weight and text: measured once, not on every render (a pan renders on every pointer move). */
const widths = new Map();
function textWidth(text, weight) {
  const key = `${weight} ${text}`;
  let w = widths.get(key);
  if (w === undefined) {
    measureCtx ??= document.createElement('canvas').getContext('2d');
    measureCtx.font = `${weight} ${LABEL_FONT_PX}px ${getComputedStyle(document.body).fontFamily}`;
    w = Math.ceil(measureCtx.measureText(text).width);
    widths.set(key, w);
  }
  return w;
}

// ---------- the map ----------

/** Everything on the map in screen pixels, for drawing and for deciding what a tap hit. */
function features() {
  const o = origin();
  const v = view(o);
  const { w, h: hh } = map.size;
  const xy = (p) => {
    const [mx, my] = metres(o, p.lon, p.lat);
    return [(mx - v.cx) * v.k + w / 2, (my - v.cy) * v.k + hh / 2];
  };
  const counts = openAlarmCounts();
  const hubs = state.region.hubs.map((hub) => {
    const [x, y] = xy(hub.location);
    return { type: 'hub', id: hub.id, spec: hub, x, y, r: hub.kind === 'roadside-station' ? 11 : 9, alarms: counts.get(hub.id) };
  });
  const sites = state.region.landingSites.map((site) => {
    const [x, y] = xy(site.location);
    return { type: 'site', id: site.id, spec: site, x, y, r: 8 };
  });
  const zones = state.region.noFlyZones.map((z, i) => {
    const pts = z.polygon.map(xy);
    const cx = pts.reduce((a, p) => a + p[0], 0) / pts.length;
    const cy = pts.reduce((a, p) => a + p[1], 0) / pts.length;
    return { type: 'zone', id: z.id ?? `zone-${i}`, spec: z, pts, x: cx, y: cy };
  });
  const siteById = new Map(state.region.landingSites.map((x) => [x.id, x]));
  const hubById = new Map(state.region.hubs.map((x) => [x.id, x]));
  const routes = state.region.reliefRoutes.flatMap((r, i) => {
    const from = hubById.get(r.fromHub);
    const to = siteById.get(r.toSite);
    if (!from || !to) return [];
    return [{ type: 'route', id: r.id ?? `route-${i}`, spec: r, from, to, pts: [from.location, ...(r.waypoints ?? []), to.location].map(xy) }];
  });
  return { o, v, w, hh, hubs, sites, zones, routes };
}

function layout(f) {
  // The layout depends only on the region, the view, the language and the map's size — never on live
  // state (selection, alarms, links) — so a label never moves under a finger when something changes.
  const dots = [...f.hubs, ...f.sites].map((d) => ({ x: d.x, y: d.y, r: d.r + 2 }));
  // Every hub keeps the corner where an alarm badge would sit clear, badge or not.
  for (const hub of f.hubs) dots.push({ x: hub.x + hub.r, y: hub.y - hub.r, r: 10 });
  // The zoom buttons (top right) and the credit line (bottom right) are not covered either.
  const creditW = map.geography ? textWidth(nameOf(map.geography.credit), 400) + 24 : 0;
  const boxes = [{ x0: f.w - 64, y0: 0, x1: f.w, y1: 146 }, { x0: f.w - creditW, y0: f.hh - 26, x1: f.w, y1: f.hh }];
  const item = (feature, text, weight, priority, nearOnly) => ({
    key: `${feature.type}:${feature.id}`, feature, text, x: feature.x, y: feature.y, r: feature.r ?? 0,
    w: textWidth(text, weight) + 2 * LABEL_PAD_X, h: LABEL_H, priority, nearOnly,
  });
  // Hubs are what coordinators pick: every hub gets its label, out on a leader line if need be. A
  // settlement's or zone's label is shown only right beside it (a tap names it otherwise), so crowded
  // views are not criss-crossed by leader lines.
  const items = [
    ...f.hubs.map((x) => item(x, nameOf(x.spec.name), 600, 0, false)),
    ...f.sites.map((x) => item(x, nameOf(x.spec.name), 400, 1, true)),
    ...f.zones.map((x) => item(x, nameOf(x.spec.name), 400, 2, true)),
  ];
  const places = placeLabels(items, dots, { x0: 2, y0: 2, x1: f.w - 2, y1: f.hh - 2 }, boxes);
  return items.filter((i) => places.has(i.key)).map((i) => ({ ...i, box: places.get(i.key) }));
}

export function regionMap() {
  ensureGeography();
  watchSize();
  const f = features();
  const labels = layout(f);
  const { v, w, hh } = f;
  const selectable = maySwitchModes();
  const svg = s('svg', {
    viewBox: `0 0 ${w} ${hh}`, width: w, height: hh, class: 'region-map', role: 'group', 'aria-label': t('map.title'), 'data-zoom': (v.k / v.fitK).toFixed(2),
    onpointerdown: onPointerDown, onpointermove: onPointerMove, onpointerup: onPointerUp, onpointercancel: onPointerCancel, onwheel: onWheel,
  });
  svg.append(s('rect', { class: map.geography ? 'nodata-bg' : 'land-bg', x: 0, y: 0, width: w, height: hh }));
  const base = baseLayer(f.o);
  if (base) svg.append(s('g', { transform: `matrix(${v.k} 0 0 ${v.k} ${w / 2 - v.cx * v.k} ${hh / 2 - v.cy * v.k})`, 'data-key': 'geo-view' }, base));
  for (const z of f.zones) {
    svg.append(s('polygon', { class: ['nofly', isInfo(z) && 'info'], 'data-zone': z.id, 'data-key': `zone-${z.id}`, points: z.pts.map((p) => p.map((c) => c.toFixed(1)).join(',')).join(' ') }));
  }
  for (const r of f.routes) {
    svg.append(s('polyline', { class: ['route', isInfo(r) && 'info'], 'data-route': r.id, 'data-key': `route-${r.id}`, points: r.pts.map((p) => p.map((c) => c.toFixed(1)).join(',')).join(' ') }));
  }
  for (const site of f.sites) {
    const { x, y } = site;
    const shape = site.spec.kind === 'shelter'
      ? s('rect', { x: x - 7, y: y - 7, width: 14, height: 14, class: 'site-dot shelter' })
      : s('polygon', { points: `${x},${y - 9} ${x + 9},${y + 7} ${x - 9},${y + 7}`, class: 'site-dot isolated' });
    svg.append(s('g', { class: ['site', isInfo(site) && 'info'], 'data-site': site.id, 'data-key': `site-${site.id}` }, shape));
  }
  for (const hub of f.hubs) svg.append(hubMark(hub, selectable));
  for (const l of labels) svg.append(labelMark(l));
  return [
    svg,
    h('div', { class: 'map-zoom', role: 'group', 'aria-label': t('map.zoom') },
      h('button', { type: 'button', class: 'secondary', 'data-zoom-in': '', 'aria-label': t('map.zoomIn'), onclick: () => zoomBy(1.5) }, T('map.zoomInShort')),
      h('button', { type: 'button', class: 'secondary', 'data-zoom-out': '', 'aria-label': t('map.zoomOut'), onclick: () => zoomBy(1 / 1.5) }, T('map.zoomOutShort')),
      h('button', { type: 'button', class: 'secondary', 'data-zoom-reset': '', 'aria-label': t('map.zoomReset'), onclick: resetView }, T('map.zoomResetShort'))),
    map.geography ? V(nameOf(map.geography.credit), 'p', { class: 'map-credit' }) : null,
  ];
}

function hubMark(hub, selectable) {
  const live = state.hubs.get(hub.id);
  const online = Boolean(live?.link?.online);
  const desired = modeDesiredOf(hub.id);
  const selected = state.selectedForSwitch.has(hub.id);
  const ack = state.mode?.hubs?.find((m) => m.hub === hub.id);
  const { x, y, r } = hub;
  const shape = hub.spec.kind === 'roadside-station'
    ? s('rect', { x: x - r, y: y - r, width: 2 * r, height: 2 * r, rx: 3, class: 'hub-dot' })
    : s('circle', { cx: x, cy: y, r, class: 'hub-dot' });
  const alarmText = hub.alarms ? t('map.alarmsAt', { n: hub.alarms.open, critical: hub.alarms.critical }) : '';
  return s('g', {
    class: ['hub', online ? 'online' : 'offline', desired === 'emergency' && 'emergency', selected && 'selected', hub.alarms && 'has-alarms', isInfo(hub) && 'info'],
    'data-hub': hub.id, 'data-key': `hub-${hub.id}`,
    tabindex: selectable ? 0 : undefined, role: selectable ? 'button' : undefined, 'aria-pressed': selectable ? String(selected) : undefined,
    'aria-label': [nameOf(hub.spec.name), t(online ? 'link.online' : 'link.offline'), t(`mode.${desired}`), ack ? t(`ack.${ack.status}`) : null, alarmText || null].filter(Boolean).join(', '),
    onkeydown: selectable ? (e) => {
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        tapFeature({ type: 'hub', id: hub.id });
      }
    } : undefined,
  },
  selected ? s('circle', { cx: x, cy: y, r: r + 9, class: 'select-ring' }) : null,
  desired === 'emergency' ? s('circle', { cx: x, cy: y, r: r + 4, class: 'emergency-ring' }) : null,
  shape,
  // An exclamation mark drawn, not written (no text outside the catalogues): emergency is not told by colour alone.
  desired === 'emergency' ? s('path', { class: 'hub-glyph', d: `M${x - 1.5},${y - 5.5}h3v7h-3zM${x - 1.5},${y + 3}h3v3h-3z`, 'aria-hidden': 'true' }) : null,
  hub.alarms ? s('g', { class: ['alarm-badge', hub.alarms.critical ? 'critical' : 'warning'], 'aria-hidden': 'true' },
    s('circle', { cx: x + r, cy: y - r, r: 9 }),
    s('text', { x: x + r, y: y - r + 4.5, 'data-v': '' }, String(hub.alarms.open))) : null);
}

function labelMark(l) {
  const { box } = l;
  const cls = ['label', `label-${l.feature.type}`, l.feature.type === 'hub' && state.selectedForSwitch.has(l.feature.id) && 'selected'];
  return s('g', { class: cls, 'data-label-for': l.key, 'data-key': `label-${l.key}` },
    box.leader ? s('line', { class: 'leader', x1: l.x, y1: l.y, x2: box.ax, y2: box.ay }) : null,
    s('rect', { x: box.x0, y: box.y0, width: box.x1 - box.x0, height: box.y1 - box.y0, rx: 3, class: 'label-bg' }),
    s('text', { x: box.x0 + LABEL_PAD_X, y: box.y0 + LABEL_H - 5, 'data-v': '' }, l.text));
}

// ---------- what a tap hit ----------

function hitTest(px, py) {
  const f = features();
  const labels = layout(f);
  const inBox = labels.find((l) => px >= l.box.x0 && px <= l.box.x1 && py >= l.box.y0 && py <= l.box.y1);
  if (inBox) return { type: inBox.feature.type, id: inBox.feature.id };
  let best = null;
  for (const d of [...f.hubs, ...f.sites]) {
    const dist = Math.hypot(d.x - px, d.y - py);
    if (dist <= HIT_PX && (!best || dist < best.dist)) best = { dist, type: d.type, id: d.id };
  }
  if (best) return { type: best.type, id: best.id };
  const zone = f.zones.find((z) => insidePolygon([px, py], z.pts));
  if (zone) return { type: 'zone', id: zone.id };
  const route = f.routes.find((r) => r.pts.some((p, i) => i > 0 && segmentDistance([px, py], r.pts[i - 1], p) <= 10));
  if (route) return { type: 'route', id: route.id };
  return null;
}

function insidePolygon(p, pts) {
  let inside = false;
  for (let i = 0, j = pts.length - 1; i < pts.length; j = i++) {
    const [xi, yi] = pts[i];
    const [xj, yj] = pts[j];
    if ((yi > p[1]) !== (yj > p[1]) && p[0] < ((xj - xi) * (p[1] - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

function segmentDistance(p, a, b) {
  const [dx, dy] = [b[0] - a[0], b[1] - a[1]];
  const len2 = dx * dx + dy * dy || 1;
  const u = Math.max(0, Math.min(1, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len2));
  return Math.hypot(p[0] - (a[0] + u * dx), p[1] - (a[1] + u * dy));
}

const isInfo = (feature) => state.mapInfo?.type === feature.type && state.mapInfo?.id === feature.id;

function tapFeature(hit) {
  if (!hit) {
    state.mapInfo = null;
  } else {
    state.mapInfo = hit;
    if (hit.type === 'hub' && maySwitchModes()) toggleSwitchSelection(hit.id);
  }
  requestRender();
}

/** Picks or unpicks a hub for the next mode switch (the map and the form's hub list share the selection). */
export function toggleSwitchSelection(hub) {
  if (state.selectedForSwitch.has(hub)) state.selectedForSwitch.delete(hub);
  else state.selectedForSwitch.add(hub);
  const scope = document.querySelector('input[name="scope"][value="hubs"]');
  if (scope && state.selectedForSwitch.size > 0) scope.checked = true;
  requestRender();
}

/** What the last tap on the map hit, under the map (never over it, where it would hide features). */
export function mapInfoPanel() {
  const info = state.mapInfo;
  if (!info) return null;
  const body = infoBody(info);
  if (!body) return null;
  return h('div', { class: 'map-info', id: 'map-info', role: 'status', 'data-info': `${info.type}:${info.id}` },
    ...body,
    h('button', { type: 'button', class: 'secondary map-info-close', 'aria-label': t('map.closeInfo'), onclick: () => tapFeature(null) }, T('map.closeInfoShort')));
}

function infoBody(info) {
  const r = state.region;
  if (info.type === 'hub') {
    const spec = r.hubs.find((x) => x.id === info.id);
    if (!spec) return null;
    const live = state.hubs.get(info.id);
    const c = openAlarmCounts().get(info.id);
    const ack = state.mode?.hubs?.find((m) => m.hub === info.id);
    return [
      V(nameOf(spec.name), 'strong', { class: 'info-name' }),
      h('span', { class: 'info-kind' }, T(`map.kind.${spec.kind}`)),
      h('span', { class: 'info-status' }, h('span', {}, T(live?.link?.online ? 'link.online' : 'link.offline')), h('span', {}, T(`mode.${modeDesiredOf(info.id)}`)), ack ? h('span', {}, T(`ack.${ack.status}`)) : null),
      c ? h('span', { class: 'info-alarms' }, T('map.alarmsAt', { n: c.open, critical: c.critical })) : null,
      maySwitchModes() ? h('span', { class: 'info-pick' }, T(state.selectedForSwitch.has(info.id) ? 'map.picked' : 'map.notPicked')) : null,
    ];
  }
  if (info.type === 'site') {
    const site = r.landingSites.find((x) => x.id === info.id);
    if (!site) return null;
    const routes = r.reliefRoutes.filter((x) => x.toSite === site.id).map((x) => hubName(x.fromHub));
    return [
      V(nameOf(site.name), 'strong', { class: 'info-name' }),
      h('span', { class: 'info-kind' }, T(site.kind === 'shelter' ? 'map.shelter' : 'map.isolated')),
      routes.length ? h('span', {}, T('map.servedFrom', { hubs: routes.join(state.lang === 'en' ? ', ' : '、') })) : null,
    ];
  }
  if (info.type === 'zone') {
    const z = r.noFlyZones.find((x, i) => (x.id ?? `zone-${i}`) === info.id);
    if (!z) return null;
    return [V(nameOf(z.name), 'strong', { class: 'info-name' }), h('span', { class: 'info-kind' }, T('map.noFly'))];
  }
  if (info.type === 'route') {
    const route = r.reliefRoutes.find((x, i) => (x.id ?? `route-${i}`) === info.id);
    if (!route) return null;
    const site = r.landingSites.find((x) => x.id === route.toSite);
    return [h('strong', { class: 'info-name' }, T('map.route')), h('span', {}, T('map.routeFromTo', { from: hubName(route.fromHub), to: site ? nameOf(site.name) : route.toSite }))];
  }
  return null;
}

// ---------- pan, pinch, zoom ----------

function svgPoint(e) {
  const rect = e.currentTarget.getBoundingClientRect();
  return { x: e.clientX - rect.left, y: e.clientY - rect.top };
}

function setView(next) {
  const o = origin();
  const fit = fittedView(o, map.size.w, map.size.h);
  const k = Math.max(fit.k * 0.8, Math.min(fit.k * ZOOM_MAX, next.k));
  state.mapView = { cx: next.cx, cy: next.cy, k };
  rerenderMap();
}

/** During a gesture only the map is morphed (the rest of the screen has not changed). */
function rerenderMap() {
  const el = document.getElementById('map');
  if (el) morph(el, regionMap());
}

function currentView() {
  return view(origin());
}

function zoomAt(factor, px, py) {
  const v = currentView();
  const { w, h: hh } = map.size;
  // Keep the point under (px, py) where it is.
  const mx = v.cx + (px - w / 2) / v.k;
  const my = v.cy + (py - hh / 2) / v.k;
  const k = v.k * factor;
  setView({ k, cx: mx - (px - w / 2) / k, cy: my - (py - hh / 2) / k });
}

function zoomBy(factor) {
  zoomAt(factor, map.size.w / 2, map.size.h / 2);
}

function resetView() {
  state.mapView = null;
  rerenderMap();
}

function onPointerDown(e) {
  const p = svgPoint(e);
  map.pointers.set(e.pointerId, { x: p.x, y: p.y, startX: p.x, startY: p.y });
  try {
    e.currentTarget.setPointerCapture(e.pointerId); // a drag that leaves the map still pans it
  } catch {
    // not an active pointer (a synthetic event): nothing to capture
  }
  if (map.pointers.size === 1) map.dragging = false;
  if (map.pointers.size === 2) {
    const [a, b] = [...map.pointers.values()];
    map.pinch = { dist: Math.hypot(a.x - b.x, a.y - b.y) || 1, k: currentView().k };
    map.dragging = true; // a pinch is never a tap
  }
}

function onPointerMove(e) {
  const ptr = map.pointers.get(e.pointerId);
  if (!ptr) return;
  const p = svgPoint(e);
  const [dx, dy] = [p.x - ptr.x, p.y - ptr.y];
  ptr.x = p.x;
  ptr.y = p.y;
  if (map.pointers.size === 2 && map.pinch) {
    const [a, b] = [...map.pointers.values()];
    const dist = Math.hypot(a.x - b.x, a.y - b.y) || 1;
    const v = currentView();
    zoomAt((map.pinch.k * (dist / map.pinch.dist)) / v.k, (a.x + b.x) / 2, (a.y + b.y) / 2);
    return;
  }
  if (!map.dragging && Math.hypot(p.x - ptr.startX, p.y - ptr.startY) > DRAG_PX) map.dragging = true;
  if (map.dragging && map.pointers.size === 1) {
    const v = currentView();
    setView({ k: v.k, cx: v.cx - dx / v.k, cy: v.cy - dy / v.k });
  }
}

function onPointerUp(e) {
  const ptr = map.pointers.get(e.pointerId);
  map.pointers.delete(e.pointerId);
  if (map.pointers.size < 2) map.pinch = null;
  if (!ptr || map.dragging || map.pointers.size > 0) {
    if (map.pointers.size === 0) map.dragging = false;
    return;
  }
  tapFeature(hitTest(ptr.startX, ptr.startY));
}

function onPointerCancel(e) {
  map.pointers.delete(e.pointerId);
  if (map.pointers.size < 2) map.pinch = null;
  if (map.pointers.size === 0) map.dragging = false;
}

function onWheel(e) {
  e.preventDefault();
  const p = svgPoint(e);
  zoomAt(Math.exp(-e.deltaY * 0.0015), p.x, p.y);
}

// ---------- size ----------

function watchSize() {
  const el = document.getElementById('map');
  if (!el) {
    requestRender(); // drawn again once the container is on the page and can be measured
    return;
  }
  if (map.observer?.target !== el) {
    map.observer?.disconnect();
    const observer = new ResizeObserver(() => {
      const size = measured(el.getBoundingClientRect());
      if (size.w !== map.size.w || size.h !== map.size.h) {
        map.size = size;
        rerenderMap();
      }
    });
    observer.observe(el);
    map.observer = { target: el, disconnect: () => observer.disconnect() };
  }
  const r = el.getBoundingClientRect();
  if (r.width > 0 && r.height > 0) map.size = measured(r);
}

/** The map's drawing size from its container's box (one rule for the first render and for the observer). */
const measured = (r) => ({ w: Math.max(200, Math.round(r.width)), h: Math.max(200, Math.round(r.height)) });

export function mapLegend() {
  const item = (cls, key) => h('li', {}, h('span', { class: `swatch ${cls}`, 'aria-hidden': 'true' }), T(key));
  return h('ul', { class: 'legend' },
    item('lg-hub-online', 'map.hubOnline'), item('lg-hub-offline', 'map.hubOffline'), item('lg-hub-emergency', 'map.hubEmergency'),
    item('lg-alarms', 'map.hubAlarms'), item('lg-selected', 'map.selected'),
    item('lg-shelter', 'map.shelter'), item('lg-isolated', 'map.isolated'), item('lg-nofly', 'map.noFly'), item('lg-route', 'map.route'), item('lg-sea', 'map.sea'));
}
