// Dashboards: the organisation's list, a dashboard's view updating live,
// and (for editors) its edit mode.
//   #/o/ORG/dashboards               the list; editors create one
//   #/o/ORG/dashboards/ID[?device=]  the view (a dynamic one: the device picked)
//   #/o/ORG/dashboards/ID/edit       the edit mode
import * as api from '../lib/api.js';
import { h, clear, field, form, table, confirm, notice, noticeNext, showNoticeNext } from '../lib/ui.js';
import { openLive } from '../lib/live.js';

const { path } = api;
// The widgets' modules (uPlot with the line chart) load while the
// dashboard is asked for, not before.
const loadWidgets = () => Promise.all([import('../widgets/line.js'), import('../widgets/gauge.js'),
  import('../widgets/value.js'), import('../widgets/table.js'), import('../widgets/map.js')])
  .then(([line, gauge, value, table, map]) => ({ line, gauge, value, table, map }));
const TYPES = [['line', 'Line chart'], ['gauge', 'Gauge'], ['value', 'Value'], ['table', 'Table'], ['map', 'Map of devices']];
const KINDS = [['static', 'Static: each widget shows a device chosen here'], ['dynamic', 'Dynamic: the device is picked when viewing']];
const RANGES = [[300000, '5 minutes'], [900000, '15 minutes'], [3600000, '1 hour'], [21600000, '6 hours'],
  [86400000, '24 hours'], [604800000, '7 days'], [2592000000, '30 days']];
const FNS = [['avg', 'Average'], ['min', 'Minimum'], ['max', 'Maximum'], ['sum', 'Sum'], ['count', 'Count'], ['first', 'First'], ['last', 'Last']];
const DEFAULT_RANGE = 3600000;

const canEdit = (view) => ['editor', 'admin', 'owner'].includes(view.role);
const typeLabel = (t) => (TYPES.find(([v]) => v === t) || [t, t])[1];
const input = (f) => f.querySelector('input, select, textarea');

export async function render(view) {
  showNoticeNext();
  const [id, mode] = view.args;
  if (!id) return list(view);
  const widgets = mode === 'edit' ? null : loadWidgets();
  widgets?.catch(() => { /* said by show(), which waits for them */ });
  let d;
  try {
    d = await api.get(path`/dashboards/${id}`);
  } catch (err) {
    // A dashboard gone is not the organisation gone (the shell's reading of a 404).
    if (err.status !== 404) throw err;
    view.el.append(h('p', h('a', { href: view.orgHref(view.org.id, 'dashboards') }, '← All dashboards')),
      h('h1', 'This dashboard is not there'), h('p', 'It was deleted, or it belongs to another organisation.'));
    return;
  }
  if (!view.current()) return;
  if (mode === 'edit' && canEdit(view)) return edit(view, d);
  return show(view, d, widgets || loadWidgets());
}

// ---- the list ----

async function list(view) {
  const org = view.org.id;
  const items = await api.all(path`/orgs/${org}/dashboards`);
  if (!view.current()) return;
  view.el.append(h('h1', 'Dashboards'), table([
    { title: 'Name', cell: (d) => h('a', { href: view.orgHref(org, 'dashboards', d.id) }, d.name) },
    { title: 'Kind', cell: (d) => (d.kind === 'dynamic' ? 'Dynamic (pick a device)' : 'Static') },
    { title: 'Widgets', class: 'num', cell: (d) => String((d.widgets || []).length) },
  ], items, {
    empty: canEdit(view) ? 'There is no dashboard yet. Create the first one below.' : 'No dashboard has been made in this organisation yet.',
  }));
  if (!canEdit(view)) return;
  view.el.append(h('h2', 'New dashboard'), form([
    field('Name', 'name', { required: true }),
    field('Kind', 'kind', { options: KINDS, value: 'static' }),
  ], async (v) => {
    const d = await api.post(path`/orgs/${org}/dashboards`, { name: v.name.trim(), kind: v.kind, widgets: [] });
    view.go(view.orgHref(org, 'dashboards', d.id, 'edit'));
  }, 'Create dashboard'));
}

// ---- the view ----

