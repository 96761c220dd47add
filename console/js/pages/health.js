// Health, the landing page: the overall colour and the rule that set it, the
// last check's metrics, open alerts (Resolve), per-destination deliveries
// over 24 h with latency percentiles, ingest against a week before.

import { h, replace, badge, num, pct, ms, when, agoEl, section, table, facts, icon } from '../dom.js';
import { barList } from '../charts.js';

const OVERALL = {
  green: 'All clear',
  yellow: 'Needs a look',
  red: 'Action needed',
};

/** What each check measures, and how its value reads. */
const METRICS = {
  emq_low: { name: 'Event match quality (EMQ, 24 h)', value: (v) => `${num(v)} / 10` },
  failed_events_backlog: { name: 'Conversions waiting for delivery', value: num },
  delivery_error_rate: { name: 'Delivery error rate (1 h)', value: (v) => pct(v) },
  dead_letters: { name: 'New dead letters since the previous check', value: num },
  ingest_silence: { name: 'Events accepted in the last 30 min', value: num },
};

const METRIC_STATUS = {
  green: 'OK',
  yellow: 'Warning',
  red: 'Critical',
  grey: 'Too little volume to judge',
};

const metric = (type) => METRICS[type] || { name: type, value: num };

/** `global`, `client:<id>`, `destination:<id>` in words (the whole scope on hover). */
function scope(value) {
  const [kind, id] = String(value).split(':');
  const words = { global: 'Global', client: 'Client', destination: 'Destination' }[kind] || kind;
  return h('span', { title: value }, id ? `${words} ${id.slice(0, 8)}…` : words);
}

const DESTINATION_COLOUR = { green: 'Healthy', yellow: 'Degraded', red: 'Failing' };

function overall(s) {
  const word = { green: 'Green', yellow: 'Yellow', red: 'Red' }[s.status] || s.status;
  const checked = s.last_check_at
    ? ['Last checked ', agoEl(s.last_check_at), ` (${when(s.last_check_at)})`]
    : ['No check has run yet.'];
  return h('section', { class: `overall tone-${s.status}`, 'aria-labelledby': 'overall-title', 'data-status': s.status },
    h('div', { class: 'overall-icon' }, icon(s.status === 'green' ? 'check' : s.status === 'red' ? 'cross' : 'warn')),
    h('div', {},
      h('h2', { id: 'overall-title', 'aria-label': `Overall status: ${word}, ${OVERALL[s.status] || ''}` },
        `${word}: ${OVERALL[s.status] || ''}`),
      h('p', { class: 'rule' }, 'Why: ', s.rule, '.'),
      h('p', { class: 'checked' }, checked)));
}

function metrics(s) {
  return section('Last check',
    table({
      caption: 'Metrics of the last check',
      empty: 'No check has run yet: use "Run check now".',
      rows: s.metrics || [],
      columns: [
        { title: 'Metric', cell: (m) => metric(m.metric).name },
        { title: 'Value', num: true, cell: (m) => metric(m.metric).value(m.value) },
        { title: 'Threshold', num: true, cell: (m) => metric(m.metric).value(m.threshold) },
        { title: 'Volume', num: true, cell: (m) => num(m.volume) },
        { title: 'Status', cell: (m) => badge(m.colour, METRIC_STATUS[m.colour] || m.status, `${metric(m.metric).name}: ${METRIC_STATUS[m.colour] || m.status}`) },
      ],
    }));
}

function alerts(s, ctx) {
  const resolve = (a) => h('button', {
    type: 'button',
    'aria-label': `Resolve alert ${a.id}: ${metric(a.alert_type).name}, ${a.scope}`,
    onclick: (e) => ctx.post(e.currentTarget, `/admin/tracking-health/alerts/${encodeURIComponent(a.id)}/resolve`, {
      done: () => `Alert ${a.id} resolved.`,
      conflict: `Alert ${a.id} was already resolved.`,
    }),
  }, 'Resolve');
  const rows = s.open_alerts || [];
  return section(`Open alerts (${rows.length})`,
    table({
      caption: 'Open alerts',
      empty: 'No open alert.',
      rows,
      rowProps: (a) => ({ 'data-alert-id': a.id }),
      columns: [
        { title: 'Severity', cell: (a) => badge(a.severity === 'critical' ? 'red' : 'yellow', a.severity === 'critical' ? 'Critical' : 'Warning') },
        { title: 'Type', cell: (a) => metric(a.alert_type).name },
        { title: 'Scope', cell: (a) => scope(a.scope) },
        { title: 'Since', cell: (a) => agoEl(a.created_at) },
        { title: 'Value vs threshold', cell: (a) => `${metric(a.alert_type).value(a.metric_value)} vs ${metric(a.alert_type).value(a.threshold)}` },
        { title: 'Message', cell: (a) => a.message },
        { title: 'Action', cell: resolve },
      ],
    }));
}

function destinations(s) {
  const rows = s.destinations_24h || [];
  if (!rows.length) return section('Deliveries per destination (24 h)', h('p', { class: 'empty' }, 'No delivery attempt in the last 24 hours.'));
  const slowest = Math.max(1, ...rows.map((d) => (d.latency_ms && d.latency_ms.p99) || 0));
  return section('Deliveries per destination (24 h)',
    h('div', { class: 'grid' }, rows.map((d) => h('article', { class: 'card destination', 'data-destination': d.destination_id },
      h('h3', {}, d.destination, h('span', { class: 'muted' }, ` ${String(d.destination_id).slice(0, 8)}`)),
      facts([
        ['Attempts', num(d.attempts)],
        ['Success rate', badge(d.colour, `${pct(d.success_rate)} ${DESTINATION_COLOUR[d.colour] || ''}`.trim())],
      ]),
      barList({
        title: `Latency of ${d.destination} ${String(d.destination_id).slice(0, 8)}`,
        max: slowest,
        format: ms,
        rows: ['p50', 'p90', 'p99'].map((p) => ({ label: p, value: d.latency_ms ? d.latency_ms[p] : null })),
      })))));
}

function ingest(s) {
  const i = s.ingest || {};
  const change = i.change === null || i.change === undefined
    ? 'no events the week before to compare with'
    : `${i.change >= 0 ? '+' : ''}${pct(i.change)} against the week before`;
  return section('Ingest volume',
    barList({
      title: 'Events accepted',
      rows: [
        { label: 'Last 24 h', value: i.events_24h },
        { label: 'Same hours a week before', value: i.events_same_hours_week_before },
      ],
    }),
    h('p', { class: 'change' }, typeof i.change === 'number' ? icon(i.change < 0 ? 'down' : 'up') : null, h('span', {}, change)));
}

export function create(ctx) {
  const results = h('div', { class: 'results' }, h('p', { class: 'empty' }, 'Loading…'));
  const run = h('button', {
    type: 'button',
    onclick: (e) => ctx.post(e.currentTarget, '/admin/tracking-health/check', {
      done: (r) => `Check done: alerts ${r.alerts_opened} opened, ${r.alerts_updated} updated, ${r.alerts_resolved} resolved.`,
      conflict: 'A check is running: its results will show on the next refresh.',
    }),
  }, 'Run check now');
  const el = h('div', { class: 'page' },
    h('div', { class: 'page-head' }, h('h1', {}, 'Health'), h('div', { class: 'actions' }, run)),
    results);
  return {
    title: 'Health',
    el,
    load: () => ctx.api.get('/admin/tracking-health/summary'),
    show: (s) => replace(results, overall(s), alerts(s, ctx), metrics(s), destinations(s), ingest(s)),
  };
}
