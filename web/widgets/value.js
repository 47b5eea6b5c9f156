// A value widget: each channel's newest reading as a big number, with its
// unit and when it was taken.
import { h, clear, fmtAgo, fmtTime } from '../lib/ui.js';
import { latest, unitOf, withUnit, ageing } from './base.js';

export async function mount(el, w, ctx) {
  const unit = unitOf(w);
  const rows = new Map();
  const list = h('dl.values');
  for (const ch of w.channels) {
    const num = h('span.big', '—');
    const when = h('time.when', '');
    rows.set(ch, { num, when });
    list.append(h('div.value-row', h('dt', ch), h('dd', num, when)));
  }
  clear(el).append(list);
  const show = (ch, ts, v) => {
    const r = rows.get(ch);
    if (!r) return;
    r.num.textContent = withUnit(v, unit);
    r.ts = ts;
    r.when.textContent = fmtAgo(ts);
    r.when.dateTime = new Date(ts).toISOString();
    r.when.title = fmtTime(ts);
  };
  const last = await latest(ctx.device, w.channels);
  for (const [ch, [ts, v]] of Object.entries(last)) show(ch, ts, v);
  const stop = ageing(() => { for (const r of rows.values()) if (r.ts) r.when.textContent = fmtAgo(r.ts); });
  return {
    update(ev) {
      for (const [ch, v] of Object.entries(ev.values)) show(ch, ev.ts, v);
    },
    destroy: stop,
  };
}
