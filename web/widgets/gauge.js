// A gauge widget: the first channel's newest reading on a half circle from
// the widget's min to its max. The arc is drawn by setting its path from
// here (no inline style: the CSP forbids it).
import { h, clear, fmtAgo } from '../lib/ui.js';
import { latest, svg, unitOf, withUnit, ageing } from './base.js';

const R = 80;   // the arc's radius in the 200 x 120 drawing
const CX = 100;
const CY = 105;

// The path of the arc from the left end to fraction f (0..1) of the way.
function arc(f) {
  const a = Math.PI * (1 - Math.min(1, Math.max(0, f)));
  const x = CX + R * Math.cos(a);
  const y = CY - R * Math.sin(a);
  return `M ${CX - R} ${CY} A ${R} ${R} 0 0 1 ${x.toFixed(2)} ${y.toFixed(2)}`;
}

export async function mount(el, w, ctx) {
  const ch = w.channels[0];
  const o = w.options || {};
  const min = Number.isFinite(o.min) ? o.min : 0;
  const max = Number.isFinite(o.max) && o.max > min ? o.max : min + 100;
  const unit = unitOf(w);
  const value = svg('path', { class: 'gauge-value', d: arc(0) });
  const text = svg('text', { class: 'gauge-text', x: CX, y: CY - 10, 'text-anchor': 'middle' }, '—');
  const picture = svg('svg', { viewBox: '0 0 200 120', class: 'gauge', role: 'img', 'aria-label': `${ch}: no reading yet` },
    svg('path', { class: 'gauge-track', d: arc(1) }), value, text,
    svg('text', { class: 'gauge-end', x: CX - R, y: CY + 14, 'text-anchor': 'middle' }, withUnit(min, '')),
    svg('text', { class: 'gauge-end', x: CX + R, y: CY + 14, 'text-anchor': 'middle' }, withUnit(max, '')));
  const when = h('p.when', '');
  clear(el).append(picture, when);
  let lastTs = 0;
  const show = (ts, v) => {
    lastTs = ts;
    value.setAttribute('d', arc((v - min) / (max - min)));
    text.textContent = withUnit(v, unit);
    picture.setAttribute('aria-label', `${ch}: ${withUnit(v, unit)} (from ${withUnit(min, '')} to ${withUnit(max, unit)})`);
    when.textContent = `${ch}, ${fmtAgo(ts)}`;
  };
  const last = (await latest(ctx.device, [ch]))[ch];
  if (last) show(last[0], last[1]);
  const stop = ageing(() => { if (lastTs) when.textContent = `${ch}, ${fmtAgo(lastTs)}`; });
  return {
    update(ev) { if (ch in ev.values) show(ev.ts, ev.values[ch]); },
    destroy: stop,
  };
}
