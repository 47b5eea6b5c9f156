// What the widgets share: the data query a widget makes, SVG elements, and
// a reading's value as text. A widget module exports
// mount(el, widget, ctx) -> {update(event), destroy()}, where ctx.device
// is the device it shows (a static widget's own, a dynamic view's pick)
// and ctx.devices the devices the dashboard may show.
import { get, path, query } from '../lib/api.js';
import { fmtNumber, isNode } from '../lib/ui.js';

// Data queries are heavy requests: the server takes 4 at once from one
// session and answers 429 (retry after a second) to more (docs/api.md). A
// view of many widgets queues its queries here instead.
const IN_FLIGHT = 4;
const RETRIES = 5;
let running = 0;
const waiting = [];

async function heavy(fn) {
  if (running >= IN_FLIGHT) await new Promise((r) => waiting.push(r));
  running++;
  try {
    for (let i = 0; ; i++) {
      try {
        return await fn();
      } catch (err) {
        if (err.status !== 429 || i >= RETRIES) throw err;
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  } finally {
    running--;
    if (waiting.length) waiting.shift()();
  }
}

// The data API's series for a device's channels ({"ch": [[ts, v], …]}).
export async function series(device, channels, params) {
  const r = await heavy(() => get(path`/devices/${device}/data` + query({ channel: channels, ...params })));
  return (r && r.series) || {};
}

const NS = 'http://www.w3.org/2000/svg';

// An SVG element with attributes and children (text or nodes).
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  for (const c of children.flat()) el.append(isNode(c) ? c : document.createTextNode(String(c)));
  return el;
}

export const unitOf = (w) => (w.options && w.options.unit) || '';

export function withUnit(v, unit) {
  return v === null || v === undefined ? '—' : unit ? `${fmtNumber(v)} ${unit}` : fmtNumber(v);
}

// The newest reading of each channel: {ch: [ts, v]}.
export async function latest(device, channels) {
  const s = await series(device, channels, { order: 'desc', limit: 1 });
  const out = {};
  for (const ch of channels) if (s[ch] && s[ch].length) out[ch] = s[ch][0];
  return out;
}

// How often a reading's age ("2 min ago") is told again while no newer
// one comes: a device that stopped sending must not look as if it just sent.
const AGE_EVERY_MS = 15000;

// Calls fn every AGE_EVERY_MS; returns what stops it (the widget's destroy).
export function ageing(fn) {
  const timer = setInterval(fn, AGE_EVERY_MS);
  return () => clearInterval(timer);
}
