// Audit log: who changed what in the organisation, when and from where,
// newest first. The range is asked of the server; "who" and "what" filter
// the entries loaded so far.
import * as api from '../lib/api.js';
import { h, clear, field, table, fmtTime } from '../lib/ui.js';
import { barChart } from '../lib/chart.js';
import { rangeFields, rangeOf, pager, stepper, countPer, bucketFor, fitBars, HOUR } from './data-common.js';

export async function render(view) {
  const org = view.org.id;
  const q = view.query;
  const st = { range: q.get('range') || '7d', from: Number(q.get('from')) || 0, to: Number(q.get('to')) || 0,
    who: q.get('who') || '', what: q.get('what') || '' };
  view.el.append(h('h1', 'Audit log'));
  const who = field('Who', 'who', { type: 'search', value: st.who, placeholder: 'email or key name' });
  const what = field('What', 'what', { type: 'search', value: st.what, placeholder: 'e.g. device.update' });
  const error = h('p.form-error', { role: 'alert', hidden: true });
  const chartEl = h('div.chart', { role: 'img', 'aria-label': 'Audit entries per bucket' });
  const tableEl = h('div');
  const more = h('button', { type: 'button', hidden: true }, 'More');
  view.el.append(h('div.toolbar', rangeFields(st, () => load(), ['24h', '7d', '30d']), who, what), error,
    h('h2', 'Entries over time'), chartEl, h('h2', 'Entries'), tableEl, h('div.actions', more));

  let chart = null;
  let list = null;
  let seq = 0;
  view.cleanup(() => { seq++; chart?.destroy(); });

  function saveUrl() {
    const p = new URLSearchParams({ range: st.range });
    if (st.range === 'custom') { p.set('from', st.from); p.set('to', st.to); }
    if (st.who) p.set('who', st.who);
    if (st.what) p.set('what', st.what);
    history.replaceState(null, '', `${view.orgHref(org, 'audit')}?${p}`);
  }

  const has = (s, t) => String(s || '').toLowerCase().includes(t);
  function draw() {
    saveUrl();
    const w = st.who.trim().toLowerCase();
    const x = st.what.trim().toLowerCase();
    const items = list.state.items.filter((e) => (!w || has(e.actor_name, w) || has(e.actor, w))
      && (!x || has(e.action, x) || has(e.target, x)));
    chart?.destroy();
    chart = null;
    clear(chartEl);
    if (items.length) {
      const { from, to } = rangeOf(st);
      const every = bucketFor(to - from);
      const cols = countPer(items.map((e) => e.ts), every, from, to);
      chart = fitBars(barChart(chartEl, [{ label: every === HOUR ? 'Entries per hour' : 'Entries per day' }], cols, { height: 160 }), cols[0], every);
    }
    const n = list.state.items.length;
    clear(tableEl).append(table([
      { title: 'When', class: 'when', cell: (e) => fmtTime(e.ts) },
      { title: 'Who', cell: (e) => e.actor_name || e.actor },
      { title: 'What', cell: (e) => h('span', h('code', e.action), ' ', e.target ? h('span.target', e.target) : '') },
      { title: 'From where', cell: (e) => e.address || '—' },
      { title: 'Detail', cell: (e) => (e.detail && Object.keys(e.detail).length ? h('code.detail', JSON.stringify(e.detail)) : '') },
    ], items, {
      empty: n ? 'No loaded entry matches who and what.' : 'No entries in this range.',
      caption: `${items.length} of ${n} entr${n === 1 ? 'y' : 'ies'} loaded${list.state.done ? '' : ' (more below)'}`,
    }));
    more.hidden = list.state.done;
  }

  const run = stepper(() => seq, view, { error, more, draw });

  function load() {
    seq++;
    if (st.range === 'custom' && !(st.from < st.to)) {
      error.textContent = 'The start of the range must be before its end.';
      error.hidden = false;
      return undefined;
    }
    const { from, to } = rangeOf(st);
    list = pager(api.path`/orgs/${org}/audit`, { from, to });
    return run(list.load);
  }

  for (const [f, key] of [[who, 'who'], [what, 'what']])
    f.querySelector('input').addEventListener('input', (e) => { st[key] = e.target.value; if (list) draw(); });
  more.addEventListener('click', () => run(list.more));
  await load();
}
