import { RotorError, isRotorError } from '../domain/errors.js';

/**
 * Turns anything thrown while handling a request into a catalogue error. Fastify's own client errors
 * (bad JSON, body too large, wrong content type) become 4xx; an unexpected error becomes
 * `internal_error`, whose detail says nothing about its cause.
 */
export function toRotorError(err: unknown): RotorError {
  if (isRotorError(err)) return err;
  const e = err as { code?: unknown; statusCode?: unknown; message?: unknown };
  const code = typeof e.code === 'string' ? e.code : '';
  const status = typeof e.statusCode === 'number' ? e.statusCode : 500;
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE' || status === 413) return new RotorError('payload_too_large', 'the request body is larger than 64 KiB');
  if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' || status === 415) {
    return new RotorError('unsupported_media_type', 'this endpoint takes application/json (OAuth endpoints: application/x-www-form-urlencoded)');
  }
  if (code === 'FST_ERR_CTP_EMPTY_JSON_BODY') return new RotorError('invalid_request', 'the request body is empty');
  if (code === 'FST_ERR_CTP_INVALID_JSON_BODY' || code.startsWith('FST_ERR_CTP') || err instanceof SyntaxError) {
    return new RotorError('invalid_request', 'the request body is not valid JSON');
  }
  if (code === 'FST_ERR_VALIDATION') return new RotorError('invalid_request', 'the request does not match the expected shape');
  if (status >= 400 && status < 500) return new RotorError('invalid_request', 'the request is malformed');
  return new RotorError('internal_error', 'an unexpected error occurred; it has been logged');
}

/** True for errors that deserve an error-level log line (everything a client could not have caused). */
export const isServerFault = (err: RotorError): boolean => err.kind === 'internal';
