// Members of an organisation and their roles: add a person (a new one gets
// an account; one who has an account may be invited and joins by
// accepting), change a role, remove; the invitations still waiting.
import * as api from '../lib/api.js';
import { h, field, form, table, confirm, notice, errorText, fmtTime, noticeNext, showNoticeNext } from '../lib/ui.js';
import { ROLES, roleAtLeast } from '../app.js';

const ROLE_TEXT = {
  dashboard: 'Dashboard: sees the dashboards only',
  viewer: 'Viewer: reads devices and data',
  editor: 'Editor: also changes devices and dashboards',
  admin: 'Admin: also members, API keys, customers',
  owner: 'Owner: everything, deleting the organisation too',
};

// The roles the signed-in person may grant: none above their own, and
// owner only by an owner.
function grantable(role) {
  return ROLES.filter((r) => roleAtLeast(role, r) && (r !== 'owner' || role === 'owner'));
}

export async function render(view) {
  const org = view.org;
  const base = api.path`/orgs/${org.id}`;
  const [members, invites] = await Promise.all([api.all(base + '/members'), api.all(base + '/invitations')]);
  if (!view.current()) return;
  const roles = grantable(view.role);
  const reload = () => view.go(location.hash);

  // A role changes when the person says so with the button beside the
  // select: arrowing through a select fires a change at every step.
  const roleSelect = (m) => {
    if (!roles.includes(m.role)) return h('span', m.role);
    const sel = h('select', { 'aria-label': `Role of ${m.email}` },
      roles.map((r) => h('option', { value: r, selected: r === m.role }, r)));
    const save = h('button', { type: 'button', disabled: true }, `Set role of ${m.email}`);
    sel.addEventListener('change', () => { save.disabled = sel.value === m.role; });
    save.addEventListener('click', async () => {
      save.disabled = true;
      try {
        await api.patch(api.path`/orgs/${org.id}/members/${m.user_id}`, { role: sel.value });
        m.role = sel.value;
        notice(`${m.email} is now ${sel.value}.`, 'ok');
      } catch (err) {
        sel.value = m.role;
        notice(errorText(err), 'error');
      }
    });
    return h('span.role-edit', sel, save);
  };
  const remove = (m) => async () => {
    if (!await confirm(`Remove ${m.email}?`, `${m.email} loses access to ${org.name} (and the organisations below it) at once.`, `Remove ${m.email}`)) return;
    try {
      await api.del(api.path`/orgs/${org.id}/members/${m.user_id}`);
      noticeNext(`${m.email} was removed.`);
      reload();
    } catch (err) { notice(errorText(err), 'error'); }
  };
  const withdraw = (inv) => async () => {
    if (!await confirm(`Withdraw the invitation of ${inv.email}?`, `${inv.email} can no longer accept it.`, 'Withdraw')) return;
    try {
      await api.del(api.path`/orgs/${org.id}/invitations/${inv.id}`);
      reload();
    } catch (err) { notice(errorText(err), 'error'); }
  };

  showNoticeNext();

  const addForm = form([
    field('Email', 'email', { type: 'email', required: true, autocomplete: 'off' }),
    field('Role', 'role', { options: roles.map((r) => [r, ROLE_TEXT[r]]), value: roles.includes('viewer') ? 'viewer' : roles[0] }),
    field('Initial password', 'password', { type: 'password', autocomplete: 'new-password',
      hint: view.me.superadmin
        ? 'Only for a new person: at least 12 characters. Pass it on to them; someone who has an account keeps their own.'
        : 'At least 12 characters. A new person signs in with it (pass it on to them); someone who already has an account keeps their own, gets an invitation and joins once they accept it.' }),
  ], async (v) => {
    const body = { email: v.email.trim(), role: v.role };
    if (v.password) body.password = v.password;
    const r = await api.post(base + '/members', body);
    noticeNext(r && r.status === 'invited'
      ? `${body.email} is invited as ${body.role}: they join once they accept the invitation after signing in.`
      : `${body.email} is now a member (${body.role}).`);
    reload();
  }, 'Add member');

  view.el.append(h('h1', 'Members'),
    table([
      { title: 'Email', cell: (m) => [m.email, m.disabled ? h('span.badge.off', 'Disabled') : null] },
      { title: 'Role', cell: roleSelect },
      { title: 'Actions', cell: (m) => roles.includes(m.role)
        ? h('button', { type: 'button', onclick: remove(m), 'aria-label': `Remove ${m.email}` }, 'Remove…') : '' },
    ], members, { empty: 'Nobody is a member of this organisation itself; roles may come from an organisation above it.' }),
    h('section', h('h2', 'Invitations waiting'), table([
      { title: 'Email', cell: (i) => i.email },
      { title: 'Role', cell: (i) => i.role },
      { title: 'Invited', cell: (i) => fmtTime(i.created_at) },
      { title: 'Actions', cell: (i) => h('button', { type: 'button', onclick: withdraw(i), 'aria-label': `Withdraw the invitation of ${i.email}` }, 'Withdraw…') },
    ], invites, { empty: 'No invitation is waiting.' })),
    h('section.panel', h('h2', 'Add a member'), addForm));
}
