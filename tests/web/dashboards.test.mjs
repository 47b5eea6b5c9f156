// Dashboards in the app: built and edited in the page, updating live from
// the stream (a reading sent with curl shows within a second, no reload),
// a dynamic one switching device, and a dashboard-role person who sees
// dashboards and nothing else.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { startServer, launchBrowser, newPage, signIn, shot, axeCheck, assertClean, Api } from './harness.mjs';

let server;
let browser;
let api;
let org;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  api = await Api.login(server.url);
  org = await api.post('/api/v1/orgs', { name: 'Dash Org' });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

// A reading as a device sends it: curl with the device's token (in a
// header, never in the URL).
function curl(token, body) {
  return new Promise((resolve, reject) => {
    const p = spawn('curl', ['-sS', '-f', '-H', `X-Auth-Token: ${token}`, '-H', 'Content-Type: application/json',
      '--data-binary', JSON.stringify(body), `${server.url}/api/v1/data`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    p.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`curl: ${code} ${out}`))));
  });
}

async function device(name, attributes = {}) {
  return api.post(`/api/v1/orgs/${org.id}/devices`, { name, attributes });
}

const dashUrl = (id, rest = '') => `${server.url}/#/o/${org.id}/dashboards${id ? '/' + id : ''}${rest}`;

test('an editor builds a static dashboard in the page; a reading sent with curl shows on it within a second', async () => {
  const dev = await device('Boiler', { location: { lat: 48.85, lon: 2.35 } });
  await api.ingest(dev.token, { ts: Date.now() - 60000, values: { temp: 20, rh: 40 } });
  const page = await newPage(browser);
  await signIn(page, server.url);
  await page.goto(dashUrl());
  await page.getByRole('heading', { name: 'Dashboards' }).waitFor();
  await page.getByLabel('Name').fill('Boiler room');
  await page.getByRole('button', { name: 'Create dashboard' }).click();
  await page.getByRole('heading', { name: 'Edit Boiler room' }).waitFor();
  const setUp = async (i, type, title) => {
    await page.getByRole('button', { name: 'Add widget' }).click();
    const w = page.locator(`#we${i}`);
    await w.getByLabel('Type').selectOption(type);
    await w.getByLabel('Title').fill(title);
    await w.getByLabel('Device').selectOption({ label: 'Boiler' });
    await w.getByLabel('temp').check();
    return w;
  };
  const l = await setUp(0, 'line', 'Temperature');
  await l.getByLabel('Time range').selectOption({ label: '15 minutes' });
  const g = await setUp(1, 'gauge', 'Now');
  await g.getByLabel('Minimum').fill('0');
  await g.getByLabel('Maximum').fill('100');
  await g.getByLabel('Unit').fill('°C');
  const v = await setUp(2, 'value', 'Latest');
  await v.getByLabel('Unit').fill('°C');
  await setUp(3, 'table', 'Readings');
  await axeCheck(page, 'dashboard-edit');
  await shot(page, 'dashboard-edit');
  await page.getByRole('button', { name: 'Save dashboard' }).click();
  await page.getByRole('heading', { name: 'Boiler room', exact: true }).waitFor();
  const value = page.locator('.widget-value .big');
  await value.filter({ hasText: '20' }).waitFor();
  const points = page.locator('.widget-line .chart');
  await page.waitForFunction(() => document.querySelector('.widget-line .chart')?.dataset.points === '1');
  await page.locator('.widget-table tbody tr').first().waitFor();

  // Sent with curl while the page is open: it shows within a second, by
  // the stream (no data query asked meanwhile).
  const queries = [];
  page.on('request', (r) => { if (r.url().includes('/data?')) queries.push(r.url()); });
  const sent = Date.now();
  await curl(dev.token, { ts: sent, values: { temp: 23.5 } });
  await value.filter({ hasText: '23.5' }).waitFor({ timeout: 1000 });
  await page.waitForFunction(() => document.querySelector('.widget-line .chart')?.dataset.points === '2', null, { timeout: 1000 });
  assert.ok(Date.now() - sent < 1500);
  assert.deepEqual(queries, []);
  assert.equal(await points.getAttribute('data-points'), '2');
  await page.locator('.widget-gauge text.gauge-text').filter({ hasText: '23.5 °C' }).waitFor();
  assert.equal(await page.locator('.widget-table tbody tr').count(), 2);
  assert.match(await page.locator('.widget-table tbody tr').first().textContent(), /23\.5/);
  await axeCheck(page, 'dashboard-view');
  await shot(page, 'dashboard-view');

  // The list shows it.
  await page.getByRole('link', { name: 'Dashboards' }).click();
  await page.getByRole('link', { name: 'Boiler room' }).waitFor();
  await axeCheck(page, 'dashboards');
  await shot(page, 'dashboards');
  assertClean(page);
  await page.context().close();
});

