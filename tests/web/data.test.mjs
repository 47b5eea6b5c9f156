// The data pages: explore a device's channels (chart, table, the view in
// the URL, a chart that never asks for more buckets than it has pixels),
// export CSV and NDJSON as files; usage, sessions and the audit log with
// their filters.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { startServer, launchBrowser, newPage, signIn, shot, axeCheck, assertClean, Api } from './harness.mjs';

let server;
let browser;
let api;
let org;
let boiler;
let attic;
const SLOW = 120;   // temp and rh of boiler-1: one each 30 s over the last hour
const FAST = 1500;  // fast of attic-2: one each 400 ms over the last 10 minutes

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  api = await Api.login(server.url);
  org = await api.post('/api/v1/orgs', { name: 'Data Org' });
  boiler = await api.post(`/api/v1/orgs/${org.id}/devices`, { name: 'boiler-1' });
  attic = await api.post(`/api/v1/orgs/${org.id}/devices`, { name: 'attic-2' });
  const now = Date.now() - 1000;
  await api.ingest(boiler.token, Array.from({ length: SLOW }, (_, i) =>
    ({ ts: now - i * 30000, values: { temp: 20 + (i % 10) / 10, rh: 40 + (i % 7) } })));
  for (let k = 0; k < FAST; k += 500) {
    await api.ingest(attic.token, Array.from({ length: 500 }, (_, i) =>
      ({ ts: now - (k + i) * 400, values: { fast: (k + i) % 50 } })));
  }
  // Usage and session records reach the store once a second.
  const deadline = Date.now() + 10000;
  for (;;) {
    const u = await api.get(`/api/v1/orgs/${org.id}/usage`);
    if (u.usage.reduce((s, r) => s + r.readings, 0) >= 2 * SLOW + FAST) break;
    assert.ok(Date.now() < deadline, 'usage was not counted');
    await new Promise((r) => setTimeout(r, 200));
  }
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

