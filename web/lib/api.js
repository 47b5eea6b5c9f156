// The REST API of SPEC §2, as the app uses it: the session cookie signs
// every request in; a request that changes something carries the CSRF
// token the sign-in (or /me) gave. Errors become ApiError, whose
// sentence() a person can act on.

const BASE = '/api/v1';
let csrf = '';
const listeners = { signedOut: [], accessLost: [] };

export function setCsrf(token) {
  csrf = token || '';
}

// 'signedOut' (the session ended or was revoked) and 'accessLost' (an org
// the page shows answered 404): the shell leads the person on.
export function on(event, fn) {
  listeners[event].push(fn);
}

function emit(event, detail) {
  for (const fn of listeners[event]) fn(detail);
}

export class ApiError extends Error {
  constructor(status, code, message, extra = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.extra = extra;
  }

  // The server's message says what was wrong; the status says what to do.
  sentence() {
    const msg = this.message ? capitalise(this.message.replace(/\.$/, '')) + '.' : '';
    switch (this.status) {
      case 0: return 'The server cannot be reached. Check your connection and try again.';
      case 401: return this.code === 'invalid_credentials' && msg
        ? `${msg} Check them and try again.`
        : 'Your session has ended. Sign in again.';
      case 403: return this.code === 'csrf_failed'
        ? 'This page is out of date. Reload it and try again.'
        : `${msg || 'Not allowed.'} Ask an admin of the organisation if you need this.`;
      case 404: return 'It is not there: it was deleted, or you no longer have access to it.';
      case 409: return msg || 'That conflicts with what is there now. Reload and try again.';
      case 413: return msg || 'That is too large for the server to take.';
      case 429: return `${msg || 'Too many requests.'} Wait a moment, then try again.`;
      case 503: return `${msg || 'The server is busy.'} Try again in a moment.`;
      default:
        if (this.status >= 500) return `The server failed (${this.status}). Try again; if it goes on, tell your operator.`;
        return msg || `The request was refused (${this.status}).`;
    }
  }
}

function capitalise(s) {
  return s ? s[0].toUpperCase() + s.slice(1) : s;
}

// Paths are built by callers from IDs the API gave; encode anything else.
export function path(strings, ...values) {
  return strings.reduce((out, s, i) => out + s + (i < values.length ? encodeURIComponent(values[i]) : ''), '');
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {}))
    if (v !== undefined && v !== null && v !== '') q.set(k, Array.isArray(v) ? v.join(',') : String(v));
  const s = q.toString();
  return s ? '?' + s : '';
}

// One request. Returns {data, headers}; data is the parsed JSON (null for
// an empty answer). Throws ApiError.
export async function request(method, p, body, { quiet = false } = {}) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET' && method !== 'HEAD') {
    headers['X-CSRF-Token'] = csrf;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
  }
  let res;
  try {
    res = await fetch(BASE + p, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, 'network', 'the server cannot be reached');
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = text; }
  }
  if (!res.ok) {
    const e = data && data.error ? data.error : {};
    const err = new ApiError(res.status, e.code || 'error', e.message || '', e);
    if (res.status === 401 && !quiet) emit('signedOut', err);
    throw err;
  }
  return { data, headers: res.headers };
}

export const get = async (p, opts) => (await request('GET', p, undefined, opts)).data;
export const post = async (p, body) => (await request('POST', p, body === undefined ? {} : body)).data;
export const put = async (p, body) => (await request('PUT', p, body)).data;
export const patch = async (p, body) => (await request('PATCH', p, body)).data;
export const del = async (p) => (await request('DELETE', p)).data;

// One page of a list: {items, next} (next: the cursor of the page after,
// or '' at the end). opts as request()'s.
export async function page(p, params = {}, opts) {
  const { data, headers } = await request('GET', p + query(params), undefined, opts);
  const items = Array.isArray(data) ? data : (data && (data.items || data.data)) || [];
  return { items, next: headers.get('Next-Cursor') || '' };
}

// Every item of a list, up to `max` (lists page, SPEC §2).
export async function all(p, params = {}, max = 10000, opts) {
  const out = [];
  let cursor = '';
  do {
    const r = await page(p, { ...params, cursor }, opts);
    out.push(...r.items);
    cursor = r.next;
  } while (cursor && out.length < max);
  return out;
}

export function accessLost(detail) {
  emit('accessLost', detail);
}
