// A short status message at the foot of the screen (outside the morphed area).
import { h } from './dom.js';
import { t } from './i18n.js';

let flashTimer = null;

export function flash(key, params, kind) {
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
