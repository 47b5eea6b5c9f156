// Charts over time with uPlot. A chart never asks for more points than it
// has pixels: everyFor() tells a page how wide a bucket to ask the server
// for (its `every`, with an `fn`), and the chart follows its container's width.
import uPlot from '../vendor/uplot.esm.js';

// Colours that keep 3:1 against white and tell apart for common colour
// blindness (Okabe-Ito, darkened).
export const COLOURS = ['#0b5cad', '#c25400', '#007a5a', '#a3177f', '#5d4bb7', '#8a6d00', '#b4002e', '#2f6f89'];

const MIN = 60000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const WEEK = 7 * DAY;
// The bucket widths from a minute up: whole minutes, so a query over a long
// range is answered from the server's per-minute rollups (its buckets start
// at multiples of `every` since the epoch), and a chart's ticks fall on
// round times.
const NICE = [1, 2, 5, 10, 15, 30].map((m) => m * MIN)
  .concat([1, 2, 3, 6, 12].map((n) => n * HOUR), [DAY, 2 * DAY, WEEK]);

// The bucket width in ms for a range drawn on a chart of `px` pixels: never
// more buckets than pixels. Below a minute, the exact width (whole ms, at
// least 1); from a minute up, the smallest of NICE at least as wide, past a
// week a whole number of weeks.
export function everyFor(rangeMs, px) {
  const n = Math.max(1, Math.floor(px || 300));
  const raw = Math.max(1, Math.ceil(rangeMs / n));
  if (raw < MIN) return raw;
  return NICE.find((w) => w >= raw) || Math.ceil(raw / WEEK) * WEEK;
}

export function widthOf(el) {
  return Math.max(200, Math.floor(el.getBoundingClientRect().width || el.clientWidth || 300));
}

// The chart takes its container's width whenever that changes. Only then:
// a resize redraws the whole chart, and the observer's first call (at once,
// with the width the chart was made at) would draw each chart twice.
function follow(el, plot, height) {
  const ro = new ResizeObserver(() => {
    const width = widthOf(el);
    if (width !== plot.width) plot.setSize({ width, height });
  });
  ro.observe(el);
  return ro;
}

// A line chart in `el`. series: [{label, colour?}]; data: [xs (ms), ys…]
// (nulls allowed). opts: height, yLabel, title. Returns {plot, setData,
// destroy}; the chart resizes with its container.
export function lineChart(el, series, data, opts = {}) {
  const height = opts.height || 220;
  const plot = new uPlot({
    width: widthOf(el),
    height,
    title: opts.title,
    ms: 1,
    scales: { x: { time: true } },
    axes: [{}, { label: opts.yLabel, size: 60 }],
    legend: { live: true },
    cursor: { drag: { x: true, y: false } },
    series: [{}, ...series.map((s, i) => ({
      label: s.label,
      stroke: s.colour || COLOURS[i % COLOURS.length],
      width: 1.5,
      spanGaps: false,
      points: { show: false },
    }))],
  }, data, el);
  const ro = follow(el, plot, height);
  return {
    plot,
    setData: (d) => plot.setData(d),
    destroy: () => { ro.disconnect(); plot.destroy(); },
  };
}

// A bar-ish step chart of counts per bucket (usage, audit). A series may
// bring its own legend value(u, v, seriesIdx, idx) (stacked bars).
export function barChart(el, series, data, opts = {}) {
  const height = opts.height || 200;
  const bars = uPlot.paths && uPlot.paths.bars ? uPlot.paths.bars({ size: [0.8, 40] }) : undefined;
  const plot = new uPlot({
    width: widthOf(el),
    height,
    title: opts.title,
    ms: 1,
    scales: { x: { time: true } },
    axes: [{}, { label: opts.yLabel, size: 60 }],
    series: [{}, ...series.map((s, i) => ({
      label: s.label,
      stroke: s.colour || COLOURS[i % COLOURS.length],
      fill: (s.colour || COLOURS[i % COLOURS.length]) + '55',
      paths: bars,
      points: { show: false },
      value: s.value,
    }))],
  }, data, el);
  const ro = follow(el, plot, height);
  return { plot, setData: (d) => plot.setData(d), destroy: () => { ro.disconnect(); plot.destroy(); } };
}

// Series of the data API ({"series":{"ch":[[ts,v],…]}}) as uPlot's
// columns: one x array (the union of timestamps, sorted), one y array a
// channel, null where a channel has no point.
export function columns(seriesByChannel, channels) {
  const xs = new Set();
  for (const ch of channels) for (const [ts] of seriesByChannel[ch] || []) xs.add(ts);
  const x = [...xs].sort((a, b) => a - b);
  const index = new Map(x.map((t, i) => [t, i]));
  const ys = channels.map((ch) => {
    const y = new Array(x.length).fill(null);
    for (const [ts, v] of seriesByChannel[ch] || []) y[index.get(ts)] = v;
    return y;
  });
  return [x, ...ys];
}
