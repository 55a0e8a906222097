// api.js: the session and fetch helpers. Every state-changing request
// carries the session's CSRF token in X-Relais-CSRF.
export const session = { user: '', role: '', csrf: '', lang: 'fr' };

export async function loadSession() {
  const r = await fetch('/app/api/session', { credentials: 'same-origin', cache: 'no-store' });
  if (r.status === 401) { toLogin(); throw new Error('not logged in'); }
  Object.assign(session, await r.json());
  return session;
}

export function toLogin() {
  if (session.ended) return;
  session.ended = true;
  location.href = '/app/login?next=' + encodeURIComponent(location.pathname + location.search);
}

export async function api(method, url, body, opts = {}) {
  const headers = Object.assign({}, opts.headers || {});
  if (method !== 'GET' && method !== 'HEAD') headers['X-Relais-CSRF'] = session.csrf;
  let payload;
  if (body !== undefined) { headers['Content-Type'] = 'application/json'; payload = JSON.stringify(body); }
  const r = await fetch(url, { method, headers, body: payload, credentials: 'same-origin', signal: opts.signal });
  if (r.status === 401 && !opts.allow401) { toLogin(); throw new Error('session ended'); }
  return r;
}

export async function getJSON(url, opts) {
  const r = await api('GET', url, undefined, Object.assign({ headers: { Accept: 'application/dicom+json, application/json' } }, opts || {}));
  if (r.status === 204) return [];
  if (!r.ok) { const e = new Error(url + ': ' + r.status); e.status = r.status; throw e; }
  return r.json();
}

export function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined && k !== false) e.append(k instanceof Node ? k : String(k));
  return e;
}

// DICOM JSON helpers.
export function val(ds, tag, i = 0) {
  const a = ds && ds[tag];
  if (!a || !a.Value) return undefined;
  const v = a.Value[i];
  if (v && typeof v === 'object' && 'Alphabetic' in v) return v.Alphabetic;
  return v;
}
export function vals(ds, tag) { const a = ds && ds[tag]; return (a && a.Value) || []; }
export function num(ds, tag, def, i = 0) { const v = val(ds, tag, i); const n = typeof v === 'number' ? v : parseFloat(v); return Number.isFinite(n) ? n : def; }
export function personName(p) { return (p || '').replace(/\^+/g, ' ').trim(); }