// A reading posted on a connection of its own: a device session each.
function ingestAlone(token, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(server.url + '/api/v1/data', {
      method: 'POST', agent: false,
      headers: { 'X-Auth-Token': token, 'Content-Type': 'application/json', Connection: 'close' },
    }, (res) => { res.resume(); res.on('end', () => (res.statusCode < 300 ? resolve() : reject(new Error(`ingest ${res.statusCode}`)))); });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

// Every data query of the page: {every, from, to, limit, fn}.
function watchData(page) {
  const seen = [];
  page.on('request', (req) => {
    const u = new URL(req.url());
    if (!/\/api\/v1\/devices\/[^/]+\/data$/.test(u.pathname)) return;
    const p = Object.fromEntries(u.searchParams);
    seen.push({ ...p, every: Number(p.every || 0), from: Number(p.from), to: Number(p.to), limit: Number(p.limit) });
  });
  return seen;
}

// Waits until the page asked for data more than n times, and the answer came.
async function askedAfter(page, data, n) {
  for (const end = Date.now() + 10000; data.length <= n;) {
    assert.ok(Date.now() < end, 'the page asked for no data');
    await page.waitForTimeout(50);
  }
  await page.waitForLoadState('networkidle');
  return data.at(-1);
}

async function chartWidth(page) {
  return page.locator('.explore-chart .uplot canvas').evaluate((c) => c.getBoundingClientRect().width);
}

async function legend(page) {
  return page.locator('.explore-chart .u-legend .u-series .u-label').allTextContents();
}

const rangeStart = (page) => new URL(page.url()).hash;

test('explore: pick device, channels, range and aggregate; chart, table, export, reload', async () => {
  const page = await newPage(browser, { downloads: true });
  const data = watchData(page);
  await signIn(page, server.url);
  await page.goto(`${server.url}/#/o/${org.id}/explore`);
  await page.getByRole('heading', { name: 'Explore', exact: true }).waitFor();
  await page.getByLabel('Device', { exact: true }).selectOption({ label: 'boiler-1' });
  await page.getByRole('checkbox', { name: 'temp' }).waitFor();
  await page.getByLabel('Range').selectOption({ label: 'Last hour' });
  await page.getByLabel('Aggregate').selectOption({ label: 'Average' });
  await page.getByRole('checkbox', { name: 'rh' }).uncheck();
  await page.waitForFunction(() => document.querySelectorAll('.explore-chart .u-legend .u-series').length === 2);
  assert.deepEqual((await legend(page)).slice(1), ['temp']);
  const n0 = data.length;
  await page.getByRole('checkbox', { name: 'rh' }).check();
  const last = await askedAfter(page, data, n0);
  await page.waitForFunction(() => document.querySelectorAll('.explore-chart .u-legend .u-series').length === 3);
  assert.deepEqual((await legend(page)).slice(1), ['rh', 'temp']);
  const rows = page.locator('.points tbody tr');
  assert.equal(await rows.count(), 50, 'a page of points');
  await page.getByRole('button', { name: 'Older' }).click();
  await page.getByText(/Points 51–100 of \d+/).waitFor();

  // The data request asked for at most the chart's pixels worth of buckets.
  const width = await chartWidth(page);
  assert.equal(last.fn, 'avg');
  assert.equal(last.channel, 'rh,temp');
  assert.ok(last.every > 0 && (last.to - last.from) / last.every <= width,
    `every ${last.every} over ${last.to - last.from} ms on ${width} px`);
  assert.ok((last.to - last.from) / last.every > width * 0.9, 'as many buckets as the chart has pixels, near enough');
  assert.ok(Math.abs(last.to - last.from - 3600000) < 5, 'the last hour');
  await axeCheck(page, 'explore');
  await shot(page, 'explore');

  // The view is in the URL and survives a reload.
  const hash = rangeStart(page);
  assert.match(hash, new RegExp(`device=${boiler.id}`));
  assert.match(hash, /channel=rh%2Ctemp|channel=rh,temp/);
  assert.match(hash, /range=1h/);
  await page.reload();
  await page.waitForFunction(() => document.querySelectorAll('.explore-chart .u-legend .u-series').length === 3);
  assert.equal(await page.getByLabel('Device', { exact: true }).inputValue(), boiler.id);
  assert.equal(await page.getByLabel('Range').inputValue(), '1h');
  assert.ok(await page.getByRole('checkbox', { name: 'rh' }).isChecked());

  // No channel, no export (it would be every channel).
  await page.getByRole('checkbox', { name: 'rh' }).uncheck();
  await page.getByRole('checkbox', { name: 'temp' }).uncheck();
  await page.getByText('Pick at least one channel.').waitFor();
  assert.equal(await page.getByRole('link', { name: 'Export CSV' }).isVisible(), false);
  await page.getByRole('checkbox', { name: 'rh' }).check();
  await page.getByRole('checkbox', { name: 'temp' }).check();
  await page.waitForFunction(() => document.querySelectorAll('.explore-chart .u-legend .u-series').length === 3);
  // CSV, as a file.
  const [csv] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Export CSV' }).click()]);
  const lines = readFileSync(await csv.path(), 'utf8').trim().split('\n');
  assert.equal(lines[0], 'device_id,device_name,channel,ts,value');
  assert.equal(lines.length, 1 + 2 * SLOW);
  assert.ok(lines.slice(1).every((l) => l.startsWith(`${boiler.id},boiler-1,`)));
  assert.deepEqual([...new Set(lines.slice(1).map((l) => l.split(',')[2]))].sort(), ['rh', 'temp']);
  assert.match(csv.suggestedFilename(), /\.csv$/);
  // NDJSON, as a file.
  const [nd] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Export NDJSON' }).click()]);
  const objs = readFileSync(await nd.path(), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(objs.length, 2 * SLOW);
  assert.deepEqual(Object.keys(objs[0]).sort(), ['channel', 'device_id', 'device_name', 'ts', 'value']);
  assert.ok(objs.every((o) => o.device_id === boiler.id && typeof o.value === 'number'));

  // A longer range: still no more buckets than pixels.
  let n = data.length;
  await page.getByLabel('Range').selectOption({ label: 'Last 7 days' });
  const week = await askedAfter(page, data, n);
  await page.waitForFunction(() => /range=7d/.test(location.hash));
  await page.waitForFunction(() => document.querySelectorAll('.explore-chart .u-legend .u-series').length === 3);
  assert.ok(Math.abs(week.to - week.from - 7 * 86400000) < 5);
  assert.ok((week.to - week.from) / week.every <= await chartWidth(page));

  // Each reading while they fit; buckets once there are more than pixels.
  await page.getByLabel('Aggregate').selectOption('raw');
  n = data.length;
  await page.getByLabel('Range').selectOption({ label: 'Last hour' });
  const raw = await askedAfter(page, data, n);
  await page.getByText('Each reading.', { exact: true }).waitFor();
  assert.equal(raw.every, 0);
  assert.ok(raw.limit <= await chartWidth(page));
  assert.equal(await page.getByText(`of ${SLOW}, newest first`).count(), 1);
  const before = data.length;
  await page.getByLabel('Device', { exact: true }).selectOption({ label: 'attic-2' });
  await page.getByText(/More readings than the chart has room for/).waitFor();
  await askedAfter(page, data, before + 1);
  const asked = data.slice(before);
  assert.equal(asked[0].every, 0, 'raw first');
  const fallback = asked.at(-1);
  assert.equal(fallback.fn, 'avg');
  assert.ok(fallback.every > 0 && (fallback.to - fallback.from) / fallback.every <= await chartWidth(page));
  assert.deepEqual((await legend(page)).slice(1), ['fast']);
  assertClean(page);
  await page.context().close();
});

test('explore on a phone', async () => {
  const page = await newPage(browser, { width: 360, height: 740 });
  const data = watchData(page);
  await signIn(page, server.url);
  await page.goto(`${server.url}/#/o/${org.id}/explore?device=${boiler.id}&channel=temp&range=24h&fn=max`);
  await page.waitForFunction(() => document.querySelectorAll('.explore-chart .u-legend .u-series').length === 2);
  assert.equal(await page.getByLabel('Aggregate').inputValue(), 'max');
  const last = await askedAfter(page, data, 0);
  assert.equal(last.fn, 'max');
  assert.ok((last.to - last.from) / last.every <= await chartWidth(page));
  assert.ok(await chartWidth(page) <= 360);
  // Wider: asked again for the room it now has.
  const n = data.length;
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.waitForFunction(() => document.querySelector('.explore-chart .uplot canvas')?.getBoundingClientRect().width > 700);
  const wide = await askedAfter(page, data, n);
  const wideW = await chartWidth(page);
  assert.ok(wide.every < last.every && (wide.to - wide.from) / wide.every <= wideW,
    `${JSON.stringify(data)} on ${wideW} px`);
  await page.setViewportSize({ width: 360, height: 740 });
  await axeCheck(page, 'explore-phone');
  await shot(page, 'phone-explore');
  assertClean(page);
  await page.context().close();
});

test('explore: a device deleted meanwhile is said so, in a sentence', async () => {
  const other = await api.post('/api/v1/orgs', { name: 'Other Org' });
  const gone = await api.post(`/api/v1/orgs/${other.id}/devices`, { name: 'gone-3' });
  const keep = await api.post(`/api/v1/orgs/${other.id}/devices`, { name: 'keep-4' });
  for (let i = 0; i < 8; i++) await api.post(`/api/v1/orgs/${other.id}/devices`, { name: `spare-${i}` });
  await api.ingest(gone.token, { v: 1 });
  const now = Date.now() - 1000;
  await api.ingest(keep.token, Array.from({ length: 120 }, (_, i) => ({ ts: now - i * 1000, values: { v: i } })));
  const page = await newPage(browser);
  await signIn(page, server.url);
  await page.goto(`${server.url}/#/o/${other.id}/explore?device=${gone.id}&channel=v&range=15m&fn=raw`);
  await page.waitForFunction(() => document.querySelectorAll('.explore-chart .u-legend .u-series').length === 2);
  await api.del(`/api/v1/devices/${gone.id}`);
  await page.getByLabel('Aggregate').selectOption('max');
  await page.getByRole('alert').filter({ hasText: /It is not there: it was deleted/ }).waitFor();
  assert.equal(await page.locator('.explore-chart .uplot').count(), 0);
  // The keyboard pages the points table; focus stays on the pager.
  // Many devices: a search narrows the list.
  await page.getByLabel('Find a device').fill('keep');
  assert.deepEqual(await page.locator('select[name=device] option:not([hidden])').allTextContents(), ['gone-3', 'keep-4']);
  await page.getByLabel('Find a device').fill('');
  await page.getByLabel('Device', { exact: true }).selectOption({ label: 'keep-4' });
  await page.getByLabel('Aggregate').selectOption('raw');
  await page.getByRole('button', { name: 'Older' }).waitFor();
  await page.getByRole('button', { name: 'Older' }).focus();
  await page.keyboard.press('Enter');
  await page.getByText(/Points 51–/).waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Older');
  await page.keyboard.press('Enter');
  await page.getByText(/Points 101–/).waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Newer', 'at the end, focus goes to the other button');
  assertClean(page);
  await page.context().close();
});

test('usage shows the readings sent, by protocol, with a CSV', async () => {
  const page = await newPage(browser, { downloads: true });
  await signIn(page, server.url);
  await page.goto(`${server.url}/#/o/${org.id}/usage`);
  await page.getByRole('heading', { name: 'Usage', exact: true }).waitFor();
  await page.locator('.chart .uplot').first().waitFor();
  const summary = await page.locator('.usage-summary').textContent();
  assert.match(summary, new RegExp(`^${(2 * SLOW + FAST).toLocaleString('en-US')} readings stored`));
  const cells = await page.locator('tbody td[data-label="Protocol"]').allTextContents();
  assert.ok(cells.includes('http'));
  await page.getByLabel('Per', { exact: true }).selectOption('day');
  await page.getByRole('columnheader', { name: 'Day' }).waitFor();
  const [dl] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Download CSV' }).click()]);
  const lines = readFileSync(await dl.path(), 'utf8').trim().split('\n');
  assert.match(lines[0], /^bucket,protocol,bytes_in,bytes_out,messages,readings/);
  const readings = lines.slice(1).reduce((s, l) => s + Number(l.split(',')[5]), 0);
  assert.equal(readings, 2 * SLOW + FAST);
  await axeCheck(page, 'usage');
  await shot(page, 'usage');
  await page.setViewportSize({ width: 360, height: 740 });
  await axeCheck(page, 'usage-phone');
  await shot(page, 'phone-usage');
  assertClean(page);
  await page.context().close();
});

test('sessions: records of devices and people, filtered by kind', async () => {
  const page = await newPage(browser);
  await signIn(page, server.url);
  await page.goto(`${server.url}/#/o/${org.id}/sessions`);
  await page.getByRole('heading', { name: 'Sessions', exact: true }).waitFor();
  await page.locator('tbody tr').first().waitFor();
  const all = await page.locator('tbody td[data-label="Kind"]').allTextContents();
  assert.ok(all.includes('Device') && all.includes('Person'), 'device and people sessions are listed');
  assert.ok((await page.locator('tbody td[data-label="Who"]').allTextContents()).includes('boiler-1'), 'named, not by id');
  await page.locator('.chart .uplot').waitFor();
  await page.getByLabel('Kind').selectOption({ label: 'Devices' });
  await page.waitForFunction(() => /kind=device/.test(location.hash));
  await page.waitForFunction(() => [...document.querySelectorAll('tbody td[data-label="Kind"]')].every((td) => td.textContent === 'Device'));
  await page.getByLabel('Kind').selectOption({ label: 'People' });
  await page.waitForFunction(() => [...document.querySelectorAll('tbody td[data-label="Kind"]')].every((td) => td.textContent === 'Person'));
  assert.ok((await page.locator('tbody td[data-label="Who"]').allTextContents()).includes('admin@example.com'));
  // Device requests over HTTP end with the request; the signed-in person's is active.
  await page.getByLabel('Kind').selectOption({ label: 'All' });
  await page.getByLabel('Only active').check();
  await page.waitForFunction(() => /active=true/.test(location.hash));
  await page.waitForFunction(() => [...document.querySelectorAll('tbody td[data-label="Ended"]')].every((td) => td.textContent === 'Active'));
  assert.ok(!(await page.locator('tbody td[data-label="Kind"]').allTextContents()).includes('Device'));
  await page.getByLabel('Only active').uncheck();
  await page.getByLabel('Kind').selectOption({ label: 'API keys' });
  await page.getByText('No sessions match.').waitFor();
  await axeCheck(page, 'sessions');
  await page.getByLabel('Kind').selectOption({ label: 'All' });
  await page.locator('tbody tr').first().waitFor();
  await shot(page, 'sessions');
  await page.setViewportSize({ width: 360, height: 740 });
  await axeCheck(page, 'sessions-phone');
  await shot(page, 'phone-sessions');
  // More than a page (100) of records: "More" brings the next page.
  const before = (await api.get(`/api/v1/orgs/${org.id}/sessions?kind=device&limit=200`)).length;
  for (let i = 0; i < 101 - before; i++) await ingestAlone(boiler.token, { ts: Date.now() - 60000, values: { extra: i } });
  const deadline = Date.now() + 10000;
  while ((await api.get(`/api/v1/orgs/${org.id}/sessions?kind=device&limit=200`)).length < 101) {
    assert.ok(Date.now() < deadline, 'session records were not written');
    await new Promise((r) => setTimeout(r, 200));
  }
  await page.getByLabel('Kind').selectOption({ label: 'Devices' });
  await page.getByRole('button', { name: 'More' }).click();
  await page.getByText('101 sessions', { exact: true }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'More' }).isVisible(), false);
  assertClean(page);
  await page.context().close();
});

