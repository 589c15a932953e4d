import type { FastifyReply } from 'fastify';
import type { RotorError } from '../../domain/errors.js';
import { sendJson } from '../../http/reply.js';

const MONTHS = [
  'January', 'February', 'March', 'April', 'May', 'June',
  'July', 'August', 'September', 'October', 'November', 'December',
];

/** Verifik's signature time, in UTC: `August 31, 2022 3:24 PM`. */
export function signatureDateTime(ms: number): string {
  const d = new Date(ms);
  const hours = d.getUTCHours();
  const hour12 = hours % 12 === 0 ? 12 : hours % 12;
  const minutes = String(d.getUTCMinutes()).padStart(2, '0');
  return `${MONTHS[d.getUTCMonth()]} ${d.getUTCDate()}, ${d.getUTCFullYear()} ${hour12}:${minutes} ${hours < 12 ? 'AM' : 'PM'}`;
}

/** Restify-style error codes, as Verifik's API answers them, for the catalogue's other statuses. */
const RESTIFY_CODES: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  409: 'Conflict',
  413: 'PayloadTooLarge',
  415: 'UnsupportedMediaType',
  429: 'TooManyRequests',
  500: 'InternalServer',
  503: 'ServiceUnavailable',
};

export interface VerifikErrorOptions {
  /** The signature of 401 bodies: the time is the request's, the message configurable. */
  now: number;
  signatureMessage: string;
}

function send(reply: FastifyReply, status: number, body: unknown): FastifyReply {
  return sendJson(reply.header('Cache-Control', 'no-store'), status, body);
}

/**
 * SPEC §4.4 verifik errors: a missing header or bad parameter is 409 `MissingParameter`; any token
 * that is not a live access token of a verifik app is 401 with Verifik's signed body. Other failures
 * (store unavailable, body too large) keep Verifik's `{code, message}` shape.
 */
export function renderVerifikError(err: RotorError, reply: FastifyReply, options: VerifikErrorOptions): FastifyReply {
  switch (err.kind) {
    case 'refused':
    case 'client_auth':
      return send(reply, 401, {
        code: 'Unauthorized',
        message: 'Invalid or expired token.',
        signature: { dateTime: signatureDateTime(options.now), message: options.signatureMessage },
      });
    case 'bad_input':
      if (err.code === 'invalid_request') return send(reply, 409, { code: 'MissingParameter', message: err.detail });
      return send(reply, err.status, { code: RESTIFY_CODES[err.status] ?? 'InternalServer', message: err.detail });
    case 'internal':
      return send(reply, 500, { code: 'InternalServer', message: 'Internal error.' });
    case 'not_found':
    case 'conflict':
    case 'forbidden':
    case 'rate_limited':
    case 'unavailable':
      return send(reply, err.status, { code: RESTIFY_CODES[err.status] ?? 'InternalServer', message: err.detail });
  }
}