// A part of a view that is drawn again in place: its own cleanups, run
// when it is drawn again or the page is left, and current() false after.
function scope(view) {
  const fns = [];
  let live = true;
  const end = () => { live = false; fns.splice(0).reverse().forEach((fn) => fn()); };
  view.cleanup(end);
  return { view: { ...view, cleanup: (fn) => fns.push(fn), current: () => live && view.current() }, end };
}

async function show(view, d, widgets) {
  const org = view.org.id;
  view.title(d.name);
  const dynamic = d.kind === 'dynamic';
  const needDevices = dynamic || d.widgets.some((w) => w.type === 'map');
  const devices = needDevices ? await api.all(path`/dashboards/${d.id}/devices`) : [];
  if (!view.current()) return;
  const asked = view.query.get('device');
  const picked = dynamic ? (devices.find((x) => x.id === asked) || devices[0] || {}).id : undefined;
  const head = h('div.dash-head', h('h1', d.name),
    canEdit(view) ? h('a.button', { href: view.orgHref(org, 'dashboards', d.id, 'edit') }, 'Edit dashboard') : null);
  view.el.append(head);
  if (dynamic && !devices.length) {
    view.el.append(h('p.empty', 'No device matches this dashboard yet.'));
    return;
  }
  if (!d.widgets.length) {
    view.el.append(h('p.empty', canEdit(view) ? 'This dashboard has no widget yet. Edit it to add some.' : 'This dashboard has no widget yet.'));
    return;
  }
  const area = h('div');
  view.el.append(area);
  let part = scope(view);
  if (dynamic) {
    // Another device is drawn in place: the picker stays, with the focus,
    // so the keyboard's arrows go on to the next device at once; the URL
    // names the device for a reload or a link.
    const pick = field('Device', 'device', { options: devices.map((x) => [x.id, x.name]), value: picked });
    input(pick).addEventListener('change', (e) => {
      history.replaceState(null, '', view.orgHref(org, 'dashboards', d.id) + '?device=' + encodeURIComponent(e.target.value));
      part.end();
      part = scope(view);
      clear(area);
      drawWidgets(part.view, area, d, devices, e.target.value, widgets).catch((err) => {
        if (err && err.status === 401) return;  // signedOut leads on
        area.append(h('p.form-error', err && err.sentence ? err.sentence() : 'This dashboard could not be shown.'));
      });
    });
    head.append(h('div.toolbar', pick));
  }
  await drawWidgets(part.view, area, d, devices, picked, widgets);
}

// The widgets of d into el, for `picked` (a dynamic dashboard's device).
async function drawWidgets(view, el, d, devices, picked, widgets) {
  const dynamic = d.kind === 'dynamic';
  const WIDGETS = await widgets;
  if (!view.current()) return;
  const grid = h('div.widgets');
  el.append(grid);
  const slots = d.widgets.map((w, i) => {
    const body = h('div.widget-body');
    const title = w.title || `${typeLabel(w.type)}${w.channels && w.channels.length ? ': ' + w.channels.join(', ') : ''}`;
    grid.append(h(`section.widget.widget-${w.type}`, { 'aria-labelledby': `wt${i}` }, h(`h2#wt${i}`, title), body));
    return { w, body, device: dynamic ? picked : w.device_id, inst: null };
  });

  // The live streams open first and hold their events until the widgets
  // have loaded, so nothing committed meanwhile is missed.
  let held = [];
  const dispatch = (ev) => {
    if (held) { held.push(ev); return; }
    for (const s of slots) if (s.inst && s.device === ev.device_id && s.w.type !== 'map') s.inst.update(ev);
  };
  const mountAll = async () => {
    await Promise.all(slots.map(async (s) => {
      if (s.inst) s.inst.destroy();
      s.inst = null;
      try {
        const inst = await WIDGETS[s.w.type].mount(s.body, s.w, { device: s.device, devices, view });
        if (!view.current()) inst.destroy();
        else s.inst = inst;
      } catch (err) {
        if (err && err.status === 401) throw err;
        clear(s.body).append(h('p.form-error', err && err.sentence ? err.sentence() : 'This widget could not be shown.'));
      }
    }));
  };
  const reload = async () => {
    held = held || [];
    await mountAll();
    const evs = held;
    held = null;
    evs.forEach(dispatch);
  };
  const streams = new Map();
  for (const s of slots) {
    if (s.w.type === 'map' || !s.device) continue;
    if (!streams.has(s.device)) streams.set(s.device, new Set());
    for (const ch of s.w.channels) streams.get(s.device).add(ch);
  }
  // A stream down is said, so the view does not go on looking live.
  const down = new Set();
  const liveNote = h('p.form-error', { role: 'alert', hidden: true },
    'Live updates stopped: the server cannot be reached. They start again by themselves once it can.');
  grid.before(liveNote);
  const onState = (dev) => (up) => {
    if (up) down.delete(dev); else down.add(dev);
    liveNote.hidden = !down.size;
  };
  for (const [dev, chans] of streams)
    openLive(view, dev, chans, { onEvent: dispatch, onReload: () => view.current() && reload(), onState: onState(dev) });
  view.cleanup(() => slots.forEach((s) => s.inst && s.inst.destroy()));
  await reload();
}

