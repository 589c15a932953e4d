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
  internal_error: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

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
    this.status = ERROR_CODES[code];
    this.detail = detail;
    this.reason = options.reason;
    this.retryAfter = options.retryAfter ?? (code === 'store_unavailable' ? 1 : undefined);
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
