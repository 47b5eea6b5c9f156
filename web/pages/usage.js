// Usage: readings and bytes per hour or day, by protocol, as the server
// rolled them up (SPEC §5); a table and the same as a CSV file.
import * as api from '../lib/api.js';
import { h, clear, field, table, fmtTime, fmtNumber, fmtBytes, errorText } from '../lib/ui.js';
import { barChart, widthOf } from '../lib/chart.js';
import { rangeFields, rangeOf, stacked, buckets, fitBars, byteUnit, HOUR, DAY } from './data-common.js';

const sum = (rows, f) => rows.reduce((s, r) => s + f(r), 0);
// Days are UTC days, as the server rolls them up.
const fmtDay = (ms) => new Date(ms).toLocaleDateString(undefined, { dateStyle: 'medium', timeZone: 'UTC' });

export async function render(view) {
  const org = view.org.id;
  const q = view.query;
  const st = { range: q.get('range') || '24h', from: Number(q.get('from')) || 0, to: Number(q.get('to')) || 0,
    every: q.get('every') === 'day' ? 'day' : 'hour', children: q.get('children') === 'true' };
  view.el.append(h('h1', 'Usage'));
  const everySel = field('Per', 'every', { options: [['hour', 'Hour'], ['day', 'Day']], value: st.every });
  const kids = field('Include customer organisations', 'include_children', { type: 'checkbox', value: st.children });
  const csv = h('a.button', { download: '', href: '#' }, 'Download CSV');
  const error = h('p.form-error', { role: 'alert', hidden: true });
  const summary = h('p.usage-summary', { role: 'status' });
  const readingsEl = h('div.chart');
  const bytesEl = h('div.chart');
  const tableEl = h('div');
  const bytesTitle = h('h2', 'Bytes in and out');
  view.el.append(
    h('div.toolbar', rangeFields(st, () => load(), ['24h', '7d', '30d']), everySel, kids, csv),
    error, summary,
    h('h2', 'Readings stored'), readingsEl,
    bytesTitle, bytesEl,
    h('h2', 'Per bucket and protocol'), tableEl);
  everySel.querySelector('select').addEventListener('change', (e) => { st.every = e.target.value; load(); });
  kids.querySelector('input').addEventListener('change', (e) => { st.children = e.target.checked; load(); });

  let charts = [];
  let seq = 0;
  const destroy = () => { for (const c of charts) c.destroy(); charts = []; };
  view.cleanup(() => { seq++; destroy(); });

  const params = (format) => {
    const { from, to } = rangeOf(st);
    return api.query({ from, to, every: st.every, include_children: st.children ? 'true' : undefined, format });
  };
  csv.addEventListener('click', () => { csv.href = api.path`/api/v1/orgs/${org}/usage` + params('csv'); });

  async function load() {
    const my = ++seq;
    const p = new URLSearchParams({ range: st.range, every: st.every });
    if (st.range === 'custom') { p.set('from', st.from); p.set('to', st.to); }
    if (st.children) p.set('children', 'true');
    history.replaceState(null, '', `${view.orgHref(org, 'usage')}?${p}`);
    csv.href = api.path`/api/v1/orgs/${org}/usage` + params('csv');
    error.hidden = true;
    let res;
    try {
      if (st.range === 'custom' && !(st.from < st.to)) throw new Error('The start of the range must be before its end.');
      // Hours that would not fit the chart's pixels come as days.
      const { from, to } = rangeOf(st);
      if (st.every === 'hour' && (to - from) / HOUR > widthOf(view.el)) {
        st.every = 'day';
        everySel.querySelector('select').value = 'day';
      }
      res = await api.get(api.path`/orgs/${org}/usage` + params());
    } catch (err) {
      if (my !== seq) return;
      error.textContent = errorText(err);
      error.hidden = false;
      return;
    }
    if (my !== seq || !view.current()) return;
    destroy();
    clear(readingsEl);
    clear(bytesEl);
    const rows = res.usage || [];
    summary.textContent = `${fmtNumber(sum(rows, (r) => r.readings))} readings stored, ${fmtNumber(sum(rows, (r) => r.rejected))} refused, `
      + `${fmtBytes(sum(rows, (r) => r.bytes_in))} in and ${fmtBytes(sum(rows, (r) => r.bytes_out))} out, `
      + `${fmtNumber(sum(rows, (r) => r.api_requests))} API requests, from ${fmtTime(res.from)} to ${fmtTime(res.to)}.`;
    if (rows.length) {
      const every = res.every === 'day' ? DAY : HOUR;
      const xs = buckets(res.from, res.to, every);
      const unit = byteUnit(sum(rows, (x) => x.bytes_in + x.bytes_out));
      bytesTitle.textContent = `Bytes in and out (${unit.name})`;
      const r = stacked(rows, (x) => x.protocol, (x) => x.readings, xs);
      const b = stacked(rows, (x) => x.protocol, (x) => (x.bytes_in + x.bytes_out) / unit.size, xs);
      charts.push(fitBars(barChart(readingsEl, r.series, r.data), xs, every));
      charts.push(fitBars(barChart(bytesEl, b.series, b.data), xs, every));
      readingsEl.setAttribute('aria-label', 'Readings stored per bucket, by protocol');
      bytesEl.setAttribute('aria-label', 'Bytes in and out per bucket, by protocol');
      for (const el of [readingsEl, bytesEl]) el.setAttribute('role', 'img');
    }
    clear(tableEl).append(table([
      { title: st.every === 'day' ? 'Day' : 'Hour', class: 'when', cell: (r) => (st.every === 'day' ? fmtDay(r.bucket) : fmtTime(r.bucket)) },
      { title: 'Protocol', cell: (r) => r.protocol },
      { title: 'Readings', class: 'num', cell: (r) => fmtNumber(r.readings) },
      { title: 'Refused', class: 'num', cell: (r) => fmtNumber(r.rejected) },
      { title: 'Messages', class: 'num', cell: (r) => fmtNumber(r.messages) },
      { title: 'Bytes in', class: 'num', cell: (r) => fmtBytes(r.bytes_in) },
      { title: 'Bytes out', class: 'num', cell: (r) => fmtBytes(r.bytes_out) },
      { title: 'API requests', class: 'num', cell: (r) => fmtNumber(r.api_requests) },
    ], [...rows].reverse(), { empty: 'Nothing was used in this range.' }));
  }
  await load();
}
