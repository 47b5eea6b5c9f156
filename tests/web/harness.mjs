// What every browser test needs: the real server on port 0 with a data dir
// of its own, Debian's chromium driven by playwright-core, signing in, the
// REST API for setting things up, screenshots, and the accessibility scan.
//
// Environment: SENSORSPACE_BIN (the binary), WEB_ARTIFACTS (where
// screenshots go; default build/web-artifacts), CHROMIUM (default
// /usr/bin/chromium).
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');
const here = dirname(fileURLToPath(import.meta.url));

export const BIN = process.env.SENSORSPACE_BIN || join(here, '../../build/sensorspace');
export const ARTIFACTS = process.env.WEB_ARTIFACTS || join(here, '../../build/web-artifacts');
export const ADMIN_EMAIL = 'admin@example.com';
export const ADMIN_PASSWORD = 'correct-horse-battery';
const START_TIMEOUT_MS = 30000;

// Starts the server: plain HTTP and HTTPS on loopback, port 0. Resolves to
// {url, httpsUrl, dataDir, log, stop()}.
export async function startServer({ args = [], env = {} } = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), 'ss-web-'));
  const proc = spawn(BIN, ['serve', '--data-dir', dataDir,
    '--listen-http', '127.0.0.1:0', '--listen-https', '127.0.0.1:0',
    '--listen-mqtt', 'off', '--listen-mqtts', 'off', '--listen-tcp', 'off', '--listen-udp', 'off',
    ...args], {
    env: { ...process.env, SENSORSPACE_ADMIN_EMAIL: ADMIN_EMAIL, SENSORSPACE_ADMIN_PASSWORD: ADMIN_PASSWORD, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr = (stderr + d).slice(-20000); });
  const addrs = await new Promise((resolve, reject) => {
    const found = {};
    let buf = '';
    const timer = setTimeout(() => reject(new Error('server did not start: ' + stderr)), START_TIMEOUT_MS);
    proc.on('exit', (code) => reject(new Error(`server exited (${code}): ${stderr}`)));
    proc.stdout.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const [what, name, addr] = buf.slice(0, i).split(/\s+/);
        buf = buf.slice(i + 1);
        if (what === 'listening') found[name] = addr;
        if (found.http && found.https) { clearTimeout(timer); resolve(found); }
      }
    });
  });
  const server = {
    url: `http://${addrs.http}`,
    httpsUrl: `https://${addrs.https.replace('127.0.0.1', 'localhost')}`,
    dataDir,
    log: () => stderr,
    async stop() {
      if (proc.exitCode === null) {
        const done = new Promise((r) => proc.on('exit', r));
        proc.kill('SIGTERM');
        await done;
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return server;
}

// Chromium, headless, as this machine allows it (no sandbox as root, no
// background networking: the network is closed).
export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-dev-shm-usage'],
  });
}

// A page in a fresh context (its own cookies). Records page errors and
// Content-Security-Policy violations: assertClean(page) fails on any.
export async function newPage(browser, { width = 1280, height = 800, downloads = false, https = false } = {}) {
  const context = await browser.newContext({
    viewport: { width, height }, acceptDownloads: downloads, ignoreHTTPSErrors: https,
  });
  const page = await context.newPage();
  page.problems = [];
  page.on('pageerror', (e) => page.problems.push('page error: ' + e.message));
  page.on('console', (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) page.problems.push('csp: ' + m.text());
  });
  return page;
}

export function assertClean(page) {
  assert.deepEqual(page.problems, [], 'the page had errors');
}

export async function signIn(page, base, email = ADMIN_EMAIL, password = ADMIN_PASSWORD) {
  await page.goto(base + '/#/signin');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForFunction(() => !location.hash.startsWith('#/signin'));
}

// A screenshot of the page as it is, kept as a test artifact.
export async function shot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

// axe-core over the page as it is now: fails on any serious or critical
// violation (WCAG 2 A/AA rules). The script goes in through the devtools
// protocol, which the page's CSP does not govern.
export async function axeCheck(page, name) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(async () =>
    // eslint-disable-next-line no-undef
    await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } }));
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(bad.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join('; ')})`), [],
    `accessibility violations on ${name}`);
}

// The REST API as a test sets things up with it: bearer token, JSON.
export class Api {
  constructor(base, token = '') {
    this.base = base;
    this.token = token;
  }

  static async login(base, email = ADMIN_EMAIL, password = ADMIN_PASSWORD) {
    const api = new Api(base);
    const r = await api.call('POST', '/api/v1/auth/login', { email, password });
    api.token = r.token;
    return api;
  }

  async call(method, path, body, headers = {}) {
    const res = await fetch(this.base + path, {
      method,
      headers: {
        ...(this.token ? { Authorization: `Bearer ${this.token}` } : {}),
        ...(body !== undefined && typeof body !== 'string' ? { 'Content-Type': 'application/json' } : {}),
        ...headers,
      },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    return text ? JSON.parse(text) : null;
  }

  get(p) { return this.call('GET', p); }
  post(p, b = {}) { return this.call('POST', p, b); }
  put(p, b) { return this.call('PUT', p, b); }
  patch(p, b) { return this.call('PATCH', p, b); }
  del(p) { return this.call('DELETE', p); }

  // Readings as a device posts them (SPEC §3.1), with its token.
  async ingest(token, body) {
    const res = await fetch(this.base + '/api/v1/data', {
      method: 'POST',
      headers: { 'X-Auth-Token': token, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`ingest: ${res.status} ${await res.text()}`);
  }
}
