// Live updates patch the page instead of rebuilding it (issue 13, item 2). A screen builds a fresh
// tree from `state`; morphdom walks it against the page and changes only what differs. Elements that
// persist stay the same DOM nodes, so a finger already on a button or a map dot still gets its click
// when an update lands mid-press, and focus and scroll positions stay put.
//
// Rules for screens:
// - Every item of a list that can change has a stable `data-key` (or an `id`): the morph matches by it,
//   never by position, so a kept button belongs to the same alarm, order or hub it did before.
// - Handlers come from `h()`'s `on*` attributes; the kept element takes the new tree's handlers.
// - Form controls a person types into keep what they typed; a control whose value comes from `state`
//   says so with `data-controlled`.
// - An element marked `data-morph-skip` is left alone once on the page (a drawn base map, an open dialog).
import morphdom from '../vendor/morphdom.js';
import { adoptHandlers } from './dom.js';

const EDITABLE = new Set(['INPUT', 'TEXTAREA', 'SELECT']);

export const keyOf = (node) => (node.nodeType === 1 ? node.id || node.getAttribute('data-key') || undefined : undefined);

export function morph(container, ...children) {
  const next = container.cloneNode(false);
  next.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  morphdom(container, next, {
    childrenOnly: true,
    getNodeKey: keyOf,
    onBeforeElUpdated(from, to) {
      if (from.hasAttribute('data-morph-skip')) return false;
      if (EDITABLE.has(from.tagName) && !to.hasAttribute('data-controlled')) {
        if (from.type === 'checkbox' || from.type === 'radio') to.checked = from.checked;
        else to.value = from.value;
      }
      adoptHandlers(from, to);
      return true;
    },
  });
}
