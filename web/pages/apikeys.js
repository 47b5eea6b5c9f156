// API keys of an organisation: the list (never a key itself), creating one
// with its scopes (the key shown once), revoking.
import * as api from '../lib/api.js';
import { h, field, form, table, dialog, closeDialog, confirm, secretBox, notice, errorText, fmtTime } from '../lib/ui.js';

const SCOPES = [
  ['data:read', 'data:read — read devices and their data'],
  ['data:write', 'data:write — send data as any device'],
  ['manage', 'manage — administer the organisation, as an admin'],
];

export async function render(view) {
  const org = view.org;
  const base = api.path`/orgs/${org.id}/apikeys`;
  const keys = await api.all(base);
  if (!view.current()) return;
  const reload = () => view.go(location.hash);
  const revoke = (k) => async () => {
    if (!await confirm(`Revoke ${k.name}?`, `Apps using ${k.name} are refused from their next request on. This cannot be undone.`, `Revoke ${k.name}`)) return;
    try {
      await api.del(api.path`/apikeys/${k.id}`);
      reload();
    } catch (err) { notice(errorText(err), 'error'); }
  };
  const create = form([
    field('Name', 'name', { required: true, autocomplete: 'off', hint: 'What the key is for, e.g. the app that uses it.' }),
    h('fieldset.scopes', h('legend', 'Scopes'), SCOPES.map(([s, text]) => field(text, 'scope:' + s, { type: 'checkbox', value: s === 'data:read' }))),
  ], async (v) => {
    const scopes = SCOPES.map(([s]) => s).filter((s) => v['scope:' + s]);
    if (!scopes.length) throw new Error('Choose at least one scope.');
    const k = await api.post(base, { name: v.name.trim(), scopes });
    await dialog(`API key ${k.name}`, h('div',
      h('p', `Apps send it as "Authorization: Bearer …". Scopes: ${scopes.join(', ')}.`),
      secretBox('API key', k.key),
      h('div.actions', h('button.primary', { type: 'button', onclick: (e) => closeDialog(e.target) }, 'Done'))));
    if (view.current()) reload();  // not when the dialog closed because the page was left
  }, 'Create API key');
  view.el.append(h('h1', 'API keys'),
    table([
      { title: 'Name', cell: (k) => k.name },
      { title: 'Scopes', cell: (k) => (k.scopes || []).join(', ') },
      { title: 'Created', cell: (k) => fmtTime(k.created_at) },
      { title: 'Actions', cell: (k) => h('button', { type: 'button', onclick: revoke(k), 'aria-label': `Revoke ${k.name}` }, 'Revoke…') },
    ], keys, { empty: 'There is no API key yet.' }),
    h('section.panel', h('h2', 'New API key'), create));
}