test('audit log: entries, who/what filters, range', async () => {
  const page = await newPage(browser);
  await signIn(page, server.url);
  await page.goto(`${server.url}/#/o/${org.id}/audit`);
  await page.getByRole('heading', { name: 'Audit log', exact: true }).waitFor();
  await page.locator('.table-wrap tbody tr').first().waitFor();
  await page.locator('.chart .uplot').waitFor();
  const whats = await page.locator('tbody td[data-label="What"]').allTextContents();
  assert.ok(whats.filter((t) => t.startsWith('device.create')).length === 2, whats.join(' | '));
  const total = await page.locator('.table-wrap tbody tr').count();
  await page.getByLabel('What').fill('device.create');
  await page.waitForFunction(() => document.querySelectorAll('.table-wrap tbody tr').length === 2);
  await page.getByLabel('Who').fill('nobody-like-this');
  await page.getByText('No loaded entry matches who and what.').waitFor();
  await page.getByLabel('Who').fill('admin@');
  await page.waitForFunction(() => document.querySelectorAll('.table-wrap tbody tr').length === 2);
  await page.getByLabel('What').fill('');
  await page.waitForFunction((n) => document.querySelectorAll('.table-wrap tbody tr').length === n, total);
  // A range that ends before anything happened.
  await page.getByLabel('Range').selectOption({ label: 'Between two times' });
  await page.getByLabel('From').fill('2020-01-01T00:00');
  await page.getByLabel('To').fill('2020-01-02T00:00');
  await page.getByLabel('To').dispatchEvent('change');
  await page.getByText('No entries in this range.').waitFor();
  await page.getByLabel('Range').selectOption({ label: 'Last 24 hours' });
  await page.waitForFunction((n) => document.querySelectorAll('.table-wrap tbody tr').length === n, total);
  await axeCheck(page, 'audit');
  await shot(page, 'audit');
  await page.setViewportSize({ width: 360, height: 740 });
  await axeCheck(page, 'audit-phone');
  await shot(page, 'phone-audit');
  // More than a page (100) of entries: "More" brings the next page, the filters hold.
  for (let i = 0; i < 100; i++) await api.patch(`/api/v1/devices/${attic.id}`, { description: `moved ${i}` });
  await page.getByLabel('Range').selectOption({ label: 'Last 7 days' });
  await page.getByText(/^100 of 100 entries loaded \(more below\)$/).waitFor();
  await page.getByRole('button', { name: 'More' }).click();
  await page.getByText(`${total + 100} of ${total + 100} entries loaded`, { exact: true }).waitFor();
  await page.getByLabel('What').fill('device.update');
  await page.waitForFunction(() => document.querySelectorAll('.table-wrap tbody tr').length === 100);
  await page.getByLabel('What').fill('');
  assertClean(page);
  await page.context().close();
});
