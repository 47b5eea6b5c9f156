// bench/web_timing.mjs — where a dashboard's first paint goes: the resource
// timing of a dashboard of 10 line charts over one device (as in
// web_bench.mjs, with fewer readings so the page's own part shows), loaded
// WEB_TIMING_LOADS times; for each resource, in the order the page asked
// them, the median start -> response end (ms from navigation start), then
// the `ss-line-drawn` marks.
//
//   SENSORSPACE_BIN=$PWD/build/sensorspace node bench/web_timing.mjs
//
// WEB_TIMING_READINGS (20000, a channel, one a second ending now).
import { spawn } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { startServer, launchBrowser, newPage, signIn, Api } from '../tests/web/harness.mjs';

const READINGS = Number(process.env.WEB_TIMING_READINGS || 20000);
const LOADS = Number(process.env.WEB_TIMING_LOADS || 9);
const CHANNELS = 10;

function run(cmd, args) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd}: ${code}`))));
  });
}

const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];

const server = await startServer();
const browser = await launchBrowser();
const dir = mkdtempSync(join(tmpdir(), 'ss-web-timing-'));
try {
  const api = await Api.login(server.url);
  const org = await api.post('/api/v1/orgs', { name: 'Web timing' });
  const dev = await api.post(`/api/v1/orgs/${org.id}/devices`, { name: 'Device' });
  const file = join(dir, 'history.txt');
  const out = createWriteStream(file);
  const end = Date.now() - 60000;
  for (let i = 0; i < READINGS; i++) {
    const vals = [];
    for (let c = 0; c < CHANNELS; c++) vals.push(`c${c}=${(20 + Math.sin(i / 600 + c)).toFixed(2)}`);
    if (!out.write(`${dev.id} ${vals.join(',')} ${end - (READINGS - i) * 1000}\n`)) await new Promise((r) => out.once('drain', r));
  }
  await new Promise((r) => out.end(r));
  await run('curl', ['-sS', '-f', '-o', '/dev/null', '-H', `Authorization: Bearer ${api.token}`, '-H', 'Content-Type: text/plain',
    '--data-binary', `@${file}`, `${server.url}/api/v1/orgs/${org.id}/import?format=line`]);
  const d = await api.post(`/api/v1/orgs/${org.id}/dashboards`, {
    name: 'Ten charts', kind: 'static',
    widgets: Array.from({ length: CHANNELS }, (_, c) => ({ type: 'line', title: `c${c}`, device_id: dev.id, channels: [`c${c}`], range: (READINGS + 120) * 1000 })),
  });
  const page = await newPage(browser, { width: 1280, height: 800 });
  await signIn(page, server.url);
  const loads = [];
  for (let i = 0; i < LOADS; i++) {
    await page.goto('about:blank');
    await page.goto(`${server.url}/#/o/${org.id}/dashboards/${d.id}`);
    await page.waitForFunction((n) => performance.getEntriesByName('ss-line-drawn').length >= n, CHANNELS, { timeout: 60000 });
    loads.push(await page.evaluate(() => ({
      res: performance.getEntriesByType('resource').map((e) => {
        const u = new URL(e.name);
        const name = u.pathname.replace(/^\/assets\/[0-9a-f]+\//, '') + (u.searchParams.has('every') ? `?every=${u.searchParams.get('every')}` : '');
        return [name, e.startTime, e.responseEnd];
      }),
      marks: performance.getEntriesByName('ss-line-drawn').map((e) => e.startTime),
    })));
  }
  // A resource of one load is the same of another by its name and how many
  // of that name came before it (the ten data queries).
  const keyed = (l) => {
    const seen = new Map();
    return new Map(l.res.map((r) => { const n = (seen.get(r[0]) || 0) + 1; seen.set(r[0], n); return [`${r[0]}#${n}`, r]; }));
  };
  const maps = loads.map(keyed);
  for (const [key, [name]] of maps[0]) {
    const rows = maps.map((m) => m.get(key)).filter(Boolean);
    console.log(`${Math.round(med(rows.map((r) => r[1]))).toString().padStart(5)} -> ${Math.round(med(rows.map((r) => r[2]))).toString().padStart(5)}  ${name}`);
  }
  console.log('charts drawn at (medians):', loads[0].marks.map((_, k) => Math.round(med(loads.map((l) => l.marks[k])))).join(' '));
  console.log('10th chart drawn, each load:', loads.map((l) => Math.round(l.marks[CHANNELS - 1])).join(' '));
  if (page.problems.length) console.log('page problems:', page.problems);
} finally {
  await browser.close();
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
