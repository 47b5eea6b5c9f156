// The live stream of a dashboard view (SPEC §2, GET /orgs/{org}/live): one
// EventSource for a device and the channels its widgets show, its events
// handed to `onEvent`. The browser resumes a dropped stream by itself
// (Last-Event-ID); a stream the server refuses or ends for good (CLOSED)
// asks the shell whether access still holds — revoked access leaves the
// page — and is opened again after a growing wait, with `onReload` first
// (what was missed meanwhile comes from a data query). `event: reset`
// (resumed too late) reloads too. close() ends it for good.
import { path, query } from './api.js';

// The wait before opening a closed stream again: doubled each time, up to
// the cap, back to the first once events flow.
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 30000;

// onState(false) when the stream is down (the browser or this module
// tries again), onState(true) once it is open again.
export function openLive(view, device, channels, { onEvent, onReload, onState = () => {} }) {
  const url = '/api/v1' + path`/orgs/${view.org.id}/live` + query({ device, channel: [...channels] });
  let es = null;
  let timer = 0;
  let wait = RETRY_FIRST_MS;
  let closed = false;

  const open = () => {
    es = new EventSource(url, { withCredentials: true });
    es.onopen = () => onState(true);
    es.onmessage = (m) => {
      wait = RETRY_FIRST_MS;
      let ev;
      try { ev = JSON.parse(m.data); } catch { return; }
      if (ev && ev.values) onEvent(ev);
    };
    es.addEventListener('reset', () => onReload && onReload());
    es.addEventListener('overflow', () => onReload && onReload());
    es.onerror = () => {
      if (closed) return;
      onState(false);
      if (es.readyState !== EventSource.CLOSED) return;
      es.close();
      view.recheck();
      timer = setTimeout(() => {
        if (closed || !view.current()) return;
        if (onReload) onReload();
        open();
      }, wait);
      wait = Math.min(wait * 2, RETRY_MAX_MS);
    };
  };
  open();
  const close = () => {
    closed = true;
    clearTimeout(timer);
    if (es) es.close();
  };
  view.cleanup(close);
  return { close };
}
