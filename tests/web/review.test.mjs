// What a review of the app found, each kept from coming back: a
// dashboard gone is not the organisation gone, and the keyboard's focus
// lands in the new page after a page change or a dialog that re-renders.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newPage, signIn, assertClean, Api } from './harness.mjs';

let server;
let browser;
let api;
let org;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  api = await Api.login(server.url);
  org = await api.post('/api/v1/orgs', { name: 'Review Org' });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('a dashboard deleted meanwhile is said so, in the organisation still', async () => {
  const d = await api.post(`/api/v1/orgs/${org.id}/dashboards`, { name: 'Gone soon', kind: 'static', widgets: [] });
  await api.del(`/api/v1/dashboards/${d.id}`);
  const page = await newPage(browser);
  await signIn(page, server.url);
  await page.goto(`${server.url}/#/o/${org.id}/dashboards/${d.id}`);
  await page.getByRole('heading', { name: 'This dashboard is not there' }).waitFor();
  assert.match(page.url(), new RegExp(`#/o/${org.id}/dashboards/${d.id}$`));
  assert.equal(await page.getByText('You no longer have access').count(), 0);
  await page.getByRole('link', { name: 'All dashboards' }).click();
  await page.getByRole('heading', { name: 'Dashboards', exact: true }).waitFor();
  assertClean(page);
});

const focusInMain = (page) => page.waitForFunction(() => {
  const a = document.activeElement;
  return a && a !== document.body && a.closest('main') !== null;
}, null, { timeout: 5000 });

test('the keyboard lands in the page shown: after a link of the navigation, and after a dialog that changed the page', async () => {
  await api.post(`/api/v1/orgs/${org.id}/apikeys`, { name: 'old key', scopes: ['data:read'] });
  await api.post('/api/v1/orgs', { name: 'Second Org' });
  const page = await newPage(browser);
  await signIn(page, server.url);
  await page.goto(`${server.url}/#/o/${org.id}/devices`);
  await page.getByRole('heading', { name: 'Devices' }).waitFor();
  await page.getByRole('link', { name: 'API keys' }).focus();
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'API keys' }).waitFor();
  await focusInMain(page);
  // Revoke through the confirm dialog: the list is drawn again, the focus
  // is not dropped on the body.
  await page.getByRole('button', { name: 'Revoke old key' }).focus();
  await page.keyboard.press('Enter');
  await page.getByRole('dialog').getByRole('button', { name: 'Revoke old key' }).focus();
  await page.keyboard.press('Enter');
  await page.getByText('There is no API key yet.').waitFor();
  await focusInMain(page);
  // The organisation list too (of two organisations: it is not skipped).
  await page.getByRole('link', { name: 'SensorSpace' }).focus();
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Organisations' }).waitFor();
  await focusInMain(page);
  assertClean(page);
});

// Nothing wider than a 360 px phone on any page, apart from what scrolls
// in its own box (a wide table).
test('no page is wider than a 360 px phone', async () => {
  const dev = await api.post(`/api/v1/orgs/${org.id}/devices`, {
    name: 'a-device-with-a-rather-long-name-that-does-not-break-anywhere',
    attributes: { location: { lat: 52.1, lon: 4.3 }, type: 'a-long-attribute-value-without-any-space-in-it-at-all' },
  });
  await api.ingest(dev.token, { ts: Date.now() - 1000, values: { temperature_of_the_boiler_room: 20.5 } });
  const dash = await api.post(`/api/v1/orgs/${org.id}/dashboards`, { name: 'Phone', kind: 'static', widgets: [
    { type: 'value', device_id: dev.id, channels: ['temperature_of_the_boiler_room'], range: 3600000, options: {} },
    { type: 'map', title: 'Where', options: {} }] });
  const page = await newPage(browser, { width: 360, height: 740 });
  await signIn(page, server.url);
  const o = `#/o/${org.id}`;
  const wide = [];
  for (const [hash, last] of [['#/account', 'Your sessions'],
    [`${o}/dashboards`, 'New dashboard'], [`${o}/dashboards/${dash.id}`, 'Where'], [`${o}/dashboards/${dash.id}/edit`, 'Delete'],
    [`${o}/devices`, null], [`${o}/devices/${dev.id}`, 'Channels'], [`${o}/explore`, 'Points'],
    [`${o}/members`, 'Add a member'], [`${o}/apikeys`, 'New API key'], [`${o}/children`, 'New customer'],
    [`${o}/usage`, 'Per bucket and protocol'], [`${o}/sessions`, 'Records'], [`${o}/audit`, 'Entries'],
    [`${o}/settings`, 'Delete the organisation']]) {
    await page.goto(`${server.url}/${hash}`);
    if (last) await page.getByRole('heading', { name: last, exact: true }).waitFor();
    else await page.locator('main tbody tr').first().waitFor();
    await page.waitForTimeout(300);
    const w = await page.evaluate(() => document.documentElement.scrollWidth);
    if (w > 360) {
      const culprits = await page.evaluate(() => [...document.querySelectorAll('main *')]
        .filter((e) => e.getBoundingClientRect().right > 361 && !e.closest('.table-wrap'))
        .slice(0, 3).map((e) => `${e.tagName.toLowerCase()}.${[...e.classList].join('.')}`));
      wide.push(`${hash}: ${w} px (${culprits.join(', ')})`);
    }
  }
  assert.deepEqual(wide, [], 'pages wider than the phone');
  assertClean(page);
});

