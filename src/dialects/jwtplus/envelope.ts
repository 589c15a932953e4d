import type { FastifyReply } from 'fastify';
import { RotorError } from '../../domain/errors.js';
import { sendJson } from '../../http/reply.js';

/**
 * JSON exactly as Go's encoding/json (gin's `c.JSON`) writes it: `<`, `>`, `&`, U+2028 and U+2029
 * are escaped, so bodies compare byte for byte with JWTPlus's own.
 */
export function goJson(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export function sendGo(reply: FastifyReply, status: number, body: unknown): FastifyReply {
  return sendJson(reply, status, body, goJson);
}

export interface FieldError {
  error_field: string;
  error_message: string;
}

/** A JWTPlus answer decided by the dialect itself (validation, app authentication), body and all. */
export class JwtPlusError extends RotorError {
  constructor(readonly httpStatus: number, readonly body: unknown, detail: string) {
    super(httpStatus === 403 ? 'invalid_app_key' : 'invalid_request', detail);
    this.name = 'JwtPlusError';
  }
}

export const invalidAppId = () => new JwtPlusError(403, { errors: 'invalid app id' }, 'the app id is not a ULID');
export const invalidAppKey = () => new JwtPlusError(403, { errors: 'invalid app key or id' }, 'wrong app key or app id');
export const emptyBody = () => new JwtPlusError(400, { errors: 'empty request body' }, 'empty body');
export const invalidJson = () =>
  new JwtPlusError(400, { errors: { error_field: '', error_message: 'invalid json format' } }, 'invalid json');
export const invalidJsonType = () =>
  new JwtPlusError(400, { errors: { error_field: '', error_message: 'invalid json data type' } }, 'invalid json data type');
export const fieldErrors = (errors: FieldError[]) => new JwtPlusError(400, { errors }, 'field errors');

/**
 * SPEC §4.4 jwtplus errors. Dialect decisions carry their own body; catalogue errors map onto
 * JWTPlus's: any refusal of a refresh token is 404 `invalid refresh token`, app authentication 403,
 * bad input 400 in the field-error shape, and internal failures 500 `{"message":"error"}`
 * (503 with the same body, plus Retry-After, when the store is unreachable).
 */
export function renderJwtPlusError(err: RotorError, reply: FastifyReply, route: string | undefined): FastifyReply {
  reply.header('Cache-Control', 'no-store');
  if (err instanceof JwtPlusError) return sendGo(reply, err.httpStatus, err.body);
  switch (err.kind) {
    case 'refused':
      if (err.code === 'subject_disabled' && !route?.endsWith('/renew')) {
        return sendGo(reply, 400, { errors: [{ error_field: 'sub', error_message: 'This subject is disabled.' }] });
      }
      return sendGo(reply, 404, { message: 'invalid refresh token' });
    case 'client_auth':
      return sendGo(reply, 403, { errors: 'invalid app key or id' });
    case 'not_found':
      // JWTPlus answers an unknown app as a wrong key or id.
      if (err.code === 'app_not_found') return sendGo(reply, 403, { errors: 'invalid app key or id' });
      return sendGo(reply, err.status, { errors: err.detail });
    case 'bad_input':
      if (err.code === 'invalid_request') return sendGo(reply, 400, { errors: [{ error_field: '', error_message: err.detail }] });
      if (err.code === 'payload_too_large') return sendGo(reply, 413, { errors: 'request body too large' });
      return sendGo(reply, err.status, { errors: err.detail });
    case 'unavailable':
      return sendGo(reply, 503, { message: 'error' });
    case 'internal':
      return sendGo(reply, 500, { message: 'error' });
    case 'conflict':
    case 'forbidden':
    case 'rate_limited':
      return sendGo(reply, err.status, { errors: err.detail });
  }
}
