// DOM helpers. No innerHTML anywhere: text typed by people or sent by devices is always shown literally.
import { t } from './i18n.js';

const SVG_NS = 'http://www.w3.org/2000/svg';

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

/**
 * `on<event>` attributes keep their handler in `el.__on`, called by one shared listener. When the
 * morph keeps an element that is already on the page, it hands over the new tree's handlers
 * (`adoptHandlers`), so a kept button always acts on what it shows now, never on an older closure.
 */
function dispatch(e) {
  return this.__on?.[e.type]?.call(this, e);
}

export function adoptHandlers(from, to) {
  if (!from.__on && !to.__on) return;
  for (const type of Object.keys(to.__on ?? {})) if (!from.__on?.[type]) from.addEventListener(type, dispatch);
  from.__on = to.__on;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) {
      const type = k.slice(2);
      (el.__on ??= {})[type] = v;
      el.addEventListener(type, dispatch);
    } else if (k === 'class') el.setAttribute('class', Array.isArray(v) ? v.filter(Boolean).join(' ') : v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

/** Text from the catalogue. */
export const T = (key, params) => document.createTextNode(t(key, params));

/** A value from the API or a device, shown literally. */
export function V(value, tag = 'span', attrs = {}) {
  const el = h(tag, { ...attrs, 'data-v': '' });
  el.textContent = value === null || value === undefined ? '' : String(value);
  return el;
}

export function svgTitle(text) {
  const el = s('title', { 'data-v': '' });
  el.textContent = text;
  return el;
}

export function svgText(text, x, y, cls, attrs = {}) {
  const el = s('text', { x, y, class: cls, 'data-v': '', ...attrs });
  el.textContent = text;
  return el;
}
