import type { FastifyReply } from 'fastify';
import type { Issued } from '../../domain/engine.js';
import type { RotorError } from '../../domain/errors.js';

/** floLIVE's paged envelope around a successful renewal (SPEC §4.4). */
export function renewed(issued: Issued): Record<string, unknown> {
  return {
    errorCode: '',
    errorMessage: '',
    content: [{ token: issued.accessToken, refreshToken: issued.refreshToken, validityTime: issued.expiresIn }],
    pageable: { page: 0, size: 10, totalPages: 1, totalElements: 1 },
  };
}

/** Every refusal of a token, whatever the reason, is the same `AUTH_1002` answer: nothing to probe. */
const TOKEN_REFUSALS = new Set([
  'invalid_access_token', 'invalid_refresh_token', 'subject_disabled', 'subject_not_found', 'invalid_credentials', 'unauthorized',
]);

function envelopeOf(err: RotorError): { status: number; errorCode: string; errorMessage: string } {
  if (TOKEN_REFUSALS.has(err.code)) return { status: 401, errorCode: 'AUTH_1002', errorMessage: 'Invalid token' };
  switch (err.code) {
    case 'invalid_request':
      return { status: 400, errorCode: 'REQ_1001', errorMessage: err.detail };
    case 'unsupported_media_type':
      return { status: 400, errorCode: 'REQ_1001', errorMessage: 'The request body must be JSON (Content-Type: application/json)' };
    case 'payload_too_large':
      return { status: 413, errorCode: 'REQ_1001', errorMessage: err.detail };
    case 'app_not_found':
      return { status: 404, errorCode: 'REQ_1004', errorMessage: 'Unknown app' };
    case 'store_unavailable':
      return { status: 503, errorCode: 'SYS_1003', errorMessage: 'Service temporarily unavailable, retry shortly' };
    default:
      return err.status < 500
        ? { status: err.status, errorCode: 'REQ_1001', errorMessage: err.detail }
        : { status: 500, errorCode: 'SYS_1000', errorMessage: 'Internal error' };
  }
}

/** floLIVE's error envelope: `content` and `pageable` are empty strings on errors. */
export function sendFloliveError(reply: FastifyReply, err: RotorError): FastifyReply {
  const { status, errorCode, errorMessage } = envelopeOf(err);
  return reply
    .code(status)
    .header('Cache-Control', 'no-store')
    .header('Content-Type', 'application/json; charset=utf-8')
    .send(JSON.stringify({ errorCode, errorMessage, content: '', pageable: '' }));
}
