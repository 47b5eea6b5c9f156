// bench/web_bench.mjs — benchmark 13: the web app's dashboards, measured in
// the browser (Debian's chromium, headless, through playwright-core, as the
// browser tests run it). Three figures (bench/README.md, 13.):
//
//   1. first paint: a dashboard of 10 line charts over one device holding
//      BENCH_WEB_READINGS readings in each of 10 channels (brought in with
//      the bulk import), from navigation start (the Performance API's time
//      origin) to the 10th chart drawn (the `ss-line-drawn` marks the line
//      widget leaves), over BENCH_WEB_LOADS loads; beside it the data query
//      one chart makes, alone, timed with curl -w;
//   2. commit-to-chart latency: BENCH_WEB_RATE readings/s posted by the
//      device (each timestamped at its send) while the dashboard is open;
//      the page records when each point is drawn (the `ss-drawn` events of
//      the line widget); send -> drawn p50 / p99 over every chart and point;
//   3. the app's own JS+CSS gzipped (everything under web/; uPlot, served
//      from node_modules, aside).
//
//   SENSORSPACE_BIN=$PWD/build/sensorspace node bench/web_bench.mjs
//
// Prints one line of key=value figures (run.sh records it as `bench=web`).
import { spawn } from 'node:child_process';
import { createWriteStream, readdirSync, readFileSync, statSync, rmSync, mkdtempSync } from 'node:fs';
import { join, dirname, extname } from 'node:path';
import { tmpdir } from 'node:os';
import { gzipSync, constants } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { startServer, launchBrowser, newPage, signIn, Api } from '../tests/web/harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const READINGS = Number(process.env.BENCH_WEB_READINGS || 1000000);   // a channel
const CHANNELS = 10;
const LOADS = Number(process.env.BENCH_WEB_LOADS || 5);
const RATE = Number(process.env.BENCH_WEB_RATE || 100);               // readings/s
const SECONDS = Number(process.env.BENCH_WEB_SECONDS || 20);
const STEP_MS = 1000;                                                 // between readings
const log = (...a) => console.error('web bench:', ...a);

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] : NaN;
};
const r1 = (x) => Math.round(x * 10) / 10;

