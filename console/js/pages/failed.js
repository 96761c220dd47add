// Failed events: the outbox rows not delivered (or any status), counts per
// status, filters, keyset pages, each row's payload as the API redacts it,
// Retry all, retry the selected rows, re-queue dead letters.

import { h, replace, badge, num, when, agoEl, section, table, select, field } from '../dom.js';

const STATUSES = {
  pending: { tone: 'blue', text: 'Pending' },
  retrying: { tone: 'yellow', text: 'Retrying' },
  dead_letter: { tone: 'red', text: 'Dead letter' },
  resolved: { tone: 'green', text: 'Resolved' },
};
const DESTINATIONS = ['meta_capi', 'google_dm', 'google_ec', 'gtm_server', 'webhook'];

const status = (st) => STATUSES[st] || { tone: 'grey', text: st };

/** The seed's toast: "12 resolved, 2 still pending, 1 dead-lettered". */
export function retrySummary(r) {
  const parts = [`${r.resolved} resolved`, `${r.failed} still pending`, `${r.dead_lettered} dead-lettered`];
  if (r.released) parts.push(`${r.released} left for the next run`);
  if (r.not_claimed) parts.push(`${r.not_claimed} busy in another run`);
  const slow = (r.timed_out_destinations || []).length;
  if (slow) parts.push(`${slow} destination${slow > 1 ? 's' : ''} timed out (tried once this run)`);
  return parts.join(', ');
}

function payload(row) {
  const shown = {
    destination_config: row.destination_config,
    event_payload: row.event_payload,
    user_data: row.user_data,
    lead_id: row.lead_id,
    event_id: row.event_id,
    dead_letter_reason: row.dead_letter_reason,
  };
  return h('details', {},
    h('summary', {}, 'Payload'),
    h('pre', { class: 'json' }, JSON.stringify(shown, null, 2)));
}