test('the edit mode saves a reordered layout, and it comes back the same after a reload', async () => {
  const dev = await device('Cellar sensor');
  await api.ingest(dev.token, { temp: 11, rh: 80 });
  const d = await api.post(`/api/v1/orgs/${org.id}/dashboards`, {
    name: 'Cellar', kind: 'static', widgets: [
      { type: 'value', title: 'First', device_id: dev.id, channels: ['temp'] },
      { type: 'table', title: 'Second', device_id: dev.id, channels: ['temp', 'rh'] },
    ],
  });
  const page = await newPage(browser);
  await signIn(page, server.url);
  await page.goto(dashUrl(d.id, '/edit'));
  await page.getByRole('heading', { name: 'Edit Cellar' }).waitFor();
  await page.getByRole('button', { name: 'Move widget 2 up' }).click();
  assert.equal(await page.evaluate(() => document.activeElement.getAttribute('aria-label')), 'Move widget 1 down');
  await page.getByRole('button', { name: 'Remove widget 2' }).click();
  await page.getByRole('button', { name: 'Add widget' }).click();
  const w = page.locator('#we1');
  await w.getByLabel('Type').selectOption('gauge');
  await w.getByLabel('Title').fill('Humidity');
  await w.getByLabel('Device').selectOption({ label: 'Cellar sensor' });
  await w.getByLabel('rh').check();
  await w.getByLabel('Maximum').fill('100');
  // A widget with no channel is refused by the server, in a sentence.
  await page.locator('#we0').getByLabel('temp').uncheck();
  await page.locator('#we0').getByLabel('rh').uncheck();
  await page.getByRole('button', { name: 'Save dashboard' }).click();
  await page.getByRole('alert').filter({ hasText: /^Widget 1 \(channels\): .+\.$/ }).waitFor();
  await page.locator('#we0').getByLabel('rh').check();
  await page.getByRole('button', { name: 'Save dashboard' }).click();
  await page.waitForURL(new RegExp(`/dashboards/${d.id}$`));
  await page.locator('.widget-gauge text.gauge-text').filter({ hasText: '80' }).waitFor();
  const saved = await api.get(`/api/v1/dashboards/${d.id}`);
  assert.deepEqual(saved.widgets.map((x) => [x.type, x.title, x.channels]),
    [['table', 'Second', ['rh']], ['gauge', 'Humidity', ['rh']]]);
  assert.equal(saved.widgets[1].options.max, 100);
  await page.goto(dashUrl(d.id, '/edit'));
  await page.reload();
  await page.getByRole('heading', { name: 'Edit Cellar' }).waitFor();
  assert.equal(await page.locator('#we0').getByLabel('Type').inputValue(), 'table');
  assert.equal(await page.locator('#we1').getByLabel('Title').inputValue(), 'Humidity');
  assert.equal(await page.locator('#we1').getByLabel('Maximum').inputValue(), '100');
  assert.equal(await page.locator('.widget-editor').count(), 2);

  // Deleting asks first.
  await page.getByRole('button', { name: 'Delete dashboard' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Delete dashboard' }).click();
  await page.getByRole('heading', { name: 'Dashboards' }).waitFor();
  assert.equal(await page.getByRole('link', { name: 'Cellar' }).count(), 0);
  assertClean(page);
  await page.context().close();
});

test('a dynamic dashboard switches device with the picker and shows the other device\'s values', async () => {
  const a = await device('Pump A', { type: 'pump', location: { lat: 52.52, lon: 13.40 } });
  const b = await device('Pump B', { type: 'pump', location: { lat: 48.14, lon: 11.58 } });
  await device('Not a pump', { type: 'fan' });
  await api.ingest(a.token, { pressure: 1.5 });
  await api.ingest(b.token, { pressure: 7.25 });
  const d = await api.post(`/api/v1/orgs/${org.id}/dashboards`, {
    name: 'Pumps', kind: 'dynamic', device_filter: { type: 'pump' }, widgets: [
      { type: 'value', title: 'Pressure', channels: ['pressure'], options: { unit: 'bar' } },
      { type: 'line', title: 'Pressure over time', channels: ['pressure'] },
      { type: 'map', title: 'Where' },
    ],
  });
  const page = await newPage(browser);
  await signIn(page, server.url);
  await page.goto(dashUrl(d.id));
  const picker = page.getByLabel('Device', { exact: true });
  await picker.waitFor();
  assert.deepEqual(await picker.locator('option').allTextContents(), ['Pump A', 'Pump B']);
  await page.locator('.widget-value .big').filter({ hasText: '1.5 bar' }).waitFor();
  await page.getByRole('list', { name: 'Devices on the map' }).getByText('Pump B').waitFor();
  assert.equal(await page.locator('svg.map .map-point').count(), 2);
  await picker.selectOption({ label: 'Pump B' });
  await page.waitForURL(new RegExp(`\\?device=${b.id}$`));
  await page.locator('.widget-value .big').filter({ hasText: '7.25 bar' }).waitFor();
  // The stream follows the picked device (no data query asked meanwhile).
  const queries = [];
  page.on('request', (r) => { if (r.url().includes('/data?')) queries.push(r.url()); });
  await curl(b.token, { pressure: 8 });
  await page.locator('.widget-value .big').filter({ hasText: '8 bar' }).waitFor({ timeout: 1000 });
  assert.deepEqual(queries, []);
  await axeCheck(page, 'dashboard-dynamic');
  await shot(page, 'dashboard-dynamic');
  assertClean(page);
  await page.context().close();

  // On a phone.
  const phone = await newPage(browser, { width: 360, height: 740 });
  await signIn(phone, server.url);
  await phone.goto(dashUrl(d.id, `?device=${b.id}`));
  await phone.locator('.widget-value .big').filter({ hasText: 'bar' }).waitFor();
  await phone.waitForFunction(() => document.querySelector('.widget-line .chart')?.dataset.points);
  await axeCheck(phone, 'dashboard-phone');
  await shot(phone, 'dashboard-phone');
  const wide = await phone.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(wide <= 360, `the page is ${wide} px wide on a 360 px phone`);
  assertClean(phone);
  await phone.context().close();
  // Its edit mode: the filter, an example device for the channels, no
  // device per widget.
  const ed = await newPage(browser);
  await signIn(ed, server.url);
  await ed.goto(dashUrl(d.id));
  await ed.getByRole('link', { name: 'Edit dashboard' }).click();
  await ed.getByRole('heading', { name: 'Edit Pumps' }).waitFor();
  assert.equal(await ed.getByLabel('Device filter').inputValue(), 'type=pump');
  assert.equal(await ed.locator('#we0').getByLabel('Device', { exact: true }).count(), 0);
  await ed.locator('#we0').getByLabel('pressure').waitFor();
  await ed.getByLabel('Device filter').fill('type=pump, site=north');
  await ed.getByRole('button', { name: 'Save dashboard' }).click();
  await ed.getByText('No device matches this dashboard yet.').waitFor();
  assert.deepEqual((await api.get(`/api/v1/dashboards/${d.id}`)).device_filter, { type: 'pump', site: 'north' });
  assertClean(ed);
  await ed.context().close();
});

test('a dashboard-role person sees dashboards and nothing else', async () => {
  const dev = await device('Tank');
  await api.ingest(dev.token, { level: 42 });
  const d = await api.post(`/api/v1/orgs/${org.id}/dashboards`, {
    name: 'Tank level', kind: 'static', widgets: [
      { type: 'value', title: 'Level', device_id: dev.id, channels: ['level'], options: { unit: '%' } },
      { type: 'line', title: 'Level over time', device_id: dev.id, channels: ['level'] },
    ],
  });
  const email = 'watcher@example.com';
  const password = 'watcher-password-1';
  await api.post(`/api/v1/orgs/${org.id}/members`, { email, password, role: 'dashboard' });
  const page = await newPage(browser);
  await signIn(page, server.url, email, password);
  await page.goto(`${server.url}/#/o/${org.id}/devices`);
  await page.waitForURL(new RegExp(`#/o/${org.id}/dashboards$`));
  const nav = page.getByRole('navigation', { name: 'Organisation' });
  assert.deepEqual(await nav.getByRole('link').allTextContents(), ['Dashboards']);
  await page.getByRole('link', { name: 'Tank level' }).click();
  await page.locator('.widget-value .big').filter({ hasText: '42 %' }).waitFor();
  assert.equal(await page.getByRole('link', { name: 'Edit dashboard' }).count(), 0);
  await curl(dev.token, { level: 43 });
  await page.locator('.widget-value .big').filter({ hasText: '43 %' }).waitFor({ timeout: 1000 });
  for (const other of ['explore', 'members', 'settings']) {
    await page.goto(`${server.url}/#/o/${org.id}/${other}`);
    await page.waitForURL(new RegExp(`#/o/${org.id}/dashboards$`));
  }
  // The edit mode is not theirs: the view shows instead.
  await page.goto(dashUrl(d.id, '/edit'));
  await page.locator('.widget-value .big').filter({ hasText: '43 %' }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Save dashboard' }).count(), 0);
  // Removed from the organisation: the stream ends, and the open page
  // leaves for the organisation list.
  await page.goto(dashUrl(d.id));
  await page.locator('.widget-value .big').filter({ hasText: '43 %' }).waitFor();
  const member = (await api.get(`/api/v1/orgs/${org.id}/members`)).find((m) => m.email === email);
  await api.del(`/api/v1/orgs/${org.id}/members/${member.user_id}`);
  await page.waitForURL(/#\/orgs$/, { timeout: 8000 });
  await page.getByRole('alert').filter({ hasText: /no longer have access/ }).waitFor();
  assertClean(page);
  await page.context().close();
});
