// The management pages, each driven through the page: organisations,
// devices (token shown once, rotate, disable, delete), members and
// invitations, API keys, customers and their quotas, the person's account,
// and a member who loses access while a page is open.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newPage, signIn, shot, axeCheck, assertClean, Api } from './harness.mjs';

let server;
let browser;
let api;
let orgId;
let deviceId;
const PW = 'long-enough-password-1';

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  api = await Api.login(server.url);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const at = (hash) => server.url + '/' + hash;
// The caller has waited for what the page shows last.
async function check(page, name) {
  await axeCheck(page, name);
  await shot(page, name);
}
// Posts readings as a device; resolves to the HTTP status.
async function ingest(token, body) {
  const res = await fetch(server.url + '/api/v1/data', {
    method: 'POST', headers: { 'X-Auth-Token': token, 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  });
  await res.text();
  return res.status;
}
async function addMember(email, role) {
  return api.post(`/api/v1/orgs/${orgId}/members`, { email, role, password: PW });
}

test('the superadmin creates an organisation from the list, renames it, and deletes one', async () => {
  const page = await newPage(browser);
  await signIn(page, server.url);
  await page.getByRole('button', { name: 'Create organisation' }).waitFor();
  await check(page, 'manage-organisations');
  await page.getByLabel('Name of the new organisation').fill('Acme Sensors');
  await page.getByRole('button', { name: 'Create organisation' }).click();
  await page.waitForURL(/#\/o\/[0-9a-f]+\/dashboards/);
  orgId = page.url().match(/#\/o\/([0-9a-f]+)\//)[1];

  await page.goto(at(`#/o/${orgId}/settings`));
  await page.getByRole('heading', { name: 'Settings' }).waitFor();
  await check(page, 'manage-settings');
  await page.getByLabel('Name', { exact: true }).fill('Acme Sensing');
  await page.getByRole('button', { name: 'Rename' }).click();
  await page.locator('.org-switch', { hasText: 'Acme Sensing' }).waitFor();
  assert.equal((await api.get(`/api/v1/orgs/${orgId}`)).name, 'Acme Sensing');

  // An org with a customer is not deleted: the page says what to do.
  await api.post('/api/v1/orgs', { name: 'Blocker', parent_id: orgId });
  await page.getByRole('button', { name: 'Delete Acme Sensing…' }).click();
  const dlg = page.getByRole('dialog');
  await dlg.getByText('Acme Sensing, its devices').waitFor();
  await dlg.getByRole('button', { name: 'Delete Acme Sensing' }).click();
  await page.getByRole('alert').filter({ hasText: /still has customer organisations/ }).waitFor();

  const scratch = await api.post('/api/v1/orgs', { name: 'Scratch' });
  await page.reload();  // the page learns of an org made elsewhere when it loads
  await page.goto(at(`#/o/${scratch.id}/settings`));
  await page.getByRole('button', { name: 'Delete Scratch…' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Delete Scratch' }).click();
  await page.waitForURL(/#\/orgs$/);
  const orgs = await api.get('/api/v1/orgs');
  assert.ok(!orgs.some((o) => o.id === scratch.id));
  assertClean(page);
  await page.context().close();
});

test('devices: create (token shown once), readings seen, rotate, disable, edit, page, delete', async () => {
  const page = await newPage(browser);
  await signIn(page, server.url);
  await page.goto(at(`#/o/${orgId}/devices`));
  await page.getByRole('heading', { name: 'Devices' }).waitFor();
  await page.getByRole('button', { name: 'New device' }).click();
  const dlg = page.getByRole('dialog');
  await dlg.getByLabel('Name').fill('boiler-1');
  await dlg.getByLabel('Attributes (JSON)').fill('{"type": ');
  await dlg.getByRole('button', { name: 'Create device' }).click();
  await dlg.getByRole('alert').filter({ hasText: /not valid JSON/ }).waitFor();
  await dlg.getByLabel('Attributes (JSON)').fill('{"type": "sensor", "floor": 2}');
  await dlg.getByRole('button', { name: 'Create device' }).click();
  const secret = dlg.getByLabel('Device token');
  await secret.waitFor();
  const token = await secret.inputValue();
  assert.match(token, /^ssd_/);
  await check(page, 'manage-device-created');
  await dlg.getByRole('link', { name: 'Open the device' }).click();
  await page.waitForURL(/\/devices\/[0-9a-f]+$/);
  deviceId = page.url().match(/\/devices\/([0-9a-f]+)$/)[1];
  const facts = page.locator('dl.facts');
  await facts.getByText('never').first().waitFor();

  assert.equal(await ingest(token, { temp: 21.5, rh: 40 }), 200);
  await page.reload();
  await facts.getByText(/just now|s ago/).first().waitFor();
  await facts.getByText('http', { exact: true }).waitFor();
  await page.getByRole('cell', { name: 'temp' }).waitFor();
  await page.getByRole('cell', { name: '21.5' }).waitFor();
  await check(page, 'manage-device');

  await page.getByRole('button', { name: 'Rotate token…' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Make a new token' }).click();
  const fresh = page.getByRole('dialog').getByLabel('Device token');
  await fresh.waitFor();
  const token2 = await fresh.inputValue();
  assert.notEqual(token2, token);
  await page.getByRole('dialog').getByRole('button', { name: 'Done' }).click();
  assert.equal(await ingest(token, { temp: 1 }), 401, 'the old token is refused');
  assert.equal(await ingest(token2, { temp: 22 }), 200);

  await page.getByRole('button', { name: 'Disable' }).click();
  await page.getByRole('button', { name: 'Enable' }).waitFor();
  assert.notEqual(await ingest(token2, { temp: 1 }), 200, 'a disabled device is refused');
  await page.getByRole('button', { name: 'Enable' }).click();
  await page.getByRole('button', { name: 'Disable' }).waitFor();
  assert.equal(await ingest(token2, { temp: 23 }), 200);

  // The attributes written replace the stored ones (floor goes).
  await page.getByLabel('Attributes (JSON)').fill('{"type": "meter"}');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByRole('status').filter({ hasText: 'boiler-1 is saved' }).waitFor();
  assert.deepEqual((await api.get(`/api/v1/devices/${deviceId}`)).attributes, { type: 'meter' });

  // The list pages: 50 rows, then "More" follows Next-Cursor.
  for (let i = 0; i < 50; i += 10) {
    await Promise.all([...Array(10).keys()].map((j) =>
      api.post(`/api/v1/orgs/${orgId}/devices`, { name: `zz-${String(i + j).padStart(2, '0')}` })));
  }
  await page.goto(at(`#/o/${orgId}/devices`));
  const rows = page.locator('main tbody tr');
  await rows.nth(49).waitFor();
  assert.equal(await rows.count(), 50);
  await page.getByRole('button', { name: 'More' }).click();
  await rows.nth(50).waitFor();
  assert.equal(await rows.count(), 51);
  assert.equal(await page.getByRole('button', { name: 'More' }).isHidden(), true);
  await page.getByLabel('Filter by attribute (NAME=VALUE)').fill('type=meter');
  await page.getByRole('button', { name: 'Filter' }).click();
  await page.getByRole('link', { name: 'boiler-1' }).waitFor();
  await rows.nth(1).waitFor({ state: 'detached' });
  await check(page, 'manage-devices');

  await page.getByRole('link', { name: 'boiler-1' }).click();
  await page.getByRole('button', { name: 'Delete…' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Delete boiler-1' }).click();
  await page.getByRole('status').filter({ hasText: 'boiler-1 was deleted' }).waitFor();
  assert.equal(await ingest(token2, { temp: 1 }), 401, 'a deleted device is refused');
  await page.goto(at(`#/o/${orgId}/devices/${deviceId}`));
  await page.getByRole('heading', { name: 'This device is not there' }).waitFor();
  assertClean(page);
  await page.context().close();
});

test('members: add, change a role, invitations listed, withdrawn, accepted, and remove', async () => {
  const page = await newPage(browser);
  await signIn(page, server.url);
  await page.goto(at(`#/o/${orgId}/members`));
  await page.getByRole('heading', { name: 'Members' }).waitFor();
  await page.getByLabel('Email').fill('vera@example.com');
  await page.getByLabel('Role', { exact: true }).selectOption('viewer');
  await page.getByLabel('Initial password').fill(PW);
  await page.getByRole('button', { name: 'Add member' }).click();
  await page.getByRole('status').filter({ hasText: 'vera@example.com is now a member' }).waitFor();
  await page.getByLabel('Role of vera@example.com').selectOption('editor');
  await page.getByRole('button', { name: 'Set role of vera@example.com' }).click();
  await page.getByRole('status').filter({ hasText: 'vera@example.com is now editor' }).waitFor();
  const members = await api.get(`/api/v1/orgs/${orgId}/members`);
  assert.equal(members.find((m) => m.email === 'vera@example.com').role, 'editor');

  // An admin who is not the superadmin invites; the invitations show here.
  await addMember('ada@example.com', 'admin');
  const ada = await Api.login(server.url, 'ada@example.com', PW);
  await ada.post(`/api/v1/orgs/${orgId}/members`, { email: 'ian@example.com', role: 'viewer', password: PW });
  await ada.post(`/api/v1/orgs/${orgId}/members`, { email: 'wes@example.com', role: 'viewer', password: PW });
  await page.reload();
  await page.getByRole('cell', { name: 'ian@example.com', exact: true }).waitFor();
  await check(page, 'manage-members');
  await page.getByRole('button', { name: 'Withdraw the invitation of wes@example.com' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Withdraw' }).click();
  await page.getByRole('cell', { name: 'wes@example.com', exact: true }).waitFor({ state: 'detached' });
  assert.deepEqual((await api.get(`/api/v1/orgs/${orgId}/invitations`)).map((i) => i.email), ['ian@example.com']);

  // An admin is offered the roles up to their own, not owner.
  const adaPage = await newPage(browser);
  await signIn(adaPage, server.url, 'ada@example.com', PW);
  await adaPage.goto(at(`#/o/${orgId}/members`));
  const offered = adaPage.getByLabel('Role', { exact: true }).locator('option');
  await offered.first().waitFor({ state: 'attached' });
  assert.deepEqual(await offered.evaluateAll((os) => os.map((o) => o.value)), ['dashboard', 'viewer', 'editor', 'admin']);
  // What an admin adds is an invitation (the page never tells whether the
  // email has an account).
  await adaPage.getByLabel('Email').fill('ivy@example.com');
  await adaPage.getByLabel('Initial password').fill(PW);
  await adaPage.getByRole('button', { name: 'Add member' }).click();
  await adaPage.getByRole('status').filter({ hasText: 'ivy@example.com is invited as viewer' }).waitFor();
  await adaPage.getByRole('cell', { name: 'ivy@example.com', exact: true }).waitFor();
  assertClean(adaPage);
  await adaPage.context().close();

  // The invitee accepts on their account page.
  const ian = await newPage(browser);
  await signIn(ian, server.url, 'ian@example.com', PW);
  await ian.goto(at('#/account'));
  await ian.getByRole('button', { name: 'Accept joining Acme Sensing' }).click();
  await ian.getByRole('status').filter({ hasText: 'You are now a member of Acme Sensing' }).waitFor();
  await ian.getByText('No invitation is waiting for you.').waitFor();
  assertClean(ian);
  await ian.context().close();

  await page.reload();
  await page.getByRole('button', { name: 'Remove ian@example.com' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Remove ian@example.com' }).click();
  await page.getByRole('status').filter({ hasText: 'ian@example.com was removed' }).waitFor();
  assert.ok(!(await api.get(`/api/v1/orgs/${orgId}/members`)).some((m) => m.email === 'ian@example.com'));
  assertClean(page);
  await page.context().close();
});

test('API keys: create with scopes (shown once), use it, revoke it', async () => {
  const page = await newPage(browser);
  await signIn(page, server.url);
  await page.goto(at(`#/o/${orgId}/apikeys`));
  await page.getByRole('heading', { name: 'API keys' }).waitFor();
  await page.getByLabel('Name').fill('reporting');
  await page.getByLabel(/^manage/).check();
  await page.getByRole('button', { name: 'Create API key' }).click();
  const key = await page.getByRole('dialog').getByLabel('API key').inputValue();
  assert.match(key, /^ssk_/);
  const use = () => fetch(`${server.url}/api/v1/orgs/${orgId}/devices?limit=1`, { headers: { Authorization: `Bearer ${key}` } });
  assert.equal((await use()).status, 200);
  await page.getByRole('dialog').getByRole('button', { name: 'Done' }).click();
  await page.getByRole('cell', { name: 'data:read, manage' }).waitFor();
  await check(page, 'manage-apikeys');
  // With the keyboard: Escape leaves the key as it is; Enter on Revoke revokes.
  await page.getByRole('button', { name: 'Revoke reporting' }).focus();
  await page.keyboard.press('Enter');
  await page.getByRole('dialog').waitFor();
  await page.keyboard.press('Escape');
  await page.getByRole('dialog').waitFor({ state: 'detached' });
  assert.equal((await use()).status, 200);
  await page.getByRole('button', { name: 'Revoke reporting' }).focus();
  await page.keyboard.press('Enter');
  await page.getByRole('dialog').getByRole('button', { name: 'Revoke reporting' }).focus();
  await page.keyboard.press('Enter');
  await page.getByText('There is no API key yet.').waitFor();
  assert.equal((await use()).status, 401);
  assertClean(page);
  await page.context().close();
});

test('customers: create a child organisation and set its quota', async () => {
  const page = await newPage(browser);
  await signIn(page, server.url);
  await page.goto(at(`#/o/${orgId}/children`));
  await page.getByRole('heading', { name: 'Customers' }).waitFor();
  await page.getByLabel('Name').fill('Customer One');
  await page.getByRole('button', { name: 'Create customer' }).click();
  await page.getByRole('link', { name: 'Customer One' }).waitFor();
  await page.getByRole('button', { name: 'Quota of Customer One' }).click();
  const dlg = page.getByRole('dialog');
  await dlg.getByLabel('Devices at most').fill('5');
  await dlg.getByLabel('Readings a day at most').fill('100000');
  await dlg.getByRole('button', { name: 'Save quota' }).click();
  await page.getByRole('status').filter({ hasText: 'The quota of Customer One is saved' }).waitFor();
  await check(page, 'manage-customers');
  const child = (await api.get('/api/v1/orgs')).find((o) => o.name === 'Customer One');
  assert.equal(child.parent_id, orgId);
  const q = await api.get(`/api/v1/orgs/${child.id}/quota`);
  assert.deepEqual([q.max_devices, q.max_readings_per_day, q.max_bytes_per_day], [5, 100000, 0]);
  assertClean(page);
  await page.context().close();
});

test('account: password rules, sessions listed and ended', async () => {
  await api.post('/api/v1/orgs', { name: 'Solo' });
  const solo = (await api.get('/api/v1/orgs')).find((o) => o.name === 'Solo');
  await api.post(`/api/v1/orgs/${solo.id}/members`, { email: 'sam@example.com', role: 'viewer', password: PW });
  const other = await Api.login(server.url, 'sam@example.com', PW);
  const page = await newPage(browser);
  await signIn(page, server.url, 'sam@example.com', PW);
  await page.goto(at('#/account'));
  await page.getByRole('heading', { name: 'Your account' }).waitFor();
  await check(page, 'manage-account');
  await page.getByLabel('Current password').fill(PW);
  await page.getByLabel('New password', { exact: true }).fill('short');
  await page.getByLabel('New password again').fill('short');
  await page.getByRole('button', { name: 'Change password' }).click();
  await page.getByRole('alert').filter({ hasText: 'at least 12 characters' }).waitFor();
  await page.getByLabel('Current password').fill('not-my-password-at-all');
  await page.getByLabel('New password', { exact: true }).fill('a-new-long-password');
  await page.getByLabel('New password again').fill('a-new-long-password');
  await page.getByRole('button', { name: 'Change password' }).click();
  await page.getByRole('alert').filter({ hasText: 'current password is not right' }).waitFor();
  // End the other session from the page: its token is refused.
  const ends = page.getByRole('button', { name: /^End the session/ });
  assert.equal(await ends.count(), 1);
  await ends.click();
  await page.getByRole('dialog').getByRole('button', { name: 'End session' }).click();
  await ends.waitFor({ state: 'detached' });
  await assert.rejects(other.get('/api/v1/me'), /401/);
  await page.getByLabel('Current password').fill(PW);
  await page.getByLabel('New password', { exact: true }).fill('a-new-long-password');
  await page.getByLabel('New password again').fill('a-new-long-password');
  await page.getByRole('button', { name: 'Change password' }).click();
  await page.getByRole('status').filter({ hasText: 'Your password is changed' }).waitFor();
  await Api.login(server.url, 'sam@example.com', 'a-new-long-password');
  assertClean(page);
  await page.context().close();
});

test('a member whose access is removed loses it on the open page', async () => {
  const lou = await addMember('lou@example.com', 'viewer');
  const page = await newPage(browser);
  await signIn(page, server.url, 'lou@example.com', PW);
  await page.goto(at(`#/o/${orgId}/devices`));
  await page.getByRole('heading', { name: 'Devices' }).waitFor();
  await page.getByRole('link', { name: 'zz-00' }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'New device' }).count(), 0, 'a viewer gets no write buttons');
  await page.getByRole('link', { name: 'zz-00' }).click();
  await page.getByRole('heading', { name: 'zz-00' }).waitFor();
  assert.equal(await page.getByRole('button').filter({ hasText: /Disable|Delete|Rotate/ }).count(), 0);
  await page.goto(at(`#/o/${orgId}/devices`));
  await page.getByRole('heading', { name: 'Devices' }).waitFor();
  const t0 = Date.now();
  await api.del(`/api/v1/orgs/${orgId}/members/${lou.user_id}`);
  await page.getByText('You no longer have access to that organisation.').waitFor({ timeout: 12000 });
  assert.match(page.url(), /#\/orgs$/);
  console.log(`access lost shown after ${Date.now() - t0} ms`);
  assertClean(page);
  await page.context().close();
});

test('an admin made a viewer loses the admin pages on the open page', async () => {
  const ada = await addMember('ada@example.com', 'admin');
  const page = await newPage(browser);
  await signIn(page, server.url, 'ada@example.com', PW);
  await page.goto(at(`#/o/${orgId}/members`));
  await page.getByRole('heading', { name: 'Add a member' }).waitFor();
  const nav = page.getByRole('navigation', { name: 'Organisation' });
  assert.equal(await nav.getByRole('link', { name: 'Members' }).count(), 1);
  const t0 = Date.now();
  await api.patch(`/api/v1/orgs/${orgId}/members/${ada.user_id}`, { role: 'viewer' });
  // The page is drawn again for the new role: its nav has no admin page,
  // and the members page it stood on is left for one a viewer has.
  await nav.getByRole('link', { name: 'Members' }).waitFor({ state: 'detached', timeout: 12000 });
  await page.waitForURL((u) => !/\/members/.test(u.hash), { timeout: 5000 });
  assert.equal(await nav.getByRole('link', { name: 'API keys' }).count(), 0);
  assert.equal(await nav.getByRole('link', { name: 'Devices' }).count(), 1);
  console.log(`role change shown after ${Date.now() - t0} ms`);
  assertClean(page);
  await page.context().close();
});

test('the account page leads back to sign-in when the session ends elsewhere', async () => {
  const bo = await addMember('bo@example.com', 'viewer');
  const page = await newPage(browser);
  await signIn(page, server.url, 'bo@example.com', PW);
  await page.goto(at('#/account'));
  await page.getByRole('heading', { name: 'Your sessions' }).waitFor();
  // The superadmin sets a new password: every session of the person ends.
  await api.put(`/api/v1/users/${bo.user_id}/password`, { new_password: 'another-long-password-2' });
  await page.getByRole('heading', { name: 'Sign in' }).waitFor({ timeout: 12000 });
  assertClean(page);
  await page.context().close();
});

test('every management page at 360 px', async () => {
  const page = await newPage(browser, { width: 360, height: 740 });
  await signIn(page, server.url);
  const d = (await api.get(`/api/v1/orgs/${orgId}/devices?limit=1`))[0];
  // Each page, and the heading it draws last.
  for (const [hash, name, last] of [['#/orgs', 'organisations', 'New organisation'],
    [`#/o/${orgId}/settings`, 'settings', 'Delete the organisation'],
    [`#/o/${orgId}/devices`, 'devices', null], [`#/o/${orgId}/devices/${d.id}`, 'device', 'Channels'],
    [`#/o/${orgId}/members`, 'members', 'Add a member'], [`#/o/${orgId}/apikeys`, 'apikeys', 'New API key'],
    [`#/o/${orgId}/children`, 'customers', 'New customer'], ['#/account', 'account', 'Your sessions']]) {
    await page.goto(at(hash));
    if (last) await page.getByRole('heading', { name: last }).waitFor();
    else await page.locator('main tbody tr').first().waitFor();
    await check(page, `manage-360-${name}`);
  }
  assertClean(page);
  await page.context().close();
});
