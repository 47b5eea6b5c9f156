// Explore: a device's channels over a range, as a chart and a table of
// the points, and their export as CSV or NDJSON. The view lives in the
// URL's query (device, channel, range, from, to, fn), so it can be shared
// and survives a reload.
import * as api from '../lib/api.js';
import { h, clear, field, table, fmtTime, fmtNumber, errorText } from '../lib/ui.js';
import { lineChart, everyFor, widthOf, columns } from '../lib/chart.js';
import { rangeFields, rangeOf, RANGES } from './data-common.js';

const FNS = [['avg', 'Average'], ['min', 'Minimum'], ['max', 'Maximum'], ['sum', 'Sum'],
  ['count', 'Count'], ['first', 'First'], ['last', 'Last'], ['raw', 'Each reading (while they fit)']];
// Channels checked when the URL names none: a readable chart.
const DEFAULT_CHANNELS = 4;
// The data API takes at most 32 channels a query.
const MAX_CHANNELS = 32;
const PAGE_ROWS = 50;
// Devices listed before the list gets a search box.
const SEARCH_FROM = 8;
// How long a resize rests before the data is asked for again.
const RESIZE_WAIT_MS = 300;

export async function render(view) {
  const org = view.org.id;
  const q = view.query;
  const st = {
    device: q.get('device') || '',
    channels: (q.get('channel') || '').split(',').filter(Boolean),
    range: RANGES[q.get('range')] || q.get('range') === 'custom' ? q.get('range') : '1h',
    from: Number(q.get('from')) || 0,
    to: Number(q.get('to')) || 0,
    fn: FNS.some(([f]) => f === q.get('fn')) ? q.get('fn') : 'avg',
  };
  view.el.append(h('h1', 'Explore'));
  const devices = await api.all(api.path`/orgs/${org}/devices`);
  if (!view.current()) return;
  if (!devices.length) {
    view.el.append(h('p.empty', 'This organisation has no devices yet. Add one under Devices, send it some readings, then look at them here.'));
    return;
  }
  if (!devices.some((d) => d.id === st.device)) st.device = devices[0].id;

  const deviceSel = field('Device', 'device', { options: devices.map((d) => [d.id, d.name]), value: st.device });
  const select = deviceSel.querySelector('select');
  const search = devices.length > SEARCH_FROM ? field('Find a device', 'device-search', { type: 'search' }) : null;
  search?.querySelector('input').addEventListener('input', (e) => {
    const t = e.target.value.trim().toLowerCase();
    for (const o of select.options) o.hidden = t !== '' && !o.textContent.toLowerCase().includes(t) && o.value !== st.device;
  });
  const chanBox = h('fieldset.channels', h('legend', 'Channels'));
  const fnSel = field('Aggregate', 'fn', { options: FNS, value: st.fn });
  const csv = h('a.button', { download: '', href: '#' }, 'Export CSV');
  const ndjson = h('a.button', { download: '', href: '#' }, 'Export NDJSON');
  const exportBox = h('div.actions.export', csv, ndjson);
  const status = h('p.chart-note', { role: 'status' });
  const error = h('p.form-error', { role: 'alert', hidden: true });
  const chartEl = h('div.chart.explore-chart');
  const tableEl = h('div.points');
  view.el.append(
    h('div.toolbar.explore-controls', search, deviceSel, rangeFields(st, () => load()), fnSel),
    chanBox,
    exportBox,
    error, status, chartEl,
    h('h2', 'Points'), tableEl);

  let chart = null;
  let seq = 0;
  let askedPx = 0;  // the width the shown data was asked for
  // A chart made much narrower asks again, so it never holds more points
  // than pixels (and a wider one gets the detail it now has room for).
  let resizeTimer = 0;
  const onResize = () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      if (askedPx && Math.abs(widthOf(chartEl) - askedPx) > askedPx / 5) load();
    }, RESIZE_WAIT_MS);
  };
  window.addEventListener('resize', onResize);
  view.cleanup(() => { seq++; chart?.destroy(); clearTimeout(resizeTimer); window.removeEventListener('resize', onResize); });

  // The shown view in the URL, without a new history entry or a reload.
  function saveUrl() {
    const p = new URLSearchParams({ device: st.device, channel: st.channels.join(','), range: st.range, fn: st.fn });
    if (st.range === 'custom') { p.set('from', st.from); p.set('to', st.to); }
    history.replaceState(null, '', `${view.orgHref(org, 'explore')}?${p}`);
  }

  function exportHref(format) {
    const { from, to } = rangeOf(st);
    return api.path`/api/v1/orgs/${org}/export` + api.query({ format, device: st.device, channel: st.channels.join(','), from, to });
  }
  // A named range ends when the person clicks, not when the page drew.
  for (const [a, format] of [[csv, 'csv'], [ndjson, 'ndjson']])
    a.addEventListener('click', () => { a.href = exportHref(format); });

  // Its own sequence: another control changed meanwhile does not drop
  // the device's channels (the load after them shows that change too).
  let chanSeq = 0;
  let chanPending = false;
  async function loadChannels() {
    const my = ++chanSeq;
    chanPending = true;
    let list;
    try {
      list = await api.all(api.path`/devices/${st.device}/channels`);
    } finally {
      if (my === chanSeq) chanPending = false;
    }
    if (my !== chanSeq || !view.current()) return false;
    const names = list.map((c) => c.name);
    st.channels = st.channels.filter((c) => names.includes(c));
    if (!st.channels.length) st.channels = names.slice(0, DEFAULT_CHANNELS);
    clear(chanBox).append(h('legend', 'Channels'));
    if (!names.length) chanBox.append(h('p.empty', 'This device has sent no readings yet.'));
    for (const c of list) {
      const f = field(c.name, 'channel', { type: 'checkbox', value: st.channels.includes(c.name) });
      f.querySelector('input').addEventListener('change', (e) => {
        st.channels = e.target.checked ? [...st.channels, c.name] : st.channels.filter((x) => x !== c.name);
        st.channels = names.filter((n) => st.channels.includes(n));
        load();
      });
      chanBox.append(f);
    }
    return true;
  }

  async function load() {
    if (chanPending) return;  // the load after the channels comes
    const my = ++seq;
    saveUrl();
    csv.href = exportHref('csv');
    ndjson.href = exportHref('ndjson');
    error.hidden = true;
    exportBox.hidden = !st.channels.length;  // an export of no channel would be all of them
    if (!st.channels.length) return draw(my, null, 'Pick at least one channel.');
    if (st.channels.length > MAX_CHANNELS) return draw(my, null, `Pick at most ${MAX_CHANNELS} channels at once.`);
    if (st.range === 'custom' && !(st.from < st.to)) return draw(my, null, 'The start of the range must be before its end.');
    const { from, to } = rangeOf(st);
    const px = widthOf(chartEl);
    askedPx = px;
    const p = api.path`/devices/${st.device}/data`;
    const base = { channel: st.channels, from, to };
    status.textContent = 'Loading…';
    try {
      let data = null;
      let note = '';
      if (st.fn === 'raw') {
        // Each reading, while no more than the chart's pixels.
        const r = await api.get(p + api.query({ ...base, limit: px }));
        if (r.next && Object.keys(r.next).length) note = 'More readings than the chart has room for: showing the average of each bucket';
        else data = r;
      }
      let every = 0;
      if (!data) {
        every = everyFor(to - from, px);
        data = await api.get(p + api.query({ ...base, every, fn: st.fn === 'raw' ? 'avg' : st.fn, limit: px + 2 }));
      }
      if (my !== seq) return;
      if (every && !note) note = `${FNS.find(([f]) => f === st.fn)[1]} of each bucket`;
      draw(my, data.series || {}, every ? `${note} of ${span(every)}.` : 'Each reading.', from, to);
    } catch (err) {
      if (my !== seq) return;
      draw(my, null, '');
      error.textContent = errorText(err);
      error.hidden = false;
    }
  }

  function draw(my, series, note, from, to) {
    if (my !== seq || !view.current()) return;
    chart?.destroy();
    chart = null;
    clear(chartEl);
    clear(tableEl);
    status.textContent = note;
    if (!series) return;
    const cols = columns(series, st.channels);
    if (!cols[0].length) {
      status.textContent = 'No readings in this range. Pick a longer range or other channels.';
      return;
    }
    const dev = devices.find((d) => d.id === st.device);
    chartEl.setAttribute('role', 'img');
    chartEl.setAttribute('aria-label', `Chart of ${st.channels.join(', ')} of ${dev ? dev.name : 'the device'}`);
    chart = lineChart(chartEl, st.channels.map((c) => ({ label: c })), cols);
    chart.plot.setScale('x', { min: from, max: to });
    pointsTable(cols, 0);
  }

  // The points under the chart, newest first, a page at a time.
  function pointsTable(cols, pageNo) {
    const n = cols[0].length;
    const pages = Math.ceil(n / PAGE_ROWS);
    const rows = [];
    for (let i = n - 1 - pageNo * PAGE_ROWS; i >= 0 && rows.length < PAGE_ROWS; i--) rows.push(i);
    const tcols = [{ title: 'Time', cell: (i) => fmtTime(cols[0][i]) },
      ...st.channels.map((c, k) => ({ title: c, class: 'num', cell: (i) => fmtNumber(cols[k + 1][i]) }))];
    // Focus stays on the pager's button that was used (or its other one at an end).
    const go = (p, name) => () => {
      pointsTable(cols, p);
      const btns = [...tableEl.querySelectorAll('.pager button')];
      (btns.find((b) => b.textContent === name && !b.disabled) || btns.find((b) => !b.disabled))?.focus();
    };
    clear(tableEl).append(table(tcols, rows, { caption: `Points ${pageNo * PAGE_ROWS + 1}–${pageNo * PAGE_ROWS + rows.length} of ${n}, newest first` }),
      pages > 1 ? h('nav.pager', { 'aria-label': 'Pages of points' },
        h('button', { type: 'button', disabled: pageNo === 0, onclick: go(pageNo - 1, 'Newer') }, 'Newer'),
        h('span', `Page ${pageNo + 1} of ${pages}`),
        h('button', { type: 'button', disabled: pageNo >= pages - 1, onclick: go(pageNo + 1, 'Older') }, 'Older')) : '');
  }

  select.addEventListener('change', async () => {
    st.device = select.value;
    st.channels = [];
    if (await loadChannels().catch(showErr)) load();
  });
  fnSel.querySelector('select').addEventListener('change', (e) => { st.fn = e.target.value; load(); });
  function showErr(err) {
    error.textContent = errorText(err);
    error.hidden = false;
    return false;
  }

  if (await loadChannels()) await load();
}

function span(ms) {
  for (const [unit, size] of [['d', 86400000], ['h', 3600000], ['min', 60000], ['s', 1000]])
    if (ms >= size) return `${fmtNumber(Math.round((ms / size) * 10) / 10)} ${unit}`;
  return `${ms} ms`;
}
