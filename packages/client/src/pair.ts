/** The shape of a TokenPair, checked wherever one comes in: from the app's backend, and from Rotor. */
import type { TokenPair } from './types.js';

/**
 * Whether `value` is a TokenPair: `accessToken` a non-empty string, `expiresIn` a finite number of
 * seconds, not negative (Rotor answers 0 in a session's last second), `refreshToken` absent, null or a
 * non-empty string, `tokenType` absent or a string.
 */
export function isTokenPair(value: unknown): value is TokenPair {
  if (value === null || typeof value !== 'object') return false;
  const pair = value as Record<string, unknown>;
  return nonEmpty(pair.accessToken)
    && typeof pair.expiresIn === 'number' && Number.isFinite(pair.expiresIn) && pair.expiresIn >= 0
    && (pair.refreshToken === undefined || pair.refreshToken === null || nonEmpty(pair.refreshToken))
    && (pair.tokenType === undefined || typeof pair.tokenType === 'string');
}

/**
 * A refresh's answer: a TokenPair with the refresh token that replaces the one presented (`/v1/refresh`
 * always returns one). Without it, storing the answer would drop the session's only way to renew.
 */
export function isRefreshedPair(value: unknown): value is TokenPair & { refreshToken: string } {
  return isTokenPair(value) && nonEmpty(value.refreshToken);
}

const nonEmpty = (value: unknown): value is string => typeof value === 'string' && value.length > 0;
