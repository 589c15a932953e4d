import { decodeTime, ulid } from 'ulid';
import { secureRandomUnit } from '../crypto/random.js';

/**
 * A new ULID: 26 Crockford base32 characters, 80 random bits. Its time part is `atMs` (the injected
 * clock) when given, so ids agree with the times the engine stamps. Random bits come from the pooled
 * CSPRNG: ulid's default makes one CSPRNG call per character (~60 µs per refresh).
 */
export const newId = (atMs?: number): string => ulid(atMs, secureRandomUnit);

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
