// Emergency-mode proposals from outside systems (the hazard feed): who proposes, why, for which hubs
// (by name). A proposal never switches anything: "Switch as proposed" only fills the switch form.
import { h, T, V } from '../lib/dom.js';
import { fmtTime } from '../lib/i18n.js';
import { hubName, maySwitchModes, state } from '../lib/state.js';
import { prefillSwitch } from './mode-panel.js';

/** The proposing system as people know it (catalogue `proposals.source.<id>`); its id when the catalogue has no name. */
function sourceName(source) {
  const key = `proposals.source.${source}`;
  return typeof state.catalogue[key] === 'string' ? h('strong', { class: 'proposal-source' }, T(key)) : V(source, 'strong', { class: 'proposal-source' });
}

export function proposalList() {
  if (state.proposals.length === 0) return [h('p', { class: 'empty' }, T('proposals.none'))];
  return [h('ul', { class: 'proposal-list' }, ...state.proposals.map((p) => h('li', { class: 'proposal', 'data-proposal': p.id, 'data-key': `proposal-${p.id}` },
    h('p', { class: 'proposal-head' },
      h('span', { class: 'badge bad' }, T('mode.emergency')), ' ', sourceName(p.source), ' ',
      // The source is the sender's word; the account is from its credential.
      p.by ? h('span', { class: 'proposal-by' }, T('proposals.sentBy', { v: p.by })) : null, p.by ? ' ' : null,
      h('span', { class: 'proposal-time' }, T('common.text', { v: fmtTime(p.createdAt) }))),
    V(p.reason, 'p', { class: 'proposal-reason' }),
    p.hubs
      ? h('p', { class: 'proposal-hubs' }, h('span', {}, T('proposals.hubsLabel', { n: p.hubs.length })), ' ',
        ...p.hubs.map((id) => V(hubName(id), 'span', { class: 'hub-chip', 'data-hub': id, 'data-key': `proposal-${p.id}-${id}` })))
      : h('p', { class: 'proposal-hubs' }, T('proposals.wholeRegion')),
    maySwitchModes()
      ? h('button', { type: 'button', class: 'secondary proposal-adopt', onclick: () => prefillSwitch({ hubs: p.hubs, reason: p.reason }) }, T('proposals.adopt'))
      : null)))];
}
