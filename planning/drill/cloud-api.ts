/**
 * The cloud API as the drill uses it: one account (signed in with a password, or an API token as the
 * Node-RED flow has), JSON in and out. The account's identity is the credential's; the drill never
 * names a user in a body.
 */
export class CloudApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string | null,
  ) {
    super(message);
  }
}

export interface CloudApi {
  readonly baseUrl: string;
  /** The account the drill acts as (from /api/v1/auth/me). */
  readonly username: string;
  get<T>(path: string): Promise<T>;
  post<T>(path: string, body: unknown): Promise<T>;
  close(): Promise<void>;
}

export type Credential = { user: string; password: string } | { token: string };

/**
 * The server's reason from an error body. The API answers `{ error: { code, message } }`
 * (cloud/accounts/access-hooks.ts); older or other servers `{ error: 'code', message }`.
 */
export function serverReason(body: unknown): { code: string | null; message: string | null } {
  const b = (typeof body === 'object' && body !== null ? body : {}) as { error?: unknown; message?: unknown };
  const inner = (typeof b.error === 'object' && b.error !== null ? b.error : {}) as { code?: unknown; message?: unknown };
  const str = (x: unknown) => (typeof x === 'string' && x !== '' ? x : null);
  return { code: str(inner.code) ?? str(b.error), message: str(inner.message) ?? str(b.message) };
}

const statusLine = (status: number, r: { code: string | null; message: string | null }) =>
  [String(status), r.code, r.message].filter((x) => x !== null).join(' ');

export async function connectCloud(baseUrl: string, credential: Credential): Promise<CloudApi> {
  const base = baseUrl.replace(/\/+$/, '');
  const reach = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(10_000) }).catch((err: Error) => err);
  if (reach instanceof Error) throw new CloudApiError(`cannot reach the cloud at ${base} (${(reach.cause as Error | undefined)?.message ?? reach.message})`, 0, null);
  let token: string;
  let signedIn = false;
  if ('token' in credential) {
    token = credential.token;
  } else {
    const res = await fetch(`${base}/api/v1/auth/login`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: credential.user, password: credential.password }),
    });
    if (!res.ok) {
      const reason = serverReason(await res.json().catch(() => ({})));
      throw new CloudApiError(`sign-in as ${credential.user} at ${base} refused: ${statusLine(res.status, reason)}`, res.status, reason.code);
    }
    const cookie = res.headers.getSetCookie().find((c) => c.startsWith('chiiki_session='));
    if (!cookie) throw new CloudApiError('sign-in answered without a session', 500, null);
    token = cookie.slice('chiiki_session='.length).split(';')[0]!;
    signedIn = true;
  }
  const call = async <T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(15_000),
    });
    const text = await res.text();
    let json: unknown = {};
    try {
      if (text) json = JSON.parse(text);
    } catch {
      if (res.ok) throw new CloudApiError(`${method} ${path}: ${res.status} answered with something that is not JSON`, res.status, null);
    }
    if (!res.ok) {
      const reason = serverReason(json);
      throw new CloudApiError(`${method} ${path}: ${statusLine(res.status, reason)}`, res.status, reason.code);
    }
    return json as T;
  };
  const me = await call<{ account: { username: string } }>('GET', '/api/v1/auth/me');
  const username = me.account.username;
  return {
    baseUrl: base,
    username,
    get: (path) => call('GET', path),
    post: (path, body) => call('POST', path, body),
    async close() {
      // A session the drill opened is ended; an API token is the owner's and stays.
      if (signedIn) await call('POST', '/api/v1/auth/logout').catch(() => undefined);
    },
  };
}
