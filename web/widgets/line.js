// A line chart widget: the widget's range of its channels, one bucket a
// pixel at most (every = everyFor(range, width), fn the widget's or avg),
// then each live reading merged into its bucket, the window moving with
// the clock. Drawing is batched to the next frame, and waits while the
// chart is scrolled out of sight (a dashboard of many charts draws only
// the ones seen, then the others as they come into view). Each draw tells the
// page (event `ss-drawn`, the timestamps drawn) and the first one leaves
// the performance mark `ss-line-drawn`, so the time to a drawn chart can
// be measured.
import { lineChart, everyFor, widthOf, columns } from '../lib/chart.js';
import { h, clear } from '../lib/ui.js';
import { series, unitOf } from './base.js';

// The most buckets one data query may ask for (the data API's limit).
const MAX_BUCKETS = 100000;

// How a live reading joins a bucket that already has a value. A bucket
// from the server counts as one reading for avg (its count is not known).
const MERGE = {
  avg: (y, v, n) => (y * n + v) / (n + 1),
  min: (y, v) => Math.min(y, v),
  max: (y, v) => Math.max(y, v),
  sum: (y, v) => y + v,
  count: (y) => y + 1,
  first: (y) => y,
  last: (y, v) => v,
};

function lowerBound(xs, x) {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] < x) lo = mid + 1; else hi = mid;
  }
  return lo;
}

export async function mount(el, w, ctx) {
  const box = h('div.chart');
  clear(el).append(box);
  const fn = (w.options && w.options.fn) || 'avg';
  const merge = MERGE[fn] || MERGE.avg;
  const every = everyFor(w.range, widthOf(box));
  const now = Date.now();
  const s = await series(ctx.device, w.channels, {
    from: Math.floor((now - w.range) / every) * every, to: now + 1, every, fn,
    limit: Math.min(MAX_BUCKETS, Math.ceil(w.range / every) + 1),
  });
  const [x, ...ys] = columns(s, w.channels);
  const counts = new Map();     // bucket -> live readings merged into it
  let pending = [];             // timestamps waiting for the next draw
  let frame = 0;
  let drawn = false;
  let seen = true;
  let dirty = false;
  const chart = lineChart(box, w.channels.map((label) => ({ label })), [x, ...ys], { yLabel: unitOf(w) });
  const slide = () => chart.plot.setScale('x', { min: Date.now() - w.range, max: Date.now() });
  chart.plot.hooks.draw = [() => {
    box.dataset.points = x.length;
    if (!drawn) { drawn = true; performance.mark('ss-line-drawn'); }
    if (pending.length) {
      el.dispatchEvent(new CustomEvent('ss-drawn', { bubbles: true, detail: pending }));
      pending = [];
    }
  }];
  slide();

  const add = (ts, values) => {
    const b = Math.floor(ts / every) * every;
    let i = lowerBound(x, b);
    if (x[i] !== b) {
      x.splice(i, 0, b);
      for (const y of ys) y.splice(i, 0, null);
    }
    const n = counts.get(b) || (x[i] === b && ys.some((y) => y[i] !== null) ? 1 : 0);
    w.channels.forEach((ch, k) => {
      const v = values[ch];
      if (typeof v !== 'number') return;
      const y = ys[k][i];
      ys[k][i] = y === null || y === undefined ? (fn === 'count' ? 1 : v) : merge(y, v, n);
    });
    counts.set(b, n + 1);
    // The window keeps the range: older buckets go.
    const cut = lowerBound(x, Math.floor((Date.now() - w.range) / every) * every);
    if (cut > 0) {
      for (const t of x.slice(0, cut)) counts.delete(t);
      x.splice(0, cut);
      for (const y of ys) y.splice(0, cut);
    }
  };
  const draw = () => {
    frame = 0;
    dirty = false;
    chart.setData([x, ...ys]);
    slide();
  };
  const io = new IntersectionObserver((entries) => {
    seen = entries[entries.length - 1].isIntersecting;
    if (seen && dirty && !frame) frame = requestAnimationFrame(draw);
  });
  io.observe(box);
  return {
    update(ev) {
      if (!w.channels.some((ch) => ch in ev.values)) return;
      add(ev.ts, ev.values);
      pending.push(ev.ts);
      dirty = true;
      if (seen && !frame) frame = requestAnimationFrame(draw);
    },
    destroy() {
      io.disconnect();
      cancelAnimationFrame(frame);
      chart.destroy();
    },
  };
}
