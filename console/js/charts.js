// Hand-drawn SVG charts. Each one has a text alternative: the chart's name
// and every bar's figure in a <title>, and the figures stay in the page as
// text (labels, tables) for anyone who cannot see the bars.

import { h, s, num } from './dom.js';

/** The smallest 1, 2 or 5 × 10^k at or above `max` (1 when there is nothing). */
export function niceMax(max) {
  if (!(max > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(max));
  return [1, 2, 5, 10].map((m) => m * p).find((v) => v >= max);
}

/**
 * Columns over time: points [{key, label, value}]. Every column carries
 * data-key / data-value (its figure) and a <title> read on hover.
 */
export function columnChart({ title, points, unit = '', format = num }) {
  const W = 640;
  const H = 220;
  const left = 46;
  const right = 8;
  const top = 12;
  const bottom = 30;
  const max = niceMax(Math.max(0, ...points.map((p) => p.value || 0)));
  const plotH = H - top - bottom;
  const step = (W - left - right) / Math.max(points.length, 1);
  const y = (v) => top + plotH * (1 - v / max);
  const labelEvery = Math.ceil(points.length / 8);
  const grid = [0, max / 2, max].map((v) => [
    s('line', { class: 'grid', x1: left, x2: W - right, y1: y(v), y2: y(v) }),
    s('text', { class: 'tick', x: left - 6, y: y(v) + 4, 'text-anchor': 'end' }, format(v)),
  ]);
  const columns = points.map((p, i) => {
    const v = p.value || 0;
    const x = left + i * step + step * 0.15;
    return s('g', {},
      s('rect', {
        class: 'bar', x, y: y(v), width: Math.max(step * 0.7, 1), height: Math.max(H - bottom - y(v), 0),
        'data-key': p.key, 'data-value': v,
      }, s('title', {}, `${p.label}: ${format(v)}${unit ? ` ${unit}` : ''}`)),
      i % labelEvery === 0
        ? s('text', { class: 'tick', x: x + step * 0.35, y: H - bottom + 16, 'text-anchor': 'middle' }, p.short || p.label)
        : null);
  });
  return s('svg', { class: 'chart columns', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title },
    s('title', {}, title), grid, columns);
}

/**
 * Horizontal bars: rows [{label, value, text?}] against `max` (the largest
 * value by default). A list, so it reads as one without the bars.
 */
export function barList({ title, rows, max, format = num, tone = '' }) {
  const top = max || Math.max(0, ...rows.map((r) => r.value || 0)) || 1;
  return h('ul', { class: `bars ${tone}`, 'aria-label': title },
    rows.map((r) => h('li', { 'data-key': r.label, 'data-value': r.value },
      h('span', { class: 'bar-label' }, r.label),
      s('svg', { class: 'track', viewBox: '0 0 100 10', preserveAspectRatio: 'none', 'aria-hidden': 'true' },
        s('rect', { class: 'bar', x: 0, y: 0, height: 10, width: Math.max(0, Math.min(100, (100 * (r.value || 0)) / top)) })),
      h('span', { class: 'bar-value' }, r.text || format(r.value)))));
}
