// Sessions: the organisation's session records (SPEC §5): device
// connections, people's sign-ins and API key use, newest first, with who,
// where from, how long and how much.
import * as api from '../lib/api.js';
import { h, clear, field, table, fmtTime, fmtNumber, fmtBytes } from '../lib/ui.js';
import { barChart } from '../lib/chart.js';
import { pager, stepper, countPer, bucketFor, fitBars, HOUR } from './data-common.js';

const KINDS = [['', 'All'], ['device', 'Devices'], ['user', 'People'], ['apikey', 'API keys']];
const KIND_NAMES = { device: 'Device', user: 'Person', apikey: 'API key' };

export async function render(view) {
  const org = view.org.id;
  const st = { kind: KINDS.some(([k]) => k === view.query.get('kind')) ? view.query.get('kind') : '', active: view.query.get('active') === 'true' };
  view.el.append(h('h1', 'Sessions'));
  // Names for the ids a record carries; a list that cannot be read leaves ids.
  const names = new Map([[view.me.id, view.me.email]]);
  const lists = [
    [api.path`/orgs/${org}/devices`, (d) => [d.id, d.name]],
    [api.path`/orgs/${org}/members`, (m) => [m.user_id, m.email]],
    [api.path`/orgs/${org}/apikeys`, (k) => [k.id, k.name]],
  ];
  await Promise.all(lists.map(([p, f]) => api.all(p).then((xs) => xs.forEach((x) => names.set(...f(x)))).catch(() => {})));
  if (!view.current()) return;

  const kindSel = field('Kind', 'kind', { options: KINDS, value: st.kind });
  const active = field('Only active', 'active', { type: 'checkbox', value: st.active });
  const error = h('p.form-error', { role: 'alert', hidden: true });
  const chartEl = h('div.chart', { role: 'img', 'aria-label': 'Sessions started per bucket' });
  const tableEl = h('div');
  const more = h('button', { type: 'button', hidden: true }, 'More');
  view.el.append(h('div.toolbar', kindSel, active), error,
    h('h2', 'Sessions started'), chartEl, h('h2', 'Records'), tableEl, h('div.actions', more));

  let chart = null;
  let list = null;
  let seq = 0;
  view.cleanup(() => { seq++; chart?.destroy(); });

  function draw() {
    const items = list.state.items;
    chart?.destroy();
    chart = null;
    clear(chartEl);
    if (items.length) {
      const tss = items.map((s) => s.started_at);
      const from = Math.min(...tss);
      const to = Math.max(Date.now(), ...tss) + 1;
      const every = bucketFor(to - from);
      const cols = countPer(tss, every, from, to);
      chart = fitBars(barChart(chartEl, [{ label: every === HOUR ? 'Per hour' : 'Per day' }], cols, { height: 160 }), cols[0], every);
    }
    clear(tableEl).append(table([
      { title: 'Kind', cell: (s) => KIND_NAMES[s.kind] || s.kind },
      { title: 'Who', cell: (s) => names.get(s.principal_id) || s.principal_id },
      { title: 'Protocol', cell: (s) => s.protocol },
      { title: 'From', cell: (s) => s.address },
      { title: 'Started', class: 'when', cell: (s) => fmtTime(s.started_at) },
      { title: 'Ended', cell: (s) => (s.ended_at ? `${fmtTime(s.ended_at)}${s.end_reason ? ` (${s.end_reason})` : ''}` : 'Active') },
      { title: 'Bytes in / out', class: 'num', cell: (s) => `${fmtBytes(s.bytes_in)} / ${fmtBytes(s.bytes_out)}` },
      { title: 'Readings', class: 'num', cell: (s) => fmtNumber(s.readings) },
      { title: 'Refused', class: 'num', cell: (s) => fmtNumber(s.refused) },
      { title: 'Requests', class: 'num', cell: (s) => fmtNumber(s.api_requests) },
    ], items, { empty: 'No sessions match.', caption: `${items.length} session${items.length === 1 ? '' : 's'}${list.state.done ? '' : ' loaded'}` }));
    more.hidden = list.state.done;
  }

  const run = stepper(() => seq, view, { error, more, draw });

  function load() {
    seq++;
    const p = new URLSearchParams();
    if (st.kind) p.set('kind', st.kind);
    if (st.active) p.set('active', 'true');
    history.replaceState(null, '', `${view.orgHref(org, 'sessions')}${p.size ? '?' + p : ''}`);
    list = pager(api.path`/orgs/${org}/sessions`, { kind: st.kind, active: st.active ? 'true' : undefined });
    return run(list.load);
  }

  kindSel.querySelector('select').addEventListener('change', (e) => { st.kind = e.target.value; load(); });
  active.querySelector('input').addEventListener('change', (e) => { st.active = e.target.checked; load(); });
  more.addEventListener('click', () => run(list.more));
  await load();
}
