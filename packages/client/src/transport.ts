/**
 * The client's calls over the network: to Rotor (POST with a timeout; a refresh retried with backoff
 * inside Rotor's grace window, its answers typed as RotorClientErrors) and to the app's own APIs (the
 * token, and for a DPoP token a proof and the nonce each resource server asked for).
 */
import { RotorClientError } from './errors.js';
import { boundJktOf, type DpopProver, htuOf } from './dpop.js';
import type { Hold } from './lock.js';
import { isRefreshedPair } from './pair.js';
import { sleep } from './state.js';
import type { SignedOutReason, TokenPair } from './types.js';

/**
 * Retries of one refresh stop this long after its first attempt: inside Rotor's default 10 s grace
 * window, so that a retry after a lost answer gets the same successor instead of being taken for reuse.
 */
const RETRY_WINDOW_MS = 8000;
const TERMINAL: Record<string, SignedOutReason> = {
  reused: 'reused', revoked: 'revoked', expired: 'expired', subject_disabled: 'subject_disabled',
  unknown: 'invalid', malformed: 'invalid', wrong_app: 'invalid', binding_mismatch: 'invalid', subject_not_found: 'invalid',
};

export interface TransportOptions {
  /** The Rotor server, without a trailing slash. */
  base: string;
  fetch: typeof fetch;
  timeoutMs: number;
  retries: number;
  /** With `dpop: true`: the prover of this origin's key; null without. */
  prover: DpopProver | null;
}

export class Transport {
  /** The latest `DPoP-Nonce` Rotor sent (RFC 9449 §8), from any answer or any context's stored pair. */
  nonce: string | undefined;
  /** Nonces resource servers asked for (RFC 9449 §9), by origin. */
  private readonly resourceNonces = new Map<string, string>();
  private readonly base: string;
  private readonly doFetch: typeof fetch;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly prover: DpopProver | null;
  private readonly refreshUrl: string;

  constructor(options: TransportOptions) {
    this.base = options.base;
    this.doFetch = options.fetch;
    this.timeoutMs = options.timeoutMs;
    this.retries = options.retries;
    this.prover = options.prover;
    this.refreshUrl = htuOf(`${this.base}/v1/refresh`);
  }


  /**
   * POST /v1/refresh, retrying transient failures with backoff (and Retry-After). With DPoP, every
   * attempt carries a fresh proof, and a `use_dpop_nonce` refusal is retried once with Rotor's nonce.
   */
  async redeem(refreshToken: string, hold: Hold, nonceSeed: string | undefined): Promise<{ pair: TokenPair; nonce: string | undefined }> {
    const first = Date.now();
    let nonce = nonceSeed;
    let nonceRetried = false;
    for (let attempt = 0; ; attempt += 1) {
      if (hold.lost && attempt > 0) throw new RotorClientError('transient', 'the refresh lock was taken over by another tab');
      const headers: Record<string, string> = this.prover ? { DPoP: await this.prover.proof('POST', this.refreshUrl, { nonce }) } : {};
      let failure: RotorClientError;
      try {
        const res = await this.post('/v1/refresh', { refreshToken }, headers);
        const offered = res.headers.get('dpop-nonce') ?? undefined;
        if (offered) nonce = this.nonce = offered;
        if (res.ok) return { pair: await refreshedPairOf(res), nonce: offered };
        failure = await this.failureOf(res);
        if (failure.details.code === 'use_dpop_nonce' && this.prover && offered && !nonceRetried) {
          nonceRetried = true;
          attempt -= 1; // not a failure: the same attempt, now with the nonce
          continue;
        }
      } catch (err) {
        failure = err instanceof RotorClientError ? err : new RotorClientError('transient', 'Rotor could not be reached', { cause: err });
      }
      if (failure.kind !== 'transient' || attempt >= this.retries) throw failure;
      const backoff = Math.min(4000, 250 * 2 ** attempt) * (0.5 + Math.random() / 2);
      const wait = failure.details.retryAfter !== undefined ? failure.details.retryAfter * 1000 : backoff;
      if (Date.now() + wait - first > RETRY_WINDOW_MS) throw failure;
      await sleep(wait);
    }
  }

