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
      const body = (await res.json().catch(() => ({}))) as { message?: string; error?: string };
      throw new CloudApiError(`sign-in as ${credential.user} at ${base} refused: ${body.message ?? res.status}`, res.status, body.error ?? null);
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
    const json = text ? (JSON.parse(text) as T & { message?: string; error?: string }) : ({} as T & { message?: string; error?: string });
    if (!res.ok) throw new CloudApiError(`${method} ${path}: ${res.status} ${json.message ?? ''}`.trim(), res.status, json.error ?? null);
    return json;
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
