import type { FastifyReply } from 'fastify';
import type { RotorError } from '../domain/errors.js';

const TITLES: Record<string, string> = {
  invalid_request: 'Invalid request',
  invalid_app_key: 'Invalid app key',
  unauthorized: 'Unauthorized',
  invalid_credentials: 'Invalid credentials',
  app_not_found: 'App not found',
  not_found: 'Not found',
  conflict: 'Conflict',
  invalid_refresh_token: 'Invalid refresh token',
  invalid_access_token: 'Invalid access token',
  invalid_scope: 'Invalid scope',
  subject_disabled: 'Subject disabled',
  origin_not_allowed: 'Origin not allowed',
  invalid_dpop_proof: 'Invalid DPoP proof',
  use_dpop_nonce: 'DPoP nonce required',
  subject_not_found: 'Subject not found',
  payload_too_large: 'Payload too large',
  unsupported_media_type: 'Unsupported media type',
  method_not_allowed: 'Method not allowed',
  rate_limited: 'Rate limited',
  store_unavailable: 'Store unavailable',
  server_busy: 'Server busy',
  internal_error: 'Internal error',
};

const JSON_UTF8 = 'application/json; charset=utf-8';

/**
 * A JSON answer as every envelope sends it: status, `application/json; charset=utf-8`, the body
 * serialised by `encode` (a peer's own encoder where its bytes differ, e.g. Go's for JWTPlus).
 * Caching headers are the caller's (set before).
 */
export function sendJson(reply: FastifyReply, status: number, body: unknown, encode: (value: unknown) => string = (v) => JSON.stringify(v)): FastifyReply {
  return reply.code(status).header('Content-Type', JSON_UTF8).send(encode(body));
}

/** Token responses must never be cached (RFC 6749 §5.1). */
export function noStore(reply: FastifyReply): FastifyReply {
  return reply.header('Cache-Control', 'no-store').header('Pragma', 'no-cache');
}

/** A stored time (ms) as the APIs show it: ISO 8601 in UTC, or null. */
export const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** RFC 9457 problem details with Rotor's stable `code`. */
export function sendProblem(reply: FastifyReply, err: RotorError): FastifyReply {
  // A refusal that names its own challenge (DPoP, RFC 9449 §7.1) keeps it.
  if (err.status === 401 && err.headers['WWW-Authenticate'] === undefined) reply.header('WWW-Authenticate', 'Bearer realm="rotor"');
  return reply
    .code(err.status)
    .header('Content-Type', 'application/problem+json; charset=utf-8')
    .header('Cache-Control', 'no-store')
    .send(problemBody(err.code, err.status, err.detail));
}

/** The problem document itself, also written straight to a socket for what fails before routing. */
export function problemBody(code: string, status: number, detail: string): string {
  return JSON.stringify({ type: `urn:rotor:error:${code}`, title: TITLES[code] ?? code, status, code, detail });
}
