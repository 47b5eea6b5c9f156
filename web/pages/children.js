// Customers: the organisations directly below this one, creating one, and
// each one's quota (set from here, by an admin of this organisation).
import * as api from '../lib/api.js';
import { h, field, form, table, dialog, closeDialog, notice, fmtNumber, fmtBytes, noticeNext, showNoticeNext } from '../lib/ui.js';

const LIMITS = [
  ['max_devices', 'Devices at most', fmtNumber],
  ['max_readings_per_day', 'Readings a day at most', fmtNumber],
  ['max_bytes_per_day', 'Bytes a day at most', fmtBytes],
];
const limitText = (q, k, fmt) => (q ? (q[k] ? fmt(q[k]) : 'unlimited') : '—');

export async function render(view) {
  const org = view.org;
  const kids = view.orgs.filter((o) => o.parent_id === org.id);
  const quotas = await Promise.all(kids.slice(0, 100).map((k) => api.get(api.path`/orgs/${k.id}/quota`).catch(() => null)));
  if (!view.current()) return;
  const quota = new Map(kids.map((k, i) => [k.id, quotas[i]]));
  const reload = () => view.go(location.hash);
  const create = form([
    field('Name', 'name', { required: true, autocomplete: 'off' }),
  ], async (v) => {
    const c = await api.post('/orgs', { name: v.name.trim(), parent_id: org.id });
    await view.reloadMe();
    noticeNext(`${c.name} is created.`);
    reload();
  }, 'Create customer');
  showNoticeNext();
  view.el.append(h('h1', 'Customers'),
    h('p.hint', `Organisations below ${org.name}: your role here holds in them too.`),
    table([
      { title: 'Name', cell: (k) => h('a', { href: view.orgHref(k.id, '') }, k.name) },
      ...LIMITS.map(([key, title, fmt]) => ({ title, class: 'num', cell: (k) => limitText(quota.get(k.id), key, fmt) })),
      { title: 'Actions', cell: (k) => h('button', { type: 'button', onclick: () => editQuota(k, quota.get(k.id), reload), 'aria-label': `Quota of ${k.name}` }, 'Quota…') },
    ], kids, { empty: 'There is no customer organisation yet.' }),
    h('section.panel', h('h2', 'New customer'), create));
}

async function editQuota(kid, q, reload) {
  let saved = false;
  const f = form([
    ...LIMITS.map(([key, label]) => field(label, key, { type: 'number', min: 0, step: 1, required: true, value: q ? q[key] : 0 })),
    h('p.hint', '0 means unlimited.'),
  ], async (v, el) => {
    const body = {};
    for (const [key, label] of LIMITS) {
      const n = Number(v[key]);
      if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${label}: a whole number, 0 or more.`);
      body[key] = n;
    }
    await api.put(api.path`/orgs/${kid.id}/quota`, body);
    saved = true;
    closeDialog(el);
  }, 'Save quota');
  await dialog(`Quota of ${kid.name}`, f);
  if (saved) {
    noticeNext(`The quota of ${kid.name} is saved.`);
    reload();
  }
}
