// Analytics of one client: summary cards with the change against the
// previous period, the trends chart, top events, traffic sources, devices,
// and the sessions table with pages. Date range (at most 400 days, ending
// today at the latest) and time zone are limited to what the API accepts.

import { h, replace, num, pct, seconds, when, icon, section, table, select, field } from '../dom.js';
import { columnChart, barList } from '../charts.js';

const MAX_DAYS = 400;

const CARDS = [
  ['sessions', 'Sessions', num],
  ['unique_visitors', 'Unique visitors', num],
  ['chats_started', 'Chats started', num],
  ['forms_submitted', 'Forms submitted', num],
  ['conversion_rate', 'Conversion rate', (v) => pct(v)],
  ['avg_session_duration_s', 'Average session', seconds],
];

const TREND_METRICS = [
  ['sessions', 'Sessions'],
  ['unique_visitors', 'Unique visitors'],
  ['events', 'Events'],
  ['chats_started', 'Chats started'],
  ['forms_submitted', 'Forms submitted'],
  ['converted_sessions', 'Converted sessions'],
];

const browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';

/** Today's date (YYYY-MM-DD) in `tz`. */
export function today(tz) {
  try {
    return new Intl.DateTimeFormat('en-CA', { timeZone: tz || 'UTC', year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date());
  } catch {
    return new Date().toISOString().slice(0, 10);
  }
}

export function addDays(date, n) {
  const d = new Date(`${date}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

function span(from, to) {
  return Math.round((Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / 86400000) + 1;
}

/** Why the API would refuse this range, or ''. */
export function rangeProblem(from, to, latest) {
  if (!from || !to) return 'Choose both dates.';
  if (to > latest) return `The range cannot end after today (${latest}).`;
  if (from > to) return 'The first day must not be after the last.';
  if (span(from, to) > MAX_DAYS) return `At most ${MAX_DAYS} days at a time.`;
  return '';
}

function change(value, previous) {
  if (value === null || value === undefined) return h('p', { class: 'change muted' }, 'no figure for the previous period');
  if (value === 0) return h('p', { class: 'change' }, `no change vs ${previous.from} – ${previous.to}`);
  return h('p', { class: `change ${value > 0 ? 'up' : 'down'}` },
    icon(value > 0 ? 'up' : 'down'),
    h('span', {}, `${value > 0 ? '+' : ''}${value} % vs ${previous.from} – ${previous.to}`));
}

function cards(summary) {
  return h('div', { class: 'grid cards', role: 'list', 'aria-label': 'Summary' }, CARDS.map(([key, label, fmt]) =>
    h('div', { class: 'card figure', role: 'listitem', 'data-figure': key },
      h('p', { class: 'figure-label' }, label),
      h('p', { class: 'figure-value' }, fmt(summary.totals[key])),
      change(summary.change_pct[key], summary.previous))));
}

function top(title, rows, unit) {
  return h('div', { class: 'top-list' }, h('h3', {}, title),
    rows && rows.length
      ? barList({ title, rows: rows.map((r) => ({ label: r.key, value: r.count, text: `${num(r.count)} ${unit}` })) })
      : h('p', { class: 'empty' }, 'None in this range.'));
}

export function create(ctx) {
  const clientId = ctx.params[0] || '';
  const base = `/admin/analytics/${encodeURIComponent(clientId)}`;
  const state = { from: '', to: '', tz: '', metric: 'sessions', clientZone: '' };
  let cursors = [''];
  let clients = null;
  let last = null;

  const results = h('div', { class: 'results' }, h('p', { class: 'empty' }, 'Loading…'));
  const problem = h('p', { class: 'form-error', role: 'alert' });
  const clientSelect = select({ id: 'analytics-client', onchange: (e) => ctx.navigate(`#/analytics/${encodeURIComponent(e.currentTarget.value)}`) }, [['', 'Choose a client']]);
  const fromInput = h('input', { type: 'date', id: 'from', required: true });
  const toInput = h('input', { type: 'date', id: 'to', required: true });
  const tzSelect = select({ id: 'tz' }, []);

  const latest = () => today(state.tz || state.clientZone || 'UTC');

  function fillZones() {
    const zones = [['', state.clientZone ? `Client's zone (${state.clientZone})` : 'Client\'s zone'], ['UTC', 'UTC']];
    if (!zones.some(([z]) => z === browserZone)) zones.push([browserZone, `${browserZone} (this browser)`]);
    replace(tzSelect, zones.map(([v, l]) => h('option', { value: v }, l)));
    tzSelect.value = state.tz;
  }

  function apply(from, to) {
    const why = rangeProblem(from, to, latest());
    replace(problem, why);
    if (why) return;
    state.from = from;
    state.to = to;
    cursors = [''];
    ctx.refresh();
  }

  const onDates = () => apply(fromInput.value, toInput.value);
  fromInput.addEventListener('change', onDates);
  toInput.addEventListener('change', onDates);
  tzSelect.addEventListener('change', () => {
    state.tz = tzSelect.value;
    cursors = [''];
    ctx.refresh();
  });
  const preset = (days) => h('button', {
    type: 'button',
    onclick: () => {
      const to = latest();
      apply(addDays(to, 1 - days), to);
    },
  }, `Last ${days} days`);

  fillZones();
  const controls = h('form', { class: 'filters', 'aria-label': 'Client, dates and time zone', onsubmit: (e) => e.preventDefault() },
    field('Client', clientSelect),
    field('From', fromInput),
    field('To', toInput),
    field('Time zone', tzSelect),
    h('div', { class: 'presets' }, preset(7), preset(30), preset(90)));
  const el = h('div', { class: 'page' },
    h('div', { class: 'page-head' }, h('h1', {}, 'Analytics')),
    controls, problem, results);

  function trends(days) {
    const label = TREND_METRICS.find(([k]) => k === state.metric)[1];
    const metricSelect = select({
      id: 'trend-metric',
      value: state.metric,
      onchange: (e) => {
        state.metric = e.currentTarget.value;
        replace(chartSlot, trends(last.trends.days));
      },
    }, TREND_METRICS);
    return [
      field('Figure', metricSelect),
      columnChart({
        title: `${label} per day`,
        points: days.map((d) => ({ key: d.date, label: d.date, short: d.date.slice(5), value: d[state.metric] })),
      }),
      h('details', {}, h('summary', {}, 'The figures as a table'),
        table({
          caption: `${label} per day`,
          rows: days,
          columns: [
            { title: 'Day', cell: (d) => d.date },
            ...TREND_METRICS.map(([k, l]) => ({ title: l, num: true, cell: (d) => num(d[k]) })),
          ],
        })),
    ];
  }
  const chartSlot = h('div', { class: 'chart-slot' });

  function sessions(page) {
    const n = cursors.length;
    return section('Sessions',
      table({
        caption: 'Sessions, newest first',
        empty: 'No session in this range.',
        rows: page.sessions,
        columns: [
          { title: 'Started', cell: (r) => when(r.started_at) },
          { title: 'Duration', num: true, cell: (r) => seconds(r.duration_s) },
          { title: 'Events', num: true, cell: (r) => num(r.events) },
          { title: 'Landing page', cell: (r) => r.landing_page || '—' },
          { title: 'Source', cell: (r) => r.source || '—' },
          { title: 'Device', cell: (r) => [r.device_type, r.browser, r.os].filter(Boolean).join(' · ') || '—' },
          { title: 'Chat', cell: (r) => (r.chat_started ? 'Yes' : 'No') },
          { title: 'Form', cell: (r) => (r.form_submitted ? 'Yes' : 'No') },
        ],
      }),
      h('nav', { class: 'pager', 'aria-label': 'Session pages' },
        h('button', { type: 'button', disabled: n === 1, onclick: () => { cursors.pop(); ctx.refresh(); } }, 'Newer'),
        h('span', {}, `Page ${n}`),
        h('button', { type: 'button', disabled: !page.next_cursor, onclick: () => { cursors.push(page.next_cursor); ctx.refresh(); } }, 'Older')));
  }

  return {
    title: 'Analytics',
    el,
    load: async () => {
      if (!clients) clients = (await ctx.api.get('/admin/clients/tracking-health')).clients;
      if (!clientId) return null;
      const p = { from: state.from, to: state.to, tz: state.tz };
      const get = (name, extra) => ctx.api.get(`${base}/${name}`, { ...p, ...extra });
      const [summary, trendsData, events, sources, devices, page] = await Promise.all([
        get('summary'), get('trends'), get('events', { limit: 10 }), get('traffic-sources', { limit: 10 }),
        get('devices', { limit: 10 }), get('sessions', { limit: 20, cursor: cursors[cursors.length - 1] }),
      ]);
      return { summary, trends: trendsData, events, sources, devices, page };
    },
    show: (data) => {
      replace(clientSelect, h('option', { value: '' }, 'Choose a client'),
        clients.map((c) => h('option', { value: c.client_id }, c.name || c.client_id)));
      clientSelect.value = clientId;
      if (!data) {
        replace(results, h('p', { class: 'empty' }, 'Choose a client to see its analytics.'));
        return;
      }
      last = data;
      const range = data.summary.range;
      if (!state.tz) state.clientZone = range.tz;
      state.from = range.from;
      state.to = range.to;
      fromInput.value = range.from;
      toInput.value = range.to;
      toInput.max = latest();
      fromInput.max = range.to;
      fromInput.min = addDays(range.to, 1 - MAX_DAYS);
      fillZones();
      const name = (clients.find((c) => c.client_id === clientId) || {}).name || clientId;
      replace(chartSlot, trends(data.trends.days));
      replace(results,
        h('p', { class: 'range' }, h('strong', {}, name), ` · ${range.from} – ${range.to} (${range.days} days, ${range.tz})`),
        cards(data.summary),
        section('Trends', chartSlot),
        section('Top events', top('Events (bots excluded)', data.events.events, 'events')),
        section('Traffic sources',
          h('div', { class: 'grid' },
            top('Referrers', data.sources.referrers, 'sessions'),
            top('UTM sources', data.sources.utm_sources, 'sessions'))),
        section('Devices',
          h('div', { class: 'grid' },
            top('Device types', data.devices.devices, 'sessions'),
            top('Browsers', data.devices.browsers, 'sessions'),
            top('Operating systems', data.devices.os, 'sessions'))),
        sessions(data.page));
    },
  };
}