// ---- the edit mode ----

// The ranges offered, and a range saved otherwise (through the API) kept.
function rangeOptions(ms) {
  if (!ms || RANGES.some(([v]) => v === ms)) return RANGES;
  const [n, unit] = ms % 86400000 === 0 ? [ms / 86400000, 'days'] : ms % 3600000 === 0 ? [ms / 3600000, 'hours'] : [Math.round(ms / 60000), 'minutes'];
  return [...RANGES, [ms, `${n} ${unit}`]].sort((a, b) => a[0] - b[0]);
}

function filterText(f) {
  return Object.entries(f || {}).map(([k, v]) => `${k}=${v}`).join(', ');
}

function parseFilter(text) {
  const out = {};
  for (const part of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const i = part.indexOf('=');
    const k = (i < 0 ? part : part.slice(0, i)).trim();
    const v = i < 0 ? '' : part.slice(i + 1).trim();
    out[k] = v === 'true' ? true : v === 'false' ? false : v !== '' && Number.isFinite(Number(v)) ? Number(v) : v;
  }
  return out;
}

// The dashboard as PUT takes it, from what the form holds.
function body(draft) {
  const dynamic = draft.kind === 'dynamic';
  return {
    name: draft.name.trim(),
    kind: draft.kind,
    ...(dynamic && draft.filter.trim() ? { device_filter: parseFilter(draft.filter) } : {}),
    widgets: draft.widgets.map((w) => {
      const o = w.options || {};
      const options = {};
      if (w.type !== 'map' && o.unit) options.unit = o.unit;
      if (w.type === 'line' && o.fn) options.fn = o.fn;
      if (w.type === 'gauge') {
        if (o.min !== '' && o.min !== undefined) options.min = Number(o.min);
        if (o.max !== '' && o.max !== undefined) options.max = Number(o.max);
      }
      return {
        type: w.type,
        title: w.title || '',
        ...(!dynamic && w.type !== 'map' ? { device_id: w.device_id || '' } : {}),
        ...(w.type !== 'map' ? { channels: w.channels || [], range: Number(w.range) || DEFAULT_RANGE } : {}),
        options,
      };
    }),
  };
}

// The server names a widget by its index (widgets[2].channels: …); a
// person counts from one.
function readable(err) {
  if (err && err.message) {
    err.message = err.message.replace(/^widgets\[(\d+)\]\.?([a-z_]*)\s*:?\s*/i,
      (m, i, f) => `Widget ${Number(i) + 1}${f ? ` (${f.replace('_id', '').replace('_', ' ')})` : ''}: `);
  }
  return err;
}

