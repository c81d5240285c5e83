// The HTTP API: JSON in and out, errors as ApiError {status, code, message}.
// Staff pages authenticate with the HttpOnly session cookie, for HTTP and for the WebSocket
// (whose `hello` then carries no token); state-changing requests carry the CSRF token from
// sign-in (kept in sessionStorage). The staff token itself is never kept: a script injected
// into a page could read anything stored, and the cookie is out of its reach.

import { t, lang } from './i18n.js';

export class ApiError extends Error {
  constructor(status, code, message, body = null) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
    // The whole error body, for fields beyond {error, message} (e.g. attempts_left).
    this.body = body;
  }
}

const KEY = 'examroom.staff';

export function staffSession() {
  try { return JSON.parse(sessionStorage.getItem(KEY)) || null; } catch { return null; }
}

function saveStaffSession(s) {
  if (s) {
    const { csrf_token, expires_at, staff } = s;
    sessionStorage.setItem(KEY, JSON.stringify({ csrf_token, expires_at, staff }));
  } else sessionStorage.removeItem(KEY);
}

export async function api(method, path, body, { bearer } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  const s = staffSession();
  if (!bearer && method !== 'GET' && s?.csrf_token) headers['X-CSRF-Token'] = s.csrf_token;
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, 'network', t('error.network'));
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = text; }
  }
  if (!res.ok) {
    if (res.status === 401 && !bearer) saveStaffSession(null);
    // Errors are {"error": "code", "message": "…"} or {"error": {"code", "message"}}.
    const err = data?.error && typeof data.error === 'object' ? data.error : { code: data?.error, message: data?.message };
    const message = inPageLanguage(err.code, data?.field) || err.message || (typeof data === 'string' ? data : '');
    throw new ApiError(res.status, err.code || `http_${res.status}`, message, data && typeof data === 'object' ? data : null);
  }
  const seen = globalThis.__apiRead;
  return typeof seen === 'function' ? watched(data, (field) => seen(`${method} ${path.split('?')[0]} ${res.status}`, field)) : data;
}

/**
 * Browser tests only (`tests/e2e/api-fields.test.mjs` sets `__apiRead`): the answer, with
 * every field the page reads reported as a path (`.rooms[].name`), so the test can check
 * each against the OpenAPI document. Reads of fields an answer lacks are reported too:
 * those are the bugs it is for.
 */
function watched(value, seen, at = '') {
  if (!value || typeof value !== 'object') return value;
  const array = Array.isArray(value);
  const proto = array ? Array.prototype : Object.prototype;
  return new Proxy(value, {
    get(target, key, receiver) {
      const v = Reflect.get(target, key, receiver);
      if (typeof key !== 'string' || key in proto || key === 'toJSON' || key === 'then') return v;
      const field = array && key === String(Number(key)) ? `${at}[]` : `${at}.${key}`;
      seen(field);
      return watched(v, seen, field);
    },
  });
}

/**
 * The server writes its error sentences in English; a page in another language says the
 * same from its catalogue (`api.<code>` in the staff pages' catalogue), naming the field
 * where there is one. English pages keep the server's sentence, which says more (which
 * limit, which name). Null: no catalogue sentence for this code here.
 */
function inPageLanguage(code, field) {
  if (!code || lang === 'en') return null;
  const key = `api.${code}`;
  const text = t(key, { field: field || '' });
  return text === key ? null : text;
}

export async function signIn(email, password) {
  const s = await api('POST', '/api/session', { email, password });
  saveStaffSession(s);
  return staffSession();
}

/** Keep a session returned by another endpoint (setup). */
export function adoptSession(s) {
  if (s?.csrf_token) saveStaffSession(s);
}

export async function signOut() {
  try { await api('DELETE', '/api/session'); } catch { /* signed out anyway */ }
  saveStaffSession(null);
}

/** The signed-in staff member, checked with the server; null when signed out. */
export async function currentStaff() {
  const s = staffSession();
  try {
    // The session is the browser's cookie, shared by every tab; a tab opened after sign-in
    // has nothing stored yet and takes the CSRF token from /api/me.
    const me = await api('GET', '/api/me');
    const { csrf_token, expires_at, ...staff } = me || {};
    const session = { csrf_token: csrf_token || s?.csrf_token, expires_at: expires_at || s?.expires_at, staff: { ...s?.staff, ...staff } };
    if (!session.csrf_token) return null;
    saveStaffSession(session);
    return staffSession();
  } catch (e) {
    if (e.status === 401 || e.status === 403) { saveStaffSession(null); return null; }
    // The server could not be asked (offline): trust what this tab stored, if anything.
    return s?.csrf_token ? s : null;
  }
}

export function hasRole(session, role) {
  return (session?.staff?.roles || []).includes(role);
}
