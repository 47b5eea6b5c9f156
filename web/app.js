// The shell of the web app: signs in, knows who is signed in and which
// organisations they stand in, draws the frame (organisation, navigation,
// notices) and hands the main area to the page the URL names.
//
// URLs are hash routes, so the server serves one page:
//   #/signin              sign in
//   #/orgs                pick an organisation (the tree you stand in)
//   #/account             your password and sessions
//   #/o/ORG/PAGE/ARG…?Q   a page of an organisation
import * as api from './lib/api.js';
import { h, clear, notice } from './lib/ui.js';

// Roles, lowest first (SPEC §2): each includes the ones before it.
export const ROLES = ['dashboard', 'viewer', 'editor', 'admin', 'owner'];
export const roleAtLeast = (role, min) => ROLES.indexOf(role) >= ROLES.indexOf(min);

// The pages of an organisation, in the order of the navigation. `min`: the
// lowest role that sees the page.
const PAGES = [
  { id: 'dashboards', label: 'Dashboards', min: 'dashboard', load: () => import('./pages/dashboards.js') },
  { id: 'devices', label: 'Devices', min: 'viewer', load: () => import('./pages/devices.js') },
  { id: 'explore', label: 'Explore', min: 'viewer', load: () => import('./pages/explore.js') },
  { id: 'members', label: 'Members', min: 'admin', load: () => import('./pages/members.js') },
  { id: 'apikeys', label: 'API keys', min: 'admin', load: () => import('./pages/apikeys.js') },
  { id: 'children', label: 'Customers', min: 'admin', load: () => import('./pages/children.js') },
  { id: 'usage', label: 'Usage', min: 'admin', load: () => import('./pages/usage.js') },
  { id: 'sessions', label: 'Sessions', min: 'admin', load: () => import('./pages/sessions.js') },
  { id: 'audit', label: 'Audit log', min: 'admin', load: () => import('./pages/audit.js') },
  { id: 'settings', label: 'Settings', min: 'viewer', load: () => import('./pages/orgs.js') },
];

// How often an open page asks whether its session and access still hold
// (a live stream learns it at once; other pages at the latest then).
const ACCESS_CHECK_MS = 5000;

const state = {
  me: null,        // GET /me
  orgs: [],        // GET /orgs: every org the person stands in
  cleanups: [],    // what the current page must stop when left
  rendering: 0,    // a newer render makes an older one stop drawing
};

const root = document.getElementById('app');

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [p, q = ''] = raw.split('?');
  return { parts: p.split('/').filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(q) };
}

export function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

export function orgHref(org, page, ...args) {
  return `#/o/${encodeURIComponent(org)}/${page}${args.map((a) => '/' + encodeURIComponent(a)).join('')}`;
}

function orgById(id) {
  return state.orgs.find((o) => o.id === id);
}

// The person's role in an org: their own there or in an org above it.
function roleIn(orgId) {
  if (state.me && state.me.superadmin) return 'owner';
  let best = -1;
  for (let o = orgById(orgId), depth = 0; o && depth < 64; o = orgById(o.parent_id), depth++) {
    for (const m of state.me.memberships || [])
      if (m.org_id === o.id) best = Math.max(best, ROLES.indexOf(m.role));
  }
  return best >= 0 ? ROLES[best] : null;
}

// /me and /orgs together (both reads: nothing is written before the CSRF
// token is set); quiet, so a visitor not signed in is not told a session ended.
async function loadMe() {
  const [me, orgs] = await Promise.all([api.get('/me', { quiet: true }), api.all('/orgs', {}, undefined, { quiet: true })]);
  api.setCsrf(me.csrf);
  state.me = { ...me.user, memberships: me.memberships };
  state.orgs = orgs;
}

function runCleanups() {
  // A dialog belongs to the page that opened it (a modal one left open
  // would block the next page: sign-in, when the session ended).
  for (const d of document.querySelectorAll('dialog[open]')) d.close();
  for (const fn of state.cleanups.splice(0)) {
    try { fn(); } catch { /* a page's cleanup must not stop the next page */ }
  }
}

// remember: come back here after signing in again (a session that ended,
// not a sign-out: the next person on this browser starts at their own).
function signedOut(message, remember = true) {
  runCleanups();
  state.me = null;
  state.orgs = [];
  const back = remember && location.hash && !location.hash.startsWith('#/signin') ? location.hash : '';
  // A second request refused by the same ending must not forget where the
  // person was (the hash is already #/signin then).
  if (back) sessionStorage.setItem('ss-return', back);
  else if (!remember) sessionStorage.removeItem('ss-return');
  if (message) sessionStorage.setItem('ss-signin-message', message);
  go('#/signin');
}

