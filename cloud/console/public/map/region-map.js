// The region map on the coordinator console: hubs, shelters, isolated settlements, no-fly zones and
// relief routes. Tapping a hub (coordinators) picks it for the next mode switch.
import { h, s, svgText, svgTitle, T } from '../lib/dom.js';
import { t } from '../lib/i18n.js';
import { maySwitchModes, modeDesiredOf, nameOf, requestRender, state } from '../lib/state.js';

export function mapLegend() {
  const item = (cls, key) => h('li', {}, h('span', { class: `swatch ${cls}`, 'aria-hidden': 'true' }), T(key));
  return h('ul', { class: 'legend' },
    item('lg-hub-online', 'map.hubOnline'), item('lg-hub-offline', 'map.hubOffline'), item('lg-hub-emergency', 'map.hubEmergency'),
    item('lg-shelter', 'map.shelter'), item('lg-isolated', 'map.isolated'), item('lg-nofly', 'map.noFly'), item('lg-route', 'map.route'),
    item('lg-selected', 'map.selected'));
}

/** Picks or unpicks a hub for the next mode switch (the map and the form's hub list share the selection). */
export function toggleSwitchSelection(hub) {
  if (state.selectedForSwitch.has(hub)) state.selectedForSwitch.delete(hub);
  else state.selectedForSwitch.add(hub);
  const scope = document.querySelector('input[name="scope"][value="hubs"]');
  if (scope && state.selectedForSwitch.size > 0) scope.checked = true;
  requestRender();
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

export function regionMap() {
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
    svg.append(s('g', { class: 'site', 'data-site': site.id, 'data-key': `map-site-${site.id}` }, shape, svgTitle(nameOf(site.name)),
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
      'data-hub': hub.id, 'data-key': `map-hub-${hub.id}`, tabindex: maySwitchModes() ? 0 : undefined, role: maySwitchModes() ? 'button' : undefined,
      onclick: maySwitchModes() ? () => toggleSwitchSelection(hub.id) : undefined,
      onkeydown: maySwitchModes() ? (e) => {
        if (e.key === 'Enter' || e.key === ' ') {
          e.preventDefault();
          toggleSwitchSelection(hub.id);
        }
      } : undefined,
      'aria-pressed': maySwitchModes() ? String(selected) : undefined,
      'aria-label': `${nameOf(hub.name)}: ${t(live?.link?.online ? 'link.online' : 'link.offline')}, ${t(`mode.${desired}`)}${ack ? `, ${t(`ack.${ack.status}`)}` : ''}`,
    },
    s('circle', { cx: x, cy: y, r: hub.kind === 'roadside-station' ? 11 : 8, class: 'hub-dot' }),
    svgTitle(nameOf(hub.name)),
    svgText(nameOf(hub.name), x + 14, y - 4, 'hub-label'),
    svgText(`${t(live?.link?.online ? 'link.online' : 'link.offline')} · ${t(`mode.${desired}`)}${ack && ack.status !== 'acknowledged' ? ` · ${t(`ack.${ack.status}`)}` : ''}`, x + 14, y + 16, 'hub-sub'),
    );
    svg.append(g);
  }
  return svg;
}

