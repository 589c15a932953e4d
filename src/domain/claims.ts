import { isIP } from 'node:net';
import { invalidRequest } from './errors.js';
import { hasIllFormedText, wellFormed } from './text.js';
import type { JsonObject } from './types.js';

const MAX_CLAIMS_BYTES = 8 * 1024;
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** Caller-supplied claims: a JSON object, small, and free of every reserved claim (SPEC §2.7). */
export function validateClaims(value: unknown, reserved: ReadonlySet<string>, field = 'claims'): JsonObject {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw invalidRequest(`${field} must be a JSON object`);
  const claims = value as JsonObject;
  for (const key of Object.keys(claims)) {
    if (reserved.has(key)) throw invalidRequest(`${field} may not set the reserved claim "${key}"`);
  }
  const forbidden = forbiddenKey(claims, 0);
  if (forbidden !== null) throw invalidRequest(`${field} may not contain the key "${forbidden}" at any depth`);
  wellFormed(claims, field);
  // JSON has no infinity: `1e400` parses to one, and the token would carry null for it (H-08).
  if (hasNonFinite(claims, 0)) throw invalidRequest(`${field} may not contain a number JSON cannot hold (such as 1e400)`);
  if (Buffer.byteLength(JSON.stringify(claims)) > MAX_CLAIMS_BYTES) throw invalidRequest(`${field} must be at most 8 KiB of JSON`);
  return claims;
}

/**
 * The first prototype-polluting key at any depth (S2-10): a body parser refuses them already, but claims
 * also arrive from the CLI and the store, and they end up in signed tokens.
 */
function forbiddenKey(value: unknown, depth: number): string | null {
  if (value === null || typeof value !== 'object' || depth > 64) return depth > 64 ? 'nesting deeper than 64' : null;
  for (const key of Object.keys(value)) {
    if (FORBIDDEN_KEYS.has(key)) return key;
    const inner = forbiddenKey((value as Record<string, unknown>)[key], depth + 1);
    if (inner !== null) return inner;
  }
  return null;
}

function hasNonFinite(value: unknown, depth: number): boolean {
  if (typeof value === 'number') return !Number.isFinite(value);
  if (value === null || typeof value !== 'object' || depth > 64) return false;
  return Object.values(value).some((inner) => hasNonFinite(inner, depth + 1));
}

/** Whether `value` can be a subject id: 1–255 characters, no control characters, no lone surrogate. */
export function isSubjectId(value: unknown): value is string {
  // eslint-disable-next-line no-control-regex
  return typeof value === 'string' && value.length > 0 && value.length <= 255 && !/[\u0000-\u001f\u007f]/.test(value) && !hasIllFormedText(value);
}

/** A subject id: 1–255 characters, no control characters, no lone surrogate. */
export function validateSubject(value: unknown, field = 'subject'): string {
  if (hasIllFormedText(value)) wellFormed(value, field); // named as such; a NUL is a control character below
  if (!isSubjectId(value)) throw invalidRequest(`${field} must be a string of 1 to 255 printable characters`);
  return value;
}

/** Optional short strings such as ip and user agent. */
export function optionalText(value: unknown, field: string, max = 512): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string' || value.length > max) throw invalidRequest(`${field} must be a string of at most ${max} characters`);
  return wellFormed(value, field);
}

/** SPEC §2.4: the longest user agent a session records. */
export const MAX_USER_AGENT = 512;

export interface ClientValues {
  ip: string | null;
  userAgent: string | null;
}

/**
 * An IP address as a session records it. Node's isIP accepts an IPv6 zone (`fe80::1%eth0`), which names
 * an interface of whoever wrote it, not a client: not an address here.
 */
const isAddress = (value: unknown): value is string => typeof value === 'string' && isIP(value) !== 0 && !value.includes('%');

/**
 * The ip and user agent a caller holding the app key names for its client (SPEC §2.4): an ip must be
 * an IP address and a user agent at most 512 characters, or the request is refused.
 */
export function callerClient(ip: unknown, userAgent: unknown): ClientValues {
  if (ip !== undefined && ip !== null && !isAddress(ip)) throw invalidRequest('ip must be an IPv4 or IPv6 address');
  return { ip: (ip as string | null | undefined) ?? null, userAgent: optionalText(userAgent, 'userAgent', MAX_USER_AGENT) };
}

/**
 * What is recorded for a client, whoever supplied it: anything that is not an IP address is dropped
 * and a user agent is cut to 512 characters, so no path can store more (S2-06).
 */
export function recordableClient(client: { ip?: unknown; userAgent?: unknown } | undefined): ClientValues {
  const ip = isAddress(client?.ip) ? client.ip : null;
  const userAgent = typeof client?.userAgent === 'string' ? client.userAgent.slice(0, MAX_USER_AGENT) : null;
  return { ip, userAgent };
}
