// Settings of an organisation: its name (admin), where it stands in the
// tree, and deleting it (owner). Also the form with which the superadmin
// creates a top-level organisation on the organisation list.
import * as api from '../lib/api.js';
import { h, field, form, confirm, showError, noticeNext, showNoticeNext } from '../lib/ui.js';
import { roleAtLeast } from '../app.js';

export async function render(view) {
  showNoticeNext();
  const org = await api.get(api.path`/orgs/${view.org.id}`);
  const parent = org.parent_id && view.orgs.find((o) => o.id === org.parent_id);
  const el = view.el;
  el.append(h('h1', 'Settings'),
    h('dl.facts',
      h('dt', 'Organisation ID'), h('dd', h('code', org.id)),
      h('dt', 'Part of'), h('dd', !org.parent_id ? 'Nothing: a top-level organisation'
        : parent ? h('a', { href: view.orgHref(parent.id, '') }, parent.name)
          : 'An organisation you are not a member of'),
      h('dt', 'Your role'), h('dd', view.role)));

  if (roleAtLeast(view.role, 'admin')) {
    el.append(h('section', h('h2', 'Name'), form([
      field('Name', 'name', { required: true, value: org.name, autocomplete: 'off' }),
    ], async (v) => {
      await api.patch(api.path`/orgs/${org.id}`, { name: v.name.trim() });
      noticeNext(`The organisation is now called ${v.name.trim()}.`);
      await view.reloadMe();
      view.go(location.hash);
    }, 'Rename')));
  } else {
    el.append(h('p', 'Only an admin can rename the organisation.'));
  }

  if (view.role === 'owner') {
    const status = h('p.form-error', { role: 'alert', hidden: true });
    const del = async () => {
      status.hidden = true;
      if (!await confirm(`Delete ${org.name}?`,
        `${org.name}, its devices with all their readings, its members and its API keys will be deleted. This cannot be undone.`,
        `Delete ${org.name}`)) return;
      try {
        await api.del(api.path`/orgs/${org.id}`);
      } catch (err) {
        if (err.code === 'org_has_children') {
          status.textContent = `${org.name} still has customer organisations. Delete those first (see Customers), then delete this one.`;
          status.hidden = false;
        } else showError(status, err);
        return;
      }
      await view.reloadMe();
      view.go('#/orgs');
    };
    el.append(h('section.danger-zone', h('h2', 'Delete the organisation'),
      h('p', 'Deleting removes everything in it at once. Customer organisations must be deleted first.'),
      h('button.danger', { type: 'button', onclick: del }, `Delete ${org.name}…`), status));
  }
}

// On the organisation list, for the superadmin.
export function renderCreateTop(view) {
  view.el.append(h('section.panel.create-org', h('h2', 'New organisation'), form([
    field('Name of the new organisation', 'name', { required: true, autocomplete: 'off' }),
  ], async (v) => {
    const org = await api.post('/orgs', { name: v.name.trim() });
    await view.reloadMe();
    view.go(view.orgHref(org.id, ''));
  }, 'Create organisation')));
}
