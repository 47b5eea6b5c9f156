// Small DOM helpers the pages share: elements built from data (never from
// HTML strings, so nothing a user typed is ever parsed as markup), forms,
// tables, dialogs, notices, and the formats of times and numbers.

// A DOM node (an element or a text), as against data to show as text.
export const isNode = (x) => typeof x === 'object' && x !== null && typeof x.nodeType === 'number';

// h('button.primary', {onclick}, 'Save') — a tag with optional .classes
// and #id, attributes (on* become listeners), children (strings, nodes,
// arrays, null).
export function h(spec, attrs, ...children) {
  if (attrs === null || typeof attrs !== 'object' || isNode(attrs) || Array.isArray(attrs)) {
    children.unshift(attrs);
    attrs = {};
  }
  const [, tag = 'div', rest = ''] = spec.match(/^([a-z0-9-]*)(.*)$/i);
  const el = document.createElement(tag || 'div');
  for (const part of rest.match(/[.#][^.#]+/g) || []) {
    if (part[0] === '.') el.classList.add(part.slice(1));
    else el.id = part.slice(1);
  }
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.classList.add(...String(v).split(/\s+/).filter(Boolean));
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(isNode(c) ? c : document.createTextNode(String(c)));
  }
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

let fieldSeq = 0;

// A labelled input; opts: type, value, required, placeholder, hint,
// autocomplete, options (for a select: [[value, text]]), min, max.
export function field(label, name, opts = {}) {
  const id = `f${++fieldSeq}-${name}`;
  const hintId = opts.hint ? id + '-hint' : undefined;
  let input;
  if (opts.options) {
    input = h('select', { id, name, required: opts.required },
      opts.options.map(([v, t]) => h('option', { value: v, selected: String(v) === String(opts.value ?? '') }, t)));
  } else if (opts.type === 'textarea') {
    input = h('textarea', { id, name, required: opts.required, rows: opts.rows || 4, placeholder: opts.placeholder });
    input.value = opts.value ?? '';
  } else {
    input = h('input', {
      id, name, type: opts.type || 'text', required: opts.required, placeholder: opts.placeholder,
      autocomplete: opts.autocomplete, min: opts.min, max: opts.max, step: opts.step,
      'aria-describedby': hintId,
    });
    if (opts.type === 'checkbox') input.checked = !!opts.value;
    else if (opts.value !== undefined && opts.value !== null) input.value = opts.value;
  }
  return h(`div.field${opts.type === 'checkbox' ? '.check' : ''}`,
    h('label', { for: id }, label), input,
    opts.hint ? h('small.hint', { id: hintId }, opts.hint) : null);
}

// The form's values by name (checkboxes as booleans).
export function values(form) {
  const out = {};
  for (const el of form.elements) {
    if (!el.name) continue;
    out[el.name] = el.type === 'checkbox' ? el.checked : el.value;
  }
  return out;
}

// A form whose submit runs `onsubmit(values)`; while it runs the submit
// button is disabled, and an error it throws is shown in the form.
export function form(children, onsubmit, submitText = 'Save') {
  const status = h('p.form-error', { role: 'alert', hidden: true });
  const button = h('button.primary', { type: 'submit' }, submitText);
  const f = h('form', { novalidate: false }, children, status, h('div.actions', button));
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    status.hidden = true;
    button.disabled = true;
    try {
      await onsubmit(values(f), f);
    } catch (err) {
      showError(status, err);
    } finally {
      button.disabled = false;
    }
  });
  return f;
}

export function errorText(err) {
  return err && typeof err.sentence === 'function' ? err.sentence() : String((err && err.message) || err);
}

export function showError(el, err) {
  el.textContent = errorText(err);
  el.hidden = false;
}

// A notice at the top of the page that a screen reader announces.
export function notice(text, kind = 'info') {
  const region = document.getElementById('notices');
  if (!region) return;
  const n = h(`div.notice.${kind}`, { role: kind === 'error' ? 'alert' : 'status' },
    h('span', text), h('button.link', { type: 'button', 'aria-label': 'Dismiss', onclick: () => n.remove() }, '×'));
  region.append(n);
  if (kind !== 'error') setTimeout(() => n.remove(), 8000);
}

