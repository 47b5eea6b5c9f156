// Devices of an organisation: the list (paged, filtered by an attribute),
// creating one (its token shown once), and a device's own page: its
// details, attributes, channels with their latest values, and the acts of
// an editor (disable, rotate the token, delete).
import * as api from '../lib/api.js';
import { h, clear, field, form, table, dialog, closeDialog, confirm, secretBox, notice, errorText, fmtAgo, fmtTime, fmtNumber, noticeNext, showNoticeNext } from '../lib/ui.js';
import { roleAtLeast } from '../app.js';

const PAGE_SIZE = 50;

export async function render(view) {
  showNoticeNext();
  return view.args[0] ? detail(view, view.args[0]) : list(view);
}

// "type=sensor" → {'attr.type': 'sensor'}; '' → {}.
function attrFilter(text) {
  const i = text.indexOf('=');
  if (!text.trim()) return {};
  if (i < 1) throw new Error('Write the filter as NAME=VALUE, for example type=sensor.');
  return { [`attr.${text.slice(0, i).trim()}`]: text.slice(i + 1).trim() };
}

// Attributes typed as JSON text: an object, or nothing.
function parseAttributes(text) {
  if (!text.trim()) return {};
  let v;
  try { v = JSON.parse(text); } catch (e) {
    throw new Error(`Attributes are not valid JSON (${e.message}). Write an object, for example {"type": "sensor"}.`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v))
    throw new Error('Attributes must be a JSON object, for example {"type": "sensor"}.');
  return v;
}

const isObj = (v) => v && typeof v === 'object' && !Array.isArray(v);

// The JSON merge patch (RFC 7396, as PATCH takes it) that turns `from`
// into `to`.
function mergePatch(from, to) {
  const out = {};
  for (const k of Object.keys(from)) if (!(k in to)) out[k] = null;
  for (const [k, v] of Object.entries(to))
    out[k] = isObj(v) && isObj(from[k]) ? mergePatch(from[k], v) : v;
  return out;
}

function status(d) {
  return d.disabled ? h('span.badge.off', 'Disabled') : h('span.badge.on', 'Active');
}

async function list(view) {
  const org = view.org;
  const canWrite = roleAtLeast(view.role, 'editor');
  const filterText = view.query.get('attr') || '';
  const here = (q) => view.orgHref(org.id, 'devices') + (q ? '?attr=' + encodeURIComponent(q) : '');
  const head = h('div.page-head', h('h1', 'Devices'),
    canWrite ? h('button.primary', { type: 'button', onclick: () => create(view) }, 'New device') : null);
  const filterError = h('p.form-error', { role: 'alert', hidden: true });
  const filterInput = field('Filter by attribute (NAME=VALUE)', 'attr', { value: filterText, placeholder: 'type=sensor' });
  const filter = h('form.toolbar', { role: 'search', onsubmit: (e) => { e.preventDefault(); view.go(here(filterInput.querySelector('input').value.trim())); } },
    filterInput, h('button', { type: 'submit' }, 'Filter'),
    filterText ? h('a.button', { href: here('') }, 'Show every device') : null);
  const box = h('div');
  const more = h('button.more', { type: 'button', hidden: true }, 'More');
  view.el.append(head, filter, filterError, box, more);

  let params;
  try { params = attrFilter(filterText); } catch (err) {
    filterError.textContent = err.message;
    filterError.hidden = false;
    return;
  }
  const rows = [];
  let cursor = '';
  const load = async () => {
    more.disabled = true;
    const r = await api.page(api.path`/orgs/${org.id}/devices`, { ...params, limit: PAGE_SIZE, cursor });
    if (!view.current()) return;
    rows.push(...r.items);
    cursor = r.next;
    clear(box).append(table([
      { title: 'Name', cell: (d) => h('a', { href: view.orgHref(org.id, 'devices', d.id) }, d.name) },
      { title: 'Last seen', cell: (d) => h('span', { title: d.last_seen ? fmtTime(d.last_seen) : undefined }, fmtAgo(d.last_seen)) },
      { title: 'Protocol', cell: (d) => d.last_protocol || '—' },
      { title: 'Status', cell: status },
    ], rows, { empty: filterText ? 'No device has that attribute.' : 'There is no device yet.', caption: filterText ? `Devices where ${filterText}` : undefined }));
    more.hidden = !cursor;
    more.disabled = false;
  };
  more.onclick = () => load().catch((err) => notice(errorText(err), 'error'));
  await load();
}

async function create(view) {
  const body = h('div');
  let created = null;
  body.append(form([
    field('Name', 'name', { required: true, autocomplete: 'off' }),
    field('Description', 'description', { autocomplete: 'off' }),
    field('Attributes (JSON)', 'attributes', { type: 'textarea', rows: 3, placeholder: '{"type": "sensor", "location": "attic"}', hint: 'Optional: a JSON object of the device\'s own, such as type, location or tags.' }),
  ], async (v) => {
    const attributes = parseAttributes(v.attributes);
    created = await api.post(api.path`/orgs/${view.org.id}/devices`,
      { name: v.name.trim(), description: v.description.trim(), attributes });
    clear(body).append(
      h('p', `${created.name} is created. It sends readings with this token.`),
      secretBox('Device token', created.token),
      h('div.actions',
        h('a.button', { href: view.orgHref(view.org.id, 'devices', created.id), onclick: (e) => closeDialog(e.target) }, 'Open the device'),
        h('button.primary', { type: 'button', onclick: (e) => closeDialog(e.target) }, 'Done')));
    body.querySelector('input.secret').focus();
  }, 'Create device'));
  await dialog('New device', body);
  if (created && view.current()) view.go(location.hash);
}