export function create(ctx) {
  const filters = { status: '', destination: '', client_id: '' };
  let cursors = [''];
  const selected = new Set();
  let names = new Map();
  let current = { items: [] };

  const results = h('div', { class: 'results' }, h('p', { class: 'empty' }, 'Loading…'));
  const counts = h('div', { class: 'counts' });
  const clientSelect = select({ id: 'filter-client' }, [['', 'All clients']]);
  const change = (key) => (e) => {
    filters[key] = e.currentTarget.value;
    cursors = [''];
    selected.clear();
    ctx.refresh();
  };
  clientSelect.addEventListener('change', change('client_id'));

  async function retry(button, body) {
    await ctx.act(button, async () => {
      try {
        const r = await ctx.api.post('/admin/failed-events/retry', body);
        ctx.toast(retrySummary(r), r.dead_lettered || r.failed ? 'yellow' : 'green');
      } finally {
        selected.clear();
        await ctx.refresh();
      }
    });
  }

  const retryAll = h('button', { type: 'button', class: 'primary', onclick: (e) => retry(e.currentTarget, { retry_all: true }) }, 'Retry all');
  const retrySelected = h('button', {
    type: 'button', id: 'retry-selected', disabled: true,
    onclick: (e) => retry(e.currentTarget, { ids: [...selected] }),
  }, 'Retry selected');
  const requeue = h('button', {
    type: 'button', id: 'requeue', disabled: true,
    onclick: (e) => retry(e.currentTarget, { ids: current.items.filter((r) => r.status === 'dead_letter').map((r) => r.id) }),
  }, 'Re-queue dead letters on this page');

  function updateButtons() {
    retrySelected.disabled = selected.size === 0;
    replace(retrySelected, selected.size ? `Retry selected (${selected.size})` : 'Retry selected');
    const dead = current.items.filter((r) => r.status === 'dead_letter').length;
    requeue.disabled = dead === 0;
    replace(requeue, dead ? `Re-queue dead letters on this page (${dead})` : 'Re-queue dead letters on this page');
  }

  const el = h('div', { class: 'page' },
    h('div', { class: 'page-head' }, h('h1', {}, 'Failed events'),
      h('div', { class: 'actions' }, retryAll, retrySelected, requeue)),
    counts,
    h('form', { class: 'filters', 'aria-label': 'Filters', onsubmit: (e) => e.preventDefault() },
      field('Status', select({ id: 'filter-status', onchange: change('status') },
        [['', 'Not resolved'], ...Object.entries(STATUSES).map(([k, v]) => [k, v.text])])),
      field('Destination', select({ id: 'filter-destination', onchange: change('destination') },
        [['', 'All destinations'], ...DESTINATIONS.map((d) => [d, d])])),
      field('Client', clientSelect)),
    results);

  function pager(next) {
    const page = cursors.length;
    return h('nav', { class: 'pager', 'aria-label': 'Pages' },
      h('button', {
        type: 'button', disabled: page === 1,
        onclick: () => { cursors.pop(); ctx.refresh(); },
      }, 'Newer'),
      h('span', {}, `Page ${page}`),
      h('button', {
        type: 'button', disabled: !next,
        onclick: () => { cursors.push(next); ctx.refresh(); },
      }, 'Older'));
  }

  function showCounts(c) {
    replace(counts, h('ul', { class: 'count-list', 'aria-label': 'Deliveries per status' },
      Object.entries(STATUSES).map(([k, v]) => h('li', { 'data-status': k },
        badge(v.tone, v.text), h('strong', { class: 'count' }, num(c[k] || 0))))));
  }

  function checkbox(row) {
    if (row.status === 'resolved') return '';
    return h('input', {
      type: 'checkbox',
      'aria-label': `Select delivery ${row.id}`,
      checked: selected.has(row.id),
      onchange: (e) => {
        if (e.currentTarget.checked) selected.add(row.id);
        else selected.delete(row.id);
        updateButtons();
      },
    });
  }

  return {
    title: 'Failed events',
    el,
    load: async () => {
      const [list, clients] = await Promise.all([
        ctx.api.get('/admin/failed-events', { ...filters, limit: 50, cursor: cursors[cursors.length - 1] }),
        ctx.api.get('/admin/clients/tracking-health'),
      ]);
      return { list, clients: clients.clients };
    },
    show: ({ list, clients }) => {
      names = new Map(clients.map((c) => [c.client_id, c.name]));
      replace(clientSelect, h('option', { value: '' }, 'All clients'),
        clients.map((c) => h('option', { value: c.client_id }, c.name || c.client_id)));
      clientSelect.value = filters.client_id;
      current = list;
      showCounts(list.counts || {});
      for (const id of [...selected]) if (!list.items.some((r) => r.id === id)) selected.delete(id);
      updateButtons();
      replace(results, section(`Deliveries (${list.items.length} on this page)`,
        table({
          caption: 'Deliveries',
          empty: 'No delivery matches these filters.',
          rows: list.items,
          rowProps: (r) => ({ 'data-id': r.id, 'data-status': r.status }),
          columns: [
            { title: 'Select', cell: checkbox },
            { title: 'Id', num: true, cell: (r) => String(r.id) },
            { title: 'Status', cell: (r) => badge(status(r.status).tone, status(r.status).text) },
            { title: 'Client', cell: (r) => names.get(r.client_id) || r.client_id },
            { title: 'Destination', cell: (r) => [r.destination, r.destination_name ? ` (${r.destination_name})` : ''] },
            { title: 'Event', cell: (r) => [r.event_name, h('br'), h('span', { class: 'muted' }, when(r.event_time))] },
            { title: 'Retries', num: true, cell: (r) => `${r.retry_count} / ${r.max_retries}` },
            { title: 'Next retry', cell: (r) => (r.status === 'pending' || r.status === 'retrying') && r.next_retry_at ? when(r.next_retry_at) : '—' },
            { title: 'Last error', cell: (r) => [r.last_error || '—', r.last_attempt_at ? [h('br'), h('span', { class: 'muted' }, agoEl(r.last_attempt_at))] : ''] },
            { title: 'Details', cell: payload },
          ],
        }),
        pager(list.next_cursor)));
    },
  };
}
