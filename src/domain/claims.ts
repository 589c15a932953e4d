import { invalidRequest } from './errors.js';
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
    if (FORBIDDEN_KEYS.has(key)) throw invalidRequest(`${field} may not contain the key "${key}"`);
  }
  if (Buffer.byteLength(JSON.stringify(claims)) > MAX_CLAIMS_BYTES) throw invalidRequest(`${field} must be at most 8 KiB of JSON`);
  return claims;
}

/** A subject id: 1–255 characters, no control characters. */
export function validateSubject(value: unknown, field = 'subject'): string {
  // eslint-disable-next-line no-control-regex
  if (typeof value !== 'string' || value.length === 0 || value.length > 255 || /[\u0000-\u001f\u007f]/.test(value)) {
    throw invalidRequest(`${field} must be a string of 1 to 255 printable characters`);
  }
  return value;
}

/** Optional short strings such as ip and user agent. */
export function optionalText(value: unknown, field: string, max = 512): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string' || value.length > max) throw invalidRequest(`${field} must be a string of at most ${max} characters`);
  return value;
}
