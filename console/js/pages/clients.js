// Clients: each client's tracking-health badge (colour, icon and words),
// what it means and what to do, since when, the signals behind it; the
// "needs attention" filter; running the detector now.

import { h, replace, badge, num, when, section, select, field, facts } from '../dom.js';

const OUTCOMES = {
  widget_stopped: 'Widget stopped',
  widget_not_in_prod: 'Widget not in prod',
  widget_not_used: 'Widget in prod but unused',
  form_tracking_lost: 'Form tracking lost',
};
const TYPES = ['client', 'onboarding', 'test', 'demo', 'former'];

function daysSince(date) {
  const days = Math.floor((Date.now() - Date.parse(`${date}T00:00:00Z`)) / 86400000);
  return days < 1 ? 'today' : `${days} day${days === 1 ? '' : 's'}`;
}

function healthBadge(c) {
  if (c.badge) {
    const text = OUTCOMES[c.badge.outcome] || c.badge.outcome;
    return badge(c.badge.color, text, `Tracking health of ${c.name}: ${text} (${c.badge.color})`);
  }
  if (c.signals) return badge('green', 'Healthy', `Tracking health of ${c.name}: healthy`);
  return badge('grey', 'Not classified', `Tracking health of ${c.name}: not classified`);
}

function card(c) {
  const s = c.signals;
  return h('article', { class: 'card client', 'data-client-id': c.client_id },
    h('div', { class: 'card-head' },
      h('h3', { class: 'client-name' }, c.name || c.client_id),
      healthBadge(c)),
    h('p', { class: 'muted' }, `${c.client_type}${c.enabled ? '' : ' · disabled'}`,
      c.badge && c.badge.since ? ` · since ${c.badge.since} (${daysSince(c.badge.since)})` : ''),
    c.badge ? [
      h('p', {}, h('strong', {}, 'What it means: '), c.badge.meaning),
      h('p', {}, h('strong', {}, 'What to do: '), c.badge.what_to_do),
    ] : null,
    s ? h('details', {},
      h('summary', {}, 'Signals'),
      facts([
        ['Widget visitors (30 d)', num(s.widget_visitors_30d)],
        ['Chat visitors (30 d)', num(s.conversation_visitors_30d)],
        ['Form submits (30 d)', num(s.form_submits_30d)],
        ['Widget visitors, days −30 to −7', num(s.widget_prior_23d)],
        ['Widget visitors, last 7 days', num(s.widget_last_7d)],
        ['Verdict', s.verdict],
        ['Detected', when(s.detected_at)],
      ])) : h('p', { class: 'muted' }, 'Not classified (demo, former or disabled clients are not checked).'),
    h('p', {}, h('a', { href: `#/analytics/${encodeURIComponent(c.client_id)}` }, 'Analytics'),
      h('span', { class: 'visually-hidden' }, ` of ${c.name}`)));
}

export function create(ctx) {
  const filters = { needs_attention: '', outcome: '', client_type: '' };
  const results = h('div', { class: 'results' }, h('p', { class: 'empty' }, 'Loading…'));
  const change = (key) => (e) => {
    filters[key] = e.currentTarget.value;
    ctx.refresh();
  };
  const detect = h('button', {
    type: 'button',
    onclick: (e) => ctx.post(e.currentTarget, '/admin/tracking-health/detect', {
      done: (r) => {
        const counts = r.counts || {};
        const flagged = Object.entries(counts).filter(([k]) => k !== 'healthy').reduce((n, [, v]) => n + v, 0);
        return `Detector ran: ${flagged} need attention, ${counts.healthy || 0} healthy.`;
      },
      conflict: 'A detection is running: try again when it has finished.',
    }),
  }, 'Run detector now');
  const el = h('div', { class: 'page' },
    h('div', { class: 'page-head' }, h('h1', {}, 'Clients'), h('div', { class: 'actions' }, detect)),
    h('form', { class: 'filters', 'aria-label': 'Filters', onsubmit: (e) => e.preventDefault() },
      field('Show', select({ id: 'filter-attention', onchange: change('needs_attention') },
        [['', 'All clients'], ['true', 'Needs attention'], ['false', 'No badge']])),
      field('Badge', select({ id: 'filter-outcome', onchange: change('outcome') },
        [['', 'Any badge'], ...Object.entries(OUTCOMES)])),
      field('Type', select({ id: 'filter-type', onchange: change('client_type') },
        [['', 'Any type'], ...TYPES.map((t) => [t, t])]))),
    results);
  return {
    title: 'Clients',
    el,
    load: () => ctx.api.get('/admin/clients/tracking-health', filters),
    show: (r) => {
      const attention = r.clients.filter((c) => c.badge).length;
      replace(results, section(`${r.count} client${r.count === 1 ? '' : 's'}, ${attention} needing attention`,
        r.clients.length
          ? h('div', { class: 'grid clients' }, r.clients.map(card))
          : h('p', { class: 'empty' }, 'No client matches these filters.')));
    },
  };
}
