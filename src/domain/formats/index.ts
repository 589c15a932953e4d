import type { Profile } from '../policy.js';
import type { TokenFormat } from './format.js';
import { nativeFormat } from './native.js';

export type { TokenFormat, MintContext, JwtParts, SessionLocator } from './format.js';

/**
 * Token layout per profile. Dialect profiles register here; until one is registered its apps use
 * the native layout (see issue "dialects").
 */
const FORMATS: Partial<Record<Profile, TokenFormat>> = { native: nativeFormat };

export function formatFor(profile: Profile): TokenFormat {
  return FORMATS[profile] ?? nativeFormat;
}

export function registerFormat(profile: Profile, format: TokenFormat): void {
  FORMATS[profile] = format;
}
