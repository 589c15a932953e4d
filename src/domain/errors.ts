/**
 * The one catalogue of stable error codes. Each API maps these onto its own envelope;
 * `detail` is safe to send to a client and never contains a token, key or secret.
 */
export const ERROR_CODES = {
  invalid_request: 400,
  invalid_app_key: 401,
  unauthorized: 401,
  invalid_credentials: 401,
  app_not_found: 404,
  not_found: 404,
  conflict: 409,
  invalid_refresh_token: 400,
  invalid_access_token: 401,
  invalid_scope: 400,
  subject_disabled: 403,
  /** A browser request whose `Origin` is not allowed for the app concerned (SPEC §2.11, §4.6): nothing was consumed. */
  origin_not_allowed: 403,
  /** DPoP (RFC 9449): a proof that is missing where required, malformed, forged, replayed or by another key. Nothing consumed. */
  invalid_dpop_proof: 401,
  /** DPoP: the app demands a server nonce; the answer carries a fresh one in `DPoP-Nonce`. Nothing consumed. */
  use_dpop_nonce: 401,
  subject_not_found: 404,
  payload_too_large: 413,
  unsupported_media_type: 415,
  method_not_allowed: 405,
  rate_limited: 429,
  store_unavailable: 503,
  /** Too much work waiting (DPoP proofs to check): nothing was consumed; retry after `Retry-After`. */
  server_busy: 503,
  internal_error: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/**
 * What kind of failure a code is: the first thing every envelope maps (then, only where a peer's
 * answers distinguish two codes of one kind, the code within it).
 * - `refused`: a presented token (or its DPoP proof, or the subject behind it) is not honoured.
 * - `client_auth`: the caller did not prove who it is (app key, admin token, a subject's login).
 * - `bad_input`: the request itself is wrong (shape, size, media type, method, scope).
 * - `not_found`: what the request names does not exist (app, subject, session, endpoint).
 * - `conflict`: the request contradicts what exists (an app name taken).
 * - `forbidden`: known, but not allowed from here (a browser origin): neither bad input nor a bad token.
 * - `rate_limited`: too many requests; retry later.
 * - `unavailable`: the store cannot be reached, or the server is too busy; retry shortly (nothing is
 *   known about the token, and nothing was consumed).
 * - `internal`: a fault of Rotor's own.
 */
export type ErrorKind =
  | 'refused' | 'client_auth' | 'bad_input' | 'not_found' | 'conflict' | 'forbidden' | 'rate_limited' | 'unavailable' | 'internal';

export const ERROR_KINDS: { readonly [C in ErrorCode]: ErrorKind } = {
  invalid_request: 'bad_input',
  invalid_app_key: 'client_auth',
  unauthorized: 'client_auth',
  invalid_credentials: 'client_auth',
  app_not_found: 'not_found',
  not_found: 'not_found',
  conflict: 'conflict',
  invalid_refresh_token: 'refused',
  invalid_access_token: 'refused',
  invalid_scope: 'bad_input',
  subject_disabled: 'refused',
  origin_not_allowed: 'forbidden',
  invalid_dpop_proof: 'refused',
  use_dpop_nonce: 'refused',
  subject_not_found: 'not_found',
  payload_too_large: 'bad_input',
  unsupported_media_type: 'bad_input',
  method_not_allowed: 'bad_input',
  rate_limited: 'rate_limited',
  store_unavailable: 'unavailable',
  server_busy: 'unavailable',
  internal_error: 'internal',
};

/** Why a refresh token was refused; `detail` of `invalid_refresh_token`. */
export type RefreshRefusal =
  | 'expired'
  | 'not_yet_valid'
  | 'reused'
  | 'revoked'
  | 'unknown'
  | 'malformed'
  | 'wrong_app'
  | 'binding_mismatch'
  | 'subject_disabled'
  | 'subject_not_found';

export class RotorError extends Error {
  readonly code: ErrorCode;
  readonly kind: ErrorKind;
  readonly status: number;
  readonly detail: string;
  /** A machine-readable sub-reason (e.g. `reused`), never sent where the envelope has no room. */
  readonly reason: string | undefined;
  /** Seconds after which a retry may succeed (503, 429): sent as `Retry-After`. */
  readonly retryAfter: number | undefined;
  /** Response headers the refusal needs whatever the envelope (`WWW-Authenticate`, `DPoP-Nonce`). */
  readonly headers: Readonly<Record<string, string>>;

  constructor(code: ErrorCode, detail: string, options: { reason?: string; cause?: unknown; retryAfter?: number; headers?: Record<string, string> } = {}) {
    super(`${code}: ${detail}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RotorError';
    this.code = code;
    this.kind = ERROR_KINDS[code];
    this.status = ERROR_CODES[code];
    this.detail = detail;
    this.reason = options.reason;
    this.retryAfter = options.retryAfter ?? (ERROR_KINDS[code] === 'unavailable' ? 1 : undefined);
    this.headers = options.headers ?? {};
  }
}

export function invalidRefreshToken(reason: RefreshRefusal): RotorError {
  return new RotorError('invalid_refresh_token', reason, { reason });
}

export function invalidAccessToken(reason: string): RotorError {
  return new RotorError('invalid_access_token', reason, { reason });
}

export function invalidRequest(detail: string): RotorError {
  return new RotorError('invalid_request', detail);
}

/** Too much waiting to be done now (503 with Retry-After); nothing was consumed. */
export function serverBusy(detail: string): RotorError {
  return new RotorError('server_busy', detail);
}

/** Thrown by stores when the database cannot be reached or refuses writes; maps to 503. */
export class StoreUnavailableError extends RotorError {
  constructor(cause?: unknown) {
    super('store_unavailable', 'the token store is unavailable; retry shortly', { cause });
    this.name = 'StoreUnavailableError';
  }
}

export function isRotorError(err: unknown): err is RotorError {
  return err instanceof RotorError;
}
