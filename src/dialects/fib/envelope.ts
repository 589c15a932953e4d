import type { FastifyReply } from 'fastify';
import type { Issued } from '../../domain/engine.js';
import type { RotorError } from '../../domain/errors.js';
import { sendJson } from '../../http/reply.js';

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

/** FIB's words for what is missing, where it names it. */
const NOT_FOUND: Partial<Record<RotorError['code'], string>> = { subject_not_found: 'Subject not found', app_not_found: 'App not found' };

function statusOf(err: RotorError): { code: number; message: string } {
  // A deleted (or never known) subject is 404, whether its token (a refusal) or its login says so.
  if (err.reason === 'subject_not_found') return { code: 404, message: 'Subject not found' };
  switch (err.kind) {
    case 'refused':
      if (err.code === 'subject_disabled') return { code: 401, message: 'Subject is disabled' };
      return { code: 401, message: 'Invalid or expired token' };
    case 'client_auth':
      return err.code === 'invalid_credentials' ? { code: 422, message: UNPROCESSABLE_LOGIN } : { code: 401, message: err.detail };
    case 'not_found':
      return { code: 404, message: NOT_FOUND[err.code] ?? err.detail };
    case 'bad_input':
      // FIB answers a body it cannot read as a bad request, whatever its media type.
      return { code: err.code === 'unsupported_media_type' ? 400 : err.status, message: err.detail };
    case 'unavailable':
      return { code: 503, message: 'Service temporarily unavailable, retry shortly' };
    case 'internal':
      return { code: 500, message: 'Internal error' };
    case 'conflict':
    case 'forbidden':
    case 'rate_limited':
      return { code: err.status, message: err.detail };
  }
}

/** `{"status":{"code","name","message"},"data":null}`. */
export function sendFibError(reply: FastifyReply, err: RotorError): FastifyReply {
  const { code, message } = statusOf(err);
  return sendJson(reply.header('Cache-Control', 'no-store'), code, { status: { code, name: NAMES[code] ?? 'ERROR', message }, data: null });
}
