// everyFor(): the bucket width a chart asks the data API for. Pure: runs in
// node alone (uPlot, which needs a browser, stands in as an empty module).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { register } from 'node:module';

// The app's files are ES modules (the browser loads them as such).
register('data:text/javascript,' + encodeURIComponent(`
export async function resolve(spec, ctx, next) {
  if (spec.endsWith('/vendor/uplot.esm.js')) return { url: 'data:text/javascript,export default {}', shortCircuit: true };
  const r = await next(spec, ctx);
  return r.url.includes('/web/') ? { ...r, format: 'module' } : r;
}`));
const { everyFor } = await import('../../web/lib/chart.js');

const MIN = 60000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const WEEK = 7 * DAY;

test('below a minute: the exact width in whole ms, at least 1', () => {
  assert.equal(everyFor(3600000, 1000), 3600);
  assert.equal(everyFor(3600000, 999), 3604);     // rounded up, never more buckets than pixels
  assert.equal(everyFor(100, 1000), 1);
  assert.equal(everyFor(0, 1000), 1);
  assert.equal(everyFor(59999 * 500, 500), 59999);
  assert.equal(everyFor(3600000, 0), 12000);       // no width known: 300 px
});

test('from a minute up: the smallest nice width at least as wide', () => {
  assert.equal(everyFor(MIN * 1000, 1000), MIN);
  assert.equal(everyFor(MIN * 1000 + 1, 1000), 2 * MIN);
  assert.equal(everyFor(DAY, 300), 5 * MIN);        // 4.8 min
  assert.equal(everyFor(DAY, 974), 2 * MIN);        // 88.7 s
  assert.equal(everyFor(7 * DAY, 974), 15 * MIN);   // 10.4 min
  assert.equal(everyFor(30 * DAY, 974), HOUR);      // 44.4 min
  assert.equal(everyFor(1000120000, 974), 30 * MIN); // 1,000,000 readings a second apart: 17.1 min
  assert.equal(everyFor(2.5 * HOUR * 1000, 1000), 3 * HOUR);
  assert.equal(everyFor(13 * HOUR * 100, 100), DAY);
  assert.equal(everyFor(36 * HOUR * 100, 100), 2 * DAY);
  assert.equal(everyFor(3 * DAY * 100, 100), WEEK);
  assert.equal(everyFor(8 * DAY * 100, 100), 2 * WEEK);
  assert.equal(everyFor(365 * DAY, 200), 2 * DAY);   // 1.8 days
  assert.equal(everyFor(2 * 365 * DAY, 200), WEEK);  // 3.7 days
  assert.equal(everyFor(10 * 365 * DAY, 200), 3 * WEEK); // 18.3 days
});

test('every width from a minute up is whole minutes, and never more buckets than pixels', () => {
  const nice = new Set([1, 2, 5, 10, 15, 30].map((m) => m * MIN).concat([1, 2, 3, 6, 12].map((n) => n * HOUR), [DAY, 2 * DAY]));
  for (const px of [1, 200, 333, 360, 974, 1000, 1920, 3840]) {
    for (let range = 1000; range < 20 * 365 * DAY; range = Math.ceil(range * 1.37)) {
      const every = everyFor(range, px);
      assert.ok(Number.isInteger(every) && every >= 1, `${range} on ${px}: ${every}`);
      assert.ok(range / every <= px, `${range} on ${px}: ${every} gives ${range / every} buckets`);
      if (every >= MIN) assert.ok(nice.has(every) || every % WEEK === 0, `${range} on ${px}: ${every} is not a nice width`);
      else assert.equal(every, Math.max(1, Math.ceil(range / px)));
    }
  }
});