async function detail(view, id) {
  const org = view.org;
  const canWrite = roleAtLeast(view.role, 'editor');
  const back = h('p', h('a', { href: view.orgHref(org.id, 'devices') }, '← All devices'));
  let d;
  try {
    d = await api.get(api.path`/devices/${id}`);
  } catch (err) {
    // A device gone is not the organisation gone (the shell's reading of a 404).
    if (err.status !== 404) throw err;
    view.el.append(back, h('h1', 'This device is not there'), h('p', 'It was deleted, or it belongs to another organisation.'));
    return;
  }
  if (!view.current()) return;
  view.title(`${d.name} · Devices`);
  const el = view.el;
  const reload = () => view.go(location.hash);
  const facts = h('dl.facts',
    h('dt', 'Status'), h('dd', status(d)),
    h('dt', 'Last seen'), h('dd', d.last_seen ? `${fmtAgo(d.last_seen)} (${fmtTime(d.last_seen)})` : 'never'),
    h('dt', 'Last protocol'), h('dd', d.last_protocol || '—'),
    h('dt', 'Created'), h('dd', fmtTime(d.created_at)),
    h('dt', 'Device ID'), h('dd', h('code', d.id)),
    canWrite ? null : [h('dt', 'Description'), h('dd', d.description || '—'),
      h('dt', 'Attributes'), h('dd', h('pre.attrs', JSON.stringify(d.attributes || {}, null, 2)))]);
  el.append(back, h('h1', d.name), facts);

  if (canWrite) {
    const actStatus = h('p.form-error', { role: 'alert', hidden: true });
    const act = (fn) => async () => {
      actStatus.hidden = true;
      try { await fn(); } catch (err) { actStatus.textContent = errorText(err); actStatus.hidden = false; }
    };
    el.append(h('div.actions.device-actions',
      h('button', { type: 'button', onclick: act(async () => { await api.patch(api.path`/devices/${id}`, { disabled: !d.disabled }); reload(); }) },
        d.disabled ? 'Enable' : 'Disable'),
      h('button', { type: 'button', onclick: act(() => rotate(d)) }, 'Rotate token…'),
      h('button.danger', { type: 'button', onclick: act(async () => {
        if (!await confirm(`Delete ${d.name}?`, `${d.name} and all its readings will be deleted, and its token refused at once. This cannot be undone.`, `Delete ${d.name}`)) return;
        await api.del(api.path`/devices/${id}`);
        noticeNext(`${d.name} was deleted.`);
        view.go(view.orgHref(org.id, 'devices'));
      }) }, 'Delete…')), actStatus);
    el.append(h('section', h('h2', 'Details'), form([
      field('Name', 'name', { required: true, value: d.name, autocomplete: 'off' }),
      field('Description', 'description', { value: d.description || '', autocomplete: 'off' }),
      field('Attributes (JSON)', 'attributes', { type: 'textarea', rows: 5, value: JSON.stringify(d.attributes || {}, null, 2), hint: 'A JSON object: what you write here replaces the attributes.' }),
    ], async (v) => {
      const attributes = parseAttributes(v.attributes);
      await api.patch(api.path`/devices/${id}`, { name: v.name.trim(), description: v.description.trim(), attributes: mergePatch(d.attributes || {}, attributes) });
      noticeNext(`${v.name.trim()} is saved.`);
      reload();
    })));
  }

  const chans = await api.all(api.path`/devices/${id}/channels`);
  if (!view.current()) return;
  el.append(h('section', h('h2', 'Channels'), table([
    { title: 'Channel', cell: (c) => c.name },
    { title: 'Latest value', class: 'num', cell: (c) => fmtNumber(c.last_value) },
    { title: 'At', cell: (c) => h('span', { title: fmtTime(c.last_ts) }, fmtAgo(c.last_ts)) },
    { title: 'Readings', class: 'num', cell: (c) => fmtNumber(c.count) },
  ], chans, { empty: 'No readings yet: channels appear with the first reading the device sends.' })));
}

async function rotate(d) {
  if (!await confirm(`New token for ${d.name}?`,
    `The current token of ${d.name} stops working at once and its open connections close. The device needs the new token to send again.`,
    'Make a new token')) return;
  const r = await api.post(api.path`/devices/${d.id}/token`);
  await dialog(`New token for ${d.name}`, h('div', secretBox('Device token', r.token),
    h('div.actions', h('button.primary', { type: 'button', onclick: (e) => closeDialog(e.target) }, 'Done'))));
}
