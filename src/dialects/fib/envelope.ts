import type { FastifyReply } from 'fastify';
import type { Issued } from '../../domain/engine.js';
import type { RotorError } from '../../domain/errors.js';

const OK = { code: 200, name: 'OK' };

/** FIB's body for a login or a renewal (SPEC §4.4). */
export function sessionBody(issued: Issued): Record<string, unknown> {
  return {
    status: OK,
    data: { accessToken: issued.accessToken, refreshToken: issued.refreshToken, expirationTime: issued.expiresIn },
  };
}

export const loggedOut = { status: OK, data: {} };

/**
 * FIB's words for its login 422, whichever the cause: a signature that cannot be decoded or does not
 * verify, or an `authPublicKeyHex` that is not valid (its API specification, "Authorizing a user").
 */
export const UNPROCESSABLE_LOGIN = 'User signature either could not be decoded or verified, or the authPublicKeyHex string is not valid.';

const NAMES: Record<number, string> = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHORIZED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  409: 'CONFLICT',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  422: 'UNPROCESSABLE_ENTITY',
  429: 'TOO_MANY_REQUESTS',
  500: 'INTERNAL_SERVER_ERROR',
  503: 'SERVICE_UNAVAILABLE',
};

function statusOf(err: RotorError): { code: number; message: string } {
  // A deleted (or never known) subject is 404, whether its token or its login says so.
  if (err.code === 'subject_not_found' || err.reason === 'subject_not_found') return { code: 404, message: 'Subject not found' };
  switch (err.code) {
    case 'invalid_refresh_token':
    case 'invalid_access_token':
      return { code: 401, message: 'Invalid or expired token' };
    case 'unauthorized':
      return { code: 401, message: err.detail };
    case 'subject_disabled':
      return { code: 401, message: 'Subject is disabled' };
    case 'invalid_credentials':
      return { code: 422, message: UNPROCESSABLE_LOGIN };
    case 'app_not_found':
      return { code: 404, message: 'App not found' };
    case 'invalid_request':
    case 'unsupported_media_type':
      return { code: 400, message: err.detail };
    case 'store_unavailable':
      return { code: 503, message: 'Service temporarily unavailable, retry shortly' };
    default:
      return err.status < 500 ? { code: err.status, message: err.detail } : { code: 500, message: 'Internal error' };
  }
}

/** `{"status":{"code","name","message"},"data":null}`. */
export function sendFibError(reply: FastifyReply, err: RotorError): FastifyReply {
  const { code, message } = statusOf(err);
  return reply
    .code(code)
    .header('Cache-Control', 'no-store')
    .header('Content-Type', 'application/json; charset=utf-8')
    .send(JSON.stringify({ status: { code, name: NAMES[code] ?? 'ERROR', message }, data: null }));
}
