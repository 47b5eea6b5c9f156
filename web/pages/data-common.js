// What the data pages (explore, usage, sessions, audit) share: the range
// picker, a "More" pager over a list, and bars stacked by a key.
import * as api from '../lib/api.js';
import { h, field, fmtNumber, toLocalInput, fromLocalInput } from '../lib/ui.js';
import { COLOURS } from '../lib/chart.js';

export const MIN = 60000;
export const HOUR = 60 * MIN;
export const DAY = 24 * HOUR;

export const RANGES = {
  '15m': ['Last 15 minutes', 15 * MIN],
  '1h': ['Last hour', HOUR],
  '24h': ['Last 24 hours', DAY],
  '7d': ['Last 7 days', 7 * DAY],
  '30d': ['Last 30 days', 30 * DAY],
};

// {from, to} in ms of a range state {range, from, to}: a named range ends
// now (to is exclusive, so a reading stamped now is in).
export function rangeOf(st, fallback = '24h') {
  if (st.range === 'custom' && st.from < st.to) return { from: st.from, to: st.to };
  const now = Date.now() + 1;
  return { from: now - (RANGES[st.range] || RANGES[fallback])[1], to: now };
}

// The range select and, for "Between two times", two datetime-local
// inputs. Changes st in place and calls onchange().
export function rangeFields(st, onchange, keys = Object.keys(RANGES)) {
  const now = Date.now();
  if (!(st.from < st.to)) { st.from = now - DAY; st.to = now; }
  const sel = field('Range', 'range', {
    options: [...keys.map((k) => [k, RANGES[k][0]]), ['custom', 'Between two times']],
    value: st.range,
  });
  const fromF = field('From', 'from', { type: 'datetime-local', value: toLocalInput(st.from) });
  const toF = field('To', 'to', { type: 'datetime-local', value: toLocalInput(st.to) });
  const custom = h('div.range-custom', fromF, toF);
  custom.hidden = st.range !== 'custom';
  sel.querySelector('select').addEventListener('change', (e) => {
    st.range = e.target.value;
    custom.hidden = st.range !== 'custom';
    onchange();
  });
  for (const [f, key] of [[fromF, 'from'], [toF, 'to']]) {
    f.querySelector('input').addEventListener('change', (e) => {
      const ms = fromLocalInput(e.target.value);
      if (ms !== undefined && !Number.isNaN(ms)) st[key] = ms;
      onchange();
    });
  }
  return [sel, custom];
}

// A list read a page at a time: load() the first page, more() the next.
export function pager(p, params, limit = 100) {
  const state = { items: [], next: '', done: false };
  const fetchPage = async (cursor) => {
    const r = await api.page(p, { ...params, limit, cursor });
    state.items.push(...r.items);
    state.next = r.next;
    state.done = !r.next;
    return state;
  };
  return { state, load: () => fetchPage(''), more: () => fetchPage(state.next) };
}

// The bucket (hour or day) that fits a span of time on a bar chart.
export const bucketFor = (spanMs) => (spanMs > 3 * DAY ? DAY : HOUR);

// Counts per bucket of ts: uPlot columns [xs, counts].
export function countPer(tss, every) {
  const m = new Map();
  for (const ts of tss) {
    const b = Math.floor(ts / every) * every;
    m.set(b, (m.get(b) || 0) + 1);
  }
  const xs = [...m.keys()].sort((a, b) => a - b);
  return [xs, xs.map((x) => m.get(x))];
}

// Bars stacked by key: rows [{bucket, ...}] → {series, data} for
// barChart. Each series draws the sum of its key and the ones before it,
// tallest first, so every key shows as its own band; the legend shows a
// key's own value.
export function stacked(rows, keyOf, valueOf) {
  const xs = [...new Set(rows.map((r) => r.bucket))].sort((a, b) => a - b);
  const keys = [...new Set(rows.map(keyOf))].sort();
  const at = new Map(xs.map((x, i) => [x, i]));
  const own = keys.map(() => new Array(xs.length).fill(0));
  for (const r of rows) own[keys.indexOf(keyOf(r))][at.get(r.bucket)] += valueOf(r);
  const sums = [];
  own.forEach((ys, k) => sums.push(ys.map((v, i) => v + (k ? sums[k - 1][i] : 0))));
  const order = keys.map((_, k) => keys.length - 1 - k);
  return {
    series: order.map((k) => ({
      label: keys[k],
      colour: COLOURS[k % COLOURS.length],
      value: (u, v, s, i) => (i === null || i === undefined ? '—' : fmtNumber(own[k][i])),
    })),
    data: [xs, ...order.map((k) => sums[k])],
  };
}
