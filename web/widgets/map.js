// A map widget: the devices that have a location attribute ({lat, lon}) as
// points on a plain projection of their bounds, each named (no map tiles:
// SensorSpace runs without reaching other servers), and the same devices
// as a list for screen readers and small screens.
import { h, clear, fmtAgo } from '../lib/ui.js';
import { svg, ageing } from './base.js';

const W = 400;
const H = 260;
const PAD = 30;   // room at the edges for the points' names

function located(d) {
  const l = d.attributes && d.attributes.location;
  return l && Number.isFinite(l.lat) && Number.isFinite(l.lon) ? { d, lat: l.lat, lon: l.lon } : null;
}

// Equirectangular, longitudes shrunk by the cosine of the middle
// latitude, fitted into the drawing keeping its proportions.
function projection(points) {
  const lats = points.map((p) => p.lat);
  const lons = points.map((p) => p.lon);
  const k = Math.cos(((Math.min(...lats) + Math.max(...lats)) / 2) * Math.PI / 180) || 1;
  const x0 = Math.min(...lons) * k;
  const y0 = Math.max(...lats);
  const spanX = Math.max(Math.max(...lons) * k - x0, 1e-4);
  const spanY = Math.max(y0 - Math.min(...lats), 1e-4);
  const scale = Math.min((W - 2 * PAD) / spanX, (H - 2 * PAD) / spanY);
  const ox = (W - spanX * scale) / 2;
  const oy = (H - spanY * scale) / 2;
  return (p) => [ox + (p.lon * k - x0) * scale, oy + (y0 - p.lat) * scale];
}

export async function mount(el, w, ctx) {
  const points = (ctx.devices || []).map(located).filter(Boolean);
  const missing = (ctx.devices || []).length - points.length;
  if (!points.length) {
    clear(el).append(h('p.empty', 'No device of this dashboard has a location. Give a device the attribute location {"lat": …, "lon": …} to see it here.'));
    return { update() {}, destroy() {} };
  }
  const at = projection(points);
  const picture = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'map', 'aria-hidden': 'true' },
    svg('rect', { class: 'map-bg', x: 0, y: 0, width: W, height: H }),
    points.map((p) => {
      const [x, y] = at(p);
      return svg('g', { class: 'map-point' },
        svg('circle', { cx: x.toFixed(1), cy: y.toFixed(1), r: 5 }),
        svg('text', { x: x.toFixed(1), y: (y - 9).toFixed(1), 'text-anchor': 'middle' }, p.d.name));
    }));
  const seen = points.map((p) => h('span.seen', `seen ${fmtAgo(p.d.last_seen)}`));
  const list = h('ul.map-list', { 'aria-label': 'Devices on the map' }, points.map((p, i) =>
    h('li', h('strong', p.d.name), ` ${p.lat.toFixed(4)}, ${p.lon.toFixed(4)} · `, seen[i])));
  clear(el).append(h('div.map-wrap', picture, list));
  if (missing) el.append(h('p.hint', `${missing} more without a location.`));
  const stop = ageing(() => points.forEach((p, i) => { seen[i].textContent = `seen ${fmtAgo(p.d.last_seen)}`; }));
  return { update() {}, destroy: stop };
}
