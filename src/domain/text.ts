import { invalidRequest } from './errors.js';

/**
 * Text Rotor stores must mean the same in every store. A lone UTF-16 surrogate (`"\ud800"` in JSON,
 * `'\ud800'` in JavaScript) is no text: PostgreSQL turns it into U+FFFD, so two subjects become one, and
 * Redis's cjson refuses the write. U+0000 PostgreSQL refuses in text and jsonb while SQLite and Redis keep
 * it. So neither may reach a store, whoever writes: an HTTP API, the library or the CLI (F4-04, S4-05).
 */

/** With the u flag a surrogate pair is one code point, so this matches only a lone surrogate. */
const LONE_SURROGATE = /\p{Surrogate}/u;
const NUL = /\u0000/;

/** Whether any string, key or value, at any depth, matches `pattern`. */
function anyText(value: unknown, pattern: RegExp, depth = 0): boolean {
  if (typeof value === 'string') return pattern.test(value);
  if (value === null || typeof value !== 'object' || depth > 64) return false;
  for (const [key, inner] of Object.entries(value)) {
    if (pattern.test(key) || anyText(inner, pattern, depth + 1)) return true;
  }
  return false;
}

/** Whether any string, key or value, at any depth, holds a lone surrogate. */
export function hasIllFormedText(value: unknown): boolean {
  return anyText(value, LONE_SURROGATE);
}

/** `value` as it is, or `invalid_request` naming `field` when any string in it holds a lone surrogate or a NUL. */
export function wellFormed<T>(value: T, field: string): T {
  if (hasIllFormedText(value)) throw invalidRequest(`${field} must be well-formed Unicode (a lone surrogate is not)`);
  if (anyText(value, NUL)) throw invalidRequest(`${field} must not contain a NUL character (U+0000)`);
  return value;
}
