// What the data pages (explore, usage, sessions, audit) share: the range
// picker, a "More" pager over a list, and bars stacked by a key.
import * as api from '../lib/api.js';
import { h, field, fmtNumber, toLocalInput, fromLocalInput, errorText } from '../lib/ui.js';
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
  if (st.range !== 'custom' && !keys.includes(st.range)) st.range = keys[0];
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

// A step of a pager (its first page, or the next) for a page that lists:
// the More button waits while it runs, its error goes to the error line,
// and draw() follows unless a newer load began meanwhile (seq() moved on).
export function stepper(seq, view, { error, more, draw }) {
  return async (step) => {
    const my = seq();
    error.hidden = true;
    more.disabled = true;
    try {
      await step();
      if (my === seq() && view.current()) draw();
    } catch (err) {
      if (my !== seq()) return;
      error.textContent = errorText(err);
      error.hidden = false;
    } finally {
      more.disabled = false;
    }
  };
}

// The bucket (hour or day) that fits a span of time on a bar chart.
export const bucketFor = (spanMs) => (spanMs > 3 * DAY ? DAY : HOUR);

// The bucket starts of [from, to): a bar chart shows the whole range, the
// empty buckets too.
export function buckets(from, to, every) {
  const xs = [];
  for (let b = Math.floor(from / every) * every; b < to; b += every) xs.push(b);
  return xs;
}

// Counts per bucket of ts over [from, to): uPlot columns [xs, counts]
// (null for none).
export function countPer(tss, every, from, to) {
  const xs = buckets(from, to, every);
  const ys = xs.map(() => 0);
  for (const ts of tss) {
    const i = Math.floor((ts - xs[0]) / every);
    if (i >= 0 && i < ys.length) ys[i]++;
  }
  return [xs, ys.map((v) => v || null)];  // no bar where there is nothing
}

// Bars stacked by key: rows [{bucket, ...}] over the bucket starts xs →
// {series, data} for barChart. Each series draws the sum of its key and the ones before it,
// tallest first, so every key shows as its own band; the legend shows a
// key's own value.
export function stacked(rows, keyOf, valueOf, xs) {
  const keys = [...new Set(rows.map(keyOf))].sort();
  const at = new Map(xs.map((x, i) => [x, i]));
  const own = keys.map(() => new Array(xs.length).fill(0));
  for (const r of rows) if (at.has(r.bucket)) own[keys.indexOf(keyOf(r))][at.get(r.bucket)] += valueOf(r);
  const sums = [];
  own.forEach((ys, k) => sums.push(ys.map((v, i) => v + (k ? sums[k - 1][i] : 0))));
  const order = keys.map((_, k) => keys.length - 1 - k);
  return {
    series: order.map((k) => ({
      label: keys[k],
      colour: COLOURS[k % COLOURS.length],
      value: (u, v, s, i) => (i === null || i === undefined ? '—' : fmtNumber(own[k][i])),
    })),
    data: [xs, ...order.map((k) => sums[k].map((v) => v || null))],
  };
}

// A bar chart's x scale over whole buckets: half a bucket either side, so
// the first and last bars show whole.
export function fitBars(chart, xs, every) {
  if (xs.length) chart.plot.setScale('x', { min: xs[0] - every / 2, max: xs[xs.length - 1] + every / 2 });
  return chart;
}

// A unit for byte counts up to max, so an axis keeps short numbers.
export function byteUnit(max) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (max >= 10240 && i < units.length - 1) { max /= 1024; i++; }
  return { name: units[i], size: 1024 ** i };
}
