/**
 * `no_session`: nothing was set. `signed_out`: the session ended (`reason`). `transient`: Rotor could not
 * be reached or answered 5xx/429, retries included; the session is kept, try again later. `refused`:
 * Rotor refused the call for a reason that does not end the session (a configuration or client error).
 */
export type RotorClientErrorKind = 'no_session' | 'signed_out' | 'transient' | 'refused';

export class RotorClientError extends Error {
  override readonly name = 'RotorClientError';
  constructor(
    readonly kind: RotorClientErrorKind,
    message: string,
    readonly details: { reason?: string; status?: number; code?: string; retryAfter?: number; cause?: unknown } = {},
  ) {
    super(message);
  }
  get reason(): string | undefined {
    return this.details.reason;
  }
  get status(): number | undefined {
    return this.details.status;
  }
}
