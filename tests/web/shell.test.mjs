// The shell: the app is served by the binary with its security headers,
// signs in and out with the cookie, and leads back to sign-in when the
// session ends.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newPage, signIn, shot, axeCheck, assertClean, Api, ADMIN_EMAIL } from './harness.mjs';

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('the app is one page with its assets, cached by build, under a CSP', async () => {
  const res = await fetch(server.url + '/', { headers: { 'Accept-Encoding': 'gzip' } });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /text\/html/);
  const csp = res.headers.get('content-security-policy');
  assert.match(csp, /script-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  assert.equal(res.headers.get('cache-control'), 'no-cache');
  const html = await res.text();
  const asset = html.match(/src="(\/assets\/[0-9a-f]+\/app\.js)"/)[1];
  const js = await fetch(server.url + asset);
  assert.equal(js.status, 200);
  assert.match(js.headers.get('cache-control'), /immutable/);
  const again = await fetch(server.url + asset, { headers: { 'If-None-Match': js.headers.get('etag') } });
  assert.equal(again.status, 304);
  // The plain and the gzip form are two representations: two tags.
  const plain = await fetch(server.url + asset, { headers: { 'Accept-Encoding': 'identity' } });
  const zipped = await fetch(server.url + asset, { headers: { 'Accept-Encoding': 'gzip' } });
  assert.equal(zipped.headers.get('content-encoding'), 'gzip');
  assert.equal(plain.headers.get('content-encoding'), null);
  assert.notEqual(plain.headers.get('etag'), zipped.headers.get('etag'));
  const plainAgain = await fetch(server.url + asset, {
    headers: { 'Accept-Encoding': 'identity', 'If-None-Match': zipped.headers.get('etag') },
  });
  assert.equal(plainAgain.status, 200);
  assert.equal((await fetch(server.url + '/assets/000000000000/app.js')).status, 404);
  assert.equal((await fetch(server.url + '/', { method: 'POST' })).status, 405);
});

test('sign in with the cookie, see the organisations, sign out', async () => {
  const page = await newPage(browser);
  await page.goto(server.url + '/');
  await page.waitForURL(/#\/signin/);
  await axeCheck(page, 'sign-in');
  await shot(page, 'signin');
  await page.getByLabel('Email').fill(ADMIN_EMAIL);
  await page.getByLabel('Password').fill('not-the-password-1');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').filter({ hasText: /email or password|credentials/i }).waitFor();
  await signIn(page, server.url);
  await page.getByRole('heading', { name: 'Organisations' }).waitFor();
  const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }));
  assert.doesNotMatch(stored, /sss_|ssd_|ssk_/, 'no secret in localStorage');
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === 'ss_session');
  assert.ok(session && session.httpOnly && session.sameSite === 'Strict');
  await axeCheck(page, 'organisations');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(/#\/signin/);
  assertClean(page);
  await page.context().close();
});

test('an ended session leads back to sign-in, then to where the person was', async () => {
  const api = await Api.login(server.url);
  const org = await api.post('/api/v1/orgs', { name: 'Shell Org' });
  const page = await newPage(browser, { width: 360, height: 740 });
  await signIn(page, server.url);
  await page.goto(`${server.url}/#/o/${org.id}/settings`);
  await page.waitForLoadState('networkidle');
  await shot(page, 'phone-settings');
  // The server ends every session of the person; the page learns it at its
  // next request and sends them to sign in.
  const sessions = await api.get('/api/v1/me/sessions');
  for (const s of sessions) await api.del(`/api/v1/me/sessions/${s.id}`).catch(() => {});
  await page.evaluate(() => window.dispatchEvent(new HashChangeEvent('hashchange')));
  await page.waitForURL(/#\/signin/);
  await page.getByRole('alert').filter({ hasText: /session has ended/i }).waitFor();
  await signIn(page, server.url);
  await page.waitForURL(new RegExp(`#/o/${org.id}/settings`));
  assertClean(page);
  await page.context().close();
});

test('every module the page preloads is served', async () => {
  const html = await (await fetch(server.url + '/')).text();
  const hrefs = [...html.matchAll(/<link rel="modulepreload" href="([^"]+)">/g)].map((m) => m[1]);
  assert.ok(hrefs.some((h) => h.endsWith('/pages/dashboards.js')) && hrefs.some((h) => h.endsWith('/vendor/uplot.esm.js')));
  for (const h of hrefs) {
    const res = await fetch(server.url + h);
    assert.equal(res.status, 200, h);
    assert.match(res.headers.get('content-type'), /javascript/, h);
  }
});