api.on('signedOut', () => signedOut('Your session has ended. Sign in again.'));
api.on('accessLost', () => {
  runCleanups();
  sessionStorage.setItem('ss-orgs-message', 'You no longer have access to that organisation.');
  state.me = null;  // read memberships again
  go('#/orgs');
});

// Asks whether the session and the org still hold: a 401 signs out, a 404
// (removed from the org, or the org deleted) leaves it.
// Whether the org and the person's role in it still hold: a role that
// changed (made a viewer, made an admin) draws the page again with the
// pages the new role has, so no link leads to a page the role lost.
async function recheck(orgId, role, token) {
  try {
    await api.get(`/orgs/${encodeURIComponent(orgId)}`);
    const me = await api.get('/me');
    if (token !== state.rendering) return;
    state.me = { ...me.user, memberships: me.memberships };
    const now = roleIn(orgId);
    if (!now) api.accessLost(orgId);  // removed between the two answers
    else if (now !== role) route();
  } catch (err) {
    if (err.status === 404 || err.status === 403) api.accessLost(orgId);
  }
}

// Runs check now and every ACCESS_CHECK_MS while the page is open and in
// sight; a 401 on the way leads to the sign-in page (api's signedOut).
function whileOpen(check) {
  check();
  const timer = setInterval(() => { if (document.visibilityState === 'visible') check(); }, ACCESS_CHECK_MS);
  state.cleanups.push(() => clearInterval(timer));
}

const sessionHolds = () => api.get('/me').catch(() => { /* a 401 signs out; else try later */ });

function frame(org, role, pageId) {
  const nav = h('nav.org-nav', { 'aria-label': 'Organisation' },
    h('ul', PAGES.filter((p) => roleAtLeast(role, p.min)).map((p) =>
      h('li', h('a', { href: orgHref(org.id, p.id), 'aria-current': p.id === pageId ? 'page' : undefined }, p.label)))));
  const header = h('header.top',
    h('a.brand', { href: '#/orgs' }, h('span.logo', { 'aria-hidden': 'true' }), 'SensorSpace'),
    h('a.org-switch', { href: '#/orgs', title: 'Switch organisation' },
      h('span.visually-hidden', 'Organisation: '), org.name, h('span.role', role)),
    userMenu());
  const main = h('main#main', { tabindex: '-1' });
  clear(root).append(skipLink(), header, nav, h('div#notices', { 'aria-live': 'polite' }), main);
  return main;
}

function skipLink() {
  return h('button.skip', { type: 'button', onclick: () => document.getElementById('main')?.focus() }, 'Skip to content');
}

function userMenu() {
  return h('div.user',
    h('a', { href: '#/account' }, state.me.email),
    h('button.link', { type: 'button', onclick: signOut }, 'Sign out'));
}

async function signOut() {
  try { await api.post('/auth/logout'); } catch { /* signed out either way */ }
  signedOut('', false);
}

function plainFrame() {
  const header = state.me ? h('header.top', h('a.brand', { href: '#/orgs' }, h('span.logo', { 'aria-hidden': 'true' }), 'SensorSpace'), userMenu()) : null;
  const main = h('main#main', { tabindex: '-1' });
  clear(root).append(skipLink(), header || '', h('div#notices', { 'aria-live': 'polite' }), main);
  return main;
}

// What a page gets: where to draw, the org and role, the route's
// arguments, and hooks back into the shell.
function makeView(main, token, extra) {
  return {
    el: main,
    me: state.me,
    args: extra.args || [],
    query: extra.query || new URLSearchParams(),
    org: extra.org || null,
    role: extra.role || null,
    orgs: state.orgs,
    go,
    orgHref,
    current: () => token === state.rendering,
    cleanup: (fn) => state.cleanups.push(fn),
    recheck: () => extra.org && recheck(extra.org.id, extra.role, token),
    title: (t) => { document.title = t ? `${t} · SensorSpace` : 'SensorSpace'; },
    reloadMe: loadMe,
  };
}

// A page's module that does not load: the server is down, or it was
// updated and serves another build's assets. Either said as a sentence.
async function loadPage(loader) {
  try {
    return await loader();
  } catch {
    const up = await fetch('/', { method: 'HEAD', cache: 'no-store' }).then(() => true, () => false);
    if (!up) throw new api.ApiError(0, 'network', '');
    const text = 'SensorSpace was updated since this page was opened. Reload the page.';
    throw Object.assign(new Error(text), { sentence: () => text });
  }
}

async function show(loader, main, view) {
  try {
    const mod = await loadPage(loader);
    if (!view.current()) return;
    await mod.render(view);
    landFocus(main, view);
  } catch (err) {
    if (!view.current()) return;
    if (err && err.status === 401) return;  // signedOut leads on
    if (err && err.status === 404 && view.org) { api.accessLost(view.org.id); return; }
    clear(main).append(h('div.page-error', { role: 'alert' },
      h('h1', 'This page could not be shown'),
      h('p', err && err.sentence ? err.sentence() : 'Something went wrong. Reload the page and try again.')));
    landFocus(main, view);
  }
}

