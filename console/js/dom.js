// Building the page. Everything the API sends is put in as text (text
// nodes, textContent, attribute values): never parsed as HTML. No inline
// styles either (the Content-Security-Policy forbids them): classes only.

const SVG_NS = 'http://www.w3.org/2000/svg';

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

function set(el, props) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === 'value' || key === 'checked') {
      continue; // properties, set once the children exist (a select's options)
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
}

/** An HTML element: h('p', {class: 'x'}, 'text', child, [more]). */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  set(el, props);
  append(el, children);
  if (props && 'value' in props && props.value !== undefined) el.value = props.value;
  if (props && props.checked) el.checked = true;
  return el;
}

/** An SVG element, same arguments. */
export function s(tag, props, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  set(el, props);
  append(el, children);
  return el;
}

/** Replaces the children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const ICONS = {
  check: ['M3 8.5l3.2 3.2L13 4.8'],
  cross: ['M4 4l8 8', 'M12 4l-8 8'],
  warn: ['M8 1.8L15 14H1z', 'M8 6.2v3.8', 'M8 11.8v.4'],
  dash: ['M3.5 8h9'],
  clock: ['M8 2.2a5.8 5.8 0 1 0 .01 0z', 'M8 4.8V8l2.4 1.6'],
  up: ['M8 13V3', 'M4 7l4-4 4 4'],
  down: ['M8 3v10', 'M4 9l4 4 4-4'],
};

/** A small line icon, hidden from assistive technology (text says it). */
export function icon(name) {
  return s('svg', { class: `icon icon-${name}`, viewBox: '0 0 16 16', 'aria-hidden': 'true', focusable: 'false' },
    ICONS[name].map((d) => s('path', { d })));
}

/** Colour → icon and the word said with it. */
export const TONES = {
  green: { icon: 'check', word: 'Green' },
  yellow: { icon: 'warn', word: 'Yellow' },
  amber: { icon: 'warn', word: 'Amber' },
  red: { icon: 'cross', word: 'Red' },
  grey: { icon: 'dash', word: 'Grey' },
  blue: { icon: 'clock', word: 'Waiting' },
};

/**
 * A status: colour, icon and text, never colour alone; `label` is what a
 * screen reader says (defaults to the text).
 */
export function badge(tone, text, label) {
  const t = TONES[tone] ? tone : 'grey';
  return h('span', { class: `badge tone-${t}`, role: 'img', 'aria-label': label || text },
    icon(TONES[t].icon), h('span', {}, text));
}

const numbers = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });

export function num(n) {
  return n === null || n === undefined ? '—' : numbers.format(n);
}

/** A ratio (0.985) as a percentage ("98.5 %"). */
export function pct(ratio, digits = 1) {
  return ratio === null || ratio === undefined ? '—' : `${(ratio * 100).toFixed(digits)} %`;
}

export function ms(n) {
  if (n === null || n === undefined) return '—';
  return n >= 1000 ? `${(n / 1000).toFixed(2)} s` : `${Math.round(n)} ms`;
}

export function seconds(n) {
  if (n === null || n === undefined) return '—';
  if (n < 60) return `${Math.round(n)} s`;
  const m = Math.floor(n / 60);
  return `${m} min ${Math.round(n - m * 60)} s`;
}

/** "2026-11-22 09:45" in the browser's zone (a date alone stays a date). */
export function when(value) {
  if (!value) return '—';
  if (/^\d{4}-\d{2}-\d{2}$/.test(value)) return value;
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  const p = (x) => String(x).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** "less than a minute ago", "4 minutes ago", "3 hours ago", "2 days ago". */
export function ago(value) {
  const t = value instanceof Date ? value.getTime() : typeof value === 'number' ? value : Date.parse(value);
  const minutes = Math.floor(Math.max(0, Date.now() - t) / 60000);
  const plural = (n, unit) => `${n} ${unit}${n === 1 ? '' : 's'} ago`;
  if (minutes < 1) return 'less than a minute ago';
  if (minutes < 120) return plural(minutes, 'minute');
  if (minutes < 48 * 60) return plural(Math.floor(minutes / 60), 'hour');
  return plural(Math.floor(minutes / 1440), 'day');
}

/** A <time> whose "N minutes ago" text the page keeps current (see main.js). */
export function agoEl(value) {
  const t = value instanceof Date ? value : new Date(value);
  return h('time', { datetime: t.toISOString(), title: when(t.toISOString()), 'data-ago': t.getTime() }, ago(t));
}

/** Brings every agoEl up to date. */
export function tickAgo(root = document) {
  for (const el of root.querySelectorAll('[data-ago]')) el.textContent = ago(Number(el.dataset.ago));
}

/** A titled section of a page. */
let sections = 0;
export function section(title, ...children) {
  const id = `section-${++sections}`;
  return h('section', { class: 'panel', 'aria-labelledby': id }, h('h2', { id }, title), children);
}

/**
 * A table: columns [{title, cell: row => node|text, num?: true}], rows;
 * `empty` when there is no row. Scrolls sideways on narrow screens.
 */
export function table({ caption, columns, rows, empty = 'Nothing to show.', rowProps }) {
  if (!rows.length) return h('p', { class: 'empty' }, empty);
  return h('div', { class: 'table-wrap', tabindex: 0, role: 'region', 'aria-label': caption },
    h('table', {},
      h('caption', { class: 'visually-hidden' }, caption),
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.num ? 'num' : null }, c.title)))),
      h('tbody', {}, rows.map((row) => h('tr', rowProps ? rowProps(row) : {},
        columns.map((c) => h('td', { class: c.num ? 'num' : null }, c.cell(row))))))));
}

/** A definition list from [term, value] pairs. */
export function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.map(([term, value]) => [h('dt', {}, term), h('dd', {}, value)]));
}

/** A <select> from [value, label] pairs. */
export function select(props, options) {
  return h('select', props, options.map(([value, label]) => h('option', { value }, label)));
}

/** A labelled form control. */
export function field(label, control) {
  return h('label', { class: 'field' }, h('span', {}, label), control);
}

/** A message at the bottom of the screen for a few seconds. */
export function toast(message, tone = 'green') {
  const box = document.getElementById('toasts');
  const t = TONES[tone] ? tone : 'grey';
  const el = h('div', { class: `toast tone-${t}` }, icon(TONES[t].icon), h('span', {}, message));
  box.append(el);
  while (box.children.length > 3) box.firstElementChild.remove();
  setTimeout(() => el.remove(), 8000);
}