// A notice for the page shown next (a page that re-renders itself after a
// change would otherwise drop it with the old frame).
export function noticeNext(text, kind = 'ok') {
  sessionStorage.setItem('ss-next-notice', JSON.stringify([text, kind]));
}

export function showNoticeNext() {
  const saved = sessionStorage.getItem('ss-next-notice');
  sessionStorage.removeItem('ss-next-notice');
  if (saved) notice(...JSON.parse(saved));
}

// A table of rows: columns [{title, cell: row => node|string, class}].
export function table(columns, rows, { empty = 'Nothing here yet.', caption } = {}) {
  if (!rows.length) return h('p.empty', empty);
  return h('div.table-wrap', h('table',
    caption ? h('caption', caption) : null,
    h('thead', h('tr', columns.map((c) => h('th', { scope: 'col', class: c.class }, c.title)))),
    h('tbody', rows.map((r) => h('tr', columns.map((c) => h('td', { class: c.class, 'data-label': c.title }, c.cell(r))))))));
}

// A modal dialog (the native <dialog>: focus kept inside, Escape closes).
// Resolves when closed.
export function dialog(title, body, { wide = false } = {}) {
  const closeBtn = h('button.link.close', { type: 'button', 'aria-label': 'Close' }, '×');
  const d = h(`dialog${wide ? '.wide' : ''}`, { 'aria-labelledby': 'dlg-title' },
    h('header', h('h2#dlg-title', title), closeBtn), body);
  document.body.append(d);
  return new Promise((resolve) => {
    closeBtn.addEventListener('click', () => d.close());
    d.addEventListener('close', () => { d.remove(); resolve(d.returnValue); });
    d.showModal();
  });
}

export function closeDialog(node, value = '') {
  const d = node.closest('dialog');
  if (d) d.close(value);
}

export async function confirm(title, text, confirmText = 'Confirm') {
  let ok = false;
  const body = h('div',
    h('p', text),
    h('div.actions',
      h('button', { type: 'button', onclick: (e) => closeDialog(e.target) }, 'Cancel'),
      h('button.danger', { type: 'button', onclick: (e) => { ok = true; closeDialog(e.target); } }, confirmText)));
  await dialog(title, body);
  return ok;
}

// A secret shown once (a device token, an API key): readable, selectable,
// with a copy button, and the warning that it will not be shown again.
export function secretBox(label, secret) {
  const id = `secret${++fieldSeq}`;
  const input = h('input.secret', { id, readonly: true, value: secret, spellcheck: 'false' });
  const status = h('span.copy-status', { role: 'status' });
  const copy = h('button', {
    type: 'button',
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(secret);
        status.textContent = 'Copied.';
      } catch {
        input.select();
        status.textContent = 'Selected: press Ctrl+C to copy.';
      }
    },
  }, 'Copy');
  return h('div.secret-box',
    h('label', { for: id }, label),
    h('div.secret-row', input, copy, status),
    h('p.warn', 'This is shown only now. Copy it somewhere safe: it cannot be shown again.'));
}

export function fmtTime(ms) {
  if (ms === null || ms === undefined || ms === 0) return '—';
  const d = new Date(Number(ms));
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

export function fmtAgo(ms) {
  if (!ms) return 'never';
  const s = Math.round((Date.now() - Number(ms)) / 1000);
  if (s < 5) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return fmtTime(ms);
}

export function fmtNumber(v) {
  if (v === null || v === undefined) return '—';
  return typeof v === 'number' ? v.toLocaleString(undefined, { maximumFractionDigits: 6 }) : String(v);
}

export function fmtBytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = Number(n) || 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i ? v.toFixed(1) : v} ${units[i]}`;
}

// A value for <input type="datetime-local"> from ms, and back.
export function toLocalInput(ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 16);
}

export function fromLocalInput(s) {
  return s ? new Date(s).getTime() : undefined;
}