// The frame is drawn anew with each page, so the link or button that led
// here is gone and the keyboard's focus with it: it lands on the page
// shown (a page that put it somewhere itself keeps that).
function landFocus(main, view) {
  const a = document.activeElement;
  if (view.current() && (!a || a === document.body || !a.isConnected)) main.focus({ preventScroll: true });
}

async function route() {
  runCleanups();
  const token = ++state.rendering;
  const hash = location.hash;
  // Stale once a newer route began, or once the URL moved on while this one
  // waited (its hashchange not handled yet): a go() from here would undo it.
  const stale = () => token !== state.rendering || location.hash !== hash;
  const { parts, query } = parseHash();
  if (parts[0] === 'signin') {
    const main = plainFrame();
    return show(() => import('./pages/signin.js'), main, makeView(main, token, { query }));
  }
  const fresh = !state.me;
  if (fresh) {
    try {
      await loadMe();
    } catch (err) {
      if (stale()) return;
      if (err.status === 401 || err.status === 403) return signedOut('');
      clear(root).append(h('main#main.page-error', h('h1', 'SensorSpace cannot be reached'), h('p', err.sentence ? err.sentence() : String(err))));
      return;
    }
    if (stale()) return;
  }
  if (parts[0] === 'account') {
    const main = plainFrame();
    whileOpen(sessionHolds);
    return show(() => import('./pages/account.js'), main, makeView(main, token, { query }));
  }
  if (parts[0] !== 'o' || !parts[1]) {
    // Read again each time it is shown: an org made or joined meanwhile
    // (another admin, another tab) is listed.
    if (!fresh) {
      try { await loadMe(); } catch (err) {
        if (err.status === 401) return signedOut('Your session has ended. Sign in again.');
        /* otherwise the list as read before */
      }
      if (stale()) return undefined;
    }
    return orgPicker(token);
  }
  let org = orgById(parts[1]);
  if (!org) {
    // Made since the list was read (another tab, a child just created):
    // read the memberships and organisations again before refusing.
    try { await loadMe(); } catch { /* refused below, or signed out */ }
    if (stale()) return;
    org = orgById(parts[1]);
  }
  const role = org && roleIn(org.id);
  if (!org || !role) {
    sessionStorage.setItem('ss-orgs-message', 'That organisation is not one of yours, or it no longer exists.');
    return go('#/orgs');
  }
  const allowed = PAGES.filter((p) => roleAtLeast(role, p.min));
  const page = allowed.find((p) => p.id === parts[2]) || allowed[0];
  if (page.id !== parts[2]) return go(orgHref(org.id, page.id));
  const main = frame(org, role, page.id);
  // Each page shown, and every ACCESS_CHECK_MS while one is open, asks
  // again whether the session and the membership hold.
  whileOpen(() => recheck(org.id, role, token));
  document.title = `${page.label} · ${org.name} · SensorSpace`;
  return show(page.load, main, makeView(main, token, { org, role, args: parts.slice(3), query }));
}

// The organisations the person stands in, as a tree.
function orgPicker(token) {
  const main = plainFrame();
  document.title = 'Organisations · SensorSpace';
  const msg = sessionStorage.getItem('ss-orgs-message');
  sessionStorage.removeItem('ss-orgs-message');
  if (msg) notice(msg, 'error');
  if (state.orgs.length === 1 && !msg) return go(orgHref(state.orgs[0].id, ''));
  whileOpen(sessionHolds);
  const ids = new Set(state.orgs.map((o) => o.id));
  const kids = new Map();
  for (const o of state.orgs) {
    const p = ids.has(o.parent_id) ? o.parent_id : '';
    if (!kids.has(p)) kids.set(p, []);
    kids.get(p).push(o);
  }
  const tree = (parent, depth) => {
    const list = kids.get(parent) || [];
    if (!list.length || depth > 64) return null;
    return h('ul', list.map((o) => h('li',
      h('a', { href: orgHref(o.id, '') }, o.name), h('span.role', roleIn(o.id) || ''),
      tree(o.id, depth + 1))));
  };
  main.append(h('h1', 'Organisations'),
    state.orgs.length
      ? h('nav.org-tree', { 'aria-label': 'Your organisations' }, tree('', 0))
      : h('p.empty', state.me.superadmin
        ? 'There is no organisation yet. Create the first one below.'
        : 'You are not a member of any organisation yet. Ask an admin to add you.'));
  landFocus(main, makeView(main, token, {}));
  if (state.me.superadmin) {
    import('./pages/orgs.js').then((m) => token === state.rendering && m.renderCreateTop && m.renderCreateTop(makeView(main, token, {})));
  }
}

window.addEventListener('hashchange', route);
route();
