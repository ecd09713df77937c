// The disaster coordinator's console: the region map, open alarms, the region's mode and the switch,
// proposals from outside systems, relief and held orders.
//
// Layout (coordinator.css): open alarms come first in the side column, so the first one is on screen
// without scrolling at every size (issue 13, item 4); the map keeps the large area. On a landscape
// screen the map stays in view beside the side column; on a portrait tablet open alarms and the mode
// sit side by side above the map, and the switch form follows the map.
import { alarmCountBadge, alarmList, openAlarmTotals } from '../alarms/alarm-list.js';
import { h, T, V } from '../lib/dom.js';
import { nameOf, state } from '../lib/state.js';
import { mapInfoPanel, mapLegend, regionMap } from '../map/region-map.js';
import { modePanel, switchDialog, switchPanel } from './mode-panel.js';
import { orderTable } from './order-table.js';
import { proposalList } from './proposal-list.js';

const FINISHED = new Set(['delivered', 'picked_up', 'failed', 'cancelled']);

export function coordinatorView() {
  const open = [...state.alarms.values()].filter((a) => a.state === 'open');
  return h('div', { class: 'coord', id: 'coordinator-console' },
    h('section', { class: 'card map-card', 'aria-labelledby': 'map-h' },
      h('h2', { id: 'map-h' }, T('map.title'), ' ', V(nameOf(state.region.name), 'span', { class: 'region-name' })),
      h('div', { id: 'map' }, regionMap()),
      mapInfoPanel(),
      mapLegend(),
    ),
    h('div', { class: 'coord-side' },
      h('section', { class: 'card coord-alarms-card', id: 'coord-alarms-card', 'aria-labelledby': 'calarms-h' },
        h('h2', { id: 'calarms-h', class: 'with-count' }, h('span', {}, T('alarms.openTitle')), alarmCountBadge(openAlarmTotals(), { 'data-key': 'coord-alarm-count' })),
        h('div', { id: 'coord-alarms', class: 'coord-alarm-scroll', tabindex: open.length > 0 ? 0 : undefined, 'aria-labelledby': 'calarms-h' },
          alarmList(open, true))),
      modePanel(),
      switchPanel(),
      h('section', { class: 'card', 'aria-labelledby': 'prop-h' }, h('h2', { id: 'prop-h' }, T('proposals.title')), h('div', { id: 'proposals' }, proposalList())),
      h('section', { class: 'card', 'aria-labelledby': 'relief-h' }, h('h2', { id: 'relief-h' }, T('orders.reliefTitle')),
        h('div', { id: 'relief-orders' }, orderTable(state.orders.filter((o) => (o.priority === 'relief' || o.priority === 'medical') && !FINISHED.has(o.state))))),
      h('section', { class: 'card', 'aria-labelledby': 'held-h' }, h('h2', { id: 'held-h' }, T('orders.heldTitle')),
        h('div', { id: 'held-orders' }, orderTable(state.orders.filter((o) => o.state === 'held')))),
    ),
    switchDialog(),
  );
}
