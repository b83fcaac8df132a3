// The HTTP API from the browser: session cookie, X-CSRF-Token on writes, problem details as errors,
// and GETs that fall back to the last copy kept in IndexedDB when the network is away.

import {cache} from './store.js';

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

export class NetworkError extends Error {}

const listeners = new Set();
/** Called with 401 errors (the session has ended). */
export function onUnauthorized(fn) { listeners.add(fn); }

export function csrfToken() {
  const found = document.cookie.split(';').map((c) => c.trim()).find((c) => c.startsWith('pumpwatch_csrf='));
  return found ? decodeURIComponent(found.slice('pumpwatch_csrf='.length)) : '';
}

export async function request(method, path, {json, form, signal} = {}) {
  const headers = {Accept: 'application/json, application/problem+json'};
  let body;
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form;
  }
  if (method !== 'GET') headers['X-CSRF-Token'] = csrfToken();
  let res;
  try {
    res = await fetch(path, {method, headers, body, credentials: 'same-origin', cache: 'no-store', signal});
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    throw new NetworkError(String(err && err.message || err));
  }
  if (res.status === 204) return null;
  const type = res.headers.get('content-type') || '';
  const data = type.includes('json') ? await res.json().catch(() => null) : await res.text();
  if (!res.ok) {
    const error = new ApiError(res.status, typeof data === 'object' ? data : {detail: String(data).slice(0, 300)});
    if (res.status === 401 && !path.startsWith('/api/auth/login')) listeners.forEach((fn) => fn(error));
    throw error;
  }
  return data;
}

export const get = (path, opts) => request('GET', path, opts);
export const post = (path, json) => request('POST', path, {json});
export const put = (path, json) => request('PUT', path, {json});

let cacheUser = '';
/** Whose cached copies are read and written (a shared phone keeps users apart). */
export function setCacheUser(username) { cacheUser = username || ''; }

/** GET, keeping a copy; offline, the last copy: {data, offline, at}. */
export async function getCached(path) {
  const key = `${cacheUser}|${path}`;
  try {
    const data = await get(path);
    cache.set(key, data).catch(() => {});
    return {data, offline: false, at: Date.now()};
  } catch (err) {
    if (err instanceof NetworkError) {
      const kept = await cache.get(key).catch(() => undefined);
      if (kept !== undefined) return {data: kept.value, offline: true, at: kept.at};
    }
    throw err;
  }
}

/** Keep a copy under a GET path without fetching (e.g. a task seen in a list, for offline detail). */
export function remember(path, data) {
  return cache.set(`${cacheUser}|${path}`, data).catch(() => {});
}
