import type { FastifyRequest } from 'fastify';
import type { DpopInput } from '../domain/engine.js';

/**
 * The credential of an `Authorization: <scheme> <credential>` header. Schemes compare
 * case-insensitively; anything else (two headers, extra spaces, trailing parts) yields null.
 */
export function authorizationCredential(request: FastifyRequest, scheme: string): string | null {
  const header = singleAuthorization(request);
  if (header === null) return null;
  const space = header.indexOf(' ');
  if (space <= 0 || header.slice(0, space).toLowerCase() !== scheme.toLowerCase()) return null;
  const credential = header.slice(space + 1);
  return credential.length > 0 && !/\s/.test(credential) ? credential : null;
}

/**
 * The one Authorization header of a request. Node keeps only the first of several, so the raw header
 * list is consulted: two Authorization headers are ambiguous and count as none (H-12).
 */
export function singleAuthorization(request: FastifyRequest): string | null {
  const header = request.headers.authorization;
  if (typeof header !== 'string') return null;
  let seen = 0;
  const raw = request.raw.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) if ((raw[i] as string).length === 13 && (raw[i] as string).toLowerCase() === 'authorization') seen += 1;
  return seen === 1 ? header : null;
}

/**
 * A credential sent raw or `Bearer `-prefixed (any case) in the one Authorization header, as several
 * dialects accept; null when absent, empty, doubled or containing whitespace.
 */
export function rawOrBearerCredential(request: FastifyRequest): string | null {
  const header = singleAuthorization(request);
  if (header === null) return null;
  const credential = header.trim().replace(/^bearer\s+/i, '');
  return credential.length > 0 && !/\s/.test(credential) ? credential : null;
}

export function basicCredentials(request: FastifyRequest): { user: string; password: string } | null {
  const encoded = authorizationCredential(request, 'Basic');
  if (!encoded || !/^[A-Za-z0-9+/]+={0,2}$/.test(encoded)) return null;
  const decoded = Buffer.from(encoded, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return null;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** Fields of a JSON or form body, or an empty object when there is none. */
export function bodyOf(request: FastifyRequest): Record<string, unknown> {
  const body = request.body;
  return body !== null && typeof body === 'object' && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
}

/**
 * The request's DPoP proof as the engine checks it (RFC 9449): the one `DPoP` header (two of them are
 * ambiguous: an empty proof, which fails), the method, and the URI a proof must name — ROTOR_ISSUER and
 * the route's path, never the Host header.
 */
export function dpopInput(request: FastifyRequest, issuer: string, path: string): DpopInput {
  let seen = 0;
  const raw = request.raw.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) if ((raw[i] as string).toLowerCase() === 'dpop') seen += 1;
  const header = request.headers.dpop;
  const proof = seen === 0 ? null : seen === 1 && typeof header === 'string' ? header : '';
  return { proof, htm: request.method, htu: `${issuer}${path}` };
}
