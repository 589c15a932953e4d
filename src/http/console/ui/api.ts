/**
 * The console's only way to the server: the admin API (SPEC §4.3) with the admin token in
 * `Authorization: Bearer`. The token lives in this tab's sessionStorage (gone when the tab closes,
 * never sent by the browser on its own — unlike a cookie — so another site cannot make this browser
 * act with it), and is never put in a URL. Paths are built from encoded segments only.
 */
const TOKEN_KEY = 'rotor.console.adminToken';

export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, readonly detail: string) {
    super(detail || code || `HTTP ${status}`);
  }
}

/** One path segment. `.` and `..` would be dot segments however they are encoded (a URL parser resolves %2e too): refused. */
export function segment(value: string): string {
  if (value === '.' || value === '..') throw new ApiError(0, 'unaddressable', `"${value}" cannot be named in a URL path`);
  return encodeURIComponent(value);
}

export const isAddressable = (value: string): boolean => value !== '.' && value !== '..';

export function path(strings: TemplateStringsArray, ...values: string[]): string {
  return strings.reduce((out, part, i) => out + part + (i < values.length ? segment(values[i]!) : ''), '');
}

export function query(params: Record<string, string | number | null | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== '') q.set(k, String(v));
  const text = q.toString();
  return text ? `?${text}` : '';
}

export class AdminApi {
  private token: string | null = sessionStorage.getItem(TOKEN_KEY);
  /** Called when the server refuses the token (it was changed, or the tab's copy is stale). */
  onUnauthorized: () => void = () => {};

  /** Rotor's root (where the console page lives): `/` normally, a proxy's prefix otherwise. */
  private readonly base = new URL('.', document.baseURI);

  get signedIn(): boolean {
    return this.token !== null;
  }

  /** Checks the token against the server first; kept only if the server takes it. */
  async signIn(token: string): Promise<void> {
    const previous = this.token;
    this.token = token;
    try {
      await this.request('GET', '/admin/apps', undefined, false);
      sessionStorage.setItem(TOKEN_KEY, token);
    } catch (err) {
      this.token = previous;
      throw err;
    }
  }

  signOut(): void {
    this.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
  }

  async request<T = any>(method: string, p: string, body?: unknown, reportUnauthorized = true): Promise<T> {
    if (this.token === null) throw new ApiError(401, 'unauthorized', 'not signed in');
    const url = new URL(p.replace(/^\//, ''), this.base);
    if (url.origin !== location.origin) throw new ApiError(0, 'invalid_request', 'the console calls its own server only');
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}`, accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(url, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
        credentials: 'omit', cache: 'no-store', redirect: 'error', referrerPolicy: 'no-referrer',
      });
    } catch {
      throw new ApiError(0, 'network', 'the server did not answer');
    }
    const text = await res.text();
    let parsed: any = null;
    try { parsed = text ? JSON.parse(text) : null; } catch { parsed = null; }
    if (!res.ok) {
      const err = new ApiError(res.status, String(parsed?.code ?? ''), String(parsed?.detail ?? parsed?.title ?? `HTTP ${res.status}`));
      if (res.status === 401 && reportUnauthorized) {
        this.signOut();
        this.onUnauthorized();
      }
      throw err;
    }
    return parsed as T;
  }
}
