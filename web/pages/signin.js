// Sign in with email and password: the server sets the HttpOnly session
// cookie; the page keeps only the CSRF token, in memory.
import * as api from '../lib/api.js';
import { h, field, form, notice } from '../lib/ui.js';

export async function render(view) {
  view.title('Sign in');
  const msg = sessionStorage.getItem('ss-signin-message');
  sessionStorage.removeItem('ss-signin-message');
  if (msg) notice(msg, 'error');
  const f = form([
    field('Email', 'email', { type: 'email', required: true, autocomplete: 'username' }),
    field('Password', 'password', { type: 'password', required: true, autocomplete: 'current-password' }),
  ], async (v) => {
    // quiet: a wrong password is a 401 shown here, not an ended session.
    const { data } = await api.request('POST', '/auth/login', { email: v.email.trim(), password: v.password }, { quiet: true });
    api.setCsrf(data.csrf);
    const back = sessionStorage.getItem('ss-return') || '#/orgs';
    sessionStorage.removeItem('ss-return');
    await view.reloadMe();
    view.go(back);
  }, 'Sign in');
  view.el.append(h('section.signin',
    h('h1', 'Sign in to SensorSpace'), f));
  f.querySelector('input').focus();
}
