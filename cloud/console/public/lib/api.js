// The console's calls to the cloud's HTTP API (same origin, session cookie).
import { state } from './state.js';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export async function api(method, url, body) {
  const r = await fetch(url, {
    method, credentials: 'same-origin',
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!r.ok) throw new ApiError(r.status, json?.error?.code ?? 'http', json?.error?.message ?? `HTTP ${r.status}`);
  return json;
}

/**
 * A mutating call that names the person acting. With accounts the server takes the account from the
 * session; a server without accounts still wants `by` — then the call is repeated with it.
 */
export async function actAs(method, url, body) {
  try {
    return await api(method, url, body);
  } catch (err) {
    if (err instanceof ApiError && err.status === 400 && err.code === 'validation' && /\bby\b/.test(err.message)) {
      return api(method, url, { ...body, by: state.account?.username ?? 'console' });
    }
    throw err;
  }
}
