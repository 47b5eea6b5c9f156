// A table widget: the last readings, newest first; live ones come on top.
import { h, clear, fmtTime, fmtNumber } from '../lib/ui.js';
import { series } from './base.js';

// As many rows as fit a widget and still read at a glance.
const ROWS = 20;

export async function mount(el, w, ctx) {
  const s = await series(ctx.device, w.channels, { order: 'desc', limit: ROWS });
  const byTs = new Map();
  for (const ch of w.channels)
    for (const [ts, v] of s[ch] || []) {
      if (!byTs.has(ts)) byTs.set(ts, {});
      byTs.get(ts)[ch] = v;
    }
  const body = h('tbody');
  const row = (ts, vals) => h('tr', { dataset: { ts } },
    h('td', { 'data-label': 'Time' }, fmtTime(ts)),
    w.channels.map((ch) => h('td.num', { 'data-label': ch }, fmtNumber(vals[ch]))));
  [...byTs.keys()].sort((a, b) => b - a).slice(0, ROWS).forEach((ts) => body.append(row(ts, byTs.get(ts))));
  const unit = w.options && w.options.unit;
  clear(el).append(h('div.table-wrap', h('table',
    h('caption.visually-hidden', `The last ${ROWS} readings${unit ? ` (${unit})` : ''}`),
    h('thead', h('tr', h('th', { scope: 'col' }, 'Time'), w.channels.map((ch) => h('th.num', { scope: 'col' }, ch)))),
    body)));
  return {
    update(ev) {
      if (!w.channels.some((ch) => ch in ev.values)) return;
      if (body.firstElementChild && Number(body.firstElementChild.dataset.ts) >= ev.ts) return;  // had it already
      body.prepend(row(ev.ts, ev.values));
      while (body.rows.length > ROWS) body.lastElementChild.remove();
    },
    destroy() {},
  };
}
