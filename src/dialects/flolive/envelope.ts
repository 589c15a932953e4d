import type { FastifyReply } from 'fastify';
import type { Issued } from '../../domain/engine.js';
import type { RotorError } from '../../domain/errors.js';
import { sendJson } from '../../http/reply.js';

/** floLIVE's paged envelope around a successful renewal (SPEC §4.4). */
export function renewed(issued: Issued): Record<string, unknown> {
  return {
    errorCode: '',
    errorMessage: '',
    content: [{ token: issued.accessToken, refreshToken: issued.refreshToken, validityTime: issued.expiresIn }],
    pageable: { page: 0, size: 10, totalPages: 1, totalElements: 1 },
  };
}

const TOKEN_REFUSAL = { status: 401, errorCode: 'AUTH_1002', errorMessage: 'Invalid token' };

function envelopeOf(err: RotorError): { status: number; errorCode: string; errorMessage: string } {
  switch (err.kind) {
    case 'refused':
      // Every refusal of a token, whatever the reason, is the same `AUTH_1002` answer: nothing to probe.
      return TOKEN_REFUSAL;
    case 'client_auth':
      // A confidential app's token presented without its app key is a request error, not a token's.
      return err.code === 'invalid_app_key' ? { status: err.status, errorCode: 'REQ_1001', errorMessage: err.detail } : TOKEN_REFUSAL;
    case 'not_found':
      return { status: 404, errorCode: 'REQ_1004', errorMessage: 'Unknown app' };
    case 'bad_input':
      if (err.code === 'unsupported_media_type') {
        return { status: 400, errorCode: 'REQ_1001', errorMessage: 'The request body must be JSON (Content-Type: application/json)' };
      }
      return { status: err.status, errorCode: 'REQ_1001', errorMessage: err.detail };
    case 'unavailable':
      return { status: 503, errorCode: 'SYS_1003', errorMessage: 'Service temporarily unavailable, retry shortly' };
    case 'internal':
      return { status: 500, errorCode: 'SYS_1000', errorMessage: 'Internal error' };
    case 'conflict':
    case 'forbidden':
    case 'rate_limited':
      return { status: err.status, errorCode: 'REQ_1001', errorMessage: err.detail };
  }
}

/** floLIVE's error envelope: `content` and `pageable` are empty strings on errors. */
export function sendFloliveError(reply: FastifyReply, err: RotorError): FastifyReply {
  const { status, errorCode, errorMessage } = envelopeOf(err);
  return sendJson(reply.header('Cache-Control', 'no-store'), status, { errorCode, errorMessage, content: '', pageable: '' });
}
