import { createHash, timingSafeEqual } from 'node:crypto';
import { secureRandomBytes } from './random.js';

/** 256 bits from the CSPRNG, base64url. */
export const randomSecret = (): string => secureRandomBytes(32).toString('base64url');

export const sha256 = (text: string | Buffer): Buffer => createHash('sha256').update(text).digest();

export function constantTimeEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Compares two strings in constant time for equal lengths (hashing first hides the lengths too). */
export function constantTimeEqualText(a: string, b: string): boolean {
  return timingSafeEqual(sha256(a), sha256(b));
}

export const OPAQUE_REFRESH_PREFIX = 'rt_';
const OPAQUE_REFRESH_PATTERN = /^rt_[A-Za-z0-9_-]{43}$/;

export const newOpaqueRefreshToken = (): string => OPAQUE_REFRESH_PREFIX + randomSecret();
export const isOpaqueRefreshToken = (token: string): boolean => OPAQUE_REFRESH_PATTERN.test(token);
/** The only form in which an opaque refresh token is stored. */
export const opaqueRefreshId = (token: string): string => sha256(token).toString('base64url');

/** App keys read `ak_<key id>_<secret>`: the id finds the record, the secret is compared by hash. */
const APP_KEY_PATTERN = /^ak_([0-9A-HJKMNP-TV-Z]{26})_([A-Za-z0-9_-]{43})$/;

export function newAppKey(id: string): { appKey: string; secretHash: Buffer } {
  const secret = randomSecret();
  return { appKey: `ak_${id}_${secret}`, secretHash: sha256(secret) };
}

export function parseAppKey(appKey: string): { id: string; secretHash: Buffer } | null {
  const match = APP_KEY_PATTERN.exec(appKey);
  if (!match) return null;
  return { id: match[1] as string, secretHash: sha256(match[2] as string) };
}
