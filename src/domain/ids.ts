import { monotonicFactory, decodeTime } from 'ulid';
import { secureRandomUnit } from '../crypto/random.js';

/** ulid's default PRNG makes one CSPRNG call per character (~60 µs per refresh); the pooled one makes none. */
const next = monotonicFactory(secureRandomUnit);

/** A new ULID: sortable, 26 Crockford base32 characters. */
export const newId = (): string => next();

const ULID_PATTERN = /^[0-9A-HJKMNP-TV-Z]{26}$/;
/** Crockford base32 is case-insensitive, so `01arz…` is a ULID too. */
export function isUlid(text: string): boolean {
  if (text.length !== 26 || !ULID_PATTERN.test(text.toUpperCase())) return false;
  try {
    decodeTime(text.toUpperCase());
    return true;
  } catch {
    return false;
  }
}

const APP_NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;
/** App names: `[a-z0-9][a-z0-9_-]{0,62}` and never a valid ULID, so a path segment names one app only. */
export function isValidAppName(name: string): boolean {
  return APP_NAME_PATTERN.test(name) && !isUlid(name);
}