  /** Rotor's problem+json answer as a typed error: terminal reasons end the session, 5xx/429 are transient. */
  private async failureOf(res: Response): Promise<RotorClientError> {
    let problem: { code?: unknown; detail?: unknown } = {};
    try {
      problem = (await res.json()) as typeof problem;
    } catch {
      // not JSON: judged by its status
    }
    const code = typeof problem.code === 'string' ? problem.code : undefined;
    const detail = typeof problem.detail === 'string' ? problem.detail : undefined;
    const retryAfter = Number(res.headers.get('retry-after'));
    if (res.status === 429 || res.status >= 500) {
      return new RotorClientError('transient', `Rotor answered ${res.status}`, { status: res.status, code, retryAfter: Number.isFinite(retryAfter) && retryAfter >= 0 ? retryAfter : undefined });
    }
    const reason = code === 'subject_disabled' ? 'subject_disabled' : code === 'invalid_refresh_token' && detail ? TERMINAL[detail] : undefined;
    if (reason) return new RotorClientError('signed_out', `the session has ended (${reason})`, { status: res.status, code, reason });
    const hint = code === 'invalid_dpop_proof' && !this.prover ? ': the session is bound to a DPoP key; create the client with dpop: true' : '';
    return new RotorClientError('refused', `Rotor refused the refresh: ${code ?? res.status}${detail ? ` (${detail})` : ''}${hint}`, { status: res.status, code, reason: detail });
  }

  /**
   * An `invalid_dpop_proof` for a session bound to another key than this origin's (its access token
   * names another `cnf.jkt`, or Rotor says so) can never be refreshed here: the session is over for this
   * client (`invalid`). Any other refusal (a clock far off, a wrong baseUrl) keeps the session.
   */
  async boundElsewhere(err: unknown, accessToken: string | undefined): Promise<unknown> {
    if (!this.prover || !(err instanceof RotorClientError) || err.details.code !== 'invalid_dpop_proof') return err;
    const bound = boundJktOf(accessToken);
    const ours = await this.prover.key().then((key) => key.jkt, () => undefined);
    const elsewhere = (bound !== undefined && ours !== undefined && bound !== ours) || /bound to/.test(err.reason ?? '');
    if (!elsewhere) return err;
    return new RotorClientError('signed_out', 'the session has ended (invalid): it is bound to another DPoP key than this origin\'s', {
      status: err.status, code: 'invalid_dpop_proof', reason: 'invalid',
    });
  }

  async post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.timeoutMs);
    try {
      return await this.doFetch(`${this.base}${path}`, {
        method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body),
        // A redirect (an edge rule, a moved domain) would carry the refresh token to wherever it points.
        credentials: 'omit', redirect: 'error', signal: controller.signal,
      });
    } catch (err) {
      throw new RotorClientError('transient', controller.signal.aborted ? `Rotor did not answer within ${this.timeoutMs} ms` : 'Rotor could not be reached', { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }

  /** The request (a copy: it may be sent again) with the token, and for a DPoP token a proof of this request. */
  async send(request: Request, token: string, type: string): Promise<Response> {
    const headers = new Headers(request.headers);
    if (this.prover && type.toLowerCase() === 'dpop') {
      const ath = await this.prover.ath(token);
      const nonce = this.resourceNonces.get(new URL(request.url).origin);
      headers.set('Authorization', `DPoP ${token}`);
      headers.set('DPoP', await this.prover.proof(request.method, htuOf(request.url), { nonce, ath }));
    } else {
      headers.set('Authorization', `${type} ${token}`);
    }
    const res = await this.doFetch(new Request(request.clone(), { headers }));
    const offered = res.headers.get('dpop-nonce');
    if (offered && this.prover) this.resourceNonces.set(new URL(request.url).origin, offered);
    return res;
  }

  /** A 401 `use_dpop_nonce` from a resource server, answered with a new nonce (RFC 9449 §9). */
  nonceChallenged(request: Request, res: Response): boolean {
    if (!this.prover || !res.headers.get('dpop-nonce')) return false;
    return /use_dpop_nonce/.test(res.headers.get('www-authenticate') ?? '') && this.resourceNonces.has(new URL(request.url).origin);
  }
}

/**
 * The pair a 2xx answer to a refresh holds. Anything else is transient, like a network failure, and the
 * stored pair is kept (F4-03): a captive portal, a proxy's or WAF's block page, or a wrong baseUrl can
 * answer 200 with HTML or with JSON of its own, and taking that for a pair would drop the refresh token
 * and sign the user out of a session that still lives at Rotor.
 */
async function refreshedPairOf(res: Response): Promise<TokenPair> {
  const body: unknown = await res.json().catch(() => undefined);
  if (isRefreshedPair(body)) return body;
  throw new RotorClientError('transient', `Rotor's ${res.status} answer is not a TokenPair (a proxy or captive portal, or a wrong baseUrl?)`, { status: res.status });
}
