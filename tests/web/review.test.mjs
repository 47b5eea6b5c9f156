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
  assertClean(page);
});
