// The signed-in person's own account: their password, their sessions, and
// invitations waiting for their answer.
import * as api from '../lib/api.js';
import { h, field, form, table, confirm, notice, errorText, fmtTime, fmtAgo, noticeNext, showNoticeNext } from '../lib/ui.js';

const PASSWORD_MIN = 12;  // the server's rule (SPEC §1)

export async function render(view) {
  view.title('Your account');
  const [sessions, invites] = await Promise.all([api.all('/me/sessions'), api.all('/me/invitations')]);
  if (!view.current()) return;
  const reload = () => view.go(location.hash);
  showNoticeNext();

  const pw = form([
    field('Current password', 'current_password', { type: 'password', required: true, autocomplete: 'current-password' }),
    field('New password', 'new_password', { type: 'password', required: true, autocomplete: 'new-password',
      hint: `At least ${PASSWORD_MIN} characters. Your other sessions end when it changes.` }),
    field('New password again', 'again', { type: 'password', required: true, autocomplete: 'new-password' }),
  ], async (v, f) => {
    if ([...v.new_password].length < PASSWORD_MIN) throw new Error(`The new password needs at least ${PASSWORD_MIN} characters.`);
    if (v.new_password !== v.again) throw new Error('The two new passwords differ. Type the same one twice.');
    try {
      await api.put('/me/password', { current_password: v.current_password, new_password: v.new_password });
    } catch (err) {
      if (err.code === 'wrong_password') throw new Error('Your current password is not right. Type it again.');
      throw err;
    }
    f.reset();
    noticeNext('Your password is changed. Your other sessions have ended.');
    reload();
  }, 'Change password');

  const end = (s) => async () => {
    if (!await confirm('End this session?', `The browser or app signed in from ${s.address || 'there'} is signed out at once.`, 'End session')) return;
    try {
      await api.del(api.path`/me/sessions/${s.id}`);
      reload();
    } catch (err) { notice(errorText(err), 'error'); }
  };
  const answer = (inv, how) => async () => {
    try {
      await api.post(api.path`/invitations/${inv.id}/${how}`);
      await view.reloadMe();
      noticeNext(how === 'accept'
        ? `You are now a member of ${inv.org_name} (${inv.role}).` : `You declined to join ${inv.org_name}.`);
      reload();
    } catch (err) { notice(errorText(err), 'error'); }
  };

  view.el.append(h('h1', 'Your account'),
    h('p', 'Signed in as ', h('strong', view.me.email), view.me.superadmin ? ' (superadmin)' : ''),
    h('section', h('h2', 'Invitations'), table([
      { title: 'Organisation', cell: (i) => i.org_name },
      { title: 'Role', cell: (i) => i.role },
      { title: 'Invited', cell: (i) => fmtTime(i.created_at) },
      { title: 'Answer', cell: (i) => h('div.row-actions',
        h('button.primary', { type: 'button', onclick: answer(i, 'accept'), 'aria-label': `Accept joining ${i.org_name}` }, 'Accept'),
        h('button', { type: 'button', onclick: answer(i, 'decline'), 'aria-label': `Decline joining ${i.org_name}` }, 'Decline')) },
    ], invites, { empty: 'No invitation is waiting for you.' })),
    h('section.panel', h('h2', 'Password'), pw),
    h('section', h('h2', 'Your sessions'), table([
      { title: 'From', cell: (s) => s.address || '—' },
      { title: 'Signed in', cell: (s) => fmtTime(s.created_at) },
      { title: 'Last used', cell: (s) => fmtAgo(s.last_seen_at) },
      { title: 'Ends', cell: (s) => fmtTime(s.expires_at) },
      { title: 'Actions', cell: (s) => s.current ? h('span.badge.on', 'This browser')
        : h('button', { type: 'button', onclick: end(s), 'aria-label': `End the session from ${s.address || 'an unknown address'} signed in ${fmtTime(s.created_at)}` }, 'End…') },
    ], sessions, { empty: 'No session.' })),
    h('p', h('a', { href: '#/orgs' }, '← Your organisations')));
}