function run(cmd, args) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    p.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd}: ${code} ${err}`))));
  });
}

// The app's own assets, gzipped as the server serves them.
function appSize() {
  const walk = (d) => readdirSync(d).flatMap((n) => (statSync(join(d, n)).isDirectory() ? walk(join(d, n)) : [join(d, n)]));
  let raw = 0;
  let gz = 0;
  for (const f of walk(join(here, '../web')).filter((f) => ['.js', '.css', '.html', '.svg'].includes(extname(f)))) {
    const data = readFileSync(f);
    raw += data.length;
    gz += gzipSync(data, { level: constants.Z_BEST_COMPRESSION }).length;
  }
  return { raw, gz };
}

// READINGS lines of the line format, one a second ending now, 10 channels each.
async function history(dir, device, end) {
  const file = join(dir, 'history.txt');
  const out = createWriteStream(file);
  const start = end - READINGS * STEP_MS;
  for (let i = 0; i < READINGS; i++) {
    const vals = [];
    for (let c = 0; c < CHANNELS; c++) vals.push(`c${c}=${(20 + 10 * Math.sin(i / (600 + 97 * c)) + c).toFixed(2)}`);
    if (!out.write(`${device} ${vals.join(',')} ${start + i * STEP_MS}\n`)) await new Promise((r) => out.once('drain', r));
  }
  await new Promise((r) => out.end(r));
  return file;
}

const server = await startServer();
const browser = await launchBrowser();
const dir = mkdtempSync(join(tmpdir(), 'ss-web-bench-'));
try {
  const api = await Api.login(server.url);
  const org = await api.post('/api/v1/orgs', { name: 'Web bench' });
  const dev = await api.post(`/api/v1/orgs/${org.id}/devices`, { name: 'Big device' });
  const end = Date.now() - 60000;
  const file = await history(dir, dev.id, end);
  const t0 = Date.now();
  const imp = await run('curl', ['-sS', '-f', '-H', `Authorization: Bearer ${api.token}`, '-H', 'Content-Type: text/plain',
    '--data-binary', `@${file}`, `${server.url}/api/v1/orgs/${org.id}/import?format=line`]);
  log(`import: ${imp.trim()} in ${(Date.now() - t0) / 1000} s`);
  rmSync(file);
  const range = (READINGS + 120) * STEP_MS;
  const d = await api.post(`/api/v1/orgs/${org.id}/dashboards`, {
    name: 'Ten charts', kind: 'static',
    widgets: Array.from({ length: CHANNELS }, (_, c) => ({ type: 'line', title: `c${c}`, device_id: dev.id, channels: [`c${c}`], range })),
  });

  const page = await newPage(browser, { width: 1280, height: 800 });
  await signIn(page, server.url);
  const url = `${server.url}/#/o/${org.id}/dashboards/${d.id}`;
  const paints = [];
  let width = 0;
  for (let i = 0; i < LOADS; i++) {
    await page.goto('about:blank');
    await page.goto(url);
    await page.waitForFunction((n) => performance.getEntriesByName('ss-line-drawn').length >= n, CHANNELS, { timeout: 60000 });
    const t = await page.evaluate((n) => performance.getEntriesByName('ss-line-drawn')[n - 1].startTime, CHANNELS);
    width = await page.evaluate(() => document.querySelector('.widget-line .chart').getBoundingClientRect().width);
    paints.push(t);
    log(`load ${i + 1}: 10th chart drawn at ${r1(t)} ms`);
  }
  const points = await page.evaluate(() => [...document.querySelectorAll('.widget-line .chart')].map((c) => Number(c.dataset.points)));

  // One chart's data query alone, as the widget asks it (its `every` is the
  // page's own: a round width, web/lib/chart.js everyFor()).
  const every = Number(await page.evaluate(() => new URL(performance.getEntriesByType('resource')
    .find((e) => e.name.includes('/data?')).name).searchParams.get('every')));
  const now = Date.now();
  const q = `${server.url}/api/v1/devices/${dev.id}/data?channel=c0&from=${Math.floor((now - range) / every) * every}&to=${now + 1}&every=${every}&fn=avg&limit=${Math.ceil(range / every) + 1}`;
  const queries = [];
  for (let i = 0; i < 5; i++) {
    const s = await run('curl', ['-sS', '-f', '-o', '/dev/null', '-w', '%{time_total}', '-H', `Authorization: Bearer ${api.token}`, q]);
    queries.push(Number(s) * 1000);
  }
  log(`data query alone (1 channel, every=${every}): ${queries.map(r1).join(' ')} ms`);

  // Latency: the page open, RATE readings/s posted by the device.
  await page.evaluate(() => {
    window.benchLat = [];
    document.addEventListener('ss-drawn', (e) => { const t = Date.now(); for (const ts of e.detail) window.benchLat.push(t - ts); });
    window.benchGaps = [];
    let last = performance.now();
    const tick = (t) => { if (t - last > 50) window.benchGaps.push(Math.round(t - last)); last = t; requestAnimationFrame(tick); };
    requestAnimationFrame(tick);
  });
  const acks = [];
  const total = RATE * SECONDS;
  const t1 = Date.now();
  let sent = 0;
  let failed = 0;
  const inflight = [];
  while (sent < total) {
    const due = t1 + (sent * 1000) / RATE;
    const wait = due - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const values = {};
    for (let c = 0; c < CHANNELS; c++) values[`c${c}`] = 30 + c + Math.random();
    const s0 = Date.now();
    inflight.push(fetch(`${server.url}/api/v1/data`, {
      method: 'POST', headers: { 'X-Auth-Token': dev.token, 'Content-Type': 'application/json' },
      body: JSON.stringify({ ts: s0, values }),
    }).then((r) => { acks.push(Date.now() - s0); if (!r.ok) failed++; return r.arrayBuffer(); }).catch(() => { failed++; }));
    sent++;
  }
  await Promise.all(inflight);
  const rate = total / ((Date.now() - t1) / 1000);
  await new Promise((r) => setTimeout(r, 1000));
  const lat = await page.evaluate(() => window.benchLat);
  // Charts out of sight wait to be drawn until they are scrolled to.
  const seen = await page.evaluate(() => [...document.querySelectorAll('.widget-line .chart')]
    .filter((c) => c.getBoundingClientRect().top < innerHeight).length);
  if (process.env.BENCH_WEB_DEBUG) log('frame gaps > 50 ms:', (await page.evaluate(() => window.benchGaps)).join(' '), 'ack p50/p99/max', pct(acks, 50), pct(acks, 99), Math.max(...acks), 'slow acks at', acks.map((v, i) => [i, v]).filter(([, v]) => v > 100).map(([i, v]) => `${i}:${v}`).join(' '));
  if (process.env.BENCH_WEB_DEBUG) log("slow samples (index:ms):", lat.map((v, i) => [i, v]).filter(([, v]) => v > 150).map(([i, v]) => `${i}:${v}`).join(" "));
  const problems = page.problems.length;
  const size = appSize();
  const fig = {
    readings_per_channel: READINGS, channels: CHANNELS, loads: LOADS, chart_px: Math.floor(width),
    chart_points_max: Math.max(...points),
    first_paint_ms_p50: r1(pct(paints, 50)), first_paint_ms_max: r1(Math.max(...paints)),
    first_paint_ms_all: paints.map(r1).join('/'),
    query_ms_p50: r1(pct(queries, 50)), query_every_ms: every,
    rate: r1(rate), sent: total, failed, charts_in_sight: seen, drawn: lat.length, expected: total * seen,
    latency_ms_p50: r1(pct(lat, 50)), latency_ms_p99: r1(pct(lat, 99)), latency_ms_max: r1(Math.max(...lat)),
    app_bytes: size.raw, app_gzip_bytes: size.gz, app_gzip_kib: r1(size.gz / 1024),
    ack_ms_p50: pct(acks, 50), ack_ms_p99: pct(acks, 99),
    frame_gaps_over_50ms: (await page.evaluate(() => window.benchGaps)).length,
    page_problems: problems,
  };
  console.log(Object.entries(fig).map(([k, v]) => `${k}=${v}`).join(' '));
} finally {
  await browser.close();
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
