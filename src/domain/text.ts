import { invalidRequest } from './errors.js';

/**
 * A lone UTF-16 surrogate (`"\ud800"` in JSON, `'\ud800'` in JavaScript) is no text: stores differ on it
 * (PostgreSQL turns it into U+FFFD, so two subjects become one; Redis's cjson refuses the write). So no
 * text Rotor stores may hold one, whoever writes it: an HTTP API, the library or the CLI (F4-04).
 */

/** With the u flag a surrogate pair is one code point, so this matches only a lone surrogate. */
const LONE_SURROGATE = /\p{Surrogate}/u;

/** Whether any string, key or value, at any depth, holds a lone surrogate. */
export function hasIllFormedText(value: unknown, depth = 0): boolean {
  if (typeof value === 'string') return LONE_SURROGATE.test(value);
  if (value === null || typeof value !== 'object' || depth > 64) return false;
  for (const [key, inner] of Object.entries(value)) {
    if (LONE_SURROGATE.test(key) || hasIllFormedText(inner, depth + 1)) return true;
  }
  return false;
}

/** `value` as it is, or `invalid_request` naming `field` when any string in it holds a lone surrogate. */
export function wellFormed<T>(value: T, field: string): T {
  if (hasIllFormedText(value)) throw invalidRequest(`${field} must be well-formed Unicode (a lone surrogate is not)`);
  return value;
}