async function edit(view, d) {
  const org = view.org.id;
  view.title(`Edit ${d.name}`);
  const devices = await api.all(path`/orgs/${org}/devices`);
  if (!view.current()) return;
  const draft = {
    name: d.name,
    kind: d.kind,
    filter: filterText(d.device_filter),
    example: '',
    widgets: d.widgets.map((w) => ({ ...w, channels: [...(w.channels || [])], options: { ...(w.options || {}) } })),
  };
  if (d.kind === 'dynamic') {
    const mine = await api.page(path`/dashboards/${d.id}/devices`, { limit: 1 }).catch(() => ({ items: [] }));
    draft.example = (mine.items[0] || devices[0] || {}).id || '';
  }
  const channelCache = new Map();
  const channelsOf = (dev) => {
    if (!dev) return Promise.resolve([]);
    if (!channelCache.has(dev)) channelCache.set(dev, api.all(path`/devices/${dev}/channels`).then((cs) => cs.map((c) => c.name)).catch(() => []));
    return channelCache.get(dev);
  };
  const deviceChoices = [['', 'Choose a device'], ...devices.map((x) => [x.id, x.name])];

  const nameF = field('Name', 'name', { required: true, value: draft.name });
  input(nameF).addEventListener('input', (e) => { draft.name = e.target.value; });
  const kindF = field('Kind', 'kind', { options: KINDS, value: draft.kind });
  input(kindF).addEventListener('change', (e) => { draft.kind = e.target.value; renderDynamic(); renderWidgets(); });
  const dynBox = h('div.dyn');
  const list = h('div.widget-editors');
  const add = h('button', { type: 'button', onclick: () => {
    draft.widgets.push({ type: 'line', title: '', device_id: '', channels: [], range: DEFAULT_RANGE, options: {} });
    renderWidgets(`#we${draft.widgets.length - 1} select`);
  } }, 'Add widget');

  function renderDynamic() {
    clear(dynBox);
    if (draft.kind !== 'dynamic') return;
    const filterF = field('Device filter', 'filter', {
      value: draft.filter,
      hint: 'The attributes a device must have to be picked, as name=value separated by commas (type=boiler, site=north). Empty: every device.',
    });
    input(filterF).addEventListener('input', (e) => { draft.filter = e.target.value; });
    const exF = field('Example device', 'example', {
      options: deviceChoices, value: draft.example, hint: 'Its channels are offered to the widgets below; it is not saved.',
    });
    input(exF).addEventListener('change', (e) => { draft.example = e.target.value; renderWidgets(); });
    dynBox.append(filterF, exF);
  }

  function move(i, by) {
    const [w] = draft.widgets.splice(i, 1);
    draft.widgets.splice(i + by, 0, w);
    const j = i + by;
    const last = draft.widgets.length - 1;
    // Focus stays on the button pressed, or on the other one at an end.
    renderWidgets(`#we${j} .move-${(by < 0 && j > 0) || (by > 0 && j === last) ? 'up' : 'down'}`);
  }

  function channelPicker(w, i) {
    const box = h('fieldset.channels', h('legend', 'Channels'));
    const known = h('div.channel-list', h('span.hint', 'Loading the channels…'));
    const otherF = field('Other channels', `other${i}`, { hint: 'Names separated by commas, for channels with no reading yet.' });
    const other = input(otherF);
    box.append(known, otherF);
    const sync = () => {
      const checked = [...known.querySelectorAll('input:checked')].map((c) => c.value);
      const extra = other.value.split(',').map((s) => s.trim()).filter(Boolean);
      w.channels = [...new Set([...checked, ...extra])];
    };
    other.addEventListener('input', sync);
    const dev = draft.kind === 'dynamic' ? draft.example : w.device_id;
    channelsOf(dev).then((names) => {
      clear(known);
      if (!names.length) known.append(h('span.hint', dev ? 'This device has no channel yet.' : 'Choose a device to see its channels.'));
      for (const n of names) {
        const id = `we${i}-ch-${n}`;
        known.append(h('span.check-item',
          h('input', { type: 'checkbox', id, value: n, checked: w.channels.includes(n), onchange: sync }),
          h('label', { for: id }, n)));
      }
      other.value = w.channels.filter((c) => !names.includes(c)).join(', ');
    });
    return box;
  }

  function widgetEditor(w, i) {
    const n = draft.widgets.length;
    const label = `widget ${i + 1}`;
    const on = (f, ev, fn) => { input(f).addEventListener(ev, (e) => fn(e.target.value)); return f; };
    const opt = (k) => (w.options[k] === undefined ? '' : w.options[k]);
    const parts = [
      on(field('Type', `type${i}`, { options: TYPES, value: w.type }), 'change', (v) => { w.type = v; renderWidgets(`#we${i} select`); }),
      on(field('Title', `title${i}`, { value: w.title || '' }), 'input', (v) => { w.title = v; }),
    ];
    if (w.type !== 'map') {
      if (draft.kind !== 'dynamic')
        parts.push(on(field('Device', `device${i}`, { options: deviceChoices, value: w.device_id || '' }), 'change',
          (v) => { w.device_id = v; renderWidgets(`#we${i} select[name="device${i}"]`); }));
      parts.push(channelPicker(w, i));
      // Only a chart draws a range; the others show the newest readings.
      if (w.type === 'line')
        parts.push(on(field('Time range', `range${i}`, { options: rangeOptions(w.range), value: w.range || DEFAULT_RANGE }), 'change', (v) => { w.range = Number(v); }));
      parts.push(on(field('Unit', `unit${i}`, { value: opt('unit'), placeholder: '°C' }), 'input', (v) => { w.options.unit = v; }));
    }
    if (w.type === 'line')
      parts.push(on(field('Aggregate', `fn${i}`, { options: FNS, value: opt('fn') || 'avg' }), 'change', (v) => { w.options.fn = v; }));
    if (w.type === 'gauge') {
      parts.push(on(field('Minimum', `min${i}`, { type: 'number', value: opt('min'), step: 'any' }), 'input', (v) => { w.options.min = v; }));
      parts.push(on(field('Maximum', `max${i}`, { type: 'number', value: opt('max'), step: 'any' }), 'input', (v) => { w.options.max = v; }));
    }
    return h(`fieldset.widget-editor#we${i}`,
      h('legend', `Widget ${i + 1}: ${typeLabel(w.type)}`),
      h('div.we-fields', parts),
      h('div.actions',
        h('button.move-up', { type: 'button', disabled: i === 0, 'aria-label': `Move ${label} up`, onclick: () => move(i, -1) }, 'Move up'),
        h('button.move-down', { type: 'button', disabled: i === n - 1, 'aria-label': `Move ${label} down`, onclick: () => move(i, 1) }, 'Move down'),
        h('button.link', { type: 'button', 'aria-label': `Remove ${label}`, onclick: () => {
          draft.widgets.splice(i, 1);
          renderWidgets(draft.widgets.length ? `#we${Math.min(i, draft.widgets.length - 1)} select` : null, add);
        } }, 'Remove')));
  }

  function renderWidgets(focus, fallback) {
    clear(list);
    if (!draft.widgets.length) list.append(h('p.empty', 'No widget yet: add one.'));
    draft.widgets.forEach((w, i) => list.append(widgetEditor(w, i)));
    const el = focus && list.querySelector(focus);
    (el || fallback)?.focus();
  }

  renderDynamic();
  renderWidgets();
  const f = form([nameF, kindF, dynBox, h('h2', 'Widgets'), list, h('div.actions', add)], async () => {
    try {
      await api.put(path`/dashboards/${d.id}`, body(draft));
    } catch (err) {
      throw readable(err);
    }
    noticeNext('The dashboard is saved.');
    view.go(view.orgHref(org, 'dashboards', d.id));
  }, 'Save dashboard');
  f.classList.add('dash-edit');
  view.el.append(
    h('div.dash-head', h('h1', `Edit ${d.name}`), h('a.button', { href: view.orgHref(org, 'dashboards', d.id) }, 'Back to the dashboard')),
    f,
    h('h2', 'Delete'),
    h('button.danger', { type: 'button', onclick: async () => {
      if (!await confirm('Delete this dashboard?', `“${d.name}” and its layout will be gone for everyone in the organisation.`, 'Delete dashboard')) return;
      try {
        await api.del(path`/dashboards/${d.id}`);
        noticeNext(`“${d.name}” is deleted.`);
        view.go(view.orgHref(org, 'dashboards'));
      } catch (err) {
        notice(err.sentence(), 'error');
      }
    } }, 'Delete dashboard'));
}