// Signing out on purpose forgets where the person was: the next person
// to sign in on that browser starts at their own organisations, not at
// the last one's page (refused, with an error).
test('after a sign-out, the next person starts at their own organisations', async () => {
  const other = await api.post('/api/v1/orgs', { name: 'Other Org' });
  await api.post(`/api/v1/orgs/${other.id}/members`, { email: 'next@example.com', role: 'viewer', password: 'next-person-password' });
  const page = await newPage(browser);
  await signIn(page, server.url);
  await page.goto(`${server.url}/#/o/${org.id}/settings`);
  await page.getByRole('heading', { name: 'Settings' }).waitFor();
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(/#\/signin/);
  await signIn(page, server.url, 'next@example.com', 'next-person-password');
  await page.waitForFunction((id) => location.hash.startsWith(`#/o/${id}/`), other.id, { timeout: 5000 });
  assert.equal(await page.getByText('not one of yours').count(), 0);
  assertClean(page);
});

// The server stopped while a page is open: a page not opened before (its
// module not loaded yet) says the server cannot be reached, not that
// something went wrong.
test('with the server stopped, going to another page says it cannot be reached', async () => {
  const own = await startServer();
  const ownApi = await Api.login(own.url);
  const o = await ownApi.post('/api/v1/orgs', { name: 'Stopped Org' });
  const page = await newPage(browser);
  await signIn(page, own.url);
  await page.goto(`${own.url}/#/o/${o.id}/devices`);
  await page.getByRole('heading', { name: 'Devices' }).waitFor();
  await own.stop();
  await page.getByRole('link', { name: 'API keys' }).click();
  await page.getByRole('alert').filter({ hasText: 'The server cannot be reached' }).waitFor({ timeout: 5000 });
  assertClean(page);
});

// A dynamic dashboard's device picker, arrowed through with the keyboard:
// each step shows that device, and the focus stays on the picker for the
// next step (the view is drawn anew with each device).
test('the device picker of a dynamic dashboard is arrowed through with the keyboard', async () => {
  for (const n of ['Valve 1', 'Valve 2', 'Valve 3'])
    await api.post(`/api/v1/orgs/${org.id}/devices`, { name: n, attributes: { type: 'valve' } });
  const d = await api.post(`/api/v1/orgs/${org.id}/dashboards`, {
    name: 'Valves', kind: 'dynamic', device_filter: { type: 'valve' },
    widgets: [{ type: 'value', title: 'Open', channels: ['open'], options: {} }],
  });
  const page = await newPage(browser);
  await signIn(page, server.url);
  await page.goto(`${server.url}/#/o/${org.id}/dashboards/${d.id}`);
  const picker = page.getByLabel('Device', { exact: true });
  await picker.focus();
  for (const name of ['Valve 2', 'Valve 3']) {
    await page.keyboard.press('ArrowDown');
    await page.waitForFunction((n) => {
      const s = document.querySelector('main select[name="device"]');
      return s && s.selectedOptions[0].textContent === n && location.hash.includes('device=') && document.activeElement === s;
    }, name, { timeout: 5000 });
  }
  assertClean(page);
});

// A dialog belongs to its page: when the session ends while one is open,
// the sign-in page is not left under it (a modal dialog blocks the rest).
test('a session ended while a dialog is open leads to a usable sign-in page', async () => {
  const page = await newPage(browser);
  await signIn(page, server.url);
  await page.goto(`${server.url}/#/o/${org.id}/devices`);
  await page.getByRole('button', { name: 'New device' }).click();
  await page.getByRole('dialog').waitFor();
  for (const s of await api.get('/api/v1/me/sessions'))
    if (!s.current) await api.del(`/api/v1/me/sessions/${s.id}`);
  await page.waitForFunction(() => location.hash.startsWith('#/signin'), null, { timeout: 10000 });
  await page.getByRole('heading', { name: 'Sign in to SensorSpace' }).waitFor();
  assert.equal(await page.locator('dialog[open]').count(), 0, 'no dialog left open over the sign-in page');
  assertClean(page);
});

// A live dashboard whose server stops does not go on looking live: it
// says the updates stopped and why.
test('a live dashboard says when the server cannot be reached', async () => {
  const own = await startServer();
  const ownApi = await Api.login(own.url);
  const o = await ownApi.post('/api/v1/orgs', { name: 'Live Org' });
  const dev = await ownApi.post(`/api/v1/orgs/${o.id}/devices`, { name: 'meter' });
  await ownApi.ingest(dev.token, { ts: Date.now() - 1000, values: { kwh: 3 } });
  const d = await ownApi.post(`/api/v1/orgs/${o.id}/dashboards`, { name: 'Meter', kind: 'static',
    widgets: [{ type: 'value', device_id: dev.id, channels: ['kwh'], range: 3600000, options: {} }] });
  const page = await newPage(browser);
  await signIn(page, own.url);
  await page.goto(`${own.url}/#/o/${o.id}/dashboards/${d.id}`);
  await page.locator('.widget-value .big').filter({ hasText: '3' }).waitFor();
  await page.waitForTimeout(1500);
  assert.equal(await page.getByText('Live updates stopped').isVisible(), false);
  await own.stop();
  await page.getByRole('alert').filter({ hasText: 'Live updates stopped: the server cannot be reached' }).waitFor({ timeout: 10000 });
  assertClean(page);
});

// "just now" on a dashboard ages with the clock: a device that stopped
// sending does not look as if it had just sent.
test('a dashboard\'s "just now" (value, gauge, map) ages while no reading comes', async () => {
  const dev = await api.post(`/api/v1/orgs/${org.id}/devices`, { name: 'quiet meter', attributes: { location: { lat: 1, lon: 2 } } });
  await api.ingest(dev.token, { ts: Date.now() - 1000, values: { level: 4 } });
  const d = await api.post(`/api/v1/orgs/${org.id}/dashboards`, { name: 'Quiet', kind: 'static', widgets: [
    { type: 'value', device_id: dev.id, channels: ['level'], range: 3600000, options: {} },
    { type: 'gauge', device_id: dev.id, channels: ['level'], range: 3600000, options: {} },
    { type: 'map', title: 'Where', options: {} }] });
  const page = await newPage(browser);
  await page.clock.install();
  await signIn(page, server.url);
  await page.goto(`${server.url}/#/o/${org.id}/dashboards/${d.id}`);
  await page.locator('.widget-value .when').filter({ hasText: 'just now' }).waitFor();
  await page.clock.runFor(3 * 60000);
  await page.locator('.widget-value .when').filter({ hasText: '3 min ago' }).waitFor({ timeout: 5000 });
  await page.locator('.widget-gauge .when').filter({ hasText: '3 min ago' }).waitFor({ timeout: 5000 });
  await page.locator('.map-list li').filter({ hasText: 'quiet meter' }).filter({ hasText: 'seen 3 min ago' }).waitFor({ timeout: 5000 });
  assertClean(page);
});

// The organisation list is read again each time it is shown: one made
// meanwhile (by another admin, in another tab) is in it.
test('the organisation list shows an organisation made since sign-in', async () => {
  await api.post('/api/v1/orgs', { name: 'Before Org' });
  const page = await newPage(browser);
  await signIn(page, server.url);
  await page.goto(`${server.url}/#/orgs`);
  await page.getByRole('heading', { name: 'Organisations' }).waitFor();
  await api.post('/api/v1/orgs', { name: 'Made Meanwhile' });
  await page.getByRole('link', { name: 'admin@example.com' }).click();
  await page.getByRole('heading', { name: 'Your account' }).waitFor();
  await page.getByRole('link', { name: 'SensorSpace' }).click();
  await page.getByRole('heading', { name: 'Organisations' }).waitFor();
  await page.getByRole('link', { name: 'Made Meanwhile' }).waitFor({ timeout: 5000 });
  assertClean(page);
});
