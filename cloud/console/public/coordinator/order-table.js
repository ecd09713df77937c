// Relief/medical and held orders on the coordinator console: destinations and drones by name.
// Three columns, so the table fits the side column of a 1024 px screen: the priority sits with the
// order, the drone with the state.
import { h, T, V } from '../lib/dom.js';
import { deviceName, hubName, nameOf, state } from '../lib/state.js';

const COLUMNS = ['orders.id', 'orders.to', 'orders.state'];

function destinationName(o) {
  if (o.destination?.type === 'site') return nameOf(state.region.landingSites.find((x) => x.id === o.destination.siteId)?.name) || o.destination.siteId;
  return hubName(o.destination?.hub);
}

export function orderTable(orders) {
  if (orders.length === 0) return [h('p', { class: 'empty' }, T('orders.none'))];
  return [h('table', { class: 'table order-table' },
    h('thead', {}, h('tr', {}, ...COLUMNS.map((k) => h('th', { scope: 'col' }, T(k))))),
    h('tbody', {}, ...orders.slice(0, 50).map((o) => h('tr', { 'data-order-id': o.id, 'data-key': `order-${o.id}` },
      h('td', { class: 'order-ref' }, V(o.reference ?? o.id, 'span', { class: 'ref' }), ' ',
        h('span', { class: ['badge', 'priority', `priority-${o.priority}`] }, T(`priority.${o.priority}`))),
      h('td', {}, V(destinationName(o))),
      h('td', { class: 'order-state' }, h('span', {}, T(`orderState.${o.state}`)),
        o.drone ? V(deviceName(o.drone.hub, o.drone.id), 'span', { class: 'order-drone', title: hubName(o.drone.hub) }) : null)))))];
}
